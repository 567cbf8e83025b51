"""The Journey map page on the tiny warehouse (tests/dashboards/conftest.py): a period and a
persona picker, stages across, a drawn bar per value with the row's denominator in its label,
every persona's own values, the metrics in a fixed order, what the lost customers did last,
escaping, and (slow, with Chromium) that the table fits its card at 1024, 1440 and 1920 px.
Expected values come from SQL over `journeys`, `journey_stages` and `events` here, or from the
stories of the conftest worked out by hand, not from the page's tables.

The periods (data 4 Mar – 30 Apr 2024, 58 days; 14-day window, so the latest complete cohort is
15 Apr): 7 days = journeys entering 9–15 Apr, 28 days = 19 Mar – 15 Apr, all data = 4 Mar –
15 Apr. The tests below read the whole-data map unless they say otherwise."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from dashboards import journey_map
from dashboards.context import Context
from dashboards.data import Warehouse
from dashboards.layout import CSS, document
from tests.dashboards.conftest import EVIL, NOW, tiny_warehouse

EVIL_ESCAPED = html.escape(EVIL)


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    c = tiny_warehouse(tmp_path_factory.mktemp("jm"), mining=False)
    yield c
    c.close()


@pytest.fixture(scope="module")
def page(con: duckdb.DuckDBPyConnection) -> str:
    ctx = Context.read(Warehouse(con), period_days=None, built_at=NOW)
    return "".join(journey_map.render(ctx).body)


# the whole data's period block (the longest length: 58 days)
ALL_DATA = "d58"
# scope of the whole-data map: complete cohorts up to 15 Apr
IN_SCOPE = "complete and entry_date <= date '2024-04-15'"


def _all_blocks(page: str) -> dict[tuple[str, str], str]:
    """{(period option value, persona option value): its block}."""
    starts = [(m.start(), (m.group(1), m.group(2))) for m in re.finditer(
        r'<div class="persona" data-period="(d\d+)" data-persona="(p\d+)">', page)]
    out = {}
    for i, (start, key) in enumerate(starts):
        end = (starts[i + 1][0] if i + 1 < len(starts)
               else page.index('<p class="muted">', start))  # the legend after the last
        out[key] = page[start:end]
    return out


def _periods(page: str) -> list[str]:
    """The periods of the blocks, in page order."""
    return list(dict.fromkeys(d for d, _ in _all_blocks(page)))


def _blocks(page: str, period: str = ALL_DATA) -> dict[str, str]:
    """{persona option label: its block} of one period."""
    options = dict((v, html.unescape(label)) for v, label in re.findall(
        r'<option value="(p\d+)">([^<]*)</option>', page))
    return {options[p]: b for (d, p), b in _all_blocks(page).items() if d == period}


def _row(block: str, label: str) -> list[str]:
    """The cells of the row whose head starts with `label`."""
    m = re.search(rf'<tr><th class="rowhead">{re.escape(label)}<small>.*?</small></th>(.*?)</tr>',
                  block)
    assert m, label
    return re.findall(r"<td[^>]*>(.*?)</td>", m.group(1))


def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def test_stages_across_and_a_persona_block_per_option(con, page) -> None:
    stages = [r[0] for r in con.execute(
        "select stage from funnel_steps order by stage_index").fetchall()]
    blocks = _blocks(page)
    assert '<select id="persona">' in page
    assert len(blocks) == page.count('<option value="p') > 1
    head = re.search(r"<thead>(.*?)</thead>", blocks["All customers"]).group(1)
    assert [_text(h).split(" Most")[0].split(" 2nd")[0]
            for h in re.findall(r"<th[^>]*>(.*?)</th>", head)[1:]] == stages


def test_rows_state_their_denominator_and_draw_bars(con, page) -> None:
    block = _blocks(page)["All customers"]
    n = con.execute(f"select count(*) from journeys where {IN_SCOPE}").fetchone()[0]
    assert f"Reached the stage<small>count; % of the period&#x27;s {n} journeys</small>" \
        in block
    assert "Lost before the next stage<small>count; % of those reaching the stage</small>" \
        in block
    # reach: the period's journeys reaching each stage over all of them
    reached = con.execute(f"""
        select count(j.customer_id) / {n}
        from (select distinct stage_index from journey_stages) k
        left join journey_stages s on s.stage_index = k.stage_index
        left join journeys j on j.customer_id = s.customer_id and j.{IN_SCOPE.replace(
            " and ", " and j.")}
        group by k.stage_index order by k.stage_index""").fetchall()
    cells = _row(block, "Reached the stage")
    for (share,), cell in zip(reached, cells, strict=False):
        assert f'style="--w:{share * 100:.1f}%"' in cell
        assert f"{share * 100:.1f}%" in _text(cell)
    # lost: journeys whose furthest stage it is, over those reaching it
    lost = dict(con.execute(f"""
        select furthest_stage, count(*) from journeys
        where {IN_SCOPE} and not reached_last_stage group by all""").fetchall())
    stages = [r[0] for r in con.execute(
        "select stage from funnel_steps order by stage_index").fetchall()]
    lost_cells = _row(block, "Lost before the next stage")
    for stage, cell in zip(stages, lost_cells, strict=True):
        if stage in lost:
            assert _text(cell).startswith(str(lost[stage]))
    assert "†" not in page  # every persona shows its own values


def test_every_persona_shows_its_own_metrics_in_a_fixed_order(con, page) -> None:
    blocks = _blocks(page)
    # new customers (installed, customer_type new): all of them, and paid_social's own
    new = dict(con.execute(f"""
        select coalesce(channel, '(unknown)'), count(*) filter (where customer_type = 'new')
        from journeys where {IN_SCOPE} group by all""").fetchall())
    total = con.execute("select count(*) filter (where customer_type = 'new') from journeys "
                        f"where {IN_SCOPE}").fetchone()[0]
    # by hand: c01, c02, c04, c05, c09, c10 and c07 installed by 15 Apr (c13, c14 and c11
    # later: their windows are open)
    assert total == 7
    assert f"new customers: {total}" in _text(blocks["All customers"])
    assert f"new customers: {new['paid_social']}" in _text(blocks["channel = paid_social"])
    # repeat horizons by number, never alphabetically (14d, 30d, 7d)
    text = _text(blocks["All customers"])
    assert text.index("repeat rate 7d") < text.index("repeat rate 14d") \
        < text.index("repeat rate 30d")
    # touchpoints per persona: the ios persona's Discovery platform is ios only
    ios = blocks["platform = ios"]
    platform = _row(ios, "Platform")[0]
    assert "ios" in _text(platform) and "android" not in _text(platform)


def test_the_stage_losing_most_says_what_its_leavers_did_last(con, page) -> None:
    last = con.execute(f"""
        with leavers as (
            select customer_id, furthest_stage_index as k, entry_ts, window_end_ts
            from journeys where {IN_SCOPE} and not reached_last_stage
        ),
        ordered as (
            select l.k, e.event_name, row_number() over (
                partition by l.customer_id order by e.event_ts desc, e.event_id desc) as n
            from leavers l join events e on e.customer_id = l.customer_id
             and e.event_ts between l.entry_ts and l.window_end_ts
        ),
        counted as (
            select k, event_name, count(*) as journeys from ordered where n = 1
            group by k, event_name
        )
        select k, event_name, journeys, sum(journeys) over (partition by k) as lost
        from counted order by lost desc, k, journeys desc, event_name""").fetchall()
    stages = [r[0] for r in con.execute(
        "select stage from funnel_steps order by stage_index").fetchall()]
    # ranked up to the conversion stage only: leaving after buying is not buying again
    conversion = stages.index("Purchase") + 1  # the sample map's conversion_stage
    k, event, journeys, lost = next(r for r in last if r[0] < conversion)
    block = _blocks(page)["All customers"]
    head = re.findall(r"<th[^>]*>(.*?)</th>", re.search(r"<thead>(.*?)</thead>", block).group(1))
    assert "Most customers lost here" in head[k]  # head[0] is the row-label column
    assert stages[k - 1] in head[k]
    cell = _row(block, "Their last event")[k - 1]
    share = f"{journeys / lost * 100:.1f}%"
    assert f"{event}: {journeys} of the {lost} lost ({share})" in html.unescape(cell)
    assert f"Most customers are lost at {stages[k - 1]}: {lost}" in _text(block)


def test_data_is_escaped(page) -> None:
    assert EVIL not in page
    assert EVIL_ESCAPED in page  # c01's screen and city, c02's complaint


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")
@pytest.mark.parametrize("width", [1024, 1440, 1920])
def test_the_map_fits_its_card(con, tmp_path: Path, width: int) -> None:
    ctx = Context.read(Warehouse(con), period_days=None, built_at=NOW)
    page = journey_map.render(ctx)
    (tmp_path / "style.css").write_text(CSS)
    (tmp_path / "plotly.min.js").write_text("")
    probe = (
        "<script>window.addEventListener('load', function () { var bad = [];"
        " document.querySelectorAll('.persona').forEach(function (p) { p.hidden = false;"
        " var t = p.querySelector('table'), s = p.closest('section'); if (!t) return;"
        " t.querySelectorAll('td, th').forEach(function (c) {"
        " if (c.scrollWidth > c.clientWidth + 1) bad.push(p.dataset.persona + ' cell'); });"
        " if (t.getBoundingClientRect().right > s.getBoundingClientRect().right - 1"
        " || document.documentElement.scrollWidth > window.innerWidth)"
        " bad.push(p.dataset.persona);"
        " }); document.title = 'overflow:' + bad.join(','); });</script>")
    text = document(page, subtitle="", footer="").replace("</body>", probe + "</body>")
    (tmp_path / "journey_map.html").write_text(text)
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--window-size={width},2000", "--virtual-time-budget=5000", "--dump-dom",
         (tmp_path / "journey_map.html").as_uri()],
        capture_output=True, text=True, timeout=120).stdout
    assert "<title>overflow:</title>" in dom, re.findall(r"<title>[^<]*", dom)


def test_a_period_picker_with_one_block_per_period(con, page) -> None:
    # 7, 28 and 58 days: three different sets of entry days; the run's 7 days shown first
    assert _periods(page) == ["d7", "d28", "d58"]
    options = re.findall(r'<option value="(d\d+)"( selected)?>([^<]*)</option>', page)
    assert [(v, sel) for v, sel, _ in options] == [("d7", " selected"), ("d28", ""),
                                                   ("d58", "")]
    labels = [html.unescape(t) for _, _, t in options]
    assert labels == ["Last 7 days: entering 09 Apr 2024 – 15 Apr 2024",
                      "Last 28 days: entering 19 Mar 2024 – 15 Apr 2024",
                      "All data (58 days): entering 04 Mar 2024 – 15 Apr 2024"]
    personas = page.count('<option value="p')
    assert len(_all_blocks(page)) == 3 * personas
    assert "getElementById('period')" in page \
        and "getElementById('persona')" in page


def test_the_last_7_days_map_counts_the_journeys_entering_then(con, page) -> None:
    block = _blocks(page, "d7")["All customers"]
    # by hand: c07 (10 Apr) and c06 (15 Apr) enter 9–15 Apr
    assert "All customers, journeys entering 09 Apr 2024 – 15 Apr 2024: 2 journeys." \
        in _text(block)
    assert "count; % of the period&#x27;s 2 journeys" in block
    reach = [_text(c).split(" ")[0] for c in _row(block, "Reached the stage")]
    n = con.execute("""
        select count(*) from journey_stages s join journeys j using (customer_id)
        where j.complete and j.entry_date between date '2024-04-09' and date '2024-04-15'
        group by s.stage_index order by s.stage_index""").fetchall()
    assert reach[:len(n)] == [str(r[0]) for r in n] and reach[0] == "2"
    # new customers: c07 installed, c06 only opened the app
    assert "new customers: 1" in _text(block)


def test_a_persona_without_journeys_in_a_period_says_so(page) -> None:
    # paid_social: c01 (4 Mar) and c09 (4 Apr), none in 9–15 Apr
    block = _blocks(page, "d7")["channel = paid_social"]
    assert "No journey of this persona enters in this period" in block
    assert "<table" not in block
    assert "<table" in _blocks(page, "d28")["channel = paid_social"]


def test_median_time_bars_are_linear_with_the_value_printed(con, page) -> None:
    # the medians of the whole-data journeys' time from the previous stage, by SQL here
    medians = [r[0] for r in con.execute(f"""
        select quantile_cont(s.seconds_from_previous, 0.5)
        from journey_stages s join journeys j using (customer_id)
        where j.{IN_SCOPE.replace(" and ", " and j.")} and s.stage_index > 1
        group by s.stage_index order by s.stage_index""").fetchall()]
    longest = max(m for m in medians if m is not None)
    cells = _row(_blocks(page)["All customers"], "Median time to the next stage")
    for m, cell in zip(medians, cells, strict=False):
        if m is None:
            continue
        # a bar's length is the median over the longest: linear, not log
        assert f'style="--w:{m / longest * 100:.1f}%"' in cell
        assert _text(cell) != "–"


def test_each_period_maps_the_journeys_of_the_overviews_funnel(con) -> None:
    # the Overview's funnel of a period (period_funnel, the 'cohorts' basis) and the map's
    # all-customer funnel count the same journeys at every stage
    cols = {r[0] for r in con.execute("describe period_funnel").fetchall()}
    if "segment" in cols:  # per segment too (the Overview's segment picker): the same
        diff = con.execute("""
            select count(*) from period_funnel p
            full join journey_map_funnel m
              using (period_days, segment, segment_value, stage_index)
            where coalesce(p.segment, m.segment) = 'all'
               or (p.segment_value is not null and m.segment_value is not null)
            having count(*) filter (where p.entered is distinct from m.entered) > 0
            """).fetchall()
        assert diff == []
    else:
        diff = con.execute("""
            select count(*) from period_funnel p
            full join (select * from journey_map_funnel where segment = 'all') m
              using (period_days, stage_index)
            where p.entered is distinct from m.entered""").fetchone()[0]
        assert diff == 0
    assert con.execute("select count(distinct period_days) from period_funnel").fetchone()[0] \
        == 3
