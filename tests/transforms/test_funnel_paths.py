"""The ordered/strict engine's less travelled paths, against the per-actor reference of
test_funnel_properties and hand-worked cases: hash collisions of the partition key (the exact
dense-rank fallback), typed TIMESTAMP columns (no text check) and histories too long for the
combined time-and-step sort key (the two-column sort)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given

from tests.transforms.test_funnel_properties import (
    COMMON,
    engine_actors,
    engine_opts,
    engine_steps,
    load,
    ref_actors,
    scenario,
)
from transforms import funnel as funnel_module
from transforms.funnel import funnel, funnel_actors


@pytest.fixture(scope="module")
def con(module_con):
    return module_con


def expected_for(rows, steps, opts):
    return ref_actors(rows, steps, window=opts["window"], order=opts["order"],
                      reentry=opts["reentry"], exclusions=opts.get("exclusions", ()),
                      attribution=opts["attribution"], start=opts.get("start"),
                      end=opts.get("end"), with_breakdown=True,
                      step_windows=opts.get("step_windows"), hold=opts["hold"])


@pytest.fixture
def colliding(monkeypatch):
    """Every actor (and held value) hashes to one of two keys: three actors always collide."""
    monkeypatch.setattr(funnel_module._Plan, "_KEY_HASH", "(hash({}) % 2)")


@COMMON
@given(scenario)
def test_colliding_key_hashes_give_the_reference_result(con, colliding, case):
    rows, steps, opts = case
    load(con, rows)
    got = engine_actors(con, "ev", engine_steps(steps, opts), with_breakdown=True,
                        **engine_opts(opts))
    assert got == expected_for(rows, steps, opts)


def test_a_collision_does_not_merge_two_actors(con, monkeypatch):
    # Every key hashes to 0. u1 opens at 12:00; u2 (no entry of its own) views at 12:01.
    # Merged, u1 would reach step 2 with u2's view; told apart, u1 stops at step 1 and u2 is
    # not in the funnel: counts [1, 0].
    monkeypatch.setattr(funnel_module._Plan, "_KEY_HASH", "cast(0 as ubigint)")
    con.execute("create or replace table ev (actor varchar, event varchar, timestamp varchar)")
    con.executemany("insert into ev values (?, ?, ?)", [
        ("u1", "open", "2026-03-01 12:00:00"), ("u2", "view", "2026-03-01 12:01:00")])
    for order in ("ordered", "strict"):
        result = funnel(con, "ev", ["open", "view"], window_seconds=3600, order=order)
        assert [s["count"] for s in result.steps] == [1, 0], order


@COMMON
@given(scenario)
def test_typed_timestamps_give_the_reference_result(con, case):
    rows, steps, opts = case
    con.execute("create or replace table ev (actor varchar, event varchar, "
                "timestamp timestamp, bd varchar, hv varchar)")
    if rows:  # the UTC instants themselves, as naive TIMESTAMPs
        con.executemany("insert into ev values (?, ?, ?, ?, ?)",
                        [(r["actor"], r["event"], r["ts"], r["bd"], r["hv"]) for r in rows])
    got = engine_actors(con, "ev", engine_steps(steps, opts), with_breakdown=True,
                        **engine_opts(opts))
    assert got == expected_for(rows, steps, opts)


@COMMON
@given(scenario)
def test_a_history_of_thousands_of_years_gives_the_reference_result(con, case):
    # one stray event dated 9026 (a typo for 2026) of an actor that never enters: the
    # history spans 7,000 years, more than the combined sort key holds (2,284 years)
    rows, steps, opts = case
    stray = {"actor": "typo", "event": "x", "ts": dt.datetime(9026, 3, 1, 12), "offset": "Z",
             "bd": None, "hv": "k1"}
    rows = [*rows, stray]
    load(con, rows)
    got = engine_actors(con, "ev", engine_steps(steps, opts), with_breakdown=True,
                        **engine_opts(opts))
    assert got == expected_for(rows, steps, opts)


def test_same_instant_steps_count_in_step_order_over_a_long_history(con):
    # u1 pays and signs up at the same instant, pay listed first: steps count in step order,
    # so u1 converts (reach 2). The stray 9026 event of u9 (a typo) makes the history 7,000
    # years long, more than the combined sort key holds; u9 never signs up. Counts [1, 1];
    # u1 is complete (its minute ended long before the end of the data, in 9026).
    con.execute("create or replace table ev (actor varchar, event varchar, timestamp varchar)")
    con.executemany("insert into ev values (?, ?, ?)", [
        ("u1", "pay", "2026-03-01 12:00:00"), ("u1", "signup", "2026-03-01 12:00:00"),
        ("u9", "pay", "9026-03-01 12:00:00")])
    for order in ("ordered", "strict"):
        result = funnel(con, "ev", ["signup", "pay"], window_seconds=60, order=order)
        assert [s["count"] for s in result.steps] == [1, 1], order
    rows = funnel_actors(con, "ev", ["signup", "pay"], window_seconds=60).fetchall()
    assert rows == [("u1", dt.datetime(2026, 3, 1, 12), 2, dt.datetime(2026, 3, 1, 12),
                     dt.datetime(2026, 3, 1, 12), True)]
