"""Metric assets around the journeys: bookings and payments, daily rates, repeat purchase and
retention, and the measured journey map (touchpoints, pains, per-stage metrics). Thin wiring
over the metric modules of transforms/ (bookings, daily_rates, repeat,
journey_map_tables), whose docstrings state every definition and grain."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from pipelines.defs.journeys.assets import KINDS, _spec
from pipelines.resources import ProjectResource
from transforms.bookings import build_booking_funnel, build_booking_outcomes, build_payment_failures
from transforms.daily_rates import build_daily_stage_rates
from transforms.ingest_periods import build_ingest_reconciliation_periods
from transforms.journey_findings import build_findings
from transforms.journey_map_tables import (
    build_stage_metrics,
    build_stage_pains,
    build_stage_touchpoints,
)
from transforms.repeat import build_repeat_purchase, build_retention
from transforms.repeat_experience import build_repeat_by_experience
from transforms.tables import fetch_row, skipped_reasons, table_columns

GROUP = "metrics"


def spec(key: str, description: str, deps: list[str]) -> dg.AssetSpec:
    return _spec(key, description, deps, group=GROUP)


@dg.multi_asset(specs=[
    spec("booking_outcomes", "One row per booking: payment, refund and service outcome.",
          ["events"]),
    spec("booking_funnel", "One row per (segment x value x booking step), booking held "
          "constant.", ["events"]),
    spec("payment_attempts", "One row per (day x platform x method): payment attempts, "
          "failures and failure rate, cells without a failure included.", ["events"]),
    spec("payment_failures", "One row per (day x platform x method x failure reason).",
          ["events"]),
])
def bookings(project: ProjectResource) -> Iterator[dg.MaterializeResult]:
    """Follow each booking from creation through payment to service, and count failures."""
    jmap = project.journey_map
    with project.connect() as con:
        n_b = build_booking_outcomes(con, jmap)
        n_f = build_booking_funnel(con, jmap)
        payments = build_payment_failures(con, jmap)
        dropout = fetch_row(
            con, "select max(payment_dropout_rate) from booking_funnel where segment = 'all'"
        )[0] if table_columns(con, "booking_funnel") else None
        skipped = skipped_reasons(con)
    yield dg.MaterializeResult(asset_key="booking_outcomes", metadata={
        "dagster/row_count": n_b, **skipped.get("booking_outcomes", {})})
    yield dg.MaterializeResult(asset_key="booking_funnel", metadata={
        "dagster/row_count": n_f, **skipped.get("booking_funnel", {}),
        **({"payment_dropout_rate": float(dropout)} if dropout is not None else {})})
    for key in ("payment_attempts", "payment_failures"):
        yield dg.MaterializeResult(asset_key=key, metadata={
            "dagster/row_count": payments[key], **skipped.get(key, {})})


@dg.multi_asset(specs=[
    spec("findings", "One row per finding: a window of days or hours where a stage "
         "transition's or the payments' rate departed from its baseline, or a segment worse "
         "than the rest (transforms/findings.py).", ["journeys", "journey_stages", "events"]),
    spec("finding_days", "One row per (finding x series x day): the daily rate behind each "
         "finding, for its chart.", ["journeys", "journey_stages", "events"]),
])
def findings(project: ProjectResource) -> Iterator[dg.MaterializeResult]:
    """What changed, where, since when: the findings engine over the warehouse's journeys."""
    with project.connect() as con:
        n = build_findings(con, project.journey_map)
        top = con.execute("select sentence from findings order by rank limit 5").fetchall()
        n_days = con.execute("select count(*) from finding_days").fetchone()[0]
    yield dg.MaterializeResult(asset_key="findings", metadata={
        "dagster/row_count": n,
        "findings": dg.MetadataValue.md("\n".join(f"- {r[0]}" for r in top) or "none")})
    yield dg.MaterializeResult(asset_key="finding_days", metadata={"dagster/row_count": n_days})


@dg.asset(group_name=GROUP, kinds=KINDS,
          deps=[dg.AssetKey("journey_stages"), dg.AssetKey("payment_attempts"),
                dg.AssetKey("findings")])
def daily_stage_rates(project: ProjectResource) -> dg.MaterializeResult:
    """One row per (day x stage): entered, converted, dropout, payment failure rate, and the
    finding whose window holds the day."""
    jmap = project.journey_map
    with project.connect() as con:
        n = build_daily_stage_rates(con, jmap)
        days = con.execute("select distinct cast(event_date as varchar) from daily_stage_rates "
                           "where coalesce(dropout_finding, failure_finding) is not null "
                           "order by 1").fetchall()
    return dg.MaterializeResult(metadata={
        "dagster/row_count": n, "finding_days": ", ".join(d[0] for d in days) or "-"})


@dg.multi_asset(specs=[
    spec("repeat_purchase", "One row per (group x value x horizon): repeat-purchase rate "
          "among customers observed that long.", ["purchases", "booking_outcomes"]),
    spec("purchase_frequency", "One row per number of purchases per customer.",
          ["purchases", "booking_outcomes"]),
    spec("retention_cohorts", "One row per (week|month x first-purchase cohort x period).",
          ["purchases"]),
    spec("lifecycle", "One row per (week|month x period x status: new, returning, "
          "resurrecting, dormant).", ["purchases"]),
])
def repeat_and_retention(project: ProjectResource) -> Iterator[dg.MaterializeResult]:
    """Measure who buys again, how soon, and how purchase cohorts retain."""
    jmap = project.journey_map
    with project.connect() as con:
        counts = build_repeat_purchase(con, jmap) | build_retention(con, jmap)
        rates = con.execute(
            "select horizon_days, repeat_rate from repeat_purchase where group_name = 'all' "
            "order by horizon_days").fetchall() if table_columns(con, "repeat_purchase") else []
    yield dg.MaterializeResult(asset_key="repeat_purchase", metadata={
        "dagster/row_count": counts["repeat_purchase"],
        **{f"repeat_rate_{h}d": float(r) for h, r in rates if r is not None}})
    for key in ("purchase_frequency", "retention_cohorts", "lifecycle"):
        yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": counts[key]})


@dg.asset(group_name=GROUP, kinds=KINDS,
          deps=[dg.AssetKey(k) for k in ("purchases", "journeys", "stage_events", "events",
                                         "booking_outcomes")])
def repeat_by_experience(project: ProjectResource) -> dg.MaterializeResult:
    """One row per (experience x value x horizon): repeat rate of the customers whose first
    journey had that experience (failed payment, skipped stage, rating, path, segment value),
    tested against the rest."""
    with project.connect() as con:
        n = build_repeat_by_experience(con, project.journey_map)
        skipped = skipped_reasons(con).get("repeat_by_experience", {})
        significant = fetch_row(
            con, "select count(*) filter (where significant) from repeat_by_experience"
        )[0] if not skipped else 0
    return dg.MaterializeResult(metadata={
        "dagster/row_count": n, "significant_rows": int(significant), **skipped})


@dg.multi_asset(specs=[
    spec("stage_touchpoints", "One row per (stage x dimension x value): where customers met "
          "each stage.", ["stage_events"]),
    spec("stage_pains", "One row per (stage x pain x reason): why customers left.",
          ["journeys", "journey_stages"]),
    spec("stage_metrics", "One row per (stage x metric x segment x value): the measured "
          "journey map.", ["journeys", "journey_stages", "funnel_steps", "booking_outcomes",
                           "payment_failures", "repeat_purchase", "purchases"]),
    spec("journey_map_funnel", "One row per (period length x segment x value x stage): the "
          "stage funnel of the journeys entering in the period, per persona, 'all' included.",
          ["journeys", "journey_stages", "funnel_cohorts", "run_settings"]),
    spec("stage_touchpoint_segments", "One row per (period length x segment x value x stage x "
          "dimension x value): touchpoints per period and persona, 'all' included.",
          ["stage_events", "journeys", "funnel_cohorts", "run_settings"]),
    spec("stage_pain_segments", "One row per (period length x segment x value x stage x pain x "
          "reason): pains per period and persona, 'all' included.",
          ["journeys", "journey_stages", "funnel_cohorts", "run_settings"]),
    spec("stage_metric_segments", "One row per (period length x segment x value x stage x "
          "metric): stage metrics per period and persona, 'all' included, in definition order.",
          ["journeys", "journey_stages", "funnel_cohorts", "run_settings", "booking_outcomes",
           "payment_attempts", "repeat_purchase", "purchases"]),
    spec("stage_exit_events", "One row per (period length x segment x value x stage x "
          "dimension x value): the last event and screen of journeys that ended at the stage.",
          ["journeys", "events", "funnel_cohorts", "run_settings"]),
])
def journey_map_tables(project: ProjectResource) -> Iterator[dg.MaterializeResult]:
    """Fill the journey map page: touchpoints, pains and metrics per stage, and per period
    length and persona the funnel, touchpoints, pains, metrics and leavers' last events."""
    jmap = project.journey_map
    with project.connect() as con:
        counts = {"stage_touchpoints": build_stage_touchpoints(con, jmap),
                  "stage_pains": build_stage_pains(con, jmap),
                  "stage_metrics": build_stage_metrics(
                      con, jmap, currency=project.config.currency)}
        # built with the three above: their per-persona tables and the leavers' last events
        for key in ("journey_map_funnel", "stage_touchpoint_segments", "stage_pain_segments",
                    "stage_metric_segments", "stage_exit_events"):
            counts[key] = int(fetch_row(con, f"select count(*) from {key}")[0])
    for key, n in counts.items():
        yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": n})


@dg.asset(group_name=GROUP, kinds=KINDS, deps=[dg.AssetKey("events")])
def ingest_reconciliation_periods(project: ProjectResource) -> dg.MaterializeResult:
    """One row per (grain: day | week | month x source x period): rows read, loaded,
    quarantined and duplicated, with whether the data covers the whole period."""
    with project.connect() as con:
        n = build_ingest_reconciliation_periods(con)
    return dg.MaterializeResult(metadata={"dagster/row_count": n})
