"""One bad file is rejected alone, and no row read is dropped unsaid (issue 12, items 7 and 5).

Item 7: a path a source's glob matches that cannot be read (a directory, a broken link, a broken
compressed stream, a Parquet or XES file that is not one) is one `rejected_files` row with its
reason, and every other file loads exactly as it does without it. Item 5: rows of the files read
that belong to a day outside the run's range are kept in `quarantine` (kind 'outside_range') in
their own day until that day is run, and the first partition reaches back `late_days` before the
earliest export, so a late row of the earliest file has a partition.

Every case writes its own files; the expected counts are the records written (the line count of
the text before it was damaged), never the product's own numbers.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import TinyProject, click
from tests.transforms.test_ingest_formats import orders, project
from transforms import ingest
from transforms.sources import load_config

DAYS = ("2024-05-01", "2024-05-02")
EXT = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet", "xes": "xes"}
XES_SOURCE = """
  orders:
    path: '{path}'
    format: xes
    columns: {{order_id: "case:concept:name", customer: "case:customer",
              placed: "time:timestamp"}}
    types: {{placed: timestamp}}
    event_time: placed
    id_columns: [order_id]
    event: {{event_name: {{default: order_placed}}, customer: customer}}
"""


def day_rows(day: str) -> list[dict]:
    """Two orders placed on `day` (ids carry the day, so every file's ids differ)."""
    d = day.replace("-", "")
    return [{"order_id": f"o{d}a", "customer": "c1", "placed": f"{day}T09:00:00Z",
             "amount": "1.50"},
            {"order_id": f"o{d}b", "customer": "c2", "placed": f"{day}T17:30:00Z",
             "amount": "2.00"}]


def csv_text(rows: list[dict]) -> str:
    return "order_id,customer,placed,amount\n" + "".join(
        f"{r['order_id']},{r['customer']},{r['placed']},{r['amount']}\n" for r in rows)


def jsonl_text(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def xes_text(rows: list[dict]) -> str:
    traces = "".join(
        f'<trace><string key="concept:name" value="{r["order_id"]}"/>'
        f'<string key="customer" value="{r["customer"]}"/>\n'
        f'<event><date key="time:timestamp" value="{r["placed"]}"/></event></trace>\n'
        for r in rows)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<log xes.version="1.0">\n{traces}</log>\n'


def export_bytes(fmt: str, rows: list[dict]) -> bytes:
    if fmt == "parquet":
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({k: [r[k] for r in rows] for k in rows[0]}), sink)
        return sink.getvalue().to_pybytes()
    return {"csv": csv_text, "jsonl": jsonl_text, "xes": xes_text}[fmt](rows).encode()


def config_for(root: Path, fmt: str) -> Path:
    glob = f"exports/orders-*.{EXT[fmt]}"
    if fmt == "xes":
        return project(root, XES_SOURCE.format(path=glob))
    return orders(root, glob, fmt=fmt)


def write_exports(root: Path, fmt: str) -> int:
    """The good exports (two days, two orders each); returns the records written."""
    (root / "exports").mkdir(exist_ok=True)
    for day in DAYS:
        (root / "exports" / f"orders-{day}.{EXT[fmt]}").write_bytes(
            export_bytes(fmt, day_rows(day)))
    return 2 * len(DAYS)


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def load(config: Path, first: dt.date | None = None, last: dt.date | None = None):
    cfg = load_config(config)
    source = cfg.sources["orders"]
    lo, hi = cfg.data_range()
    con = connect()
    stats = ingest.load_range(con, source, first or lo, last or hi)
    return con, stats, source


def raw_content(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Everything of raw_orders a later step reads (not when it was loaded)."""
    return con.execute("select * exclude (loaded_at) from raw_orders order by all").fetchall()


def rejected(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int, str]]:
    return [(Path(f).name, n, why) for f, n, why in con.execute(
        "select source_file, rows_read, reason from rejected_files order by source_file"
    ).fetchall()]


def accounted(con: duckdb.DuckDBPyConnection) -> int:
    """Rows read in the partitions plus the rows of rejected files."""
    return con.execute("select (select coalesce(sum(rows_read), 0) from ingest_reconciliation)"
                       " + (select coalesce(sum(rows_read), 0) from rejected_files)"
                       ).fetchone()[0]


# --------------------------------------------------------------------------- item 7


def make_directory(path: Path, fmt: str) -> int:
    path.mkdir()
    (path / "inside.txt").write_text("not an export\n")
    return 0


def make_broken_link(path: Path, fmt: str) -> int:
    path.symlink_to(path.parent / "gone" / path.name)
    return 0


def make_truncated_gzip(path: Path, fmt: str) -> int:
    """A gzip stream cut in half (the name without .gz); its records as far as the stream
    reads are counted by decompressing the same bytes independently."""
    rows = day_rows("2024-05-03") * 50
    for i, r in enumerate(rows):
        r = dict(r, order_id=f"{r['order_id']}{i}")
        rows[i] = r
    packed = gzip.compress(export_bytes(fmt, rows))
    path.write_bytes(packed[: len(packed) // 2])
    return -1  # worked out by the caller: depends on the format


def make_not_the_format(path: Path, fmt: str) -> int:
    """Text that is not a Parquet file / not an XES log."""
    path.write_text("order_id,customer\no1,c1\n")
    return 0


BAD_FILES: dict[str, tuple[Callable[[Path, str], int], str]] = {
    "directory": (make_directory, "a directory, not a file"),
    "broken link": (make_broken_link, "a broken link to "),
}


def decodable_records(path: Path, fmt: str) -> int:
    """Records of a broken gzip stream as far as Python's gzip reads it (header excluded)."""
    out = b""
    with gzip.open(path, "rb") as fh:
        try:
            while chunk := fh.read(1):
                out += chunk
        except EOFError:
            pass
    if fmt == "xes":
        return out.count(b"<event")
    lines = out.count(b"\n") + (1 if out and not out.endswith(b"\n") else 0)
    return lines - 1 if fmt == "csv" else lines


# (any text is CSV or JSON lines: a text that is "not the format" has its lines quarantined one
# by one, see test_ingest_failures.py; Parquet and XES files are whole or not at all)
@pytest.mark.parametrize(("fmt", "kind"), [
    (fmt, kind) for fmt in ("csv", "jsonl", "parquet", "xes")
    for kind in ("directory", "broken link", "truncated gzip", "not the format")
    if kind != "not the format" or fmt in ("parquet", "xes")])
def test_a_bad_file_is_rejected_alone_and_the_others_load_as_without_it(
        tmp_path: Path, fmt: str, kind: str) -> None:
    good = tmp_path / "good"
    good.mkdir()
    n_good = write_exports(good, fmt)
    baseline, _, _ = load(config_for(good, fmt))
    expected_rows = raw_content(baseline)
    assert len(expected_rows) == n_good

    bad_root = tmp_path / "bad"
    bad_root.mkdir()
    write_exports(bad_root, fmt)
    bad = bad_root / "exports" / f"orders-2024-05-03.{EXT[fmt]}"
    maker, reason = BAD_FILES.get(kind, (None, ""))
    if kind == "truncated gzip":
        make_truncated_gzip(bad, fmt)
        n_bad = 0 if fmt == "parquet" else decodable_records(bad, fmt)
        reason = ("gzip-compressed, but Parquet is read as is" if fmt == "parquet"
                  else "a broken gzip stream (truncated or corrupt)")
    elif kind == "not the format":
        make_not_the_format(bad, fmt)
        n_bad = 0  # neither a Parquet footer nor any <event element to count
        reason = "not a Parquet file" if fmt == "parquet" else "not a readable XES file"
    else:
        n_bad = maker(bad, fmt)
    config = config_for(bad_root, fmt)
    con, _, source = load(config)
    assert raw_content(con) == [tuple(str(v).replace("/good/", "/bad/") if isinstance(v, str)
                                      else v for v in row) for row in expected_rows]
    ((name, rows, why),) = rejected(con)
    assert name == bad.name and reason in why, why
    assert rows == n_bad
    assert ingest.reconciliation_problems(con, source) == []
    assert accounted(con) == n_good + n_bad
    # the file is not listed as read by any day
    files = {f for (fs,) in con.execute("select files from ingest_reconciliation").fetchall()
             for f in fs}
    assert str(bad) not in files and len(files) == len(DAYS)


def test_a_truncated_gzip_reason_names_the_stream(tmp_path: Path) -> None:
    write_exports(tmp_path, "jsonl")
    bad = tmp_path / "exports" / "orders-2024-05-03.jsonl"
    make_truncated_gzip(bad, "jsonl")
    con, _, _ = load(config_for(tmp_path, "jsonl"))
    ((_, _, why),) = rejected(con)
    assert why.startswith("a broken gzip stream (truncated or corrupt): ")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "xes"])
def test_gzip_bytes_under_a_plain_name_are_read_as_gzip(tmp_path: Path, fmt: str) -> None:
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    for root in (plain, packed):
        root.mkdir()
        write_exports(root, fmt)
    for path in (packed / "exports").iterdir():
        path.write_bytes(gzip.compress(path.read_bytes()))
    want, _, _ = load(config_for(plain, fmt))
    got, _, _ = load(config_for(packed, fmt))
    assert len(raw_content(got)) == 4
    assert [r[:4] for r in raw_content(got)] == [r[:4] for r in raw_content(want)]
    assert rejected(got) == [] and got.execute("select count(*) from quarantine"
                                               ).fetchone() == (0,)


def test_a_plain_file_named_gz_is_read_as_plain_text(tmp_path: Path) -> None:
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "orders-2024-05-01.csv.gz").write_text(
        csv_text(day_rows("2024-05-01")))
    con, _, _ = load(orders(tmp_path, "exports/*.csv.gz"))
    assert [r[0] for r in raw_content(con)] == ["o20240501a", "o20240501b"]


def test_one_latin1_byte_quarantines_its_line_and_the_rest_loads(tmp_path: Path) -> None:
    write_exports(tmp_path, "jsonl")
    rows = day_rows("2024-05-03")
    text = jsonl_text(rows).encode()
    # the second line's customer is 'café' in Latin-1: byte 0xE9, not UTF-8
    lines = text.split(b"\n")
    lines[1] = lines[1].replace(b'"c2"', b'"caf\xe9"')
    bad = tmp_path / "exports" / "orders-2024-05-03.jsonl"
    bad.write_bytes(b"\n".join(lines))
    physical = bad.read_bytes().count(b"\n")
    assert physical == 2
    con, _, source = load(config_for(tmp_path, "jsonl"))
    assert [r[0] for r in raw_content(con)] == [
        "o20240501a", "o20240501b", "o20240502a", "o20240502b", "o20240503a"]
    assert con.execute("select source_line, reason from quarantine").fetchall() == [
        (2, "undecodable bytes: the file is not utf-8")]
    assert rejected(con) == []
    assert accounted(con) == 4 + physical
    assert ingest.reconciliation_problems(con, source) == []


def test_a_bad_path_adds_no_days_to_the_range(tmp_path: Path) -> None:
    write_exports(tmp_path, "csv")
    (tmp_path / "exports" / "orders-2019-01-01.csv").mkdir()
    (tmp_path / "exports" / "orders-2030-01-01.csv").symlink_to(tmp_path / "nowhere.csv")
    cfg = load_config(orders(tmp_path, "exports/orders-*.csv"))
    # the two good exports: 1 May back by late_days (1), 2 May on by max_days_after_export (1)
    assert cfg.data_range() == (dt.date(2024, 4, 30), dt.date(2024, 5, 3))


def test_check_fields_stops_only_when_no_file_has_the_field(tmp_path: Path) -> None:
    from transforms.errors import ConfigError

    write_exports(tmp_path, "csv")
    (tmp_path / "exports" / "orders-2024-05-03.csv").write_text(
        "order_id,client,placed,amount\no3,c1,2024-05-03T10:00:00Z,1\n")
    (tmp_path / "exports" / "orders-2024-05-04.csv").mkdir()
    config = orders(tmp_path, "exports/orders-*.csv")
    source = load_config(config).sources["orders"]
    ingest.check_fields(source, config)  # the other files have `customer`: no stop
    con, _, _ = load(config)
    assert len(raw_content(con)) == 4
    assert con.execute("select reason from quarantine").fetchall() == [
        ("file header lacks column(s): customer",)]
    assert [n for n, _, _ in rejected(con)] == ["orders-2024-05-04.csv"]
    # a field no file has is the mapping's mistake: stop before any work
    bad = orders(tmp_path, "exports/orders-*.csv", cust="buyer")
    with pytest.raises(ConfigError) as err:
        ingest.check_fields(load_config(bad).sources["orders"], bad)
    assert err.value.key == "sources.orders.columns.customer"


def test_a_fixed_file_loses_its_rejection(tmp_path: Path) -> None:
    write_exports(tmp_path, "csv")
    bad = tmp_path / "exports" / "orders-2024-05-02b.csv"
    bad.mkdir()
    config = orders(tmp_path, "exports/orders-*.csv")
    con = connect()
    source = load_config(config).sources["orders"]
    ingest.load_range(con, source, dt.date(2024, 5, 1), dt.date(2024, 5, 3))
    assert [n for n, _, _ in rejected(con)] == ["orders-2024-05-02b.csv"]
    bad.rmdir()
    bad.write_text(csv_text([dict(day_rows("2024-05-02")[0], order_id="o9")]))
    ingest.load_range(con, source, dt.date(2024, 5, 1), dt.date(2024, 5, 3))
    assert rejected(con) == []
    assert "o9" in [r[0] for r in raw_content(con)]


def test_other_sources_load_when_one_file_of_a_source_is_bad(tiny: TinyProject) -> None:
    tiny.clicks("2026-10-01", click("e1", "a1", "app_opened", "2026-10-01T10:00:00Z"))
    packed = tiny.root / "raw" / "clickstream" / "2026-10-02.jsonl"
    packed.write_bytes(gzip.compress(json.dumps(
        click("e2", "a1", "app_opened", "2026-10-02T10:00:00Z")).encode() * 40)[:60])
    (tiny.root / "raw" / "clickstream" / "2026-10-03.jsonl").mkdir()
    tiny.bookings("2026-10-01", "b1,c1,s1,Berlin,hair,2026-10-05T10:00:00,10,EUR,created,,,,"
                  "2026-10-01T10:00:00")
    (tiny.root / "raw" / "bookings" / "2026-10-02.csv").symlink_to(tiny.root / "gone.csv")
    cfg = load_config(tiny.config)
    con = connect()
    for source in cfg.sources.values():
        ingest.load_range(con, source, dt.date(2026, 9, 30), dt.date(2026, 10, 3))
    assert con.execute("select event_id from raw_clickstream").fetchall() == [("e1",)]
    assert con.execute("select booking_id from raw_bookings").fetchall() == [("b1",)]
    got = {(s, Path(f).name): why for s, f, why in con.execute(
        "select source, source_file, reason from rejected_files").fetchall()}
    assert set(got) == {("clickstream", "2026-10-02.jsonl"), ("clickstream", "2026-10-03.jsonl"),
                        ("bookings", "2026-10-02.csv")}
    assert got[("clickstream", "2026-10-03.jsonl")] == "a directory, not a file"
    assert got[("bookings", "2026-10-02.csv")].startswith("a broken link to ")
    assert got[("clickstream", "2026-10-02.jsonl")].startswith("a broken gzip stream")


# --------------------------------------------------------------------------- item 5


def late_project(tiny: TinyProject, late_days: int) -> None:
    """The clickstream with `late_days` (above max_days_after_export, 1)."""
    text = tiny.config.read_text()
    anchor = "  clickstream:\n"
    start = text.index(anchor)
    i = text.index("    late_days: 1\n", start)
    tiny.config.write_text(text[:i] + f"    late_days: {late_days}\n"
                           + text[i + len("    late_days: 1\n"):])


def late_click(mid: str, ts: str) -> dict:
    # received when it happened: no clock-skew correction moves it
    return click(mid, "a1", "app_opened", ts, received=ts)


def test_late_rows_of_the_earliest_file_have_a_partition(tiny: TinyProject) -> None:
    late_project(tiny, 3)
    first_file = tiny.clicks("2026-10-05", late_click("e1", "2026-10-02T10:00:00Z"),
                             late_click("e2", "2026-10-04T10:00:00Z"),
                             late_click("e3", "2026-10-05T10:00:00Z"))
    tiny.clicks("2026-10-06", late_click("e4", "2026-10-06T10:00:00Z"))
    cfg = load_config(tiny.config)
    # 5 October back by late_days (3); 6 October on by max_days_after_export (1)
    assert cfg.data_range() == (dt.date(2026, 10, 2), dt.date(2026, 10, 7))
    con = connect()
    source = cfg.sources["clickstream"]
    ingest.load_range(con, source, *cfg.data_range())
    assert con.execute("select event_id, partition_date from raw_clickstream order by 1"
                       ).fetchall() == [("e1", dt.date(2026, 10, 2)), ("e2", dt.date(2026, 10, 4)),
                                        ("e3", dt.date(2026, 10, 5)), ("e4", dt.date(2026, 10, 6))]
    assert con.execute("select count(*) from quarantine").fetchone() == (0,)
    assert accounted(con) == first_file.read_bytes().count(b"\n") + 1


def test_a_row_for_a_day_outside_the_run_is_said_until_that_day_is_run(
        tiny: TinyProject) -> None:
    d1, d2 = dt.date(2026, 10, 1), dt.date(2026, 10, 2)
    tiny.clicks("2026-10-01", late_click("e1", "2026-10-01T10:00:00Z"))
    f2 = tiny.clicks("2026-10-02", late_click("e2", "2026-10-01T23:00:00Z"),
                     late_click("e3", "2026-10-02T08:00:00Z"), "{broken")
    source = load_config(tiny.config).sources["clickstream"]
    con = connect()
    # only 2 October: file 2 October holds e2 for 1 October, which is not loaded by this run
    ingest.load_range(con, source, d2, d2)
    assert con.execute("select event_id from raw_clickstream").fetchall() == [("e3",)]
    kept = con.execute("select partition_date, source_file, source_line, kind, reason "
                       "from quarantine order by source_file, source_line").fetchall()
    assert kept == [
        (d1, str(tiny.root / "raw" / "clickstream" / "2026-10-01.jsonl"), 1, "outside_range",
         "belongs to day 2026-10-01, outside this run's range 2026-10-02 … 2026-10-02; run "
         "that day to load it (journeys run --start 2026-10-01 --end 2026-10-01)"),
        (d1, str(f2), 1, "outside_range",
         "belongs to day 2026-10-01, outside this run's range 2026-10-02 … 2026-10-02; run "
         "that day to load it (journeys run --start 2026-10-01 --end 2026-10-01)"),
        (d2, str(f2), 3, "rejected", "malformed JSON line")]
    # every physical line of the two files read is loaded or quarantined with a reason
    lines = sum(p.read_bytes().count(b"\n") for p in (tiny.root / "raw" / "clickstream").iterdir())
    assert con.execute("select (select count(*) from raw_clickstream) + "
                       "(select count(*) from quarantine)").fetchone() == (lines,)
    assert ingest.outside_range_rows(con, source) == [(d1, 2)]
    assert ingest.reconciliation_problems(con, source) == []
    # running 1 October loads them, and the notes go
    ingest.load_range(con, source, d1, d1)
    assert con.execute("select event_id from raw_clickstream order by 1").fetchall() == [
        ("e1",), ("e2",), ("e3",)]
    assert ingest.outside_range_rows(con, source) == []
    # running 2 October again says nothing: 1 October's rows are loaded
    ingest.load_range(con, source, d2, d2)
    assert ingest.outside_range_rows(con, source) == []
    assert con.execute("select (select count(*) from raw_clickstream) + "
                       "(select count(*) from quarantine)").fetchone() == (lines,)
    assert ingest.reconciliation_problems(con, source) == []


def test_a_range_longer_than_a_chunk_notes_nothing_inside_it(
        tiny: TinyProject, monkeypatch: pytest.MonkeyPatch) -> None:
    # every day's file holds a late row of the day before: inside one run's range, chunks
    # (CHUNK_DAYS days each) must leave those to the chunk that loads their day; a pass's
    # byte budget of 1 makes every pass the shortest, so the range takes several
    monkeypatch.setattr(ingest, "CHUNK_BYTES", 1)
    days = [dt.date(2026, 10, 1) + dt.timedelta(days=i) for i in range(2 * ingest.CHUNK_DAYS + 1)]
    for i, day in enumerate(days):
        before = day - dt.timedelta(days=1)
        tiny.clicks(day.isoformat(), late_click(f"a{i}", f"{day}T12:00:00Z"),
                    late_click(f"b{i}", f"{before}T23:30:00Z"))
    source = load_config(tiny.config).sources["clickstream"]
    con = connect()
    ingest.load_range(con, source, days[0], days[-1])
    # b0 belongs to 30 September, before the range: the one row said
    assert ingest.outside_range_rows(con, source) == [(dt.date(2026, 9, 30), 1)]
    assert con.execute("select count(*) from raw_clickstream").fetchone() == (2 * len(days) - 1,)
