"""One real `journeys run` on the committed sample, shared by the end-to-end tests.

It runs the installed CLI in a subprocess, exactly as a user would, on a copy of the sample config
that points at the committed exports and keeps the warehouse and outputs in a temporary folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, SAMPLE_CONFIG


@dataclass
class SampleRun:
    config: Path
    warehouse: Path
    output_dir: Path
    stdout: str
    stderr: str
    returncode: int
    ground_truth: dict


def sample_config(root: Path) -> Path:
    """The sample's sources.yaml with absolute paths, writing into `root`."""
    text = SAMPLE_CONFIG.read_text()
    sample = SAMPLE_CONFIG.parent
    text = text.replace("warehouse: ../../warehouse/journeys.duckdb",
                        f"warehouse: {root / 'warehouse' / 'journeys.duckdb'}")
    text = text.replace("output_dir: ../../output", f"output_dir: {root / 'output'}")
    text = text.replace("journey_map: journey_map.yaml",
                        f"journey_map: {sample / 'journey_map.yaml'}")
    for src in ("clickstream", "bookings", "payments"):
        text = text.replace(f"path: raw/{src}/", f"path: {sample / 'raw' / src}/")
    config = root / "sources.yaml"
    config.write_text(text)
    return config


def journeys(*args: str, env: dict | None = None, timeout: float = 900
             ) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "journeys"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> SampleRun:
    root = tmp_path_factory.mktemp("sample_run")
    config = sample_config(root)
    env = {"DAGSTER_HOME": str(root / "dagster_home")}
    proc = journeys("run", "--config", str(config), env=env)
    return SampleRun(config, root / "warehouse" / "journeys.duckdb", root / "output",
                     proc.stdout, proc.stderr, proc.returncode,
                     json.loads((SAMPLE_CONFIG.parent / "ground_truth.json").read_text()))
