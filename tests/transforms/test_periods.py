"""The overview's period tables on small hand-written inputs; every number worked out by hand.

Only the columns the period SQL reads are created: `journeys` (entry_date, customer_type),
`purchases` (customer_id, order_id, purchase_date, purchase_number) and `funnel_cohorts`
(cohort_date, stage_index, stage, entered, complete).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from transforms.definitions import create_macros
from transforms.periods import build_period_figures, build_period_funnel

D = dt.date
STAGES = ["Entry", "Middle", "Buy", "After"]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    create_macros(c)
    c.execute("create table journeys (customer_id varchar, entry_date date, "
              "customer_type varchar)")
    c.execute("create table purchases (customer_id varchar, order_id varchar, "
              "purchase_date date, purchase_number bigint, amount decimal(18, 2))")
    c.execute("create table funnel_cohorts (cohort_date date, stage_index integer, "
              "stage varchar, entered bigint, complete boolean)")
    yield c
    c.close()


def _cohort(con: duckdb.DuckDBPyConnection, day: dt.date, entered: list[int],
            complete: bool = True) -> None:
    for i, (stage, n) in enumerate(zip(STAGES, entered, strict=True), start=1):
        con.execute("insert into funnel_cohorts values (?, ?, ?, ?, ?)",
                    [day, i, stage, n, complete])


def _fill(con: duckdb.DuckDBPyConnection) -> None:
    """Data 1–10 Jan; 3-day periods: current 8–10 Jan, previous 5–7 Jan."""
    con.executemany("insert into journeys values (?, ?, ?)", [
        ("n1", D(2024, 1, 9), "new"), ("n2", D(2024, 1, 10), "new"),
        ("r1", D(2024, 1, 9), "returning"),  # not new
        ("n3", D(2024, 1, 6), "new"), ("n4", D(2024, 1, 4), "new"),  # 4 Jan: before both
    ])
    con.executemany("insert into purchases values (?, ?, ?, ?, ?)", [
        ("a", "b1", D(2024, 1, 8), 1, 10), ("a", "b2", D(2024, 1, 9), 2, 20),  # a: 2nd
        ("b", "b3", D(2024, 1, 10), 3, 5),                                     # b: a 3rd
        ("c", "b4", D(2024, 1, 10), 1, 5.5),
        ("d", "b5", D(2024, 1, 5), 1, 8), ("e", "b6", D(2024, 1, 7), 1, 2),
    ])
    # complete cohorts up to 6 Jan, the latest whose window is over; 7 Jan is still open
    _cohort(con, D(2024, 1, 1), [10, 8, 4, 1])
    _cohort(con, D(2024, 1, 3), [10, 6, 2, 0])
    _cohort(con, D(2024, 1, 4), [20, 10, 5, 5])
    _cohort(con, D(2024, 1, 6), [10, 10, 3, 3])
    _cohort(con, D(2024, 1, 7), [50, 50, 50, 50], complete=False)


SETTINGS = {"period_days": 3, "data_start": D(2024, 1, 1), "data_end": D(2024, 1, 10),
            "conversion_stage": "Buy", "new_customer_segment": "customer_type", "small_n": 10}


def _figures(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    rows = con.execute(
        "select figure, current_value, previous_value, change, relative_change, "
        "current_start, current_end, previous_start, previous_end from period_figures "
        "where period_days = 3").fetchall()
    return {r[0]: r[1:] for r in rows}


def test_period_figures_worked_by_hand(con: duckdb.DuckDBPyConnection) -> None:
    _fill(con)
    # one row per figure (9) for each length of the picker: the run's 3 days, 7 days (shorter
    # than the data) and all 10 days of data
    assert build_period_figures(con, SETTINGS) == 27
    assert con.execute("select distinct period_days from period_figures order by 1"
                       ).fetchall() == [(3,), (7,), (10,)]
    f = _figures(con)
    data_days = (D(2024, 1, 8), D(2024, 1, 10), D(2024, 1, 5), D(2024, 1, 7))
    # new customers: n1, n2 vs n3
    assert f["new_customers"] == (2, 1, 1, 1.0) + data_days
    # purchases b1 b2 b3 b4 vs b5 b6; purchasers a b c vs d e; repeat: a (2nd), b (3rd) vs none
    assert f["purchases"][:4] == (4, 2, 2, 1.0)
    assert f["purchasers"][:4] == (3, 2, 1, 0.5)
    assert f["repeat_purchasers"][:4] == (2, 0, 2, None)  # relative to nothing: undefined
    assert f["repeat_rate"][:4] == (pytest.approx(2 / 3), 0.0, pytest.approx(2 / 3), None)
    # revenue 10 + 20 + 5 + 5.5 = 40.5 vs 8 + 2 = 10: +30.5, +305 %
    assert f["revenue"][:4] == (40.5, 10.0, 30.5, pytest.approx(3.05))
    # conversion: the 3 entry days up to the latest complete cohort (6 Jan): 4–6 Jan, cohorts
    # 4 and 6 Jan: (5 + 3) / (20 + 10); before: 1–3 Jan, (4 + 2) / (10 + 10)
    cohort_days = (D(2024, 1, 4), D(2024, 1, 6), D(2024, 1, 1), D(2024, 1, 3))
    assert f["conversion_journeys"] == (30, 20, 10, 0.5) + cohort_days
    assert f["converted_journeys"][:2] == (8, 6)
    assert f["conversion"][:4] == (pytest.approx(8 / 30), pytest.approx(0.3),
                                   pytest.approx(8 / 30 - 0.3), None)  # rates: no relative


def test_the_whole_data_is_one_period(con: duckdb.DuckDBPyConnection) -> None:
    _fill(con)
    build_period_figures(con, SETTINGS)
    rows = dict(con.execute(
        "select figure, (current_value, previous_value, current_start, current_end) "
        "from period_figures where period_days = 10").fetchall())
    # every purchase of the data (b1..b6), nothing before it to compare with; the days are
    # the data's, 1-10 Jan
    assert rows["purchases"] == (6, None, D(2024, 1, 1), D(2024, 1, 10))
    # conversion: the 10 entry days up to the latest complete cohort (6 Jan), clipped to the
    # data's first day: the four complete cohorts, (4 + 2 + 5 + 3) / 50
    cur, prev, start, end = rows["conversion"]
    assert cur == pytest.approx(14 / 50) and prev is None
    assert (start, end) == (D(2024, 1, 1), D(2024, 1, 6))


def test_previous_period_before_the_data_is_not_compared(con: duckdb.DuckDBPyConnection) -> None:
    _fill(con)
    # 6-day periods: current 5–10 Jan, previous 30 Dec – 4 Jan starts before the data (1 Jan)
    build_period_figures(con, {**SETTINGS, "period_days": 6})
    row = con.execute("select current_value, previous_value, change, previous_observed "
                      "from period_figures where figure = 'new_customers' "
                      "and period_days = 6").fetchone()
    assert row == (3, None, None, False)  # n1 n2 n3 now; n4 before is not a comparison
    # conversion: 1–6 Jan all four complete cohorts, (4+2+5+3) / 50; before them 26–31 Dec:
    # no complete cohort, nothing to compare
    row = con.execute("select current_value, previous_value, previous_observed "
                      "from period_figures where figure = 'conversion' "
                      "and period_days = 6").fetchone()
    assert row[0] == pytest.approx(14 / 50) and row[1:] == (None, False)


def test_without_a_complete_cohort_there_is_no_conversion(con: duckdb.DuckDBPyConnection) -> None:
    _cohort(con, D(2024, 1, 9), [5, 4, 3, 2], complete=False)
    build_period_figures(con, SETTINGS)
    row = con.execute("select current_start, current_end, current_value from period_figures "
                      "where figure = 'conversion' and period_days = 3").fetchone()
    assert row == (None, None, None)
    assert build_period_funnel(con, SETTINGS) == 0


def test_period_funnel_adds_up_the_cohorts_and_flags_the_largest_dropout(
        con: duckdb.DuckDBPyConnection) -> None:
    _fill(con)
    build_period_figures(con, SETTINGS)
    assert build_period_funnel(con, SETTINGS) == 12  # 4 stages x 3 period lengths
    rows = con.execute(
        "select stage, entered, overall_conversion, step_conversion, dropoff_count, "
        "dropout_rate, largest_dropout, first_cohort, last_cohort from period_funnel "
        "where period_days = 3 order by stage_index").fetchall()
    # cohorts 4 and 6 Jan: Entry 30, Middle 20, Buy 8, After 8. Dropout into Middle 1/3, into
    # Buy 12/20 = 0.6 (the largest up to Buy), into After 0 (after conversion: never flagged;
    # its step rests on 8 journeys, fewer than small_n = 10)
    span = (D(2024, 1, 4), D(2024, 1, 6))
    assert rows[0] == ("Entry", 30, 1.0, None, None, None, False) + span
    assert rows[1][:5] == ("Middle", 20, pytest.approx(2 / 3), pytest.approx(2 / 3), 10)
    assert rows[1][5] == pytest.approx(1 / 3) and rows[1][6] is False
    assert rows[2] == ("Buy", 8, pytest.approx(8 / 30), 0.4, 12, pytest.approx(0.6), True) + span
    assert rows[3][1:7] == (8, pytest.approx(8 / 30), 1.0, 0, 0.0, False)
    assert con.execute("select stage, small_n from period_funnel where period_days = 3 "
                       "order by stage_index").fetchall() == [
        ("Entry", None), ("Middle", False), ("Buy", False), ("After", True)]


# --- per segment value -----------------------------------------------------------------------
# Data 1–10 Jan, 3-day periods (data: 8–10 Jan vs 5–7 Jan; cohorts: complete up to 6 Jan, so
# 4–6 Jan vs 1–3 Jan). (customer, entry day, customer type, platform, stages reached)
SEG_JOURNEYS = [
    ("i1", D(2024, 1, 5), "new", "ios", 3),
    ("i2", D(2024, 1, 6), "new", "ios", 1),
    ("i3", D(2024, 1, 4), "returning", "ios", 2),
    ("x1", D(2024, 1, 9), "new", "ios", 1),          # cohort still open
    ("a1", D(2024, 1, 6), "new", "android", 4),
    ("a2", D(2024, 1, 2), "new", "android", 2),
    ("x2", D(2024, 1, 10), "returning", "android", 2),  # cohort still open
    ("w1", D(2024, 1, 5), "new", "web", 3),          # 1 journey: too few to offer
    ("u1", D(2024, 1, 4), "new", None, 1),           # no platform: never offered
    ("u2", D(2024, 1, 8), "new", "(unknown)", 1),    # 2 journeys, but '(unknown)'
    ("u3", D(2024, 1, 8), "new", "(unknown)", 1),
]
# (customer, order, day, purchase number); z bought without a journey (counts in `all` only)
SEG_PURCHASES = [
    ("i1", "o1", D(2024, 1, 5), 1), ("i1", "o2", D(2024, 1, 9), 2),
    ("a1", "o3", D(2024, 1, 6), 1), ("a1", "o4", D(2024, 1, 10), 2),
    ("w1", "o5", D(2024, 1, 8), 1), ("z", "o6", D(2024, 1, 9), 1),
    ("i3", "o7", D(2024, 1, 8), 3),
]
SEG_SETTINGS = {**SETTINGS, "small_n": 3}


@pytest.fixture
def seg_con() -> duckdb.DuckDBPyConnection:
    """The tables the period SQL reads, filled consistently from SEG_JOURNEYS: `journeys`
    with a platform column, `journey_stages` and `funnel_cohorts` (their counts per day)."""
    c = duckdb.connect()
    create_macros(c)
    c.execute("create table journeys (customer_id varchar, entry_date date, "
              "customer_type varchar, platform varchar)")
    c.execute("create table journey_stages (customer_id varchar, stage_index integer, "
              "stage varchar, entry_date date)")
    c.execute("create table purchases (customer_id varchar, order_id varchar, "
              "purchase_date date, purchase_number bigint, amount decimal(18, 2))")
    c.execute("create table funnel_cohorts (cohort_date date, stage_index integer, "
              "stage varchar, entered bigint, complete boolean)")
    for cid, day, ctype, platform, reached in SEG_JOURNEYS:
        c.execute("insert into journeys values (?, ?, ?, ?)", [cid, day, ctype, platform])
        for i in range(1, reached + 1):
            c.execute("insert into journey_stages values (?, ?, ?, ?)",
                      [cid, i, STAGES[i - 1], day])
    for cid, order, day, number in SEG_PURCHASES:
        c.execute("insert into purchases values (?, ?, ?, ?, 10)", [cid, order, day, number])
    # funnel_cohorts as worked out by hand from the journeys: per day, journeys reaching
    # Entry, Middle, Buy, After; complete up to 6 Jan
    _cohort(c, D(2024, 1, 2), [1, 1, 0, 0])
    _cohort(c, D(2024, 1, 4), [2, 1, 0, 0])
    _cohort(c, D(2024, 1, 5), [2, 2, 2, 0])
    _cohort(c, D(2024, 1, 6), [2, 1, 1, 1])
    _cohort(c, D(2024, 1, 8), [2, 0, 0, 0], complete=False)
    _cohort(c, D(2024, 1, 9), [1, 0, 0, 0], complete=False)
    _cohort(c, D(2024, 1, 10), [1, 1, 0, 0], complete=False)
    yield c
    c.close()


def _seg_figures(con: duckdb.DuckDBPyConnection, value: str) -> dict[str, tuple]:
    rows = con.execute(
        "select figure, current_value, previous_value, small_n from period_figures "
        "where period_days = 3 and segment_value = ?", [value]).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_period_figures_per_segment_value_worked_by_hand(
        seg_con: duckdb.DuckDBPyConnection) -> None:
    # 3 lengths (3, 7, 10 days) x 3 groups (all, ios, android) x 9 figures
    assert build_period_figures(seg_con, SEG_SETTINGS, segments=["platform"],
                                min_journeys=2) == 81
    groups = seg_con.execute("select distinct segment, segment_value from period_figures "
                             "order by 1, 2").fetchall()
    # web has 1 journey (< 2), NULL and '(unknown)' are never offered
    assert groups == [("all", "all"), ("platform", "android"), ("platform", "ios")]

    every = _seg_figures(seg_con, "all")
    # new journeys 8–10 Jan: u2 u3 x1; 5–7 Jan: i1 i2 a1 w1
    assert every["new_customers"][:2] == (3, 4)
    # purchases 8–10 Jan: o2 o4 o5 o6 o7 by i1 a1 w1 z i3, repeat: i1 a1 i3; 5–7 Jan: o1 o3
    assert every["purchases"][:2] == (5, 2)
    assert every["repeat_rate"] == (pytest.approx(3 / 5), 0.0, False)
    # cohorts 4–6 Jan: entry 2 + 2 + 2, Buy 0 + 2 + 1; 1–3 Jan: 2 Jan, 1 entered, none bought
    assert every["conversion_journeys"][:2] == (6, 1)
    assert every["conversion"] == (0.5, 0.0, False)

    ios = _seg_figures(seg_con, "ios")
    assert ios["new_customers"][:2] == (1, 2)        # x1 vs i1 i2 (i3 is returning)
    assert ios["purchases"][:2] == (2, 1)            # o2 o7 vs o1
    # 2 purchasers (i1, i3), both repeat: 100 %, but 2 < small_n 3
    assert ios["repeat_rate"] == (1.0, 0.0, True)
    # cohorts 4–6 Jan: i3 i1 i2 entered, i1 reached Buy; 1–3 Jan: no ios journey, so the
    # previous period is not there to compare
    assert ios["conversion_journeys"][:2] == (3, None)
    assert ios["conversion"] == (pytest.approx(1 / 3), None, False)
    row = seg_con.execute("select previous_observed, change from period_figures where "
                          "period_days = 3 and segment_value = 'ios' and figure = 'conversion'"
                          ).fetchone()
    assert row == (False, None)

    android = _seg_figures(seg_con, "android")
    assert android["new_customers"][:2] == (0, 1)    # x2 is returning; a1 on 6 Jan
    assert android["repeat_rate"] == (1.0, 0.0, True)  # a1 (o4) of 1 purchaser
    # a1 (6 Jan) bought vs a2 (2 Jan) did not: 100 % vs 0 %, on 1 journey (small n)
    assert android["conversion"] == (1.0, 0.0, True)


def test_period_funnel_per_segment_value_worked_by_hand(
        seg_con: duckdb.DuckDBPyConnection) -> None:
    build_period_figures(seg_con, SEG_SETTINGS, segments=["platform"], min_journeys=2)
    # 3 lengths x 3 groups x 4 stages: every group has a complete-cohort journey in each
    assert build_period_funnel(seg_con, SEG_SETTINGS) == 36

    def funnel(value: str) -> list[tuple]:
        return seg_con.execute(
            "select entered, dropout_rate, small_n, largest_dropout, first_cohort, last_cohort "
            "from period_funnel where period_days = 3 and segment_value = ? "
            "order by stage_index", [value]).fetchall()

    span = (D(2024, 1, 4), D(2024, 1, 6))
    # all, cohorts 4–6 Jan: 6, 4, 3, 1; dropout into Middle 2/6 (the largest up to Buy),
    # into Buy 1/4, into After 2/3 (after conversion)
    assert funnel("all") == [
        (6, None, None, False) + span, (4, pytest.approx(1 / 3), False, True) + span,
        (3, 0.25, False, False) + span, (1, pytest.approx(2 / 3), False, False) + span]
    # ios: i3 (2 stages), i1 (3), i2 (1): 3, 2, 1, 0. Into Buy 1/2 is the higher rate but
    # rests on 2 journeys (< small_n 3): Middle (1/3 of 3) is named
    assert funnel("ios") == [
        (3, None, None, False) + span, (2, pytest.approx(1 / 3), False, True) + span,
        (1, 0.5, True, False) + span, (0, 1.0, True, False) + span]
    # android: a1 alone (6 Jan) reached every stage; every step small n, none named
    day = (D(2024, 1, 6), D(2024, 1, 6))
    assert funnel("android") == [
        (1, None, None, False) + day, (1, 0.0, True, False) + day,
        (1, 0.0, True, False) + day, (1, 0.0, True, False) + day]
    # the whole data: ios adds nothing before 4 Jan; android adds a2 (2 Jan, 2 stages)
    assert seg_con.execute(
        "select list(entered order by stage_index) from period_funnel "
        "where period_days = 10 and segment_value = 'android'").fetchone()[0] == [2, 2, 1, 1]


def test_segment_values_are_capped_per_segment(seg_con: duckdb.DuckDBPyConnection,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import transforms.periods as periods

    monkeypatch.setattr(periods, "MAX_SEGMENT_VALUES", 1)
    build_period_figures(seg_con, SEG_SETTINGS, segments=["platform"], min_journeys=1)
    # ios has the most journeys (4; android 3, web 1)
    assert seg_con.execute("select distinct segment_value from period_figures "
                           "where segment <> 'all'").fetchall() == [("ios",)]
    # without segments only the `all` rows, the same numbers
    build_period_figures(seg_con, SEG_SETTINGS, segments=[])
    assert seg_con.execute("select distinct segment from period_figures").fetchall() == [
        ("all",)]
    assert _seg_figures(seg_con, "all")["conversion"] == (0.5, 0.0, False)
