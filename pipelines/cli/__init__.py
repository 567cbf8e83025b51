"""The `journeys` command: the one entry point users learn.

Each subcommand lives in its own module with a `register(subparsers)` function; heavy imports
(dagster, pm4py, plotly) happen inside the handlers so `journeys funnel` stays quick to start.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from transforms.errors import UserError

SUBCOMMANDS = ["generate", "run", "ui", "funnel", "mine", "dashboard", "report", "init"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="journeys",
        description="Observed customer journeys: ingest events, build journeys, funnels, "
        "process maps and dashboards.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"pipelines.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"pipelines.cli.{name}":
                continue  # subcommand not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PM4PY_SHOW_PROGRESS_BAR", "False")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"journeys {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"journeys {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
