"""`journeys dashboard`: rebuild the offline HTML dashboard from the existing warehouse."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from transforms.errors import UserError

if TYPE_CHECKING:
    from transforms.sources import ProjectConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dashboard",
        help="rebuild the HTML dashboard from the warehouse (no pipeline run)",
        description="Build the dashboard site (overview, journey map, bottlenecks, paths, "
        "repeat purchase, data quality) from the tables already in the warehouse. The site "
        "works offline: open its index.html in any browser.",
    )
    parser.add_argument("--config", metavar="PATH",
                        help="project config (sources.yaml); default: the committed sample's")
    parser.add_argument("--out", metavar="DIR",
                        help="folder to write the site to (default: <output_dir>/dashboard)")
    parser.add_argument("--period-days", type=int, default=None, metavar="N",
                        help="length of the period the headline numbers cover, compared with "
                        "the N days before it (default 7)")
    parser.add_argument("--open", action="store_true", help="open the site in a browser")
    parser.set_defaults(func=handle)


def _project(config: str | None) -> ProjectConfig:
    """The project config named by --config (or found as `journeys run` finds it)."""
    from pipelines.project import config_path
    from transforms.sources import load_config

    return load_config(config_path(config))


def handle(args: argparse.Namespace) -> int:
    from dashboards.site import DEFAULT_PERIOD_DAYS, PLOTLY_JS, build_site, site_size
    from transforms.warehouse import open_engine

    cfg = _project(args.config)
    default_out = cfg.output_dir / "dashboard"
    period = DEFAULT_PERIOD_DAYS if args.period_days is None else args.period_days
    if period < 1:
        raise UserError(f"--period-days must be 1 or more, not {period}")
    out = Path(args.out).expanduser() if args.out else default_out
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder: pass a folder for the site "
                        "(it is created if missing)")
    with open_engine(cfg, read_only=True) as con:
        index = build_site(con, out, period_days=period)
    print(index.resolve())
    plotly_js = (out / PLOTLY_JS).stat().st_size
    print(f"({(site_size(out) - plotly_js) / 1e6:.2f} MB of pages + {plotly_js / 1e6:.1f} MB "
          f"{PLOTLY_JS}; opens offline)")
    if args.open:
        import webbrowser

        webbrowser.open(index.resolve().as_uri())
    return 0
