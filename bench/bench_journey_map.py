"""The cost of the journey-map step (`journey_map_tables` in pipelines/defs/metrics/assets.py):
`stage_touchpoints`, `stage_pains` and `stage_metrics` and the per-period x persona tables
they build (`journey_map_funnel`, `stage_touchpoint_segments`, `stage_pain_segments`,
`stage_metric_segments`, `stage_exit_events`), on a copy of a warehouse holding a complete run.

    .venv/bin/python -m bench.bench_journey_map WAREHOUSE [--config sources.yaml] [--keep DIR]
        [--repeat N] [--profile [--explain TEXT]]

The warehouse is copied (never written), the step runs in its own process (bench/measure.py:
CPU seconds of the process, wall, peak RSS) and one line per run is printed. `--keep DIR`
leaves the copy with the rebuilt tables in DIR (to compare tables before / after a change);
`--profile` prints the CPU seconds (this process, DuckDB's threads included) and wall seconds
of each statement of the step instead, in-process; `--explain TEXT` with it the operators of
DuckDB's `EXPLAIN ANALYZE` of the statements whose first 110 characters contain TEXT (which
then run twice: fine for the step's CREATE OR REPLACE statements). The config gives the
journey map and currency (default: the sample's).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.measure import measure

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CONFIG = REPO / "data" / "sample" / "sources.yaml"


def run_step(warehouse: Path, config: Path) -> None:
    """Run the step on `warehouse` (written in place) as the asset does."""
    from transforms import warehouse as wh
    from transforms.journey_map_tables import (
        build_stage_metrics,
        build_stage_pains,
        build_stage_touchpoints,
    )
    from transforms.project import load_project

    project = load_project(config)
    jmap = project.journey_map
    with wh.connect(warehouse) as con:
        build_stage_touchpoints(con, jmap)
        build_stage_pains(con, jmap)
        build_stage_metrics(con, jmap, currency=project.config.currency)


class _Profiled:
    """A connection whose `execute` records the CPU seconds (of this process: DuckDB's threads
    included), wall seconds and head of each statement."""

    def __init__(self, con, out: list[tuple[float, float, str]], explain: str | None = None):
        self._con, self._out, self._explain = con, out, explain

    def __getattr__(self, name):
        return getattr(self._con, name)

    def execute(self, sql, params=None):
        head = " ".join(sql.split())[:110]
        if self._explain and self._explain in head:  # runs it: CREATE OR REPLACE runs twice
            plan = self._con.execute("explain (analyze, format json) " + sql,
                                     params).fetchall()
            _print_plan(json.loads(plan[0][1]), head)
        started, cpu = time.perf_counter(), time.process_time()
        result = self._con.execute(sql, params) if params is not None else self._con.execute(sql)
        self._out.append((time.process_time() - cpu, time.perf_counter() - started, head))
        return result


def _print_plan(plan: dict, head: str) -> None:
    """The operators of an EXPLAIN ANALYZE plan taking 1 % of its time or more, slowest first:
    seconds, output rows, operator and what it does (its table, join condition, groups)."""
    ops: list[tuple[float, int, str, str]] = []

    def walk(node: dict) -> None:
        info = node.get("extra_info") or {}
        what = "; ".join(f"{k}: {v}" for k, v in info.items()
                         if k in ("Table", "Conditions", "Join Type", "Groups", "Aggregates",
                                  "CTE Name", "Filters"))
        ops.append((float(node.get("timing", 0)), int(node.get("intermediate_rows", 0)),
                    str(node.get("name", "")), what))
        for child in node.get("children", []):
            walk(child)

    for root in plan.get("operator", []):
        walk(root)
    total = sum(t for t, *_ in ops)
    print(f"EXPLAIN ANALYZE, {total:.2f} s in operators: {head}")
    for took, rows, name, what in sorted(ops, reverse=True):
        if took >= 0.01 * total:
            print(f"  {took:7.3f} s {rows:>11,} rows  {name.strip()}  {what[:150]}")


def profile_step(warehouse: Path, config: Path, explain: str | None = None) -> None:
    """Print the CPU and wall seconds of the step's statements, summed per kind (the same first
    60 characters; the 25 costliest kinds), and DuckDB's EXPLAIN ANALYZE of the statements
    whose start contains `explain`."""
    from transforms import journey_map_tables as jmt
    from transforms import warehouse as wh
    from transforms.project import load_project

    project = load_project(config)
    jmap = project.journey_map
    out: list[tuple[float, float, str]] = []
    with wh.connect(warehouse) as con:
        pcon = _Profiled(con, out, explain)
        started, cpu = time.perf_counter(), time.process_time()
        jmt.build_stage_touchpoints(pcon, jmap)
        jmt.build_stage_pains(pcon, jmap)
        jmt.build_stage_metrics(pcon, jmap, currency=project.config.currency)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(f"{len(out)} statements, {cpu:.2f} CPU s, {wall:.2f} s wall "
              "(per statement kind: CPU s, wall s, statements, its start)")
        kinds: dict[str, list[float]] = {}
        for took, took_wall, head in out:  # statements alike: the same first 60 characters
            kind = kinds.setdefault(head[:60], [0, 0.0, 0.0])
            kind[0] += 1
            kind[1] += took
            kind[2] += took_wall
        for head, (n, took, took_wall) in sorted(kinds.items(), key=lambda kv: -kv[1][1])[:25]:
            print(f"{took:7.3f} {took_wall:7.3f} {n:4d} x  {head}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("warehouse", type=Path)
    ap.add_argument("--config", type=Path, default=SAMPLE_CONFIG)
    ap.add_argument("--keep", type=Path, help="leave the rebuilt warehouse copy here")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--profile", action="store_true",
                    help="per-statement wall seconds instead of a measured run")
    ap.add_argument("--explain", metavar="TEXT",
                    help="with --profile: EXPLAIN ANALYZE the statements starting with TEXT")
    ap.add_argument("--step", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.step:  # the measured child: the warehouse is already a copy
        run_step(args.warehouse, args.config)
        return 0
    if not args.warehouse.exists():
        print(f"{args.warehouse}: no such warehouse", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench_jm_") as tmp:
        work = Path(tmp)
        for i in range(args.repeat):
            copy = (args.keep or work) / "journeys.duckdb"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(args.warehouse, copy)
            if args.profile:
                profile_step(copy, args.config, args.explain)
                continue
            m = measure([sys.executable, "-m", "bench.bench_journey_map", str(copy),
                         "--config", str(args.config), "--step"], work / f"run{i}.log",
                        cwd=REPO)
            if m.exit_code:
                print(m.log.read_text(), file=sys.stderr)
                return m.exit_code
            print(f"journey map step: {m.cpu_s:.2f} CPU s, {m.wall_s:.2f} s wall, "
                  f"{m.peak_rss_mib:.0f} MiB peak RSS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
