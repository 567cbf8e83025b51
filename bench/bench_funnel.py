"""Time and peak memory of `transforms.funnel.funnel` on N events (not a test).

    .venv/bin/python bench/bench_funnel.py                 # 10M synthetic events
    .venv/bin/python bench/bench_funnel.py -n 1000000 --order any
    .venv/bin/python bench/bench_funnel.py --events data.parquet --steps a,b,c

Without --events a synthetic actor/event/timestamp Parquet file is generated with DuckDB
(bench/funnel.py: N/20 actors, 8 event names over 60 days, ISO text timestamps with offsets
unless --native-ts). Prints events, seconds and peak RSS (resource.getrusage) of the funnel
call. Other orders, exclusions and your own files; the suite (python -m bench.suite) compares
the ordered funnel with a pandas implementation.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402

from bench.funnel import generate  # noqa: E402
from transforms.funnel import Exclusion, funnel  # noqa: E402
from transforms.sqlutil import read_events_file  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=10_000_000, help="events to generate (default 10M)")
    p.add_argument("--events", type=Path, help="run on this file instead of generating one")
    p.add_argument("--steps", default="app_open,view_service,select_slot,booking_created,"
                   "payment_succeeded")
    p.add_argument("--order", default="ordered")
    p.add_argument("--window", type=int, default=14 * 86400)
    p.add_argument("--exclude", action="store_true", help="add payment_failed:4:5 exclusion")
    p.add_argument("--native-ts", action="store_true", help="generate TIMESTAMP, not text")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = args.events
        if path is None:
            path = Path(tmp) / "events.parquet"
            t0 = time.perf_counter()
            generate(path, args.n, args.native_ts)
            print(f"generated {args.n:,} events in {time.perf_counter() - t0:.1f} s -> {path}")
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        if args.threads:
            con.execute(f"SET threads = {args.threads}")
        rel = read_events_file(con, path)
        n_events = con.execute(f"select count(*) from read_parquet('{path}')").fetchall()[0][0] \
            if str(path).endswith(".parquet") else len(rel)
        exclusions = [Exclusion("payment_failed", 4, 5)] if args.exclude else []
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        result = funnel(con, rel, args.steps.split(","), window_seconds=args.window,
                        order=args.order, exclusions=exclusions)
        elapsed = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"events: {n_events:,}")
        print(f"order: {args.order}  steps: {args.steps}  exclusions: {len(exclusions)}")
        print(f"time: {elapsed:.2f} s")
        print(f"peak RSS: {peak / 1024:.0f} MiB (before funnel: {rss_before / 1024:.0f} MiB)")
        print(result.to_table())


if __name__ == "__main__":
    main()
