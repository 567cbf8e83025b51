"""Every rate the sample dashboard displays equals the table it comes from, and every time series
marks the days whose conversion window is still open (issue 11).

The pages are read as HTML (the Overview's cards, the funnel and transition tables) and as the
Plotly figures embedded in them (their JSON); the tables are read from the run's warehouse with
their own SQL here, not through the dashboard code.
"""

from __future__ import annotations

import html
import json
import re

import duckdb
import pytest

from tests.e2e.conftest import SampleRun

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(sample_run: SampleRun) -> SampleRun:
    assert sample_run.returncode == 0, sample_run.stderr[-2000:]
    return sample_run


@pytest.fixture(scope="module")
def con(run: SampleRun) -> duckdb.DuckDBPyConnection:
    c = duckdb.connect(str(run.warehouse), read_only=True)
    yield c
    c.close()


def page(run: SampleRun, name: str) -> str:
    return (run.output_dir / "dashboard" / name).read_text(encoding="utf-8")


def pct(x: float) -> str:
    return f"{x * 100:,.1f}%"


def figures(raw: str) -> dict[str, dict]:
    """The Plotly figures of a page by div id: Plotly.newPlot("id", data, layout, config)."""
    decoder = json.JSONDecoder()
    out = {}
    for m in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', raw):
        data, _ = decoder.raw_decode(raw, m.end())
        out[m.group(1)] = {"data": data}
    return out


def cells(raw: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is `first`."""
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", raw, flags=re.S):
        tds = [html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
               for c in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)]
        if tds and tds[0] == first:
            return tds
    raise AssertionError(f"no table row starting {first!r}")


def scopes(raw: str) -> dict[tuple[int, str, str], dict]:
    """Every (period_days, segment, segment_value) the page's pickers offer, with what the page
    shows for it (dashboards/scope.py: the slots' HTML and the figures' traces)."""
    def options(select_id: str) -> list[tuple[str, str]]:
        block = re.search(rf'<select id="{select_id}"[^>]*>(.*?)</select>', raw, re.S)
        assert block, select_id
        return [(v, html.unescape(t)) for v, t in
                re.findall(r'<option value="([^"]+)"[^>]*>(.*?)</option>', block.group(1))]

    data = json.loads(re.search(r'<script type="application/json" id="scope-data">(.*?)'
                                r"</script>", raw, re.S).group(1))
    out = {}
    for pv, _ in options("scope-period"):
        for sv, text in options("scope-segment"):
            seg = ("all", "all") if text == "All customers" else tuple(text.split(" = ", 1))
            out[(int(pv[1:]), *seg)] = data[f"{pv}|{sv}"]
    return out


def test_overview_cards_equal_period_figures(run: SampleRun, con) -> None:
    shown = scopes(page(run, "index.html"))
    groups = con.execute("select distinct period_days, segment, segment_value "
                         "from period_figures").fetchall()
    assert set(shown) == set(groups) and len(groups) > 3  # every period x offered value
    for key, combo in shown.items():
        rows = dict(con.execute("select figure, current_value from period_figures "
                                "where period_days = ? and segment = ? and segment_value = ?",
                                list(key)).fetchall())
        text = html.unescape(re.sub(r"<[^>]+>", " ", combo["html"]["headline"]))
        if rows["conversion"] is not None:
            assert re.search(rf"Overall conversion [^%]*? {re.escape(pct(rows['conversion']))}",
                             text), key
        if rows["repeat_rate"] is not None:
            assert re.search(rf"Repeat rate\s+{re.escape(pct(rows['repeat_rate']))}", text), key
        assert re.search(rf"Purchases\s+{int(rows['purchases']):,d}", text), key
        assert re.search(rf"New customers\s+{int(rows['new_customers']):,d}", text), key
    # the default (the run's period, all customers) is the page's own HTML
    days = con.execute("select cast(value as integer) from run_settings "
                       "where key = 'period_days'").fetchone()[0]
    assert shown[(days, "all", "all")]["html"]["headline"] in page(run, "index.html")


def test_funnel_and_transition_tables_equal_their_tables(run: SampleRun, con) -> None:
    index, bottlenecks = page(run, "index.html"), page(run, "bottlenecks.html")
    conversion = con.execute("select cast(value as varchar) from run_settings "
                             "where key = 'conversion_stage'").fetchone()[0].strip('"')
    steps_shown = scopes(bottlenecks)
    for key, combo in scopes(index).items():
        funnel = con.execute(
            "select stage, entered, overall_conversion, step_conversion, dropout_rate, "
            "dropoff_count from period_funnel where period_days = ? and segment = ? "
            "and segment_value = ? order by stage_index", list(key)).fetchall()
        if not funnel:
            assert combo["figs"]["fig-index-funnel"] is None, key
            continue
        for stage, entered, overall, step, dropout, _ in funnel:
            row = cells(combo["html"]["funnel-table"], stage)
            assert row[1] == f"{entered:,d}" and row[2] == pct(overall), key
            if step is not None:
                assert row[3].startswith(pct(step)) and row[5].startswith(pct(dropout)), key
        # the Bottlenecks page's steps for the same scope: each step up to the conversion
        # stage, its dropout and journeys lost of those who reached its first stage
        stages = [r[0] for r in funnel]
        upto = stages.index(conversion)
        trace = steps_shown[key]["figs"]["fig-bottlenecks-dropout"][0]
        assert trace["y"] == [f"{a} → {b}" for a, b in zip(stages[:upto], stages[1:upto + 1],
                                                            strict=True)], key
        for text, before, after in zip(trace["text"], funnel[:upto], funnel[1:upto + 1],
                                       strict=True):
            assert text.startswith(f"{pct(after[4])} · {after[5]:,d} of {before[1]:,d} lost"), key
    for a, b, entered, dropout in con.execute(
            "select from_stage, to_stage, entered_from, dropout_rate from stage_transitions"
            ).fetchall():
        row = cells(bottlenecks, f"{a} → {b}")
        assert row[1] == f"{entered:,d}" and row[4] == pct(dropout)


def test_every_time_series_marks_the_open_window_days(run: SampleRun, con) -> None:
    # the days whose windows are still open, from the tables
    open_cohorts = {str(d) for (d,) in con.execute(
        "select distinct cohort_date from funnel_cohorts where not complete").fetchall()}
    open_by_stage: dict[str, set[str]] = {}
    for stage, d in con.execute("select stage, event_date from daily_stage_rates "
                                "where not complete and converted is not null").fetchall():
        open_by_stage.setdefault(stage, set()).add(str(d))
    assert open_cohorts and open_by_stage  # the sample ends with open windows
    figs = figures(page(run, "index.html"))
    for fig_id, want in (("fig-index-conversion-trend", {"fully observed": open_cohorts}),
                         ("fig-index-dropout-trend", open_by_stage)):
        traces = figs[fig_id]["data"]
        marked = [t for t in traces if "window still open" in t.get("name", "")]
        assert len(marked) == 1 and marked[0]["mode"] == "markers"  # no line through them
        for t in traces:
            if t in marked:
                continue
            on_line = {str(x)[:10] for x in t["x"]}
            assert not (on_line & want.get(t["name"], set())), (fig_id, t["name"])
        # every open day is drawn apart: as many open markers as open (day x series)
        assert len(marked[0]["x"]) == sum(len(v) for v in want.values())
    # the findings' charts: only days whose windows have closed (the tested span)
    for fig_id, fig in figures(page(run, "bottlenecks.html")).items():
        if fig_id.startswith("fig-bottlenecks-finding-"):
            days = {str(x)[:10] for t in fig["data"] for x in t["x"]}
            rank = int(fig_id.rsplit("-", 1)[1])
            transition = con.execute("select from_step from findings where rank = ?",
                                     [rank]).fetchone()[0]
            if transition in {s for (s,) in con.execute(
                    "select distinct stage from daily_stage_rates").fetchall()}:
                stage_open = {str(d) for (d,) in con.execute(
                    "select event_date from daily_stage_rates where stage = ? and not complete",
                    [transition]).fetchall()}
                assert not (days & stage_open), (fig_id, sorted(days & stage_open))
