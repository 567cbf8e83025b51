"""The Dagster event log the project's instance uses: one SQLite database, one engine per process.

Dagster's `ConsolidatedSqliteEventLogStorage` keeps every run's events in one SQLite file (WAL
journal) but builds a new SQLAlchemy engine and opens a new connection for every event it
stores or reads. A run over a long history stores two events per daily partition and asset
(planned, then materialised): 548 days of one source made about 5,300 connections, more time
than the load itself. This subclass opens the database once per process and reuses the
connection from a small pool; every event is still its own committed transaction, and other
processes (`journeys ui`, a second run waiting for the warehouse lock) read and write the same
file under SQLite's locking, as before.

Each connection runs with `synchronous=NORMAL`: in WAL mode a commit then no longer waits for
the disk (fsync) — SQLite syncs at checkpoints — which was about 2 ms of every one of the two
commits an event takes (a run whose range spans years of days, e.g. from one stray early file,
stores tens of thousands of events). A crash of the process loses nothing committed; a power
cut can lose the last moments of run history, never the warehouse (its own file and lock).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log import (
    ConsolidatedSqliteEventLogStorage,
)
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool


class PooledSqliteEventLogStorage(ConsolidatedSqliteEventLogStorage):
    """`ConsolidatedSqliteEventLogStorage` with one engine (and its connection pool) per
    process instead of one per event."""

    def __init__(self, base_dir: str, inst_data: object = None) -> None:
        self._engine: Engine | None = None
        self._engine_pid: int | None = None
        self._engine_lock = threading.Lock()
        super().__init__(base_dir, inst_data)

    def _pooled_engine(self) -> Engine:
        with self._engine_lock:
            # a forked process (the multiprocess executor) must not share its parent's handles
            if self._engine is None or self._engine_pid != os.getpid():
                self._engine = create_engine(
                    self._conn_string,
                    poolclass=QueuePool,
                    pool_size=2,
                    max_overflow=8,
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                                  "check_same_thread": False},
                )
                event.listen(self._engine, "connect", _fast_commits)
                self._engine_pid = os.getpid()
            return self._engine

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        with self._pooled_engine().connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        with self._engine_lock:
            if self._engine is not None and self._engine_pid == os.getpid():
                self._engine.dispose()
            self._engine = None
        super().dispose()


def _fast_commits(dbapi_connection: object, _record: object) -> None:
    """A new SQLite connection of the pool: WAL journal (as Dagster creates the file) and
    commits that do not wait for fsync (module docstring)."""
    cur = dbapi_connection.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
    finally:
        cur.close()
