"""`journeys ui`: the Dagster UI on the project's instance (the runs of `journeys run` show)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from transforms.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ui",
        help="start the Dagster UI (asset graph, runs, schedules, backfills)",
        description="Start the Dagster UI and daemon on the project's Dagster instance, so "
        "the runs made by `journeys run` appear there and the daily schedule can be switched "
        "on. Stop it with Ctrl-C.",
    )
    p.add_argument("--config", metavar="PATH", help="project config (sources.yaml)")
    p.add_argument("--port", default="3000", help="port of the UI (default 3000)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.set_defaults(func=handle)


def command(port: str, host: str) -> list[str]:
    exe = Path(sys.executable).parent / "dagster"
    dagster = str(exe) if exe.exists() else shutil.which("dagster")
    if dagster is None:
        raise UserError("the `dagster` command is not installed; run `make setup` first")
    return [dagster, "dev", "-m", "pipelines.definitions", "-p", str(port), "-h", host]


def handle(args: argparse.Namespace) -> int:
    from pipelines.project import CONFIG_ENV, PROJECT_ROOT, config_path, dagster_home
    from transforms.project import load_project

    cfg = load_project(config_path(args.config)).config
    home = dagster_home(cfg)
    cmd = command(args.port, args.host)
    print(f"Dagster UI on http://{args.host}:{args.port} (instance {home}); Ctrl-C stops it",
          flush=True)
    env = dict(os.environ, DAGSTER_HOME=str(home), **{CONFIG_ENV: str(cfg.path)})
    try:
        return subprocess.call(cmd, cwd=PROJECT_ROOT, env=env)
    except KeyboardInterrupt:
        return 0
