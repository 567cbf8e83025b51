"""The benchmark suite: one command, one table (issue 13). Not a test; takes minutes per size.

    .venv/bin/python -m bench.suite --size 1m [--size 10m] [--size 100m] [--workdir DIR]
                                    [--json out.json] [--daily-days 30,90,365]

Default: sizes 1m and 10m, work folder /tmp/journeys-bench, daily scenario at 30, 90 and 365
days. For every size (events: 20k, 1m, 10m, 100m, ...) it generates the data once into
WORKDIR/<size>/ and reuses it on later runs (same size, days and seed), then measures, each
command in its own process (bench/measure.py: wall seconds, CPU seconds of the process tree,
peak resident memory, from wait4):

- **floor** — what any tool must do with these files at least: bare DuckDB (default settings,
  a fresh database file in the work folder) reads the same raw files the pipeline reads
  (clickstream JSON lines with `read_json`, bookings and payments CSV with `read_csv`, bad
  lines skipped), unions them into one table `floor` (source, actor, event, ts, record: the
  rest of the row as JSON; actor = userId else anonymousId, customer_id, booking_id for
  payments, which carry no customer) and writes it sorted by (actor, ts). No identity
  stitching, no dedup, no quarantine: a lower bound, not an alternative.
- **journeys run** — `journeys run` end to end on a fresh warehouse (config: the sample's, with
  the journey map of data/sample, pointed at the generated files), its total and one row per
  Dagster step, the step's wall time from the run's progress lines (pipelines/progress.py:
  STEP_START to STEP_SUCCESS in the run's process; CPU and memory exist per run only), plus
  the time outside any step (start-up, imports, planning). The run's `journeys` and
  `journey_variants` row counts must be equal.
- **mining** — ours (transforms/mining.py) against pm4py on the full log, a synthetic
  stage-level log of that many events (bench/mining.py); variants with counts, DFG counts,
  mean and median times, start/end activities, the discovered tree and replay fitness must be
  identical.
- **funnel** — the funnel engine (transforms/funnel.py, ordered, latest re-entry, 5 steps,
  14 days) against a plain pandas implementation of the same rule (bench/funnel.py) on that
  many events; counts, medians and means must be identical (to the microsecond).
- **daily** — for each history length H in --daily-days: data of H + 1 days (a constant
  --daily-customers-per-day), the first H days loaded by one `journeys run --end`, then the
  measured run: what the daily schedule does on the next morning for the new day
  (pipelines/defs/ingest/schedules.py `refresh_range`: the new day and the late_days before
  it, then everything downstream). Its ratio is to the shortest history's run.

It prints one table (CPU s, wall s, peak RSS, ratios to the floor of the same size) and writes
the same rows as JSON (--json, default WORKDIR/suite.json), with the load average before and
after (the machine may be shared: CPU seconds are the figures to compare). Exit status 1 when
a command fails or an identity check finds a difference (the table is still printed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import funnel as funnel_bench
from bench import mining as mining_bench
from bench.measure import JOURNEYS, REPO, Measurement, measure

EVENTS_PER_CUSTOMER = 10  # the generator's customers make ~10 events each over 30 days
SEED = 7
DAILY_START = dt.date(2025, 1, 1)  # the daily scenario's first day: 365 + 1 days end in the past


@dataclass
class Row:
    """One line of the table (and of the JSON)."""

    size: str
    work: str
    cpu_s: float | None
    wall_s: float | None
    peak_rss_mib: float | None
    cpu_x_floor: float | None = None
    wall_x_floor: float | None = None
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)  # identity checks: what, size, passed
    failures: list[str] = field(default_factory=list)

    def check(self, what: str, size: str, differences: list[str], **extra: object) -> None:
        self.checks.append({"check": what, "size": size, "passed": not differences,
                            "differences": differences, **extra})
        if differences:
            self.failures.append(f"{size} {what}: " + "; ".join(differences))


def parse_size(text: str) -> int:
    """'20k' -> 20_000, '1m' -> 1_000_000, '2500' -> 2500."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmM]?)", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"size {text!r}: a number of events such as 20k, 1m")
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


# --------------------------------------------------------------------------------------------
# data and config


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def generate_raw(raw: Path, customers: int, days: int, start: dt.date | None,
                 log: Path) -> Measurement | None:
    """Generate the exports into `raw` unless they are there from the same parameters."""
    marker = raw / "bench.json"
    params = {"customers": customers, "days": days, "seed": SEED,
              "start": start.isoformat() if start else None}
    if marker.exists() and json.loads(marker.read_text()) == params:
        return None
    args = [str(JOURNEYS), "generate", "--customers", str(customers), "--days", str(days),
            "--seed", str(SEED), "--out", str(raw), "--overwrite"]
    if start:
        args += ["--start", start.isoformat()]
    m = measure(args, log)
    if m.exit_code:
        raise SystemExit(f"journeys generate failed (exit {m.exit_code}), see {log}")
    marker.write_text(json.dumps(params))
    return m


def write_config(root: Path, raw: Path) -> Path:
    """The sample's sources.yaml pointed at `raw`, warehouse and outputs under `root`."""
    sample = REPO / "data" / "sample"
    text = (sample / "sources.yaml").read_text()
    text = (text.replace("warehouse: ../../warehouse/journeys.duckdb",
                         f"warehouse: {root / 'warehouse' / 'journeys.duckdb'}")
            .replace("output_dir: ../../output", f"output_dir: {root / 'output'}")
            .replace("journey_map: journey_map.yaml",
                     f"journey_map: {sample / 'journey_map.yaml'}")
            .replace("path: raw/", f"path: {raw}/"))
    config = root / "sources.yaml"
    config.write_text(text)
    return config


def _fresh(root: Path) -> dict[str, str]:
    """Remove the warehouse and outputs under `root`; the env of a run there."""
    for name in ("warehouse", "output", "dagster_home"):
        shutil.rmtree(root / name, ignore_errors=True)
    (root / "dagster_home").mkdir(parents=True)
    return {"DAGSTER_HOME": str(root / "dagster_home")}


# --------------------------------------------------------------------------------------------
# the floor


FLOOR_SQL = """
create or replace table floor as
with clickstream as (
    select 'clickstream' as source, coalesce(userId, anonymousId) as actor, event,
           try_cast("timestamp" as timestamptz) as ts,
           to_json(struct_pack(messageId, receivedAt, context, properties)) as record
    from read_json({clicks}, format = 'newline_delimited', ignore_errors = true,
                   columns = {{messageId: 'VARCHAR', anonymousId: 'VARCHAR',
                              userId: 'VARCHAR', event: 'VARCHAR', "timestamp": 'VARCHAR',
                              receivedAt: 'VARCHAR', context: 'JSON', properties: 'JSON'}})
),
bookings as (
    select 'bookings' as source, customer_id as actor, 'booking_' || status as event,
           try_cast(changed_at as timestamptz) as ts, to_json(b) as record
    from read_csv({bookings}, header = true, all_varchar = true, ignore_errors = true,
                  union_by_name = true) b
),
payments as (
    select 'payments' as source, booking_id as actor, 'payment_' || status as event,
           try_cast(created_at as timestamptz) as ts, to_json(p) as record
    from read_csv({payments}, header = true, all_varchar = true, ignore_errors = true,
                  union_by_name = true) p
)
select * from (select * from clickstream union all select * from bookings
               union all select * from payments)
order by actor, ts
"""


def worker_floor(raw: Path, db: Path) -> dict:
    import duckdb

    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    con.execute("SET TimeZone = 'UTC'")

    def files(src: str, ext: str) -> str:
        return "'" + str(raw / src / f"*.{ext}").replace("'", "''") + "'"

    con.execute(FLOOR_SQL.format(clicks=files("clickstream", "jsonl"),
                                 bookings=files("bookings", "csv"),
                                 payments=files("payments", "csv")))
    rows = con.execute("select count(*) from floor").fetchone()[0]
    con.close()
    return {"rows": rows}


# --------------------------------------------------------------------------------------------
# journeys run: total and per step


_STEP = re.compile(r"^  (\S+)\s+(?:([\d,]+) (?:rows?|partitions?))?\s+took\s+([\d.]+) s\s")
_ASSET = re.compile(r"^  (\S+)\s+(?:([\d,]+) (?:rows?|partitions?))?\s+[\d.]+ s elapsed$")


def run_steps(log_text: str) -> list[dict]:
    """The run's steps from its progress lines: first table, tables built, wall seconds."""
    steps: list[dict] = []
    for line in log_text.splitlines():
        if m := _STEP.match(line):
            steps.append({"step": m.group(1), "tables": 1, "wall_s": float(m.group(3))})
        elif (m := _ASSET.match(line)) and steps:
            steps[-1]["tables"] += 1
    return steps


def row_counts(log_text: str) -> dict[str, int]:
    """asset -> rows, from the run's progress lines."""
    counts = {}
    for line in log_text.splitlines():
        m = _STEP.match(line) or _ASSET.match(line)
        if m and m.group(2):
            counts[m.group(1)] = int(m.group(2).replace(",", ""))
    return counts


def journeys_run(root: Path, config: Path, log: str, *extra: str, fresh: bool = True
                 ) -> Measurement:
    """`journeys run` with the config in `root` (on a fresh warehouse unless fresh=False)."""
    env = _fresh(root) if fresh else {"DAGSTER_HOME": str(root / "dagster_home")}
    return measure([str(JOURNEYS), "run", "--config", str(config), *extra], root / log, env=env)


# --------------------------------------------------------------------------------------------
# one worker, measured


def measured_worker(args: list[str], log: Path) -> tuple[Measurement, dict | None]:
    m = measure(args, log, env={"PM4PY_SHOW_PROGRESS_BAR": "False"}, cwd=REPO)
    lines = log.read_text().strip().splitlines()
    out = None
    if m.exit_code == 0 and lines:
        try:
            out = json.loads(lines[-1])
        except json.JSONDecodeError:
            out = None
    return m, out


def _row(size: str, work: str, m: Measurement | None, floor: Measurement | None,
         note: str = "") -> Row:
    if m is None:
        return Row(size, work, None, None, None, note=note)
    return Row(size, work, round(m.cpu_s, 2), round(m.wall_s, 2), round(m.peak_rss_mib),
               round(m.cpu_s / floor.cpu_s, 2) if floor and floor.cpu_s else None,
               round(m.wall_s / floor.wall_s, 2) if floor and floor.wall_s else None, note)


def bench_size(label: str, events: int, args: argparse.Namespace, report: Report) -> None:
    root = args.workdir / label
    root.mkdir(parents=True, exist_ok=True)
    raw = root / "raw"
    customers = max(1, events // EVENTS_PER_CUSTOMER)
    print(f"== {label}: {customers:,} customers over {args.days} days ({root})", flush=True)
    gen = generate_raw(raw, customers, args.days, None, root / "generate.log")
    print(f"   data: {f'generated in {gen.wall_s:.0f} s' if gen else 'reused'}", flush=True)

    floor, out = measured_worker(_python("-m", "bench.suite", "--worker", "floor", "--raw",
                                         str(raw), "--db", str(root / "floor.duckdb")),
                                 root / "floor.log")
    if out is None:
        report.failures.append(f"{label} floor failed, see {floor.log}")
        floor = None
    else:
        report.rows.append(_row(label, "floor (DuckDB: read, union, sort)", floor, floor,
                                f"{out['rows']:,} rows"))
        (root / "floor.duckdb").unlink(missing_ok=True)

    config = write_config(root, raw)
    run = journeys_run(root, config, "run.log")
    text = run.log.read_text()
    events_line = next((ln.strip() for ln in text.splitlines() if ln.startswith("events:")), "")
    if run.exit_code:
        report.failures.append(f"{label} journeys run failed (exit {run.exit_code}), see "
                               f"{run.log}")
    report.rows.append(_row(label, "journeys run (end to end)", run, floor, events_line))
    steps = run_steps(text)
    for s in steps:
        tables = f" (+{s['tables'] - 1} tables)" if s["tables"] > 1 else ""
        report.rows.append(Row(label, f"  step {s['step']}{tables}", None, s["wall_s"], None,
                               None, round(s["wall_s"] / floor.wall_s, 2) if floor else None,
                               f"{s['wall_s'] / run.wall_s:.0%} of the run's wall"))
    outside = run.wall_s - sum(s["wall_s"] for s in steps)
    report.rows.append(Row(label, "  outside steps (start-up, imports)", None,
                           round(outside, 1), None, note="wall"))
    counts = row_counts(text)
    if run.exit_code == 0:
        j, v = counts.get("journeys"), counts.get("journey_variants")
        report.check("journeys = journey_variants rows", label,
                     [] if j is not None and j == v else [f"journeys {j}, journey_variants {v}"],
                     journeys=j, journey_variants=v)

    log_file = root / "mining_log.parquet"
    if not log_file.exists():
        mining_bench.generate(log_file, events)
    replay = not args.no_replay
    ours, o = measured_worker(mining_bench.worker_command("ours", log_file, replay),
                              root / "mining_ours.log")
    theirs, t = measured_worker(mining_bench.worker_command("pm4py", log_file, replay),
                                root / "mining_pm4py.log")
    if o is None or t is None:
        report.failures.append(f"{label} mining worker failed, see {ours.log}, {theirs.log}")
    else:
        report.check("mining: ours = pm4py", label, mining_bench.compare(o, t),
                     compared=[k for k in mining_bench.COMPARED if replay or k != "fitness"],
                     events=o["events"])
        replayed = "on" if replay else "off"
        report.rows.append(_row(label, "mining: ours", ours, floor,
                                f"{o['events']:,} events, token replay {replayed}"))
        report.rows.append(_row(label, "mining: pm4py (full log)", theirs, floor,
                                f"{theirs.cpu_s / ours.cpu_s:.1f}x ours (CPU)"))

    events_file = root / "funnel_events.parquet"
    if not events_file.exists():
        funnel_bench.generate(events_file, events)
    engine, e = measured_worker(funnel_bench.worker_command("engine", events_file),
                                root / "funnel_engine.log")
    pandas, p = measured_worker(funnel_bench.worker_command("pandas", events_file),
                                root / "funnel_pandas.log")
    if e is None or p is None:
        report.failures.append(f"{label} funnel worker failed, see {engine.log}, {pandas.log}")
    else:
        report.check("funnel: engine = pandas", label,
                     funnel_bench.differences(e["steps"], p["steps"]),
                     compared=["count", "median", "mean"], steps=len(e["steps"]))
        report.rows.append(_row(label, "funnel: engine", engine, floor,
                                f"{events:,} events, {len(funnel_bench.STEPS)} steps; "
                                f"work {e['cpu_s']:.2f} CPU s"))
        report.rows.append(_row(label, "funnel: pandas", pandas, floor,
                                f"{pandas.cpu_s / engine.cpu_s:.1f}x the engine (process CPU), "
                                f"{p['cpu_s'] / e['cpu_s']:.1f}x (work CPU: start-up and "
                                f"imports left out)"))


def bench_daily(days_list: list[int], args: argparse.Namespace, report: Report) -> None:
    from pipelines.defs.ingest.schedules import refresh_range
    from transforms.project import load_project

    per_day = args.daily_customers_per_day
    base: Measurement | None = None
    for days in sorted(days_list):
        label = f"daily {days}d"
        root = args.workdir / "daily" / f"{days}d_{per_day}"
        root.mkdir(parents=True, exist_ok=True)
        raw = root / "raw"
        print(f"== {label}: {per_day * (days + 1):,} customers over {days + 1} days ({root})",
              flush=True)
        generate_raw(raw, per_day * (days + 1), days + 1, DAILY_START, root / "generate.log")
        config = write_config(root, raw)
        new_day = DAILY_START + dt.timedelta(days=days)
        late = max(s.late_days for s in load_project(config).config.sources.values())
        first, last = refresh_range(new_day + dt.timedelta(days=1), late)
        snapshot = root / "history.duckdb"
        warehouse = root / "warehouse" / "journeys.duckdb"
        history_key = root / "history.json"
        key = {"days": days, "per_day": per_day, "end": (new_day - dt.timedelta(days=1)
                                                          ).isoformat()}
        if not (snapshot.exists() and history_key.exists()
                and json.loads(history_key.read_text()) == key):
            hist = journeys_run(root, config, "run_history.log", "--end", key["end"])
            if hist.exit_code:
                report.failures.append(f"{label}: history run failed, see {hist.log}")
                continue
            shutil.copy2(warehouse, snapshot)
            shutil.rmtree(root / "history_dagster_home", ignore_errors=True)
            shutil.copytree(root / "dagster_home", root / "history_dagster_home")
            history_key.write_text(json.dumps(key))
        # the state right after the history run: its warehouse and its Dagster instance
        shutil.rmtree(root / "dagster_home", ignore_errors=True)
        shutil.copytree(root / "history_dagster_home", root / "dagster_home")
        warehouse.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(snapshot, warehouse)
        m = journeys_run(root, config, "run_daily.log", "--start", first.isoformat(),
                         "--end", last.isoformat(), fresh=False)
        if m.exit_code:
            report.failures.append(f"{label}: daily run failed, see {m.log}")
            continue
        base = base or m
        row = _row(label, f"daily run after {days} days ({first} … {last})", m, None,
                   f"{m.cpu_s / base.cpu_s:.2f}x the {min(days_list)}-day run (CPU)")
        report.rows.append(row)


# --------------------------------------------------------------------------------------------
# output


COLUMNS = [("size", "size", 10), ("work", "work", 46), ("cpu_s", "CPU s", 9),
           ("wall_s", "wall s", 9), ("peak_rss_mib", "peak MiB", 9),
           ("cpu_x_floor", "CPU/floor", 10), ("wall_x_floor", "wall/floor", 11),
           ("note", "note", 0)]


def table(rows: list[Row]) -> str:
    def cell(v: object, width: int, left: bool) -> str:
        text = "" if v is None else f"{v:,.2f}" if isinstance(v, float) else (
            f"{v:,}" if isinstance(v, int) else str(v))
        return text.ljust(width) if left else text.rjust(width)

    lines = [" ".join(cell(h, w, k in ("size", "work", "note")) for k, h, w in COLUMNS)]
    lines.append("-" * len(lines[0]))
    for r in rows:
        d = asdict(r)
        lines.append(" ".join(cell(d[k], w, k in ("size", "work", "note"))
                              for k, _, w in COLUMNS).rstrip())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", action="append", type=str, default=None,
                   help="events per size: 20k, 1m, 10m, 100m (repeatable; default 1m and 10m)")
    p.add_argument("--days", type=int, default=30, help="days of data per size (default 30)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/journeys-bench"))
    p.add_argument("--json", type=Path, default=None,
                   help="write the rows here (default WORKDIR/suite.json)")
    p.add_argument("--daily-days", default="30,90,365",
                   help="history lengths of the daily scenario, comma-separated; '' skips it")
    p.add_argument("--daily-customers-per-day", type=int, default=50)
    p.add_argument("--no-replay", action="store_true",
                   help="skip token replay in the mining comparison (both sides)")
    p.add_argument("--worker", choices=["floor"], help=argparse.SUPPRESS)
    p.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker == "floor":
        print(json.dumps(worker_floor(args.raw, args.db)), flush=True)
        return 0

    labels = args.size or ["1m", "10m"]
    try:
        sizes = [(label, parse_size(label)) for label in labels]
        daily = [int(d) for d in args.daily_days.split(",") if d.strip()]
    except (argparse.ArgumentTypeError, ValueError) as exc:
        p.error(str(exc))
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    report = Report()
    started = time.monotonic()
    load_before = os.getloadavg()
    for label, events in sizes:
        bench_size(label, events, args, report)
    if daily:
        bench_daily(daily, args, report)
    load_after = os.getloadavg()
    print()
    print(table(report.rows))
    print()
    for c in report.checks:
        print(f"identical  {c['size']:<6} {c['check']:<36} "
              f"{'yes' if c['passed'] else 'NO: ' + '; '.join(c['differences'])}")
    print(f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f} "
          f"({os.cpu_count()} CPUs); suite took {time.monotonic() - started:.0f} s")
    out = args.json or args.workdir / "suite.json"
    out.write_text(json.dumps({
        "command": ["python", "-m", "bench.suite", *(argv if argv is not None else sys.argv[1:])],
        "cpus": os.cpu_count(), "load_average_before": load_before,
        "load_average_after": load_after, "sizes": dict(sizes), "daily_days": daily,
        "rows": [asdict(r) for r in report.rows], "checks": report.checks,
        "failures": report.failures}, indent=1))
    print(f"JSON: {out}")
    for f in report.failures:
        print(f"FAILED: {f}", file=sys.stderr)
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
