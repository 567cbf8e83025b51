"""The parts of the benchmark suite that decide its verdicts, on hand-built inputs: the pandas
funnel (expected figures worked out by hand), the comparisons and the progress-line parser."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from bench import funnel as F
from bench import mining as M
from bench.suite import parse_size, row_counts, run_steps

T0 = dt.datetime(2026, 1, 1)


def _t(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def test_pandas_funnel_follows_the_rule() -> None:
    steps = ["a", "b", "c"]
    window = 10 * 3600
    df = pd.DataFrame([
        # x: a@0, b@1, c@2 -> step 3; b->a... times 1 h and 1 h
        ("x", "a", _t(0)), ("x", "b", _t(1)), ("x", "c", _t(2)),
        # y: a@0, b@11 is outside the window (10 h) -> that attempt stops at 1; the re-entry
        # a@5 reaches b@11 (6 h) and c@12 (1 h): the furthest attempt counts -> step 3
        ("y", "a", _t(0)), ("y", "a", _t(5)), ("y", "b", _t(11)), ("y", "c", _t(12)),
        # z: b before a does not count; a@3 then c@4 without b -> step 1
        ("z", "b", _t(0)), ("z", "a", _t(3)), ("z", "c", _t(4)),
        # w: a and b at the same instant count in step order -> step 2, 0 s
        ("w", "b", _t(1)), ("w", "a", _t(1)), ("w", "other", _t(1)),
    ], columns=["actor", "event", "timestamp"])
    got = F.pandas_funnel(df, steps, window)
    # step 1: x y z w; step 2: x (1 h) y (6 h) w (0 h); step 3: x (1 h) y (1 h)
    assert [s["count"] for s in got] == [4, 3, 2]
    assert got[0]["median"] is None and got[0]["mean"] is None
    assert got[1]["median"] == 3600.0 and got[1]["mean"] == (3600 + 6 * 3600 + 0) / 3
    assert got[2]["median"] == 3600.0 and got[2]["mean"] == 3600.0


def test_funnel_differences_name_what_differs() -> None:
    a = [{"count": 4, "median": None, "mean": None}, {"count": 3, "median": 10.0, "mean": 5.0}]
    assert F.differences(a, [dict(s) for s in a]) == []
    assert F.differences(a, [a[0], {"count": 3, "median": 10.0, "mean": 5.0 + 5e-7}]) == []
    b = [a[0], {"count": 2, "median": 10.0, "mean": 5.1}]
    assert F.differences(a, b) == ["step 2 count 3 against 2", "step 2 mean 5.0 against 5.1"]
    assert F.differences(a, a[:1]) == ["2 steps against 1"]


def test_mining_compare_covers_every_result() -> None:
    ours = {k: f"{k}-digest" for k in M.COMPARED}
    assert M.compare(ours, dict(ours)) == []
    for key in M.COMPARED:
        assert M.compare(ours, {**ours, key: "other"}) == [key]


def test_run_steps_from_progress_lines() -> None:
    log = "\n".join([
        "journeys run: partitions 2026-09-30 … 2026-10-31 (32 days), config x.yaml",
        "  raw_bookings     2026-10-01 … 2026-10-30: read 2,176, loaded 2,129 (32 partitions)",
        "  raw_bookings                         32 partitions  took    1.7 s       3.2 s elapsed",
        "  events                           19,368 rows        took    0.8 s       8.9 s elapsed",
        "  journeys                          1,998 rows        took    0.3 s      11.0 s elapsed",
        "  journey_stages                    5,247 rows                           11.0 s elapsed",
        "  dashboard                                           took    2.7 s      22.0 s elapsed",
        "events: 19,368 events of 1,998 customers",
    ])
    assert run_steps(log) == [
        {"step": "raw_bookings", "tables": 1, "wall_s": 1.7},
        {"step": "events", "tables": 1, "wall_s": 0.8},
        {"step": "journeys", "tables": 2, "wall_s": 0.3},
        {"step": "dashboard", "tables": 1, "wall_s": 2.7},
    ]
    counts = row_counts(log)
    assert counts["journeys"] == 1998 and counts["journey_stages"] == 5247
    assert counts["raw_bookings"] == 32 and "dashboard" not in counts


def test_sizes() -> None:
    assert [parse_size(s) for s in ("20k", "1m", "10M", "2500", "1.5m")] == [
        20_000, 1_000_000, 10_000_000, 2500, 1_500_000]
