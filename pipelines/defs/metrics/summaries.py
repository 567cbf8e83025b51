"""Summary assets the dashboard pages read: the run's settings, the headline period, and small
tables that hold the figures pages used to compute themselves (time distributions, the payment
failure matrix, repeat so far, gaps to the second purchase). Thin wiring over
transforms/settings.py, transforms/periods.py and transforms/dashboard_tables.py."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from pipelines.defs.journeys.assets import KINDS
from pipelines.resources import ProjectResource
from transforms import dashboard_tables, periods, settings

GROUP = "metrics"


def _spec(key: str, description: str, deps: list[str]) -> dg.AssetSpec:
    return dg.AssetSpec(key, description=description, group_name=GROUP, kinds=KINDS,
                        deps=[dg.AssetKey(d) for d in deps])


@dg.asset(group_name=GROUP, kinds=KINDS, deps=[dg.AssetKey("events")])
def run_settings(project: ProjectResource) -> dg.MaterializeResult:
    """One row per setting of the run (stages, conversion stage, currency, thresholds, data
    range): what the pages state beside their numbers, never a literal in a page."""
    values = settings.settings_from_journey_map(project.journey_map,
                                                currency=project.config.currency)
    with project.connect() as con:
        n = settings.build_run_settings(con, values)
    return dg.MaterializeResult(metadata={"dagster/row_count": n})


@dg.multi_asset(specs=[
    _spec("period_figures", "One row per (period length x segment x value x figure): the "
          "headline numbers of the last period vs the one before, for all customers and each "
          "offered segment value.",
          ["run_settings", "journeys", "journey_stages", "purchases", "funnel_cohorts"]),
    _spec("period_funnel", "One row per (period length x segment x value x stage): the stage "
          "funnel of the period's complete cohorts.",
          ["run_settings", "journey_stages", "funnel_cohorts"]),
])
def period_tables(project: ProjectResource) -> Iterator[dg.MaterializeResult]:
    """The headline period for every period length and offered segment value of the map."""
    segments = [seg.name for seg in project.journey_map.segments]
    with project.connect() as con:
        s = settings.read_settings(con)
        counts = {"period_figures": periods.build_period_figures(con, s, segments=segments),
                  "period_funnel": periods.build_period_funnel(con, s)}
    for key, n in counts.items():
        yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": n})


@dg.multi_asset(specs=[
    _spec("stage_time_distribution", "One row per stage: quantiles of the time from the "
          "previous stage.", ["journey_stages", "funnel_steps"]),
    _spec("payment_failure_matrix", "One row per (platform x method): payment attempts, "
          "failures and failure rate over all days, ranked.", ["payment_attempts",
                                                              "run_settings"]),
    _spec("repeat_so_far", "One row per (group x value): purchasers and repeat purchasers "
          "whatever the horizon.", ["repeat_purchase"]),
    _spec("repeat_gaps", "One row per customer with a second purchase: days between the first "
          "two purchases.", ["purchases"]),
])
def page_tables(project: ProjectResource) -> Iterator[dg.MaterializeResult]:
    """Figures the pages show that are not part of another table."""
    with project.connect() as con:
        s = settings.read_settings(con)
        counts = {
            "stage_time_distribution": dashboard_tables.build_stage_time_distribution(con),
            "payment_failure_matrix": dashboard_tables.build_payment_failure_matrix(con, s),
            "repeat_so_far": dashboard_tables.build_repeat_so_far(con),
            "repeat_gaps": dashboard_tables.build_repeat_gaps(con),
        }
    for key, n in counts.items():
        yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": n})
