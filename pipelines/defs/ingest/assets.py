"""Ingestion assets: one daily-partitioned raw table per configured source, and `events`.

Built per project by `build_ingest_defs`: the sources, their names and the partitions come from
the project's sources.yaml, so adding a source is a config edit.
"""


import datetime as dt
import time
from pathlib import Path

import dagster as dg

from pipelines.defs.journeys.assets import KINDS, on_engine
from pipelines.resources import Progress, ProjectResource
from transforms import dashboard_tables, ingest
from transforms.events import build_events, distinct_raw_records
from transforms.project import Project
from transforms.sources import ProjectConfig


def daily_partitions(cfg: ProjectConfig) -> dg.DailyPartitionsDefinition:
    """Daily partitions (UTC days of event time) from the project's first data day."""
    return dg.DailyPartitionsDefinition(start_date=cfg.first_partition().isoformat(),
                                        timezone="UTC", end_offset=1)


def _days(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date]:
    window = context.partition_time_window
    return window.start.date(), (window.end - dt.timedelta(days=1)).date()


def rejected_summary(rejected: list[tuple[str, int, str]], limit: int = 5) -> str:
    """One line naming the rejected files and why: `2 files rejected: a.csv (a directory,
    not a file); ...` ('' when none)."""
    if not rejected:
        return ""
    shown = "; ".join(f"{Path(f).name} ({why})" for f, _, why in rejected[:limit])
    more = f"; … {len(rejected) - limit} more" if len(rejected) > limit else ""
    return (f"{len(rejected)} file{'s' if len(rejected) != 1 else ''} rejected "
            f"(see rejected_files): {shown}{more}")


def outside_summary(outside: list[tuple[dt.date, int]]) -> str:
    """One line on rows kept aside as outside a run's range ('' when none)."""
    if not outside:
        return ""
    rows = sum(n for _, n in outside)
    days = ", ".join(f"{d} ({n:,})" for d, n in outside[:5]) + (" …" if len(outside) > 5 else "")
    return (f"{rows:,} row{'s' if rows != 1 else ''} of the files read belong to days outside "
            f"the loaded range, not loaded yet (quarantine kind 'outside_range'): {days}; "
            "run those days to load them")


def _files_table(rejected: list[tuple[str, int, str]]) -> dg.MetadataValue:
    rows = "\n".join(f"| {Path(f).name} | {n:,} | {why} |" for f, n, why in rejected[:50])
    return dg.MetadataValue.md("| file | rows | reason |\n|---|---|---|\n" + rows
                               if rows else "none")


def _metadata(stats: list[ingest.PartitionStats], first: dt.date, last: dt.date,
              started: float, rejected: list[tuple[str, int, str]],
              outside: list[tuple[dt.date, int]]) -> dict:
    reasons: dict[str, int] = {}
    for s in stats:
        for why, n in s.reasons.items():
            reasons[why] = reasons.get(why, 0) + n
    table = "\n".join(f"| {why} | {n:,} |" for why, n in sorted(reasons.items(),
                                                               key=lambda kv: -kv[1]))
    return {
        "dagster/row_count": sum(s.rows_loaded for s in stats),
        "range_rows_read": sum(s.rows_read for s in stats),
        "range_rows_loaded": sum(s.rows_loaded for s in stats),
        "range_rows_quarantined": sum(s.rows_quarantined for s in stats),
        "range_rows_duplicate": sum(s.rows_duplicate for s in stats),
        "rows_read": sum(s.rows_read for s in stats),
        "rows_loaded": sum(s.rows_loaded for s in stats),
        "rows_quarantined": sum(s.rows_quarantined for s in stats),
        "rows_duplicate": sum(s.rows_duplicate for s in stats),
        "clock_skew_corrected": sum(s.clock_skew_corrected for s in stats),
        "partitions": f"{first} … {last}",
        "quarantine_reasons": dg.MetadataValue.md(
            "| reason | rows |\n|---|---|\n" + table if table else "none"),
        # built on partial data when a file was rejected (all files of the source, all runs)
        "files_rejected": len(rejected),
        "rows_in_rejected_files": sum(n for _, n, _ in rejected),
        "rejected_files": _files_table(rejected),
        "rows_outside_range": sum(n for _, n in outside),
        "seconds": round(time.monotonic() - started, 2),
    }


def partition_metadata(s: ingest.PartitionStats) -> dict:
    """The metadata of one partition's materialisation: that day's own counts (a run over a
    range loads it in one pass and gives each day its figures, not the range's)."""
    return {
        "dagster/row_count": s.rows_loaded,
        "rows_read": s.rows_read,
        "rows_loaded": s.rows_loaded,
        "rows_quarantined": s.rows_quarantined,
        "rows_duplicate": s.rows_duplicate,
        "clock_skew_corrected": s.clock_skew_corrected,
        "quarantine_reasons": ", ".join(f"{why} ({n:,})" for why, n in sorted(
            s.reasons.items(), key=lambda kv: (-kv[1], kv[0]))) or "none",
    }


def raw_asset(name: str, partitions: dg.PartitionsDefinition
              ) -> tuple[dg.AssetsDefinition, dg.AssetChecksDefinition]:
    """The `raw_<name>` asset of one source and its blocking reconciliation check. Its
    materialisation of each partition day carries that day's counts (`partition_metadata`) and
    the load's: `range_rows_read` … over the range loaded, and when it is built on partial data:
    `files_rejected`,
    `rows_in_rejected_files` and the `rejected_files` table (every file of the source the
    glob matches but no load could read), and `rows_outside_range` (rows read that belong to
    days outside the loaded range); the run log says it in a warning line."""

    @dg.asset(
        name=f"raw_{name}",
        group_name="ingest",
        kinds=KINDS,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=(
            f"One row per {name} record loaded from the export files, typed and validated, for "
            "the UTC day of its event time. Rejected and duplicate rows go to `quarantine` with "
            "their reason; `ingest_reconciliation` holds read = loaded + quarantined + "
            "duplicates per day. A file that cannot be read is rejected alone "
            "(`rejected_files`) and the others load; `files_rejected` > 0 in the "
            "materialisation means this table is built on partial data."
        ),
    )
    def _asset(context: dg.AssetExecutionContext, project: ProjectResource,
               progress: Progress) -> dg.MaterializeResult:
        source = project.config.sources[name]
        first, last = _days(context)
        started = time.monotonic()

        def line(s: ingest.PartitionStats) -> None:
            if s.rows_read == 0:
                return  # no rows for that day: said once in the closing line below
            progress.detail(context, f"  raw_{name:<12} {s.partition_date}  "
                            f"read {s.rows_read:>9,}  loaded {s.rows_loaded:>9,}  "
                            f"quarantined {s.rows_quarantined:>6,}  "
                            f"duplicates {s.rows_duplicate:>6,}")

        with project.connect() as con:
            stats = ingest.load_range(con, source, first, last, on_partition=line)
            rejected = ingest.rejected_files(con, source)
            outside = ingest.outside_range_rows(con, source)
        empty = sum(1 for s in stats if s.rows_read == 0)
        days = [s.partition_date for s in stats if s.rows_read]  # the days holding rows
        if days:
            summary = (f"{days[0]} … {days[-1]}: {ingest.describe(stats)} "
                       f"({len(stats)} partitions, {empty} without rows)")
        else:
            summary = f"no rows in {len(stats)} partitions {first} … {last}"
        progress.report(context, f"  raw_{name:<12} {summary}")
        for warning in (rejected_summary(rejected), outside_summary(outside)):
            if warning:
                progress.report(context, f"  raw_{name:<12} warning: {warning}")
        if context.has_partition_key_range or context.has_partition_key:
            for s in stats:
                context.add_asset_metadata(partition_metadata(s),
                                           partition_key=s.partition_date.isoformat())
        return dg.MaterializeResult(
            metadata=_metadata(stats, first, last, started, rejected, outside))

    @dg.asset_check(asset=_asset, blocking=True, name="reconciles",
                    description="rows read = loaded + quarantined + duplicates for every day, "
                    "and the raw and quarantine tables hold exactly those counts")
    def _check(project: ProjectResource) -> dg.AssetCheckResult:
        source = project.config.sources[name]
        with project.connect() as con:
            problems = ingest.reconciliation_problems(con, source)
        return dg.AssetCheckResult(
            passed=not problems,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems[:50])
                                                      or "none")},
        )

    return _asset, _check


def events_asset(raw: list[dg.AssetsDefinition]
                 ) -> tuple[dg.AssetsDefinition, dg.AssetChecksDefinition]:
    """The unified `events` asset over the raw tables of the event sources, and its check."""

    @dg.asset(name="events", group_name="ingest", kinds=KINDS, deps=raw)
    def events(project: ProjectResource) -> dg.MaterializeResult:
        """One row per loaded source event, all event sources, on one stitched customer id.

        Anonymous ids are linked to the customer once any record carries both ids
        (`identity_map`); sources with a lookup take their customer from another source's
        record (payments from their booking). Rules: transforms/events.py."""
        started = time.monotonic()
        with project.connect() as con:
            stats = build_events(con, project.config)
            # built on partial data when a source's file was rejected
            rejected = [r for n in project.project.event_sources
                        for r in ingest.rejected_files(con, project.config.sources[n])]
        return dg.MaterializeResult(metadata={
            "files_rejected": len(rejected),
            "partial_data": rejected_summary(rejected) or "no: every file of every source read",
            "dagster/row_count": stats.events,
            "customers": stats.customers,
            "identified_customers": stats.identified_customers,
            "anonymous_ids_linked": stats.anonymous_ids_linked,
            "shared_devices": stats.shared_devices,
            "events_without_customer": stats.without_customer,
            **{f"events_{k}": v for k, v in stats.by_source.items()},
            "seconds": round(time.monotonic() - started, 2),
        })

    @dg.asset_check(asset=events, blocking=True, name="events_complete",
                    description="event ids are unique and every loaded raw record identity "
                    "is in events once")
    def events_complete(project: ProjectResource) -> dg.AssetCheckResult:
        with project.connect() as con:
            n, distinct = con.execute("select count(*), count(distinct event_id) from events"
                                      ).fetchone()
            raw_records = distinct_raw_records(con, project.config)
        return dg.AssetCheckResult(passed=n == distinct == raw_records,
                                   metadata={"events": n, "distinct_ids": distinct,
                                             "distinct_raw_records": raw_records})

    return events, events_complete


def source_summary_asset(raw: list[dg.AssetsDefinition]) -> dg.AssetsDefinition:
    @dg.asset(name="source_summary", group_name="ingest", kinds=KINDS,
              deps=[*raw, dg.AssetKey("events")])
    def source_summary(project: ProjectResource) -> dg.MaterializeResult:
        """One row per source: events, freshness (latest event, latest file, last load) and the
        reconciliation totals over all days."""
        with project.connect() as con:
            n = dashboard_tables.build_source_summary(con)
        return dg.MaterializeResult(metadata={"dagster/row_count": n})

    return source_summary


def build_ingest_defs(project: Project, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    """Raw assets (and checks) for every configured source, `events` and `source_summary`."""
    assets, checks = [], []
    for name in project.config.sources:
        asset, check = raw_asset(name, partitions)
        assets.append(asset)
        checks.append(check)
    events, events_check = events_asset(
        [a for a, n in zip(assets, project.config.sources, strict=True)
         if n in project.event_sources])
    return dg.Definitions(assets=on_engine(project.config.engine,
                                           [*assets, events, source_summary_asset(assets)]),
                          asset_checks=[*checks, events_check])
