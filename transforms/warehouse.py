"""The DuckDB warehouse: one file, one writer at a time.

DuckDB allows a single writing process per database file. Dagster may start several runs at once
(a schedule firing while `journeys run` is busy), so every writer takes an exclusive file lock
next to the database first and *waits* for it instead of failing. The lock is released when the
connection is closed, so a crashed process never leaves a stale lock behind (the OS drops flock
locks with the process).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from transforms.definitions import create_macros
from transforms.engine import DuckDBEngine, sql_log_from_env
from transforms.errors import UserError

if TYPE_CHECKING:
    from transforms.sources import ProjectConfig

DEFAULT_LOCK_TIMEOUT_S = 6 * 3600.0
# DuckDB takes 80% of RAM by default; a bounded buffer pool spills big sorts and joins to disk
# instead, so a run leaves room for the rest of the machine. 3 GB keeps a whole run at 10M events
# under 4 GB of resident memory (3,359 MiB measured; 4,320 with 4 GB, same CPU seconds).
# JOURNEYS_DUCKDB_MEMORY overrides.
DEFAULT_MEMORY_LIMIT = "3GB"


def memory_limit() -> str:
    return os.environ.get("JOURNEYS_DUCKDB_MEMORY", DEFAULT_MEMORY_LIMIT)


@contextlib.contextmanager
def writer_lock(db_path: str | Path, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
                on_wait: object = None) -> Iterator[None]:
    """Hold the exclusive writer lock of the warehouse at `db_path`, waiting up to `timeout_s`."""
    lock_path = Path(f"{db_path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not announced and callable(on_wait):
                    on_wait(f"waiting for another run to finish writing {db_path}")
                    announced = True
                if time.monotonic() > deadline:
                    raise UserError(
                        f"the warehouse {db_path} stayed locked by another run for "
                        f"{timeout_s:.0f} s; wait for that run to finish and try again"
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


@contextlib.contextmanager
def connect(db_path: str | Path, *, read_only: bool = False,
            lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
            on_wait: object = None) -> Iterator[DuckDBEngine]:
    """Open the warehouse, holding its lock for as long as the connection is open: a
    `DuckDBEngine`, which behaves as the DuckDB connection it wraps (transforms/engine.py)."""
    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    if read_only and not db_path.exists():
        raise UserError(f"no warehouse at {db_path}: run `journeys run` first")
    # DuckDB refuses a read-only open while another process has the file open for writing, so
    # readers queue on the same lock; they are short-lived (dashboards, CLI summaries).
    with writer_lock(db_path, lock_timeout_s, on_wait):
        con = duckdb.connect(str(db_path), read_only=read_only,
                             config={"memory_limit": memory_limit()})
        try:
            con.execute("SET TimeZone = 'UTC'")
            create_macros(con)
            if not read_only:
                spill = db_path.parent / f"{db_path.name}.tmp"
                con.execute("SET temp_directory = ?", [str(spill)])
            yield DuckDBEngine(con, sql_log_from_env())
        finally:
            con.close()


@contextlib.contextmanager
def open_engine(config: ProjectConfig, *, read_only: bool = False,
                lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
                on_wait: object = None) -> Iterator[Any]:
    """The project's warehouse on its engine (`engine:` in sources.yaml): `connect` for DuckDB,
    else a `SparkEngine` on the `spark:` session, its tables Parquet folders under `warehouse`
    (or in `spark.database`), holding the same writer lock."""
    if config.engine == "duckdb":
        with connect(config.warehouse, read_only=read_only, lock_timeout_s=lock_timeout_s,
                     on_wait=on_wait) as con:
            yield con
        return
    from transforms.spark_engine import SparkEngine, session

    settings = config.spark
    if read_only and not settings.database and not config.warehouse.is_dir():
        raise UserError(f"no warehouse at {config.warehouse}: run `journeys run` first")
    with writer_lock(config.warehouse, lock_timeout_s, on_wait):
        spark = session(master=settings.master, remote=settings.remote,
                        conf=dict(settings.conf))
        eng = SparkEngine(spark, location=None if settings.database else config.warehouse,
                          database=settings.database)
        try:
            yield eng
        finally:
            eng.close()
