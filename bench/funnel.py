"""The funnel engine against a plain pandas implementation of the same rule: data and workers.

The rule (transforms/funnel.py, order `ordered`, re-entry `latest`, no exclusions, no per-step
windows), as the pandas side implements it independently:

- an actor's events are taken in (time, step number) order; every step-1 event is an entry and
  starts an attempt;
- step k of an attempt is filled by the first step-k event after the event that filled step k-1
  (later in that order) whose time is at most entry + window (boundary inclusive); an attempt
  that cannot fill step k stops there;
- the actor counts at its furthest attempt, the earliest entry on a tie; counts are cumulative
  (step k = actors whose attempt reached at least step k);
- time to convert at step k: step_k time - step_(k-1) time in seconds, over the actors that
  reached step k: median (linear interpolation) and mean.

Identical means: the same count at every step, and medians and means within 1 microsecond (the
timestamps' resolution; the two sides sum floating-point seconds in different orders).

The data (`generate`): N events of N/20 actors, 8 event names, uniform over 60 days, native
TIMESTAMPs, as Parquet (`actor`, `event`, `timestamp`). Each worker runs in its own process
(`python -m bench.funnel --worker engine|pandas --file F`, measured by bench/measure.py) and
prints JSON with its per-step figures as its last line; bench/suite.py runs both and compares.

Fairness: both workers start from the same Parquet file and end with the same figures. Each
imports its libraries before its clock starts (the engine: DuckDB, NumPy and the engine;
pandas: pandas, NumPy and PyArrow), then reads the file the way that
library reads Parquet — pandas into a DataFrame (`read_parquet`, the three columns), the
engine as a DuckDB relation over the file (`read_parquet`, scanned by the engine's queries) —
and computes. The JSON's `cpu_s` is the CPU time of that work (all threads,
`time.process_time`), `seconds` its wall time; the process measurement of bench/measure.py
adds the interpreter start-up and the imports (about 0.3 s for the engine, 0.5-0.8 s for
pandas), which are not funnel work.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

EVENTS = ["app_open", "search", "view_service", "select_slot", "booking_created",
          "payment_succeeded", "booking_completed", "payment_failed"]
STEPS = ["app_open", "view_service", "select_slot", "booking_created", "payment_succeeded"]
WINDOW_SECONDS = 14 * 86400
TOLERANCE_SECONDS = 1e-6


def generate(path: Path, n: int, native_ts: bool = True) -> None:
    """Write `n` synthetic events to the Parquet file `path` (see the module docstring); with
    native_ts False the timestamps are ISO text, a third each with `Z`, `+02:00` or no offset."""
    import duckdb

    con = duckdb.connect()
    actors = max(1, n // 20)
    ts = "timestamp '2026-01-01' + to_microseconds(cast(hash(i, 2) % 5184000000000 as bigint))"
    ts_col = ts if native_ts else (
        f"strftime({ts}, '%Y-%m-%dT%H:%M:%S') || "
        "(case hash(i, 3) % 3 when 0 then 'Z' when 1 then '+02:00' else '' end)")
    con.execute(f"""
        copy (
            select 'c' || (hash(i, 1) % {actors}) as actor,
                   list_extract({EVENTS!r}, 1 + cast(
                       least(hash(i, 4) % 100 // 14, 7) as integer)) as event,
                   {ts_col} as timestamp
            from range({n}) t(i)
        ) to '{path}' (format parquet)
    """)
    con.close()


def worker_engine(path: Path) -> dict:
    """transforms.funnel.funnel on a DuckDB relation over the file."""
    import duckdb
    import numpy  # noqa: F401  (the engine's array step: imported before the clock, as pandas')

    from transforms.funnel import funnel

    t0, c0 = time.perf_counter(), time.process_time()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    result = funnel(con, con.read_parquet(str(path)), STEPS, window_seconds=WINDOW_SECONDS,
                    order="ordered", reentry="latest")
    return {"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "steps": [{"count": s["count"], "median": s["median_seconds_to_convert"],
                       "mean": s["mean_seconds_to_convert"]} for s in result.steps]}


def pandas_funnel(df: object, steps: list[str], window_seconds: float) -> list[dict]:
    """The rule of the module docstring on a frame with actor, event, timestamp (naive UTC)."""
    import numpy as np
    import pandas as pd

    step_no = {name: k for k, name in enumerate(steps, start=1)}
    ev = df[df["event"].isin(step_no)].copy()
    ev["step"] = ev["event"].map(step_no).astype("int64")
    ev["ts"] = pd.to_datetime(ev["timestamp"]).astype("datetime64[ns]")
    ev = ev.sort_values(["actor", "ts", "step"], kind="stable").reset_index(drop=True)
    ev["pos"] = np.arange(len(ev), dtype="int64")
    window = pd.Timedelta(seconds=window_seconds)

    first = ev[ev["step"] == 1]
    attempts = pd.DataFrame({"actor": first["actor"].to_numpy(),
                             "entry_ts": first["ts"].to_numpy(),
                             "pos": first["pos"].to_numpy(), "furthest": 1,
                             "t1": first["ts"].to_numpy()})
    for k in range(2, len(steps) + 1):
        attempts[f"t{k}"] = pd.Series(pd.NaT, index=attempts.index, dtype="datetime64[ns]")
    alive = attempts[["actor", "pos", "entry_ts"]].assign(row=np.arange(len(attempts)))
    for k in range(2, len(steps) + 1):
        cand = ev.loc[ev["step"] == k, ["actor", "pos", "ts"]].rename(columns={"pos": "next"})
        cand = cand.assign(pos=cand["next"])
        nxt = pd.merge_asof(alive.sort_values("pos"), cand.sort_values("pos"), on="pos",
                            by="actor", direction="forward", allow_exact_matches=False)
        ok = nxt["ts"].notna() & (nxt["ts"] <= nxt["entry_ts"] + window)
        nxt = nxt[ok]
        attempts.loc[nxt["row"].to_numpy(), "furthest"] = k
        attempts.loc[nxt["row"].to_numpy(), f"t{k}"] = nxt["ts"].to_numpy()
        alive = pd.DataFrame({"actor": nxt["actor"].to_numpy(),
                              "pos": nxt["next"].to_numpy().astype("int64"),
                              "entry_ts": nxt["entry_ts"].to_numpy(),
                              "row": nxt["row"].to_numpy()})
    best = (attempts.sort_values(["actor", "furthest", "entry_ts"],
                                 ascending=[True, False, True], kind="stable")
            .drop_duplicates("actor"))
    out = []
    for k in range(1, len(steps) + 1):
        reached = best[best["furthest"] >= k]
        row = {"count": int(len(reached)), "median": None, "mean": None}
        if k > 1 and len(reached):
            us = (reached[f"t{k}"] - reached[f"t{k - 1}"]).to_numpy().astype(
                "timedelta64[us]").astype("int64")
            seconds = us / 1e6
            row["median"] = float(np.median(seconds))
            row["mean"] = float(seconds.mean())
        out.append(row)
    return out


def worker_pandas(path: Path) -> dict:
    import pandas as pd
    import pyarrow  # noqa: F401  (read_parquet's reader: imported before the clock)

    t0, c0 = time.perf_counter(), time.process_time()
    df = pd.read_parquet(path, columns=["actor", "event", "timestamp"])
    steps = pandas_funnel(df, STEPS, WINDOW_SECONDS)
    return {"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "steps": steps}


def differences(engine: list[dict], other: list[dict]) -> list[str]:
    """What differs between two per-step figure lists (empty: identical, module docstring)."""
    if len(engine) != len(other):
        return [f"{len(engine)} steps against {len(other)}"]
    diffs = []
    for k, (a, b) in enumerate(zip(engine, other, strict=True), start=1):
        if a["count"] != b["count"]:
            diffs.append(f"step {k} count {a['count']} against {b['count']}")
        for key in ("median", "mean"):
            x, y = a[key], b[key]
            if (x is None) != (y is None) or (
                    x is not None and abs(x - y) > TOLERANCE_SECONDS):
                diffs.append(f"step {k} {key} {x} against {y}")
    return diffs


def worker_command(kind: str, path: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "bench.funnel", "--worker", kind, "--file", str(path)]


def main() -> None:
    parser = argparse.ArgumentParser(description="one funnel worker (run by bench/suite.py)")
    parser.add_argument("--worker", choices=["engine", "pandas"], required=True)
    parser.add_argument("--file", type=Path, required=True)
    args = parser.parse_args()
    result = worker_engine(args.file) if args.worker == "engine" else worker_pandas(args.file)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
