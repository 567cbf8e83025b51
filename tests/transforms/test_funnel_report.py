"""Per-step figures and their text form (transforms/funnel_report.py), on hand-built
`funnel_actors`-shaped tables; every expected value is worked out by hand in the comments."""

from __future__ import annotations

import duckdb
import pytest

from transforms.funnel import FunnelResult
from transforms.funnel_report import (
    _fmt_ratio,
    _fmt_seconds,
    render_steps,
    step_stats,
    step_stats_by_breakdown,
)

NAMES = ["visit", "cart", "pay"]


def actors_table(con, rows, name="fa"):
    """rows: (actor, furthest_step, seconds from entry to step 2, to step 3, complete, value,
    attributed); entry at 2026-01-01 00:00:00."""
    con.execute(f"""
        create or replace table {name} (actor varchar, entry_ts timestamp, furthest_step int,
            step_1_ts timestamp, step_2_ts timestamp, step_3_ts timestamp, complete boolean,
            breakdown_value varchar, attributed boolean)""")
    t0 = "timestamp '2026-01-01 00:00:00'"
    for actor, reach, s2, s3, complete, value, attributed in rows:
        con.execute(
            f"insert into {name} values (?, {t0}, ?, {t0}, "
            f"{t0} + to_seconds(?::bigint), {t0} + to_seconds(?::bigint), ?, ?, ?)",
            [actor, reach, s2, s3, complete, value, attributed])
    return name


# a, b reach pay; c reaches cart; d, e stop at visit. Step 2 after 10, 20, 60 s (a, b, c);
# step 3 after 100 and 300 s from entry (a, b), i.e. 90 and 280 s after their cart.
ROWS = [
    ("a", 3, 10, 100, True, "ios", True),
    ("b", 3, 20, 300, False, "web", True),
    ("c", 2, 60, None, True, "ios", True),
    ("d", 1, None, None, True, "web", True),
    ("e", 1, None, None, False, None, False),
]


def test_per_step_figures(con):
    s = step_stats(con, actors_table(con, ROWS), NAMES)
    # n = 5, 3, 2 (cumulative: reached at least k)
    assert [x["count"] for x in s] == [5, 3, 2]
    assert [x["step"] for x in s] == [1, 2, 3] and [x["name"] for x in s] == NAMES
    # conversion n_k/n_1 = 1, 3/5, 2/5
    assert [x["conversion"] for x in s] == pytest.approx([1.0, 0.6, 0.4])
    # step conversion n_k/n_(k-1) = 1, 3/5, 2/3
    assert [x["step_conversion"] for x in s] == pytest.approx([1.0, 0.6, 2 / 3])
    # dropout 1 - n_k/n_(k-1) = 0, 2/5, 1/3
    assert [x["dropout_rate"] for x in s] == pytest.approx([0.0, 0.4, 1 / 3])
    # drop-off n_(k-1) - n_k = 0, 2, 1
    assert [x["dropoff_count"] for x in s] == [0, 2, 1]
    # step 1 has no time to convert
    assert [s[0][f"{q}_seconds_to_convert"] for q in ("median", "p75", "p90", "mean")] == \
        [None] * 4
    # step 2 over a, b, c: [10, 20, 60]. median 20; p75 at rank 0.75*2 = 1.5 -> 20 + .5*40 = 40;
    # p90 at rank 1.8 -> 20 + .8*40 = 52; mean 90/3 = 30
    assert [s[1][f"{q}_seconds_to_convert"] for q in ("median", "p75", "p90", "mean")] == \
        pytest.approx([20, 40, 52, 30])
    # step 3 over a, b: cart -> pay [90, 280]. median 185; p75 at rank .75 -> 90 + .75*190 =
    # 232.5; p90 at rank .9 -> 90 + .9*190 = 261; mean 185
    assert [s[2][f"{q}_seconds_to_convert"] for q in ("median", "p75", "p90", "mean")] == \
        pytest.approx([185, 232.5, 261, 185])


def test_complete_only_leaves_incomplete_actors_out(con):
    s = step_stats(con, actors_table(con, ROWS), NAMES, complete_only=True)
    # complete: a (3), c (2), d (1) -> n = 3, 2, 1; conversion 1, 2/3, 1/3; step conv 1, 2/3, 1/2
    assert [x["count"] for x in s] == [3, 2, 1]
    assert [x["conversion"] for x in s] == pytest.approx([1.0, 2 / 3, 1 / 3])
    assert [x["step_conversion"] for x in s] == pytest.approx([1.0, 2 / 3, 0.5])
    assert [x["dropout_rate"] for x in s] == pytest.approx([0.0, 1 / 3, 0.5])
    # step 2 times over a, c: [10, 60] -> median 35
    assert s[1]["median_seconds_to_convert"] == pytest.approx(35)


def test_per_breakdown_value(con):
    table = actors_table(con, ROWS)
    by = step_stats_by_breakdown(con, table, NAMES)
    # e is not attributed and appears nowhere. ios: a (3), c (2) -> [2, 2, 1];
    # web: b (3), d (1) -> [2, 1, 1]
    assert set(by) == {"ios", "web"}
    assert [x["count"] for x in by["ios"]] == [2, 2, 1]
    assert [x["count"] for x in by["web"]] == [2, 1, 1]
    # web: step conversion 1, 1/2, 1/1; dropout 0, 1/2, 0
    assert [x["step_conversion"] for x in by["web"]] == pytest.approx([1.0, 0.5, 1.0])
    assert [x["dropout_rate"] for x in by["web"]] == pytest.approx([0.0, 0.5, 0.0])
    # complete only: ios a, c -> [2, 2, 1]; web d -> [1, 0, 0]
    by = step_stats_by_breakdown(con, table, NAMES, complete_only=True)
    assert [x["count"] for x in by["web"]] == [1, 0, 0]
    # web step 3: 0 of 0 -> step conversion and dropout undefined (null), conversion 0/1 = 0
    assert (by["web"][2]["conversion"], by["web"][2]["step_conversion"],
            by["web"][2]["dropout_rate"], by["web"][2]["dropoff_count"]) == (0.0, None, None, 0)


def test_zero_denominators_are_null(con):
    # nobody at all: every count 0, every rate null, drop-off 0
    s = step_stats(con, actors_table(con, []), NAMES)
    assert [x["count"] for x in s] == [0, 0, 0]
    for x in s:
        assert (x["conversion"], x["step_conversion"], x["dropout_rate"]) == (None, None, None)
        assert x["dropoff_count"] == 0 and x["median_seconds_to_convert"] is None
    # two actors, both stop at step 1: step 2 is 0/2 (conversion 0, dropout 1); step 3 is 0/0
    s = step_stats(con, actors_table(con, [ROWS[3], ROWS[4]]), NAMES)
    assert [(x["conversion"], x["step_conversion"], x["dropout_rate"]) for x in s] == \
        [(1.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.0, None, None)]
    assert [x["dropoff_count"] for x in s] == [0, 2, 0]
    assert step_stats_by_breakdown(con, actors_table(con, []), NAMES) == {}


def test_a_relation_works_like_a_table(con):
    table = actors_table(con, ROWS)
    rel = con.sql(f"select * from {table} where actor <> 'a'")
    # without a: b (3), c (2), d (1), e (1) -> [4, 2, 1]
    assert [x["count"] for x in step_stats(con, rel, NAMES)] == [4, 2, 1]


def test_rates_are_the_definition_macros_not_python():
    # on a bare connection the macros are created from transforms/sql/definitions.sql
    bare = duckdb.connect()
    s = step_stats(bare, actors_table(bare, ROWS), NAMES)
    assert [x["step_conversion"] for x in s] == pytest.approx([1.0, 0.6, 2 / 3])
    # and the figures are whatever the connection's macros say: change one definition and the
    # report follows (nothing re-computes the rate in Python)
    bare.execute("create or replace temp macro step_conversion(entered, previous) as -1.0")
    s = step_stats(bare, "fa", NAMES)
    assert [x["step_conversion"] for x in s] == [-1.0, -1.0, -1.0]
    assert [x["conversion"] for x in s] == pytest.approx([1.0, 0.6, 0.4])
    bare.close()


def test_format_helpers():
    # the largest unit reached, one decimal; below a minute whole seconds
    assert [_fmt_seconds(v) for v in (None, 0, 45, 59.6, 60, 90, 5400, 86400, 129600)] == \
        ["-", "0s", "45s", "60s", "1.0m", "1.5m", "1.5h", "1.0d", "1.5d"]
    assert [_fmt_ratio(v) for v in (None, 0.0, 0.5, 2 / 3, 1.0)] == \
        ["-", "0.0%", "50.0%", "66.7%", "100.0%"]


def steps_fixture():
    return [
        {"step": 1, "name": "visit", "count": 5, "conversion": 1.0, "step_conversion": 1.0,
         "dropout_rate": 0.0, "dropoff_count": 0, "median_seconds_to_convert": None},
        {"step": 2, "name": "cart", "count": 3, "conversion": 0.6, "step_conversion": 0.6,
         "dropout_rate": 0.4, "dropoff_count": 2, "median_seconds_to_convert": 20.0},
        {"step": 3, "name": "pay", "count": 2, "conversion": 0.4, "step_conversion": 2 / 3,
         "dropout_rate": 1 / 3, "dropoff_count": 1, "median_seconds_to_convert": 5400.0},
    ]


TABLE = (
    "#  step   count  conversion  step conv.  dropout  dropped  median time\n"
    "-  -----  -----  ----------  ----------  -------  -------  -----------\n"
    "1  visit      5      100.0%      100.0%     0.0%        0            -\n"
    "2  cart       3       60.0%       60.0%    40.0%        2          20s\n"
    "3  pay        2       40.0%       66.7%    33.3%        1         1.5h"
)


def test_render_steps():
    # columns as wide as their widest cell; the step name left-aligned, the rest right-aligned
    assert render_steps(steps_fixture()) == TABLE


def test_result_table_with_breakdown_and_notes():
    result = FunnelResult(steps=steps_fixture(),
                          breakdown=[{"value": "ios", "steps": steps_fixture()}],
                          actors=5, incomplete_actors=2, unattributed_actors=1,
                          options={"breakdown": "platform"})
    assert result.to_table() == "\n".join([
        TABLE, "\nplatform = ios", TABLE,
        "\n1 actor(s) not attributed (did not reach the attribution step)",
        "\n2 of 5 actor(s) entered less than one window before the end of the data "
        "(incomplete)",
    ])
