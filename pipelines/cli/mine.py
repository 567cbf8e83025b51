"""`journeys mine`: variants, directly-follows graph and start/end activities of an event log.

The log is read by `transforms.readers` (XES, CSV with any delimiter or whitespace-separated,
JSON lines and Segment exports, Parquet; .gz/.zst): `add_reader_options` registers the reading
flags, shared with `journeys funnel`.
"""

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
                        help="event log: .xes, .csv, .tsv, .txt, .jsonl, .parquet, "
                        "optionally .gz/.zst")
    parser.add_argument("--case-col", metavar="COL",
                        help="case id column (XES: case:concept:name, otherwise: case)")
    parser.add_argument("--activity-col", metavar="COL",
                        help="activity column (XES: concept:name, otherwise: activity)")
    parser.add_argument("--time-col", metavar="COL",
                        help="timestamp column (XES: time:timestamp, otherwise: timestamp)")
    parser.add_argument("--lifecycle", choices=["complete", "all"], default="all",
                        help="complete: keep only events whose lifecycle:transition is "
                        "complete; all (default): keep every event")
    parser.add_argument("--lifecycle-col", metavar="COL", default=None,
                        help="lifecycle column for --lifecycle (default lifecycle:transition)")
    parser.add_argument("--activities", metavar="A,B,...", default=None,
                        help="keep only these activities (comma-separated; each must occur)")
    parser.add_argument("--top", type=int, default=10, metavar="N",
                        help="number of most frequent variants to show (default 10)")
    parser.add_argument("--format", choices=["table", "json"], default="table",
                        help="output format (default table)")
    add_reader_options(parser)
    parser.set_defaults(func=handle)


def add_reader_options(parser: Any) -> None:
    """Register --time-format, --timezone, --delimiter, --no-header and --encoding: the flags
    of every command that reads an events file with `transforms.readers` (kept here, free of
    heavy imports, so building the parser stays quick)."""
    parser.add_argument("--time-format", default=None, metavar="FMT",
                        help="how times are written: iso (default; offsets honoured), a "
                        "strftime pattern such as %%Y%%m%%d or '%%d/%%m/%%Y %%H:%%M', or "
                        "epoch_s, epoch_ms, epoch_us, epoch_ns")
    parser.add_argument("--timezone", default="UTC", metavar="TZ",
                        help="IANA time zone of times without an offset (default UTC)")
    parser.add_argument("--delimiter", default=None, metavar="CHAR",
                        help="CSV field separator: one character, '\\t' for tab or "
                        "'whitespace' for runs of spaces/tabs (default: sniffed; .tsv: tab)")
    parser.add_argument("--no-header", dest="header", action="store_false",
                        help="the CSV/text file has no header row: columns are named "
                        "column0, column1, ...")
    parser.add_argument("--encoding", default=None, metavar="NAME",
                        help="text encoding, e.g. latin-1, cp1252, utf-16 (default UTF-8, "
                        "with or without BOM)")


def handle(args: argparse.Namespace) -> int:
    import duckdb

    from transforms import mining, readers
    from transforms.eventlog import read_event_log

    if args.top < 0:
        raise UserError(f"--top must be 0 or more, not {args.top}")
    activities = None
    if args.activities is not None:
        activities = [a.strip() for a in args.activities.split(",")]
        if not activities or any(not a for a in activities):
            raise UserError(f"invalid --activities {args.activities!r}: give comma-separated "
                            "activity names")
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")  # stdout/stderr carry only the result
        log = read_event_log(con, args.events, case_col=args.case_col,
                             activity_col=args.activity_col, time_col=args.time_col,
                             lifecycle=args.lifecycle, lifecycle_col=args.lifecycle_col,
                             activities=activities, time_format=args.time_format,
                             timezone=args.timezone, **readers.table_options(args))
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
