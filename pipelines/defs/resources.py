"""Resources and executor for every asset, from the selected project config."""

from __future__ import annotations

import os

import dagster as dg

from pipelines.project import project_config
from pipelines.resources import Progress, Warehouse


@dg.definitions
def resources() -> dg.Definitions:
    cfg = project_config()
    return dg.Definitions(
        resources={
            "warehouse": Warehouse(
                database=str(cfg.warehouse),
                sources=str(cfg.path),
                journey_map=str(cfg.journey_map),
                output_dir=str(cfg.output_dir),
            ),
            "progress": Progress(echo=os.environ.get("JOURNEYS_PROGRESS") == "1"),
        },
        # DuckDB has one writer: run steps one after another in the run's process
        executor=dg.in_process_executor,
    )
