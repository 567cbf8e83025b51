"""`journeys ui` serves the Dagster UI on the project's instance: the asset graph and the runs
that `journeys run` made are there."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.e2e.conftest import SampleRun

pytestmark = pytest.mark.slow
QUERY = ('{ runsOrError(limit: 10) { ... on Runs { results { runId jobName status } } } '
         'assetNodes { assetKey { path } } }')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                 data=json.dumps({"query": QUERY}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["data"]


def test_ui_shows_the_asset_graph_and_the_cli_runs(sample_run: SampleRun) -> None:
    assert sample_run.returncode == 0
    port = free_port()
    exe = Path(sys.executable).parent / "journeys"
    env = {**os.environ, "DAGSTER_HOME": str(sample_run.warehouse.parent.parent / "dagster_home")}
    proc = subprocess.Popen([str(exe), "ui", "--config", str(sample_run.config), "--port",
                             str(port)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        data = None
        while time.monotonic() < deadline:
            try:
                data = graphql(port)
                if data.get("assetNodes"):
                    break
            except OSError:
                pass
            time.sleep(1)
        assert data is not None, "the UI did not answer within 120 s"
        keys = {"/".join(n["assetKey"]["path"]) for n in data["assetNodes"]}
        assert {"raw_clickstream", "events", "journeys", "variants", "dashboard"} <= keys
        runs = data["runsOrError"]["results"]
        assert any(r["jobName"] == "daily_refresh" and r["status"] == "SUCCESS" for r in runs)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
