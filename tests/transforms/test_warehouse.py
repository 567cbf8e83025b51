"""DuckDB's single writer: a second writer waits for the first instead of failing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from transforms import warehouse
from transforms.errors import UserError

HOLD = textwrap.dedent("""
    import sys, time
    from transforms import warehouse
    with warehouse.connect(sys.argv[1]) as con:
        con.execute("create or replace table t as select 1 as x")
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
        con.execute("insert into t values (2)")
""")


def _holder(db: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(seconds)],
                            stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_writer_waits_then_sees_the_first_writers_rows(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    proc = _holder(db, 1.5)
    waited: list[str] = []
    started = time.monotonic()
    with warehouse.connect(db, on_wait=waited.append) as con:
        rows = con.execute("select x from t order by x").fetchall()
        con.execute("insert into t values (3)")
    assert time.monotonic() - started >= 1.0
    assert waited and "waiting for another run" in waited[0]
    assert rows == [(1,), (2,)]  # the first writer finished before the second began
    assert proc.wait(timeout=30) == 0


def test_lock_timeout_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    proc = _holder(db, 3)
    with pytest.raises(UserError, match="stayed locked by another run"):
        with warehouse.connect(db, lock_timeout_s=0.5):
            pass
    proc.wait(timeout=30)


def test_reader_of_a_missing_warehouse_is_told_to_run_first(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="run `journeys run` first"):
        with warehouse.connect(tmp_path / "none.duckdb", read_only=True):
            pass
