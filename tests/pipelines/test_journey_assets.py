"""Materialize the journey assets on a tmp DuckDB pre-filled with a small `events` table."""

from __future__ import annotations

import dagster as dg
import duckdb

from pipelines.defs.journeys import assets as A
from pipelines.defs.metrics import assets as M
from pipelines.resources import ProjectResource
from tests.conftest import TinyProject
from tests.events import DAY, HOUR, T0, E, make_events_table

ASSETS = [A.stage_events, A.purchases, A.journey_tables, A.funnels, A.transitions, M.bookings,
          M.daily_stage_rates, M.repeat_and_retention, M.repeat_by_experience,
          M.journey_map_tables]
CHECKS = [A.funnel_non_increasing, A.mapping_accounts_for_all_events]
TABLES = ["stage_events", "stage_mapping_summary", "purchases", "journeys", "journey_stages",
          "funnel_steps", "funnel_cohorts", "funnel_segments", "stage_transitions",
          "stage_transition_segments", "booking_outcomes", "booking_funnel", "payment_attempts",
          "payment_failures", "daily_stage_rates", "repeat_purchase", "purchase_frequency",
          "retention_cohorts", "lifecycle", "repeat_by_experience", "stage_touchpoints",
          "stage_pains", "stage_metrics"]


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


def test_materialize_journey_assets(tiny: TinyProject):
    db = str(tiny.warehouse)
    tiny.warehouse.parent.mkdir(parents=True, exist_ok=True)
    _events(db)
    result = dg.materialize(ASSETS + CHECKS,
                            resources={"project": ProjectResource(config_path=str(tiny.config))},
                            selection=dg.AssetSelection.groups("journeys", "metrics"))
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


def _built(tiny: TinyProject) -> ProjectResource:
    tiny.warehouse.parent.mkdir(parents=True, exist_ok=True)
    _events(str(tiny.warehouse))
    project = ProjectResource(config_path=str(tiny.config))
    assert dg.materialize(ASSETS, resources={"project": project},
                          selection=dg.AssetSelection.groups("journeys", "metrics")).success
    return project


def test_funnel_check_fails_when_a_later_stage_has_more_journeys(tiny: TinyProject):
    project = _built(tiny)
    assert A.funnel_non_increasing(project=project).passed
    con = duckdb.connect(str(tiny.warehouse))
    con.execute("update funnel_steps set entered = 5 where stage = 'Service'")  # Purchase has 4
    con.close()
    result = A.funnel_non_increasing(project=project)
    assert not result.passed
    assert result.metadata["increasing_at"].value == "Service"


def test_mapping_check_fails_when_events_are_unaccounted_for(tiny: TinyProject):
    project = _built(tiny)
    assert A.mapping_accounts_for_all_events(project=project).passed
    con = duckdb.connect(str(tiny.warehouse))
    con.execute("insert into events (event_id, source, customer_id, event_name, event_ts) "
                "values ('late:1', 'clickstream', 'c0', 'app_opened', now()::timestamp)")
    con.close()
    result = A.mapping_accounts_for_all_events(project=project)
    assert not result.passed
    assert result.metadata["events"].value == result.metadata["mapped"].value + \
        result.metadata["unmapped"].value + 1


def test_journeys_and_journey_variants_check(tiny: TinyProject):
    """The check ties `journeys` to `journey_variants`: it passes on a built warehouse where one
    customer has a booking but no app event (stage events, no journey), and fails when a
    journey loses its variant row or a customer gets two."""
    from pipelines.defs.mining import assets as MI

    tiny.warehouse.parent.mkdir(parents=True, exist_ok=True)
    _events(str(tiny.warehouse))
    con = duckdb.connect(str(tiny.warehouse))
    con.execute("insert into events (event_id, source, customer_id, is_identified, event_name, "
                "event_ts, event_date, booking_id, amount, status) values ('bookings:nj', "
                "'bookings', 'nj', true, 'booking_created', ?, ?, 'bnj', 10, 'created')",
                [T0 + 3 * DAY, (T0 + 3 * DAY).date()])
    con.close()
    project = ProjectResource(config_path=str(tiny.config))
    result = dg.materialize([A.stage_events, A.purchases, A.journey_tables, MI.mining_tables,
                             A.journeys_match_variants], resources={"project": project})
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.passed
    # c0..c5 have journeys; nj has a Decision stage event only
    assert check.metadata["journeys"].value == 6
    assert check.metadata["journey_variants"].value == 6

    con = duckdb.connect(str(tiny.warehouse))
    con.execute("delete from journey_variants where customer_id = 'c3'")
    con.close()
    failed = A.journeys_match_variants(project=project)
    assert not failed.passed
    assert failed.metadata["journeys_without_variant"].value == 1
    con = duckdb.connect(str(tiny.warehouse))
    con.execute("insert into journey_variants select 'c3', variant_id, fitness, is_fit "
                "from journey_variants where customer_id = 'c2'")
    con.execute("insert into journey_variants select * from journey_variants "
                "where customer_id = 'c2'")
    con.close()
    twice = A.journeys_match_variants(project=project)
    assert not twice.passed
    assert twice.metadata["customers_with_several_variant_rows"].value == 1
    assert twice.metadata["journeys_without_variant"].value == 0
