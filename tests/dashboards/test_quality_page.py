"""The Quality page's day / week / month switch on the tiny warehouse (tests/dashboards/
conftest.py) with `ingest_reconciliation_periods` built on it: one figure per grain, the grain
chosen from the span shown first, partial periods drawn apart. By hand: the partition days run
Sun 3 Mar – Wed 1 May 2024 (60 days: shown by day first); the first ISO week (Mon 26 Feb –
Sun 3 Mar) holds 1 day of data, the last (Mon 29 Apr – Sun 5 May) 3; March holds 29 days of
data (from the 3rd), April all 30, May 1."""

from __future__ import annotations

import re

import duckdb
import pytest

from dashboards import quality
from dashboards.context import Context
from dashboards.data import Warehouse
from tests.dashboards.conftest import NOW, tiny_warehouse
from transforms.ingest_periods import build_ingest_reconciliation_periods


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    c = tiny_warehouse(tmp_path_factory.mktemp("quality"), mining=False)
    build_ingest_reconciliation_periods(c)
    yield c
    c.close()


@pytest.fixture(scope="module")
def rendered(con: duckdb.DuckDBPyConnection) -> tuple[str, int]:
    page = quality.render(Context.read(Warehouse(con), period_days=None, built_at=NOW))
    return "".join(page.body), page.figures


def _block(page: str, grain: str) -> str:
    """The block of one grain: from its div to the next grain's (or the picker's script)."""
    start = page.index(f'<div class="grain" data-grain="{grain}">')
    ends = [i for i in (page.find('<div class="grain"', start + 1),
                        page.find("getElementById('grain')", start)) if i > 0]
    return page[start:min(ends)].replace("\\u2013", "–")  # figure JSON escapes the dash


def test_a_figure_per_grain_and_the_span_chooses_the_first(rendered) -> None:
    page, figures = rendered
    assert figures == 4  # day, week, month and the quarantine reasons
    options = re.findall(r'<option value="(\w+)"( selected)?>([^<]*)</option>', page)
    assert options == [("day", " selected", "By day"),
                       ("week", "", "By week (Monday to Sunday)"), ("month", "", "By month")]
    assert "getElementById('grain')" in page
    # the shown grain keeps the page's figure id
    assert 'id="fig-quality-loads"' in _block(page, "day")
    assert 'id="fig-quality-loads-week"' in _block(page, "week")


def test_partial_weeks_and_months_are_drawn_apart(rendered) -> None:
    page, _ = rendered
    week = _block(page, "week")
    assert "Week 26 Feb 2024 – 03 Mar 2024 (partial week: data on 1 of its 7 days)" in week
    assert "Week 29 Apr 2024 – 05 May 2024 (partial week: data on 3 of its 7 days)" in week
    assert "Week 04 Mar 2024 – 10 Mar 2024 (partial" not in week
    assert '"name":"loaded, partial week"' in week and '"shape":"\\u002f"' in week  # "/"
    month = _block(page, "month")
    assert "Mar 2024 (partial month: data on 29 of its 31 days)" in month
    assert "May 2024 (partial month: data on 1 of its 31 days)" in month
    assert "Apr 2024 (partial" not in month
    # a day in the data is never partial
    assert "partial" not in _block(page, "day")


def test_weekly_sums_equal_the_daily_rows(con) -> None:
    # an independent sum over ingest_reconciliation: Mon 4 – Sun 10 Mar, every source
    expected = con.execute("""
        select source, sum(rows_read), sum(rows_loaded), sum(rows_quarantined)
        from ingest_reconciliation
        where partition_date between date '2024-03-04' and date '2024-03-10'
        group by all order by 1""").fetchall()
    got = con.execute("""
        select source, rows_read, rows_loaded, rows_quarantined
        from ingest_reconciliation_periods
        where grain = 'week' and period_start = date '2024-03-04' order by 1""").fetchall()
    assert got == expected and len(got) == 3
