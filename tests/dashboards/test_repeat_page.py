"""The Repeat purchase page (dashboards/repeat.py): every rate with its n, small n never a
headline, 0-100 % cohort colours with cohort sizes, monthly cohorts on long histories, no chart
for data that does not exist, and the repeat rate by first-journey experience.

Most tests write the page's tables by hand (numbers chosen so the expected text is obvious);
the last ones use the tiny warehouse of tests/dashboards/conftest.py, whose counts are worked
out from its stories."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from dashboards.context import Context
from dashboards.data import Warehouse
from dashboards.repeat import render
from dashboards.site import build_site
from tests.conftest import memory_warehouse
from tests.dashboards.conftest import EXPECTED_FIGURES, NOW, tiny_warehouse
from transforms.definitions import create_macros
from transforms.journey_map import JourneyMap
from transforms.repeat_experience import build_repeat_by_experience
from transforms.settings import build_run_settings, settings_from_journey_map

RP_COLUMNS = ["group_name", "group_value", "horizon_days", "purchasers", "repeat_purchasers",
              "eligible", "repeated_within", "repeat_rate", "median_days_to_second",
              "p75_days_to_second", "p90_days_to_second", "mean_purchases"]


def _text(html: str) -> str:
    """Visible-ish text: tags dropped, entities and no-break spaces made plain."""
    text = re.sub(r"<[^>]+>", " ", html).replace("&nbsp;", " ").replace("\u00a0", " ")
    return re.sub(r"\s+", " ", text.replace("&lt;", "<").replace("&gt;", ">")
                  .replace("&#x27;", "'").replace("&amp;", "&"))


def _table(con: duckdb.DuckDBPyConnection, name: str, df: pd.DataFrame) -> None:
    con.register("_df", df)
    con.execute(f"create or replace table {name} as select * from _df")
    con.unregister("_df")


def _rp(rows: list[tuple]) -> pd.DataFrame:
    """repeat_purchase rows: (group, value, horizon, eligible, repeated_within)."""
    out = [(g, v, h, 300, 80, e, r, r / e if e else None, 8.0, 12.0, 15.0, 1.3)
           for g, v, h, e, r in rows]
    return pd.DataFrame(out, columns=RP_COLUMNS)


@pytest.fixture
def wh(jmap: JourneyMap) -> duckdb.DuckDBPyConnection:
    con = memory_warehouse()
    build_run_settings(con, {**settings_from_journey_map(jmap, currency="EUR"),
                             "data_start": dt.date(2024, 1, 1),
                             "data_end": dt.date(2024, 12, 31)})
    yield con
    con.close()


def _page(con: duckdb.DuckDBPyConnection) -> tuple[str, int]:
    page = render(Context.read(Warehouse(con), period_days=None, built_at=NOW))
    return "".join(page.body), page.figures


def _cards(html: str) -> str:
    start = html.index('<div class="cards">')
    return _text(html[start:html.index('<div style="display:grid', start)])


def test_headline_cards_carry_n_and_small_n_is_never_a_headline(wh):
    _table(wh, "repeat_purchase", _rp([
        ("all", "all", 30, 196, 50),   # 50 / 196 = 25.5%
        ("all", "all", 60, 12, 3),     # 12 buyers observed 60 days: too few
        ("all", "all", 90, 0, 0),      # nobody observed 90 days yet
    ]))
    html, _ = _page(wh)
    cards = _cards(html)
    assert "Bought again within 30 days 25.5% (n = 196)" in cards
    assert "50 of 196 buyers observed 30 days" in cards
    # the 25.0% of 12 buyers is no headline: the card says why instead
    assert "Bought again within 60 days – too few buyers to say: only 12 observed for 60 " \
           "days" in cards and "25.0%" not in cards
    assert "Bought again within 90 days – not measured yet: no buyer has been observed for " \
           "90 days" in cards
    # the chart's labels carry n too, and mark the small one
    assert "25.5%\\u003cbr\\u003e(n = 196)" in html
    assert "25.0%\\u003cbr\\u003e(n = 12, small n)" in html


def test_a_rating_comparison_on_small_n_says_so(wh):
    _table(wh, "repeat_purchase", _rp([
        ("all", "all", 30, 150, 30),
        ("first_rating", "low (<=2)", 30, 20, 1),     # 20 buyers: small n
        ("first_rating", "high (>=3)", 30, 100, 30),
        ("first_rating", "no rating", 30, 30, 6),
    ]))
    text = _text(_page(wh)[0])
    assert ("No finding yet: too few buyers to compare first ratings (small n: fewer than 30 "
            "in a group). Within 30 days, 5.0% of customers who rated their first visit low "
            "bought again, against 30.0% of those who rated it high. (n = 20 and 100: the "
            "buyers observed that long.)") in text


def test_a_rating_comparison_on_enough_buyers_is_a_finding(wh):
    _table(wh, "repeat_purchase", _rp([
        ("all", "all", 30, 150, 30),
        ("first_rating", "low (<=2)", 30, 40, 2),
        ("first_rating", "high (>=3)", 30, 80, 24),
    ]))
    text = _text(_page(wh)[0])
    assert "No finding" not in text
    assert ("Within 30 days, 5.0% of customers who rated their first visit low bought again, "
            "against 30.0% of those who rated it high. (n = 40 and 80") in text


def test_no_rating_chart_when_the_data_has_no_ratings(wh):
    _table(wh, "repeat_purchase", _rp([
        ("all", "all", 30, 150, 30),
        ("first_rating", "no rating", 30, 150, 30),  # every buyer: nobody rated
    ]))
    html, figures = _page(wh)
    assert "The data has no ratings (no first purchase was rated)" in _text(html)
    assert "fig-repeat-repeat-by-rating" not in html
    assert figures == 1  # the rate by horizon only


def _cohorts(period_type: str, starts: list[pd.Timestamp], sizes: list[int]) -> pd.DataFrame:
    """retention_cohorts rows: period 0 (everyone) and period 1 (a quarter), complete."""
    rows = []
    for start, size in zip(starts, sizes, strict=True):
        rows.append((period_type, start.date(), 0, start.date(), size, size, size, 1.0, 1.0,
                     True))
        rows.append((period_type, start.date(), 1, start.date(), size, size // 4, size // 4,
                     (size // 4) / size, (size // 4) / size, True))
    return pd.DataFrame(rows, columns=[
        "period_type", "cohort_start", "period_number", "period_start", "cohort_size",
        "customers_on", "customers_on_or_after", "share_on", "share_on_or_after", "complete"])


def test_long_history_switches_to_monthly_cohorts_with_sizes_on_the_rows(wh):
    weeks = list(pd.date_range("2024-01-01", periods=30, freq="7D"))  # 30 Mondays
    months = list(pd.date_range("2024-01-01", periods=7, freq="MS"))
    df = pd.concat([_cohorts("week", weeks, [40] * 30),
                    _cohorts("month", months, [160, 12, 150, 140, 170, 160, 150])])
    _table(wh, "retention_cohorts", df)
    html, figures = _page(wh)
    text = _text(html)
    assert "Who buys in each month after their first?" in html
    assert "Monthly cohorts: the data spans more than 26 weeks" in text
    assert "Cohort = month of first purchase" in text
    heat = json.JSONDecoder().raw_decode(
        html[html.index("[{", html.index('"fig-repeat-retention-on"')):])[0]
    complete = heat[0]
    assert complete["zmin"] == 0 and complete["zmax"] == 1  # 0-100 %, whatever the data
    assert complete["y"][:2] == ["01 Jan 2024 (n = 160)", "01 Feb 2024 (n = 12, small n)"]
    # the 12-buyer cohort is drawn grey (its own trace), not on the colour scale
    grey = next(t for t in heat if t.get("name") == "small n")
    assert grey["z"][1] == [1.0, 0.25] and complete["z"][1] == [None, None]
    assert complete["z"][0] == [1.0, 0.25]
    assert figures == 2  # the two heatmaps (no repeat_purchase, lifecycle tables here)


def test_a_short_history_keeps_weekly_cohorts(wh):
    weeks = list(pd.date_range("2024-01-01", periods=5, freq="7D"))
    df = pd.concat([_cohorts("week", weeks, [40] * 5),
                    _cohorts("month", [pd.Timestamp("2024-01-01"),
                                       pd.Timestamp("2024-02-01")], [150, 50])])
    _table(wh, "retention_cohorts", df)
    html, _ = _page(wh)
    assert "Who buys in each week after their first?" in html
    assert "Monthly cohorts" not in html


EXP_COLUMNS = ["experience_type", "experience", "value", "horizon_days", "purchasers",
               "customers", "repeaters", "repeat_rate", "rest_customers", "rest_repeaters",
               "rest_repeat_rate", "rate_diff", "z_score", "p_value", "test", "significant"]


def _exp(experience: str, value: str, h: int, n: int, x: int, rn: int, rx: int, p: float | None,
         test: str | None, sig: bool) -> tuple:
    kind = "segment" if experience == "platform" else "journey"
    rate = x / n if n else None
    rest = rx / rn if rn else None
    diff = rate - rest if rate is not None and rest is not None else None
    return (kind, experience, value, h, n + 5, n, x, rate, rn, rx, rest, diff,
            None if p is None else (-2.5 if diff < 0 else 2.5), p, test, sig)


def test_experiences_are_ranked_with_n_and_significance(wh):
    rows = [
        # 30 days: 200 buyers observed
        _exp("failed_payment", "yes", 30, 40, 4, 160, 48, 0.01, "z-test", True),
        _exp("failed_payment", "no", 30, 160, 48, 40, 4, 0.01, "z-test", True),
        _exp("platform", "android", 30, 94, 26, 106, 26, 0.5, "z-test", False),
        _exp("platform", "ios", 30, 94, 24, 106, 28, 0.6, "z-test", False),
        _exp("platform", "web", 30, 12, 2, 188, 50, 0.7, "fisher exact", False),  # small n
        # 60 days: only 20 buyers observed -> the page uses 30 days
        _exp("failed_payment", "yes", 60, 5, 0, 15, 5, 0.3, "fisher exact", False),
        _exp("failed_payment", "no", 60, 15, 5, 5, 0, 0.3, "fisher exact", False),
    ]
    _table(wh, "repeat_by_experience", pd.DataFrame(rows, columns=EXP_COLUMNS))
    html, figures = _page(wh)
    text = _text(html)
    assert "Buyers observed 30 days after their first purchase (n = 200)" in text
    assert ("Lowest against the rest: buyers with failed payment before the first purchase = "
            "yes — 10.0% (n = 40) bought again within 30 days, against 30.0% (n = 160) of all "
            "other buyers (two-proportion z-test, p = 0.010).") in text
    # ranked by the difference against the rest, lowest first; web (12 buyers) not ranked
    ranked = re.findall(r"<tr[^>]*><td class=\"num\">(\d+)</td><td>([^<]+)</td><td>([^<]+)</td>",
                        html)
    assert [(r, v) for r, _, v in ranked] == [("1", "yes"), ("2", "ios"), ("3", "android"),
                                              ("4", "no")]
    assert "4 comparisons at p < 0.05" in text
    table_rest = text[text.index("more groups, not ranked"):]
    assert "web" in table_rest and "16.7% (n = 12, small n)" in table_rest
    # the chart: one bar per ranked group, labelled with its rate and n
    assert "fig-repeat-repeat-by-experience" in html and figures == 1
    assert "failed payment before the first purchase: yes \\u00b7 10.0% (n = 40)" in html
    # what the data lacks is said, not drawn
    assert ("Not compared: the data has no optional stage before the purchase; no ratings; "
            "no stage events.") in text


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    con = tiny_warehouse(tmp_path_factory.mktemp("project"))
    yield con
    con.close()


def test_tiny_warehouse_without_the_new_table_says_not_available(
        tiny: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    con = tiny.cursor()
    con.execute("create or replace temp table _kept as select * from repeat_by_experience")
    con.execute("drop table repeat_by_experience")
    try:
        index = build_site(con, tmp_path / "site", now=NOW)
    finally:
        con.execute("create table repeat_by_experience as select * from _kept")
    page = (index.parent / "repeat.html").read_text(encoding="utf-8")
    assert "Not available:" in page and "repeat_by_experience" in page
    assert f'data-figures="{EXPECTED_FIGURES["repeat"]}"' in page
    text = _text(page)
    # first purchases 4-8 Mar (c01-c05), 5, 10, 18, 20, 26 Apr; data end 30 Apr 12:00:
    # observed 30 days c01-c05 = 5, 14 days + c10, c07 = 7, 7 days + c13, c14 = 9
    assert "only 5 observed for 30 days" in text and "only 7 observed for 14 days" in text
    assert "only 9 observed for 7 days" in text
    # weekly cohorts: 4 Mar (c01-c05), 1 Apr (c10), 8 Apr (c07), 15 Apr (c13, c14), 22 Apr (c11)
    assert "Cohort = week of first purchase" in text
    assert "04 Mar 2024 (n = 5, small n)" in page and "15 Apr 2024 (n = 2, small n)" in page


def test_tiny_warehouse_with_the_table_has_too_few_buyers_to_rank(
        tiny: duckdb.DuckDBPyConnection, jmap: JourneyMap, tmp_path: Path) -> None:
    con = tiny.cursor()
    create_macros(con)  # temporary macros belong to a connection
    build_repeat_by_experience(con, jmap)
    try:
        index = build_site(con, tmp_path / "site", now=NOW)
    finally:
        con.execute("drop table repeat_by_experience")
    page = (index.parent / "repeat.html").read_text(encoding="utf-8")
    text = _text(page)
    # the most buyers observed for a horizon: 9, for 7 days (see above)
    assert ("Only 9 buyers have been observed for 7 days after their first purchase: too few "
            "to compare experiences yet") in text
    assert "fig-repeat-repeat-by-experience" not in page  # nothing ranked, nothing drawn
    assert "not ranked" in text
    assert f'data-figures="{EXPECTED_FIGURES["repeat"]}"' in page
