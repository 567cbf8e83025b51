"""Build the dashboard: one offline HTML site from the warehouse tables.

`build_site(con, out_dir)` writes index.html and one page per topic, a single shared
plotly.min.js (taken from the installed plotly package, so nothing is fetched from a network)
and style.css. Pages whose tables are missing say which command produces them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import duckdb
import plotly.offline

from dashboards import bottlenecks, journey_map, overview, paths, quality, repeat
from dashboards.context import Context
from dashboards.data import Warehouse
from dashboards.layout import CSS, PAGES, Page, document
from transforms.errors import UserError

DEFAULT_PERIOD_DAYS = 7
PLOTLY_JS = "plotly.min.js"

RENDERERS: dict[str, Callable[[Context], Page]] = {
    overview.SLUG: overview.render,
    journey_map.SLUG: journey_map.render,
    bottlenecks.SLUG: bottlenecks.render,
    paths.SLUG: paths.render,
    repeat.SLUG: repeat.render,
    quality.SLUG: quality.render,
}


def _data_range(wh: Warehouse) -> tuple[dt.date | None, dt.date | None]:
    if wh.has("events"):
        row = wh.con.execute("select min(event_date), max(event_date) from events").fetchone()
        return row[0], row[1]
    if wh.has("journeys"):
        row = wh.con.execute("select min(entry_date), max(entry_date) from journeys").fetchone()
        return row[0], row[1]
    return None, None


def _stages(wh: Warehouse) -> list[str]:
    """Stage names in journey order, as the journey map configured them."""
    for table in ("funnel_steps", "stage_events", "journey_stages"):
        if wh.has_columns(table, "stage", "stage_index"):
            rows = wh.con.execute(
                f"select stage, min(stage_index) as i from {table} group by stage order by i"
            ).fetchall()
            if rows:
                return [r[0] for r in rows]
    return []


def _conversion_stage(wh: Warehouse) -> str | None:
    """The stage whose reaching counts as converted: the earliest furthest stage of a
    converted journey (the journey map's conversion_stage)."""
    if not wh.has_columns("journeys", "converted", "furthest_stage", "furthest_stage_index"):
        return None
    return wh.scalar("select furthest_stage from journeys where converted "
                     "order by furthest_stage_index limit 1")


def _currency(wh: Warehouse) -> str:
    if wh.has_columns("raw_bookings", "currency"):
        value = wh.scalar("select max(currency) from raw_bookings")
        if value:
            return str(value)
    return "EUR"


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def build_site(con: duckdb.DuckDBPyConnection, out_dir: str | Path, *,
               period_days: int = DEFAULT_PERIOD_DAYS,
               now: dt.datetime | None = None) -> Path:
    """Write the dashboard site into `out_dir` and return the path of its index.html.

    `period_days`: length of the period the headline numbers cover (the last days of data),
    compared with the same number of days before it. `now`: build time shown on the pages and
    used for freshness (default: the current UTC time).
    """
    if period_days < 1:
        raise UserError(f"period_days must be at least 1, got {period_days}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wh = Warehouse(con)
    data_start, data_end = _data_range(wh)
    built_at = now or dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    ctx = Context(wh=wh, period_days=period_days, data_start=data_start, data_end=data_end,
                  built_at=built_at, stages=_stages(wh),
                  conversion_stage=_conversion_stage(wh), currency=_currency(wh))

    _write_if_changed(out / PLOTLY_JS, plotly.offline.get_plotlyjs())
    _write_if_changed(out / "style.css", CSS.lstrip())
    data_text = (f"data {data_start:%d %b %Y} – {data_end:%d %b %Y} (UTC)"
                 if data_end is not None else "no events loaded")
    footer = (f"Built {built_at:%Y-%m-%d %H:%M} UTC from the warehouse tables; {data_text}. "
              "Rates leave out journeys whose conversion window is not yet fully observed.")
    for spec in PAGES:
        page = RENDERERS[spec.slug](ctx)
        subtitle = f"Selected period: {ctx.period_label()}"
        (out / f"{spec.slug}.html").write_text(document(page, subtitle=subtitle, footer=footer),
                                              encoding="utf-8")
    return out / "index.html"


def site_size(out_dir: str | Path) -> int:
    """Total bytes of the files in the site folder."""
    return sum(p.stat().st_size for p in Path(out_dir).iterdir() if p.is_file())
