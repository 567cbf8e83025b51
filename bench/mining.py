"""Mining against pm4py on the full log: the synthetic log and the two measured workers.

The log (`generate`): a synthetic stage-level journey log written with DuckDB — about 3.4
events per case, 10 activities, branching, loops and early exits — as a Parquet file in time
order (an event stream, not sorted by case), `case`, `activity`, `timestamp`.

ours:  read Parquet into DuckDB, sort it once into per-case paths, variants and performance DFG
       (count/mean/median/p90) from those, start/end activities, inductive miner on the variant
       counter, token replay per variant (transforms/mining.py).
pm4py: pandas read_parquet, format_dataframe, discover_dfg, discover_performance_dfg,
       get_variants, discover_process_tree_inductive, fitness_token_based_replay (full log).

Each worker runs in its own process (`python -m bench.mining --worker ours|pm4py --file F`,
measured by bench/measure.py) and prints, as its last line, JSON with its step times and a
digest of each result; `compare` names the results that differ. bench/suite.py runs both.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import time
from pathlib import Path

# the results both sides must agree on (fitness only when token replay ran)
COMPARED = ("variants", "dfg", "dfg_mean", "dfg_median", "start_end", "tree", "fitness")

# (from, to, probability); each row's probabilities sum to 1; 'END' stops the journey.
FLOW = [
    ("START", "app_open", 0.55), ("START", "campaign_click", 0.30), ("START", "search", 0.15),
    ("app_open", "search", 0.45), ("app_open", "view_service", 0.30), ("app_open", "END", 0.25),
    ("campaign_click", "view_service", 0.45), ("campaign_click", "app_open", 0.15),
    ("campaign_click", "END", 0.40),
    ("search", "view_service", 0.50), ("search", "view_salon", 0.25), ("search", "END", 0.25),
    ("view_service", "view_salon", 0.25), ("view_service", "select_slot", 0.25),
    ("view_service", "search", 0.10), ("view_service", "END", 0.40),
    ("view_salon", "select_slot", 0.35), ("view_salon", "view_service", 0.20),
    ("view_salon", "END", 0.45),
    ("select_slot", "booking_created", 0.60), ("select_slot", "view_salon", 0.10),
    ("select_slot", "END", 0.30),
    ("booking_created", "payment_succeeded", 0.70), ("booking_created", "payment_failed", 0.15),
    ("booking_created", "END", 0.15),
    ("payment_failed", "payment_succeeded", 0.50), ("payment_failed", "END", 0.50),
    ("payment_succeeded", "service_completed", 0.80), ("payment_succeeded", "END", 0.20),
    ("service_completed", "app_open", 0.15), ("service_completed", "END", 0.85),
]
MAX_STEPS = 40


def generate(path: Path, events: int) -> None:
    """Write a synthetic log of about `events` events to `path` (Parquet, time order)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SELECT setseed(0.42)")
    con.execute("create table flow(src varchar, dst varchar, p double)")
    con.executemany("insert into flow values (?, ?, ?)", FLOW)
    con.execute("""
        create table flow_cum as
        select src, dst,
               sum(p) over (partition by src order by dst rows unbounded preceding) - p as lo,
               sum(p) over (partition by src order by dst rows unbounded preceding) as hi
        from flow
    """)
    # calibrate the number of cases on a pilot walk so the log has about `events` events
    cases = int(events / _events_per_case(con))
    con.execute(f"""
        copy (
            {_walk_sql(cases)}
            select 'c' || case_id as "case", activity, ts as "timestamp"
            from walk where activity <> 'START'
            order by ts, case_id, step
        ) to '{path}' (format parquet)
    """)
    con.close()


def _walk_sql(cases: int) -> str:
    return f"""
        with recursive walk(case_id, step, activity, ts, r) as (
            select range, 0, 'START', timestamp '2024-01-01'
                   + to_seconds(floor(random() * 86400 * 90)::bigint), random()
            from range({cases})
            union all
            select w.case_id, w.step + 1, f.dst,
                   w.ts + to_seconds(floor(random() * random() * 7200)::bigint), random()
            from walk w join flow_cum f
              on f.src = w.activity and w.r >= f.lo and w.r < f.hi
            where f.dst <> 'END' and w.step < {MAX_STEPS}
        )
    """


def _events_per_case(con) -> float:
    pilot = 200_000
    sql = _walk_sql(pilot) + " select count(*) from walk where activity <> 'START'"
    return con.execute(sql).fetchall()[0][0] / pilot


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_ours(path: Path, replay: bool) -> dict:
    import duckdb

    from transforms import mining
    from transforms.eventlog import read_event_log

    times = {}
    t0 = time.perf_counter()
    con = duckdb.connect()
    log = read_event_log(con, path, table="log").alias
    times["read"] = time.perf_counter() - t0
    t = time.perf_counter()
    paths = mining.case_paths(con, log)  # the one sort of the log: variants and DFG read it
    vc = mining.variant_counts(con, paths)
    times["variants"] = time.perf_counter() - t
    t = time.perf_counter()
    dfg = mining.dfg(con, paths).fetchall()
    times["performance_dfg"] = time.perf_counter() - t
    t = time.perf_counter()
    starts, ends = mining.start_activities(con, vc), mining.end_activities(con, vc)
    times["start_end"] = time.perf_counter() - t
    t = time.perf_counter()
    tree = mining.discover_model(vc)
    times["inductive_miner"] = time.perf_counter() - t
    fitness = None
    if replay:
        t = time.perf_counter()
        fitness = round(mining.conformance(vc, tree).log_fitness, 12)
        times["token_replay"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    return {
        "times": times, "peak_mb": _peak_mb(),
        "events": con.execute(f"select count(*) from {log}").fetchall()[0][0],
        "variants": _digest(sorted((list(k), v) for k, v in vc.items())),
        "dfg": _digest(sorted([f, t, n] for f, t, n, *_ in dfg)),
        "dfg_mean": _digest(sorted([f, t, round(m, 6)] for f, t, _, m, *_ in dfg)),
        "dfg_median": _digest(sorted([f, t, round(md, 6)] for f, t, _, _, md, _ in dfg)),
        "start_end": _digest([starts, ends]), "tree": str(tree), "fitness": fitness,
    }


def worker_pm4py(path: Path, replay: bool) -> dict:
    os.environ["PM4PY_SHOW_PROGRESS_BAR"] = "False"
    import pandas as pd
    import pm4py

    times = {}
    t0 = time.perf_counter()
    df = pd.read_parquet(path)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    times["read"] = time.perf_counter() - t0
    t = time.perf_counter()
    df = pm4py.format_dataframe(df, case_id="case", activity_key="activity",
                                timestamp_key="timestamp")
    # pitfall: Arrow-backed strings break variant functions; stable order by case and time
    df = df.astype({"case:concept:name": object, "concept:name": object})
    df = df.sort_values(["case:concept:name", "time:timestamp"], kind="stable")
    times["format_dataframe"] = time.perf_counter() - t
    t = time.perf_counter()
    dfg, starts, ends = pm4py.discover_dfg(df)
    times["dfg"] = time.perf_counter() - t
    t = time.perf_counter()
    perf, _, _ = pm4py.discover_performance_dfg(df)
    times["performance_dfg"] = time.perf_counter() - t
    t = time.perf_counter()
    variants = pm4py.get_variants(df)
    times["variants"] = time.perf_counter() - t
    t = time.perf_counter()
    tree = pm4py.discover_process_tree_inductive(df)
    times["inductive_miner"] = time.perf_counter() - t
    fitness = None
    if replay:
        t = time.perf_counter()
        net, im, fm = pm4py.convert_to_petri_net(tree)
        fitness = round(pm4py.fitness_token_based_replay(df, net, im, fm)["log_fitness"], 12)
        times["token_replay"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    return {
        "times": times, "peak_mb": _peak_mb(), "events": len(df),
        "variants": _digest(sorted((list(k), v) for k, v in variants.items())),
        "dfg": _digest(sorted([f, t, n] for (f, t), n in dfg.items())),
        "dfg_mean": _digest(sorted([f, t, round(v["mean"], 6)] for (f, t), v in perf.items())),
        "dfg_median": _digest(sorted([f, t, round(v["median"], 6)]
                                     for (f, t), v in perf.items())),
        "start_end": _digest([dict(sorted(starts.items(), key=lambda kv: (-kv[1], kv[0]))),
                              dict(sorted(ends.items(), key=lambda kv: (-kv[1], kv[0])))]),
        "tree": str(tree), "fitness": fitness,
    }


def compare(ours: dict, theirs: dict) -> list[str]:
    """The compared results (COMPARED) that differ between the two workers' outputs."""
    return [k for k in COMPARED if ours.get(k) != theirs.get(k)]


def worker_command(kind: str, path: Path, replay: bool) -> list[str]:
    """The command line of one measured worker."""
    cmd = [sys.executable, "-m", "bench.mining", "--worker", kind, "--file", str(path)]
    return cmd if replay else [*cmd, "--no-replay"]


def main() -> None:
    parser = argparse.ArgumentParser(description="one mining worker (run by bench/suite.py)")
    parser.add_argument("--worker", choices=["ours", "pm4py"], required=True)
    parser.add_argument("--file", type=Path, required=True)
    parser.add_argument("--no-replay", action="store_true")
    args = parser.parse_args()
    replay = not args.no_replay
    result = (worker_ours(args.file, replay) if args.worker == "ours"
              else worker_pm4py(args.file, replay))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PM4PY_SHOW_PROGRESS_BAR", "False")
    main()
