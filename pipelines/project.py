"""Where the project config is, and the project's Dagster home.

The sample's sources.yaml is the default config. The Dagster instance (run history shown by
`journeys ui`) lives next to the warehouse, so `journeys run` and `journeys ui` on the same
config share it. `CONFIG_ENV` is read in one place only: the code location that `journeys ui`
starts in its own process (pipelines/definitions.py), which has no other way to be told.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from transforms.sources import ProjectConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CONFIG = PROJECT_ROOT / "data" / "sample" / "sources.yaml"
CONFIG_ENV = "JOURNEYS_CONFIG"

DAGSTER_YAML = """\
# Written by `journeys`. DuckDB has a single writer: queued runs go one at a time (runs started
# another way still wait for the warehouse lock rather than fail).
run_queue:
  max_concurrent_runs: 1
telemetry:
  enabled: false
# One event-log database for all runs: a run over years of daily partitions records thousands
# of events, and the default (one SQLite file per run, a connection per event) makes that
# bookkeeping cost more than the load itself (1,452 days of a 21k-event log: 62 s -> 26 s);
# pipelines/event_log.py also reuses one connection per process instead of one per event.
event_log_storage:
  module: pipelines.event_log
  class: PooledSqliteEventLogStorage
  config:
    base_dir: {history}
"""


def config_path(path: str | Path | None = None) -> Path:
    """The project config to use: `path` if given, else the committed sample's."""
    return Path(path or SAMPLE_CONFIG).expanduser().resolve()


def dagster_home(cfg: ProjectConfig) -> Path:
    """DAGSTER_HOME for this project: `DAGSTER_HOME` if set, else beside the warehouse."""
    home = Path(os.environ.get("DAGSTER_HOME") or cfg.warehouse.parent / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    yaml_path = home / "dagster.yaml"
    if not yaml_path.exists():
        # a JSON string is a YAML string: any folder name stays one value
        yaml_path.write_text(DAGSTER_YAML.format(history=json.dumps(str(home / "history"))))
    os.environ["DAGSTER_HOME"] = str(home)
    return home
