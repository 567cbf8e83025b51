"""The summary `journeys run` prints: what was loaded, what was kept aside, where things are."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from transforms import warehouse
from transforms.sources import ProjectConfig
from transforms.tables import list_tables


def print_summary(cfg: ProjectConfig, first: dt.date, last: dt.date, elapsed: float,
                  home: Path, run_id: str) -> None:
    print(f"\nDone in {elapsed:.1f} s (run {run_id[:8]}).")
    if not cfg.warehouse.exists() and not cfg.spark.database:
        return
    with warehouse.open_engine(cfg, read_only=True) as con:
        tables = list_tables(con)
        if "ingest_reconciliation" in tables:
            rows = con.execute("""
                select source, sum(rows_read), sum(rows_loaded), sum(rows_quarantined),
                       sum(rows_duplicate), sum(clock_skew_corrected)
                from ingest_reconciliation where partition_date between ? and ?
                group by source order by source""", [first, last]).fetchall()
            print(f"\n{'source':<12} {'read':>12} {'loaded':>12} {'quarantined':>12} "
                  f"{'duplicates':>11} {'skew fixed':>11}")
            for src, read, loaded, quar, dup, skew in rows:
                print(f"{src:<12} {read:>12,} {loaded:>12,} {quar:>12,} {dup:>11,} {skew:>11,}")
            reasons = con.execute("""
                select regexp_replace(reason, ':.*$', '') as why, count(*) as n
                from quarantine where partition_date between ? and ? and kind = 'rejected'
                group by why order by n desc, why limit 5""", [first, last]).fetchall()
            if reasons:
                print("top quarantine reasons: " + "; ".join(f"{w} ({n:,})" for w, n in reasons))
        if "events" in tables:
            n, customers = con.execute(
                "select count(*), count(distinct customer_id) from events").fetchone()
            print(f"events: {n:,} events of {customers:,} customers")
    print(f"\nwarehouse:  {cfg.warehouse}")
    print("quarantine: table `quarantine` in the warehouse (reason, file, line, raw record)")
    print(f"run history: {home} (open it with `journeys ui`)")
    models = cfg.output_dir / "models"
    if models.exists():
        print(f"models:     {models}")
    dashboard = cfg.output_dir / "dashboard" / "index.html"
    if dashboard.exists():
        print(f"dashboard:  {dashboard}")
