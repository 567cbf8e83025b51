"""The Spark engine on a local SparkSession: each dialect rule gives DuckDB's values on Spark,
the engine's catalog operations match the DuckDB engine's, the sample's captured statements
replayed on both engines give the same rows, and whole transforms give the same tables.

Needs pyspark (the `spark` extra) and Java 17; skipped with the reason otherwise. About 1 GB of
memory for the JVM and a few minutes.
"""

from __future__ import annotations

import datetime as dt
import time

import duckdb
import pyarrow as pa
import pytest

from tests.engine.conftest import SPARK_MISSING, CapturedRun, load_tables, replay, same_rows
from transforms import warehouse
from transforms.definitions import create_macros
from transforms.engine import DuckDBEngine
from transforms.sqlutil import ident

_MISSING = SPARK_MISSING

pytestmark = [pytest.mark.spark, pytest.mark.slow,
              pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")]


@pytest.fixture(scope="module")
def spark():
    from transforms.spark_engine import local_session

    session = local_session("observed-journeys-tests")
    yield session
    session.stop()


@pytest.fixture
def engines(spark):
    from transforms.spark_engine import SparkEngine

    duck = duckdb.connect()
    duck.execute("SET TimeZone = 'UTC'")
    create_macros(duck)
    eng = SparkEngine(spark)
    yield DuckDBEngine(duck), eng
    eng.close()
    duck.close()


V = pa.table({
    "t": pa.array([3, 1, None, 2], pa.int64()),
    "x": pa.array(["c", "a", "n", None]),
    "amount": pa.array([1, 2, 2, None], pa.decimal128(18, 2)),
    "y": pa.array([1.0, 2.0, 3.0, 4.0]),
    "l": pa.array([[10, 20, 30]] * 4, pa.list_(pa.int64())),
    "t1": pa.array([dt.datetime(2024, 1, 1, 0, 0, 0)] * 4, pa.timestamp("us")),
    "t2": pa.array([dt.datetime(2024, 1, 1, 0, 1, 30, 500000)] * 4, pa.timestamp("us")),
    "d1": pa.array([dt.date(2024, 2, 1)] * 4, pa.date32()),
    "d2": pa.array([dt.date(2024, 3, 1)] * 4, pa.date32()),
})

# (DuckDB SQL over V, the value worked out by hand)
RULES = [
    # t ascending, NULL t last; the NULL x stays (at t = 2)
    ("select list(x order by t) from v", ["a", None, "c", "n"]),
    ("select list(x order by t desc) from v", ["c", None, "a", "n"]),
    ("select list(x order by t desc nulls first) from v", ["n", "c", None, "a"]),
    ("select len(list(x)) from v", 4),
    ("select any_value(l[1]) from v", 10),
    ("select any_value(l[-1]) from v", 30),
    ("select any_value(l[4]) from v", None),
    ("select any_value(l[2:3]) from v", [20, 30]),
    ("select any_value(l[-2:]) from v", [20, 30]),
    ("select any_value(1 / 3.0) from v", 1 / 3),
    ("select sum(y) / 86400.0 from v", 10 / 86400),
    ("select avg(amount) from v", 5 / 3),  # (1 + 2 + 2) / 3, not 1.666667
    ("select quantile_cont(y, 0.9) from v", 3.7),  # 3 + 0.7 * (4 - 3)
    ("select median(y) from v", 2.5),
    ("select any_value(epoch(t2 - t1)) from v", 90.5),
    ("select any_value(epoch(t2)) from v", 1704067290.5),
    ("select any_value(d2 - d1) from v", 29),  # 2024 is a leap year
    ("select step_conversion(count(*), 8) from v", 0.5),
    # zipped unnests: (1, 10), (2, 20), (3, NULL)
    ("select count(*) from (select unnest([1, 2, 3]) as a, unnest([10, 20]) as b)", 3),
    ("select sum(a * 100 + coalesce(b, 0)) from (select unnest([1, 2, 3]) as a, "
     "unnest([10, 20]) as b)", 630),
    ("select any_value(json_extract_string('{\"k\": {\"a\": 2}}', ?)) from v", "{\"a\":2}"),
    ("select any_value(len(l)) from v", 3),
    # t in order 1, 2, 3, NULL: lag(t) - t is NULL, -1, -1, NULL
    ("select max(d) from (select lag(t) over w - t as d from v window w as (order by t))", -1),
    ("select dropout_rate(count(*), 0) from v", None),
    # TRY_CAST is Spark syntax too: NULL where the text is no integer
    ("select any_value(try_cast('12' as integer)) from v", 12),
    ("select count(try_cast(x as integer)) from v", 0),
    # the CTE hint goes; the rows stay (4 rows of v, 3 with a t)
    ("with w as not materialized (select t from v) select count(t) from w", 3),
    ("with w as materialized (select t from v) select count(*) from w", 4),
]


@pytest.mark.parametrize(("sql", "expected"), RULES)
def test_each_rule_gives_duckdbs_value_on_spark(engines, sql: str, expected: object) -> None:
    duck, eng = engines
    duck.register_arrow("v", V)
    eng.register_arrow("v", V)
    params = ['$."k"'] if "?" in sql else None
    on_duckdb = duck.query(sql, params).columns[0].to_pylist()
    on_spark = eng.query(sql, params).columns[0].to_pylist()
    assert same_rows([(on_duckdb[0],)], [(expected,)])
    assert same_rows([(on_spark[0],)], [(expected,)])


def test_catalog_operations_match_the_duckdb_engine(engines) -> None:
    duck, eng = engines
    for e in (duck, eng):
        e.register_arrow("src", pa.table({"d": [1, 1, 2, 3], "x": ["a", "b", "c", "d"]}))
        e.create_table_as("p", "select d, x from src where d < ?", [3])
        e.execute("insert into p select d, x from src where d = ?", [3])
        e.execute("delete from p where x = ?", ["b"])
        e.replace_partition("p", "d = ?", [1], "select 1, 'z'")
        e.execute("create table if not exists q (a INTEGER, b VARCHAR)")
        e.execute("drop table if exists nothing_here")
    rows = {e.name: e.query("select d, x from p order by d, x").to_pylist() for e in (duck, eng)}
    assert rows["duckdb"] == rows["spark"] == [
        {"d": 1, "x": "z"}, {"d": 2, "x": "c"}, {"d": 3, "x": "d"}]
    assert {"p", "q", "src"} <= set(eng.tables())
    assert [c for c, _ in eng.columns("q")] == ["a", "b"]
    assert eng.query("select count(*) as n from q").to_pylist() == [{"n": 0}]


def test_sample_statements_replayed_on_spark_give_duckdbs_rows(spark,
                                                               captured_run: CapturedRun) -> None:
    from transforms.spark_engine import SparkEngine

    types = captured_run.column_types()
    with warehouse.connect(captured_run.warehouse, read_only=True) as duck:
        eng = SparkEngine(spark, column_types=types)
        tables = duck.tables()
        started = time.perf_counter()
        refused = load_tables(duck, eng, tables)
        loaded_s = time.perf_counter() - started
        out = replay(captured_run.statements, duck, eng, set(tables) - set(refused), types)
        eng.close()
    print(f"\nSpark replay of {len(captured_run.statements)} distinct statements: "
          f"{out.summary()}; {len(tables) - len(refused)} tables handed over in {loaded_s:.1f} s")
    assert not refused, refused
    assert not out.differing, "\n".join(f"{a}: {b}" for a, b in out.differing)
    assert not out.spark_errors, "\n".join(f"{a}: {b}" for a, b in out.spark_errors)
    assert len(out.identical) + len(out.names_differ) > 150


# transforms run unchanged on the Spark engine, in pipeline order (a later one reads what an
# earlier one built on Spark), with the tables each writes; `journeys` and `booking_funnel` are
# not here: they build on transforms.funnel, DuckDB's relational API and ASOF joins
TRANSFORMS: list[tuple[str, str, tuple[str, ...]]] = [
    ("transforms.events", "build_events", ("identity_map", "events")),
    ("transforms.dashboard_tables", "build_source_summary", ("source_summary",)),
    ("transforms.stages", "build_stage_events", ("stage_events",)),
    ("transforms.purchases", "build_purchases", ("purchases",)),
    ("transforms.stage_funnels", "build_funnels",
     ("funnel_steps", "funnel_cohorts", "funnel_segments")),
    ("transforms.stage_funnels", "build_transitions",
     ("stage_transitions", "stage_transition_segments")),
    ("transforms.bookings", "build_booking_outcomes", ("booking_outcomes",)),
    ("transforms.bookings", "build_payment_failures", ("payment_attempts", "payment_failures")),
    ("transforms.journey_findings", "build_findings", ("findings", "finding_days")),
    ("transforms.daily_rates", "build_daily_stage_rates", ("daily_stage_rates",)),
    ("transforms.repeat", "build_repeat_purchase", ("repeat_purchase", "purchase_frequency")),
    ("transforms.repeat", "build_retention", ("retention_cohorts", "lifecycle")),
    ("transforms.repeat_experience", "build_repeat_by_experience", ("repeat_by_experience",)),
    ("transforms.journey_map_tables", "build_stage_touchpoints",
     ("stage_touchpoints", "stage_touchpoint_segments")),
    ("transforms.journey_map_tables", "build_stage_pains",
     ("stage_pains", "journey_map_funnel", "stage_pain_segments", "stage_exit_events")),
    ("transforms.journey_map_tables", "build_stage_metrics",
     ("stage_metrics", "stage_metric_segments")),
    ("transforms.journey_mining", "build_mining_tables",
     ("mining_log", "variants", "journey_variants", "dfg_edges", "dfg_endpoints",
      "dropoff_points", "conformance_overall", "conformance_deviations",
      "stage_event_variants", "stage_returns")),
    ("transforms.dashboard_tables", "build_stage_time_distribution",
     ("stage_time_distribution",)),
    ("transforms.dashboard_tables", "build_payment_failure_matrix", ("payment_failure_matrix",)),
    ("transforms.dashboard_tables", "build_repeat_so_far", ("repeat_so_far",)),
    ("transforms.dashboard_tables", "build_repeat_gaps", ("repeat_gaps",)),
]


def _arguments(function: str, eng, project, tmp_path) -> tuple:
    """The arguments the pipeline's asset passes (pipelines/defs/*/assets.py), after the
    engine; the journey map for most."""
    from transforms.settings import read_settings

    match function:
        case "build_events":
            return (project.config,)
        case "build_source_summary" | "build_stage_time_distribution" | "build_repeat_so_far" \
                | "build_repeat_gaps":
            return ()
        case "build_stage_metrics":
            return (project.journey_map, project.config.currency)
        case "build_mining_tables":
            return (project.journey_map, tmp_path / "models")
        case "build_payment_failure_matrix":
            return (read_settings(eng),)
    return (project.journey_map,)


@pytest.fixture(scope="module")
def sample_on_spark(spark, captured_run: CapturedRun):
    """Every table of the sample warehouse handed to one Spark engine, and the warehouse."""
    from transforms.spark_engine import SparkEngine

    eng = SparkEngine(spark)
    with warehouse.connect(captured_run.warehouse, read_only=True) as duck:
        assert not load_tables(duck, eng, duck.tables())
        yield eng, duck
    eng.close()


@pytest.mark.parametrize(("module", "function", "tables"), TRANSFORMS,
                         ids=[f for _, f, _ in TRANSFORMS])
def test_transform_on_spark_builds_duckdbs_tables(sample_on_spark, captured_run: CapturedRun,
                                                  tmp_path, module: str, function: str,
                                                  tables: tuple[str, ...]) -> None:
    """The transform, unchanged, on the Spark engine: each table it writes equals the sample
    warehouse's, row for row (sorted multiset, floats to 1e-6) and column for column."""
    import importlib

    from transforms.project import load_project

    eng, duck = sample_on_spark
    project = load_project(captured_run.root / "sources.yaml")
    started = time.perf_counter()
    getattr(importlib.import_module(module), function)(
        eng, *_arguments(function, eng, project, tmp_path))
    print(f"\n{function} on Spark: {time.perf_counter() - started:.1f} s")
    for table in tables:
        want = duck.query(f"select * from {ident(table)}")
        got = eng.query(f"select * from {ident(table)}")
        assert got.column_names == want.column_names, table
        assert same_rows(list(zip(*[c.to_pylist() for c in want.columns], strict=True)),
                         list(zip(*[c.to_pylist() for c in got.columns], strict=True))), table


def test_distinct_raw_records_on_spark_is_duckdbs(sample_on_spark, captured_run: CapturedRun
                                                  ) -> None:
    """The events asset check's count of raw record identities, the same on both engines."""
    from transforms.events import distinct_raw_records
    from transforms.project import load_project

    eng, duck = sample_on_spark
    cfg = load_project(captured_run.root / "sources.yaml").config
    n = distinct_raw_records(duck, cfg)
    assert n == distinct_raw_records(eng, cfg) == duck.query(
        "select count(*) as n from events").column("n")[0].as_py()
