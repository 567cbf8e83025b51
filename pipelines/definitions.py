"""Dagster definitions, built per project: one folder per domain under pipelines/defs/.

`build_defs(project)` assembles the asset graph for one project (its sources give the raw
assets, its data range the partitions). `journeys run` calls it in-process with the project it
has loaded; `defs` below is the code location `journeys ui` serves in its own process, told the
config through `JOURNEYS_CONFIG` by the `journeys ui` command (the only reader of it).
"""

from __future__ import annotations

import os

import dagster as dg

from pipelines.defs.dashboards.assets import dashboard_asset
from pipelines.defs.ingest.assets import build_ingest_defs, daily_partitions
from pipelines.defs.ingest.schedules import build_schedule_defs
from pipelines.defs.journeys import assets as journey_assets
from pipelines.defs.metrics import assets as metric_assets
from pipelines.defs.metrics import summaries as summary_assets
from pipelines.defs.mining import assets as mining_assets
from pipelines.project import CONFIG_ENV, config_path
from pipelines.resources import Progress, ProjectResource
from transforms.project import Project, load_project


def build_defs(project: Project, *, echo: bool = False,
               verbose: bool = False) -> dg.Definitions:
    """The whole asset graph, checks, job and schedule of `project`."""
    partitions = daily_partitions(project.config)
    raw_tables = [f"raw_{name}" for name in project.config.sources]
    domain = dg.Definitions(
        assets=[
            *journey_assets.on_engine(project.config.engine, dg.load_assets_from_modules(
                [journey_assets, metric_assets, summary_assets, mining_assets])),
            dashboard_asset(raw_tables),
        ],
        asset_checks=dg.load_asset_checks_from_modules([journey_assets, metric_assets]),
        resources={
            "project": ProjectResource(config_path=str(project.config.path)),
            "progress": Progress(echo=echo, verbose=verbose),
        },
        # one step after another in the run's process: DuckDB has one writer, and on Spark
        # each write replaces a whole table (parallel steps on one table would lose rows);
        # Spark parallelises inside each statement instead
        executor=dg.in_process_executor,
    )
    return dg.Definitions.merge(build_ingest_defs(project, partitions),
                                build_schedule_defs(project), domain)


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs(load_project(config_path(os.environ.get(CONFIG_ENV))))
