"""The funnel engine's engine-neutral path (the one Spark runs, transforms/funnel.py "Execution")
forced on DuckDB, against DuckDB's own path (NumPy for ordered/strict, set-based SQL for any):
identical rows over many option combinations, on the sample's raw events and on small tables
made by hand or drawn at random with many ties. Fast: no JVM.

The DuckDB path is the reference; both must give the same `funnel_actors` rows (as sorted
lists), the same columns in the same order with the same types, and the same `funnel` figures.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.conftest import REPO, memory_warehouse
from transforms.engine import DuckDBEngine, SqlLog, read_sql_log
from transforms.funnel import (
    Exclusion,
    Step,
    _Plan,
    dropped_actors,
    entry_day_completeness,
    funnel,
    funnel_actors,
)
from transforms.spark_sql import to_spark

RAW = REPO / "data" / "sample" / "raw"
DAY = 86400
STEPS = ["app_opened", "service_viewed", "slot_selected", "checkout_started",
         "booking_created"]


@pytest.fixture(scope="module")
def sample_con() -> Iterator[duckdb.DuckDBPyConnection]:
    """The sample's raw clickstream and booking exports as one event table `ev` (actor, event,
    timestamp as ISO text with offsets, platform, city, booking) and `ev_ts` (timestamp as a
    naive UTC TIMESTAMP). Lines that do not parse and times that are not ISO 8601 are left out
    (the ingestion's quarantine does the same)."""
    con = memory_warehouse()
    clicks = (f"read_json('{RAW}/clickstream/*.jsonl', ignore_errors = true, columns = "
              "{'anonymousId': 'varchar', 'userId': 'varchar', 'event': 'varchar', "
              "'timestamp': 'varchar', 'context': 'json', 'properties': 'json'})")
    bookings = f"read_csv('{RAW}/bookings/*.csv', all_varchar = true, ignore_errors = true)"
    con.execute(f"""
        create table ev as
        select * from (
            select coalesce(userId, anonymousId) as actor, event, timestamp,
                   context->>'platform' as platform, context->>'$.location.city' as city,
                   properties->>'booking_id' as booking
            from {clicks}
            union all
            select customer_id, 'booking_' || lower(status), changed_at || 'Z', null, city,
                   booking_id
            from {bookings}
        ) where try_cast(timestamp as timestamptz) is not null or timestamp is null""")
    con.execute("create table ev_ts as select * replace "
                "(timezone('UTC', cast(timestamp as timestamptz)) as timestamp) from ev")
    yield con
    con.close()


def _both(con, fn, *args, **kwargs):
    """fn on DuckDB's path, then on the engine-neutral path."""
    out = []
    for portable in (False, True):
        _Plan._FORCE_PORTABLE = portable
        try:
            out.append(fn(con, *args, **kwargs))
        finally:
            _Plan._FORCE_PORTABLE = False
    return out


def _rows(rel) -> tuple[list[str], list[str], list[tuple]]:
    return rel.columns, [str(t) for t in rel.types], sorted(rel.fetchall(), key=repr)


def assert_same_actors(con, events, steps, **opts) -> list[tuple]:
    native, portable = _both(con, lambda c, *a, **k: _rows(funnel_actors(c, *a, **k)),
                             events, steps, **opts)
    assert portable[0] == native[0]  # columns
    assert portable[1] == native[1]  # types
    assert portable[2] == native[2], opts
    return native[2]


# --- the sample's events, over the option combinations ------------------------------------------

ATTRIBUTIONS = [None, "first", "last", "step:2", "step:4"]
COMBOS = [
    (order, reentry, excl, hold)
    for order, reentry, excl, hold in itertools.product(
        ("ordered", "strict", "any"), ("latest", "first"), (False, True), (None, "city"))
]


@pytest.mark.parametrize(("order", "reentry", "excl", "hold"), COMBOS,
                         ids=["-".join(str(x) for x in c) for c in COMBOS])
@pytest.mark.parametrize("table", ["ev", "ev_ts"])
def test_portable_path_gives_duckdbs_rows_on_the_sample(sample_con, table, order, reentry,
                                                        excl, hold) -> None:
    i = COMBOS.index((order, reentry, excl, hold))
    attribution = ATTRIBUTIONS[i % len(ATTRIBUTIONS)]
    opts: dict = {"order": order, "reentry": reentry, "hold": hold,
                  "window_seconds": [DAY, 3 * DAY, 14 * DAY][i % 3]}
    if excl:
        opts["exclusions"] = [Exclusion("search_performed", 2, 4),
                              Exclusion("favourite_added", 1, 2)]
    if attribution:
        opts.update(breakdown="platform", attribution=attribution)
    steps = STEPS if order != "strict" else [
        "app_opened", "service_viewed", "salon_viewed", "reviews_read"]
    rows = assert_same_actors(sample_con, table, steps, **opts)
    assert len(rows) > 50


@pytest.mark.parametrize("opts", [
    {"start": "2026-10-05", "end": "2026-10-20"},
    {"start": dt.datetime(2026, 10, 3, 12), "end": dt.datetime(2026, 10, 9, 18, 30),
     "order": "any", "reentry": "first"},
    {"start": "2026-10-10T00:00:00+02:00", "order": "strict"},
], ids=["dates", "datetimes-any-first", "offset-start-strict"])
def test_portable_path_start_and_end(sample_con, opts) -> None:
    steps = STEPS if opts.get("order") != "strict" else ["app_opened", "service_viewed"]
    assert assert_same_actors(sample_con, "ev", steps, window_seconds=2 * DAY, **opts)


@pytest.mark.parametrize("order", ["ordered", "strict"])
def test_portable_path_per_step_windows(sample_con, order) -> None:
    steps = ["app_opened", Step("service_viewed", "service_viewed", window_seconds=600),
             Step("salon_viewed", "salon_viewed", window_seconds=3600),
             Step("slot_selected", "slot_selected")]
    for excl in ([], [Exclusion("reviews_read", 2, 4), Exclusion("search_performed", 1, 3)]):
        assert assert_same_actors(sample_con, "ev", steps, order=order, exclusions=excl,
                                  breakdown="city", attribution="last")


@pytest.mark.parametrize("order", ["ordered", "strict", "any"])
def test_portable_path_filters_and_any_event_steps(sample_con, order) -> None:
    """Steps with filters and a step matching any event: an event can match several steps."""
    steps = [Step("ios open", "app_opened", {"platform": "ios"}), Step("anything"),
             Step("berlin view", "service_viewed", {"city": "Berlin"}),
             Step("view, no booking", "service_viewed", {"booking": None})]
    assert assert_same_actors(sample_con, "ev", steps, order=order, window_seconds=DAY,
                              breakdown="platform", attribution="step:3")


def test_portable_funnel_figures_and_helpers_match(sample_con) -> None:
    opts = {"breakdown": "platform", "exclusions": [Exclusion("search_performed", 2, 4)]}
    native, portable = _both(sample_con, lambda c: funnel(c, "ev", STEPS, **opts).to_dict())
    # the same actors, so the same counts; means are sums of doubles, whose last bit depends on
    # the order DuckDB adds them in (the rows of the two paths' tables come in different orders)
    def flat(result: dict) -> list:
        rows = [("", *s.values()) for s in result["steps"]]
        rows += [(b["value"], *s.values()) for b in result["breakdown"] for s in b["steps"]]
        return [v for row in rows for v in row]

    got, want = flat(portable), flat(native)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert (g == pytest.approx(w, rel=1e-12)) if isinstance(w, float) else g == w
    assert {k: v for k, v in portable.items() if k not in ("steps", "breakdown")} == \
        {k: v for k, v in native.items() if k not in ("steps", "breakdown")}
    native, portable = _both(sample_con, lambda c: _rows(dropped_actors(c, "ev", STEPS, 2)))
    assert portable == native and native[2]
    native, portable = _both(sample_con, lambda c: _rows(entry_day_completeness(
        c, funnel_actors(c, "ev", STEPS, order="any"))))
    assert portable == native and native[2]


def test_portable_statements_all_transpile_to_spark(tmp_path: Path) -> None:
    """Every statement of the engine-neutral path (bar the DuckDB-only time zone pinning, which
    Spark replaces by its session check) passes the Spark dialect's check."""
    log = tmp_path / "sql.jsonl"
    con = memory_warehouse()
    eng = DuckDBEngine(con, SqlLog(log))
    con.execute("create table e (actor varchar, event varchar, ts timestamp, p varchar, "
                "h varchar)")
    con.execute("insert into e values ('a', 'x', '2026-01-01 00:00:00', 'i', 'h1'), "
                "('a', 'y', '2026-01-01 01:00:00', 'j', 'h1')")
    opts = [{"order": o, "exclusions": [Exclusion("z", 1, 2)], "breakdown": "p",
             "attribution": "last", "hold": h, "time_col": "ts"}
            for o in ("ordered", "strict", "any") for h in (None, "h")]
    _Plan._FORCE_PORTABLE = True
    try:
        for o in opts:
            funnel(eng, "e", ["x", "y"], **o)
    finally:
        _Plan._FORCE_PORTABLE = False
    texts = {r["sql"] for r in read_sql_log(log)}
    # DuckDB only, not run on Spark: the time zone pinning (a session check there) and the
    # definition macros look-up (Spark inlines them)
    texts = {t for t in texts if "TimeZone" not in t and "duckdb_functions" not in t}
    assert len(texts) > 10
    for text in texts:
        to_spark(text)  # raises NotPortable


# --- small tables made by hand ------------------------------------------------------------------

def load(con, rows, name="t"):
    """rows: (actor, event, timestamp text, breakdown b, hold h)."""
    con.execute(f"create or replace table {name} (actor varchar, event varchar, "
                "timestamp varchar, b varchar, h varchar)")
    con.executemany(f"insert into {name} values (?, ?, ?, ?, ?)",
                    [tuple(r) + (None,) * (5 - len(r)) for r in rows])
    return name


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    c = memory_warehouse()
    yield c
    c.close()


T0 = "2026-01-01T10:00:00Z"
HAND = {
    # events of different steps at one instant count in step order; identical rows
    "ties": [("u1", "b", T0), ("u1", "a", T0), ("u1", "a", T0), ("u1", "c", T0, "x"),
             ("u2", "c", T0), ("u2", "b", T0), ("u2", "a", "2026-01-01T10:00:00.000001Z")],
    # an exclusion at step i's instant or at step j's spoils nothing; between, it does
    "exclusion-edges": [("u1", "a", T0), ("u1", "x", T0), ("u1", "b", "2026-01-01T11:00:00Z"),
                        ("u1", "x", "2026-01-01T11:00:00Z"),
                        ("u2", "a", T0), ("u2", "x", "2026-01-01T10:30:00Z"),
                        ("u2", "b", "2026-01-01T11:00:00Z"), ("u2", "a", "2026-01-01T12:00Z")],
    # repeated steps, re-entries, the window boundary (inclusive) and one microsecond past it
    "repeats": [("u1", "a", T0), ("u1", "a", "2026-01-01T11:00:00Z"),
                ("u1", "b", "2026-01-02T10:00:00Z"), ("u1", "c", "2026-01-02T10:00:00.000001Z"),
                ("u2", "b", T0), ("u2", "a", T0, "p"), ("u2", "c", "2026-01-01T09:00:00Z")],
    # NULL actors, times and held values take no part; offsets are honoured
    "nulls-offsets": [(None, "a", T0), ("u1", "a", None), ("u1", "a", "2026-01-01T12:00:00+02:00",
                      None, "h1"), ("u1", "b", "2026-01-01T10:30:00Z", "q", "h1"),
                      ("u1", "c", "2026-01-01T10:40:00Z", None, None),
                      ("u1", "c", "2026-01-01T10:50:00Z", "r", "h2"),
                      ("u1", "a", "2026-01-01T10:45:00Z", "s", "h2")],
}


@pytest.mark.parametrize("case", list(HAND))
@pytest.mark.parametrize("order", ["ordered", "strict", "any"])
@pytest.mark.parametrize("variant", ["plain", "first-excl", "bd-last-hold", "bd-step2"])
def test_portable_path_on_hand_made_tables(con, case, order, variant) -> None:
    opts: dict = {"order": order, "window_seconds": DAY}
    if variant == "first-excl":
        opts.update(reentry="first", exclusions=[Exclusion("x", 1, 2)])
    elif variant == "bd-last-hold":
        opts.update(breakdown="b", attribution="last", hold="h")
    elif variant == "bd-step2":
        opts.update(breakdown="b", attribution="step:2", exclusions=[Exclusion("x", 1, 3)])
    assert_same_actors(con, load(con, HAND[case]), ["a", "b", "c"], **opts)


def test_portable_path_on_no_rows(con) -> None:
    for order in ("ordered", "strict", "any"):
        assert assert_same_actors(con, load(con, [("u1", "z", T0)]), ["a", "b"],
                                  order=order) == []


# --- random tables with many ties ---------------------------------------------------------------

@pytest.mark.parametrize("seed", range(12))
def test_portable_path_on_random_tables(con, seed) -> None:
    rnd = random.Random(seed)
    base = dt.datetime(2026, 3, 1)
    events = ["a", "b", "c", "x"]
    rows = [(f"u{rnd.randint(0, 25)}", rnd.choice(events),
             (base + dt.timedelta(hours=rnd.randint(0, 24 * 6))).isoformat() + "Z",
             rnd.choice(["p", "q", None]), rnd.choice(["h1", "h2", None]))
            for _ in range(400)]
    load(con, rows)
    for order in ("ordered", "strict", "any"):
        opts: dict = {"order": order, "window_seconds": rnd.choice([3600, DAY, 3 * DAY]),
                      "reentry": rnd.choice(["latest", "first"]),
                      "breakdown": "b", "attribution": rnd.choice(["first", "last", "step:2"])}
        if rnd.random() < 0.5:
            opts["exclusions"] = [Exclusion("x", 1, rnd.choice([2, 3]))]
        if rnd.random() < 0.4:
            opts["hold"] = "h"
        steps: list = ["a", "b", "c"]
        if order != "any" and rnd.random() < 0.4:
            steps = ["a", Step("b", "b", window_seconds=rnd.choice([1800, 7200])), "c"]
        if rnd.random() < 0.3:
            steps = [*steps, "a"]  # a repeated step
        assert_same_actors(con, "t", steps, **opts)
