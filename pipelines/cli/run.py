"""`journeys run`: materialise the whole asset graph in-process for a range of daily partitions."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
import time

from transforms.errors import UserError

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="load the sources and build everything (journeys, metrics, mining, dashboard)",
        description="Materialise the whole Dagster asset graph in this process for the given "
        "daily partitions (default: every day present in the configured sources). The run is "
        "recorded in the project's Dagster instance, so `journeys ui` shows it.",
    )
    p.add_argument("--start", metavar="YYYY-MM-DD", help="first partition day (UTC)")
    p.add_argument("--end", metavar="YYYY-MM-DD", help="last partition day (UTC), inclusive")
    p.add_argument("--config", metavar="PATH",
                   help="project config (sources.yaml); default: the committed sample's")
    p.add_argument("--verbose", action="store_true",
                   help="also print a line per source and day loaded (rows read, loaded, "
                   "quarantined, duplicates)")
    p.set_defaults(func=handle)


def _day(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UserError(f"{option} {value!r} is not a date; write it as YYYY-MM-DD") from None


def choose_range(cfg: object, start: dt.date | None,
                 end: dt.date | None) -> tuple[dt.date, dt.date]:
    data = cfg.data_range()
    if data is None and (start is None or end is None):
        globs = ", ".join(s.path_glob for s in cfg.sources.values())
        raise UserError(f"no export files found ({globs}); check the `path` globs in "
                        f"{cfg.path} or pass --start and --end")
    first = start or data[0]
    last = end or data[1]
    if first > last:
        raise UserError(f"--start {first} is after --end {last}")
    if data is not None and (last < data[0] or first > data[1]):
        raise UserError(f"no data in {first} … {last}: the exports cover {data[0]} … {data[1]}; "
                        "pass --start and --end within that range (or leave them out)")
    if first < cfg.first_partition():
        raise UserError(f"--start {first} is before the first partition "
                        f"{cfg.first_partition()}; set start_date in {cfg.path} to load "
                        "earlier days")
    return first, last


def gap_warnings(cfg: object, first: dt.date, last: dt.date) -> list[str]:
    """One line per long stretch without export files inside the run's range (a stray early
    file makes a run of every day since), naming the files before it and how to leave them
    out."""
    lines = []
    late = max((s.late_days for s in cfg.sources.values()), default=0)
    for before, after, files in cfg.export_gaps(first, last):
        names = ", ".join(f.name for f in files[:3]) + (" …" if len(files) > 3 else "")
        one = len(files) == 1
        # the first partition the files after the gap hold rows of (their late rows included)
        start = after - dt.timedelta(days=late)
        lines.append(
            f"no export file for {(after - before).days - 1:,} days between {before} and "
            f"{after}, so the run covers {(last - first).days + 1:,} daily partitions; "
            f"{len(files):,} file{'' if one else 's'} before that ({names}): if "
            f"{'it is a stray' if one else 'they are strays'}, set start_date: {start} in "
            f"{cfg.path} or pass --start {start}")
    return lines


def print_resolved(project: object) -> None:
    """One line each for where the run reads and writes, resolved to absolute paths: the
    warehouse, the output folder, every source's glob (and how many files it matches now),
    and what the privacy block pseudonymises or withholds (never the salt)."""
    cfg = project.config
    if cfg.engine == "spark":
        sp = cfg.spark
        where = f"database {sp.database}" if sp.database else "Parquet tables in the warehouse"
        print(f"journeys run: engine spark ({sp.remote or sp.master or 'local[*]'}; {where})",
              flush=True)
    print(f"journeys run: warehouse {cfg.warehouse}", flush=True)
    print(f"journeys run: output    {cfg.output_dir}", flush=True)
    for source in cfg.sources.values():
        n = len(source.files())
        print(f"journeys run: source {source.name}: {source.path_glob} "
              f"({n:,} file{'' if n == 1 else 's'})", flush=True)
    print(f"journeys run: privacy: {project.privacy.describe()}", flush=True)


def handle(args: argparse.Namespace) -> int:
    from pipelines.project import config_path, dagster_home
    from transforms.project import load_project

    # the config, the journey map and the privacy block are read and checked once, before any
    # work; the paths they resolve to are printed (globs and output paths are trusted as given)
    project = load_project(config_path(args.config))
    cfg = project.config
    print_resolved(project)
    from transforms.ingest import check_fields

    for source in cfg.sources.values():  # every mapped field is in the files' headers
        check_fields(source, cfg.path)
    first, last = choose_range(cfg, _day(args.start, "--start"), _day(args.end, "--end"))
    for line in gap_warnings(cfg, first, last):
        print(f"journeys run: warning: {line}", flush=True)
    home = dagster_home(cfg)
    os.environ.setdefault("PM4PY_SHOW_PROGRESS_BAR", "False")

    import warnings

    warnings.filterwarnings("ignore", message=".*is currently in beta")
    import dagster as dg

    from pipelines.definitions import build_defs

    print(f"journeys run: partitions {first} … {last} ({(last - first).days + 1} days), "
          f"config {cfg.path}", flush=True)
    started = time.monotonic()
    from pipelines.progress import RunDisplay, progress_logger

    job = build_defs(project, echo=True, verbose=args.verbose).resolve_job_def("daily_refresh")
    job = job.with_logger_defs({"progress": progress_logger})
    # a live bar over the run's steps on a terminal; plain lines anywhere else
    with dg.DagsterInstance.get() as instance, RunDisplay(len(job.nodes)):
        result = job.execute_in_process(
            instance=instance,
            tags={RANGE_START: first.isoformat(), RANGE_END: last.isoformat()},
            run_config={"loggers": {"progress": {}}},
            raise_on_error=False,
        )
    elapsed = time.monotonic() - started
    failures = _failures(result)
    from pipelines.summary import print_summary

    print_summary(cfg, first, last, elapsed, home, result.run_id)
    if failures or not result.success:
        for line in failures or ["the run failed; open `journeys ui` for the run log"]:
            print(f"journeys run: error: {line}", file=sys.stderr)
        if failures:
            print(f"journeys run: the whole error and its stack trace are in the log of run "
                  f"{result.run_id[:8]} (`journeys ui`, Runs)", file=sys.stderr)
        return 1
    return 0


MAX_MESSAGE = 300
_CARET = re.compile(r"^\s*\^+\s*$")
_EXCERPT = re.compile(r"^\s*LINE \d+:")
_STOP = re.compile(r"^\s*(Stack Trace|Traceback)\b", re.IGNORECASE)


def plain_message(cls_name: str, message: str | None) -> str:
    """An exception's message as one plain line: no `module.Class:` prefix, never DuckDB's
    `LINE n:` excerpt or caret lines; for anything but a UserError (whose message is written
    for people and kept whole) the first two lines of the message, at most MAX_MESSAGE
    characters."""
    text = (message or "").strip()
    user_error = cls_name in ("UserError", "ConfigError") or text.startswith("transforms.errors.")
    # "_duckdb.BinderException: Binder Error: ..." -> "Binder Error: ..."; builtins such as
    # "KeyError: 'x'" keep their name, which is part of what they say
    text = re.sub(rf"^(?:[A-Za-z_]\w*\.)+{re.escape(cls_name)}:\s*", "", text)
    if user_error:
        # kept whole, but a DuckDB error quoted in it loses its `LINE n:` excerpt and caret
        return " ".join(line.strip() for line in text.splitlines() if line.strip()
                        and not _CARET.match(line) and not _EXCERPT.match(line)) or cls_name
    kept: list[str] = []
    for line in text.splitlines():
        if _STOP.match(line):
            break
        if not line.strip() or _CARET.match(line) or _EXCERPT.match(line):
            continue
        kept.append(line.strip())
        if len(kept) == 2:
            break
    plain = " ".join(kept) or cls_name
    if len(plain) > MAX_MESSAGE:
        plain = plain[:MAX_MESSAGE - 1].rstrip() + "…"
    return plain


def _failures(result: object) -> list[str]:
    """One line per failed step or failed blocking check, without stack traces."""
    lines = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            err = event.step_failure_data.error
            cause = err
            while cause.cause is not None and cause.cls_name.startswith("Dagster"):
                cause = cause.cause
            lines.append(f"{event.step_key} failed: "
                         f"{plain_message(cause.cls_name, cause.message)}")
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if not data.passed:
                lines.append(f"check {data.asset_key.to_user_string()}:{data.check_name} failed")
    return lines
