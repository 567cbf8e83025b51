"""Which project config this process works on, and its Dagster home.

`JOURNEYS_CONFIG` names the project config (sources.yaml); the sample's is the default. The
Dagster instance (run history shown by `journeys ui`) lives next to the warehouse, so
`journeys run` and `journeys ui` on the same config share it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from transforms.sources import ProjectConfig, load_config

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
"""


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV, str(SAMPLE_CONFIG))).expanduser().resolve()


@functools.lru_cache(maxsize=8)
def _load(path: str) -> ProjectConfig:
    return load_config(path)


def project_config() -> ProjectConfig:
    return _load(str(config_path()))


def use_config(path: str | Path | None) -> ProjectConfig:
    """Select the project config for this process (validating it) and return it."""
    if path is not None:
        os.environ[CONFIG_ENV] = str(Path(path).expanduser().resolve())
    return project_config()


def dagster_home(cfg: ProjectConfig) -> Path:
    """DAGSTER_HOME for this project: `DAGSTER_HOME` if set, else beside the warehouse."""
    home = Path(os.environ.get("DAGSTER_HOME") or cfg.warehouse.parent / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    yaml_path = home / "dagster.yaml"
    if not yaml_path.exists():
        yaml_path.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home
