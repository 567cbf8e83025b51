"""Time and peak memory of `transforms.funnel.funnel` on N events (not a test).

    .venv/bin/python bench/bench_funnel.py                 # 10M synthetic events
    .venv/bin/python bench/bench_funnel.py -n 1000000 --order any
    .venv/bin/python bench/bench_funnel.py --events data.parquet --steps a,b,c

    .venv/bin/python bench/bench_funnel.py -n 1000000 --native-ts --pandas

Without --events a synthetic actor/event/timestamp Parquet file is generated with DuckDB
(bench/funnel.py: N/20 actors, 8 event names over 60 days, ISO text timestamps with offsets
unless --native-ts). Prints events, wall and CPU seconds (all threads) and peak RSS
(resource.getrusage) of the funnel call. Other orders, exclusions and your own files.

--pandas also runs bench/funnel.py's plain pandas implementation of the same rule on the same
file (ordered, latest re-entry, no exclusions; Parquet input) in this process, prints its CPU
seconds and the ratio, and exits with status 1 unless the counts, medians and means are
identical (bench/funnel.py `differences`). The suite (python -m bench.suite) makes the same
comparison with each side in its own process.
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

from bench.funnel import differences, generate, pandas_funnel  # noqa: E402
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
    p.add_argument("--pandas", action="store_true",
                   help="compare with the pandas implementation (needs Parquet, ordered, "
                        "no exclusions); exit 1 when the figures differ")
    args = p.parse_args()
    if args.pandas and (args.order != "ordered" or args.exclude):
        p.error("--pandas compares the ordered funnel without exclusions")

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
        steps = args.steps.split(",")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0, c0 = time.perf_counter(), time.process_time()
        result = funnel(con, rel, steps, window_seconds=args.window,
                        order=args.order, exclusions=exclusions)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"events: {n_events:,}")
        print(f"order: {args.order}  steps: {args.steps}  exclusions: {len(exclusions)}")
        print(f"time: {elapsed:.2f} s wall, {cpu:.2f} s CPU")
        print(f"peak RSS: {peak / 1024:.0f} MiB (before funnel: {rss_before / 1024:.0f} MiB)")
        print(result.to_table())
        if args.pandas:
            sys.exit(compare_pandas(path, steps, args.window, result, cpu))


def compare_pandas(path: Path, steps: list[str], window: int, result: object,
                   engine_cpu: float) -> int:
    """Run the pandas implementation on `path`; print its CPU seconds and the differences."""
    import pandas as pd

    if not str(path).endswith(".parquet"):
        print("--pandas needs a Parquet file")
        return 1
    c0 = time.process_time()
    df = pd.read_parquet(path, columns=["actor", "event", "timestamp"])
    if df["timestamp"].dtype == object or str(df["timestamp"].dtype).startswith(("str", "string")):
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, format="ISO8601") \
            .dt.tz_localize(None)
    theirs = pandas_funnel(df, steps, window)
    cpu = time.process_time() - c0
    ours = [{"count": s["count"], "median": s["median_seconds_to_convert"],
             "mean": s["mean_seconds_to_convert"]} for s in result.steps]
    diffs = differences(ours, theirs)
    print(f"pandas: {cpu:.2f} s CPU ({cpu / engine_cpu:.1f}x the engine's {engine_cpu:.2f} s)")
    print("identical counts, medians and means" if not diffs else "DIFFERENT: " + "; ".join(diffs))
    return 1 if diffs else 0


if __name__ == "__main__":
    main()
