"""Resources shared by every asset: where the configs are and how to reach the warehouse."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
import duckdb

from transforms import warehouse


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


class Progress(dg.ConfigurableResource):
    """Where assets report progress: the run log, and the terminal when `echo` is on
    (`journeys run` turns it on so a user sees a line per asset and partition)."""

    echo: bool = False

    def report(self, context: dg.AssetExecutionContext, line: str) -> None:
        context.log.info(line)
        if self.echo:
            print(line, flush=True)
