"""Cost of a long history in one file: `journeys run` on an orders export spanning many days
(not a test). Ingest should grow with rows, not with the number of daily partitions.

    .venv/bin/python bench/bench_history.py --rows 135000 --days 548 [--workdir DIR]

Writes one tab-separated orders file (no date in its name, YYYYMMDD dates), a one-source config
and a Purchase -> Repeat journey map, runs the whole pipeline in its own process and prints
wall seconds, CPU seconds and peak resident memory, and the raw step's own time from the run's
progress lines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import re
import tempfile
from pathlib import Path

from bench_pipeline import JOURNEYS, measure_cpu

CONFIG = """\
warehouse: warehouse/journeys.duckdb
journey_map: journey_map.yaml
output_dir: output
currency: EUR
events:
  columns: {order_id: string, amount: decimal}
sources:
  orders:
    path: history.tsv
    format: tsv
    columns: {order_id: order_id, customer: customer, date: date, amount: amount}
    types: {date: timestamp, amount: decimal}
    time_format: "%Y%m%d"
    required: [order_id, customer, date]
    event_time: date
    id_columns: [order_id]
    event:
      event_name: {default: order_placed}
      customer: customer
      columns: {order_id: order_id, amount: amount}
"""
MAP = """\
version: 1
conversion_window: 30d
conversion_stage: Purchase
stages:
  - {name: Purchase, rules: [{source: orders}]}
  - {name: Repeat, rules: [{repeat_of: Purchase, distinct_by: order_id}]}
purchase: {event: {source: orders}, key: order_id}
repeat_horizons: [30, 90, 180]
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=135_000)
    p.add_argument("--days", type=int, default=548)
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench_history_"))
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(5)
    start = dt.date(2023, 1, 1)
    with (root / "history.tsv").open("w") as fh:
        fh.write("order_id\tcustomer\tdate\tamount\n")
        for n in range(args.rows):
            day = start + dt.timedelta(days=rng.randrange(args.days))
            fh.write(f"o{n}\tc{rng.randrange(args.rows // 4 + 1)}\t{day:%Y%m%d}\t"
                     f"{rng.randint(100, 9999) / 100:.2f}\n")
    (root / "sources.yaml").write_text(CONFIG)
    (root / "journey_map.yaml").write_text(MAP)
    log = root / "run.log"
    command = [str(JOURNEYS), "run", "--config", str(root / "sources.yaml")]
    wall, cpu, rss, code = measure_cpu(command, log,
                                       env={"DAGSTER_HOME": str(root / "dagster_home")})
    raw = re.search(r"raw_orders\s+[\d,]+ partitions\s+took\s+([\d.]+) s", log.read_text())
    print(f"history: {args.rows:,} rows over {args.days} days in one file ({root})")
    print(f"journeys run: exit {code}, wall {wall:.1f} s, CPU {cpu:.1f} s, peak RSS "
          f"{rss:.0f} MiB; raw step {raw.group(1) if raw else '?'} s")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
