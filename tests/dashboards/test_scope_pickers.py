"""The period and segment pickers of the Overview and Bottlenecks pages (dashboards/scope.py)
on the tiny warehouse of conftest.py, its period tables rebuilt so that every segment value
with at least one journey is offered (the run's rule, at least `small_n` = 30 journeys, offers
none on 14 customers).

What the pages show for a (period, segment value) is read from the page itself (the picker's
options, the embedded data of every combination: its cards' and tables' HTML and its figures'
traces) and compared with the rows of `period_figures` / `period_funnel`, read here with their
own SQL.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import duckdb
import numpy as np
import pytest

from dashboards.site import build_site
from tests.dashboards.conftest import EVIL, NOW, tiny_warehouse
from transforms import periods
from transforms.settings import read_settings


@pytest.fixture(scope="module")
def scoped(tmp_path_factory: pytest.TempPathFactory) -> tuple[duckdb.DuckDBPyConnection, Path]:
    con = tiny_warehouse(tmp_path_factory.mktemp("project"), mining=False)
    settings = read_settings(con)
    periods.build_period_figures(con, settings, min_journeys=1)
    periods.build_period_funnel(con, settings)
    site = build_site(con, tmp_path_factory.mktemp("site"), now=NOW).parent
    yield con, site
    con.close()


def _page(site: Path, slug: str) -> str:
    return (site / f"{slug}.html").read_text(encoding="utf-8")


def _options(page: str, select_id: str) -> list[tuple[str, str]]:
    m = re.search(rf'<select id="{select_id}"[^>]*>(.*?)</select>', page, flags=re.S)
    assert m, select_id
    return [(v, html.unescape(t)) for v, t in
            re.findall(r'<option value="([^"]+)"[^>]*>(.*?)</option>', m.group(1))]


def _scope_data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="scope-data">(.*?)</script>', page,
                  flags=re.S)
    assert m
    return json.loads(m.group(1))


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment))).strip()


def _key(page: str, period: str, segment: str) -> str:
    periods_ = {t: v for v, t in _options(page, "scope-period")}
    segments = {t: v for v, t in _options(page, "scope-segment")}
    return f"{periods_[period]}|{segments[segment]}"


def _values(v: object) -> list:
    """A trace's array: a list, or Plotly's typed array {dtype, bdata (base64)}."""
    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
    return list(v)  # type: ignore[call-overload]


def _pct(x: float) -> str:
    return f"{x * 100:,.1f}%"


def test_the_pickers_offer_the_periods_and_segment_values(scoped) -> None:
    con, site = scoped
    # offered: every non-missing, non-'(unknown)' value of the map's segments (at least 1
    # journey here), at most MAX_SEGMENT_VALUES per segment, most journeys first
    expected = set()
    for seg in ("channel", "platform", "city", "service_category", "customer_type"):
        rows = con.execute(
            f"select {seg}, count(*) from journeys where {seg} is not null "
            f"and {seg} <> '(unknown)' group by 1 order by 2 desc, 1").fetchall()
        expected |= {f"{seg} = {v}" for v, _ in rows[:periods.MAX_SEGMENT_VALUES]}
    assert expected  # the stories have platforms, cities and new / returning customers
    assert f"city = {EVIL}" in expected
    for slug in ("index", "bottlenecks"):
        page = _page(site, slug)
        segs = [t for _, t in _options(page, "scope-segment")]
        assert segs[0] == "All customers" and set(segs[1:]) == expected, slug
        # 7 days (the run's), 28 days, all 58 days of data
        assert [t for _, t in _options(page, "scope-period")] == [
            "Last 7 days", "Last 28 days", "All data (58 days)"], slug
        # the hostile city is an escaped option, never markup; the JSON holds no '<'
        assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        blob = re.search(r'id="scope-data">(.*?)</script>', page, flags=re.S).group(1)
        assert "<" not in blob
        # every combination is in the page's data
        assert len(_scope_data(page)) == 3 * len(segs)


def test_overview_numbers_of_a_period_and_segment_equal_the_tables(scoped) -> None:
    con, site = scoped
    page = _page(site, "index")
    combo = _scope_data(page)[_key(page, "Last 28 days", "platform = android")]
    cards = _text(combo["html"]["headline"])
    fig = {r[0]: r[1:] for r in con.execute(
        "select figure, current_value, previous_value, small_n from period_figures "
        "where period_days = 28 and segment = 'platform' and segment_value = 'android'"
    ).fetchall()}
    assert f"New customers {int(fig['new_customers'][0])} " in cards
    assert f"Purchases {int(fig['purchases'][0])} " in cards
    conv = fig["conversion"]
    assert f"{_pct(conv[0])} " in cards
    assert f"n = {int(fig['conversion_journeys'][0])} journeys of platform = android" in cards
    assert f"Repeat rate {_pct(fig['repeat_rate'][0])}" in cards
    # the tiny data has fewer than small_n (30) journeys: both rates are flagged
    assert conv[2] and fig["repeat_rate"][2]
    assert cards.count("small n: fewer than 30") == 2
    assert "Customers: platform = android" in cards

    funnel = con.execute(
        "select stage, entered, dropout_rate, largest_dropout from period_funnel "
        "where period_days = 28 and segment = 'platform' and segment_value = 'android' "
        "order by stage_index").fetchall()
    assert funnel
    traces = combo["figs"]["fig-index-funnel"]
    assert traces[0]["y"] == [r[0] for r in funnel]
    shown = [int(t.split(" · ")[0]) for t in traces[0]["text"]]
    assert shown == [r[1] for r in funnel] == _values(traces[0]["x"])
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", combo["html"]["funnel-table"], flags=re.S)[1:]
    for row, (stage, entered, dropout, _) in zip(rows, funnel, strict=True):
        cells = [_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)]
        assert cells[0] == stage and cells[1] == str(entered)
        if dropout is not None:
            assert cells[5].startswith(_pct(dropout))

    # the default combination (the run's 7 days, all customers) is the page's own HTML
    default = _scope_data(page)[_key(page, "Last 7 days", "All customers")]
    assert default["html"]["headline"] in page


def test_bottleneck_steps_of_a_period_and_segment_equal_the_funnel_table(scoped) -> None:
    con, site = scoped
    page = _page(site, "bottlenecks")
    data = _scope_data(page)
    combo = data[_key(page, "All data (58 days)", "customer_type = new")]
    rows = con.execute(
        "select stage, entered, dropoff_count, dropout_rate, largest_dropout, small_n "
        "from period_funnel where period_days = 58 and segment = 'customer_type' "
        "and segment_value = 'new' order by stage_index").fetchall()
    stages = [r[0] for r in rows]
    upto = stages.index("Purchase")  # steps on the way to the conversion stage
    steps = rows[1:upto + 1]
    trace = combo["figs"]["fig-bottlenecks-dropout"][0]
    assert trace["y"] == [f"{a} → {b}" for a, b in zip(stages[:upto], stages[1:upto + 1],
                                                        strict=True)]
    assert _values(trace["x"]) == pytest.approx([r[3] for r in steps])
    for text, prev, (_, _, lost, rate, _, _) in zip(trace["text"], rows[:upto], steps,
                                                    strict=True):
        assert text.startswith(f"{_pct(rate)} · {lost} of {prev[1]} lost")
    # every step of the tiny data rests on fewer than 30 customers: grey, none named
    assert all(r[5] for r in steps) and not any(r[4] for r in steps)
    lead = _text(combo["html"]["bottleneck-lead"])
    assert "customer_type = new" in lead and "Too few customers" in lead
    # the parts that do not follow the pickers say so
    assert page.count("All days, all customers:") >= 3
