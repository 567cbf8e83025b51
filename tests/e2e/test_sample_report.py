"""`journeys report --format json` on the sample run, against figures computed independently:
rows read from the export files themselves, the rest by plain SQL over `events`, `raw_*`,
`journeys` and `purchases`."""

from __future__ import annotations

import csv
import json

import duckdb
import pytest

from tests.conftest import SAMPLE_CONFIG
from tests.e2e.conftest import SampleRun, journeys

pytestmark = pytest.mark.slow
RAW = SAMPLE_CONFIG.parent / "raw"
SOURCES = ("bookings", "clickstream", "payments")


def lines_in_files(source: str) -> int:
    """Records in the export files: JSON lines, or CSV records minus each file's header."""
    total = 0
    for path in sorted((RAW / source).iterdir()):
        if path.suffix == ".jsonl":
            with path.open() as fh:
                total += sum(1 for line in fh if line.strip())
        else:
            with path.open(newline="") as fh:
                total += sum(1 for _ in csv.reader(fh)) - 1
    return total


def test_report_matches_independent_figures(sample_run: SampleRun) -> None:
    assert sample_run.returncode == 0, sample_run.stderr[-3000:]
    proc = journeys("report", "--config", str(sample_run.config), "--format", "json",
                    timeout=300)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)

    con = duckdb.connect(str(sample_run.warehouse), read_only=True)
    one = lambda sql: con.execute(sql).fetchone()  # noqa: E731
    assert sorted(figures["sources"]) == list(SOURCES)
    dirt = sample_run.ground_truth["dirt"]
    for source in SOURCES:
        row = figures["sources"][source]
        assert row["read"] == lines_in_files(source)
        assert row["loaded"] == one(f"select count(*) from raw_{source}")[0]
        assert row["duplicates"] == dirt[source]["duplicate"]
        assert row["read"] == row["loaded"] + row["quarantined"] + row["duplicates"]
        assert row["rejected"] == 0

    events, customers, start, end = one(
        "select count(*), count(distinct customer_id), min(event_ts)::DATE, "
        "max(event_ts)::DATE from events")
    assert (figures["events"], figures["customers"]) == (events, customers)
    assert (figures["data_start"], figures["data_end"]) == (start.isoformat(), end.isoformat())
    assert figures["events"] == sum(one(f"select count(*) from raw_{s}")[0] for s in SOURCES)

    names = [s["name"] for s in figures["stages"]]
    assert names == ["Discovery", "Consideration", "Decision", "Purchase", "Service", "Repeat"]
    reached = [s["customers"] for s in figures["stages"]]
    assert reached[0] == one("select count(*) from journeys")[0]  # every journey enters
    assert reached[3] == one("select count(*) from journeys where converted")[0]
    assert reached == sorted(reached, reverse=True)  # stages are cumulative

    # purchases: paid bookings without a refund, from the raw payment rows
    purchasers, repeat, revenue = one("""
        with paid as (
            select b.customer_id, p.booking_id, min(p.amount) as amount
            from raw_payments p join raw_bookings b using (booking_id)
            where p.status = 'succeeded' and p.booking_id not in (
                select booking_id from raw_payments where status = 'refunded')
            group by all
        ), per as (select customer_id, count(*) as n from paid group by 1)
        select (select count(*) from per), (select count(*) from per where n >= 2),
               (select sum(amount) from paid)""")
    assert figures["purchasers"] == purchasers
    assert figures["repeat_purchasers"] == repeat
    assert figures["revenue"] == pytest.approx(float(revenue))
    # the Repeat stage counts repeats within a journey's window: never more than all repeaters
    assert 0 < reached[5] <= figures["repeat_purchasers"]


def test_report_table_is_readable(sample_run: SampleRun) -> None:
    proc = journeys("report", "--config", str(sample_run.config), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "not available" not in proc.stdout
    assert "repeat purchasers" in proc.stdout and "Discovery" in proc.stdout
