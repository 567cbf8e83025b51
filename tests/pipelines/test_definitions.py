"""The whole Definitions load; the daily schedule asks for the right partitions."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from pipelines.definitions import defs


def test_all_definitions_load_with_the_expected_graph() -> None:
    d = defs()
    keys = {k.to_user_string() for k in d.resolve_all_asset_keys()}
    assert {"raw_clickstream", "raw_bookings", "raw_payments", "events"} <= keys
    job = d.resolve_job_def("daily_refresh")
    assert job.executor_def.name == "in_process"  # one DuckDB writer per run
    assert d.get_schedule_def("daily_schedule").cron_schedule.startswith("0 4 ")


def test_daily_schedule_requests_yesterday_and_the_late_day_as_one_range() -> None:
    d = defs()
    schedule = d.get_schedule_def("daily_schedule")
    ctx = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 10, 20, 4, 0, tzinfo=dt.UTC))
    request = schedule.evaluate_tick(ctx).run_requests[0]
    assert request.tags["dagster/asset_partition_range_start"] == "2026-10-18"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-10-19"
    assert request.run_key == "daily-2026-10-19"


def test_each_warehouse_asset_names_the_projects_engine_as_its_kind() -> None:
    from pipelines.definitions import build_defs
    from tests.conftest import REPO
    from transforms.project import load_project

    for config, engine in (("data/sample/sources.yaml", "duckdb"),
                           ("examples/spark/sources.yaml", "spark")):
        graph = build_defs(load_project(REPO / config)).resolve_asset_graph()
        kinds = {k.to_user_string(): graph.get(k).kinds for k in graph.get_all_asset_keys()}
        other = ({"duckdb", "spark"} - {engine}).pop()
        assert not [k for k, v in kinds.items() if other in v], config
        assert engine in kinds["events"] and engine in kinds["raw_clickstream"]
        assert kinds["journey_variants"] == {engine, "pm4py"}
        assert kinds["dashboard"] == {"html", "plotly"}
