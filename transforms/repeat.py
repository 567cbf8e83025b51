"""Repeat purchase and retention: who buys again, how soon, and how purchase cohorts retain.

Every function takes a DuckDB connection holding `purchases` (transforms/purchases.py; for the
repeat groups also `booking_outcomes`, transforms/bookings.py) and the loaded journey map, and
(re)creates its tables with CREATE OR REPLACE. Grains and columns are in docs/TABLES.md. The
rules:

- **Repeat rate at horizon h**: among purchasers whose first purchase is at least h days before
  the data end, the share with a second purchase within h days (inclusive) of the first
  (`repeat_rate` of transforms/sql/definitions.sql), overall and per group of the first
  purchase (its rating group, platform, service category). The purchasers (`PER_CUSTOMER_SQL`)
  and the two predicates (`eligible_sql`, `repeated_within_sql`) are defined once here; the
  repeat by first-journey experience (transforms/repeat_experience.py) reads the same.
- **Retention**: cohort = calendar week (ISO, Monday) or month of the first purchase; cell
  (c, p) counts cohort members purchasing in period p ("on") or in p or any later period
  ("on or after"); a period not ended by the data end is incomplete
  (transforms/sql/retention_cohorts.sql over the periods with a purchase and the calendar of
  transforms/sql/_purchase_periods.sql and _purchase_calendar.sql).
- **Lifecycle** per period: new (first purchase in it), returning (purchased in it and the
  previous period), resurrecting (in it, not the previous one, but before), dormant (in the
  previous period, not in it) (transforms/sql/lifecycle.sql).

`repeat_purchase` is assembled here: its rating groups follow the journey map's
`low_rating_max` and its horizons the map's `repeat_horizons`; `purchase_frequency`,
`retention_cohorts` and `lifecycle` are static SQL files.
"""

from __future__ import annotations

import duckdb

from transforms.journey_map import JourneyMap
from transforms.sqlutil import sql_file
from transforms.tables import (
    built,
    count_rows,
    data_end,
    rating_group_sql,
    skipped_without,
    table_columns,
)

# One row per purchaser (from `purchases`): the first and second purchase times, the number of
# purchases and the first purchase's order. Every repeat table reads its customers from here.
PER_CUSTOMER_SQL = """
            select customer_id,
                   min(purchase_ts) as first_ts,
                   min(purchase_ts) filter (where purchase_number = 2) as second_ts,
                   count(*) as purchases,
                   arg_min(order_id, purchase_number) as first_booking
            from purchases group by all"""


def eligible_sql(alias: str, horizon: str) -> str:
    """The purchaser (a `PER_CUSTOMER_SQL` row as `alias`) is observed for the whole horizon
    (`horizon`: an SQL expression in days) after the first purchase: first purchase + horizon
    <= the data end (bound as `$data_end`)."""
    return f"{alias}.first_ts + to_days({horizon}) <= $data_end"


def repeated_within_sql(alias: str, horizon: str) -> str:
    """Eligible, and the second purchase came within the horizon (inclusive)."""
    return (f"{eligible_sql(alias, horizon)} "
            f"and {alias}.second_ts <= {alias}.first_ts + to_days({horizon})")


def build_repeat_purchase(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> dict[str, int]:
    """(Re)build `repeat_purchase` (one row per group x value x horizon) and
    `purchase_frequency` (one row per number of purchases). Needs `purchases`,
    `booking_outcomes`."""
    if skipped_without(con, ["repeat_purchase", "purchase_frequency"], reads=("purchases",)):
        return {"repeat_purchase": 0, "purchase_frequency": 0}
    end = data_end(con)
    horizons = ", ".join(f"({int(h)})" for h in jmap.repeat_horizons)
    # the first purchase's booking tells its rating, platform and category, where bookings exist
    if table_columns(con, "booking_outcomes"):
        described = f"""
            select c.*, epoch(c.second_ts - c.first_ts) / 86400 as days_to_second,
                   {rating_group_sql(jmap, "b.rating")} as first_rating,
                   coalesce(b.platform, '(unknown)') as platform,
                   coalesce(b.service_category, '(unknown)') as service_category
            from per_customer c left join booking_outcomes b on b.booking_id = c.first_booking"""
        groups = """
            union all select 'first_rating', first_rating, * from described
            union all select 'platform', platform, * from described
            union all select 'service_category', service_category, * from described"""
    else:
        described = """
            select c.*, epoch(c.second_ts - c.first_ts) / 86400 as days_to_second
            from per_customer c"""
        groups = ""
    con.execute(
        f"""
        create or replace table repeat_purchase as
        with per_customer as ({PER_CUSTOMER_SQL}
        ),
        described as ({described}
        ),
        grouped as (
            select 'all' as group_name, 'all' as group_value, * from described{groups}
        ),
        horizons as (select * from (values {horizons}) h(horizon_days)),
        final as (
            select g.group_name, g.group_value, h.horizon_days,
                   count(*) as purchasers,
                   count(*) filter (where g.purchases >= 2) as repeat_purchasers,
                   count(*) filter (where {eligible_sql("g", "h.horizon_days")}) as eligible,
                   count(*) filter (where {repeated_within_sql("g", "h.horizon_days")})
                       as repeated_within,
                   quantile_cont(g.days_to_second, 0.5) as median_days_to_second,
                   quantile_cont(g.days_to_second, 0.75) as p75_days_to_second,
                   quantile_cont(g.days_to_second, 0.9) as p90_days_to_second,
                   avg(g.purchases) as mean_purchases
            from grouped g cross join horizons h
            group by all
        )
        select group_name, group_value, horizon_days, purchasers, repeat_purchasers, eligible,
               repeated_within, repeat_rate(repeated_within, eligible) as repeat_rate,
               median_days_to_second, p75_days_to_second, p90_days_to_second, mean_purchases
        from final
        order by group_name <> 'all', group_name, group_value, horizon_days
        """,
        {"data_end": end},
    )
    con.execute(sql_file("purchase_frequency"))
    built(con, ["repeat_purchase", "purchase_frequency"])
    return {t: count_rows(con, t) for t in ("repeat_purchase", "purchase_frequency")}


def build_retention(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> dict[str, int]:
    """(Re)build `retention_cohorts` (one row per period type x cohort x period number) and
    `lifecycle` (one row per period type x period x status). Needs `purchases`."""
    del jmap
    if skipped_without(con, ["retention_cohorts", "lifecycle"], reads=("purchases",)):
        return {"retention_cohorts": 0, "lifecycle": 0}
    con.execute(sql_file("_purchase_periods"))
    con.execute(sql_file("_purchase_calendar"), {"data_end": data_end(con)})
    con.execute(sql_file("retention_cohorts"))
    con.execute(sql_file("lifecycle"))
    con.execute("drop table if exists _purchase_calendar")
    con.execute("drop table if exists _purchase_periods")
    built(con, ["retention_cohorts", "lifecycle"])
    return {t: count_rows(con, t) for t in ("retention_cohorts", "lifecycle")}
