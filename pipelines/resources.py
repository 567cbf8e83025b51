"""Resources shared by every asset: where the configs are and how to reach the warehouse."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb

from transforms import warehouse

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCES = PROJECT_ROOT / "data" / "sample" / "sources.yaml"
DEFAULT_JOURNEY_MAP = PROJECT_ROOT / "data" / "sample" / "journey_map.yaml"


def default_sources_path() -> str:
    return os.environ.get("JOURNEYS_SOURCES", str(DEFAULT_SOURCES))


def default_journey_map_path() -> str:
    return os.environ.get("JOURNEYS_JOURNEY_MAP", str(DEFAULT_JOURNEY_MAP))


class Warehouse(dg.ConfigurableResource):
    """The DuckDB warehouse file plus the config files that say what goes in it.

    `database`: path of the DuckDB file. `sources`: the source definitions (YAML).
    `journey_map`: stages and rules (YAML). `output_dir`: where dashboards and model exports go.
    """

    database: str
    sources: str
    journey_map: str
    output_dir: str

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection holding the warehouse lock: concurrent runs wait here, never fail."""
        log = dg.get_dagster_logger()
        with warehouse.connect(self.database, read_only=read_only, on_wait=log.info) as con:
            yield con
