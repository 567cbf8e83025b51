"""The per-persona journey-map tables are computed for every (period, persona) in one statement
each (transforms/journey_map_tables.py: groups of `_jm_group_members`, a LATERAL subquery per
group for the metrics). An independent check: a persona's rows must be the whole-data rows of
a warehouse holding only that persona's customers' events (`stage_touchpoints`, `stage_pains`,
`stage_metrics`: other statements, with no groups involved; for the leavers and the funnel,
which have no whole-data table, its 'all' rows). The events are those of
test_journey_map_persona.py (its docstring tells who does what); the comparison is on the
whole data (the longest period), which holds every journey in both warehouses.

Plus, by hand: a persona without bookings, payments or purchases still has the metric rows
that count over all its rows (zero or no value), as `stage_metrics` has for the whole data.
"""

from __future__ import annotations

import pytest

from tests.conftest import memory_warehouse
from tests.events import make_events_table
from tests.transforms.test_journey_map_persona import ALL_DAYS, _rows
from tests.transforms.test_metrics import _build_stage_metric_inputs
from transforms.journey_map_tables import (
    build_stage_metrics,
    build_stage_pains,
    build_stage_touchpoints,
)

# per per-persona table: the columns a persona's rows share with the one-persona warehouse,
# and that warehouse's table holding them: the whole-data table where there is one (a
# different statement than the per-persona one), else the per-persona table's 'all' rows.
# period_start / period_end are left out of the funnel: the latest complete cohort, and so a
# period's window, depends on who is in the data (the whole data holds every journey anyway).
TABLES = {
    "stage_touchpoint_segments": ("stage, stage_index, dimension, value, events, customers, "
                                  "share, rank", "stage_touchpoints"),
    "stage_pain_segments": ("stage, stage_index, pain, reason, events, customers, share, rank",
                            "stage_pains"),
    # the metrics stage_metrics has over all customers (metric_order numbers the metrics the
    # whole table holds: fewer in a smaller warehouse; the totals of the by-channel campaign
    # metrics are only per persona)
    "stage_metric_segments": ("stage, stage_index, metric, value, unit", "stage_metrics"),
    "stage_exit_events": ("stage, stage_index, dimension, value, journeys, leavers, share, "
                          "rank, stage_rank", None),
    "journey_map_funnel": ("stage_index, stage, optional, entered, observed, "
                           "overall_conversion, step_conversion, dropoff_count, dropout_rate, "
                           "median_seconds, p75_seconds, p90_seconds, mean_seconds", None),
}

# who is in which persona (test_journey_map_persona.py's docstring); x is no journey
PERSONAS = {
    ("platform", "ios"): {"c1", "c4"},
    ("platform", "android"): {"c2", "c3", "c5"},
    ("customer_type", "returning"): {"c3"},
    ("customer_type", "new"): {"c1", "c2", "c4", "c5"},
}


def build_journey_map(con, jmap, rows):
    """The journey-map tables of `rows` (event rows of tests.events) on `con`."""
    make_events_table(con, rows)
    _build_stage_metric_inputs(con, jmap)
    build_stage_touchpoints(con, jmap)
    build_stage_pains(con, jmap)
    build_stage_metrics(con, jmap, currency="EUR")
    return con


def _sorted(rows):
    """Rows sorted, numbers to 12 digits (a mean may differ in its last bits with the order
    DuckDB sums in)."""
    return sorted((tuple(float(f"{v:.12g}") if isinstance(v, float) else v for v in r)
                   for r in rows), key=repr)


def _persona_rows(con, table, segment, value):
    """A per-persona table's rows of one (segment, value) on the whole data (the longest
    period: a warehouse without c1 starts a day later)."""
    cols, _ = TABLES[table]
    return _sorted(con.execute(
        f"select {cols} from {table} where period_days = (select max(period_days) from "
        f"{table}) and segment = ? and segment_value = ?", [segment, value]).fetchall())


def _reference_rows(con, table):
    """The same rows over every customer of `con`, from its whole-data table if any."""
    cols, whole = TABLES[table]
    if whole is None:
        return _persona_rows(con, table, "all", "all")
    where = "where segment = 'all'" if table == "stage_metric_segments" else ""
    return _sorted(con.execute(f"select {cols} from {whole} {where}").fetchall())


@pytest.fixture
def built(con, jmap):
    return build_journey_map(con, jmap, _rows())


@pytest.mark.parametrize("persona", sorted(PERSONAS))
def test_a_persona_is_the_whole_map_of_its_customers_alone(built, jmap, persona):
    segment, value = persona
    alone = memory_warehouse()
    try:
        build_journey_map(alone, jmap, [r for r in _rows()
                             if r["customer_id"] in PERSONAS[persona] | {"x"}])
        for table in TABLES:
            mine = _persona_rows(built, table, segment, value)
            reference = _reference_rows(alone, table)
            assert reference, (table, persona)
            if table == "stage_metric_segments":  # the metrics stage_metrics has
                mine = [r for r in mine if r[:3] in {x[:3] for x in reference}]
            assert mine == reference, (table, persona)
    finally:
        alone.close()


def test_a_persona_without_bookings_has_the_counting_metrics(built):
    # customer_type returning = c3 alone: an app open, no booking, payment or purchase
    m = {r[0]: r[1] for r in built.execute(
        "select metric, value from stage_metric_segments where period_days = ? "
        "and segment = 'customer_type' and segment_value = 'returning'", [ALL_DAYS]
    ).fetchall()}
    for metric in ("bookings_created", "completed_transactions", "cancellations", "no_shows",
                   "ratings", "low_ratings", "complaints", "new_customers"):
        assert m[metric] == 0, metric
    # averages over no rows: a row without a value
    for metric in ("average_basket", "average_rating", "purchases_per_customer",
                   "median_days_to_repeat"):
        assert metric in m and m[metric] is None, metric
    # repeat rates are per horizon over first purchases: none without a purchase
    assert not any(k.startswith("repeat_rate_") for k in m)
