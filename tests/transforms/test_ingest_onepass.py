"""Ingest reads each file once and is cheap per row (issue 13): a range whose files fit in one
pass is one pass; a load in several passes gives the same tables; plain CSV files are split by
DuckDB with exactly the outcome of the csv-module reader.

Expected values are the records written by hand in each test, never the product's output.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import duckdb
import pytest

from tests.conftest import BOOKING_HEADER, TinyProject, click
from transforms import ingest
from transforms.sources import load_config

TABLES = {
    "raw_bookings": "select * exclude (loaded_at) from raw_bookings order by all",
    "raw_clickstream": "select * exclude (loaded_at) from raw_clickstream order by all",
    "quarantine": "select * exclude (quarantined_at) from quarantine order by all",
    "rejected_files": "select * exclude (rejected_at) from rejected_files order by all",
    "ingest_reconciliation": "select * exclude (loaded_at) from ingest_reconciliation "
                             "order by all",
}


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def tables(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, list[tuple]]:
    out = {}
    for name, sql in TABLES.items():
        if name.startswith("raw_") and name != f"raw_{source}":
            continue
        out[name] = con.execute(sql).fetchall()
    return out


def booking(bid: str, status: str, changed: str, *, city: str = "Berlin",
            price: str = "83.00") -> str:
    return (f"{bid},cus_{bid},sal_1,{city},hair,2026-10-02 16:00:00,{price},EUR,{status},,,,"
            f"{changed}")


def load_all(config: Path, name: str) -> tuple[duckdb.DuckDBPyConnection, list]:
    cfg = load_config(config)
    first, last = cfg.data_range()
    con = connect()
    stats = ingest.load_range(con, cfg.sources[name], first, last)
    return con, stats


# --------------------------------------------------------------------------- CSV


def write_bookings(tiny: TinyProject) -> dict[str, Path]:
    """Four bookings exports: a plain one with every kind of line the plain reader must treat
    as the csv module does, one with quotes closed on their lines, one whose header lacks a
    mapped field, one with a quoted line break (read by the csv module)."""
    plain = tiny.bookings(
        "2026-10-01",
        booking("b1", "created", "2026-10-01 10:00:00"),
        "",  # blank: no record
        "  \t ",  # spaces and a tab: no record
        booking("b1", "confirmed", "2026-10-01 10:05:00"),
        booking("b2", "created", "2026-10-01 11:00:00") + ",extra",  # 14 fields
        booking("b3", "created", "2026-10-01 12:00:00", city="K\ufffdln"),  # U+FFFD
        booking("b1", "created", "2026-10-01 10:00:00"),  # exact copy of line 2
        booking("b4", "created", "2026-10-01 13:00:00", price="abc"),  # not a number
        " ,,,,,,,,,,,, ",  # delimiters: a record (missing fields), not a blank line
    )
    quoted = tiny.bookings(
        "2026-10-02",
        booking("b5", "created", "2026-10-02 09:00:00", city='"Frankfurt, Main"'),
        booking("b1", "created", "2026-10-01 10:00:00", city="Hamburg"),  # conflicting copy
        booking("b7", "created", "2026-10-02 10:00:00", city='Bad "Homburg"'),  # literal
    )
    spanning = tiny.bookings(  # a quoted field holding a line break: the csv module
        "2026-10-04",
        booking("b8", "created", "2026-10-04 09:00:00").replace(",,,,", ',,,"late,\nagain",'),
        booking("b9", "created", "2026-10-04 10:00:00"),
    )
    lacking = tiny.root / "raw" / "bookings" / "2026-10-03.csv"
    lacking.write_text(BOOKING_HEADER.replace(",complaint", "") + "\n"
                       + booking("b6", "created", "2026-10-03 09:00:00").replace(",,,,", ",,,")
                       + "\n")
    return {"plain": plain, "quoted": quoted, "lacking": lacking, "spanning": spanning}


def test_plain_csv_is_split_by_duckdb_with_the_csv_modules_outcome(
        tiny: TinyProject, monkeypatch: pytest.MonkeyPatch) -> None:
    files = write_bookings(tiny)
    source = load_config(tiny.config).sources["bookings"]
    assert ingest._plain_csv(files["plain"], source) == (BOOKING_HEADER, {})
    assert ingest._plain_csv(files["lacking"], source) is not None
    # quotes closed on their own lines: those lines split by the csv module, in line order
    header, quoted = ingest._plain_csv(files["quoted"], source)
    assert header == BOOKING_HEADER and list(quoted) == [2, 4]
    assert quoted[2][3] == "Frankfurt, Main" and quoted[4][3] == 'Bad "Homburg"'
    assert ingest._plain_csv(files["spanning"], source) is None  # a record over two lines
    con, _ = load_all(tiny.config, "bookings")
    fast = tables(con, "bookings")
    monkeypatch.setattr(ingest, "_plain_csv", lambda path, source: None)
    con_slow, _ = load_all(tiny.config, "bookings")
    assert tables(con_slow, "bookings") == fast

    # by hand: the plain file's lines 2..10 (header line 1, blank lines 3 and 4)
    loaded = con.execute("select booking_id, status, source_line from raw_bookings "
                         "where source_file like '%10-01.csv' order by source_line").fetchall()
    assert loaded == [("b1", "created", 2), ("b1", "confirmed", 5)]
    quarantined = dict(con.execute(
        "select source_line, reason from quarantine where source_file like '%10-01.csv'"
    ).fetchall())
    assert quarantined == {
        6: "malformed CSV row: expected 13 fields, got 14",
        7: "undecodable bytes: the file is not utf-8",
        8: f"duplicate of {files['plain']}:2",
        9: "not a number in price: abc",
        10: "missing required field: customer_id",  # booking_id is " ", not empty
    }
    assert con.execute("select reason from quarantine where source_file like '%10-02.csv'"
                       ).fetchall() == [
        (f"conflicting duplicate of {files['plain']}:2: differs in city",)]
    assert con.execute("select booking_id, city from raw_bookings "
                       "where source_file like '%10-02.csv' order by 1").fetchall() == [
        ("b5", "Frankfurt, Main"), ("b7", 'Bad "Homburg"')]
    assert con.execute("select booking_id, complaint from raw_bookings "
                       "where source_file like '%10-04.csv' order by 1").fetchall() == [
        ("b8", "late,\nagain"), ("b9", None)]
    assert con.execute("select source_line, reason from quarantine "
                       "where source_file like '%10-03.csv'").fetchall() == [
        (2, "file header lacks column(s): complaint")]
    # every record accounted for: 7 + 3 + 1 + 2 records
    assert con.execute("select sum(rows_read) from ingest_reconciliation").fetchone() == (13,)
    assert ingest.reconciliation_problems(con, source) == []


def test_a_bom_opens_a_plain_csv_file_and_is_no_part_of_its_header(tiny: TinyProject) -> None:
    path = tiny.root / "raw" / "bookings" / "2026-10-01.csv"
    path.write_text("\ufeff" + BOOKING_HEADER + "\n"
                    + booking("b1", "created", "2026-10-01 10:00:00"))  # no final newline
    source = load_config(tiny.config).sources["bookings"]
    assert ingest._plain_csv(path, source) == (BOOKING_HEADER, {})
    con, _ = load_all(tiny.config, "bookings")
    assert con.execute("select booking_id, source_line from raw_bookings").fetchall() == [
        ("b1", 2)]
    assert con.execute("select count(*) from quarantine").fetchone() == (0,)


@pytest.mark.parametrize("content", [b"a\r\nb\r\n", b"\x00", "K\xf6ln".encode("latin-1")])
def test_crlf_nul_and_undecodable_files_go_to_the_csv_module(tiny: TinyProject,
                                                             content: bytes) -> None:
    path = tiny.root / "raw" / "bookings" / "2026-10-01.csv"
    path.write_bytes(BOOKING_HEADER.encode() + b"\n" + content)
    source = load_config(tiny.config).sources["bookings"]
    assert ingest._plain_csv(path, source) is None


# --------------------------------------------------------------------------- passes


def write_clicks(tiny: TinyProject, days: int) -> None:
    """`days` daily clickstream exports, each with a late row of the day before, and the
    second day's first message re-sent on the fourth day with another time and platform (a
    conflicting copy in another pass when passes are 3 days)."""
    start = dt.date(2026, 10, 1)
    for i in range(days):
        day = start + dt.timedelta(days=i)
        before = day - dt.timedelta(days=1)
        tiny.clicks(day.isoformat(),
                    click(f"a{i}", f"anon{i}", "app_opened", f"{day}T12:00:00Z"),
                    click(f"b{i}", f"anon{i}", "app_opened", f"{before}T23:30:00Z"))
    tiny.clicks("2026-10-04", click("a1", "anon1", "app_opened", "2026-10-04T08:00:00Z",
                                    platform="ios"))


def test_several_passes_give_the_tables_of_one_pass(tiny: TinyProject,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    write_clicks(tiny, 8)
    cfg = load_config(tiny.config)
    source = cfg.sources["clickstream"]
    first, last = dt.date(2026, 9, 30), dt.date(2026, 10, 8)
    assert ingest._chunk_days(source, first, last) == 9  # tiny files: one pass
    one = connect()
    ingest.load_range(one, source, first, last)
    monkeypatch.setattr(ingest, "CHUNK_BYTES", 1)
    assert ingest._chunk_days(source, first, last) == ingest.CHUNK_DAYS
    several = connect()
    ingest.load_range(several, source, first, last)
    assert tables(several, "clickstream") == tables(one, "clickstream")
    # by hand: 16 rows written and the re-sent one; b0 belongs to 30 September, in the range
    assert one.execute("select count(*) from raw_clickstream").fetchone() == (16,)
    path = tiny.root / "raw" / "clickstream"
    assert one.execute("select partition_date, source_file, source_line, reason "
                       "from quarantine").fetchall() == [
        (dt.date(2026, 10, 4), str(path / "2026-10-04.jsonl"), 3,
         f"conflicting duplicate of {path / '2026-10-02.jsonl'}:1: differs in client_ts, "
         "received_at, platform")]
    assert ingest.reconciliation_problems(several, source) == []


def test_files_staged_in_groups_give_the_tables_of_one_group(
        tiny: TinyProject, monkeypatch: pytest.MonkeyPatch) -> None:
    write_clicks(tiny, 8)
    # an undated file (its rows' days come from the file's own valid rows) and a file that is
    # no JSON text at all: each is one group when every file is
    tiny.clicks("export", click("u1", "anonu", "app_opened", "2026-10-03T09:00:00Z"), "{bad")
    (tiny.root / "raw" / "clickstream" / "2026-10-05-broken.jsonl").write_bytes(b"\x1f\x8b\x08")
    tiny.bookings("2026-10-02", booking("b1", "created", "2026-10-02 10:00:00"), "b2,short")
    tiny.bookings("2026-10-03", booking("b1", "created", "2026-10-02 10:00:00"),
                  booking("b3", "created", "2026-10-03 11:00:00"))
    cfg = load_config(tiny.config)
    first, last = dt.date(2026, 9, 30), dt.date(2026, 10, 8)
    one = connect()
    for name in ("clickstream", "bookings"):
        files = ingest._files_for(cfg.sources[name], first, last)
        assert ingest._stage_groups(files) == [files]  # tiny files: one group
        ingest.load_range(one, cfg.sources[name], first, last)
    monkeypatch.setattr(ingest, "STAGE_BYTES", 1)
    files = ingest._files_for(cfg.sources["clickstream"], first, last)
    assert ingest._stage_groups(files) == [[f] for f in files] and len(files) == 10
    assert ingest._stage_groups([]) == [[]]
    grouped = connect()
    for name in ("clickstream", "bookings"):
        ingest.load_range(grouped, cfg.sources[name], first, last)
        assert ingest.reconciliation_problems(grouped, cfg.sources[name]) == []
    for name in ("clickstream", "bookings"):
        assert tables(grouped, name) == tables(one, name)
    # the raw tables in the same physical order too (read without ORDER BY)
    for table in ("raw_clickstream", "raw_bookings"):
        sql = f"select source_file, source_line from {table}"
        assert grouped.execute(sql).fetchall() == one.execute(sql).fetchall()
    # by hand: the broken file is rejected alone; b1's second copy is a duplicate, b2 short
    assert [r[1:] for r in ingest.rejected_files(one, cfg.sources["clickstream"])] == [
        (0, "a broken gzip stream (truncated or corrupt): the file ends before the end of "
            "the compressed stream")]
    assert one.execute("select booking_id from raw_bookings order by 1").fetchall() == [
        ("b1",), ("b3",)]
    assert one.execute("select kind, count(*) from quarantine where source = 'bookings' "
                       "group by all order by 1").fetchall() == [("duplicate", 1),
                                                                ("rejected", 1)]


def test_a_range_is_read_in_passes_of_about_chunk_bytes(tiny: TinyProject,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    write_clicks(tiny, 8)
    source = load_config(tiny.config).sources["clickstream"]
    per_day = (tiny.root / "raw" / "clickstream" / "2026-10-02.jsonl").stat().st_size
    # room for 7 export days a pass: 5 partition days plus the day before and after them
    monkeypatch.setattr(ingest, "CHUNK_BYTES", 7 * per_day + per_day // 2)
    first, last = dt.date(2026, 9, 30), dt.date(2026, 10, 8)
    sizes = [p.stat().st_size for p in (tiny.root / "raw" / "clickstream").glob("*.jsonl")]
    expected = max(ingest.CHUNK_DAYS,
                   int(ingest.CHUNK_BYTES / (sum(sizes) / len(sizes))) - 2)
    assert ingest._chunk_days(source, first, last) == expected
    assert 4 <= expected <= 6


def test_a_line_over_the_csv_field_limit_goes_to_the_csv_module(tiny: TinyProject) -> None:
    path = tiny.bookings("2026-10-01", booking("b1", "created", "2026-10-01 10:00:00"),
                         booking("b2", "created", "2026-10-01 11:00:00",
                                 city="x" * 300))
    source = load_config(tiny.config).sources["bookings"]
    assert ingest._plain_csv(path, source) == (BOOKING_HEADER, {})
    old = csv.field_size_limit(200)
    try:
        assert ingest._plain_csv(path, source) is None
        con, _ = load_all(tiny.config, "bookings")
    finally:
        csv.field_size_limit(old)
    # the csv module refuses the 300-character field: its record is malformed, b1 loads
    assert con.execute("select booking_id from raw_bookings").fetchall() == [("b1",)]
    assert con.execute("select source_line, reason from quarantine").fetchall() == [
        (3, "malformed CSV row: expected 13 fields, got 0")]
