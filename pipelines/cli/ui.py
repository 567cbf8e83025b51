"""`journeys ui`: the Dagster UI on the project's instance (the runs of `journeys run` show)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
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
    """`dg dev` on this project (pyproject's [tool.dg]: root module `pipelines`, so the code
    location is `pipelines.definitions`), in this environment (`--use-active-venv`)."""
    from pipelines.project import PROJECT_ROOT

    exe = Path(sys.executable).parent / "dg"
    dg_cmd = str(exe) if exe.exists() else shutil.which("dg")
    if dg_cmd is None:
        raise UserError("the `dg` command is not installed; run `make setup` first")
    return [dg_cmd, "dev", "--use-active-venv", "--target-path", str(PROJECT_ROOT),
            "-p", str(port), "-h", host]


def check_port(port: str) -> int:
    """The --port value as a number, or UserError (before anything starts)."""
    try:
        number = int(str(port).strip())
    except ValueError:
        number = -1
    if not 1 <= number <= 65535:
        raise UserError(f"--port {port!r} is not a port number: pass a whole number from 1 to "
                        "65535, e.g. --port 3000")
    return number


# how long the Dagster processes get to stop after SIGTERM before they are killed
STOP_SECONDS = 10.0


def stop_group(proc: subprocess.Popen, timeout: float = STOP_SECONDS) -> None:
    """Stop the child's whole process group (webserver, daemon, code servers): SIGTERM, wait,
    then SIGKILL whatever is left."""
    import time

    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = proc.pid  # the leader is gone; its group may still hold processes
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is None:
                try:
                    proc.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    continue
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
    proc.wait()


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop(signum)


def handle(args: argparse.Namespace) -> int:
    from pipelines.project import CONFIG_ENV, PROJECT_ROOT, config_path, dagster_home
    from transforms.project import load_project

    port = check_port(args.port)
    cfg = load_project(config_path(args.config)).config
    home = dagster_home(cfg)
    cmd = command(str(port), args.host)
    print(f"Dagster UI on http://{args.host}:{port} (instance {home}); Ctrl-C stops it",
          flush=True)
    env = dict(os.environ, DAGSTER_HOME=str(home), **{CONFIG_ENV: str(cfg.path)})
    # the child leads its own process group, so stopping `journeys ui` (Ctrl-C, or SIGTERM /
    # SIGINT sent to its PID) stops every Dagster process it started, not just the first
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    proc = None
    try:
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, start_new_session=True)
        return proc.wait()
    except (_Stop, KeyboardInterrupt):
        return 0
    finally:
        for sig in previous:  # a second signal while stopping must not interrupt the stop
            signal.signal(sig, signal.SIG_IGN)
        try:
            if proc is not None:
                stop_group(proc)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
