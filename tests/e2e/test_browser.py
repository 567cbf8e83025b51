"""Open every dashboard page in headless Chromium at 1024, 1440 and 1920 px: every figure
renders, no JavaScript error, no request leaves the machine, no element is wider than its
container, no axis title or tick label is clipped, every figure the design marks as numbered
(`data-numbers`) shows numbers without hovering, and a screenshot of each page at each width
is saved.

Chromium is driven over the Chrome DevTools Protocol with the `websockets` package (no driver
binary, nothing downloaded). The site is served from a local http.server on 127.0.0.1.

By default the site is built from the tiny warehouse of tests/dashboards/conftest.py (the
real transforms run on hand-written exports).
`DASHBOARD_TEST_WAREHOUSE=path/to/journeys.duckdb` builds it from a real warehouse instead;
`UPDATE_SCREENSHOTS=1` also writes docs/screenshots/overview.png for the README.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dashboards.layout import PAGES
from dashboards.site import build_site
from tests.dashboards.conftest import EXPECTED_FIGURES, NOW, tiny_warehouse

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "screenshots" / "overview.png"
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--window-size=1400,1000",
         "--remote-debugging-port=0", "--remote-allow-origins=*"]
RENDER_TIMEOUT_S = 45.0

if CHROMIUM is None:
    pytest.skip("headless Chromium not installed (apt-get install chromium); CI installs it",
                allow_module_level=True)
websockets_sync = pytest.importorskip("websockets.sync.client",
                                      reason="the browser test needs `pip install websockets`")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class DevTools:
    """A minimal Chrome DevTools Protocol session on one page target."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websockets_sync.connect(ws_url, max_size=None, open_timeout=20)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def pump(self, seconds: float) -> None:
        """Collect events for a while (console messages arrive asynchronously)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = json.loads(self.ws.recv(timeout=left))
            except TimeoutError:
                return
            if "method" in msg:
                self.events.append(msg)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self) -> None:
        self.ws.close()


@contextlib.contextmanager
def chromium() -> Iterator[DevTools]:
    profile = Path(tempfile.mkdtemp(prefix="journeys-chromium-"))
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Chromium did not start (exit code {proc.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.load(r)
        page = next(t for t in targets if t.get("type") == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                tools.send(f"{domain}.enable")
            yield tools
        finally:
            tools.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # our own Chromium and its helpers only
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bool]:
    out = tmp_path_factory.mktemp("site")
    real = os.environ.get("DASHBOARD_TEST_WAREHOUSE")
    if real:
        con = duckdb.connect(real, read_only=True)
        build_site(con, out)
    else:
        con = tiny_warehouse(tmp_path_factory.mktemp("project"))
        build_site(con, out, now=NOW)
    con.close()
    return out, not real


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        p = e.get("params", {})
        if e["method"] == "Runtime.exceptionThrown":
            out.append(json.dumps(p.get("exceptionDetails", {}))[:500])
        elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append(json.dumps(p.get("args", []))[:500])
        elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append(p["entry"].get("text", "")[:500])
    return out


def _wait_rendered(tools: DevTools, expected: int) -> dict[str, int]:
    probe = ("({plots: document.querySelectorAll('.js-plotly-plot').length,"
             " svgs: document.querySelectorAll('.js-plotly-plot .main-svg').length,"
             " divs: document.querySelectorAll('.plotly-graph-div').length,"
             " declared: Number(document.body.dataset.figures)})")
    deadline = time.monotonic() + RENDER_TIMEOUT_S
    while True:
        state = tools.evaluate(probe)
        if state["plots"] >= expected or time.monotonic() > deadline:
            return state
        tools.pump(0.25)


WIDTHS = (1024, 1440, 1920)
# Layout faults, as the page's own geometry says: an element sticking out of its parent (not
# inside a horizontal scroller), the page scrolling sideways, an axis title or tick label
# outside its figure, and a numbered figure without a number outside its axes.
LAYOUT_PROBE = r"""(() => {
  const tol = 2, bad = [];
  const main = document.querySelector('main') || document.body;
  const scrolls = el => { for (let p = el.parentElement; p && p !== main;
                                 p = p.parentElement) {
      const s = getComputedStyle(p).overflowX; if (s === 'auto' || s === 'scroll') return true; }
    return false; };
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ')[0] : '');
  if (document.documentElement.scrollWidth > window.innerWidth + tol)
    bad.push('page scrolls sideways: ' + document.documentElement.scrollWidth);
  for (const el of main.querySelectorAll(
      'section, section > *, .card, .cards, .figure, .plotly-graph-div, table, img, ' +
      '.grid2 > *, svg:not(.main-svg):not(.js-plotly-plot svg)')) {
    if (el.closest('.js-plotly-plot') && !el.classList.contains('plotly-graph-div')) continue;
    const r = el.getBoundingClientRect(), p = el.parentElement.getBoundingClientRect();
    if (!r.width || scrolls(el)) continue;
    if (r.right > p.right + tol || r.left < p.left - tol)
      bad.push(name(el) + ' wider than its container: ' + Math.round(r.width) + ' in ' +
               Math.round(p.width));
  }
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    const box = plot.getBoundingClientRect();
    for (const t of plot.querySelectorAll('.g-xtitle text, .g-ytitle text, .xtick text, ' +
                                          '.ytick text, .gtitle')) {
      const r = t.getBoundingClientRect();
      if (!r.width || !t.textContent.trim()) continue;
      if (r.left < box.left - tol || r.right > box.right + tol || r.top < box.top - tol ||
          r.bottom > box.bottom + tol)
        bad.push((plot.id || 'figure') + ': clipped "' + t.textContent.slice(0, 40) + '"');
    }
    const fig = plot.closest('.figure');
    if (fig && fig.dataset.numbers) {
      const shown = [...plot.querySelectorAll('text')].some(t =>
        /\d/.test(t.textContent) && !t.closest(
          '.xaxislayer-above, .yaxislayer-above, .colorbar, .cbaxis, .legend, .g-gtitle'));
      if (!shown) bad.push((plot.id || 'figure') + ': no number on the chart');
    }
  }
  return bad;
})()"""


def _set_width(tools: DevTools, width: int, height: int = 1000) -> None:
    tools.send("Emulation.setDeviceMetricsOverride",
               {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def _screenshot(tools: DevTools, path: Path, width: int = 1400) -> None:
    height = tools.evaluate("Math.min(document.documentElement.scrollHeight, 8000)")
    _set_width(tools, width, int(height))
    tools.pump(0.5)  # let responsive figures re-layout to the new size
    shot = tools.send("Page.captureScreenshot", {"format": "png"}, timeout=60)
    path.write_bytes(base64.b64decode(shot["data"]))
    _set_width(tools, width)


def _open(tools: DevTools, url: str) -> int:
    """Navigate and wait for the page; returns the figures it declares."""
    tools.events.clear()
    tools.send("Page.navigate", {"url": url})
    declared = None
    deadline = time.monotonic() + RENDER_TIMEOUT_S
    while declared is None and time.monotonic() < deadline:
        tools.pump(0.2)
        declared = tools.evaluate(
            "document.readyState === 'complete' && document.body "
            "? Number(document.body.dataset.figures) : null")
    assert declared is not None, f"{url}: page did not load"
    return declared


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_renders_in_chromium(site: tuple[Path, bool], tmp_path: Path,
                                        width: int) -> None:
    folder, is_fixture = site
    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path)) / str(width)
    shots.mkdir(parents=True, exist_ok=True)
    all_faults: list[tuple[str, str]] = []
    with serve(folder) as base, chromium() as tools:
        _set_width(tools, width)
        for spec in PAGES:
            declared = _open(tools, f"{base}/{spec.slug}.html")
            if is_fixture:
                assert declared == EXPECTED_FIGURES[spec.slug], spec.slug
            state = _wait_rendered(tools, declared)
            assert state["divs"] == declared, (spec.slug, state)
            assert state["plots"] == declared, (spec.slug, state)
            assert state["svgs"] >= declared, (spec.slug, state)
            tools.pump(0.5)  # responsive figures settle to the width
            faults = tools.evaluate(LAYOUT_PROBE)
            _screenshot(tools, shots / f"{spec.slug}.png", width)
            all_faults.extend((spec.slug, f) for f in faults)
            assert not _errors(tools.events), (spec.slug, _errors(tools.events))
            requested = [e["params"]["request"]["url"] for e in tools.events
                         if e["method"] == "Network.requestWillBeSent"]
            outside = [u for u in requested
                       if not (u.startswith(base) or u.startswith(("data:", "blob:")))]
            assert not outside, (spec.slug, outside)
            if spec.slug == "journey_map" and is_fixture:
                # Picking another persona shows its map and hides the others.
                visible = tools.evaluate(
                    "(() => { const s = document.getElementById('persona');"
                    " s.selectedIndex = s.options.length - 1;"
                    " s.dispatchEvent(new Event('change'));"
                    " return [...document.querySelectorAll('.persona')]"
                    ".filter(e => !e.hidden).map(e => e.dataset.persona); })()")
                assert len(visible) == 1 and visible[0] != "p0", visible
    assert not all_faults, (width, all_faults)
    assert sorted(p.name for p in shots.glob("*.png")) == sorted(
        f"{p.slug}.png" for p in PAGES)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1" and width == 1440:
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shots / "index.png", SCREENSHOT)


def test_site_opens_from_file_url(site: tuple[Path, bool]) -> None:
    """Double-clicking index.html works too: plotly.min.js loads from the folder."""
    folder, _ = site
    with chromium() as tools:
        tools.send("Page.navigate", {"url": (folder / "index.html").as_uri()})
        deadline = time.monotonic() + RENDER_TIMEOUT_S
        plots = 0
        while time.monotonic() < deadline:
            tools.pump(0.25)
            plots = tools.evaluate("document.querySelectorAll('.js-plotly-plot').length")
            if plots and plots == tools.evaluate("Number(document.body.dataset.figures)"):
                break
        assert plots == tools.evaluate("Number(document.body.dataset.figures)") > 0
        assert not _errors(tools.events)


