"""Repeat purchase tied to the first journey: which experiences stop customers coming back?

`build_repeat_by_experience` (re)creates `repeat_by_experience`: one row per (experience x value
x horizon_days). It reads `purchases` (transforms/purchases.py), `journeys` (transforms/
journeys.py), `stage_events` (transforms/stages.py), `events` and, for ratings,
`booking_outcomes` (transforms/bookings.py); the grain and columns are in docs/TABLES.md.

The rules:

- **Customers, repeat, eligibility**: exactly those of `repeat_purchase` (transforms/repeat.py,
  `PER_CUSTOMER_SQL`, `eligible_sql`, `repeated_within_sql`): per horizon h of the journey
  map's `repeat_horizons`, `customers` = purchasers whose first purchase is at least h days
  before the data end, `repeaters` = those of them with a second purchase within h days
  (inclusive); `repeat_rate` = the `repeat_rate` macro of transforms/sql/definitions.sql.
- **The first journey** ends with the first purchase. Its experiences (`experience`, values):
  - `failed_payment` (`yes` / `no`): a `payment_failed` metric event of the customer at or
    before the first purchase;
  - `skipped_stage` (`yes` / `no`): the journey (`journeys.skipped_stages`) skipped an optional
    stage that comes before the conversion stage (later ones are outcomes, not experience);
  - `first_rating` (`low (<=n)` / `high (>=n+1)` / `no rating`, n = the map's
    `low_rating_max`): the rating of the first purchase's booking, as in `repeat_purchase`;
  - `first_path`: the stage path up to and including the first purchase — the customer's stage
    events (`stage_events`, stages up to the conversion stage) at or before it, in time order
    (ties by stage position, then event id), consecutive repeats of a stage collapsed as in
    `mining_log` — the `TOP_PATHS` most common paths among purchasers by name, else `other`;
  - one experience per journey-map segment (`channel`, `platform`, ...): the journey's value at
    entry (`journeys`), `'(unknown)'` when missing.
  `experience_type` is `journey` for the first four, `segment` for the segments. An experience
  the data cannot tell is left out (no rows): `failed_payment` without a `payment_failed` role
  or without any such event, `first_rating` without `low_rating_max`, without
  `booking_outcomes` or without any rating, `skipped_stage` without an optional stage before the
  conversion stage, `first_path` without `stage_events`.
- **Test against the rest**: each value is compared with every other customer of the same
  experience and horizon (`rest_*`): a pooled two-proportion z-test, two-sided (statsmodels
  `proportions_ztest`), when both groups have at least `MIN_GROUP_OUTCOMES` (5) repeaters and 5
  non-repeaters, else Fisher's exact test (scipy, two-sided; `z_score` is still the z-test's,
  for its direction); `test` names the one used. NULL when a group is empty or nobody /
  everybody repeated. `significant` = p < `SIGNIFICANCE_LEVEL` (0.05). Both constants are
  transforms/stage_funnels.py's.

Without `purchases` or `journeys` the table is left out (listed in `skipped_tables`).
"""

from __future__ import annotations

import math

import duckdb
import pandas as pd
import pyarrow as pa

from transforms.findings import unregister_arrow
from transforms.journey_map import JourneyMap
from transforms.repeat import PER_CUSTOMER_SQL, eligible_sql, repeated_within_sql
from transforms.sqlutil import Params, ident
from transforms.stage_funnels import MIN_GROUP_OUTCOMES, SIGNIFICANCE_LEVEL
from transforms.tables import (
    built,
    count_rows,
    data_end,
    engine_of,
    fetch_row,
    rating_group_sql,
    role_sql,
    skipped_without,
    table_columns,
)

TABLE = "repeat_by_experience"
# The most common first-journey paths kept by name; the rest are `other`.
TOP_PATHS = 5
OTHER_PATH = "other"
PATH_SEPARATOR = " → "


def _experience_rows(con: duckdb.DuckDBPyConnection, jmap: JourneyMap,
                     params: Params) -> list[str]:
    """SELECTs over `per_customer` (alias c) giving (customer_id, experience_type, experience,
    value), one per experience the data can tell."""
    parts: list[str] = []
    conv_index = jmap.stage(jmap.conversion_stage).index

    probe = Params()
    any_failed = role_sql(jmap, "payment_failed", probe, "e")
    if any_failed != "false" and fetch_row(
            con, f"select count(*) from events e where {any_failed}", probe.values)[0]:
        failed = role_sql(jmap, "payment_failed", params, "e")
        parts.append(f"""
            select c.customer_id, 'journey' as experience_type,
                   'failed_payment' as experience,
                   case when exists (select 1 from events e
                                     where e.customer_id = c.customer_id
                                       and e.event_ts <= c.first_ts and {failed})
                        then 'yes' else 'no' end as value
            from per_customer c""")

    early_optional = [s.name for s in jmap.stages if s.optional and s.index < conv_index]
    if early_optional:
        names = ", ".join(params.add(n) for n in early_optional)
        parts.append(f"""
            select c.customer_id, 'journey' as experience_type, 'skipped_stage' as experience,
                   case when len(list_filter(coalesce(j.skipped_stages, []),
                                             lambda s: s in ({names}))) > 0
                        then 'yes' else 'no' end as value
            from per_customer c left join journeys j using (customer_id)""")

    if (jmap.low_rating_max is not None and "rating" in table_columns(con, "booking_outcomes")
            and fetch_row(con, "select count(rating) from booking_outcomes")[0]):
        parts.append(f"""
            select c.customer_id, 'journey' as experience_type, 'first_rating' as experience,
                   {rating_group_sql(jmap, "b.rating")} as value
            from per_customer c left join booking_outcomes b on b.booking_id = c.first_booking""")

    if table_columns(con, "stage_events"):
        parts.append(f"""
            select c.customer_id, 'journey' as experience_type, 'first_path' as experience,
                   case when r.path_rank <= {int(TOP_PATHS)} then r.path
                        else {params.add(OTHER_PATH)} end as value
            from per_customer c left join _first_paths p using (customer_id)
            left join _path_ranks r using (path)""")

    journey_columns = table_columns(con, "journeys")
    for seg in jmap.segments:
        value = (f"coalesce(cast(j.{ident(seg.name)} as varchar), '(unknown)')"
                 if seg.name in journey_columns else "'(unknown)'")
        parts.append(f"""
            select c.customer_id, 'segment' as experience_type,
                   {params.add(seg.name)} as experience, {value} as value
            from per_customer c left join journeys j using (customer_id)""")
    return parts


def _build_first_paths(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> None:
    """Temp tables `_first_paths` (customer_id, path: the stage path up to the first purchase)
    and `_path_ranks` (path, path_rank: 1 = most purchasers, ties by path)."""
    conv_index = jmap.stage(jmap.conversion_stage).index
    con.execute(f"""
        create or replace temp table _first_paths as
        with per_customer as ({PER_CUSTOMER_SQL}),
        ordered as (
            select s.customer_id, s.stage,
                   row_number() over (partition by s.customer_id
                                      order by s.event_ts, s.stage_index, s.event_id) as seq
            from stage_events s join per_customer c using (customer_id)
            where s.event_ts <= c.first_ts and s.stage_index <= $conv_index
        ),
        visits as (
            select *, lag(stage) over (partition by customer_id order by seq) as previous_stage
            from ordered
        )
        select customer_id, string_agg(stage, $sep order by seq) as path
        from visits where previous_stage is null or previous_stage <> stage
        group by customer_id
    """, {"conv_index": conv_index, "sep": PATH_SEPARATOR})
    con.execute("""
        create or replace temp table _path_ranks as
        select path, row_number() over (order by count(*) desc, path) as path_rank
        from _first_paths group by path
    """)


def two_proportion_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float | None,
                                                                      float | None]:
    """Pooled two-proportion z-test of x1/n1 against x2/n2, two-sided: (z, p), or
    (None, None) when a group is empty or the pooled share is 0 or 1 (no variance)."""
    if n1 <= 0 or n2 <= 0 or x1 + x2 in (0, n1 + n2):
        return None, None
    from statsmodels.stats.proportion import proportions_ztest

    z, p = proportions_ztest([x1, x2], [n1, n2], alternative="two-sided")
    z, p = float(z), float(p)
    return (z, p) if math.isfinite(z) and math.isfinite(p) else (None, None)


def compare_with_rest(x1: int, n1: int, x2: int, n2: int) -> tuple[float | None,
                                                                   float | None, str | None]:
    """(z, p, test) of x1 repeaters of n1 against x2 of n2: the pooled z-test when both groups
    have at least `MIN_GROUP_OUTCOMES` repeaters and non-repeaters, else Fisher's exact test
    (two-sided; z is still the z-test's, for its sign). (None, None, None) when untestable."""
    z, p = two_proportion_test(x1, n1, x2, n2)
    if p is None:
        return None, None, None
    if min(x1, n1 - x1, x2, n2 - x2) >= MIN_GROUP_OUTCOMES:
        return z, p, "z-test"
    from scipy.stats import fisher_exact

    _, exact = fisher_exact([[x1, n1 - x1], [x2, n2 - x2]], alternative="two-sided")
    return z, float(exact), "fisher exact"


def _with_tests(df: pd.DataFrame) -> pd.DataFrame:
    z_scores, p_values, tests, significant = [], [], [], []
    for row in df.itertuples(index=False):
        z, p, test = compare_with_rest(int(row.repeaters), int(row.customers),
                                       int(row.rest_repeaters), int(row.rest_customers))
        z_scores.append(z)
        p_values.append(p)
        tests.append(test)
        significant.append(p is not None and p < SIGNIFICANCE_LEVEL)
    return df.assign(z_score=pd.Series(z_scores, dtype="float64"),
                     p_value=pd.Series(p_values, dtype="float64"),
                     test=pd.Series(tests, dtype="object"),
                     significant=pd.Series(significant, dtype="bool"))


def build_repeat_by_experience(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `repeat_by_experience` (see the module doc); returns its row count."""
    if skipped_without(con, [TABLE], reads=("purchases", "journeys")):
        return 0
    if table_columns(con, "stage_events"):
        _build_first_paths(con, jmap)
    params = Params()
    rows = _experience_rows(con, jmap, params)
    horizons = ", ".join(f"({int(h)})" for h in jmap.repeat_horizons)
    params.values["data_end"] = data_end(con)
    eng = engine_of(con)
    counts = eng.query(f"""
        with per_customer as ({PER_CUSTOMER_SQL}),
        experiences as ({" union all ".join(rows)}),
        horizons as (select * from (values {horizons}) h(horizon_days)),
        per_value as (
            select x.experience_type, x.experience, x.value, h.horizon_days,
                   count(*) as purchasers,
                   count(*) filter (where {eligible_sql("c", "h.horizon_days")}) as customers,
                   count(*) filter (where {repeated_within_sql("c", "h.horizon_days")})
                       as repeaters
            from experiences x join per_customer c using (customer_id)
            cross join horizons h
            group by all
        ),
        totals as (
            select experience, horizon_days, sum(customers) as all_customers,
                   sum(repeaters) as all_repeaters
            from per_value group by all
        ),
        final as (
            select v.*, cast(t.all_customers - v.customers as bigint) as rest_customers,
                   cast(t.all_repeaters - v.repeaters as bigint) as rest_repeaters
            from per_value v join totals t using (experience, horizon_days)
        )
        select experience_type, experience, value, cast(horizon_days as integer) as horizon_days,
               purchasers, customers, repeaters,
               repeat_rate(repeaters, customers) as repeat_rate,
               rest_customers, rest_repeaters,
               repeat_rate(rest_repeaters, rest_customers) as rest_repeat_rate,
               repeat_rate(repeaters, customers) - repeat_rate(rest_repeaters, rest_customers)
                   as rate_diff
        from final
        order by experience_type, experience, value, horizon_days
    """ if rows else "select 1 where false", params.values if rows else None).to_pandas()
    columns = ["experience_type", "experience", "value", "horizon_days", "purchasers",
               "customers", "repeaters", "repeat_rate", "rest_customers", "rest_repeaters",
               "rest_repeat_rate", "rate_diff"]
    if not rows:
        counts = pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    tested = _with_tests(counts)
    # the tests' columns back to the engine as Arrow (NaN of a float column: NULL)
    eng.register_arrow("_repeat_by_experience", pa.Table.from_pandas(tested, preserve_index=False))
    try:
        con.execute(f"""
            create or replace table {TABLE} as
            select cast(experience_type as varchar) as experience_type,
                   cast(experience as varchar) as experience, cast(value as varchar) as value,
                   cast(horizon_days as integer) as horizon_days,
                   cast(purchasers as bigint) as purchasers,
                   cast(customers as bigint) as customers, cast(repeaters as bigint) as repeaters,
                   cast(repeat_rate as double) as repeat_rate,
                   cast(rest_customers as bigint) as rest_customers,
                   cast(rest_repeaters as bigint) as rest_repeaters,
                   cast(rest_repeat_rate as double) as rest_repeat_rate,
                   cast(rate_diff as double) as rate_diff,
                   cast(z_score as double) as z_score, cast(p_value as double) as p_value,
                   cast(test as varchar) as test, cast(significant as boolean) as significant
            from _repeat_by_experience
            order by experience_type, experience, value, horizon_days
        """)
    finally:
        unregister_arrow(eng, "_repeat_by_experience")
        con.execute("drop table if exists _first_paths")
        con.execute("drop table if exists _path_ranks")
    built(con, [TABLE])
    return count_rows(con, TABLE)
