"""The Spark engine's stored catalog: tables kept as Parquet folders under the warehouse (or in a
database of the session's catalog) outlive the engine, temp tables do not, views resolve by name,
and `warehouse.open_engine` opens the project's engine from its config.

Needs pyspark and Java 17 (skipped with the reason otherwise)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from tests.e2e.conftest import sample_config
from tests.engine.conftest import SPARK_MISSING
from transforms.sources import load_config

_MISSING = SPARK_MISSING

pytestmark = [pytest.mark.spark, pytest.mark.slow,
              pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")]


@pytest.fixture(scope="module")
def spark():
    from transforms.spark_engine import local_session

    session = local_session("observed-journeys-catalog-tests")
    yield session
    session.stop()


def rows(eng, sql: str) -> list[tuple]:
    return sorted(eng.execute(sql).fetchall())


def test_tables_outlive_the_engine_in_their_folder(spark, tmp_path: Path) -> None:
    from transforms.spark_engine import SparkEngine

    folder = tmp_path / "wh"
    eng = SparkEngine(spark, location=folder)
    eng.execute("create table t (a integer, b varchar)")
    eng.execute("insert into t select * from (values (1, 'x'), (2, 'y'), (3, 'z')) v(a, b)")
    eng.execute("delete from t where a = 2")
    eng.executemany("insert into t values (?, ?)", [(7, "p"), (8, "q")])
    eng.execute("delete from t where a >= 7")
    eng.execute("create or replace temp table scratch as select a from t")
    eng.execute("create or replace view t_big as select a from t where a > 1")
    eng.register_arrow("arrow_in", pa.table({"a": [9]}))
    assert {"t", "scratch", "t_big", "arrow_in"} <= set(eng.tables())
    assert sorted(p.name for p in folder.iterdir()) == [".views", "t"]  # nothing staged left
    eng.close()

    again = SparkEngine(spark, location=folder)
    assert again.tables() == ["t", "t_big"]
    assert rows(again, "select a, b from t") == [(1, "x"), (3, "z")]
    assert rows(again, "select a from t_big") == [(3,)]
    # replacing the table: the view reads the new rows (resolved by name, as DuckDB's)
    again.execute("create or replace table t as select 5 as a, 'q' as b")
    assert rows(again, "select a from t_big") == [(5,)]
    again.execute("drop view t_big")
    again.execute("drop table t")
    assert again.tables() == [] and sorted(p.name for p in folder.iterdir()) == [".views"]
    again.close()


def test_an_empty_table_keeps_its_columns(spark, tmp_path: Path) -> None:
    from transforms.spark_engine import SparkEngine

    eng = SparkEngine(spark, location=tmp_path / "wh")
    eng.execute("create table e (id bigint, day date, note varchar)")
    eng.close()
    again = SparkEngine(spark, location=tmp_path / "wh")
    assert [c for c, _ in again.columns("e")] == ["id", "day", "note"]
    assert again.execute("select count(*) from e").fetchone() == (0,)
    again.close()


def test_tables_in_a_database(spark) -> None:
    from transforms.spark_engine import SparkEngine

    eng = SparkEngine(spark, database="journeys_test_db")
    eng.execute("create or replace table d as select 1 as a union all select 2")
    eng.execute("create or replace temp table tmp as select 3 as a")
    eng.execute("create or replace view dv as select a * 10 as a from d")
    assert set(eng.tables()) >= {"d", "dv", "tmp"}
    eng.close()
    again = SparkEngine(spark, database="journeys_test_db")
    assert "tmp" not in again.tables() and {"d", "dv"} <= set(again.tables())
    assert rows(again, "select a from dv") == [(10,), (20,)]
    again.execute("drop view dv")
    again.execute("drop table d")
    assert not {"d", "dv"} & set(again.tables())
    again.close()
    spark.sql("DROP DATABASE journeys_test_db CASCADE")
    spark.catalog.setCurrentDatabase("default")


def test_open_engine_follows_the_config(spark, tmp_path: Path) -> None:
    from transforms import warehouse
    from transforms.spark_engine import SparkEngine

    path = sample_config(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc.update(engine="spark", warehouse=str(tmp_path / "spark_wh"))
    path.write_text(yaml.safe_dump(doc))
    cfg = load_config(path)
    with warehouse.open_engine(cfg) as eng:
        assert isinstance(eng, SparkEngine) and eng.location == tmp_path / "spark_wh"
        eng.execute("create table kept as select 42 as answer")
    with warehouse.open_engine(cfg, read_only=True) as eng:
        assert eng.execute("select answer from kept").fetchall() == [(42,)]
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
