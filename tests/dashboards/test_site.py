"""The dashboard site on a tiny warehouse built by the real transforms (see conftest.py).

Every expected number is worked out by hand from the stories in conftest.py; a hostile value
(`<script>alert(1)</script>`) sits in every free-text field that reaches a page.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb
import pytest

from dashboards import fmt
from dashboards.layout import PAGES, tables_read
from dashboards.site import PLOTLY_JS, build_site, site_size
from tests.dashboards.conftest import EVIL, EXPECTED_FIGURES, NOW, tiny_warehouse
from transforms.dashboard_tables import build_repeat_so_far
from transforms.errors import UserError

EVIL_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"

@pytest.fixture(scope="module")
def site(warehouse: duckdb.DuckDBPyConnection, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_site(warehouse, tmp_path_factory.mktemp("site"), now=NOW)


def _pages(site: Path) -> dict[str, str]:
    return {p.slug: (site.parent / f"{p.slug}.html").read_text(encoding="utf-8") for p in PAGES}


def _text(page: str) -> str:
    """Visible-ish text of a page: tags dropped, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def test_every_page_is_written_with_its_figures(site: Path) -> None:
    pages = _pages(site)
    assert site.name == "index.html"
    assert set(pages) == {"index", "journey_map", "bottlenecks", "paths", "repeat", "quality"}
    for slug, page in pages.items():
        divs = len(re.findall(r'class="plotly-graph-div"', page))
        assert divs == EXPECTED_FIGURES[slug], slug
        assert f'data-figures="{divs}"' in page
        for other in PAGES:  # the nav bar links every page
            assert f'href="{other.slug}.html"' in page


def test_plotly_js_is_shipped_once_and_nothing_is_fetched(site: Path) -> None:
    folder = site.parent
    js = [p.name for p in folder.iterdir() if p.suffix == ".js"]
    assert js == [PLOTLY_JS]
    assert (folder / PLOTLY_JS).stat().st_size > 1_000_000  # the real library, not a stub
    for slug, page in _pages(site).items():
        srcs = re.findall(r'<script[^>]*\ssrc="([^"]*)"', page)
        assert srcs == [PLOTLY_JS], slug
        assert not re.search(r'(src|href)="(https?:)?//', page), slug
        assert "cdn.plot.ly" not in page
        assert len(page) < 400_000, slug  # plotly.js is not inlined


def test_event_values_are_escaped_never_raw(site: Path) -> None:
    pages = _pages(site)
    for slug, page in pages.items():
        assert EVIL not in page, slug
    # touchpoint: Consideration's screens are c01's EVIL, c08's and c09's Home
    jmap = pages["journey_map"]
    assert f"screen: Home (66.7%), {EVIL_ESCAPED} (33.3%)" in jmap
    # pain: c02's complaint, 1 of the 4 journeys reaching Service (c01–c04)
    assert f"complaint: {EVIL_ESCAPED} — 1 customers (25.0%)" in jmap
    assert f"city = {EVIL_ESCAPED}</option>" in jmap  # persona: c01's city
    assert f"unknown event_name: {EVIL_ESCAPED}" in pages["quality"]  # quarantine reason
    # Inside figures the value travels as JSON with < escaped, so it cannot end the script,
    # and as &lt; so Plotly shows it as text, not as its label markup
    assert "&lt;script\\u003ealert(1)" in pages["bottlenecks"]
    assert "\\u003cscript" not in pages["bottlenecks"]


def test_headline_numbers_worked_out_by_hand(site: Path) -> None:
    text = _text(_pages(site)["index"])
    # Period 24–30 Apr vs 17–23 Apr (7 days, the run's setting; data end 30 Apr).
    assert ("Last 7 days: 24 Apr 2024 – 30 Apr 2024 (7 days; previous period 17 Apr – 23 Apr "
            "2024)") in text
    # New customers (installed): c11 vs c13, c14 (c12 only opens the app: returning).
    assert "New customers 1 -50.0% vs previous period (2)" in text
    # Purchases: b03 (c01's 3rd), b12 (c11) vs b13 (c05's 2nd), b14, b15 (b16 refunded).
    assert "Purchases 2 -33.3% vs previous period (3)" in text
    # Revenue: every booking costs 40 EUR: 2 x 40 vs 3 x 40
    assert "Revenue 80.00 EUR -33.3% vs previous period (120)" in text
    # Complete cohorts: entry day + 1 day + 14 days <= 30 Apr 12:00, so the latest is 15 Apr
    # (c06). 9–15 Apr: c07 converts, c06 does not, 1 / 2; 2–8 Apr: c10 of c08, c09, c10, 1 / 3.
    assert ("Overall conversion · journeys entering 09 Apr – 15 Apr 50.0% +16.7 pp vs "
            "previous period (33.3%) n = 2 journeys") in text
    # The funnel of those cohorts: its steps rest on 2 journeys, fewer than small_n (30), so no
    # step is ranked as the largest dropout (a rate on so few is flagged, not ranked)
    assert ("No step before Purchase has enough customers to name the largest dropout"
            in text)
    # Repeat: of the buyers c01, c11 only c01 had bought before; previous c05 of c05, c13, c14.
    assert "Repeat rate 50.0% +16.7 pp vs previous period (33.3%)" in text


def test_numbers_are_formatted_for_reading(site: Path) -> None:
    pages = _pages(site)
    index = _text(pages["index"])
    assert "100.0%" in index  # dropout Purchase -> Service among the period's cohorts
    jmap = _text(pages["journey_map"])
    # "All data" holds the journeys whose window has closed (entering 4 Mar - 15 Apr): their
    # 12 bookings, b01 at 48 EUR and 11 at 40: 488 / 12
    assert "average basket: 40.67 EUR" in jmap
    # every installer among them: c01, c02, c04, c05, c07, c09, c10 (c11, c13 and c14 are
    # still open)
    assert "new customers: 7" in jmap
    assert "new customers: 2" in jmap  # the paid_social persona's own value: c01, c09
    # days from first to second purchase: c01 6.02, c03 19.00, c05 45.00 -> median 19.0
    assert "median days to repeat: 19.0 d" in jmap
    assert "card_declined" in pages["bottlenecks"]
    # android x card: 14 attempts over 10 days, 1 failed (c03's on 6 Mar): the days without a
    # failure count too.
    assert "7.1%<br>n=14" in pages["bottlenecks"].replace("\\u003c", "<").replace(
        "\\u003e", ">")
    # no cell has 20 attempts, so all are ranked: c10's one apple_pay attempt failed
    assert "Highest failure rate: android with apple_pay — 100.0% of 1 attempts failed" in _text(
        pages["bottlenecks"])


def test_bottleneck_is_the_flagged_transition_before_conversion(site: Path) -> None:
    text = _text(_pages(site)["bottlenecks"])
    # Complete journeys c01–c10. Dropout: Discovery -> Consideration 0 (skipped Consideration
    # is implied by Decision), Consideration -> Decision 2 of 10 (c08, c09), Decision ->
    # Purchase 1 of 8 (c06); Purchase -> Service's 3 of 7 comes after Purchase, not ranked.
    assert ("The bottleneck on the way to Purchase is Consideration → Decision: 20.0% of "
            "customers who reach Consideration do not go on (2 customers). Steps after "
            "conversion are not ranked (Purchase → Service, Service → Repeat)") in text
    assert "leakiest" not in text


def test_thresholds_in_page_text_come_from_the_run_settings(
        warehouse: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    con = warehouse.cursor()
    con.execute("create or replace temp table _kept as select * from run_settings")
    try:
        con.execute("update run_settings set value = '0.01' where key = 'significance_level'")
        index = build_site(con, tmp_path / "site", now=NOW)
    finally:
        con.execute("create or replace table run_settings as select * from _kept")
    text = _text((index.parent / "bottlenecks.html").read_text(encoding="utf-8"))
    assert "Benjamini–Hochberg adjusted p &lt; 0.01" in text
    assert "significant when p &lt; 0.01 and both groups have at least 5 conversions" in text
    assert "expect about 1% of cells" in text
    repeat = _text((index.parent / "repeat.html").read_text(encoding="utf-8"))
    assert "A low rating is 2 or less." in repeat


def test_payment_heatmap_needs_payment_failure_matrix(tmp_path: Path) -> None:
    con = tiny_warehouse(tmp_path / "project")
    con.execute("drop table payment_failure_matrix")  # payment_attempts is still there: no
    index = build_site(con, tmp_path / "site", now=NOW)  # adding up at render time
    page = (index.parent / "bottlenecks.html").read_text(encoding="utf-8")
    assert "Not available:" in page and "payment_failure_matrix" in page
    assert "fig-bottlenecks-failure-matrix" not in page
    assert 'data-figures="5"' in page  # 7 less the heatmap and the reasons chart


@pytest.mark.parametrize("value, expected", [
    (fmt.count(1234567), "1,234,567"), (fmt.count(None), "–"), (fmt.pct(0.1234), "12.3%"),
    (fmt.pct(float("nan")), "–"), (fmt.pp(0.0123), "+1.2 pp"), (fmt.pp(-0.25), "-25.0 pp"),
    (fmt.duration(42), "42 s"), (fmt.duration(600), "10 min"), (fmt.duration(5400), "1.5 h"),
    (fmt.duration(3 * 86400), "3.0 d"), (fmt.money(1234.5, "EUR"), "1,234.50 EUR"),
    (fmt.money(1234.5, None), "1,234.50"),
    (fmt.p_value(0.0001), "<0.001"), (fmt.p_value(0.04321), "0.043"),
])
def test_formats(value: str, expected: str) -> None:
    assert value == expected


def test_story_cues_are_on_the_pages(site: Path) -> None:
    pages = {k: _text(v) for k, v in _pages(site).items()}
    assert "paid_social" in pages["bottlenecks"] and "two-proportion z-test" in pages[
        "bottlenecks"]
    # one Decision dropout (c06, 15 Apr) among 8 Decision days is no finding: too few attempts
    assert "What changed? Nothing: no window" in pages["bottlenecks"]
    # 30 days after the first purchase: c02 (rated 1) has not come back; c01 (5) after 6 days
    # and c03 (4) after 19 have
    assert ("Within 30 days, 0.0% of customers who rated their first visit low bought again, "
            "against 100.0% of those who rated it high.") in pages["repeat"]
    # 14 journeys; c01, c03, c05, c14 book again (Decision and Purchase repeated before the
    # first Repeat); c08 comes back to Discovery, which is no path step since Discovery counts
    # its first occurrence only: 10 of 14 follow the map in order
    assert ("Journeys in the expected order 71.4% of 14 journeys follow the journey map in "
            "order, with no stage skipped, repeated or out of order") in pages["paths"]


def test_missing_mining_tables_say_how_to_get_them(tmp_path: Path) -> None:
    con = tiny_warehouse(tmp_path / "project", mining=False)
    index = build_site(con, tmp_path / "site", now=NOW)
    paths = (index.parent / "paths.html").read_text(encoding="utf-8")
    assert "Not available:" in paths and "journeys mine" in paths
    assert 'data-figures="0"' in paths
    assert f'data-figures="{EXPECTED_FIGURES["index"]}"' in index.read_text(encoding="utf-8")


@pytest.mark.parametrize("keep", [[], ["events"]])
def test_empty_warehouse_gives_notes_not_a_crash(tmp_path: Path, keep: list[str]) -> None:
    con = tiny_warehouse(tmp_path / "project")
    tables = con.execute("select table_name, table_type from information_schema.tables "
                         "where table_schema = current_schema()").fetchall()
    for t, kind in tables:
        if t not in keep:
            con.execute(f"drop {'view' if kind == 'VIEW' else 'table'} {t}")
    index = build_site(con, tmp_path / "site", now=NOW)
    for p in PAGES:
        page = (index.parent / f"{p.slug}.html").read_text(encoding="utf-8")
        command = "journeys mine" if p.slug == "paths" else "journeys run"
        assert "Not available:" in page and command in page, p.slug


def test_without_run_settings_pages_say_so_and_guess_nothing(
        warehouse: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    con = warehouse.cursor()
    con.execute("create or replace temp table _kept as select * from run_settings")
    try:
        con.execute("drop table run_settings")
        index = build_site(con, tmp_path / "site", now=NOW)
    finally:
        con.execute("create or replace table run_settings as select * from _kept")
    pages = {p.slug: (index.parent / f"{p.slug}.html").read_text(encoding="utf-8")
             for p in PAGES}
    assert "Not available:" in pages["index"] and "run_settings" in pages["index"]
    assert "Not available:" in pages["journey_map"] and "run_settings" in pages["journey_map"]
    assert "Purchase" not in _text(pages["journey_map"])  # no stage order guessed
    assert "40.50 EUR" not in pages["journey_map"]  # no currency guessed


def test_every_table_a_page_reads_is_in_the_tiny_warehouse(
        warehouse: duckdb.DuckDBPyConnection) -> None:
    tables = {r[0] for r in warehouse.execute("show tables").fetchall()}
    assert set(tables_read()) <= tables
    assert all(p.reads for p in PAGES)


def test_rebuild_is_identical(warehouse: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    a = build_site(warehouse, tmp_path / "a", now=NOW).parent
    b = build_site(warehouse, tmp_path / "b", now=NOW).parent
    for f in a.iterdir():
        assert f.read_bytes() == (b / f.name).read_bytes(), f.name
    assert site_size(a) < 5_000_000 + (a / PLOTLY_JS).stat().st_size


def test_period_must_be_positive(warehouse: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="period_days"):
        build_site(warehouse, tmp_path, period_days=0)


def _project(tmp_path: Path, *, with_warehouse: bool = True) -> Path:
    """A tiny project whose warehouse file holds the tables of the stories."""
    root = tmp_path / "project"
    if with_warehouse:
        (root / "warehouse").mkdir(parents=True)
        tiny_warehouse(root, database=str(root / "warehouse" / "journeys.duckdb")).close()
    else:
        from tests.conftest import TinyProject

        root.mkdir(parents=True)
        TinyProject(root)
    return root / "sources.yaml"


def test_cli_rebuilds_the_site_from_the_warehouse(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from pipelines.cli import main

    config = _project(tmp_path)
    assert main(["dashboard", "--config", str(config)]) == 0
    index = config.parent / "output" / "dashboard" / "index.html"
    assert capsys.readouterr().out.splitlines()[0] == str(index.resolve())
    assert index.exists() and (index.parent / PLOTLY_JS).exists()
    page = index.read_text(encoding="utf-8")
    assert "Last 7 days: 24 Apr 2024 – 30 Apr 2024" in page
    # the picker: the run's 7 days (selected), 28 days, and all 58 days of data (4 Mar - 30 Apr)
    assert ('<option value="d7" selected>Last 7 days</option><option value="d28">Last 28 '
            'days</option><option value="d58">All data (58 days)</option>') in page
    assert "Last 28 days: 03 Apr 2024 – 30 Apr 2024 (28 days; previous period" in page
    assert "All data (58 days): 04 Mar 2024 – 30 Apr 2024 (58 days; no previous period" in page
    # --period-days picks the selected one; a length the run did not compute says so
    assert main(["dashboard", "--config", str(config), "--out", str(tmp_path / "d28"),
                 "--period-days", "28"]) == 0
    assert '<option value="d28" selected>' in (tmp_path / "d28" / "index.html").read_text(
        encoding="utf-8")
    assert main(["dashboard", "--config", str(config), "--out", str(tmp_path / "elsewhere"),
                 "--period-days", "14"]) == 0
    text = _text((tmp_path / "elsewhere" / "index.html").read_text(encoding="utf-8"))
    assert ("The headline numbers for 14-day periods are not in period_figures: the run "
            "computed 7, 28, 58-day periods") in text


def test_cli_without_a_warehouse_says_to_run_first(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from pipelines.cli import main

    config = _project(tmp_path, with_warehouse=False)
    assert main(["dashboard", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("journeys dashboard: error: no warehouse at ")
    assert "journeys run" in err and "Traceback" not in err


def test_dagster_asset_writes_the_site_with_its_path(tmp_path: Path) -> None:
    import dagster as dg

    from pipelines.defs.dashboards.assets import dashboard_asset
    from pipelines.resources import ProjectResource

    config = _project(tmp_path)
    dashboard = dashboard_asset([])
    resource = ProjectResource(config_path=str(config))
    result = dg.materialize([dashboard], resources={"project": resource})
    assert result.success
    meta = result.asset_materializations_for_node("dashboard")[0].metadata
    index = config.parent / "output" / "dashboard" / "index.html"
    assert meta["path"].value == str(index.resolve())
    assert meta["size_bytes"].value == site_size(index.parent)
    assert dashboard.group_names_by_key[dg.AssetKey("dashboard")] == "dashboards"
    assert dg.AssetKey("stage_transition_segments") in dashboard.asset_deps[
        dg.AssetKey("dashboard")]


def test_repeat_before_any_horizon_is_observed_shows_repeat_so_far(tmp_path: Path) -> None:
    con = tiny_warehouse(tmp_path / "project")
    con.execute("update repeat_purchase set eligible = 0, repeated_within = 0, repeat_rate = null")
    build_repeat_so_far(con)
    index = build_site(con, tmp_path / "site", now=NOW)
    page = _text((index.parent / "repeat.html").read_text(encoding="utf-8"))
    assert "No buyer has been observed for 7 days after the first purchase yet" in page
    # repeat purchasers / purchasers: c02 0 / 1 low; c01, c03 2 / 2 high
    assert ("So far 0.0% of customers who rated their first visit low bought again, against "
            "100.0% of those who rated it high.") in page


def test_every_registered_page_names_its_renderer_and_slug() -> None:
    import importlib

    for spec in PAGES:
        module = importlib.import_module(spec.module)
        assert callable(module.render), spec.module
        assert module.SLUG == spec.slug, spec.module


def test_a_part_the_data_cannot_give_says_why_instead_of_run_again() -> None:
    from dashboards.data import MissingTables
    from dashboards.layout import not_available

    skipped = MissingTables(["booking_funnel"])
    skipped.reasons = {"booking_funnel": "the events have no booking_id column"}
    assert str(not_available("The booking payment funnel", skipped)) == (
        '<div class="note missing"><strong>Not measured:</strong> The booking payment funnel '
        "needs what this data does not have (the events have no booking_id column).</div>")
    assert "Run <code>journeys run</code> first" in str(
        not_available("The booking payment funnel", MissingTables(["booking_funnel"])))


def test_what_changed_says_nothing_on_the_tiny_data_and_charts_each_finding(
        warehouse: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    # 14 customers: too few attempts for any window or segment to be tested
    con = warehouse.cursor()
    assert con.execute("select count(*) from findings").fetchone() == (0,)
    text = _text((site_dir := build_site(con, tmp_path / "a", now=NOW).parent)
                 .joinpath("bottlenecks.html").read_text(encoding="utf-8"))
    assert "What changed?" in text and "Nothing: no window of days or hours" in text
    # two findings (hand-made rows): two sentences, two charts of their days, the window
    # shaded for the window finding
    con.execute("create or replace temp table _kept as select * from findings")
    con.execute("create or replace temp table _kept_days as select * from finding_days")
    try:
        from transforms.findings import Finding, findings_table

        day = dt.date(2024, 3, 10)
        window = Finding("Decision", "Purchase", (), "window", day, day, 0.1, 0.8, 10, 1, 90,
                         7.0, 1e-6, 1e-4, 1e-3)
        segment = Finding("Decision", "Purchase", (("platform", "<b>x</b>"),), "segment",
                          day, day + dt.timedelta(days=1), 0.2, 0.7, 20, 4, 80, 10.0, 1e-5,
                          1e-5, 1e-4)
        findings_table(con, [segment, window])
        con.execute("delete from finding_days")
        con.execute("""insert into finding_days values
            (1, 'group', date '2024-03-10', true, 10, 2, 0.2),
            (1, 'baseline', date '2024-03-10', true, 40, 28, 0.7),
            (2, 'group', date '2024-03-10', true, 10, 1, 0.1)""")
        page = (build_site(con, tmp_path / "b", now=NOW).parent / "bottlenecks.html").read_text(
            encoding="utf-8")
    finally:
        con.execute("create or replace table findings as select * from _kept")
        con.execute("create or replace table finding_days as select * from _kept_days")
    assert site_dir.exists()
    assert len(re.findall(r'class="plotly-graph-div"', page)) == EXPECTED_FIGURES[
        "bottlenecks"] + 2
    body = _text(page)
    assert "1. Decision → Purchase for platform = &lt;b&gt;x&lt;/b&gt;: conversion 20.0%" in body
    assert "2. Decision → Purchase: conversion fell to 10.0% on 10 Mar 2024" in body
    assert "<b>x</b>" not in page  # escaped in the sentence and in the chart's JSON
