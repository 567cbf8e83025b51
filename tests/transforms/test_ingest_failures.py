"""Bad input that used to be lost or corrupted while the checks passed (issue 12, items 1, 2, 6):
every physical record is loaded or quarantined with its reason, and the counts reconcile
against an independent count of the file's lines."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from decimal import Decimal
from pathlib import Path

import duckdb

from tests.conftest import BOOKING_HEADER, TinyProject, click
from transforms import ingest
from transforms.events import EVENT_SQL_TYPES, build_events
from transforms.sources import load_config

D1 = dt.date(2026, 10, 1)


def booking(n: int | str, *, price: str = "10", rating: str = "", complaint: str = "",
            city: str = "Berlin", changed_at: str = "2026-10-01T10:00:00") -> str:
    return (f"b{n},c1,s1,{city},hair,2026-10-05T10:00:00,{price},EUR,created,,{rating},"
            f"{complaint},{changed_at}")


def load_all(tiny: TinyProject):
    """Every source loaded into one connection (what `events` is built from)."""
    cfg = load_config(tiny.config)
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    for source in cfg.sources.values():
        ingest.load_range(con, source, dt.date(2026, 9, 29), dt.date(2026, 10, 3))
    return con, cfg


def load(tiny: TinyProject, source: str, first: dt.date = dt.date(2026, 9, 29),
         last: dt.date = dt.date(2026, 10, 3)):
    cfg = load_config(tiny.config)
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    stats = ingest.load_range(con, cfg.sources[source], first, last)
    return con, stats, cfg


def reasons(con, source: str) -> list[tuple[int, str]]:
    return con.execute("select source_line, reason from quarantine where source = ? "
                       "order by source_line", [source]).fetchall()


def loaded_ids(con, table: str, col: str) -> list[str]:
    return [r[0] for r in con.execute(f"select {col} from {table} order by {col}").fetchall()]


def physical_lines(path: Path) -> int:
    """`wc -l`: the newline bytes of the file (independent of any CSV parsing)."""
    return path.read_bytes().count(b"\n")


def set_source_option(tiny: TinyProject, source: str, line: str) -> None:
    text = tiny.config.read_text()
    anchor = f"  {source}:\n"
    tiny.config.write_text(text.replace(anchor, anchor + f"    {line}\n", 1))


# --------------------------------------------------------------------------- item 2: amounts


def test_amount_beyond_the_decimal_type_is_quarantined_and_events_build(
        tiny: TinyProject) -> None:
    # DECIMAL(18,2) in raw_* and in events alike: 10^10 loads exactly; 10^16 and more cannot
    # be held and are quarantined with the reason, never NULL, never a crash of `events`
    assert ingest.SQL_TYPES["decimal"] == EVENT_SQL_TYPES["decimal"] == "DECIMAL(18,2)"
    tiny.bookings("2026-10-01", booking(1, price="10000000000"),
                  booking(2, price="10000000000000000"),
                  booking(3, price="99999999999999999999"),
                  booking(4, price="9999999999999999.99"))
    con, cfg = load_all(tiny)
    assert reasons(con, "bookings") == [
        (3, "price out of range of DECIMAL(18,2) (below 10^16 in size): 10000000000000000"),
        (4, "price out of range of DECIMAL(18,2) (below 10^16 in size): 99999999999999999999"),
    ]
    assert con.execute("select booking_id, price from raw_bookings order by 1").fetchall() == [
        ("b1", Decimal("10000000000.00")), ("b4", Decimal("9999999999999999.99"))]
    build_events(con, cfg)  # the step that crashed on every later run
    assert con.execute("select amount from events order by amount").fetchall() == [
        (Decimal("10000000000.00"),), (Decimal("9999999999999999.99"),)]
    assert ingest.reconciliation_problems(con, cfg.sources["bookings"]) == []


# --------------------------------------------------------------------------- item 6


def test_non_whole_number_in_an_integer_column_is_quarantined_not_rounded(
        tiny: TinyProject) -> None:
    tiny.bookings("2026-10-01", booking(1, rating="5.4"), booking(2, rating="4.0"),
                  booking(3, rating="5"), booking(4, rating="4.5"), booking(5, rating="x"))
    con, _, _ = load(tiny, "bookings")
    assert reasons(con, "bookings") == [
        (2, "not a whole number in rating: 5.4"), (5, "not a whole number in rating: 4.5"),
        (6, "not an integer in rating: x")]
    assert con.execute("select booking_id, rating from raw_bookings order by 1").fetchall() == [
        ("b2", 4), ("b3", 5)]


def _latin1_bookings(tiny: TinyProject) -> Path:
    path = tiny.root / "raw" / "bookings" / "2026-10-01.csv"
    path.write_bytes((BOOKING_HEADER + "\n" + booking(1) + "\n").encode()
                     + (booking(2, city="K\xf6ln") + "\n").encode("latin-1"))
    return path


def test_latin1_bytes_in_a_utf8_csv_are_quarantined(tiny: TinyProject) -> None:
    _latin1_bookings(tiny)
    con, _, _ = load(tiny, "bookings")
    assert reasons(con, "bookings") == [(3, "undecodable bytes: the file is not utf-8")]
    assert loaded_ids(con, "raw_bookings", "booking_id") == ["b1"]


def test_latin1_csv_is_decoded_when_the_source_says_so(tiny: TinyProject) -> None:
    path = tiny.root / "raw" / "bookings" / "2026-10-01.csv"
    path.write_bytes((BOOKING_HEADER + "\n" + booking(1, city="K\xf6ln") + "\n")
                     .encode("latin-1"))
    set_source_option(tiny, "bookings", "encoding: latin-1")
    con, _, _ = load(tiny, "bookings")
    assert reasons(con, "bookings") == []
    assert loaded_ids(con, "raw_bookings", "city") == ["K\xf6ln"]


def _event_line(mid: str, **kw: object) -> str:
    return json.dumps(click(mid, "a1", "app_opened", "2026-10-01T08:00:00Z", **kw),
                      ensure_ascii=False)


def test_latin1_bytes_in_a_utf8_jsonl_file_are_quarantined_not_a_crash(
        tiny: TinyProject) -> None:
    # read_text refused the whole load ("could not read ... as valid UTF-8")
    path = tiny.root / "raw" / "clickstream" / "2026-10-01.jsonl"
    tiny.clicks("2026-10-02", _event_line("m9"))  # a good file read along with it
    path.write_bytes((_event_line("m1", user="K\xf6ln") + "\n").encode("latin-1")
                     + (_event_line("m2") + "\n").encode())
    con, _, _ = load(tiny, "clickstream")
    assert reasons(con, "clickstream") == [(1, "undecodable bytes: the file is not utf-8")]
    assert loaded_ids(con, "raw_clickstream", "event_id") == ["m2", "m9"]


def test_latin1_jsonl_is_decoded_when_the_source_says_so(tiny: TinyProject) -> None:
    path = tiny.root / "raw" / "clickstream" / "2026-10-01.jsonl"
    path.write_bytes((_event_line("m1", user="K\xf6ln") + "\n").encode("latin-1"))
    set_source_option(tiny, "clickstream", "encoding: latin-1")
    con, _, _ = load(tiny, "clickstream")
    assert reasons(con, "clickstream") == []
    assert loaded_ids(con, "raw_clickstream", "user_id") == ["K\xf6ln"]


def test_utf8_bom_opening_a_jsonl_file_is_not_part_of_the_first_event(
        tiny: TinyProject) -> None:
    body = (_event_line("m1") + "\n" + _event_line("m2") + "\n").encode()
    (tiny.root / "raw" / "clickstream" / "2026-10-01.jsonl").write_bytes(b"\xef\xbb\xbf" + body)
    with gzip.open(tiny.root / "raw" / "clickstream" / "2026-10-02.jsonl.gz", "wb") as fh:
        fh.write(b"\xef\xbb\xbf" + body.replace(b'"m1"', b'"z1"').replace(b'"m2"', b'"z2"'))
    tiny.config.write_text(tiny.config.read_text().replace(
        "path: raw/clickstream/*.jsonl", "path: raw/clickstream/*.jsonl*"))
    con, _, _ = load(tiny, "clickstream")
    assert reasons(con, "clickstream") == []
    assert loaded_ids(con, "raw_clickstream", "event_id") == ["m1", "m2", "z1", "z2"]


def test_cr_only_line_endings_are_line_breaks(tiny: TinyProject) -> None:
    (tiny.root / "raw" / "bookings" / "2026-10-01.csv").write_bytes(
        "\r".join([BOOKING_HEADER, booking(1), booking(2, rating="5.4"), ""]).encode())
    (tiny.root / "raw" / "clickstream" / "2026-10-01.jsonl").write_bytes(
        "\r".join([_event_line("m1"), "{broken", _event_line("m2"), ""]).encode())
    con, _, _ = load(tiny, "bookings")
    assert loaded_ids(con, "raw_bookings", "booking_id") == ["b1"]
    assert reasons(con, "bookings") == [(3, "not a whole number in rating: 5.4")]
    con, _, _ = load(tiny, "clickstream")
    assert loaded_ids(con, "raw_clickstream", "event_id") == ["m1", "m2"]
    assert reasons(con, "clickstream") == [(2, "malformed JSON line")]


def test_utc_offset_beyond_18_hours_is_quarantined(tiny: TinyProject) -> None:
    tiny.clicks("2026-10-01",
                click("m1", "a1", "app_opened", "2026-10-01T08:00:00+25:00"),
                click("m2", "a1", "app_opened", "2026-10-01T08:00:00+05:60"),
                click("m3", "a1", "app_opened", "2026-10-01T20:00:00+14:00"),
                click("m4", "a1", "app_opened", "2026-10-01T04:00:00-1800"),
                click("m5", "a1", "app_opened", "2026-10-01T08:00:00+0530"))
    tiny.bookings("2026-10-01", booking(1, changed_at="2026-10-01T10:00:00+19"))
    con, _, _ = load(tiny, "clickstream")
    assert reasons(con, "clickstream") == [
        (1, "timestamp offset out of range in client_ts: 2026-10-01T08:00:00+25:00 "
            "(offsets lie within ±18:00)"),
        (2, "timestamp offset out of range in client_ts: 2026-10-01T08:00:00+05:60 "
            "(offsets lie within ±18:00)")]
    assert con.execute("select event_id, event_ts from raw_clickstream order by 1").fetchall() == [
        ("m3", dt.datetime(2026, 10, 1, 6, 0)), ("m4", dt.datetime(2026, 10, 1, 22, 0)),
        ("m5", dt.datetime(2026, 10, 1, 2, 30))]
    con, _, _ = load(tiny, "bookings")
    assert reasons(con, "bookings") == [
        (2, "timestamp offset out of range in changed_at: 2026-10-01T10:00:00+19 "
            "(offsets lie within ±18:00)")]


def test_ids_of_the_wrong_json_type_are_quarantined(tiny: TinyProject) -> None:
    tiny.clicks("2026-10-01",
                click("m1", "a1", "app_opened", "2026-10-01T08:00:00Z", user=True),
                click("m2", "a1", "app_opened", "2026-10-01T08:00:00Z", user={"id": 1}),
                click("m3", "a1", "app_opened", "2026-10-01T08:00:00Z", user=17),
                click("m4", "a1", "app_opened", "2026-10-01T08:00:00Z", user="u4"),
                click({"x": 1}, "a1", "app_opened", "2026-10-01T08:00:00Z", user="u5"),
                click("m6", [1], "app_opened", "2026-10-01T08:00:00Z", user="u6"),
                click("m7", "a1", "app_opened", "2026-10-01T08:00:00Z"))
    con, cfg = load_all(tiny)
    assert reasons(con, "clickstream") == [
        (1, "customer id is not text or a number in user_id: true"),
        (2, 'customer id is not text or a number in user_id: {"id":1}'),
        (5, 'id is not text or a number in event_id: {"x":1}'),
        (6, "anonymous id is not text or a number in anonymous_id: [1]")]
    assert con.execute("select event_id, user_id from raw_clickstream order by 1").fetchall() == [
        ("m3", "17"), ("m4", "u4"), ("m7", None)]
    build_events(con, cfg)
    customers = {r[0] for r in con.execute("select customer_id from events").fetchall()}
    assert not customers & {"true", '{"id":1}'}


# --------------------------------------------------------------------------- item 1: quotes


def _reconciles_with_wc(con, cfg, path: Path, header_lines: int = 1) -> None:
    read, loaded, quarantined = con.execute(
        "select sum(rows_read), sum(rows_loaded), sum(rows_quarantined + rows_duplicate) "
        "from ingest_reconciliation where source = 'bookings'").fetchone()
    assert read == loaded + quarantined == physical_lines(path) - header_lines
    assert ingest.reconciliation_problems(con, cfg.sources["bookings"]) == []


def test_unterminated_quote_running_to_the_end_of_the_file(tiny: TinyProject) -> None:
    # the quote opened in line 3 used to swallow all 47 later bookings into one quarantined row
    path = tiny.bookings("2026-10-01", booking(1), booking(2, complaint='"slow service'),
                         *(booking(n) for n in range(3, 50)))
    con, _, cfg = load(tiny, "bookings")
    assert reasons(con, "bookings") == [
        (3, "unterminated quote: the quoted field opened on this line runs to the end of "
            "the file")]
    assert len(loaded_ids(con, "raw_bookings", "booking_id")) == 48
    raw = con.execute("select raw_record from quarantine").fetchone()[0]
    assert raw == booking(2, complaint='"slow service')  # that physical line, no more
    _reconciles_with_wc(con, cfg, path)


def test_unterminated_quote_on_the_last_line(tiny: TinyProject) -> None:
    path = tiny.bookings("2026-10-01", booking(1), 'b2,c1,s1,"Berlin,hair')
    con, _, cfg = load(tiny, "bookings")
    assert [r[0] for r in reasons(con, "bookings")] == [3]
    assert reasons(con, "bookings")[0][1].startswith("unterminated quote: ")
    _reconciles_with_wc(con, cfg, path)


def test_unterminated_quote_closed_by_a_later_quote_in_the_same_column(
        tiny: TinyProject) -> None:
    # the later quoted complaint closes the open one: one "record" of the right width that
    # used to load as booking b1 with five lines as its complaint
    path = tiny.bookings("2026-10-01", booking(1, complaint='"late'),
                         *(booking(n) for n in range(2, 5)),
                         booking(5, complaint='"rude"'), booking(6))
    con, _, cfg = load(tiny, "bookings")
    assert reasons(con, "bookings") == [
        (2, "unterminated quote: the quoted field opened on this line swallows the next "
            "line, which is a whole record by itself")]
    assert loaded_ids(con, "raw_bookings", "booking_id") == ["b2", "b3", "b4", "b5", "b6"]
    assert con.execute("select complaint from raw_bookings where booking_id = 'b5'"
                       ).fetchone()[0] == "rude"
    _reconciles_with_wc(con, cfg, path)


def test_unterminated_quote_running_over_many_lines(tiny: TinyProject) -> None:
    # a wrong width after 150 lines of quoted text: the record is the quote's first line
    text = "\n".join(f"more text {n}" for n in range(150))
    path = tiny.bookings("2026-10-01", booking(1), booking(2, complaint='"' + text),
                         booking(3))
    con, _, cfg = load(tiny, "bookings")
    got = reasons(con, "bookings")
    assert got[0] == (3, f"unterminated quote: the quoted field opened on this line runs "
                         f"over more than {ingest.MAX_RECORD_LINES} lines")
    # every later physical line is read on its own: 149 text lines quarantined, b3 loaded
    assert len(got) == 1 + 149
    assert {r[1].split(":")[0] for r in got[1:]} == {"malformed CSV row"}
    assert loaded_ids(con, "raw_bookings", "booking_id") == ["b1", "b3"]
    _reconciles_with_wc(con, cfg, path)


def test_quoted_field_with_a_line_break_is_still_one_record(tiny: TinyProject) -> None:
    path = tiny.bookings("2026-10-01", booking(1, complaint='"waited,\nthen left"'),
                         booking(2, complaint='"a\n\nb"'), booking(3))
    con, stats, cfg = load(tiny, "bookings")
    assert reasons(con, "bookings") == []
    assert con.execute("select booking_id, complaint, source_line from raw_bookings "
                       "order by 1").fetchall() == [
        ("b1", "waited,\nthen left", 2), ("b2", "a\n\nb", 4), ("b3", None, 7)]
    # records, not lines: three lines hold the quoted breaks
    assert sum(s.rows_read for s in stats) == physical_lines(path) - 1 - 3
