"""Journey assets: stage events, purchases, journeys, funnels and bottlenecks. Thin wiring: run
the transform with the project's journey map, record metadata. The definitions behind every
number are in transforms/stages.py, purchases.py, journeys.py and stage_funnels.py; each table's
grain is in docs/TABLES.md."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from pipelines.resources import ProjectResource
from transforms.journeys import build_journeys
from transforms.purchases import build_purchases
from transforms.stage_funnels import build_funnels, build_transitions
from transforms.stages import build_stage_events
from transforms.tables import count_rows, fetch_row, skipped_reasons

GROUP = "journeys"
# the warehouse's kind as the assets are declared; `on_engine` names the project's engine
KINDS = {"duckdb"}


def on_engine(engine: str, assets: list) -> list:
    """`assets` with the kind `duckdb` replaced by the project's `engine:` (the Dagster UI's
    kind tag of each warehouse asset names the engine that builds it)."""
    if engine in KINDS:
        return list(assets)

    def kind(spec: dg.AssetSpec) -> dg.AssetSpec:
        if not KINDS & set(spec.kinds):
            return spec
        return spec.replace_attributes(kinds=(set(spec.kinds) - KINDS) | {engine})
    return list(dg.map_asset_specs(kind, assets))


def _spec(key: str, description: str, deps: list[str], group: str = GROUP) -> dg.AssetSpec:
    return dg.AssetSpec(key, description=description, group_name=group, kinds=KINDS,
                        deps=[dg.AssetKey(d) for d in deps])


def _rows(con, table: str) -> int:  # noqa: ANN001 - a DuckDB connection
    return count_rows(con, table)


@dg.multi_asset(specs=[
    _spec("stage_events", "One row per (event x stage it maps to) by the journey map's rules.",
          ["events"]),
    _spec("stage_mapping_summary", "One row per (source, event_name): mapped and unmapped "
          "event counts.", ["events"]),
])
def stage_events(project: ProjectResource) -> Iterator[dg.MaterializeResult]:
    """Map every event to the stages whose rules it matches; count what stays unmapped."""
    jmap = project.journey_map
    with project.connect() as con:
        stats = build_stage_events(con, jmap)
        summary_rows = _rows(con, "stage_mapping_summary")
    yield dg.MaterializeResult(asset_key="stage_events", metadata={
        "dagster/row_count": stats.stage_events, "mapped_events": stats.mapped_events,
        "unmapped_events": stats.unmapped_events, "stages": ", ".join(jmap.stage_names)})
    yield dg.MaterializeResult(asset_key="stage_mapping_summary",
                               metadata={"dagster/row_count": summary_rows})


@dg.asset(group_name=GROUP, kinds=KINDS, deps=[dg.AssetKey("events")])
def purchases(project: ProjectResource) -> dg.MaterializeResult:
    """One row per purchase: an order (the journey map's purchase key) with a purchase event
    and no cancelling one, at its first purchase event."""
    jmap = project.journey_map
    with project.connect() as con:
        n = build_purchases(con, jmap)
        skipped = skipped_reasons(con).get("purchases")
        buyers = None if skipped else fetch_row(
            con, "select count(distinct customer_id) from purchases")[0]
    return dg.MaterializeResult(metadata={"dagster/row_count": n, **(skipped or {}),
                                          **({"purchasers": int(buyers)} if buyers is not None
                                             else {})})


@dg.multi_asset(specs=[
    _spec("journeys", "One row per customer journey (the customer's furthest attempt through "
          "the stages).", ["stage_events", "purchases"]),
    _spec("journey_stages", "One row per (journey x stage reached).",
          ["stage_events", "purchases"]),
])
def journey_tables(project: ProjectResource) -> Iterator[dg.MaterializeResult]:
    """Build one journey per customer with the funnel engine over the configured stages."""
    jmap = project.journey_map
    with project.connect() as con:
        n = build_journeys(con, jmap)
        converted, complete = fetch_row(
            con, "select count(*) filter (where converted), count(*) filter (where complete) "
                 "from journeys")
        n_stages = _rows(con, "journey_stages")
    yield dg.MaterializeResult(asset_key="journeys", metadata={
        "dagster/row_count": n, "converted": int(converted), "complete": int(complete)})
    yield dg.MaterializeResult(asset_key="journey_stages",
                               metadata={"dagster/row_count": n_stages})


@dg.multi_asset(specs=[
    _spec("funnel_steps", "One row per stage: the journey funnel over complete journeys.",
          ["journeys", "journey_stages"]),
    _spec("funnel_cohorts", "One row per (entry day x stage), incomplete days marked.",
          ["journeys", "journey_stages"]),
    _spec("funnel_segments", "One row per (segment x value x stage), complete journeys.",
          ["journeys", "journey_stages"]),
])
def funnels(project: ProjectResource) -> Iterator[dg.MaterializeResult]:
    """Count journeys reaching each stage, overall, per entry-day cohort and per segment."""
    jmap = project.journey_map
    with project.connect() as con:
        counts = build_funnels(con, jmap)
        steps = con.execute(
            "select stage, entered from funnel_steps order by stage_index").fetchall()
    yield dg.MaterializeResult(asset_key="funnel_steps", metadata={
        "dagster/row_count": counts["funnel_steps"],
        "entered": dg.MetadataValue.md("\n".join(f"- {s}: {n}" for s, n in steps))})
    for key in ("funnel_cohorts", "funnel_segments"):
        yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": counts[key]})


@dg.multi_asset(specs=[
    _spec("stage_transitions", "One row per pair of consecutive stages: volume, dropout, "
          "time, ranks (the bottleneck table).", ["journeys", "journey_stages"]),
    _spec("stage_transition_segments", "One row per (segment x value x stage pair) with a "
          "two-proportion z-test against the rest.", ["journeys", "journey_stages"]),
])
def transitions(project: ProjectResource) -> Iterator[dg.MaterializeResult]:
    """Rank the steps between consecutive stages by dropout and time, overall and per segment."""
    jmap = project.journey_map
    with project.connect() as con:
        counts = build_transitions(con, jmap)
        worst = con.execute("select from_stage || ' -> ' || to_stage from stage_transitions "
                            "where is_bottleneck").fetchall()
    yield dg.MaterializeResult(asset_key="stage_transitions", metadata={
        "dagster/row_count": counts["stage_transitions"],
        "bottleneck": ", ".join(r[0] for r in worst) or "-"})
    yield dg.MaterializeResult(asset_key="stage_transition_segments", metadata={
        "dagster/row_count": counts["stage_transition_segments"]})


@dg.asset_check(asset="funnel_steps", blocking=True,
                description="Journeys reaching stage k never exceed those reaching stage k-1.")
def funnel_non_increasing(project: ProjectResource) -> dg.AssetCheckResult:
    with project.connect(read_only=True) as con:
        bad = con.execute(
            "select stage from (select stage, entered, lag(entered) over (order by stage_index) "
            "as prev from funnel_steps) where entered > prev").fetchall()
    return dg.AssetCheckResult(passed=not bad,
                               metadata={"increasing_at": ", ".join(r[0] for r in bad) or "-"})


@dg.asset_check(asset="stage_mapping_summary", blocking=True,
                description="Mapped plus unmapped events add up to all events.")
def mapping_accounts_for_all_events(project: ProjectResource) -> dg.AssetCheckResult:
    with project.connect(read_only=True) as con:
        total = fetch_row(con, "select count(*) from events")[0]
        mapped, unmapped = fetch_row(
            con, "select coalesce(sum(mapped_events), 0), coalesce(sum(unmapped_events), 0) "
                 "from stage_mapping_summary")
    return dg.AssetCheckResult(passed=int(mapped) + int(unmapped) == int(total), metadata={
        "events": int(total), "mapped": int(mapped), "unmapped": int(unmapped)})


# on the mining asset `journey_variants` (built after `journeys`); here because this module's
# checks are the ones the definitions load (pipelines/definitions.py)
@dg.asset_check(asset="journey_variants", blocking=True,
                description="Every journey has exactly one journey_variants row and every "
                            "journey_variants row is a journey.")
def journeys_match_variants(project: ProjectResource) -> dg.AssetCheckResult:
    with project.connect(read_only=True) as con:
        journeys, variant_rows, without_variant, without_journey, repeated = fetch_row(con, """
            select (select count(*) from journeys),
                   (select count(*) from journey_variants),
                   (select count(*) from journeys j
                    where not exists (select 1 from journey_variants v
                                      where v.customer_id = j.customer_id)),
                   (select count(*) from journey_variants v
                    where not exists (select 1 from journeys j
                                      where j.customer_id = v.customer_id)),
                   (select count(*) from (select customer_id from journey_variants
                                          group by all having count(*) > 1))""")
    return dg.AssetCheckResult(
        passed=without_variant == without_journey == repeated == 0,
        metadata={"journeys": int(journeys), "journey_variants": int(variant_rows),
                  "journeys_without_variant": int(without_variant),
                  "variant_rows_without_journey": int(without_journey),
                  "customers_with_several_variant_rows": int(repeated)})
