"""Time and peak memory of `journeys generate` and `journeys run` at scale (not a test).

    .venv/bin/python bench/bench_pipeline.py --customers 1000000 --days 30 [--workdir DIR]

Generates the data, writes a project config pointing at it (the sample's journey map), runs the
whole pipeline, and prints wall time and peak resident memory of each command (each runs in its
own process; the peak is that process tree's largest resident set, from wait4).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOURNEYS = Path(sys.executable).parent / "journeys"


def measure_cpu(args: list[str], log: Path, env: dict[str, str] | None = None
                ) -> tuple[float, float, float, int]:
    """Run a command; (wall seconds, CPU seconds of its process tree, peak RSS in MiB, exit
    code)."""
    started = time.monotonic()
    with log.open("w") as out:
        pid = os.fork()
        if pid == 0:
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
            os.execve(args[0], args, {**os.environ, **(env or {})})
        _, status, usage = os.wait4(pid, 0)
    return (time.monotonic() - started, usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status))


def measure(args: list[str], log: Path) -> tuple[float, float, int]:
    """Run a command; (wall seconds, peak RSS in MiB, exit code)."""
    wall, _, rss, code = measure_cpu(args, log)
    return wall, rss, code


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workdir", type=Path, default=None)
    a = p.parse_args()
    work = a.workdir or Path(tempfile.mkdtemp(prefix="journeys-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    raw = work / "raw"
    gen = [str(JOURNEYS), "generate", "--customers", str(a.customers), "--days", str(a.days),
           "--seed", str(a.seed), "--out", str(raw), "--overwrite"]
    secs, mib, rc = measure(gen, work / "generate.log")
    print(f"generate  customers={a.customers:,} days={a.days}: {secs:8.1f} s  "
          f"peak {mib:8.0f} MiB  exit {rc}")
    if rc:
        return rc
    sample = (REPO / "data" / "sample" / "sources.yaml").read_text()
    config = work / "sources.yaml"
    config.write_text(
        sample.replace("warehouse: ../../warehouse/journeys.duckdb",
                       f"warehouse: {work / 'warehouse' / 'journeys.duckdb'}")
        .replace("output_dir: ../../output", f"output_dir: {work / 'output'}")
        .replace("journey_map: journey_map.yaml",
                 f"journey_map: {REPO / 'data' / 'sample' / 'journey_map.yaml'}")
        .replace("path: raw/", f"path: {raw}/"))
    os.environ["DAGSTER_HOME"] = str(work / "dagster_home")
    secs, mib, rc = measure([str(JOURNEYS), "run", "--config", str(config)], work / "run.log")
    lines = (work / "run.log").read_text().splitlines()
    events = next((ln for ln in lines if ln.startswith("events:")), "events: ?")
    print(f"run       {events}: {secs:8.1f} s  peak {mib:8.0f} MiB  exit {rc}")
    print(f"logs and warehouse in {work}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
