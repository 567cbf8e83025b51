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
            "conversion_stage": "Buy", "new_customer_segment": "customer_type"}


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
    # Buy 12/20 = 0.6 (the largest up to Buy), into After 0 (after conversion: never flagged)
    span = (D(2024, 1, 4), D(2024, 1, 6))
    assert rows[0] == ("Entry", 30, 1.0, None, None, None, False) + span
    assert rows[1][:5] == ("Middle", 20, pytest.approx(2 / 3), pytest.approx(2 / 3), 10)
    assert rows[1][5] == pytest.approx(1 / 3) and rows[1][6] is False
    assert rows[2] == ("Buy", 8, pytest.approx(8 / 30), 0.4, 12, pytest.approx(0.6), True) + span
    assert rows[3][1:7] == (8, pytest.approx(8 / 30), 1.0, 0, 0.0, False)
