"""The benchmark suite: one command, one table (issue 13). Not a test; takes minutes per size.

    .venv/bin/python -m bench.suite --size 1m [--size 10m] [--size 100m] [--workdir DIR]
                                    [--json out.json] [--daily-days 30,90,365]
                                    [--input-format text|parquet]

Default: sizes 1m and 10m, work folder /tmp/journeys-bench, daily scenario at 30, 90 and 365
days. For every size (events: 20k, 1m, 10m, 100m, ...) it generates the data once into
WORKDIR/<size>/ and reuses it on later runs (same size, days and seed), then measures, each
command in its own process (bench/measure.py: wall seconds, CPU seconds of the process tree,
peak resident memory, from wait4).

The raw files are read as the generator writes them (`text`: clickstream JSON lines, bookings
and payments CSV; the default below 100M events) or, with `--input-format parquet` (the
default from 100M events on, where the text would not fit the disk beside everything else),
converted once into WORKDIR/<size>/raw-parquet/<source>/<day>.parquet (`to_parquet`): the
same records, one row per record of the text file, every field as text as the text readers
see it (clickstream's mapped fields nested as in the JSON, `context.platform` a field of
struct `context`; `properties` its JSON text), a line that is no JSON object or a CSV row of
the wrong width a row of NULLs (so ingest reads, loads, quarantines and finds duplicates in
the same numbers; tests/bench/test_bench_parquet.py); the floor and `journeys run`
(`format: parquet`) read those files. From 100M events each text file is deleted once
converted.

The parts:

- **floor** — what any tool must do with these files at least: bare DuckDB (default settings,
  a fresh database file in the work folder) reads the same raw files the pipeline reads
  (clickstream JSON lines with `read_json`, bookings and payments CSV with `read_csv`, bad
  lines skipped; or the Parquet files with `read_parquet`), unions them into one table
  `floor` (source, actor, event, ts, record: the rest of the row as JSON; actor = userId
  else anonymousId, customer_id, booking_id for payments, which carry no customer) and
  writes it sorted by (actor, ts). No identity
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
  it, then everything downstream), --daily-repeat times (default 3) from the same snapshot,
  the lengths interleaved; the table shows the medians (this machine's speed drifts by a
  third between minutes) and each step's median wall. Its ratio is to the shortest
  history's median.

It prints one table (CPU s, wall s, peak RSS, ratios to the floor of the same size) and writes
the same rows as JSON (--json, default WORKDIR/suite.json), with the load average before and
after (the machine may be shared: CPU seconds are the figures to compare). Exit status 1 when
a command fails or an identity check finds a difference (the table is still printed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bench import funnel as funnel_bench
from bench import mining as mining_bench
from bench.measure import JOURNEYS, REPO, Measurement, measure

EVENTS_PER_CUSTOMER = 10  # the generator's customers make ~10 events each over 30 days
# the raw files the floor and `journeys run` read: as the generator writes them (JSON lines
# and CSV) or converted to Parquet (`to_parquet`), the default from PARQUET_FROM events on,
# where the text exports would not fit the disk beside everything else
INPUT_FORMATS = ("text", "parquet")
PARQUET_FROM = 100_000_000
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


def write_config(root: Path, raw: Path, input_format: str = "text") -> Path:
    """The sample's sources.yaml pointed at `raw`, warehouse and outputs under `root`; with
    input_format 'parquet', every source reads `raw`'s Parquet files (`format: parquet`)."""
    sample = REPO / "data" / "sample"
    text = (sample / "sources.yaml").read_text()
    text = (text.replace("warehouse: ../../warehouse/journeys.duckdb",
                         f"warehouse: {root / 'warehouse' / 'journeys.duckdb'}")
            .replace("output_dir: ../../output", f"output_dir: {root / 'output'}")
            .replace("journey_map: journey_map.yaml",
                     f"journey_map: {sample / 'journey_map.yaml'}")
            .replace("path: raw/", f"path: {raw}/"))
    if input_format == "parquet":
        text, paths = re.subn(r"(path: \S+/[^/\s]+/\*)\.(jsonl|csv)\b", r"\1.parquet", text)
        text, formats = re.subn(r"(?m)^(\s+format: )(jsonl|csv)\s*$", r"\1parquet", text)
        if paths != formats or not paths:
            raise SystemExit(f"cannot point {sample / 'sources.yaml'} at Parquet files: "
                             f"{paths} paths and {formats} formats replaced")
    config = root / ("sources.yaml" if input_format == "text" else "sources-parquet.yaml")
    config.write_text(text)
    return config


# --------------------------------------------------------------------------------------------
# Parquet input


def input_format(events: int, chosen: str | None = None) -> str:
    """The raw files' format at this size: the one chosen, else text below PARQUET_FROM
    events and Parquet from there on."""
    return chosen or ("parquet" if events >= PARQUET_FROM else "text")


def _json_path(field: str) -> str:
    return "$." + ".".join('"' + part.replace('"', '\\"') + '"' for part in field.split("."))


def _jsonl_select(source) -> str:
    """The SELECT that turns one JSON line (`line`, `ok`: a JSON object) into a Parquet row:
    every field the source maps, nested as in the JSON (`context.platform` a field of struct
    `context`), as text exactly as the JSON-lines reader extracts it (a `json` column as its
    JSON text); a line that is no JSON object gives a row of NULLs, so the Parquet file holds
    as many records as the JSON file has lines (and ingest quarantines that row)."""
    from transforms.sqlutil import ident, literal

    tree: dict = {}
    for column, field_path in source.columns.items():
        *parents, leaf = field_path.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SystemExit(f"{source.name}: {field_path} lies inside a mapped field")
        node[leaf] = (field_path, source.type_of(column) == "json")

    def value_sql(value: dict | tuple) -> str:
        if isinstance(value, dict):  # a struct of the fields below it
            return "struct_pack(" + ", ".join(f"{ident(k)} := {value_sql(v)}"
                                              for k, v in value.items()) + ")"
        field_path, is_json = value
        if is_json:
            return f"json_extract(line, {literal(_json_path(field_path))})::VARCHAR"
        return f"json_extract_string(line, {literal(_json_path(field_path))})"

    return ", ".join(f"case when ok then {value_sql(v)} end as {ident(k)}"
                     for k, v in tree.items())


def _jsonl_to_parquet(con, source, path: Path, out: Path) -> int:
    """One JSON-lines file as Parquet (`_jsonl_select`), its lines in file order; blank lines
    (nothing but spaces and tabs) are no record, as in ingest. Returns the rows written."""
    # (a line that is no JSON object is not parsed: NULL, however CASE is evaluated)
    lines = ("select case when ok then line end as line, ok from (select line, "
             "coalesce(json_valid(line) and starts_with(ltrim(line, ' ' || chr(9) || chr(13)), "
             "'{'), false) as ok "
             "from read_csv($file, columns = {'line': 'VARCHAR'}, delim = '\x01', "
             "quote = '', escape = '', header = false, auto_detect = false) "
             "where trim(line, ' ' || chr(9)) <> '')")
    from transforms.sqlutil import literal

    tmp = out.with_name(out.name + ".part")
    con.execute(f"copy (select {_jsonl_select(source)} from ({lines})) to {literal(str(tmp))} "
                "(format parquet, compression zstd)", {"file": str(path)})
    tmp.replace(out)
    return con.execute("select count(*) from read_parquet(?)", [str(out)]).fetchone()[0]


def _csv_to_parquet(source, path: Path, out: Path) -> int:
    """One CSV file as Parquet: one text column per header field, one row per record (blank
    lines are none); a record of another width than the header gives a row of NULLs (so the
    records stay as many, and ingest quarantines it). Returns the rows written."""
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq

    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=source.delimiter, quotechar=source.quote)
        header = [h.strip() for h in next(reader)]
        columns: list[list[str | None]] = [[] for _ in header]
        for row in reader:
            if len(row) <= 1 and "".join(row).strip(" \t") == "":
                continue
            values = row if len(row) == len(header) else [None] * len(header)
            for column, value in zip(columns, values, strict=True):
                column.append(value)
    table = pa.table({h: pa.array(c, pa.string()) for h, c in zip(header, columns, strict=True)})
    tmp = out.with_name(out.name + ".part")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(out)
    return table.num_rows


def to_parquet(root: Path, raw: Path, out: Path, drop_text: bool) -> dict[str, int] | None:
    """The text exports in `raw` (the sample config's sources) as Parquet files of the same
    names under `out` (`<source>/<day>.parquet`), unless there from the same exports; with
    `drop_text`, each text file is removed once converted (so the data never needs the disk
    twice over). Returns rows per source, or None when reused."""
    import duckdb

    from transforms.sources import load_config

    marker, params = out / "bench.json", json.loads((raw / "bench.json").read_text())
    if marker.exists() and json.loads(marker.read_text()) == params:
        return None
    shutil.rmtree(out, ignore_errors=True)
    sources = load_config(write_config(root, raw)).sources
    con = duckdb.connect()
    rows: dict[str, int] = {}
    try:
        for name, source in sources.items():
            (out / name).mkdir(parents=True, exist_ok=True)
            for path in source.files():
                target = out / name / (path.name.split(".")[0] + ".parquet")
                if source.format == "jsonl":
                    n = _jsonl_to_parquet(con, source, path, target)
                else:
                    n = _csv_to_parquet(source, path, target)
                rows[name] = rows.get(name, 0) + n
                if drop_text:
                    path.unlink()
    finally:
        con.close()
    if drop_text:
        (raw / "bench.json").unlink()
    marker.write_text(json.dumps(params))
    return rows


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
    from {clicks}
),
bookings as (
    select 'bookings' as source, customer_id as actor, 'booking_' || status as event,
           try_cast(changed_at as timestamptz) as ts, to_json(b) as record
    from {bookings} b
),
payments as (
    select 'payments' as source, booking_id as actor, 'payment_' || status as event,
           try_cast(created_at as timestamptz) as ts, to_json(p) as record
    from {payments} p
)
select * from (select * from clickstream union all select * from bookings
               union all select * from payments)
order by actor, ts
"""
FLOOR_TEXT = {
    "clicks": """read_json({clicks}, format = 'newline_delimited', ignore_errors = true,
                   columns = {{messageId: 'VARCHAR', anonymousId: 'VARCHAR',
                              userId: 'VARCHAR', event: 'VARCHAR', "timestamp": 'VARCHAR',
                              receivedAt: 'VARCHAR', context: 'JSON', properties: 'JSON'}})""",
    "bookings": "read_csv({bookings}, header = true, all_varchar = true, ignore_errors = true, "
                "union_by_name = true)",
    "payments": "read_csv({payments}, header = true, all_varchar = true, ignore_errors = true, "
                "union_by_name = true)",
}
# the Parquet files hold clickstream's properties as JSON text (`to_parquet`)
FLOOR_PARQUET = {
    "clicks": "(select * replace (properties::JSON as properties) "
              "from read_parquet({clicks}, union_by_name = true))",
    "bookings": "read_parquet({bookings}, union_by_name = true)",
    "payments": "read_parquet({payments}, union_by_name = true)",
}


def worker_floor(raw: Path, db: Path, input_format: str = "text") -> dict:
    import duckdb

    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    con.execute("SET TimeZone = 'UTC'")

    def files(src: str, ext: str) -> str:
        return "'" + str(raw / src / f"*.{ext}").replace("'", "''") + "'"

    if input_format == "parquet":
        globs = {"clicks": files("clickstream", "parquet"),
                 "bookings": files("bookings", "parquet"), "payments": files("payments", "parquet")}
        readers = FLOOR_PARQUET
    else:
        globs = {"clicks": files("clickstream", "jsonl"), "bookings": files("bookings", "csv"),
                 "payments": files("payments", "csv")}
        readers = FLOOR_TEXT
    con.execute(FLOOR_SQL.format(**{k: readers[k].format(**globs) for k in readers}))
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
    fmt = input_format(events, args.input_format)
    print(f"== {label}: {customers:,} customers over {args.days} days ({root}), "
          f"{fmt} input", flush=True)
    parquet = root / "raw-parquet"
    params = {"customers": customers, "days": args.days, "seed": SEED, "start": None}
    marker = parquet / "bench.json"
    if fmt == "parquet" and marker.exists() and json.loads(marker.read_text()) == params:
        print("   data: Parquet reused", flush=True)
    else:
        gen = generate_raw(raw, customers, args.days, None, root / "generate.log")
        print(f"   data: {f'generated in {gen.wall_s:.0f} s' if gen else 'reused'}", flush=True)
    if fmt == "parquet":
        started = time.monotonic()
        converted = to_parquet(root, raw, parquet, drop_text=events >= PARQUET_FROM)
        if converted is not None:
            print(f"   data: converted to Parquet in {time.monotonic() - started:.0f} s "
                  f"({', '.join(f'{k} {v:,} rows' for k, v in converted.items())})", flush=True)
        raw = parquet

    floor, out = measured_worker(_python("-m", "bench.suite", "--worker", "floor", "--raw",
                                         str(raw), "--db", str(root / "floor.duckdb"),
                                         "--input-format", fmt),
                                 root / "floor.log")
    if out is None:
        report.failures.append(f"{label} floor failed, see {floor.log}")
        floor = None
    else:
        report.rows.append(_row(label, "floor (DuckDB: read, union, sort)", floor, floor,
                                f"{out['rows']:,} rows"))
        (root / "floor.duckdb").unlink(missing_ok=True)

    config = write_config(root, raw, fmt)
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
    """The daily scenario: per history length, the history loaded once (kept as a snapshot of
    its warehouse and Dagster instance), then the next morning's run from that snapshot,
    `--daily-repeat` times, the lengths interleaved (30, 365, 30, 365, ...) so that a drift
    of the machine's speed touches each alike. A row per length gives the median CPU and wall
    of its runs (every run's CPU in the note), its ratio the median's to the shortest
    history's median; a row per step its median wall, against the shortest history's."""
    from pipelines.defs.ingest.schedules import refresh_range
    from transforms.project import load_project

    per_day = args.daily_customers_per_day
    # per history length: its folder, config, refreshed days, snapshot and warehouse
    ready: dict[int, tuple[Path, Path, dt.date, dt.date, Path, Path]] = {}
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
        ready[days] = (root, config, first, last, snapshot, warehouse)

    runs: dict[int, list[Measurement]] = {d: [] for d in ready}
    for k in range(args.daily_repeat):
        for days, (root, config, first, last, snapshot, warehouse) in ready.items():
            # the state right after the history run: its warehouse and its Dagster instance
            shutil.rmtree(root / "dagster_home", ignore_errors=True)
            shutil.copytree(root / "history_dagster_home", root / "dagster_home")
            warehouse.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(snapshot, warehouse)
            m = journeys_run(root, config, f"run_daily_{k + 1}.log", "--start",
                             first.isoformat(), "--end", last.isoformat(), fresh=False)
            if m.exit_code:
                report.failures.append(f"daily {days}d: daily run failed, see {m.log}")
                continue
            runs[days].append(m)

    def median(values: list[float]) -> float:
        return float(np.median(values)) if values else math.nan

    base_cpu = base_steps = None
    for days, ms in runs.items():
        if not ms:
            continue
        first, last = ready[days][2:4]
        cpu, wall = median([m.cpu_s for m in ms]), median([m.wall_s for m in ms])
        steps: dict[str, list[float]] = {}
        for m in ms:
            for st in run_steps(m.log.read_text()):
                steps.setdefault(st["step"], []).append(st["wall_s"])
        step_wall = {name: median(v) for name, v in steps.items()}
        if base_cpu is None:
            base_cpu, base_steps = cpu, step_wall
        label = f"daily {days}d"
        every = " / ".join(f"{m.cpu_s:.1f}" for m in ms)
        report.rows.append(Row(
            label, f"daily run after {days} days ({first} … {last})", round(cpu, 2),
            round(wall, 2), round(max(m.peak_rss_mib for m in ms)),
            note=f"{cpu / base_cpu:.2f}x the {min(runs)}-day run (median CPU of {len(ms)} "
                 f"runs: {every})"))
        for name, w in step_wall.items():
            was = base_steps.get(name)
            report.rows.append(Row(label, f"  step {name}", None, round(w, 2), None,
                                   note=f"{min(runs)}-day run: {was:.1f} s" if was is not None
                                   and days != min(runs) else ""))


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
    p.add_argument("--daily-repeat", type=int, default=3,
                   help="runs of each daily scenario, interleaved; the table shows medians")
    p.add_argument("--no-replay", action="store_true",
                   help="skip token replay in the mining comparison (both sides)")
    p.add_argument("--input-format", choices=INPUT_FORMATS, default=None,
                   help="raw files as the generator writes them (text: JSON lines and CSV) or "
                        "converted to Parquet (same records; the floor reads them too); "
                        f"default text, parquet from {PARQUET_FROM:,} events on")
    p.add_argument("--worker", choices=["floor"], help=argparse.SUPPRESS)
    p.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker == "floor":
        print(json.dumps(worker_floor(args.raw, args.db, args.input_format or "text")),
              flush=True)
        return 0

    labels = args.size or ["1m", "10m"]
    try:
        sizes = [(label, parse_size(label)) for label in labels]
        daily = [int(d) for d in args.daily_days.split(",") if d.strip()]
    except (argparse.ArgumentTypeError, ValueError) as exc:
        p.error(str(exc))
    if args.daily_repeat < 1:
        p.error(f"--daily-repeat {args.daily_repeat}: at least 1 run per history length")
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
