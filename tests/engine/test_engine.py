"""The execution seam: the DuckDB engine is the connection it wraps, plus the engine operations
and the SQL capture."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from transforms import warehouse
from transforms.engine import (
    SQL_LOG_ENV,
    DuckDBEngine,
    SqlLog,
    decode_params,
    encode_params,
    read_sql_log,
)


@pytest.fixture
def engine() -> DuckDBEngine:
    eng = DuckDBEngine(duckdb.connect())
    yield eng
    eng.close()


def test_connection_methods_are_the_connections(engine: DuckDBEngine) -> None:
    engine.execute("create table t as select * from range(3) r(x)")
    assert engine.execute("select sum(x) from t").fetchone() == (3,)
    assert engine.execute("select x from t order by x").fetchall() == [(0,), (1,), (2,)]
    assert list(engine.execute("select x from t order by x").df()["x"]) == [0, 1, 2]
    assert engine.sql("select count(*) from t").fetchall() == [(3,)]
    assert engine.execute("select ? + ?", [1, 2]).fetchone() == (3,)
    assert engine.execute("select $a * 2", {"a": 21}).fetchone() == (42,)
    assert engine.connection.execute("select 1").fetchone() == (1,)


def test_query_is_arrow(engine: DuckDBEngine) -> None:
    table = engine.query("select ?::int as a, 'x' as b", [7])
    assert isinstance(table, pa.Table)
    assert table.to_pylist() == [{"a": 7, "b": "x"}]


def test_create_table_as_and_columns_and_tables(engine: DuckDBEngine) -> None:
    engine.create_table_as("my t", "select ?::date as d, 1.5::double as v", [dt.date(2024, 1, 2)])
    engine.create_table_as("my t", "select ?::date as d, 2.5::double as v", [dt.date(2024, 1, 3)])
    assert engine.execute('select * from "my t"').fetchall() == [(dt.date(2024, 1, 3), 2.5)]
    assert engine.columns("my t") == [("d", "DATE"), ("v", "DOUBLE")]
    engine.execute("create view w as select 1 as one")
    engine.execute("create temp table tmp as select 1 as one")
    assert engine.tables() == ["my t", "tmp", "w"]


def test_replace_partition_swaps_the_rows_of_one_partition(engine: DuckDBEngine) -> None:
    engine.execute("create table p as select * from (values (1, 'a'), (1, 'b'), (2, 'c')) v(d, x)")
    engine.replace_partition("p", "d = ?", [1], "select 1, 'z'")
    assert engine.execute("select d, x from p order by d, x").fetchall() == [(1, "z"), (2, "c")]


def test_replace_partition_is_all_or_nothing(engine: DuckDBEngine) -> None:
    engine.execute("create table p as select * from (values (1, 'a'), (2, 'c')) v(d, x)")
    with pytest.raises(duckdb.Error):
        engine.replace_partition("p", "d = ?", [1], "select 1, 'z', 'one column too many'")
    assert engine.execute("select d, x from p order by d").fetchall() == [(1, "a"), (2, "c")]


def test_replace_partition_inside_the_callers_transaction(engine: DuckDBEngine) -> None:
    engine.execute("create table p as select * from (values (1, 'a'), (2, 'c')) v(d, x)")
    engine.execute("begin transaction")
    engine.replace_partition("p", "d = ?", [2], "select 2, 'y'")
    engine.execute("rollback")  # the caller's transaction decides
    assert engine.execute("select d, x from p order by d").fetchall() == [(1, "a"), (2, "c")]


def test_register_arrow(engine: DuckDBEngine) -> None:
    engine.register_arrow("arr", pa.table({"k": [1, 2, 3]}))
    assert engine.execute("select sum(k) from arr").fetchone() == (6,)


def test_params_survive_the_log_encoding() -> None:
    values = [1, 2.5, "x", None, True, dt.date(2024, 2, 29), dt.datetime(2024, 1, 1, 12, 0, 1, 5),
              decimal.Decimal("1.25"), dt.timedelta(days=1, microseconds=3), [1, [2, "y"]]]
    encoded = json.loads(json.dumps(encode_params(values)))
    assert decode_params(encoded) == values
    named = {"p0": dt.date(2020, 1, 1), "sep": " > "}
    assert decode_params(json.loads(json.dumps(encode_params(named)))) == named
    assert decode_params(encode_params(None)) is None


def _log_here(engine: DuckDBEngine) -> None:
    engine.execute("select ?::date", [dt.date(2024, 5, 1)])
    engine.query("select 1")


def test_capture_writes_one_line_per_statement_with_its_caller(tmp_path: Path) -> None:
    log = tmp_path / "sql.jsonl"
    engine = DuckDBEngine(duckdb.connect(), SqlLog(log))
    _log_here(engine)
    engine.executemany("select ?", [[1], [2]])
    rows = read_sql_log(log)
    assert [r["sql"] for r in rows] == ["select ?::date", "select 1", "select ?", "select ?"]
    assert rows[0]["caller"] == f"{__name__}:_log_here"
    assert rows[2]["caller"].endswith(":test_capture_writes_one_line_per_statement_with_its_caller")
    assert decode_params(rows[0]["params"]) == [dt.date(2024, 5, 1)]
    assert [decode_params(r["params"]) for r in rows[2:]] == [[1], [2]]


def test_warehouse_connect_yields_an_engine_capturing_when_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "sql.jsonl"
    monkeypatch.setenv(SQL_LOG_ENV, str(log))
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        assert isinstance(con, DuckDBEngine)
        con.execute("create table t as select step_conversion(1, 4) as r")  # macros are there
        assert con.execute("select r from t").fetchone() == (0.25,)
    assert [r["sql"] for r in read_sql_log(log)] == [
        "create table t as select step_conversion(1, 4) as r", "select r from t"]
    monkeypatch.delenv(SQL_LOG_ENV)
    with warehouse.connect(tmp_path / "w.duckdb", read_only=True) as con:
        assert con.tables() == ["t"]
    assert len(read_sql_log(log)) == 2  # no capture without the variable
