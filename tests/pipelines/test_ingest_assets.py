"""The ingestion assets in Dagster: materialise on a temporary DuckDB, checks, schedule."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import pytest

from pipelines.defs.ingest import assets as ingest_assets
from pipelines.defs.ingest.schedules import refresh_range
from pipelines.resources import Progress, Warehouse
from tests.conftest import TinyProject, click
from transforms.sources import load_config

ASSETS = [ingest_assets.raw_clickstream, ingest_assets.raw_bookings, ingest_assets.raw_payments,
          ingest_assets.events]
CHECKS = [ingest_assets.raw_clickstream_reconciles, ingest_assets.raw_bookings_reconciles,
          ingest_assets.raw_payments_reconciles, ingest_assets.events_complete]


def resources(tiny: TinyProject) -> dict:
    cfg = load_config(tiny.config)
    return {"warehouse": Warehouse(database=str(cfg.warehouse), sources=str(cfg.path),
                                   journey_map=str(cfg.journey_map),
                                   output_dir=str(cfg.output_dir)),
            "progress": Progress()}


def fill(tiny: TinyProject) -> None:
    tiny.clicks("2026-10-01",
                click("m1", "anon-1", "app_installed", "2026-10-01T08:00:00Z",
                      medium="paid_social"),
                click("m1", "anon-1", "app_installed", "2026-10-01T08:00:00Z",
                      medium="paid_social"),
                click("m2", "anon-1", "logged_in", "2026-10-01T08:05:00Z", user="c1"),
                "{broken")
    tiny.clicks("2026-10-02",
                click("m3", "anon-1", "service_viewed", "2026-10-01T23:59:59Z", user="c1",
                      received="2026-10-02T00:00:03Z"))
    tiny.bookings("2026-10-02", "b1,c1,s1,Berlin,hair,2026-10-05 10:00:00,45.00,EUR,created,,,,"
                  "2026-10-02 10:00:00")
    tiny.payments("2026-10-02", "p1,b1,45.00,EUR,card,succeeded,,2026-10-02T08:30:00Z")


def run(tiny: TinyProject, start: str, end: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS + CHECKS, resources=resources(tiny),
        tags={"dagster/asset_partition_range_start": start,
              "dagster/asset_partition_range_end": end},
    )


def test_materialize_range_loads_checks_and_stitches(tiny: TinyProject) -> None:
    fill(tiny)
    result = run(tiny, "2026-10-01", "2026-10-02")
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"reconciles": True, "events_complete": True}
    mats = {(m.asset_key.to_user_string(), m.partition)
            for m in result.get_asset_materialization_events()
            for m in [m.event_specific_data.materialization]}
    assert ("raw_clickstream", "2026-10-01") in mats and ("events", None) in mats
    con = duckdb.connect(str(tiny.warehouse), read_only=True)
    # 5 clickstream lines: 3 distinct valid events (m3 late, in day 1), 1 duplicate, 1 broken
    got = con.execute("select source, partition_date, rows_read, rows_loaded, rows_quarantined,"
                      " rows_duplicate from ingest_reconciliation where source='clickstream' "
                      "order by 2").fetchall()
    # day 1: m1, m1 (dup), m2, {broken} is in the day-1 file -> quarantined on day 1,
    # m3 (event time day 1, arrived in the day-2 file) -> day 1
    assert got == [("clickstream", dt.date(2026, 10, 1), 5, 3, 1, 1),
                   ("clickstream", dt.date(2026, 10, 2), 0, 0, 0, 0)]
    assert con.execute("select count(distinct customer_id) from events").fetchone() == (1,)


def test_idempotent_rerun_does_not_double_count(tiny: TinyProject) -> None:
    fill(tiny)
    assert run(tiny, "2026-10-01", "2026-10-02").success
    assert run(tiny, "2026-10-01", "2026-10-01").success
    con = duckdb.connect(str(tiny.warehouse), read_only=True)
    assert con.execute("select count(*) from events").fetchone() == (5,)
    assert con.execute("select count(*) from quarantine").fetchone() == (2,)


def test_blocking_reconciliation_check_stops_downstream(tiny: TinyProject,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fill(tiny)
    monkeypatch.setattr(ingest_assets.ingest, "reconciliation_problems",
                        lambda con, source: [f"{source.name}: a row went missing"])
    result = dg.materialize(ASSETS + CHECKS, resources=resources(tiny), raise_on_error=False,
                            tags={"dagster/asset_partition_range_start": "2026-10-01",
                                  "dagster/asset_partition_range_end": "2026-10-02"})
    assert not result.success
    materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()
                    for m in [m.event_specific_data.materialization]}
    assert "raw_payments" in materialized
    assert "events" not in materialized  # blocked by the failed check upstream


def test_schedule_reloads_yesterday_and_late_days() -> None:
    assert refresh_range(dt.date(2026, 10, 10), 1) == (dt.date(2026, 10, 8), dt.date(2026, 10, 9))


@pytest.mark.parametrize("bad", ["start_date: yesterday", "schedule: {hour_utc: 25}"])
def test_config_mistakes_name_file_key_and_fix(tiny: TinyProject, bad: str) -> None:
    from transforms.errors import ConfigError

    tiny.config.write_text(tiny.config.read_text() + "\n" + bad + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(tiny.config)
    key = bad.split(":")[0] if "start" in bad else "schedule.hour_utc"
    assert str(tiny.config) in str(err.value) and f"key '{key}'" in str(err.value)
    assert "Fix:" in str(err.value)
