"""Materialize the journey assets on a tmp DuckDB pre-filled with a small `events` table."""

from __future__ import annotations

import dagster as dg
import duckdb

from pipelines.defs.journeys import assets as A
from pipelines.resources import Warehouse
from tests.transforms.test_journeys import DAY, DEFAULT_MAP, HOUR, ROOT, T0, E, make_events_table

DEFAULT_SOURCES = ROOT / "data" / "sample" / "sources.yaml"

ASSETS = [A.stage_events, A.purchases, A.journey_tables, A.funnels, A.transitions, A.bookings,
          A.daily_stage_rates, A.repeat_and_retention, A.journey_map_tables]
CHECKS = [A.funnel_non_increasing, A.mapping_accounts_for_all_events]
TABLES = ["stage_events", "stage_mapping_summary", "purchases", "journeys", "journey_stages",
          "funnel_steps", "funnel_cohorts", "funnel_segments", "stage_transitions",
          "stage_transition_segments", "booking_outcomes", "booking_funnel", "payment_attempts",
          "payment_failures", "daily_stage_rates", "repeat_purchase", "purchase_frequency",
          "retention_cohorts", "lifecycle", "stage_touchpoints", "stage_pains", "stage_metrics"]


def _events(db: str) -> None:
    con = duckdb.connect(db)
    rows = [E("x", "favourite_removed", T0 + 60 * DAY)]
    for i in range(6):
        c, t = f"c{i}", T0 + i * HOUR
        rows += [E(c, "app_installed", t, platform="ios" if i % 2 else "android"),
                 E(c, "booking_created", t + HOUR, booking_id=f"b{i}", amount=25)]
        if i < 4:
            rows.append(E(c, "payment_succeeded", t + 2 * HOUR, booking_id=f"b{i}",
                          payment_id=f"p{i}", method="card"))
    make_events_table(con, rows)
    con.close()


def test_materialize_journey_assets(tmp_path):
    db = str(tmp_path / "wh.duckdb")
    _events(db)
    wh = Warehouse(database=db, sources=str(DEFAULT_SOURCES),
                   journey_map=str(DEFAULT_MAP), output_dir=str(tmp_path / "out"))
    result = dg.materialize(ASSETS + CHECKS, resources={"warehouse": wh},
                            selection=dg.AssetSelection.groups("journeys"))
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    assert len(result.get_asset_check_evaluations()) == 2
    mats = {m.asset_key.to_user_string(): m.metadata
            for m in result.get_asset_materialization_events()
            for m in [m.event_specific_data.materialization]}
    assert set(TABLES) <= set(mats)
    # 6 journeys; 4 paid -> converted
    assert mats["journeys"]["converted"].value == 4
    assert mats["stage_events"]["unmapped_events"].value == 1  # favourite_removed
    con = duckdb.connect(db, read_only=True)
    entered = [r[0] for r in con.execute(
        "select entered from funnel_steps order by stage_index").fetchall()]
    con.close()
    # Discovery 6, Consideration implied by Decision 6, Decision 6, Purchase 4, then 0
    assert entered == [6, 6, 6, 4, 0, 0]


def test_definitions_load():
    from pipelines.definitions import defs

    d = defs()
    graph = d.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"journeys", "funnel_steps", "stage_metrics"} <= keys
