"""`journeys funnel`: a funnel over an events file (CSV, Parquet or JSON lines).

Counts are cumulative (step k = actors that reached at least step k); see transforms/funnel.py
for the exact semantics, transforms/funnel_report.py for the per-step figures and
transforms/durations.py for the --window grammar. `--format json` prints one JSON object:
{"steps": [{"name", "count", "conversion", "step_conversion", "dropout_rate",
"median_seconds_to_convert", ...}, ...]} in step order, plus "breakdown": [{"value", "steps"}]
with --by. The first step has conversion 1.0, step_conversion 1.0, dropout_rate 0.0 and a null
median (nothing to convert from). Timestamps are ISO 8601: offsets are honoured, naive times are
UTC; native Parquet timestamps are taken as UTC.
"""

from __future__ import annotations

import argparse

from transforms.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "funnel",
        help="count actors reaching each step of a funnel in an events file",
        description="Count actors (customers, sessions, bookings, ...) reaching each step in "
        "order within a window, with conversion, drop-off and time to convert.",
    )
    p.add_argument("--events", required=True, metavar="FILE",
                   help="events file: .csv, .parquet or .jsonl")
    p.add_argument("--steps", required=True, metavar="A,B,C",
                   help="comma-separated event names, in funnel order")
    p.add_argument("--window", default="14d",
                   help="time allowed from entry to each later step: a number (decimals "
                   "allowed) with unit s, m, h, d or w, a bare number being seconds (default "
                   "14d; boundary inclusive)")
    p.add_argument("--order", default="ordered", choices=["ordered", "strict", "any"])
    p.add_argument("--reentry", default="latest", choices=["latest", "first"],
                   help="latest: every entry starts an attempt, best attempt counts; "
                   "first: only the first entry counts")
    p.add_argument("--exclude", action="append", default=[], metavar="EVENT:FROM:TO",
                   help="drop attempts where EVENT happens between steps FROM and TO (1-based); "
                   "repeatable")
    p.add_argument("--actor-col", default="actor", help="counting unit column (default actor)")
    p.add_argument("--event-col", default="event", help="event name column (default event)")
    p.add_argument("--time-col", default="timestamp", help="time column (default timestamp)")
    p.add_argument("--by", default=None, metavar="COL", help="break down by this column")
    p.add_argument("--attribution", default="first",
                   help="breakdown value from: first (entry), last (last step reached) or step:N")
    p.add_argument("--start", default=None, metavar="DATE", help="first entry day (UTC)")
    p.add_argument("--end", default=None, metavar="DATE",
                   help="last entry day (UTC), inclusive of the whole day")
    p.add_argument("--complete-only", action="store_true",
                   help="leave out actors whose window has not fully elapsed by the end of data")
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.set_defaults(func=handle)


def _parse_exclusion(text: str, exclusion_cls: type) -> object:
    parts = text.rsplit(":", 2)
    if len(parts) != 3 or not parts[0]:
        raise UserError(f"invalid --exclude {text!r}: use EVENT:FROM:TO, e.g. refund:1:3")
    try:
        return exclusion_cls(parts[0], int(parts[1]), int(parts[2]))
    except ValueError:
        raise UserError(f"invalid --exclude {text!r}: FROM and TO must be step numbers "
                        "(1-based), e.g. refund:1:3") from None


def _parse_day(text: str | None, flag: str) -> object:
    if text is None:
        return None
    import datetime as dt

    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"invalid {flag} {text!r}: use a date YYYY-MM-DD") from None


def handle(args: argparse.Namespace) -> int:
    import duckdb

    from transforms.definitions import create_macros
    from transforms.durations import parse_duration
    from transforms.funnel import Exclusion, funnel
    from transforms.sqlutil import read_events_file

    steps = [s.strip() for s in args.steps.split(",")]
    if not steps or any(not s for s in steps):
        raise UserError(f"invalid --steps {args.steps!r}: give comma-separated event names, "
                        "e.g. signup,pay")
    window = parse_duration(args.window, what="window")
    exclusions = [_parse_exclusion(x, Exclusion) for x in args.exclude]
    start = _parse_day(args.start, "--start")
    end = _parse_day(args.end, "--end")

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")  # stdout/stderr carry only the result
        create_macros(con)  # the rate definitions the per-step figures use
        events = read_events_file(con, args.events)
        result = funnel(
            con, events, steps, window_seconds=window, order=args.order,
            reentry=args.reentry, exclusions=exclusions, actor_col=args.actor_col,
            event_col=args.event_col, time_col=args.time_col, breakdown=args.by,
            attribution=args.attribution, start=start, end=end,
            complete_only=args.complete_only,
        )
    except duckdb.Error as exc:
        text = str(exc).strip().splitlines()
        raise UserError(f"cannot compute the funnel on {args.events}: "
                        f"{text[0] if text else type(exc).__name__}") from None
    finally:
        con.close()
    if args.format == "json":
        print(result.to_json())
    else:
        print(result.to_table())
    return 0
