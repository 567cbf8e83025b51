"""The cost of the findings step alone: `build_findings` on a copy of a warehouse.

    .venv/bin/python -m bench.bench_findings WAREHOUSE [--map JOURNEY_MAP] [--work DIR]
                                             [--save OUT.duckdb] [--profile OUT.prof]

WAREHOUSE is a journeys.duckdb holding a complete run (e.g. a daily scenario's warehouse of
`python -m bench.suite --daily-days 30,90,365`); it is copied into --work (default: a temp
folder) and never written. The step runs in this process, as the `findings` asset runs it
(pipelines/defs/metrics/assets.py): one warehouse connection, `build_findings(con, jmap)`.
Prints one line: findings rows, finding_days rows, CPU seconds of this process (user + system,
every thread, DuckDB's included) spent in the call, its wall seconds and the process's peak RSS.

--profile writes a cProfile of the call timed by CPU seconds (`python -m pstats OUT.prof`).
--save writes the resulting `findings` and `finding_days` into a DuckDB file (tables of the
same names), to compare two versions of the engine row for row:

    select * from a.findings except all select * from b.findings   -- and the other way
"""

from __future__ import annotations

import argparse
import cProfile
import resource
import shutil
import tempfile
import time
from pathlib import Path

from bench.measure import REPO
from transforms import warehouse
from transforms.journey_findings import build_findings
from transforms.journey_map import load_journey_map
from transforms.sqlutil import literal

DEFAULT_MAP = REPO / "data" / "sample" / "journey_map.yaml"


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("warehouse", type=Path)
    ap.add_argument("--map", type=Path, default=DEFAULT_MAP, help="the journey map (YAML)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the copy")
    ap.add_argument("--save", type=Path, default=None, help="DuckDB file for the results")
    ap.add_argument("--profile", type=Path, default=None, help="cProfile output file")
    args = ap.parse_args()
    jmap = load_journey_map(args.map)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_findings_"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "journeys.duckdb"
    shutil.copyfile(args.warehouse, db)
    with warehouse.connect(db) as con:
        # the libraries the engine imports on first use are loaded here, outside the figure
        import scipy.stats  # noqa: F401
        import statsmodels.stats.multitest  # noqa: F401

        # CPU time (every thread of the process), not wall: the machine may be shared
        prof = cProfile.Profile(time.process_time) if args.profile else None
        cpu, wall = _cpu(), time.perf_counter()
        if prof:
            prof.enable()
        n = build_findings(con, jmap)
        if prof:
            prof.disable()
            prof.dump_stats(str(args.profile))
        cpu, wall = _cpu() - cpu, time.perf_counter() - wall
        days = con.execute("select count(*) from finding_days").fetchone()[0]
        if args.save:
            args.save.unlink(missing_ok=True)
            con.execute(f"attach {literal(str(args.save))} as out")
            con.execute("create table out.findings as select * from findings")
            con.execute("create table out.finding_days as select * from finding_days")
            con.execute("detach out")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.warehouse}: findings {n} rows, finding_days {days} rows; build_findings "
          f"CPU {cpu:.2f} s, wall {wall:.2f} s; process peak RSS {rss:.0f} MiB")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
