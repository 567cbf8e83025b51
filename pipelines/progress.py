"""What `journeys run` shows while it runs: a line per step, and a live bar on a terminal.

`RunDisplay` (a context manager, made by `journeys run` around the run) counts the run's steps.
On a terminal it keeps a rich progress bar at the bottom (steps done of all, the step running,
the time elapsed) with the lines scrolling above it; anywhere else (a pipe, a log file, a test
capturing output) it prints plain lines only, nothing redrawn. The Dagster logger
`progress_logger` feeds it from the run's events: when a step ends, one line per asset it
materialised with its row count (or its partitions), the step's time and the run's elapsed time,
e.g. `  events   12,345 rows   took 0.4 s   12.3 s elapsed`; a line for each failed step or check.
Partitioned ingestion assets also print their own summary line per source (and, with
`--verbose`, a line per day) through the Progress resource, which prints through `echo` here.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from types import TracebackType
from typing import TextIO

import dagster as dg

_current: RunDisplay | None = None


def echo(line: str) -> None:
    """Print `line` above the live bar of the current run, or plainly when there is none."""
    if _current is not None:
        _current.line(line)
    else:
        print(line, flush=True)


class RunDisplay:
    """The progress of one run over `total` steps; `live` None = a bar only on a terminal."""

    def __init__(self, total: int, *, live: bool | None = None,
                 file: TextIO | None = None) -> None:
        self.total = total
        self.file = file or sys.stdout
        isatty = getattr(self.file, "isatty", None)
        self.live = bool(isatty and isatty()) if live is None else live
        self.started = time.monotonic()
        self.done = 0
        self._bar = None
        self._task = None
        self._tty: TextIO | None = None

    def __enter__(self) -> RunDisplay:
        global _current
        if self.live:
            # Dagster redirects file descriptor 1 while a step runs (to capture its logs), so the
            # bar writes to its own copy of the terminal's descriptor, taken now
            try:
                self._tty = os.fdopen(os.dup(self.file.fileno()), "w", buffering=1,
                                      encoding=getattr(self.file, "encoding", None) or "utf-8")
            except (AttributeError, OSError, ValueError):
                self.live = False
        if self.live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                SpinnerColumn(), TextColumn("{task.description:<34}"), BarColumn(),
                MofNCompleteColumn(), TextColumn("steps"), TimeElapsedColumn(),
                TextColumn("elapsed"),
                console=Console(file=self._tty, force_terminal=True,
                                force_interactive=True),
                transient=True,
                redirect_stdout=True, redirect_stderr=True)
            self._bar.start()
            self._task = self._bar.add_task("starting", total=self.total)
        _current = self
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        global _current
        _current = None
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self._tty is not None:
            self._tty.close()
            self._tty = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=self.file, flush=True)

    def running(self, step: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=step)

    def step_done(self) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(self._task, completed=min(self.done, self.total))


def _timing(took: float | None, elapsed: float) -> str:
    step = f"took {took:6.1f} s" if took is not None else " " * 13
    return f"{step}  {elapsed:8.1f} s elapsed"


class _ProgressHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()
        self.step_started: dict[str, float] = {}
        # per running step: asset -> row count (unpartitioned) or partitions materialised
        self.assets: dict[str, dict[str, tuple[int | None, int]]] = {}

    def _elapsed(self) -> float:
        return _current.elapsed() if _current is not None else time.monotonic() - self.started

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None)
        event = meta.get("dagster_event") if isinstance(meta, dict) else None
        if event is None:
            return
        kind = event.event_type_value
        step = event.step_key
        if kind == "STEP_START":
            self.step_started[step] = time.monotonic()
            self.assets[step] = {}
            if _current is not None:
                _current.running(step)
        elif kind == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            key = mat.asset_key.to_user_string()
            rows, partitions = self.assets.setdefault(step, {}).get(key, (None, 0))
            if mat.partition is not None:
                partitions += 1
            else:
                meta_rows = mat.metadata.get("dagster/row_count")
                rows = meta_rows.value if meta_rows is not None else None
            self.assets[step][key] = (rows, partitions)
        elif kind == "STEP_SUCCESS":
            took = time.monotonic() - self.step_started.pop(step, time.monotonic())
            # a step building several tables: its time once, on its first table's line
            for i, (key, (rows, partitions)) in enumerate(self.assets.pop(step, {}).items()):
                if partitions:
                    count = f"{partitions:>12,} partition{'s' if partitions != 1 else ''}"
                elif rows is not None:
                    count = f"{rows:>12,} row{'s' if rows != 1 else ''}"
                else:
                    count = ""
                echo(f"  {key:<26} {count:<24} {_timing(None if i else took, self._elapsed())}")
            if _current is not None:
                _current.step_done()
        elif kind == "STEP_FAILURE":
            took = time.monotonic() - self.step_started.pop(step, time.monotonic())
            self.assets.pop(step, None)
            echo(f"  {step:<26} {'FAILED':<24} {_timing(took, self._elapsed())}")
            if _current is not None:
                _current.step_done()
        elif kind == "STEP_SKIPPED":
            if _current is not None:
                _current.step_done()
        elif kind == "ASSET_CHECK_EVALUATION" and not event.event_specific_data.passed:
            data = event.event_specific_data
            echo(f"  check {data.asset_key.to_user_string()}:{data.check_name} FAILED")


@dg.logger(description="one line per materialised asset, for the terminal")
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = logging.Logger("journeys_progress", level=logging.DEBUG)
    log.addHandler(_ProgressHandler())
    return log
