"""Ingestion assets: one daily-partitioned raw table per source, and the unified events table."""

import datetime as dt
import time

import dagster as dg

from pipelines.partitions import daily
from pipelines.resources import Progress, Warehouse
from transforms import ingest
from transforms.events import build_events
from transforms.sources import load_config

SOURCES = ("clickstream", "bookings", "payments")


def _days(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date]:
    window = context.partition_time_window
    return window.start.date(), (window.end - dt.timedelta(days=1)).date()


def _raw_asset(name: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"raw_{name}",
        group_name="ingest",
        kinds={"duckdb"},
        partitions_def=daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=(
            f"One row per {name} record loaded from the export files, typed and validated, for "
            "the UTC day of its event time. Rejected and duplicate rows go to `quarantine` with "
            "their reason; `ingest_reconciliation` holds read = loaded + quarantined + "
            "duplicates per day."
        ),
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: Warehouse,
               progress: Progress) -> dg.MaterializeResult:
        source = load_config(warehouse.sources).sources[name]
        first, last = _days(context)
        started = time.monotonic()

        def line(s: ingest.PartitionStats) -> None:
            if s.rows_read == 0:
                return  # no rows for that day: said once in the closing line below
            progress.report(context, f"  raw_{name:<12} {s.partition_date}  "
                            f"read {s.rows_read:>9,}  loaded {s.rows_loaded:>9,}  "
                            f"quarantined {s.rows_quarantined:>6,}  "
                            f"duplicates {s.rows_duplicate:>6,}")

        with warehouse.connect() as con:
            stats = ingest.load_range(con, source, first, last, on_partition=line)
        empty = sum(1 for s in stats if s.rows_read == 0)
        progress.report(context, f"  raw_{name:<12} {len(stats)} partitions {first} … {last}, "
                        f"{empty} without rows, {ingest.describe(stats)}")
        reasons: dict[str, int] = {}
        for s in stats:
            for why, n in s.reasons.items():
                reasons[why] = reasons.get(why, 0) + n
        table = "\n".join(f"| {why} | {n:,} |" for why, n in sorted(reasons.items(),
                                                                   key=lambda kv: -kv[1]))
        return dg.MaterializeResult(metadata={
            "dagster/row_count": sum(s.rows_loaded for s in stats),
            "rows_read": sum(s.rows_read for s in stats),
            "rows_loaded": sum(s.rows_loaded for s in stats),
            "rows_quarantined": sum(s.rows_quarantined for s in stats),
            "rows_duplicate": sum(s.rows_duplicate for s in stats),
            "clock_skew_corrected": sum(s.clock_skew_corrected for s in stats),
            "partitions": f"{first} … {last}",
            "quarantine_reasons": dg.MetadataValue.md(
                "| reason | rows |\n|---|---|\n" + table if table else "none"),
            "seconds": round(time.monotonic() - started, 2),
        })

    @dg.asset_check(asset=_asset, blocking=True, name="reconciles",
                    description="rows read = loaded + quarantined + duplicates for every day, "
                    "and the raw and quarantine tables hold exactly those counts")
    def _check(warehouse: Warehouse) -> dg.AssetCheckResult:
        source = load_config(warehouse.sources).sources[name]
        with warehouse.connect() as con:
            problems = ingest.reconciliation_problems(con, source)
        return dg.AssetCheckResult(
            passed=not problems,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems[:50])
                                                      or "none")},
        )

    return _asset, _check


raw_clickstream, raw_clickstream_reconciles = _raw_asset("clickstream")
raw_bookings, raw_bookings_reconciles = _raw_asset("bookings")
raw_payments, raw_payments_reconciles = _raw_asset("payments")


@dg.asset(
    group_name="ingest",
    kinds={"duckdb"},
    deps=[raw_clickstream, raw_bookings, raw_payments],
)
def events(warehouse: Warehouse) -> dg.MaterializeResult:
    """One row per loaded source event, all sources, on one stitched customer id.

    Anonymous clickstream ids are linked to the customer once any event carries both ids
    (`identity_map`); bookings carry the customer; payments take their booking's customer.
    """
    started = time.monotonic()
    with warehouse.connect() as con:
        stats = build_events(con)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": stats.events,
        "customers": stats.customers,
        "identified_customers": stats.identified_customers,
        "anonymous_ids_linked": stats.anonymous_ids_linked,
        "shared_devices": stats.shared_devices,
        "orphan_payments": stats.orphan_payments,
        **{f"events_{k}": v for k, v in stats.by_source.items()},
        "seconds": round(time.monotonic() - started, 2),
    })


@dg.asset_check(asset=events, blocking=True,
                description="event ids are unique and every loaded raw row is in events once")
def events_complete(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        n, distinct = con.execute("select count(*), count(distinct event_id) from events"
                                  ).fetchone()
        raw = con.execute("""
            select (select count(distinct event_id) from raw_clickstream)
                 + (select count(distinct (booking_id, status)) from raw_bookings)
                 + (select count(distinct (payment_id, status)) from raw_payments)""").fetchone()[0]
    return dg.AssetCheckResult(passed=n == distinct == raw,
                               metadata={"events": n, "distinct_ids": distinct,
                                         "distinct_raw_records": raw})
