"""Ingestion on the Spark engine (issue 14): the sample's sources, and a small set of dirty files,
loaded by `transforms.ingest.load_range` on a SparkEngine (files read by Spark's readers,
transforms/spark_ingest.py) and on DuckDB give the same raw tables, quarantine rows with their
reasons, rejected files and reconciliation counts. DuckDB's result is the reference; the load
timestamps (loaded_at, quarantined_at, rejected_at) are left out of the comparison.

Needs pyspark (the `spark` extra) and Java 17; skipped with the reason otherwise. One local
Spark session for the module (about 20 s to start) and a few minutes.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import time
import uuid
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import SAMPLE_CONFIG
from tests.e2e.conftest import sample_config
from tests.engine.conftest import SPARK_MISSING, same_rows
from transforms import ingest
from transforms.definitions import create_macros
from transforms.engine import DuckDBEngine
from transforms.ingest_periods import build_ingest_reconciliation_periods
from transforms.sources import load_config
from transforms.sqlutil import ident

_MISSING = SPARK_MISSING

pytestmark = [pytest.mark.spark, pytest.mark.slow,
              pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")]

SOURCES = ("clickstream", "bookings", "payments")
STAMPS = {"loaded_at", "quarantined_at", "rejected_at"}
TABLES = ("quarantine", "rejected_files", "ingest_reconciliation",
          "ingest_reconciliation_periods")
RAW = SAMPLE_CONFIG.parent / "raw"


@pytest.fixture(scope="module")
def spark():
    from transforms.spark_engine import local_session

    session = local_session("observed-journeys-ingest-tests")
    yield session
    session.stop()


def _duckdb() -> DuckDBEngine:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    create_macros(con)
    return DuckDBEngine(con)


def _dirty_files(root: Path) -> Path:
    """A config over a few sample files and planted dirt (worked out in `test_dirty_...`):

    clickstream: 2026-10-01.jsonl = the sample's first 20 lines, then a line that is not JSON,
    a copy of line 1 (a duplicate), line 2 with its timestamp made 'not a time', a blank line,
    line 3 with CRLF and an id that is an object; 2026-10-02.jsonl is gzip bytes (its sample
    day's first 15 lines); 2026-10-03.jsonl holds a byte that is not UTF-8 on its line 2;
    2026-10-04.jsonl a copy of line 6 of the first file, timed on its own day.
    bookings: 2026-10-01.csv = the sample's header and first 20 rows, then a short row and a
    copy of row 1; 2026-10-02.csv holds a quoted field with a line break (the csv module's
    path). payments: a directory named like an export file (a rejected file) and one day."""
    for src in SOURCES:
        (root / "raw" / src).mkdir(parents=True)
    click = (RAW / "clickstream" / "2026-10-01.jsonl").read_text().splitlines()
    rec = json.loads(click[2])
    rec["messageId"] = {"id": 1}
    lines = [*click[:20], '{"messageId": "broken', click[0],
             click[1].replace(json.loads(click[1])["timestamp"], "not a time"), "   ",
             json.dumps(rec)]
    (root / "raw" / "clickstream" / "2026-10-01.jsonl").write_bytes(
        ("\n".join(lines[:-1]) + "\n" + lines[-1] + "\r\n").encode())
    day2 = (RAW / "clickstream" / "2026-10-02.jsonl").read_text().splitlines()[:15]
    (root / "raw" / "clickstream" / "2026-10-02.jsonl").write_bytes(
        gzip.compress(("\n".join(day2) + "\n").encode()))
    day3 = (RAW / "clickstream" / "2026-10-03.jsonl").read_bytes().splitlines()[:5]
    day3[1] = day3[1].replace(b'"event"', b'"ev\xe9nt"', 1)
    (root / "raw" / "clickstream" / "2026-10-03.jsonl").write_bytes(b"\n".join(day3) + b"\n")
    book = (RAW / "bookings" / "2026-10-01.csv").read_text().splitlines()
    (root / "raw" / "bookings" / "2026-10-01.csv").write_text(
        "\n".join([*book[:21], "bk_short,cus_1,sal_1", book[1]]) + "\n")
    row = book[2].split(",")
    row[11] = '"too late,\nand rude"'
    (root / "raw" / "bookings" / "2026-10-02.csv").write_text(
        "\n".join([book[0], ",".join(row), book[3]]) + "\n")
    # a later copy of line 6 in another day: loaded when its day is run first, moved to
    # quarantine when the original's day is run after it
    copy = json.loads(click[5])
    copy["timestamp"] = copy["receivedAt"] = "2026-10-04T10:00:00Z"
    (root / "raw" / "clickstream" / "2026-10-04.jsonl").write_text(json.dumps(copy) + "\n")
    pay = (RAW / "payments" / "2026-10-01.csv").read_text().splitlines()
    (root / "raw" / "payments" / "2026-10-01.csv").write_text("\n".join(pay[:30]) + "\n")
    (root / "raw" / "payments" / "2026-10-02.csv").mkdir()
    config = sample_config(root)
    text = config.read_text()
    for src in SOURCES:
        text = text.replace(f"path: {RAW / src}/", f"path: {root / 'raw' / src}/")
    config.write_text(text)
    return config


def _records_in_files(source: str) -> int:
    """Records in the sample's export files, counted without the loader: JSON lines, CSV
    records after the header."""
    total = 0
    for path in sorted((RAW / source).iterdir()):
        if path.suffix == ".jsonl":
            total += len(path.read_text().split("\n")[:-1])
        else:
            with path.open(newline="") as fh:
                total += sum(1 for _ in csv.reader(fh)) - 1
    return total


def _load(engine, config: Path) -> tuple[dict, float]:
    cfg = load_config(config)
    first, last = cfg.data_range()
    stats, started = {}, time.perf_counter()
    for name in SOURCES:
        source = cfg.sources[name]
        stats[name] = [
            ingest.load_range(engine, source, first, last),
            ingest.rejected_files(engine, source),
            ingest.outside_range_rows(engine, source),
            ingest.reconciliation_problems(engine, source),
        ]
    build_ingest_reconciliation_periods(engine)
    return stats, time.perf_counter() - started


def _rows(engine, table: str) -> tuple[list[str], list[tuple]]:
    cols = [c for c, _ in engine.columns(table) if c not in STAMPS]
    got = engine.query(f"select {', '.join(ident(c) for c in cols)} from {ident(table)}")
    return cols, list(zip(*[c.to_pylist() for c in got.columns], strict=True))


def _compare(duck, eng) -> dict[str, int]:
    sizes = {}
    for table in (*(f"raw_{s}" for s in SOURCES), *TABLES):
        cols_d, want = _rows(duck, table)
        cols_s, got = _rows(eng, table)
        assert cols_d == cols_s, table
        if not same_rows(want, got):
            extra = set(map(repr, got)) - set(map(repr, want))
            missing = set(map(repr, want)) - set(map(repr, got))
            raise AssertionError(f"{table}: {len(want)} rows on DuckDB, {len(got)} on Spark; "
                                 f"only on DuckDB {sorted(missing)[:3]}, "
                                 f"only on Spark {sorted(extra)[:3]}")
        sizes[table] = len(want)
    return sizes


@pytest.fixture(scope="module")
def sample_loads(spark, tmp_path_factory: pytest.TempPathFactory):
    from transforms.spark_engine import SparkEngine

    config = sample_config(tmp_path_factory.mktemp("spark_ingest_sample"))
    duck, eng = _duckdb(), SparkEngine(spark)
    on_duckdb, duck_s = _load(duck, config)
    on_spark, spark_s = _load(eng, config)
    print(f"\nsample load: DuckDB {duck_s:.1f} s, Spark {spark_s:.1f} s")
    yield duck, eng, on_duckdb, on_spark
    eng.close()
    duck.close()


def test_sample_loads_the_same_tables_on_spark(sample_loads) -> None:
    duck, eng, on_duckdb, on_spark = sample_loads
    sizes = _compare(duck, eng)
    assert min(sizes[f"raw_{s}"] for s in SOURCES) > 0  # (the sample rejects no file)
    assert on_spark == on_duckdb  # stats per partition, rejected files, outside range, problems


def test_sample_counts_reconcile_on_spark(sample_loads) -> None:
    _, eng, _, on_spark = sample_loads
    truth = json.loads((SAMPLE_CONFIG.parent / "ground_truth.json").read_text())["dirt"]
    for name in SOURCES:
        stats, rejected, outside, problems = on_spark[name]
        assert problems == [] and rejected == [] and outside == []
        assert all(s.reconciles for s in stats)
        assert sum(s.rows_read for s in stats) == _records_in_files(name)
        assert sum(s.rows_duplicate for s in stats) == truth[name]["duplicate"]
        loaded = eng.query(f"select count(*) as n from raw_{name}").to_pylist()[0]["n"]
        assert loaded == sum(s.rows_loaded for s in stats)


def test_dirty_files_give_the_same_rows_and_reasons_on_spark(spark, tmp_path: Path) -> None:
    from transforms.spark_engine import SparkEngine

    config = _dirty_files(tmp_path)
    duck, eng = _duckdb(), SparkEngine(spark)
    eng.close()  # one session for the module: no views of the sample's loads
    try:
        on_duckdb, _ = _load(duck, config)
        on_spark, _ = _load(eng, config)
        _compare(duck, eng)
        assert on_spark == on_duckdb
        reasons = eng.query("select source, source_file, source_line, reason, kind "
                            "from quarantine").to_pylist()
    finally:
        eng.close()
        duck.close()
    by = {(r["source"], Path(r["source_file"]).name, r["source_line"]): (r["kind"], r["reason"])
          for r in reasons}
    # the planted dirt, worked out from the files written above
    assert by[("clickstream", "2026-10-01.jsonl", 21)] == ("rejected", "malformed JSON line")
    assert by[("clickstream", "2026-10-01.jsonl", 22)][0] == "duplicate"
    assert by[("clickstream", "2026-10-01.jsonl", 22)][1].startswith("duplicate of ")
    assert by[("clickstream", "2026-10-01.jsonl", 23)] == (
        "rejected", "bad timestamp in client_ts: not a time")
    assert by[("clickstream", "2026-10-01.jsonl", 25)][1].startswith(
        "id is not text or a number in event_id: ")
    assert by[("clickstream", "2026-10-03.jsonl", 2)] == (
        "rejected", "undecodable bytes: the file is not utf-8")
    assert by[("bookings", "2026-10-01.csv", 22)] == (
        "rejected", "malformed CSV row: expected 13 fields, got 3")
    assert by[("bookings", "2026-10-01.csv", 23)][0] == "duplicate"
    stats, rejected, _, problems = on_spark["payments"]
    assert [Path(f).name for f, _, _ in rejected] == ["2026-10-02.csv"]
    assert rejected[0][2] == "a directory, not a file"
    assert problems == [] and all(s.reconciles for s in stats)
    click = on_spark["clickstream"][0]
    # 20 + 4 records in the first file (its blank line is none), the gzip file's 15, 5, 1
    assert sum(s.rows_read for s in click) == 24 + 15 + 5 + 1
    assert by[("clickstream", "2026-10-04.jsonl", 1)][1].startswith("conflicting duplicate of ")


def test_days_loaded_out_of_order_give_the_same_tables_on_spark(spark, tmp_path: Path) -> None:
    """The last day alone first (rows of the files it reads for other days are kept as
    outside its range), then the days before it: the later copy loaded with the last day moves
    to quarantine (`_demote_later_copies`), on both engines alike."""
    from transforms.spark_engine import SparkEngine

    config = _dirty_files(tmp_path)
    cfg = load_config(config)
    first, last = cfg.data_range()
    source = cfg.sources["clickstream"]
    copy_day = dt.date(2026, 10, 4)
    duck, eng = _duckdb(), SparkEngine(spark)
    eng.close()  # one session for the module: no views of the sample's loads
    try:
        seen = {}
        for e in (duck, eng):
            ingest.load_range(e, source, copy_day, last)
            outside = ingest.outside_range_rows(e, source)
            stats = ingest.load_range(e, source, first, copy_day - dt.timedelta(days=1))
            seen[e.name] = (outside, stats, ingest.outside_range_rows(e, source),
                            ingest.reconciliation_problems(e, source))
        for table in ("raw_clickstream", "quarantine", "ingest_reconciliation"):
            assert same_rows(_rows(duck, table)[1], _rows(eng, table)[1]), table
        demoted = eng.query("select count(*) as n from quarantine where kind = 'duplicate' "
                            "and source_file like '%2026-10-04.jsonl'").to_pylist()
    finally:
        eng.close()
        duck.close()
    assert seen["spark"] == seen["duckdb"]
    outside, _, after, problems = seen["spark"]
    # loading 10-04 alone reads file 10-03, whose rows belong to 10-03: kept aside until run
    assert outside and all(day < copy_day for day, _ in outside)
    assert after == [] and problems == []
    assert demoted == [{"n": 1}]


PARQUET_SOURCE = """
  orders:
    path: orders/*.parquet
    format: parquet
    columns: {order_id: order_id, customer: customer, placed: placed, amount: amount,
              channel: meta.channel, details: meta, ref: ref}
    types: {placed: timestamp, amount: decimal, details: json}
    required: [order_id, customer, placed]
    event_time: placed
    id_columns: [order_id]
    event:
      event_name: {default: order_placed}
      customer: customer
      columns: {order_id: order_id, amount: amount}
"""


def _one_source(root: Path, source: str) -> Path:
    """A project of one source (its journey map is not read by a load)."""
    config = root / "sources.yaml"
    config.write_text("warehouse: wh.duckdb\njourney_map: map.yaml\n"
                      "events:\n  columns: {order_id: string, amount: decimal}\n"
                      f"sources:{source.rstrip()}\n")
    return config


def _load_one(engine, config: Path) -> list:
    cfg = load_config(config)
    source = cfg.sources["orders"]
    first, last = cfg.data_range()
    return [ingest.load_range(engine, source, first, last), ingest.rejected_files(engine, source),
            ingest.reconciliation_problems(engine, source)]


def _both(spark, config: Path, skip: dict[str, set[str]]) -> tuple[list, list, dict]:
    """Load `config` on DuckDB and on Spark; every table compared (the columns in `skip` left
    out of a table's comparison); the Spark side's load and its quarantine rows."""
    from transforms.spark_engine import SparkEngine

    duck, eng = _duckdb(), SparkEngine(spark)
    eng.close()  # one session for the module: no views of other tests' loads
    try:
        on_duckdb, on_spark = _load_one(duck, config), _load_one(eng, config)
        for table in ("raw_orders", "quarantine", "rejected_files", "ingest_reconciliation"):
            cols, want = _rows(duck, table)
            assert cols == _rows(eng, table)[0], table
            keep = [c for c in cols if c not in skip.get(table, set())]
            pick = [cols.index(c) for c in keep]
            got = [tuple(r[i] for i in pick) for r in _rows(eng, table)[1]]
            assert same_rows([tuple(r[i] for i in pick) for r in want], got), table
        quarantine = eng.query("select source_file, source_line, raw_record, reason "
                               "from quarantine").to_pylist()
        raw = eng.query("select order_id, customer, placed, amount, channel "
                        "from raw_orders order by order_id").to_pylist()
        details = (eng.query("select details, ref from raw_orders order by order_id").to_pylist()
                   if "ref" in dict(eng.columns("raw_orders")) else None)
    finally:
        eng.close()
        duck.close()
    for stats, _rejected, problems in (on_duckdb, on_spark):
        assert problems == [] and all(s.reconciles for s in stats)
    return on_duckdb, on_spark, {"quarantine": quarantine, "raw": raw, "details": details}


REF = uuid.UUID("12345678-9abc-4def-8123-456789abcdef")


def test_parquet_files_give_the_same_rows_and_reasons_on_spark(spark, tmp_path: Path) -> None:
    """Parquet read by Spark's reader: native timestamps (with and without a time zone), a
    field inside a struct, a column one file lacks (schemas merged by name), missing required
    values and a duplicate to quarantine, a UUID and nanosecond timestamps (which Spark's
    reader refuses: read by pyarrow), and a file with Parquet's markers but a corrupt
    footer, rejected alone. The quarantine's `raw_record` is each engine's JSON of the row, so
    it is compared as the values it holds."""
    orders = tmp_path / "orders"
    orders.mkdir()
    utc = pa.timestamp("us", tz="UTC")
    meta = pa.struct([("channel", pa.string())])
    pq.write_table(pa.table({
        "order_id": ["o1", "o2", "o3", "o1"],
        "customer": ["c1", None, "c3", "c1"],
        "placed": pa.array([dt.datetime(2024, 5, 1, 9, 0, 0, 500000), dt.datetime(2024, 5, 1, 10),
                            None, dt.datetime(2024, 5, 1, 9, 0, 0, 500000)], utc),
        "amount": [1.25, 2.0, 3.0, 1.25],
        "meta": pa.array([{"channel": "app"}, {"channel": "web"}, None, {"channel": "app"}],
                         meta)}), orders / "2024-05-01.parquet")
    pq.write_table(pa.table({   # no amount column; types Spark's reader refuses
        "order_id": ["o4"], "customer": ["c4"],
        "placed": pa.array([dt.datetime(2024, 5, 2, 8)], pa.timestamp("ns")),
        "meta": pa.array([{"channel": "web"}], meta),
        "ref": pa.array([REF.bytes], pa.uuid())}), orders / "2024-05-02.parquet")
    pq.write_table(pa.table({   # naive millisecond timestamps
        "order_id": ["o5"], "customer": ["c5"],
        "placed": pa.array([dt.datetime(2024, 5, 2, 9, 30)], pa.timestamp("ms"))}),
        orders / "2024-05-02b.parquet")
    (orders / "2024-05-03.parquet").write_bytes(b"PAR1" + b"\0" * 64 + b"PAR1")
    _, on_spark, seen = _both(spark, _one_source(tmp_path, PARQUET_SOURCE),
                              {"quarantine": {"raw_record"}, "rejected_files": {"reason"}})
    assert seen["raw"] == [
        {"order_id": "o1", "customer": "c1", "placed": dt.datetime(2024, 5, 1, 9, 0, 0, 500000),
         "amount": Decimal("1.25"), "channel": "app"},
        {"order_id": "o4", "customer": "c4", "placed": dt.datetime(2024, 5, 2, 8),
         "amount": None, "channel": "web"},
        {"order_id": "o5", "customer": "c5", "placed": dt.datetime(2024, 5, 2, 9, 30),
         "amount": None, "channel": None}]
    assert [(d["details"] and json.loads(d["details"]), d["ref"]) for d in seen["details"]] == [
        ({"channel": "app"}, None), ({"channel": "web"}, str(REF)), (None, None)]
    by = {(Path(r["source_file"]).name, r["source_line"]): r for r in seen["quarantine"]}
    assert by[("2024-05-01.parquet", 2)]["reason"] == "missing required field: customer"
    assert by[("2024-05-01.parquet", 3)]["reason"] == "missing required field: placed"
    assert by[("2024-05-01.parquet", 4)]["reason"].startswith("duplicate of ")
    record = json.loads(by[("2024-05-01.parquet", 2)]["raw_record"])
    assert (record["order_id"], record["customer"], record["amount"],
            record["meta"]) == ("o2", None, 2.0, {"channel": "web"})
    stats, rejected, _ = on_spark
    assert [(Path(f).name, n) for f, n, _ in rejected] == [("2024-05-03.parquet", 0)]
    reason = rejected[0][2]
    assert reason.startswith("cannot be read: ") and "footer" in reason, reason
    assert not any(w in reason for w in ("org.apache", "Exception", "SQLSTATE", "\n")), reason
    assert sum(s.rows_read for s in stats) == 6


def test_xes_logs_give_the_same_rows_and_reasons_on_spark(spark, tmp_path: Path) -> None:
    """XES (parsed in Python on both engines): trace attributes as `case:<key>`, an event
    without a timestamp quarantined, a gzip log beside a plain one, and a log cut off in the
    middle rejected alone with the parser's reason."""
    logs = tmp_path / "logs"
    logs.mkdir()

    def log(*traces: str) -> str:
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<log xes.version="1.0">'
                + "".join(traces) + "</log>\n")

    def trace(case: str, *events: tuple[str, str | None]) -> str:
        body = "".join(
            f'<event><string key="concept:name" value="{a}"/>'
            + (f'<date key="time:timestamp" value="{t}"/>' if t else "") + "</event>"
            for a, t in events)
        return f'<trace><string key="concept:name" value="{case}"/>{body}</trace>'

    (logs / "2011-01-01.xes").write_text(log(
        trace("case1", ("register", "2011-01-01T10:00:00.000+01:00"),
              ("pay &amp; close", "2011-01-02T10:00:00.000+01:00")),  # (XML-escaped)
        trace("case2", ("register", None))))
    (logs / "2011-01-02.xes.gz").write_bytes(gzip.compress(log(
        trace("case3", ("register", "2011-01-02T12:00:00.000Z"))).encode()))
    (logs / "2011-01-03.xes").write_text(log(trace("case4", ("register", "2011-01-03T09:00"
                                                                          ":00Z")))[:120])
    source = """
  orders:
    path: logs/*.xes*
    format: xes
    columns: {order_id: "case:concept:name", customer: "case:concept:name",
              activity: "concept:name", placed: "time:timestamp", amount: "cost:total",
              channel: "org:resource"}
    types: {placed: timestamp, amount: decimal}
    required: [order_id, placed]
    event_time: placed
    id_columns: [order_id, activity, placed]
    event: {event_name: activity, customer: customer}
"""
    on_duckdb, on_spark, seen = _both(spark, _one_source(tmp_path, source), {})
    assert on_spark[1] == on_duckdb[1]  # the rejected log and its reason, the same
    assert [(o["order_id"], o["placed"]) for o in seen["raw"]] == [
        ("case1", dt.datetime(2011, 1, 1, 9)), ("case1", dt.datetime(2011, 1, 2, 9)),
        ("case3", dt.datetime(2011, 1, 2, 12))]
    (q,) = seen["quarantine"]
    assert (Path(q["source_file"]).name, q["source_line"], q["reason"]) == (
        "2011-01-01.xes", 3, "missing required field: placed")
    assert json.loads(q["raw_record"]) == {"case:concept:name": "case2",
                                           "concept:name": "register", "time:timestamp": None}
    ((name, _, reason),) = [(Path(f).name, n, r) for f, n, r in on_spark[1]]
    assert name == "2011-01-03.xes" and reason.startswith("cannot be read: ")
