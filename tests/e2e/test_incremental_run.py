"""A daily run on top of a history equals a full rebuild, table for table (issue 13).

The scenario is the one the daily schedule meets: the sample's exports up to 29 Oct are loaded by
one run; the next morning the 30 Oct export files arrive (made to hold late rows of 29 Oct: the
last records of the 29 Oct clickstream and bookings files move into the 30 Oct files) and
the scheduled run reloads the days `refresh_range` names (yesterday and `late_days` before it),
then everything downstream. A second warehouse is built from nothing over the same files and the
same days. Every table of the two warehouses must be equal (as sorted rows; load times and the
folders of source files left out, tests/e2e/table_checksums.py), so nothing an earlier run wrote
survives where a rebuild would write something else, and the late rows of 29 Oct reach that day
and what derives from it.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pytest

from pipelines.defs.ingest.schedules import refresh_range
from tests.conftest import SAMPLE_CONFIG
from tests.e2e.conftest import journeys, sample_config
from tests.e2e.table_checksums import table_checksums

pytestmark = pytest.mark.slow

SOURCES = ("clickstream", "bookings", "payments")
NEW_DAY = dt.date(2026, 10, 30)  # the sample's last export day: it arrives on the daily run


def _project(root: Path) -> Path:
    """A private copy of the sample: its config, and its export files under root/raw."""
    root.mkdir(parents=True)
    config = sample_config(root)
    text = config.read_text()
    for src in SOURCES:
        copy = root / "raw" / src
        shutil.copytree(SAMPLE_CONFIG.parent / "raw" / src, copy)
        text = text.replace(f"path: {SAMPLE_CONFIG.parent / 'raw' / src}/", f"path: {copy}/")
    assert text.count(str(root / "raw")) == len(SOURCES), "the sample's paths moved"
    config.write_text(text)
    # late rows: the last records of the day before reach only the new day's export
    for src, ext, moved in (("clickstream", "jsonl", 3), ("bookings", "csv", 2)):
        day_before = root / "raw" / src / f"{(NEW_DAY - dt.timedelta(days=1)).isoformat()}.{ext}"
        lines = day_before.read_text().splitlines(keepends=True)
        day_before.write_text("".join(lines[:-moved]))
        with (root / "raw" / src / f"{NEW_DAY.isoformat()}.{ext}").open("a") as f:
            f.write("".join(lines[-moved:]))
    return config


def _run(config: Path, root: Path, *args: str) -> None:
    proc = journeys("run", "--config", str(config), *args,
                    env={"DAGSTER_HOME": str(root / "dagster_home")})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def _rows_read(warehouse: Path, day: dt.date) -> int:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("select sum(rows_read) from ingest_reconciliation "
                           "where partition_date = ?", [day]).fetchone()[0]
    finally:
        con.close()


def test_daily_run_equals_a_full_rebuild(tmp_path: Path) -> None:
    first, last = refresh_range(NEW_DAY + dt.timedelta(days=1), late_days=1)
    assert (first, last) == (NEW_DAY - dt.timedelta(days=1), NEW_DAY)

    # the history: every export up to the day before, as the warehouse was the evening before
    inc = tmp_path / "incremental"
    config = _project(inc)
    held = []
    for src in SOURCES:
        for f in (inc / "raw" / src).glob(f"{NEW_DAY.isoformat()}.*"):
            held.append((f, tmp_path / "held" / src / f.name))
            held[-1][1].parent.mkdir(parents=True, exist_ok=True)
            shutil.move(f, held[-1][1])
    assert len(held) == len(SOURCES)
    _run(config, inc, "--end", (NEW_DAY - dt.timedelta(days=1)).isoformat())
    warehouse = inc / "warehouse" / "journeys.duckdb"
    before = _rows_read(warehouse, NEW_DAY - dt.timedelta(days=1))

    # the next morning: the new day's files arrive and the scheduled range is reloaded
    for f, h in held:
        shutil.move(h, f)
    _run(config, inc, "--start", first.isoformat(), "--end", last.isoformat())
    after = _rows_read(warehouse, NEW_DAY - dt.timedelta(days=1))
    # the late rows of the day before were read into that day
    assert after == before + 5, (before, after)

    # the same files and days, built from nothing
    full = tmp_path / "full"
    _run(_project(full), full, "--end", last.isoformat())

    a = table_checksums(warehouse)
    b = table_checksums(full / "warehouse" / "journeys.duckdb")
    assert sorted(a) == sorted(b)
    assert len(a) > 50  # every table of the pipeline, not a handful
    differ = {t: (a[t]["rows"], b[t]["rows"]) for t in a if a[t] != b[t]}
    assert not differ, f"tables differing after the daily run (rows incremental, full): {differ}"
