"""`journeys report`: the headline figures of the warehouse, as a table or as JSON."""

from __future__ import annotations

import argparse
import datetime as dt
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="print the headline figures of the warehouse (table or JSON)",
        description="Print what the warehouse holds: rows read, loaded, quarantined, "
        "duplicate and rejected per source, events, customers, customers per journey stage, "
        "purchasers, repeat purchasers, revenue and the days the data covers. A figure whose "
        "table the warehouse lacks is 'not available' (null in JSON). Definitions: "
        "transforms/report.py.",
    )
    parser.add_argument("--config", metavar="PATH",
                        help="project config (sources.yaml); default: the committed sample's")
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="an aligned text table for people (default) or JSON for scripts")
    parser.set_defaults(func=handle)


def _json_value(value: object) -> object:
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def handle(args: argparse.Namespace) -> int:
    from pipelines.project import config_path
    from transforms.report import render_table, report
    from transforms.sources import load_config
    from transforms.warehouse import open_engine

    cfg = load_config(config_path(args.config))
    database = cfg.warehouse
    with open_engine(cfg, read_only=True) as con:
        figures = report(con)
    if args.format == "json":
        print(json.dumps(figures, indent=2, default=_json_value))
    else:
        print(f"warehouse: {database}\n")
        print(render_table(figures))
    return 0
