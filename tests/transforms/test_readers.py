"""transforms.readers: every format written here in tmp_path and read back to exact values, and
timestamp_sql for every time format (offsets, zones, DST, epochs, bad values)."""

from __future__ import annotations

import codecs
import datetime as dt
import gzip
import json

import duckdb
import pytest

from transforms import readers
from transforms.errors import UserError
from transforms.eventlog import read_event_log
from transforms.sqlutil import Params


@pytest.fixture
def con():
    c = duckdb.connect()
    yield c
    c.close()


def rows(rel):
    return [tuple(r) for r in rel.fetchall()]


def read(con, path, **kw):
    rel = readers.read_table(con, path, **kw)
    return rel.columns, rows(rel)


# --------------------------------------------------------------------------- detect_format


@pytest.mark.parametrize("name,fmt", [
    ("e.csv", "csv"), ("e.TSV", "csv"), ("e.txt", "csv"), ("e.csv.gz", "csv"),
    ("e.csv.zst", "csv"), ("e.jsonl", "jsonl"), ("e.ndjson.gz", "jsonl"), ("e.json", "jsonl"),
    ("e.parquet", "parquet"), ("e.pq", "parquet"), ("log.xes", "xes"), ("log.xes.gz", "xes"),
])
def test_detect_format(name, fmt):
    assert readers.detect_format(name) == fmt


def test_unknown_type_and_missing_file(con, tmp_path):
    with pytest.raises(UserError, match="unknown file type"):
        readers.detect_format("e.xlsx")
    with pytest.raises(UserError, match="no such file"):
        readers.read_table(con, tmp_path / "missing.csv")


# --------------------------------------------------------------------------- CSV and text


@pytest.mark.parametrize("delim", [",", ";", "|"])
def test_csv_delimiters_are_sniffed_or_given(con, tmp_path, delim):
    path = tmp_path / "e.csv"
    path.write_text(f"id{delim}name{delim}ts\n007{delim}Ann{delim}2024-05-01\n"
                    f"010{delim}Bob{delim}2024-05-02\n")
    expected = (["id", "name", "ts"], [("007", "Ann", "2024-05-01"), ("010", "Bob", "2024-05-02")])
    assert read(con, path) == expected  # sniffed; ids keep their leading zeros (VARCHAR)
    assert read(con, path, delimiter=delim) == expected


def test_tsv_by_name_and_by_option(con, tmp_path):
    (tmp_path / "e.tsv").write_text("a\tb c\n1\tx y\n")
    assert read(con, tmp_path / "e.tsv") == (["a", "b c"], [("1", "x y")])
    (tmp_path / "t.txt").write_text("a\tb c\n1\tx y\n")
    assert read(con, tmp_path / "t.txt", delimiter="\\t") == (["a", "b c"], [("1", "x y")])
    assert readers.parse_delimiter("tab") == "\t"


def test_whitespace_separated_with_yyyymmdd_dates(con, tmp_path):
    path = tmp_path / "log.txt"
    path.write_text("case   activity \t timestamp\n"
                    "  1  register   20240501  \n"
                    "\n"
                    "1\tpay\t\t20240502\n"
                    "2 register 20240503\n")
    cols, got = read(con, path, delimiter="whitespace")
    assert cols == ["case", "activity", "timestamp"]
    assert got == [("1", "register", "20240501"), ("1", "pay", "20240502"),
                   ("2", "register", "20240503")]
    table = readers.read_table(con, path, delimiter="whitespace", table="ws").alias
    readers.parse_times(con, table, "timestamp", time_format="%Y%m%d", timezone="UTC",
                        path=path)
    assert rows(con.sql("select timestamp from ws")) == [
        (dt.datetime(2024, 5, 1),), (dt.datetime(2024, 5, 2),), (dt.datetime(2024, 5, 3),)]


def test_whitespace_row_wider_than_header_is_an_error(con, tmp_path):
    path = tmp_path / "log.txt"
    path.write_text("case activity\n1 check in\n")
    with pytest.raises(UserError, match="1 row\\(s\\) have more than the header's 2 fields"):
        readers.read_table(con, path, delimiter="whitespace")


def test_no_header_names_columns_column0_on(con, tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("u1;signup;2024-05-01\nu2;pay;2024-05-02\n")
    assert read(con, path, header=False) == (
        ["column0", "column1", "column2"],
        [("u1", "signup", "2024-05-01"), ("u2", "pay", "2024-05-02")])
    (tmp_path / "w.txt").write_text("u1 signup  2024-05-01\nu2 pay\n")
    assert read(con, tmp_path / "w.txt", delimiter="whitespace", header=False) == (
        ["column0", "column1", "column2"], [("u1", "signup", "2024-05-01"), ("u2", "pay", None)])


def test_quoted_fields_hold_delimiters_newlines_and_quotes(con, tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('a,b,c\n"x, y","line1\nline2","he said ""hi"""\nplain,,3\n')
    assert read(con, path) == (["a", "b", "c"], [("x, y", "line1\nline2", 'he said "hi"'),
                                                  ("plain", None, "3")])


@pytest.mark.parametrize("encoding,data", [
    ("latin-1", "name;city\nJosé;Köln\n".encode("latin-1")),
    ("latin1", "name;city\nJosé;Köln\n".encode("latin-1")),
    ("cp1252", "name;city\nJosé;€uro\n".encode("cp1252")),          # Python transcodes
    ("utf-16", "name;city\nJosé;Köln\n".encode("utf-16")),           # BOM, little-endian
    ("utf-16", codecs.BOM_UTF16_BE + "name;city\nJosé;Köln\n".encode("utf-16-be")),
    ("utf-8", codecs.BOM_UTF8 + "name;city\nJosé;Köln\n".encode()),
])
def test_declared_encodings(con, tmp_path, encoding, data):
    path = tmp_path / "e.csv"
    path.write_bytes(data)
    city = "€uro" if encoding == "cp1252" else "Köln"
    assert read(con, path, encoding=encoding) == (["name", "city"], [("José", city)])


def test_boms_are_recognised_without_an_encoding(con, tmp_path):
    for i, data in enumerate([codecs.BOM_UTF8 + "name\nJosé\n".encode(),
                              "name\nJosé\n".encode("utf-16"),
                              codecs.BOM_UTF16_BE + "name\nJosé\n".encode("utf-16-be")]):
        path = tmp_path / f"e{i}.csv"
        path.write_bytes(data)
        assert read(con, path) == (["name"], [("José",)])


def test_undeclared_latin1_is_an_error_naming_the_encoding_option(con, tmp_path):
    path = tmp_path / "e.csv"
    path.write_bytes("name\nJosé\n".encode("latin-1"))
    with pytest.raises(UserError, match="--encoding") as exc:
        readers.read_table(con, path)
    assert "\n" not in str(exc.value)
    with pytest.raises(UserError, match="unknown --encoding 'klingon'"):
        readers.read_table(con, path, encoding="klingon")
    with pytest.raises(UserError, match="byte 8 is not valid ascii; declare the file's"):
        readers.read_table(con, path, encoding="ascii")  # transcoded by Python


def test_gzip_and_zstd_csv(con, tmp_path):
    with gzip.open(tmp_path / "e.csv.gz", "wt") as fh:
        fh.write("a|b\n1|x\n2|y\n")
    assert read(con, tmp_path / "e.csv.gz") == (["a", "b"], [("1", "x"), ("2", "y")])
    # zstandard is not installed here: DuckDB writes the .zst
    zst = tmp_path / "e.csv.zst"
    con.execute(f"copy (select * from (values ('1', 'x,y'), ('2', 'z')) v(a, b)) to '{zst}' "
                "(format csv, header, compression zstd)")
    assert read(con, zst) == (["a", "b"], [("1", "x,y"), ("2", "z")])
    # gzip + a Python-transcoded encoding
    with gzip.open(tmp_path / "l.csv.gz", "wb") as fh:
        fh.write("a;b\n1;€\n".encode("cp1252"))
    assert read(con, tmp_path / "l.csv.gz", encoding="cp1252") == (["a", "b"], [("1", "€")])


def test_options_that_do_not_apply(con, tmp_path):
    path = tmp_path / "e.parquet"
    con.execute(f"copy (select 1 as a) to '{path}' (format parquet)")
    with pytest.raises(UserError, match="--delimiter applies to CSV"):
        readers.read_table(con, path, delimiter=";")
    with pytest.raises(UserError, match="--encoding does not apply"):
        readers.read_table(con, path, encoding="latin-1")
    with pytest.raises(UserError, match="invalid --delimiter"):
        readers.parse_delimiter(";;")


# --------------------------------------------------------------------------- JSON, Parquet


def test_json_lines_flatten_objects_to_dotted_columns(con, tmp_path):
    path = tmp_path / "e.jsonl"
    lines = [
        {"id": "007", "ts": "2024-05-01T10:00:00+02:00", "n": 1, "f": 1.5,
         "props": {"plan": "pro", "geo": {"city": "Köln"}}, "tags": [1, 2]},
        {"id": "008", "ts": "2024-05-01T10:00:00Z", "ok": True, "props": {"plan": None},
         "k.dot": "v"},
    ]
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n\n")
    cols, got = read(con, path)
    assert cols == ["id", "ts", "n", "f", "props.plan", "props.geo.city", "tags", "ok", "k.dot"]
    assert got == [
        ("007", "2024-05-01T10:00:00+02:00", "1", "1.5", "pro", "Köln", "[1,2]", None, None),
        ("008", "2024-05-01T10:00:00Z", None, None, None, None, None, "true", "v"),
    ]


def test_json_array_and_compressed_json(con, tmp_path):
    (tmp_path / "a.json").write_text('[\n {"a": 1},\n {"a": 2, "b": "x"}\n]\n')
    assert read(con, tmp_path / "a.json") == (["a", "b"], [("1", None), ("2", "x")])
    with gzip.open(tmp_path / "g.jsonl.gz", "wt") as fh:
        fh.write('{"a": "x"}\n{"a": "y"}\n')
    assert read(con, tmp_path / "g.jsonl.gz") == (["a"], [("x",), ("y",)])
    zst = tmp_path / "z.jsonl.zst"
    con.execute(f"copy (select 'x' as a) to '{zst}' (format json, compression zstd)")
    assert read(con, zst) == (["a"], [("x",)])
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\nnot json\n')
    with pytest.raises(UserError, match="cannot read .* as JSON lines"):
        readers.read_table(con, tmp_path / "bad.jsonl")


def test_segment_track_identify_page(con, tmp_path):
    calls = [
        {"type": "page", "name": "Home", "anonymousId": "anon-1", "messageId": "m1",
         "timestamp": "2024-05-01T10:00:00Z", "properties": {"path": "/"},
         "context": {"ip": "1.2.3.4", "page": {"path": "/"}}},
        {"type": "track", "event": "Viewed Product", "anonymousId": "anon-1", "messageId": "m2",
         "timestamp": "2024-05-01T10:01:00Z", "properties": {"sku": "A-1", "price": 9.5}},
        {"type": "identify", "userId": "user-9", "anonymousId": "anon-1", "messageId": "m3",
         "timestamp": "2024-05-01T10:02:00Z", "traits": {"email": "a@example.com"}},
        {"type": "track", "event": "Order Completed", "userId": "user-9",
         "anonymousId": "anon-1", "messageId": "m4", "timestamp": "2024-05-01T10:03:00Z",
         "properties": {"revenue": 9.5}},
        {"type": "track", "event": "Viewed Product", "anonymousId": "anon-2", "messageId": "m5",
         "timestamp": "2024-05-01T11:00:00Z", "properties": {"sku": "B-2"}},
    ]
    path = tmp_path / "segment.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in calls) + "\n")
    rel = readers.read_table(con, path)
    assert rel.columns == [
        "type", "name", "anonymousId", "messageId", "timestamp", "properties.path",
        "properties.sku", "properties.price", "properties.revenue", "context.ip",
        "context.page.path", "event", "userId", "traits.email", "actor"]
    got = rows(con.sql(f"select actor, event, type, \"properties.sku\", \"traits.email\" "
                       f"from {rel.alias}"))
    assert got == [
        ("user-9", "page", "page", None, None),  # anonymous before sign-up: joined to user-9
        ("user-9", "Viewed Product", "track", "A-1", None),
        ("user-9", "identify", "identify", None, "a@example.com"),
        ("user-9", "Order Completed", "track", None, None),
        ("anon-2", "Viewed Product", "track", "B-2", None),  # never identified
    ]


def test_parquet_keeps_its_types(con, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({
        "actor": ["u1", "u2"], "n": [1, 2],
        "at": pa.array([dt.datetime(2024, 5, 1, 10), dt.datetime(2024, 5, 2, 11)],
                       type=pa.timestamp("us")),
    }), path)
    rel = readers.read_table(con, path)
    assert rel.columns == ["actor", "n", "at"]
    assert [str(t) for t in rel.types] == ["VARCHAR", "BIGINT", "TIMESTAMP"]
    assert rows(rel) == [("u1", 1, dt.datetime(2024, 5, 1, 10)),
                         ("u2", 2, dt.datetime(2024, 5, 2, 11))]
    readers.parse_times(con, rel.alias, "at", time_format=None, timezone="Europe/Berlin",
                        path=path)  # a naive Parquet TIMESTAMP is a wall-clock time in the zone
    assert rows(con.sql(f'select "at" from {rel.alias}')) == [(dt.datetime(2024, 5, 1, 8),),
                                                           (dt.datetime(2024, 5, 2, 9),)]
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(UserError, match="cannot read .* as parquet"):
        readers.read_table(con, tmp_path / "bad.parquet")


# --------------------------------------------------------------------------- XES

XES = """<?xml version="1.0" encoding="UTF-8"?>
<log xes.version="1.0" xmlns="http://www.xes-standard.org/">
  <string key="concept:name" value="the log"/>
  <trace>
    <string key="concept:name" value="c1"/>
    <float key="amount" value="250.5"/>
    <event>
      <string key="concept:name" value="register"/>
      <string key="lifecycle:transition" value="complete"/>
      <date key="time:timestamp" value="2024-05-01T10:00:00.000+02:00"/>
      <string key="org:resource" value="Ann"/>
    </event>
    <event>
      <string key="concept:name" value="pay"/>
      <date key="time:timestamp" value="2024-05-01T09:30:00Z"/>
    </event>
  </trace>
  <trace>
    <string key="concept:name" value="c2"/>
    <event>
      <string key="concept:name" value="register"/>
      <string key="lifecycle:transition" value="start"/>
      <date key="time:timestamp" value="2024-05-02T00:00:00"/>
    </event>
  </trace>
</log>
"""


@pytest.mark.parametrize("name", ["log.xes", "log.xes.gz"])
def test_xes_every_attribute_or_only_some(con, tmp_path, name):
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(XES)
    else:
        path.write_text(XES, encoding="utf-8")
    rel = readers.read_table(con, path)
    assert rel.columns == ["concept:name", "lifecycle:transition", "time:timestamp",
                           "org:resource", "case:concept:name", "case:amount"]
    assert rows(rel) == [
        ("register", "complete", "2024-05-01T10:00:00.000+02:00", "Ann", "c1", "250.5"),
        ("pay", None, "2024-05-01T09:30:00Z", None, "c1", "250.5"),
        ("register", "start", "2024-05-02T00:00:00", None, "c2", None),
    ]
    some = readers.read_table(con, path, columns=["case:concept:name", "concept:name", "nope"])
    assert some.columns == ["case:concept:name", "concept:name"]  # never-seen keys left out
    assert rows(some) == [("c1", "register"), ("c1", "pay"), ("c2", "register")]
    readers.parse_times(con, rel.alias, "time:timestamp", time_format=None, timezone="UTC",
                        path=path)
    assert [r[0] for r in rows(con.sql(f'select "time:timestamp" from {rel.alias}'))] == [
        dt.datetime(2024, 5, 1, 8), dt.datetime(2024, 5, 1, 9, 30), dt.datetime(2024, 5, 2)]


def test_broken_xes_is_a_user_error(con, tmp_path):
    (tmp_path / "b.xes").write_text("<log><trace><event>")
    with pytest.raises(UserError, match="not a readable XES file"):
        readers.read_table(con, tmp_path / "b.xes")


# --------------------------------------------------------------------------- timestamp_sql


def ts(con, value, time_format=None, timezone="UTC", source_type=None):
    params = Params()
    cast = f"CAST($v AS {source_type})" if source_type else "$v"
    expr = readers.timestamp_sql(cast, time_format, timezone, params, source_type=source_type)
    return con.execute(f"select {expr}", {**params.values, "v": value}).fetchone()[0]


@pytest.mark.parametrize("value,time_format,timezone,expected", [
    # ISO 8601: offsets honoured whatever --timezone says; naive = wall clock in the zone
    ("2024-05-01T10:00:00+02:00", None, "America/New_York", dt.datetime(2024, 5, 1, 8)),
    ("2024-05-01 10:00:00+0200", "iso", "UTC", dt.datetime(2024, 5, 1, 8)),
    ("2024-05-01T10:00:00-05", None, "UTC", dt.datetime(2024, 5, 1, 15)),
    ("2024-05-01T10:00:00.250Z", None, "Europe/Berlin", dt.datetime(2024, 5, 1, 10, 0, 0, 250000)),
    ("2024-05-01T10:00:00 UTC", None, "Europe/Berlin", dt.datetime(2024, 5, 1, 10)),
    ("2024-05-01 10:00:00 Europe/Berlin", None, "UTC", dt.datetime(2024, 5, 1, 8)),
    ("2024-05-01T10:00:00", None, "UTC", dt.datetime(2024, 5, 1, 10)),
    ("2024-05-01 10:00", None, "Europe/Berlin", dt.datetime(2024, 5, 1, 8)),   # CEST, +2
    ("2024-01-15 10:00", None, "Europe/Berlin", dt.datetime(2024, 1, 15, 9)),  # CET, +1
    ("2024-05-01", None, "UTC", dt.datetime(2024, 5, 1)),
    ("  2024-05-01  ", None, "UTC", dt.datetime(2024, 5, 1)),
    # DST: the spring-forward gap moves forward, the autumn overlap takes standard time
    ("2026-03-29 02:30", None, "Europe/Berlin", dt.datetime(2026, 3, 29, 1, 30)),
    ("2026-03-29 01:59", None, "Europe/Berlin", dt.datetime(2026, 3, 29, 0, 59)),
    ("2026-03-29 03:00", None, "Europe/Berlin", dt.datetime(2026, 3, 29, 1, 0)),
    ("2026-10-25 02:30", None, "Europe/Berlin", dt.datetime(2026, 10, 25, 1, 30)),
    ("2026-10-25 03:00", None, "Europe/Berlin", dt.datetime(2026, 10, 25, 2, 0)),
    ("2026-03-08 02:30", None, "America/New_York", dt.datetime(2026, 3, 8, 7, 30)),
    # strftime patterns, in the zone unless the pattern has %z
    ("20240501", "%Y%m%d", "UTC", dt.datetime(2024, 5, 1)),
    ("20240501", "%Y%m%d", "America/New_York", dt.datetime(2024, 5, 1, 4)),
    ("01/05/2024 10:00", "%d/%m/%Y %H:%M", "Europe/Berlin", dt.datetime(2024, 5, 1, 8)),
    ("01/05/2024 10:00 +0100", "%d/%m/%Y %H:%M %z", "America/New_York",
     dt.datetime(2024, 5, 1, 9)),
    # epochs: instants, the zone does not apply
    ("1700000000", "epoch_s", "Europe/Berlin", dt.datetime(2023, 11, 14, 22, 13, 20)),
    ("1700000000.5", "epoch_s", "UTC", dt.datetime(2023, 11, 14, 22, 13, 20, 500000)),
    ("1700000000123", "epoch_ms", "UTC", dt.datetime(2023, 11, 14, 22, 13, 20, 123000)),
    ("1700000000123456", "epoch_us", "UTC", dt.datetime(2023, 11, 14, 22, 13, 20, 123456)),
    ("1700000000123456789", "epoch_ns", "UTC", dt.datetime(2023, 11, 14, 22, 13, 20, 123457)),
    ("-86400", "epoch_s", "UTC", dt.datetime(1969, 12, 31)),
    # unparseable or empty -> NULL
    ("not a time", None, "UTC", None),
    ("", None, "UTC", None),
    ("2024-13-45", None, "UTC", None),
    ("2024-05-01", "%Y%m%d", "UTC", None),
    ("20240501x", "%Y%m%d", "UTC", None),
    ("soon", "epoch_s", "UTC", None),
    ("1e30", "epoch_s", "UTC", None),  # beyond year 9999
])
def test_timestamp_sql(con, value, time_format, timezone, expected):
    assert ts(con, value, time_format, timezone) == expected


def test_timestamp_sql_ignores_the_session_time_zone(con):
    con.execute("SET TimeZone = 'Asia/Tokyo'")
    assert ts(con, "2024-05-01 10:00") == dt.datetime(2024, 5, 1, 10)
    assert ts(con, "2024-05-01 10:00+02:00") == dt.datetime(2024, 5, 1, 8)
    assert ts(con, "2024-05-01 10:00", timezone="Europe/Berlin") == dt.datetime(2024, 5, 1, 8)


def test_timestamp_sql_typed_sources(con):
    assert ts(con, "2024-05-01 10:00+02", source_type="TIMESTAMPTZ") == dt.datetime(2024, 5, 1, 8)
    assert ts(con, "2024-05-01 10:00", timezone="Europe/Berlin",
              source_type="TIMESTAMP") == dt.datetime(2024, 5, 1, 8)
    assert ts(con, "2024-05-01", source_type="DATE") == dt.datetime(2024, 5, 1)
    assert ts(con, "1700000000", "epoch_s", source_type="BIGINT") == dt.datetime(
        2023, 11, 14, 22, 13, 20)
    assert ts(con, "1700000000123.0", "epoch_ms", source_type="DOUBLE") == dt.datetime(
        2023, 11, 14, 22, 13, 20, 123000)
    # without source_type, a typed value is read through its text
    params = Params()
    expr = readers.timestamp_sql("TIMESTAMPTZ '2024-05-01 10:00+02'", None, "UTC", params)
    assert con.execute(f"select {expr}", params.values).fetchone()[0] == dt.datetime(2024, 5, 1, 8)


def test_timestamp_sql_binds_values_as_parameters():
    params = Params()
    sql = readers.timestamp_sql('"t"', "%d/%m/%Y", "Europe/Berlin", params)
    assert "%d" not in sql and "Europe/Berlin" not in sql
    assert sorted(params.values.values()) == ["%d/%m/%Y", "Europe/Berlin"]


@pytest.mark.parametrize("time_format,timezone,message", [
    ("yyyymmdd", "UTC", "invalid --time-format 'yyyymmdd'"),
    (None, "Berlin", "unknown --timezone 'Berlin'"),
])
def test_timestamp_sql_rejects_bad_options(time_format, timezone, message):
    with pytest.raises(UserError, match=message):
        readers.timestamp_sql("x", time_format, timezone, Params())


# --------------------------------------------------------------------------- checks


def test_parse_times_counts_failures_and_suggests_time_format(con, tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("t\n20240501\n20240502\n2024-05-03\n\n")
    readers.read_table(con, path, table="t1")
    with pytest.raises(UserError) as exc:
        readers.parse_times(con, "t1", "t", time_format=None, timezone="UTC", path=path)
    msg = str(exc.value)
    assert "2 of 3 row(s) with a time in column 't' have no readable timestamp" in msg
    assert "'20240501'" in msg and "not ISO 8601" in msg and "--time-format" in msg
    with pytest.raises(UserError, match="1 of 3 row.*do not match --time-format '%Y%m%d'"):
        readers.parse_times(con, "t1", "t", time_format="%Y%m%d", timezone="UTC", path=path)
    with pytest.raises(UserError, match="cannot read times in 't' with --time-format '%Q'"):
        readers.parse_times(con, "t1", "t", time_format="%Q", timezone="UTC", path=path)


def test_require_values_lists_what_occurs_most_frequent_first(con):
    con.execute("create temp table ev as select * from (values ('a'), ('b'), ('b'), ('c'), "
                "('c'), ('c'), (null)) v(event)")
    readers.require_values(con, "ev", "event", ["a", "c"], what="step", flag="--steps",
                           path="f.csv")
    with pytest.raises(UserError) as exc:
        readers.require_values(con, "ev", "event", ["a", "x", "y"], what="step",
                               flag="--steps", path="f.csv")
    assert str(exc.value) == (
        "f.csv: step 'x', 'y' never occur in column 'event' (--steps); values there, most "
        "frequent first: c (3), b (2), a (1)")


def test_require_values_caps_the_listing(con):
    con.execute("create temp table many as select 'e' || i as event from range(20) t(i)")
    listing = r"e0 \(1\), e1 \(1\), e10 \(1\), .* e4 \(1\), \.\.\. \(5 more\)$"
    with pytest.raises(UserError, match=listing):
        readers.require_values(con, "many", "event", ["zz"], what="step", flag="--steps",
                               path="f")


def test_require_columns_and_xes_role_defaults():
    cols = ["case:concept:name", "concept:name", "time:timestamp"]
    assert readers.role_columns("xes", cols, {"actor": "actor", "event": "event",
                                              "timestamp": "timestamp"}) == {
        "actor": "case:concept:name", "event": "concept:name", "timestamp": "time:timestamp"}
    assert readers.role_columns("csv", cols, {"actor": "actor"}) == {"actor": "actor"}
    with pytest.raises(UserError) as exc:
        readers.require_columns("f.csv", ["a", "b"], {"--actor-col": "a", "--by": "city"})
    assert str(exc.value) == "f.csv: missing breakdown column 'city' (--by); columns are: a, b"


# --------------------------------------------------------------------------- event logs


def test_event_log_from_whitespace_text_with_yyyymmdd(con, tmp_path):
    path = tmp_path / "log.txt"
    path.write_text("case activity timestamp\n1 register 20240501\n1 pay 20240503\n"
                    "2 register 20240502\n")
    log = read_event_log(con, path, delimiter="whitespace", time_format="%Y%m%d")
    assert rows(log) == [("1", "register", dt.datetime(2024, 5, 1), 0),
                         ("1", "pay", dt.datetime(2024, 5, 3), 1),
                         ("2", "register", dt.datetime(2024, 5, 2), 2)]


def test_event_log_lifecycle_and_activity_errors(con, tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("case,activity,timestamp,lifecycle:transition\n"
                    "1,a,2024-05-01,start\n1,b,2024-05-02,end\n1,b,2024-05-03,end\n")
    with pytest.raises(UserError) as exc:
        read_event_log(con, path, lifecycle="complete")
    assert ("--lifecycle complete keeps nothing: no event has lifecycle 'complete' in "
            "'lifecycle:transition'; values there: end (2), start (1)") in str(exc.value)
    (tmp_path / "plain.csv").write_text("case,activity,timestamp\n1,a,2024-05-01\n")
    with pytest.raises(UserError, match="needs a lifecycle column"):
        read_event_log(con, tmp_path / "plain.csv", lifecycle="complete")
    with pytest.raises(UserError, match="activity 'c' never occurs .* b \\(2\\), a \\(1\\)"):
        read_event_log(con, path, activities=["a", "c"])
    log = read_event_log(con, path, activities=["b"])
    assert [r[1] for r in rows(log)] == ["b", "b"]
