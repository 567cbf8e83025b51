"""Daily partitions (UTC days of event time), starting at the project's first data day."""

from __future__ import annotations

import dagster as dg

from pipelines.project import project_config

daily = dg.DailyPartitionsDefinition(
    start_date=project_config().first_partition().isoformat(), timezone="UTC", end_offset=1
)
