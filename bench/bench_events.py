"""CPU and wall seconds of rebuilding `events` from a warehouse's raw tables (not a test).

    .venv/bin/python -m bench.bench_events --config DIR/sources.yaml --warehouse W.duckdb

Works on a copy of the warehouse (the original is left as it is), e.g. the one
`python -m bench.suite --size 1m` leaves in WORKDIR/1m/warehouse/journeys.duckdb.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from transforms.events import build_events
from transforms.project import load_project


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="the project's sources.yaml")
    p.add_argument("--warehouse", required=True, help="a warehouse holding the raw tables")
    p.add_argument("--memory", default="4GB", help="DuckDB memory_limit (default 4GB)")
    args = p.parse_args()
    cfg = load_project(args.config).config
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "w.duckdb"
        shutil.copyfile(args.warehouse, copy)
        con = duckdb.connect(str(copy))
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET memory_limit = ?", [args.memory])
        wall, cpu = time.perf_counter(), time.process_time()
        stats = build_events(con, cfg)
        print(f"events: {stats.events:,} of {stats.customers:,} customers; "
              f"wall {time.perf_counter() - wall:.1f} s, CPU {time.process_time() - cpu:.1f} s")
        con.close()


if __name__ == "__main__":
    main()
