"""Journey assets: stage events, journeys, funnels, bottlenecks, bookings, repeat purchase and
the measured journey map. Thin wiring: load the journey map, run the transform, record metadata.
The definitions behind every number are in transforms/journeys.py and transforms/metrics.py;
each table's grain is in docs/TABLES.md."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from pipelines.resources import Warehouse
from transforms import journeys, metrics
from transforms.journey_map import load_journey_map

GROUP = "journeys"
KINDS = {"duckdb"}


def _spec(key: str, description: str, deps: list[str]) -> dg.AssetSpec:
    return dg.AssetSpec(key, description=description, group_name=GROUP, kinds=KINDS,
                        deps=[dg.AssetKey(d) for d in deps])


def _rows(con, table: str) -> int:  # noqa: ANN001 - a DuckDB connection
    return journeys.count_rows(con, table)


@dg.multi_asset(specs=[
    _spec("stage_events", "One row per (event x stage it maps to) by the journey map's rules.",
          ["events"]),
    _spec("stage_mapping_summary", "One row per (source, event_name): mapped and unmapped "
          "event counts.", ["events"]),
])
def stage_events(warehouse: Warehouse) -> Iterator[dg.MaterializeResult]:
    """Map every event to the stages whose rules it matches; count what stays unmapped."""
    jmap = load_journey_map(warehouse.journey_map)
    with warehouse.connect() as con:
        stats = journeys.build_stage_events(con, jmap)
        summary_rows = _rows(con, "stage_mapping_summary")
    yield dg.MaterializeResult(asset_key="stage_events", metadata={
        "dagster/row_count": stats.stage_events, "mapped_events": stats.mapped_events,
        "unmapped_events": stats.unmapped_events, "stages": ", ".join(jmap.stage_names)})
    yield dg.MaterializeResult(asset_key="stage_mapping_summary",
                               metadata={"dagster/row_count": summary_rows})


@dg.asset(group_name=GROUP, kinds=KINDS, deps=[dg.AssetKey("events")])
def purchases(warehouse: Warehouse) -> dg.MaterializeResult:
    """One row per purchase: a booking paid and not refunded, at its first payment success."""
    jmap = load_journey_map(warehouse.journey_map)
    with warehouse.connect() as con:
        n = journeys.build_purchases(con, jmap)
        buyers = journeys.fetch_row(con, "select count(distinct customer_id) from purchases")[0]
    return dg.MaterializeResult(metadata={"dagster/row_count": n, "purchasers": int(buyers)})


@dg.multi_asset(specs=[
    _spec("journeys", "One row per customer journey (the customer's furthest attempt through "
          "the stages).", ["stage_events", "purchases"]),
    _spec("journey_stages", "One row per (journey x stage reached).",
          ["stage_events", "purchases"]),
])
def journey_tables(warehouse: Warehouse) -> Iterator[dg.MaterializeResult]:
    """Build one journey per customer with the funnel engine over the configured stages."""
    jmap = load_journey_map(warehouse.journey_map)
    with warehouse.connect() as con:
        n = journeys.build_journeys(con, jmap)
        converted, complete = journeys.fetch_row(
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
def funnels(warehouse: Warehouse) -> Iterator[dg.MaterializeResult]:
    """Count journeys reaching each stage, overall, per entry-day cohort and per segment."""
    jmap = load_journey_map(warehouse.journey_map)
    with warehouse.connect() as con:
        counts = journeys.build_funnels(con, jmap)
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
def transitions(warehouse: Warehouse) -> Iterator[dg.MaterializeResult]:
    """Rank the steps between consecutive stages by dropout and time, overall and per segment."""
    jmap = load_journey_map(warehouse.journey_map)
    with warehouse.connect() as con:
        counts = journeys.build_transitions(con, jmap)
        worst = con.execute("select from_stage || ' -> ' || to_stage from stage_transitions "
                            "where is_bottleneck").fetchall()
    yield dg.MaterializeResult(asset_key="stage_transitions", metadata={
        "dagster/row_count": counts["stage_transitions"],
        "bottleneck": ", ".join(r[0] for r in worst) or "-"})
    yield dg.MaterializeResult(asset_key="stage_transition_segments", metadata={
        "dagster/row_count": counts["stage_transition_segments"]})


@dg.multi_asset(specs=[
    _spec("booking_outcomes", "One row per booking: payment, refund and service outcome.",
          ["events"]),
    _spec("booking_funnel", "One row per (segment x value x booking step), booking held "
          "constant.", ["events"]),
    _spec("payment_attempts", "One row per (day x platform x method): payment attempts, "
          "failures and failure rate, cells without a failure included.", ["events"]),
    _spec("payment_failures", "One row per (day x platform x method x failure reason).",
          ["events"]),
])
def bookings(warehouse: Warehouse) -> Iterator[dg.MaterializeResult]:
    """Follow each booking from creation through payment to service, and count failures."""
    jmap = load_journey_map(warehouse.journey_map)
    with warehouse.connect() as con:
        n_b = metrics.build_booking_outcomes(con, jmap)
        n_f = metrics.build_booking_funnel(con, jmap)
        payments = metrics.build_payment_failures(con, jmap)
        dropout = journeys.fetch_row(
            con, "select max(payment_dropout_rate) from booking_funnel where segment = 'all'")[0]
    yield dg.MaterializeResult(asset_key="booking_outcomes", metadata={"dagster/row_count": n_b})
    yield dg.MaterializeResult(asset_key="booking_funnel", metadata={
        "dagster/row_count": n_f, "payment_dropout_rate": float(dropout or 0.0)})
    for key in ("payment_attempts", "payment_failures"):
        yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": payments[key]})


@dg.asset(group_name=GROUP, kinds=KINDS,
          deps=[dg.AssetKey("journey_stages"), dg.AssetKey("events")])
def daily_stage_rates(warehouse: Warehouse) -> dg.MaterializeResult:
    """One row per (day x stage): entered, converted, dropout and a robust-z anomaly flag."""
    jmap = load_journey_map(warehouse.journey_map)
    with warehouse.connect() as con:
        n = metrics.build_daily_stage_rates(con, jmap)
        days = con.execute("select distinct cast(event_date as varchar) from daily_stage_rates "
                           "where anomaly order by 1").fetchall()
    return dg.MaterializeResult(metadata={
        "dagster/row_count": n, "anomaly_days": ", ".join(d[0] for d in days) or "-"})


@dg.multi_asset(specs=[
    _spec("repeat_purchase", "One row per (group x value x horizon): repeat-purchase rate "
          "among customers observed that long.", ["purchases", "booking_outcomes"]),
    _spec("purchase_frequency", "One row per number of purchases per customer.",
          ["purchases", "booking_outcomes"]),
    _spec("retention_cohorts", "One row per (week|month x first-purchase cohort x period).",
          ["purchases"]),
    _spec("lifecycle", "One row per (week|month x period x status: new, returning, "
          "resurrecting, dormant).", ["purchases"]),
])
def repeat_and_retention(warehouse: Warehouse) -> Iterator[dg.MaterializeResult]:
    """Measure who buys again, how soon, and how purchase cohorts retain."""
    jmap = load_journey_map(warehouse.journey_map)
    with warehouse.connect() as con:
        counts = metrics.build_repeat_purchase(con, jmap) | metrics.build_retention(con, jmap)
        rates = con.execute(
            "select horizon_days, repeat_rate from repeat_purchase where group_name = 'all' "
            "order by horizon_days").fetchall()
    yield dg.MaterializeResult(asset_key="repeat_purchase", metadata={
        "dagster/row_count": counts["repeat_purchase"],
        **{f"repeat_rate_{h}d": float(r) for h, r in rates if r is not None}})
    for key in ("purchase_frequency", "retention_cohorts", "lifecycle"):
        yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": counts[key]})


@dg.multi_asset(specs=[
    _spec("stage_touchpoints", "One row per (stage x dimension x value): where customers met "
          "each stage.", ["stage_events"]),
    _spec("stage_pains", "One row per (stage x pain x reason): why customers left.",
          ["journeys", "journey_stages"]),
    _spec("stage_metrics", "One row per (stage x metric x segment x value): the measured "
          "journey map.", ["journeys", "journey_stages", "funnel_steps", "booking_outcomes",
                           "payment_failures", "repeat_purchase", "purchases"]),
])
def journey_map_tables(warehouse: Warehouse) -> Iterator[dg.MaterializeResult]:
    """Fill the journey map page: touchpoints, pains and metrics per stage."""
    jmap = load_journey_map(warehouse.journey_map)
    with warehouse.connect() as con:
        counts = {"stage_touchpoints": metrics.build_stage_touchpoints(con, jmap),
                  "stage_pains": metrics.build_stage_pains(con, jmap),
                  "stage_metrics": metrics.build_stage_metrics(con, jmap)}
    for key, n in counts.items():
        yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": n})


@dg.asset_check(asset="funnel_steps", blocking=True,
                description="Journeys reaching stage k never exceed those reaching stage k-1.")
def funnel_non_increasing(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect(read_only=True) as con:
        bad = con.execute(
            "select stage from (select stage, entered, lag(entered) over (order by stage_index) "
            "as prev from funnel_steps) where entered > prev").fetchall()
    return dg.AssetCheckResult(passed=not bad,
                               metadata={"increasing_at": ", ".join(r[0] for r in bad) or "-"})


@dg.asset_check(asset="stage_mapping_summary", blocking=True,
                description="Mapped plus unmapped events add up to all events.")
def mapping_accounts_for_all_events(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect(read_only=True) as con:
        total = journeys.fetch_row(con, "select count(*) from events")[0]
        mapped, unmapped = journeys.fetch_row(
            con, "select coalesce(sum(mapped_events), 0), coalesce(sum(unmapped_events), 0) "
                 "from stage_mapping_summary")
    return dg.AssetCheckResult(passed=int(mapped) + int(unmapped) == int(total), metadata={
        "events": int(total), "mapped": int(mapped), "unmapped": int(unmapped)})
