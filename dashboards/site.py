"""Build the dashboard: one offline HTML site from the warehouse tables.

`build_site(con, out_dir)` writes index.html and one page per topic, a single shared
plotly.min.js (taken from the installed plotly package, so nothing is fetched from a network)
and style.css. Pages read tables and the run's settings (`run_settings`) only; pages whose
tables are missing say which command produces them. `layout.PAGES` lists what each page reads.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable
from pathlib import Path

import duckdb
import plotly.offline

from dashboards import fmt
from dashboards.context import Context
from dashboards.data import Warehouse
from dashboards.layout import CSS, PAGES, Page, PageSpec, document
from transforms.errors import UserError
from transforms.settings import DEFAULT_PERIOD_DAYS

__all__ = ["DEFAULT_PERIOD_DAYS", "PLOTLY_JS", "build_site", "site_size"]
PLOTLY_JS = "plotly.min.js"

def renderer(spec: PageSpec) -> Callable[[Context], Page]:
    """The `render` function of a registered page."""
    return importlib.import_module(spec.module).render


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def build_site(con: duckdb.DuckDBPyConnection, out_dir: str | Path, *,
               period_days: int | None = None,
               now: dt.datetime | None = None) -> Path:
    """Write the dashboard site into `out_dir` and return the path of its index.html.

    `period_days`: which period length of `period_figures` the headline numbers show (the last
    days of data vs the same number of days before); default the run's `period_days` setting.
    A length the run did not compute gives a note instead of numbers. `now`: build time shown
    on the pages and used for freshness (default: the current UTC time).
    """
    if period_days is not None and period_days < 1:
        raise UserError(f"period_days must be at least 1, got {period_days}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wh = Warehouse(con)
    built_at = now or dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    ctx = Context.read(wh, period_days=period_days, built_at=built_at)
    data_start, data_end = ctx.data_start, ctx.data_end

    _write_if_changed(out / PLOTLY_JS, plotly.offline.get_plotlyjs())
    _write_if_changed(out / "style.css", CSS.lstrip())
    if data_end is not None:
        data_text = f"data {data_start:%d %b %Y} – {data_end:%d %b %Y} (UTC)"
    elif wh.has("run_settings"):
        data_text = "no events loaded"
    else:
        data_text = "the run's settings (run_settings) are not in the warehouse yet"
    footer = (f"Built {fmt.moment(built_at)} UTC from the warehouse tables; {data_text}. "
              "Rates leave out journeys whose conversion window is not yet fully observed.")
    for spec in PAGES:
        page = renderer(spec)(ctx)
        # the pickers (Overview, Bottlenecks: period and segment; Journey map: period and
        # persona) scope the sections that say so; every other section covers all the data
        picked = {"index": "pick the period and customers below",
                  "bottlenecks": "pick the period and customers below",
                  "journey_map": "pick the period and persona below"}
        subtitle = data_text[:1].upper() + data_text[1:]
        if spec.slug in picked and data_end is not None:
            subtitle += f"; {picked[spec.slug]}"
        (out / f"{spec.slug}.html").write_text(document(page, subtitle=subtitle, footer=footer),
                                              encoding="utf-8")
    return out / "index.html"


def site_size(out_dir: str | Path) -> int:
    """Total bytes of the files in the site folder."""
    return sum(p.stat().st_size for p in Path(out_dir).iterdir() if p.is_file())
