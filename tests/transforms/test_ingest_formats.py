"""Ingesting exports of other shapes: formats, reader options, time formats, files without a
date in their name. Each test writes its own small export; expected rows are worked out by hand.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from transforms import ingest
from transforms.errors import ConfigError
from transforms.sources import load_config

ORDERS = """
  orders:
    path: '{path}'
    format: {fmt}
    columns: {{order_id: {oid}, customer: {cust}, placed: {placed}, amount: {amount}}}
    types: {{placed: timestamp, amount: decimal}}
    required: [order_id, customer, placed]
    event_time: placed
    id_columns: [order_id]
    event:
      event_name: {{default: order_placed}}
      customer: customer
      columns: {{order_id: order_id, amount: amount}}
"""


def project(root: Path, source: str, extra: str = "") -> Path:
    """A one-source project config (its journey map is not read by these tests)."""
    config = root / "sources.yaml"
    config.write_text("warehouse: wh.duckdb\njourney_map: map.yaml\n"
                      "events:\n  columns: {order_id: string, amount: decimal}\n"
                      f"sources:{source.rstrip()}\n{extra}")
    return config


def orders(root: Path, name: str, *, fmt: str = "csv", oid: str = "order_id",
           cust: str = "customer", placed: str = "placed", amount: str = "amount",
           extra: str = "") -> Path:
    return project(root, ORDERS.format(path=name, fmt=fmt, oid=oid, cust=cust, placed=placed,
                                       amount=amount) + extra)


def load_all(config: Path) -> tuple[duckdb.DuckDBPyConnection, list]:
    cfg = load_config(config)
    src = cfg.sources["orders"]
    first, last = cfg.data_range()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    stats = ingest.load_range(con, src, first, last)
    return con, stats


def raw_rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("select order_id, customer, placed, amount, partition_date "
                       "from raw_orders order by order_id").fetchall()


def test_whitespace_separated_no_header_yyyymmdd_one_file_for_all_history(tmp_path) -> None:
    # one history file, no date in its name, 1997-98: partitions come from the event days
    (tmp_path / "history.txt").write_text(
        "o1   c1  19970105  12.50\n"
        "o2\tc1\t19980301\t7.00\n"
        "o3   c2  19980231  3.00\n")  # 31 February: no such day
    config = orders(tmp_path, "history.txt", oid="column0", cust="column1", placed="column2",
                    amount="column3",
                    extra="    delimiter: whitespace\n    header: false\n"
                          "    time_format: '%Y%m%d'\n")
    cfg = load_config(config)
    # o3 is rejected; its partition is the file's first valid event day
    assert cfg.data_range() == (dt.date(1997, 1, 5), dt.date(1998, 3, 1))
    con, stats = load_all(config)
    assert raw_rows(con) == [
        ("o1", "c1", dt.datetime(1997, 1, 5), 12.5, dt.date(1997, 1, 5)),
        ("o2", "c1", dt.datetime(1998, 3, 1), 7.0, dt.date(1998, 3, 1)),
    ]
    assert con.execute("select partition_date, source_line, reason from quarantine").fetchall(
    ) == [(dt.date(1997, 1, 5), 3, "bad timestamp in placed: 19980231")]
    assert sum(s.rows_read for s in stats) == 3  # every physical line accounted for
    assert len(stats) == (dt.date(1998, 3, 1) - dt.date(1997, 1, 5)).days + 1


def test_semicolons_latin1_and_epoch_milliseconds(tmp_path) -> None:
    text = "order_id;customer;placed;amount\nö1;Jürgen;1704067200000;1,5\nö2;Zoë;1704153600500;2\n"
    (tmp_path / "orders.csv").write_bytes(text.encode("latin-1"))
    config = orders(tmp_path, "orders.csv",
                    extra="    delimiter: ';'\n    encoding: latin-1\n"
                          "    time_format: epoch_ms\n")
    con, _ = load_all(config)
    # 1704067200 s = 2024-01-01 00:00 UTC; "1,5" is not a decimal number
    assert con.execute("select order_id, customer, placed from raw_orders").fetchall() == [
        ("ö2", "Zoë", dt.datetime(2024, 1, 2, 0, 0, 0, 500000))]
    assert con.execute("select reason from quarantine").fetchall() == [
        ("not a number in amount: 1,5",)]


def test_undecodable_bytes_are_quarantined_not_silently_replaced(tmp_path) -> None:
    (tmp_path / "orders.csv").write_bytes(
        b"order_id,customer,placed,amount\no1,J\xfcrgen,2024-01-01T10:00:00Z,1\n"
        b"o2,Ann,2024-01-01T11:00:00Z,2\n")
    con, _ = load_all(orders(tmp_path, "orders.csv"))  # declared utf-8 (the default)
    assert [r[0] for r in raw_rows(con)] == ["o2"]
    assert con.execute("select reason from quarantine").fetchone() == (
        "undecodable bytes: the file is not utf-8",)


def test_tsv_with_byte_order_mark_and_strftime_in_a_time_zone(tmp_path) -> None:
    (tmp_path / "orders.tsv").write_text(
        "\ufefforder_id\tcustomer\tplaced\tamount\no1\tc1\t31/03/2024 02:30\t5\n"
        "o2\tc1\t30/03/2024 23:30\t6\n")
    config = orders(tmp_path, "orders.tsv", fmt="tsv",
                    extra="    time_format: '%d/%m/%Y %H:%M'\n    timezone: Europe/Berlin\n")
    con, _ = load_all(config)
    # Berlin is UTC+1 before 02:00 on 31 March 2024 and UTC+2 after; 02:30 does not exist
    # that night, DuckDB reads it as 03:30 CEST = 01:30 UTC
    assert [(r[0], r[2]) for r in raw_rows(con)] == [
        ("o1", dt.datetime(2024, 3, 31, 1, 30)), ("o2", dt.datetime(2024, 3, 30, 22, 30))]


def test_gzipped_json_lines(tmp_path) -> None:
    with gzip.open(tmp_path / "orders.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"id": "o1", "who": {"id": "c1"}, "at": 1704067200,
                             "total": 3}) + "\n")
        fh.write("{not json\n")
    config = orders(tmp_path, "orders.jsonl.gz", fmt="jsonl", oid="id", cust="who.id",
                    placed="at", amount="total", extra="    time_format: epoch_s\n")
    con, stats = load_all(config)
    assert raw_rows(con) == [("o1", "c1", dt.datetime(2024, 1, 1), 3.0, dt.date(2024, 1, 1))]
    assert con.execute("select source_line, reason from quarantine").fetchall() == [
        (2, "malformed JSON line")]
    assert sum(s.rows_read for s in stats) == 2


def test_parquet_with_native_timestamps(tmp_path) -> None:
    table = pa.table({"order_id": ["o1", "o2"], "customer": ["c1", None],
                      "placed": pa.array([dt.datetime(2024, 5, 1, 9), dt.datetime(2024, 5, 2)],
                                         pa.timestamp("us")),
                      "amount": [1.25, 2.0]})
    pq.write_table(table, tmp_path / "orders.parquet")
    con, _ = load_all(orders(tmp_path, "orders.parquet", fmt="parquet"))
    assert raw_rows(con) == [("o1", "c1", dt.datetime(2024, 5, 1, 9), 1.25,
                              dt.date(2024, 5, 1))]
    line, raw, reason = con.execute("select source_line, raw_record, reason "
                                    "from quarantine").fetchone()
    assert (line, reason) == (2, "missing required field: customer")
    assert json.loads(raw)["order_id"] == "o2"


def test_a_parquet_file_lacking_a_field_has_nulls_whichever_files_are_read_with_it(
        tmp_path) -> None:
    """Schemas merge by name, as a JSON line lacking a key: a day's file without the optional
    `amount` loads with no amount, one without the required `customer` is quarantined for it,
    also when each file is read on its own (a corrupt file among them: the files are then
    read one at a time, and only the corrupt one is rejected)."""
    (tmp_path / "orders").mkdir()

    def day(name: str, **cols: list) -> None:
        pq.write_table(pa.table(cols), tmp_path / "orders" / f"{name}.parquet")

    day("2024-05-01", order_id=["o1"], customer=["c1"], amount=[1.5],
        placed=pa.array([dt.datetime(2024, 5, 1, 9)], pa.timestamp("us")))
    day("2024-05-02", order_id=["o2"], customer=["c2"],
        placed=pa.array([dt.datetime(2024, 5, 2, 9)], pa.timestamp("us")))
    day("2024-05-03", order_id=["o3"], amount=[3.0],
        placed=pa.array([dt.datetime(2024, 5, 3, 9)], pa.timestamp("us")))
    (tmp_path / "orders" / "2024-05-04.parquet").write_bytes(b"PAR1" + b"\0" * 64 + b"PAR1")
    cfg = load_config(orders(tmp_path, "orders/*.parquet", fmt="parquet"))
    src = cfg.sources["orders"]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    ingest.load_range(con, src, dt.date(2024, 5, 1), dt.date(2024, 5, 4))
    assert raw_rows(con) == [
        ("o1", "c1", dt.datetime(2024, 5, 1, 9), 1.5, dt.date(2024, 5, 1)),
        ("o2", "c2", dt.datetime(2024, 5, 2, 9), None, dt.date(2024, 5, 2))]
    assert con.execute("select source_file, reason from quarantine").fetchall() == [
        (str(tmp_path / "orders" / "2024-05-03.parquet"), "missing required field: customer")]
    ((name, rows, reason),) = ingest.rejected_files(con, src)
    assert (Path(name).name, rows) == ("2024-05-04.parquet", 0)
    assert reason.startswith("cannot be read: ") and "column" not in reason


def test_a_parquet_struct_or_list_mapped_to_a_json_column_loads_as_its_json(tmp_path) -> None:
    """A json column from Parquet: a struct or a list is its JSON, a text field holding JSON
    text stays that text (as a JSON-lines field would give them)."""
    (tmp_path / "orders").mkdir()
    placed = pa.array([dt.datetime(2024, 5, 1, 9)], pa.timestamp("us"))
    pq.write_table(pa.table({"order_id": ["o1"], "customer": ["c1"], "placed": placed,
                             "props": [{"a": 1, "b": "x"}], "tags": [[1, 2]]}),
                   tmp_path / "orders" / "2024-05-01.parquet")
    pq.write_table(pa.table({"order_id": ["o2"], "customer": ["c2"], "placed": placed,
                             "props": ['{"c": 2}'], "tags": ["[]"]}),
                   tmp_path / "orders" / "2024-05-02.parquet")
    source = """
  orders:
    path: orders/*.parquet
    format: parquet
    columns: {order_id: order_id, customer: customer, placed: placed, props: props, tags: tags}
    types: {placed: timestamp, props: json, tags: json}
    event_time: placed
    id_columns: [order_id]
    event: {event_name: {default: order_placed}, customer: customer}
"""
    cfg = load_config(project(tmp_path, source))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    ingest.load_range(con, cfg.sources["orders"], dt.date(2024, 5, 1), dt.date(2024, 5, 2))
    got = con.execute("select order_id, cast(props as VARCHAR), cast(tags as VARCHAR) "
                      "from raw_orders order by order_id").fetchall()
    assert [(o, json.loads(p), json.loads(t)) for o, p, t in got] == [
        ("o1", {"a": 1, "b": "x"}, [1, 2]), ("o2", {"c": 2}, [])]
    assert con.execute("select count(*) from quarantine").fetchone() == (0,)


def test_a_parquet_record_is_its_own_columns_even_one_named_filename(tmp_path) -> None:
    """The quarantine's record holds the file's columns only (not the reader's file name and
    row number); a file with its own `filename` column keeps it and is still named right;
    one with its own `file_row_number` is a rejected file with the reason, not lost rows."""
    (tmp_path / "orders").mkdir()
    placed = pa.array([dt.datetime(2024, 5, 1, 9), None], pa.timestamp("us"))
    pq.write_table(pa.table({"order_id": ["o1", "o2"], "customer": ["c1", "c2"],
                             "placed": placed, "filename": ["upload.png", "cv.pdf"]}),
                   tmp_path / "orders" / "2024-05-01.parquet")
    pq.write_table(pa.table({"order_id": ["o3"], "customer": ["c3"], "placed": placed[:1],
                             "file_row_number": [9]}),
                   tmp_path / "orders" / "2024-05-02.parquet")
    con, stats = load_all(orders(tmp_path, "orders/*.parquet", fmt="parquet"))
    first = str(tmp_path / "orders" / "2024-05-01.parquet")
    assert raw_rows(con) == [("o1", "c1", dt.datetime(2024, 5, 1, 9), None,
                              dt.date(2024, 5, 1))]
    assert con.execute("select source_file, source_line from raw_orders").fetchall() == [
        (first, 1)]
    source_file, line, raw, reason = con.execute(
        "select source_file, source_line, raw_record, reason from quarantine").fetchone()
    assert (source_file, line, reason) == (first, 2, "missing required field: placed")
    assert json.loads(raw) == {"order_id": "o2", "customer": "c2", "placed": None,
                               "filename": "cv.pdf"}
    ((name, rows, why),) = ingest.rejected_files(
        con, load_config(tmp_path / "sources.yaml").sources["orders"])
    assert (Path(name).name, rows) == ("2024-05-02.parquet", 1)
    assert "file_row_number" in why and why.startswith("cannot be read: ")
    assert sum(s.rows_read for s in stats) == 2


def test_xes_event_log(tmp_path) -> None:
    (tmp_path / "log.xes").write_text("""<?xml version="1.0" encoding="UTF-8"?>
<log xes.version="1.0">
  <trace><string key="concept:name" value="case1"/>
    <event><string key="concept:name" value="register"/>
           <date key="time:timestamp" value="2011-01-01T10:00:00.000+01:00"/></event>
    <event><string key="concept:name" value="pay"/>
           <date key="time:timestamp" value="2011-01-02T10:00:00.000+01:00"/></event>
  </trace>
</log>""")
    source = """
  orders:
    path: log.xes
    format: xes
    columns: {order_id: "case:concept:name", activity: "concept:name",
              placed: "time:timestamp"}
    types: {placed: timestamp}
    event_time: placed
    id_columns: [order_id, placed]
    event: {event_name: activity, customer: order_id}
"""
    con, _ = load_all(project(tmp_path, source))
    assert con.execute("select order_id, activity, placed, source_line from raw_orders "
                       "order by placed").fetchall() == [
        ("case1", "register", dt.datetime(2011, 1, 1, 9), 1),
        ("case1", "pay", dt.datetime(2011, 1, 2, 9), 2)]


def test_a_future_timestamp_is_implausible_against_the_clock(tmp_path) -> None:
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ")
    (tmp_path / "orders.csv").write_text(
        f"order_id,customer,placed,amount\no1,c1,2024-01-01T10:00:00Z,1\no2,c1,{later},1\n")
    con, _ = load_all(orders(tmp_path, "orders.csv"))
    assert [r[0] for r in raw_rows(con)] == ["o1"]
    reason = con.execute("select reason from quarantine").fetchone()[0]
    assert reason.startswith("implausible timestamp: ") and reason.endswith("is in the future")


def test_an_undated_file_with_no_valid_record_is_a_rejected_file(tmp_path) -> None:
    (tmp_path / "good.csv").write_text("order_id,customer,placed,amount\n"
                                       "o1,c1,2024-01-01T10:00:00Z,1\n")
    (tmp_path / "bad.csv").write_text("order_id,customer,placed,amount\n"
                                      "o2,c1,yesterday,1\no3,,2024-01-01T10:00:00Z,1\n")
    con, stats = load_all(orders(tmp_path, "*.csv"))
    assert [r[0] for r in raw_rows(con)] == ["o1"]
    rejected = con.execute("select source_file, rows_read, reason from rejected_files").fetchall()
    assert [(Path(f).name, n, r) for f, n, r in rejected] == [
        ("bad.csv", 2, "no valid record; first problem: bad timestamp in placed: yesterday")]
    # 1 loaded in the partitions + 2 in the rejected file = the 3 data lines of the two files
    assert sum(s.rows_read for s in stats) + rejected[0][1] == 3


@pytest.mark.parametrize(("extra", "key", "fix"), [
    ("    delimiter: ';;'\n", "sources.orders.delimiter", "one character"),
    ("    encoding: klingon\n", "sources.orders.encoding", "latin-1"),
    ("    time_format: yyyymmdd\n", "sources.orders.time_format", "strftime pattern"),
    ("    time_format: {amount: epoch_s}\n", "sources.orders.time_format.amount",
     "declared `timestamp`"),
    ("    header: maybe\n", "sources.orders.header", "header: false"),
])
def test_reader_option_mistakes_name_the_key(tmp_path, extra: str, key: str, fix: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(orders(tmp_path, "orders.csv", extra=extra))
    assert err.value.key == key and fix in err.value.fix
