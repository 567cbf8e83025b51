"""`journeys run` on the committed sample: every row read is loaded or quarantined, and the
planted dirt is found exactly (counts from the generator's ground truth and from the files)."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pytest

from tests.conftest import SAMPLE_CONFIG
from tests.e2e.conftest import SampleRun

pytestmark = pytest.mark.slow
RAW = SAMPLE_CONFIG.parent / "raw"


def records_in_files(source: str) -> int:
    """Records in the export files, counted independently of the loader."""
    total = 0
    for path in sorted((RAW / source).iterdir()):
        if path.suffix == ".jsonl":
            total += sum(1 for line in path.read_text().split("\n")[:-1])
        else:
            with path.open(newline="") as fh:
                total += sum(1 for _ in csv.reader(fh)) - 1  # minus the header
    return total


def test_run_succeeds_and_prints_the_summary(sample_run: SampleRun) -> None:
    assert sample_run.returncode == 0, sample_run.stderr[-3000:]
    out = sample_run.stdout
    assert "raw_clickstream  2026-10-01" in out  # a progress line per asset and partition
    assert "source" in out and "quarantined" in out and str(sample_run.warehouse) in out
    assert "Traceback" not in out + sample_run.stderr


@pytest.mark.parametrize("source", ["clickstream", "bookings", "payments"])
def test_every_row_read_is_loaded_or_quarantined(sample_run: SampleRun, source: str) -> None:
    con = duckdb.connect(str(sample_run.warehouse), read_only=True)
    read, loaded, quarantined, dups = con.execute(
        "select sum(rows_read), sum(rows_loaded), sum(rows_quarantined), sum(rows_duplicate) "
        "from ingest_reconciliation where source = ?", [source]).fetchone()
    assert read == records_in_files(source)
    assert read == loaded + quarantined + dups
    assert loaded == con.execute(f"select count(*) from raw_{source}").fetchone()[0]
    dirt = sample_run.ground_truth["dirt"][source]
    assert dups == dirt["duplicate"]
    rejected_kinds = {k: v for k, v in dirt.items()
                      if k not in ("duplicate", "late_file", "clock_skew")}
    assert quarantined == sum(rejected_kinds.values())


def test_late_rows_land_in_their_event_day(sample_run: SampleRun) -> None:
    con = duckdb.connect(str(sample_run.warehouse), read_only=True)
    late = con.execute("""
        select count(*) from raw_clickstream
        where partition_date < cast(regexp_extract(source_file, '(\\d{4}-\\d{2}-\\d{2})', 1)
                                    as date)""").fetchone()[0]
    assert late >= sample_run.ground_truth["dirt"]["clickstream"]["late_file"]


def test_clock_skew_corrected_count(sample_run: SampleRun) -> None:
    con = duckdb.connect(str(sample_run.warehouse), read_only=True)
    n = con.execute("select count(*) from raw_clickstream where clock_skew_corrected"
                    ).fetchone()[0]
    assert n == sample_run.ground_truth["dirt"]["clickstream"]["clock_skew"]


def test_most_customers_browsed_anonymously_before_login(sample_run: SampleRun) -> None:
    con = duckdb.connect(str(sample_run.warehouse), read_only=True)
    # customers with at least one event before their first identified event, stitched
    share = con.execute("""
        with firsts as (
            select c.user_id as customer_id, min(c.event_ts) as first_login
            from raw_clickstream c where c.user_id is not null group by 1
        )
        select avg(case when exists (
            select 1 from events e where e.customer_id = f.customer_id
              and e.source = 'clickstream' and e.event_ts < f.first_login) then 1 else 0 end)
        from firsts f""").fetchone()[0]
    assert share > 0.5


def test_rerun_is_idempotent(sample_run: SampleRun, tmp_path: Path) -> None:
    from tests.e2e.conftest import journeys

    con = duckdb.connect(str(sample_run.warehouse), read_only=True)
    before = con.execute("select (select count(*) from events), (select count(*) from "
                         "quarantine), (select count(*) from raw_bookings)").fetchone()
    con.close()
    proc = journeys("run", "--config", str(sample_run.config), "--start", "2026-10-10",
                    "--end", "2026-10-12",
                    env={"DAGSTER_HOME": str(sample_run.warehouse.parent.parent / "dagster_home")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    con = duckdb.connect(str(sample_run.warehouse), read_only=True)
    after = con.execute("select (select count(*) from events), (select count(*) from "
                        "quarantine), (select count(*) from raw_bookings)").fetchone()
    assert after == before


def test_config_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    from tests.e2e.conftest import journeys, sample_config

    config = sample_config(tmp_path)
    config.write_text(config.read_text().replace("timezone: Europe/Berlin", "timezone: Berlin"))
    proc = journeys("run", "--config", str(config))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0] == (f"journeys run: error: {config}: key 'sources.bookings.timezone': "
                        "unknown time zone 'Berlin'. Fix: use an IANA name such as UTC or "
                        "Europe/Berlin")

