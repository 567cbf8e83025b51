"""`ingest_reconciliation_periods` (transforms/ingest_periods.py): the load reconciliation per
day, ISO week and calendar month, on a hand-made `ingest_reconciliation`; sums and coverage
worked out by hand below.

Source a: every partition day Wed 31 Jan – Tue 13 Feb 2024 (14 days), 10 rows read, 9 loaded,
1 quarantined, except Tue 6 Feb: 20 read, 15 loaded, 3 quarantined, 2 duplicates (1 clock
skew corrected). Source b: Mon 5 and Tue 6 Feb only, 4 read and 4 loaded each. The data's days
are 31 Jan – 13 Feb (over both sources).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from transforms.ingest_periods import build_ingest_reconciliation_periods, default_grain


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute("""create table ingest_reconciliation (source varchar, partition_date date,
        rows_read bigint, rows_loaded bigint, rows_quarantined bigint, rows_duplicate bigint,
        clock_skew_corrected bigint, files varchar[], loaded_at timestamp)""")
    day = dt.date(2024, 1, 31)
    while day <= dt.date(2024, 2, 13):
        row = (20, 15, 3, 2, 1) if day == dt.date(2024, 2, 6) else (10, 9, 1, 0, 0)
        c.execute("insert into ingest_reconciliation values ('a', ?, ?, ?, ?, ?, ?, [], null)",
                  [day, *row])
        day += dt.timedelta(days=1)
    for d in (5, 6):
        c.execute("insert into ingest_reconciliation values "
                  "('b', ?, 4, 4, 0, 0, 0, [], null)", [dt.date(2024, 2, d)])
    yield c
    c.close()


def _rows(con, grain, source):
    return con.execute(
        "select period_start, period_end, partitions, days_covered, complete, rows_read, "
        "rows_loaded, rows_quarantined, rows_duplicate, clock_skew_corrected "
        "from ingest_reconciliation_periods where grain = ? and source = ? "
        "order by period_start", [grain, source]).fetchall()


def test_weeks_start_on_monday_and_partial_weeks_are_marked(con):
    assert build_ingest_reconciliation_periods(con) > 0
    d = dt.date
    assert _rows(con, "week", "a") == [
        # Mon 29 Jan – Sun 4 Feb: the data starts Wed 31 Jan, 5 days of 10 / 9 / 1
        (d(2024, 1, 29), d(2024, 2, 4), 5, 5, False, 50, 45, 5, 0, 0),
        # 5 – 11 Feb, all 7 days: 6 x 10 + 20 read, 6 x 9 + 15 loaded, 6 + 3 quarantined
        (d(2024, 2, 5), d(2024, 2, 11), 7, 7, True, 80, 69, 9, 2, 1),
        # 12 – 18 Feb: the data ends Tue 13 Feb, 2 days
        (d(2024, 2, 12), d(2024, 2, 18), 2, 2, False, 20, 18, 2, 0, 0),
    ]
    # b: one complete week of the data's days, though it loaded only 2 of them
    assert _rows(con, "week", "b") == [
        (d(2024, 2, 5), d(2024, 2, 11), 2, 7, True, 8, 8, 0, 0, 0)]


def test_months_and_days(con):
    build_ingest_reconciliation_periods(con)
    d = dt.date
    assert _rows(con, "month", "a") == [
        (d(2024, 1, 1), d(2024, 1, 31), 1, 1, False, 10, 9, 1, 0, 0),
        # 1 – 13 Feb of 29 days (leap year): 12 x 10 + 20, 12 x 9 + 15, 12 + 3
        (d(2024, 2, 1), d(2024, 2, 29), 13, 13, False, 140, 123, 15, 2, 1),
    ]
    days = _rows(con, "day", "a")
    assert len(days) == 14 and all(r[4] for r in days)  # a day in the data is whole
    assert days[6] == (d(2024, 2, 6), d(2024, 2, 6), 1, 1, True, 20, 15, 3, 2, 1)
    # 14 days of data: shown by day first
    assert con.execute("select distinct grain from ingest_reconciliation_periods "
                       "where is_default").fetchall() == [("day",)]


def test_the_default_grain_follows_the_span():
    assert default_grain(30) == "day"
    assert default_grain(92) == "day"
    assert default_grain(93) == "week"
    assert default_grain(548) == "week"  # examples/orders
    assert default_grain(731) == "week"
    assert default_grain(4 * 365 + 1) == "month"  # examples/helpdesk


def test_no_reconciliation_no_table():
    c = duckdb.connect()
    assert build_ingest_reconciliation_periods(c) == 0
    assert c.execute("select count(*) from information_schema.tables "
                     "where table_name = 'ingest_reconciliation_periods'").fetchone()[0] == 0
