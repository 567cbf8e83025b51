"""The period and segment pickers in headless Chromium (Overview and Bottlenecks): after picking
a non-default period and segment value every figure is drawn again, at its width, with the
combination's numbers; no JavaScript error; no layout fault (test_browser's probe); the choice
is kept when the next page opens; screenshots at 1024 and 1440 px.

The site is built from the tiny warehouse with every segment value offered (as in
tests/dashboards/test_scope_pickers.py), or from `DASHBOARD_TEST_WAREHOUSE` as it is.
`SCREENSHOT_DIR` keeps the screenshots.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from dashboards.site import build_site
from tests.dashboards.conftest import NOW, tiny_warehouse
from tests.e2e.test_browser import (
    LAYOUT_PROBE,
    _errors,
    _open,
    _screenshot,
    _set_width,
    _wait_rendered,
    chromium,
    serve,
)
from transforms import periods
from transforms.settings import read_settings

pytestmark = pytest.mark.browser

PAGES = ("index", "bottlenecks")
# the last period (all data) and the last segment value offered
PICK = ("(() => { const p = document.getElementById('scope-period'),"
        " s = document.getElementById('scope-segment');"
        " p.selectedIndex = p.options.length - 1; s.selectedIndex = s.options.length - 1;"
        " s.dispatchEvent(new Event('change'));"
        " return [p.options[p.selectedIndex].text, s.options[s.selectedIndex].text]; })()")
# what is drawn: each scoped figure's bar texts, and the slots' text
DRAWN = ("(() => { const out = {};"
         " for (const d of document.querySelectorAll('.js-plotly-plot')) {"
         "  const box = d.closest('.figure');"
         "  out[d.id] = {hidden: !!(box && box.hidden), width: d.getBoundingClientRect().width,"
         "   texts: [...d.querySelectorAll('.bartext')].map(t => t.textContent)}; }"
         " out.slots = [...document.querySelectorAll('[data-slot]')].map(e => e.textContent)"
         "  .join(' ');"
         " return out; })()")
EXPECTED_TEXT = ("(() => { const d = JSON.parse(document.getElementById('scope-data')"
                 ".textContent); const p = document.getElementById('scope-period').value,"
                 " s = document.getElementById('scope-segment').value;"
                 " const f = d[p + '|' + s].figs; const out = {};"
                 " for (const k in f) out[k] = f[k] ? f[k][0].text : null; return out; })()")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    real = os.environ.get("DASHBOARD_TEST_WAREHOUSE")
    if real:
        con = duckdb.connect(real, read_only=True)
        build_site(con, out)
    else:
        con = tiny_warehouse(tmp_path_factory.mktemp("project"), mining=False)
        settings = read_settings(con)
        periods.build_period_figures(con, settings, min_journeys=1)
        periods.build_period_funnel(con, settings)
        build_site(con, out, now=NOW)
    con.close()
    return out


@pytest.mark.parametrize("width", (1024, 1440))
def test_a_picked_scope_is_drawn_in_chromium(site: Path, tmp_path: Path, width: int) -> None:
    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path)) / f"scope-{width}"
    shots.mkdir(parents=True, exist_ok=True)
    with serve(site) as base, chromium() as tools:
        _set_width(tools, width)
        picked = None
        for slug in PAGES:
            declared = _open(tools, f"{base}/{slug}.html")
            state = _wait_rendered(tools, declared)
            assert state["plots"] == declared, (slug, state)
            tools.pump(0.5)
            if picked is None:
                before = tools.evaluate(DRAWN)
                picked = tools.evaluate(PICK)
                assert picked[0].startswith("All data") and picked[1] != "All customers"
                tools.pump(1.0)  # Plotly.react and the resize settle
            else:
                # the next page opens on the scope picked on the previous one
                tools.pump(1.0)
                now = tools.evaluate(
                    "[document.getElementById('scope-period').selectedOptions[0].text,"
                    " document.getElementById('scope-segment').selectedOptions[0].text]")
                assert now == picked, (slug, now)
                before = None
            drawn = tools.evaluate(DRAWN)
            expected = tools.evaluate(EXPECTED_TEXT)
            for div_id, texts in expected.items():
                fig = drawn[div_id]
                if texts is None:
                    assert fig["hidden"], (slug, div_id)
                    continue
                assert not fig["hidden"] and fig["width"] > 300, (slug, div_id, fig)
                # the bars carry the picked combination's numbers
                assert [t.replace("\u00a0", " ") for t in fig["texts"]] == texts, (slug, div_id)
            assert picked[1] in drawn["slots"], slug
            if before is not None:
                assert drawn["slots"] != before["slots"], slug
            faults = tools.evaluate(LAYOUT_PROBE)
            assert not faults, (slug, width, faults)
            assert not _errors(tools.events), (slug, _errors(tools.events))
            _screenshot(tools, shots / f"{slug}.png", width)
