"""Resources shared by every asset: the project (config read once) and progress reporting."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
import duckdb
from pydantic import PrivateAttr

from transforms import warehouse
from transforms.journey_map import JourneyMap
from transforms.project import Project, load_project
from transforms.sources import ProjectConfig


class ProjectResource(dg.ConfigurableResource):
    """The project: `config_path` names its sources.yaml, which names the journey map, the
    warehouse (a DuckDB file) and the output folder. Both files are parsed and validated once
    per run, when the run starts, and every asset reads the same parse."""

    config_path: str
    _project: Project | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._project = load_project(self.config_path)

    @property
    def project(self) -> Project:
        if self._project is None:  # used outside a run (tests, scripts)
            self._project = load_project(self.config_path)
        return self._project

    @property
    def config(self) -> ProjectConfig:
        return self.project.config

    @property
    def journey_map(self) -> JourneyMap:
        return self.project.journey_map

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """The warehouse on the project's engine (`engine:`, DuckDB by default), holding its
        lock: concurrent runs wait here, never fail."""
        log = dg.get_dagster_logger()
        with warehouse.open_engine(self.config, read_only=read_only, on_wait=log.info) as con:
            yield con


class Progress(dg.ConfigurableResource):
    """Where assets report progress: the run log, and the terminal when `echo` is on
    (`journeys run` turns it on). `report` lines (a summary per asset) are logged and echoed
    always, `detail` lines (one per partition day) only when `verbose` is on (`--verbose`)."""

    echo: bool = False
    verbose: bool = False

    def report(self, context: dg.AssetExecutionContext, line: str) -> None:
        context.log.info(line)
        if self.echo:
            from pipelines.progress import echo

            echo(line)

    def detail(self, context: dg.AssetExecutionContext, line: str) -> None:
        # one line per partition day: a run over years of days would spend its time writing
        # thousands of log events, so they are written only when asked for
        if not self.verbose:
            return
        context.log.info(line)
        if self.echo:
            from pipelines.progress import echo

            echo(line)
