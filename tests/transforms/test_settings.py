"""The run's settings: built from the journey map, written to `run_settings`, read back."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from transforms.project import load_project
from transforms.settings import build_run_settings, read_settings, settings_from_journey_map

SAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "data" / "sample" / "sources.yaml"


def test_settings_from_the_sample_journey_map() -> None:
    jmap = load_project(SAMPLE_CONFIG).journey_map
    got = settings_from_journey_map(jmap, currency="EUR")
    assert got == {
        "stages": ["Discovery", "Consideration", "Decision", "Purchase", "Service", "Repeat"],
        "conversion_stage": "Purchase",
        "conversion_window_seconds": 14 * 86400,  # conversion_window: 14d
        "currency": "EUR",
        "significance_level": 0.05, "min_group_outcomes": 5,  # transforms/stage_funnels.py
        "small_n": 30,
        "low_rating_max": 2,
        "repeat_horizons": [7, 14, 30],
        "min_attempts_to_rank": 20,
        "period_days": 7,
        "new_customer_segment": "customer_type",  # segments.customer_type: new_vs_returning
    }
    assert settings_from_journey_map(jmap, currency=None, period_days=28)["period_days"] == 28
    with pytest.raises(ValueError, match="period_days"):
        settings_from_journey_map(jmap, currency=None, period_days=0)


def test_settings_round_trip_one_row_per_key() -> None:
    con = duckdb.connect()
    con.execute("create table events (event_date date)")
    con.execute("insert into events values ('2024-03-04'), ('2024-04-30'), ('2024-03-10')")
    settings = {"stages": ["A", "B"], "conversion_stage": "B", "currency": None,
                "anomaly_threshold": 3.5, "period_days": 7, "flag": True}
    # data_start and data_end come from `events` when not given: 6 keys + 2
    assert build_run_settings(con, settings) == 8
    assert read_settings(con) == {**settings, "data_start": dt.date(2024, 3, 4),
                                  "data_end": dt.date(2024, 4, 30)}
    types = dict(con.execute("select key, value_type from run_settings").fetchall())
    assert types == {"stages": "list", "conversion_stage": "text", "currency": "null",
                     "anomaly_threshold": "number", "period_days": "integer", "flag": "boolean",
                     "data_start": "date", "data_end": "date"}
    # given dates win over the data's; a rebuild replaces the table
    assert build_run_settings(con, {"data_start": None, "data_end": dt.date(2024, 1, 1)}) == 2
    assert read_settings(con) == {"data_start": None, "data_end": dt.date(2024, 1, 1)}


def test_a_value_that_is_no_setting_is_refused() -> None:
    con = duckdb.connect()
    with pytest.raises(TypeError, match="not text, a number"):
        build_run_settings(con, {"data_start": None, "data_end": None, "bad": {"a": 1}})
