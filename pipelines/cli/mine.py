"""`journeys mine`: variants, directly-follows graph and start/end activities of an event log."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from transforms.errors import UserError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "mine",
        help="mine an event log file: variants, directly-follows graph, start/end activities",
        description="Mine an event log (XES, CSV, Parquet or JSON lines): cases, events, "
        "variants, the directly-follows graph with times, start and end activities.",
    )
    parser.add_argument("--events", required=True, metavar="FILE",
                        help="event log: .xes, .xes.gz, .csv, .parquet or .jsonl")
    parser.add_argument("--case-col", metavar="COL",
                        help="case id column (XES: case:concept:name, otherwise: case)")
    parser.add_argument("--activity-col", metavar="COL",
                        help="activity column (XES: concept:name, otherwise: activity)")
    parser.add_argument("--time-col", metavar="COL",
                        help="timestamp column (XES: time:timestamp, otherwise: timestamp)")
    parser.add_argument("--lifecycle", choices=["complete", "all"], default="all",
                        help="complete: keep only events whose lifecycle:transition is "
                        "complete; all (default): keep every event")
    parser.add_argument("--top", type=int, default=10, metavar="N",
                        help="number of most frequent variants to show (default 10)")
    parser.add_argument("--format", choices=["table", "json"], default="table",
                        help="output format (default table)")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    import duckdb

    from transforms import mining
    from transforms.eventlog import read_event_log

    if args.top < 0:
        raise UserError(f"--top must be 0 or more, not {args.top}")
    con = duckdb.connect()
    try:
        log = read_event_log(con, args.events, case_col=args.case_col,
                             activity_col=args.activity_col, time_col=args.time_col,
                             lifecycle=args.lifecycle)
        result = mining.summary(con, log, top=args.top)
    finally:
        con.close()
    text = (json.dumps(result, indent=2, ensure_ascii=False) + "\n" if args.format == "json"
            else render_table(result, args.top))
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # output piped into `head`: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - interpreter flushes it at exit
    return 0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def render_table(result: dict[str, Any], top: int) -> str:
    """Readable text: headline figures, top variants, busiest directly-follows pairs."""
    cases = result["cases"] or 1
    lines = [
        f"cases       {result['cases']:,}",
        f"events      {result['events']:,}",
        f"activities  {result['activities']:,}",
        f"variants    {result['variants']:,}",
        "",
        f"top {min(top, len(result['top_variants']))} variants (cases, share, activities):",
    ]
    for v in result["top_variants"]:
        lines.append(f"  {v['count']:>8,}  {100 * v['count'] / cases:5.1f}%  "
                     + " -> ".join(v["activities"]))
    lines += ["", "directly-follows pairs (count, median time):"]
    shown = result["dfg"][: max(top, 10)]
    for pair in shown:
        lines.append(f"  {pair['count']:>8,}  {_duration(pair['median_seconds']):>10}  "
                     f"{pair['from']} -> {pair['to']}")
    if len(result["dfg"]) > len(shown):
        lines.append(f"  ... {len(result['dfg']) - len(shown)} more (use --format json)")
    for title, key in (("start activities", "start_activities"),
                       ("end activities", "end_activities")):
        lines += ["", f"{title} (cases):"]
        items = list(result[key].items())
        for activity, n in items[:10]:
            lines.append(f"  {n:>8,}  {activity}")
        if len(items) > 10:
            lines.append(f"  ... {len(items) - 10} more")
    return "\n".join(lines) + "\n"
