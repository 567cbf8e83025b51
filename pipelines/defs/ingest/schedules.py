"""The daily refresh: yesterday's partitions plus the days whose late rows may still arrive."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from transforms.project import Project

daily_refresh = dg.define_asset_job(
    "daily_refresh",
    selection=dg.AssetSelection.all(),
    description="Reload the recent daily partitions of every source, then rebuild events, "
    "journeys, metrics, mining and the dashboard.",
)


def refresh_range(scheduled_day: dt.date, late_days: int) -> tuple[dt.date, dt.date]:
    """Partitions a run on `scheduled_day` reloads: yesterday and `late_days` days before."""
    last = scheduled_day - dt.timedelta(days=1)
    return last - dt.timedelta(days=late_days), last


def build_schedule_defs(project: Project) -> dg.Definitions:
    cfg = project.config
    late = max(s.late_days for s in cfg.sources.values())
    first_partition = cfg.first_partition()

    @dg.schedule(
        job=daily_refresh,
        cron_schedule=f"0 {cfg.schedule_hour_utc} * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Every day at schedule.hour_utc (sources.yaml): reload yesterday's "
        "partitions and the late_days before them (late rows), then everything downstream.",
    )
    def daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        first, last = refresh_range(context.scheduled_execution_time.date(), late)
        first = max(first, first_partition)
        return dg.RunRequest(
            run_key=f"daily-{last.isoformat()}",
            tags={
                "dagster/asset_partition_range_start": first.isoformat(),
                "dagster/asset_partition_range_end": last.isoformat(),
            },
        )

    return dg.Definitions(jobs=[daily_refresh], schedules=[daily_schedule])
