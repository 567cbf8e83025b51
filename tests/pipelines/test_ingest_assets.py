"""The ingestion assets in Dagster: materialise on a temporary DuckDB, checks, schedule."""

from __future__ import annotations

import datetime as dt
import gzip

import dagster as dg
import duckdb
import pytest

from pipelines.defs.ingest import assets as ingest_assets
from pipelines.defs.ingest.schedules import refresh_range
from pipelines.resources import Progress, ProjectResource
from tests.conftest import TinyProject, click
from transforms.project import load_project
from transforms.sources import load_config


def ingest_defs(tiny: TinyProject) -> tuple[list, list]:
    """The ingest assets and checks of the tiny project, built from its config."""
    project = load_project(tiny.config)
    defs = ingest_assets.build_ingest_defs(
        project, ingest_assets.daily_partitions(project.config))
    return list(defs.assets), list(defs.asset_checks)


def resources(tiny: TinyProject) -> dict:
    return {"project": ProjectResource(config_path=str(tiny.config)), "progress": Progress()}


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
    assets, checks = ingest_defs(tiny)
    return dg.materialize(
        assets + checks, resources=resources(tiny),
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
    assets, checks = ingest_defs(tiny)
    result = dg.materialize(assets + checks, resources=resources(tiny), raise_on_error=False,
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


SUPPORT_SOURCE = """
  support:
    path: raw/support/*.csv
    format: csv
    columns:
      ticket_id: ticket_id
      customer: customer
      topic: topic
      opened_at: opened_at
    types:
      opened_at: timestamp
    required: [ticket_id, customer, opened_at]
    event_time: opened_at
    timezone: UTC
    id_columns: [ticket_id]
    event:
      event_name: {default: ticket_opened}
      customer: customer
      columns:
        status: topic
"""


def test_a_fourth_source_added_by_config_alone_reaches_events(tiny: TinyProject) -> None:
    # the only change: a new `support` source in sources.yaml and its export file
    tiny.config.write_text(tiny.config.read_text().rstrip("\n") + "\n" + SUPPORT_SOURCE)
    (tiny.root / "raw" / "support").mkdir(parents=True)
    (tiny.root / "raw" / "support" / "2026-10-02.csv").write_text(
        "ticket_id,customer,topic,opened_at\n"
        "t1,c1,refund,2026-10-02T09:00:00Z\n"
        "t2,c9,login,2026-10-02T10:30:00Z\n"
        "t3,,login,2026-10-02T11:00:00Z\n")  # no customer: quarantined
    fill(tiny)
    result = run(tiny, "2026-10-01", "2026-10-02")
    assert result.success
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed
              for e in result.get_asset_check_evaluations()}
    assert checks[("raw_support", "reconciles")] and checks[("events", "events_complete")]
    con = duckdb.connect(str(tiny.warehouse), read_only=True)
    rows = con.execute("select event_id, customer_id, event_name, status, event_ts from events "
                       "where source = 'support' order by event_id").fetchall()
    assert rows == [
        ("support:t1", "c1", "ticket_opened", "refund", dt.datetime(2026, 10, 2, 9, 0)),
        ("support:t2", "c9", "ticket_opened", "login", dt.datetime(2026, 10, 2, 10, 30)),
    ]
    assert con.execute("select rows_read, rows_loaded, rows_quarantined from "
                       "ingest_reconciliation where source = 'support' and "
                       "partition_date = '2026-10-02'").fetchone() == (3, 2, 1)


def test_a_source_without_an_event_block_is_loaded_but_not_in_events(tiny: TinyProject) -> None:
    text = SUPPORT_SOURCE.split("    event:\n")[0]
    tiny.config.write_text(tiny.config.read_text().rstrip("\n") + "\n" + text)
    (tiny.root / "raw" / "support").mkdir(parents=True)
    (tiny.root / "raw" / "support" / "2026-10-02.csv").write_text(
        "ticket_id,customer,topic,opened_at\nt1,c1,refund,2026-10-02T09:00:00Z\n")
    fill(tiny)
    assert run(tiny, "2026-10-01", "2026-10-02").success
    con = duckdb.connect(str(tiny.warehouse), read_only=True)
    assert con.execute("select count(*) from raw_support").fetchone() == (1,)
    assert con.execute("select count(*) from events where source = 'support'").fetchone() == (0,)


def test_events_check_fails_when_a_raw_record_is_missing(tiny: TinyProject,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fill(tiny)
    real = ingest_assets.distinct_raw_records
    monkeypatch.setattr(ingest_assets, "distinct_raw_records",
                        lambda con, cfg: real(con, cfg) + 1)  # one record never reached events
    assets, checks = ingest_defs(tiny)
    result = dg.materialize(assets + checks, resources=resources(tiny), raise_on_error=False,
                            tags={"dagster/asset_partition_range_start": "2026-10-01",
                                  "dagster/asset_partition_range_end": "2026-10-02"})
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["events_complete"].passed is False
    meta = evaluations["events_complete"].metadata
    assert meta["distinct_raw_records"].value == meta["events"].value + 1


def test_a_bad_file_is_rejected_alone_and_the_run_says_it_is_partial(tiny: TinyProject) -> None:
    fill(tiny)
    clicks = tiny.root / "raw" / "clickstream"
    (clicks / "2026-10-02b.jsonl").mkdir()  # matches the glob, is no file
    packed = gzip.compress(b'{"messageId": "m9"}\n' * 50)
    (clicks / "2026-10-01b.jsonl").write_bytes(packed[: len(packed) // 2])  # a cut gzip stream
    result = run(tiny, "2026-10-01", "2026-10-02")
    assert result.success  # every other file and every downstream asset is built
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed
              for e in result.get_asset_check_evaluations()}
    assert all(checks.values()) and ("events", "events_complete") in checks
    meta = {m.event_specific_data.materialization.asset_key.to_user_string():
            m.event_specific_data.materialization.metadata
            for m in result.get_asset_materialization_events()}
    assert meta["raw_clickstream"]["files_rejected"].value == 2
    assert meta["raw_bookings"]["files_rejected"].value == 0
    table = meta["raw_clickstream"]["rejected_files"].value
    assert "| 2026-10-02b.jsonl | 0 | a directory, not a file |" in table
    assert "2026-10-01b.jsonl" in table and "a broken gzip stream" in table
    assert meta["events"]["files_rejected"].value == 2
    assert meta["events"]["partial_data"].value.startswith(
        "2 files rejected (see rejected_files): 2026-10-01b.jsonl (a broken gzip stream")
    con = duckdb.connect(str(tiny.warehouse), read_only=True)
    # the same loads as the fill without the bad files (see the first test)
    assert con.execute("select partition_date, rows_read, rows_loaded, rows_quarantined, "
                       "rows_duplicate from ingest_reconciliation where source='clickstream' "
                       "order by 1").fetchall() == [(dt.date(2026, 10, 1), 5, 3, 1, 1),
                                                   (dt.date(2026, 10, 2), 0, 0, 0, 0)]
    assert con.execute("select count(*) from events").fetchone() == (5,)


def test_the_run_log_warns_of_rejected_files_and_rows_outside_the_range(
        tiny: TinyProject, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(tiny)
    (tiny.root / "raw" / "bookings" / "2026-10-02b.csv").symlink_to(tiny.root / "gone.csv")
    lines: list[str] = []
    monkeypatch.setattr("pipelines.progress.echo", lines.append)  # what the terminal shows
    assets, checks = ingest_defs(tiny)
    result = dg.materialize(assets + checks,
                            resources={"project": ProjectResource(config_path=str(tiny.config)),
                                       "progress": Progress(echo=True)},
                            tags={"dagster/asset_partition_range_start": "2026-10-02",
                                  "dagster/asset_partition_range_end": "2026-10-02"})
    assert result.success
    warnings = [ln for ln in lines if "warning:" in ln]
    assert any(ln.startswith("  raw_bookings     warning: 1 file rejected (see rejected_files): "
                             "2026-10-02b.csv (a broken link to ") for ln in warnings), lines
    # only 2 October: the day-1 file's and the day-2 file's rows for 1 October wait (m1, m1,
    # m2, {broken} and m3: 5 lines)
    assert any(ln.startswith("  raw_clickstream  warning: 5 rows of the files read belong to "
                             "days outside the loaded range") for ln in warnings), lines
