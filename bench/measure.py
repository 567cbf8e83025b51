"""Measuring one command: wall seconds, CPU seconds and peak resident memory of its process tree.

Every figure of the benchmarks comes from here: the command runs in its own process (fork +
exec), its output goes to a log file, and `os.wait4` returns the CPU time (user + system) and
the largest resident set (ru_maxrss) of that process and of the children it waited for. So a
measurement holds that command alone, never the interpreter that started it.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOURNEYS = Path(sys.executable).parent / "journeys"


@dataclass(frozen=True)
class Measurement:
    """One command's cost: wall and CPU seconds, peak RSS in MiB, exit code, its log."""

    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    exit_code: int
    log: Path


def measure(args: list[str], log: Path, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> Measurement:
    """Run `args` (args[0] a path to an executable) with stdout and stderr into `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log.open("w") as out:
        pid = os.fork()
        if pid == 0:  # the child: nothing but exec (or exit) after the fork
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(out.fileno(), 2)
                if cwd is not None:
                    os.chdir(cwd)
                os.execve(args[0], args, {**os.environ, **(env or {})})
            finally:
                os._exit(127)
        _, status, usage = os.wait4(pid, 0)
    return Measurement(time.monotonic() - started, usage.ru_utime + usage.ru_stime,
                       usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), log)


def measure_cpu(args: list[str], log: Path, env: dict[str, str] | None = None
                ) -> tuple[float, float, float, int]:
    """`measure` as a tuple: (wall seconds, CPU seconds, peak RSS in MiB, exit code)."""
    m = measure(args, log, env)
    return m.wall_s, m.cpu_s, m.peak_rss_mib, m.exit_code
