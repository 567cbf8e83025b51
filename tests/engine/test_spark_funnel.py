"""The funnel engine on Spark (issue 14): every mode on the sample's events gives DuckDB's rows on
the Spark engine, and the two transforms built on it (`build_journeys`, `build_booking_funnel`)
run unchanged on Spark and give the sample warehouse's tables.

DuckDB (its own fast path) is the reference: `funnel_actors` on both engines, compared as sorted
multisets (tests/engine/conftest.py `same_rows`), column names and order exact. The seconds each
engine took are printed (`-s`).

Needs pyspark (the `spark` extra) and Java 17; skipped with the reason otherwise.
"""

from __future__ import annotations

import time

import pyarrow as pa
import pytest

from tests.conftest import memory_warehouse
from tests.engine.conftest import SPARK_MISSING, CapturedRun, load_tables, same_rows
from transforms import warehouse
from transforms.engine import DuckDBEngine
from transforms.errors import UserError
from transforms.funnel import (
    Exclusion,
    Step,
    TableResult,
    dropped_actors,
    entry_day_completeness,
    funnel,
    funnel_actors,
)
from transforms.sqlutil import ident

_MISSING = SPARK_MISSING

pytestmark = [pytest.mark.spark, pytest.mark.slow,
              pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")]

DAY = 86400
JOURNEY = ["app_opened", "service_viewed", "slot_selected", "booking_created",
           "payment_succeeded"]
ON_SAMPLE = {"actor_col": "customer_id", "event_col": "event_name", "time_col": "event_ts"}

# (id, steps, options): the funnel modes of issue 14 on the sample's events
MODES: list[tuple[str, list, dict]] = [
    ("ordered", JOURNEY, {}),
    ("ordered-1d", JOURNEY, {"window_seconds": DAY}),
    ("strict", ["app_opened", "service_viewed", "salon_viewed"], {"order": "strict"}),
    ("any", JOURNEY, {"order": "any"}),
    ("any-first-excl", JOURNEY, {"order": "any", "reentry": "first",
                                 "exclusions": [Exclusion("payment_failed", 4, 5)]}),
    ("reentry-first", JOURNEY, {"reentry": "first"}),
    ("exclusions", JOURNEY, {"exclusions": [Exclusion("payment_failed", 4, 5),
                                            Exclusion("app_installed", 1, 3)]}),
    ("strict-excl", ["service_viewed", "salon_viewed", "reviews_read"],
     {"order": "strict", "exclusions": [Exclusion("app_opened", 1, 3)]}),
    ("breakdown-first", JOURNEY, {"breakdown": "platform"}),
    ("breakdown-last", JOURNEY, {"breakdown": "channel", "attribution": "last"}),
    ("breakdown-step3", JOURNEY, {"breakdown": "platform", "attribution": "step:3",
                                  "order": "any"}),
    ("hold", ["booking_created", "payment_succeeded", "booking_completed"],
     {"hold": "booking_id", "breakdown": "city", "attribution": "last"}),
    ("hold-strict-first", ["booking_created", "booking_confirmed", "payment_initiated"],
     {"hold": "booking_id", "order": "strict", "reentry": "first"}),
    ("step-windows", ["app_opened", Step("service_viewed", "service_viewed",
                                         window_seconds=3600),
                      Step("slot_selected", "slot_selected", window_seconds=2 * DAY)],
     {"exclusions": [Exclusion("app_installed", 1, 3)]}),
    ("start-end-any-event", ["app_opened", Step("anything")],
     {"start": "2026-10-10", "end": "2026-10-20", "window_seconds": 3 * 3600}),
]


@pytest.fixture(scope="module")
def spark():
    from transforms.spark_engine import local_session

    session = local_session("observed-journeys-funnel-tests")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def sample_on_both(spark, captured_run: CapturedRun):
    """The sample warehouse on Spark (every table, as Arrow) and, for the funnel modes, its
    events on an in-memory DuckDB warehouse (the funnel's temp tables need a writable one)."""
    from transforms.spark_engine import SparkEngine

    eng = SparkEngine(spark)
    duck = memory_warehouse()
    with warehouse.connect(captured_run.warehouse, read_only=True) as wh:
        assert not load_tables(wh, eng, wh.tables())
        duck.register("_events_arrow", wh.query("select * from events"))
        duck.execute("create table events as select * from _events_arrow")
        duck.unregister("_events_arrow")
    yield DuckDBEngine(duck), eng
    eng.close()
    duck.close()


def _rows(result) -> tuple[list[str], list[tuple]]:
    table = result.to_arrow_table() if isinstance(result, TableResult) else result.arrow()
    if hasattr(table, "read_all"):
        table = table.read_all()
    return table.column_names, list(zip(*[c.to_pylist() for c in table.columns], strict=True))


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


@pytest.mark.parametrize(("steps", "options"), [(s, o) for _, s, o in MODES],
                         ids=[m for m, _, _ in MODES])
def test_funnel_mode_on_spark_gives_duckdbs_rows(request, sample_on_both, steps,
                                                 options) -> None:
    duck, eng = sample_on_both
    opts = {**ON_SAMPLE, **options}
    (want_cols, want), duck_s = _timed(lambda: _rows(funnel_actors(duck, "events", steps,
                                                                   **opts)))
    (got_cols, got), spark_s = _timed(lambda: _rows(funnel_actors(eng, "events", steps, **opts)))
    print(f"\nfunnel {request.node.callspec.id}: {len(want)} actors, "
          f"DuckDB {duck_s:.2f} s, Spark {spark_s:.2f} s")
    assert got_cols == want_cols
    assert want, "the mode selects nobody on the sample: pick steps that do"
    assert same_rows(want, got)


def test_funnel_figures_and_helpers_on_spark_match_duckdb(sample_on_both) -> None:
    duck, eng = sample_on_both
    opts = {**ON_SAMPLE, "breakdown": "platform", "exclusions": [Exclusion("payment_failed",
                                                                           4, 5)]}
    want = funnel(duck, "events", JOURNEY, **opts).to_dict()
    got = funnel(eng, "events", JOURNEY, **opts).to_dict()
    assert same_rows([tuple(s.values()) for s in want["steps"]],
                     [tuple(s.values()) for s in got["steps"]])
    def flat(result: dict) -> list[tuple]:
        return [(b["value"], *s.values()) for b in result["breakdown"] for s in b["steps"]]

    assert same_rows(flat(want), flat(got))
    assert [b["value"] for b in want["breakdown"]] == [b["value"] for b in got["breakdown"]]
    assert (want["actors"], want["incomplete_actors"], want["unattributed_actors"]) == \
        (got["actors"], got["incomplete_actors"], got["unattributed_actors"])
    for name in ("dropped", "days"):
        if name == "dropped":
            w = dropped_actors(duck, "events", JOURNEY, 2, **ON_SAMPLE)
            g = dropped_actors(eng, "events", JOURNEY, 2, **ON_SAMPLE)
        else:
            w = entry_day_completeness(duck, funnel_actors(duck, "events", JOURNEY, **ON_SAMPLE))
            g = entry_day_completeness(eng, funnel_actors(eng, "events", JOURNEY, **ON_SAMPLE))
        (wc, wr), (gc, gr) = _rows(w), _rows(g)
        assert wc == gc and wr and same_rows(wr, gr), name


def test_text_times_with_offsets_on_spark_are_utc_instants(sample_on_both) -> None:
    """ISO text with offsets and naive text (UTC) give the same instants on both engines; a
    value that does not parse is the same one-line UserError."""
    duck, eng = sample_on_both
    table = pa.table({
        "actor": ["u1", "u1", "u2", "u2", "u3", "u3"],
        "event": ["signup", "pay", "signup", "pay", "signup", "pay"],
        # u1: pay 3600 s after signup (offsets differ); u2 3601 s; u3 naive text, 1800 s
        "timestamp": ["2026-01-01T10:00:00+02:00", "2026-01-01T09:00:00Z",
                      "2026-01-01T10:00:00Z", " 2026-01-01T13:00:01+02:00",
                      "2026-01-01 10:00:00", "2026-01-01T10:30:00"],
    })
    for e in (duck, eng):
        e.register_arrow("text_events", table)
    want = _rows(funnel_actors(duck, "text_events", ["signup", "pay"], window_seconds=3600))
    got = _rows(funnel_actors(eng, "text_events", ["signup", "pay"], window_seconds=3600))
    assert got[0] == want[0]
    assert same_rows(want[1], got[1])
    assert sorted((r[0], r[2]) for r in got[1]) == [("u1", 2), ("u2", 1), ("u3", 2)]
    # nobody enters: no rows, the same columns
    for order in ("ordered", "any"):
        want = _rows(funnel_actors(duck, "text_events", ["login", "logout"], order=order))
        got = _rows(funnel_actors(eng, "text_events", ["login", "logout"], order=order))
        assert got == want and not want[1]
    bad = table.set_column(2, "timestamp", pa.array(["2026-01-01T10:00:00Z", "soon"] + [
        "2026-01-01T10:00:00Z"] * 4))
    eng.register_arrow("bad_events", bad)
    with pytest.raises(UserError, match=r"1 value\(s\) in time column 'timestamp'"):
        funnel_actors(eng, "bad_events", ["signup", "pay"])


def test_spark_session_outside_utc_is_a_user_error(spark, sample_on_both) -> None:
    _, eng = sample_on_both
    saved = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "Europe/Berlin")
    try:
        with pytest.raises(UserError, match="session time zone is 'Europe/Berlin'"):
            funnel_actors(eng, "events", JOURNEY, **ON_SAMPLE)
    finally:
        spark.conf.set("spark.sql.session.timeZone", saved)


@pytest.mark.parametrize(("module", "function", "tables"), [
    ("transforms.journeys", "build_journeys", ("journeys", "journey_stages", "journeys_wide")),
    ("transforms.bookings", "build_booking_funnel", ("booking_funnel",)),
], ids=["build_journeys", "build_booking_funnel"])
def test_funnel_transform_on_spark_builds_duckdbs_tables(sample_on_both,
                                                         captured_run: CapturedRun,
                                                         module: str, function: str,
                                                         tables: tuple[str, ...]) -> None:
    """The transform, unchanged, on the Spark engine: each table it writes equals the sample
    warehouse's, row for row (sorted multiset, floats to 1e-6) and column for column."""
    import importlib

    from transforms.project import load_project

    _, eng = sample_on_both
    jmap = load_project(captured_run.root / "sources.yaml").journey_map
    _, spark_s = _timed(lambda: getattr(importlib.import_module(module), function)(eng, jmap))
    print(f"\n{function} on Spark: {spark_s:.1f} s")
    with warehouse.connect(captured_run.warehouse, read_only=True) as wh:
        for table in tables:
            want = wh.query(f"select * from {ident(table)}")
            got = eng.query(f"select * from {ident(table)}")
            assert got.column_names == want.column_names, table
            assert want.num_rows > 0, table
            assert same_rows(list(zip(*[c.to_pylist() for c in want.columns], strict=True)),
                             list(zip(*[c.to_pylist() for c in got.columns], strict=True))), \
                table
