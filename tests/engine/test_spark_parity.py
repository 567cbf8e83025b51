"""The parity test: the committed sample through `journeys run` on both engines gives the same
warehouse.

One `journeys run` with `engine: spark` (a local Spark, its tables Parquet folders in the
warehouse folder) as a user runs it, and the DuckDB run of the same sample (`captured_run`);
then **every** table of the DuckDB warehouse must exist on Spark with the same column names in
the same order and the same rows as a sorted multiset (floats to 1e-6 relative). Left out are
the columns that hold when a row was written (`LOAD_TIME_COLUMNS`), which differ between any
two runs. The funnel engine's modes are compared on both engines in test_spark_funnel.py.

Needs pyspark and Java 17 (skipped with the reason otherwise); about 5 minutes.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.definitions import build_defs
from tests.e2e.conftest import journeys, sample_config
from tests.engine.conftest import SPARK_MISSING, CapturedRun, same_rows
from transforms import warehouse
from transforms.project import load_project
from transforms.sqlutil import ident

pytestmark = [pytest.mark.spark, pytest.mark.slow,
              pytest.mark.skipif(SPARK_MISSING is not None, reason=SPARK_MISSING or "")]

# when a row was written: differs between any two runs, so not compared
LOAD_TIME_COLUMNS = {"loaded_at", "last_loaded_at", "quarantined_at", "rejected_at",
                     "skipped_at"}

# the README's "Scale out on Spark" configuration, small enough for a CI machine
SPARK_BLOCK = """
engine: spark
spark:
  master: local[2]
  conf:
    spark.driver.memory: 1g
    spark.sql.shuffle.partitions: 2
    spark.ui.enabled: false
"""


@dataclass
class SparkRun:
    folder: Path
    stdout: str
    stderr: str
    returncode: int
    seconds: float


@pytest.fixture(scope="module")
def spark_run(tmp_path_factory: pytest.TempPathFactory) -> SparkRun:
    root = tmp_path_factory.mktemp("spark_run")
    config = sample_config(root)
    folder = root / "warehouse" / "spark"
    text = config.read_text().replace(str(root / "warehouse" / "journeys.duckdb"), str(folder))
    config.write_text(text + SPARK_BLOCK)
    start = time.monotonic()
    proc = journeys("run", "--config", str(config),
                    env={"DAGSTER_HOME": str(root / "dagster_home")}, timeout=1800)
    seconds = time.monotonic() - start
    print(f"journeys run on Spark: {seconds:.0f} s wall")
    return SparkRun(folder, proc.stdout, proc.stderr, proc.returncode, seconds)


@pytest.fixture(scope="module")
def spark_tables(spark_run: SparkRun):
    """The Spark run's warehouse read by a new engine on its folder (as `journeys report`
    reads it): the tables are found again from the Parquet folders alone."""
    from transforms.spark_engine import SparkEngine, local_session

    assert spark_run.returncode == 0, (spark_run.stdout[-3000:], spark_run.stderr[-3000:])
    session = local_session("observed-journeys-parity")
    eng = SparkEngine(session, location=spark_run.folder)
    yield eng
    eng.close()
    session.stop()


def test_the_spark_run_says_its_engine_and_ends_with_the_dashboard(spark_run: SparkRun) -> None:
    assert spark_run.returncode == 0, (spark_run.stdout[-3000:], spark_run.stderr[-3000:])
    lines = spark_run.stdout.strip().splitlines()
    assert "journeys run: engine spark (local[2]; Parquet tables in the warehouse)" in lines
    # the same load counts as the DuckDB run (tests/e2e: the sample's reconciliation)
    assert re.search(r"^events: 19,368 events of 1,998 customers$", spark_run.stdout, re.M)
    dashboard = Path(lines[-1].split()[-1])
    assert dashboard.name == "index.html" and dashboard.is_file(), lines[-1]


def test_every_warehouse_table_is_the_same_on_both_engines(captured_run: CapturedRun,
                                                            spark_tables) -> None:
    with warehouse.connect(captured_run.warehouse, read_only=True) as duck:
        tables = duck.tables()
        # the whole warehouse, not a part of it: every asset but the dashboard is a table,
        # and so are ingestion's books
        config = sample_config(captured_run.root)  # the run's own config, written again
        assets = {k.to_user_string()
                  for k in build_defs(load_project(config)).resolve_all_asset_keys()}
        expected = (assets - {"dashboard"}) | {"quarantine", "rejected_files",
                                                "ingest_reconciliation", "identity_map"}
        assert expected <= set(tables), sorted(expected - set(tables))
        missing = sorted(set(tables) - set(spark_tables.tables()))
        assert not missing, f"tables the Spark run did not write: {missing}"
        differing = {}
        for t in tables:
            names = [c for c, _ in duck.columns(t)]
            on_spark = [c for c, _ in spark_tables.columns(t)]
            if names != on_spark:
                differing[t] = f"columns {names} vs {on_spark}"
                continue
            kept = ", ".join(ident(c) for c in names if c not in LOAD_TIME_COLUMNS)
            if not kept:
                continue
            sql = f"select {kept} from {ident(t)}"
            left, right = _rows(duck.query(sql)), _rows(spark_tables.query(sql))
            if not same_rows(left, right):
                differing[t] = (f"{len(left)} rows on DuckDB, {len(right)} on Spark; first "
                                f"differing: {_first_difference(left, right)}")
    assert not differing, "\n".join(f"{t}: {why}" for t, why in differing.items())


def test_the_tables_only_a_whole_run_builds_hold_rows(spark_tables) -> None:
    """The tables no transform test builds on Spark (they come only from the assets of a whole
    run) are present and not empty, so the comparison above compares rows."""
    for t in ("ingest_reconciliation_periods", "run_settings", "period_figures",
              "period_funnel", "stage_metric_segments", "journey_map_funnel"):
        n = spark_tables.query(f"select count(*) as n from {ident(t)}").to_pylist()[0]["n"]
        assert n > 0, t


def _rows(table) -> list[tuple]:
    return list(zip(*[c.to_pylist() for c in table.columns], strict=True))


def _first_difference(left: list[tuple], right: list[tuple]) -> str:
    a, b = set(map(repr, left)), set(map(repr, right))
    only_a, only_b = sorted(a - b)[:1], sorted(b - a)[:1]
    return f"DuckDB only {only_a}, Spark only {only_b}"
