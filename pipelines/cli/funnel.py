"""`journeys funnel`: a funnel over an events file (any format `transforms.readers` reads).

Counts are cumulative (step k = actors that reached at least step k); see transforms/funnel.py
for the exact semantics, transforms/funnel_report.py for the per-step figures and
transforms/durations.py for the --window grammar. `--format json` prints one JSON object:
{"steps": [{"name", "count", "conversion", "step_conversion", "dropout_rate",
"median_seconds_to_convert", ...}, ...]} in step order, plus "breakdown": [{"value", "steps"}]
with --by. The first step has conversion 1.0, step_conversion 1.0, dropout_rate 0.0 and a null
median (nothing to convert from). The file is read by `transforms.readers` (CSV with any delimiter
or whitespace-separated, JSON lines and Segment exports, Parquet, XES; .gz/.zst), times by
`readers.timestamp_sql`: ISO 8601 by default (offsets honoured, naive times in --timezone,
default UTC), or --time-format; native Parquet timestamps are wall-clock times in --timezone.

Per-step windows: `--steps view,cart:1h,pay:30m` gives a step the time allowed from the previous
step's event (on top of --window from the entry). A step's text is split at its LAST ':'; the
part after it is a window when it starts with a digit (it must then be a valid duration, else an
error), and is part of the event name otherwise (`page:home` is the event "page:home"). To keep
a name that ends in ':<digits>' whole, add a lone ':' (`level:2:` is the event "level:2" with no
window; `level:2:1h` the same event with a 1 h window). `--hold COL` keeps COL constant across
the steps of an attempt (e.g. booking_id); rows where COL is empty take no part.

`--find-changes` prints, instead of the counts, the windows of days where a step's conversion
departed from its baseline, overall and per --by value (transforms/findings.py); JSON
{"findings": [{"from_step", "to_step", "segment": {"column", "value"} | null, "start", "end",
"rate", "baseline_rate", "n", "lost", "p_adjusted"}, ...]}, ranked by customers lost.
"""

from __future__ import annotations

import argparse

from transforms.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    from pipelines.cli.mine import add_reader_options

    p = subparsers.add_parser(
        "funnel",
        help="count actors reaching each step of a funnel in an events file",
        description="Count actors (customers, sessions, bookings, ...) reaching each step in "
        "order within a window, with conversion, drop-off and time to convert.",
    )
    p.add_argument("--events", required=True, metavar="FILE",
                   help="events file: .csv, .tsv, .txt, .jsonl (Segment too), .parquet or "
                   ".xes, optionally .gz/.zst")
    p.add_argument("--steps", required=True, metavar="A,B:1h,C",
                   help="comma-separated event names, in funnel order; NAME:DURATION gives a "
                   "step its own window from the previous step (e.g. view,cart:1h,pay:30m)")
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
    p.add_argument("--hold", default=None, metavar="COL",
                   help="hold this column constant: every step of an attempt has the entry "
                   "event's value (e.g. booking_id); rows where it is empty take no part")
    p.add_argument("--by", default=None, metavar="COL", help="break down by this column")
    p.add_argument("--attribution", default="first",
                   help="breakdown value from: first (entry), last (last step reached) or step:N")
    p.add_argument("--start", default=None, metavar="DATE", help="first entry day (UTC)")
    p.add_argument("--end", default=None, metavar="DATE",
                   help="last entry day (UTC), inclusive of the whole day")
    p.add_argument("--complete-only", action="store_true",
                   help="leave out actors whose window has not fully elapsed by the end of data")
    p.add_argument("--find-changes", action="store_true",
                   help="instead of the counts, find windows of days where a step's conversion "
                   "departed from its baseline, overall and per --by value "
                   "(transforms/findings.py); JSON {\"findings\": [...]}")
    p.add_argument("--format", default="table", choices=["table", "json"])
    add_reader_options(p)  # --time-format, --timezone, --delimiter, --no-header, --encoding
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


def _parse_step(text: str, step_cls: type) -> object:
    """'cart' -> Step('cart'); 'cart:1h' -> Step('cart', window 3600 s); the text after the
    last ':' is a window only when it starts with a digit (module docstring)."""
    from transforms.durations import DurationError, parse_duration

    name, sep, suffix = text.rpartition(":")
    if not sep or (suffix and not suffix.strip()[:1].isdigit()):
        name, window = text, None
    elif not suffix:
        window = None  # 'level:2:' -> the event 'level:2', no window
    else:
        try:
            window = parse_duration(suffix, what=f"window of step {name!r}")
        except DurationError as exc:
            raise UserError(f"invalid --steps {text!r}: {exc.problem}; {exc.fix}") from None
    name = name.strip()
    if not name:
        raise UserError(f"invalid --steps {text!r}: the step has no event name; write "
                        "NAME or NAME:DURATION, e.g. cart:1h")
    return step_cls(name, event=name, window_seconds=window)


def _parse_day(text: str | None, flag: str) -> object:
    if text is None:
        return None
    import datetime as dt

    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"invalid {flag} {text!r}: use a date YYYY-MM-DD") from None


def _read_events(con: object, args: argparse.Namespace, steps: list) -> object:
    """--events read by `transforms.readers` with the reading flags, its time column parsed to
    naive UTC (--time-format, --timezone). For XES the default columns are the standard
    attributes (actor case:concept:name, event concept:name, time time:timestamp; args is
    updated). A missing column or a step that never occurs is a UserError listing what exists."""
    from transforms import readers

    fmt = readers.detect_format(args.events)
    table = "funnel_events"
    events = readers.read_table(con, args.events, table=table, **readers.table_options(args))
    cols = readers.role_columns(fmt, events.columns, {
        "actor": args.actor_col, "event": args.event_col, "timestamp": args.time_col})
    args.actor_col, args.event_col, args.time_col = (
        cols["actor"], cols["event"], cols["timestamp"])
    readers.require_columns(args.events, events.columns, {
        "--actor-col": args.actor_col, "--event-col": args.event_col,
        "--time-col": args.time_col, "--by": args.by, "--hold": getattr(args, "hold", None)})
    readers.parse_times(con, table, args.time_col, time_format=args.time_format,
                        timezone=args.timezone, path=args.events)
    names = [getattr(s, "event", s) for s in steps]
    readers.require_values(con, table, args.event_col, [n for n in names if n is not None],
                           what="step", flag="--steps", path=args.events)
    return con.table(table)


def handle(args: argparse.Namespace) -> int:
    import duckdb

    from transforms.definitions import create_macros
    from transforms.durations import parse_duration
    from transforms.funnel import Exclusion, Step, funnel

    texts = [s.strip() for s in args.steps.split(",")]
    if not texts or any(not s for s in texts):
        raise UserError(f"invalid --steps {args.steps!r}: give comma-separated event names, "
                        "e.g. signup,pay")
    steps = [_parse_step(t, Step) for t in texts]
    window = parse_duration(args.window, what="window")
    exclusions = [_parse_exclusion(x, Exclusion) for x in args.exclude]
    start = _parse_day(args.start, "--start")
    end = _parse_day(args.end, "--end")

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")  # stdout/stderr carry only the result
        create_macros(con)  # the rate definitions the per-step figures use
        events = _read_events(con, args, steps)
        if args.find_changes:
            return _find_changes(con, args, events, steps, window, exclusions, start, end)
        result = funnel(
            con, events, steps, window_seconds=window, order=args.order,
            reentry=args.reentry, exclusions=exclusions, actor_col=args.actor_col,
            event_col=args.event_col, time_col=args.time_col, breakdown=args.by,
            attribution=args.attribution, hold=args.hold, start=start, end=end,
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


def _find_changes(con: object, args: argparse.Namespace, events: object, steps: list,
                  window: float, exclusions: list, start: object, end: object) -> int:
    """--find-changes: the findings engine over the attempts at each pair of consecutive steps
    (day = the day the earlier step was reached; segment = the --by value)."""
    import json

    from transforms.findings import find_changes, funnel_attempts
    from transforms.funnel import funnel_actors

    actors = funnel_actors(
        con, events, steps, window_seconds=window, order=args.order, reentry=args.reentry,
        exclusions=exclusions, actor_col=args.actor_col, event_col=args.event_col,
        time_col=args.time_col, breakdown=args.by, attribution=args.attribution,
        hold=args.hold, start=start, end=end)
    table = funnel_attempts(con, actors, [s.name for s in steps], breakdown_as=args.by)
    findings = find_changes(con, table, segments=[args.by] if args.by else [])
    if args.format == "json":
        print(json.dumps({"findings": [f.to_dict() for f in findings]}))
    elif findings:
        print("\n".join(f.sentence() for f in findings))
    else:
        print("no change found")
    return 0
