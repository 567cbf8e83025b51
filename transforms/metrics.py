"""Metrics around the journeys: bookings and payments, daily rates, repeat purchase, retention,
lifecycle, and the per-stage touchpoints, pains and metrics of the measured journey map.

Functions take a DuckDB connection (with `events` and the tables of transforms/journeys.py) and
the loaded journey map, and (re)create tables with CREATE OR REPLACE. Grains and columns are in
docs/TABLES.md. Which events play which role (payment succeeded, refund, review, ...) comes from
the journey map's `metric_events`, never from names written here. The rules:

- **Purchase** (funnel-semantics.md): a booking with a payment success and no refund, distinct
  booking ids, at its first success (`purchases`, built by transforms/journeys.py).
- **Booking funnel**: actor = booking id (booking held constant), ordered steps created ->
  payment succeeded -> completed through the funnel engine, window = `conversion_window`.
  A failed attempt followed by a success is paid; payment dropout = started, never paid.
- **Repeat rate at horizon h**: among purchasers whose first purchase is at least h days before
  the data end, the share with a second purchase within h days (inclusive) of the first.
- **Retention**: cohort = calendar week (ISO, Monday) or month of the first purchase; cell
  (c, p) counts cohort members purchasing in period p ("on") or in p or any later period
  ("on or after"); a period not ended by the data end is incomplete.
- **Lifecycle** per period: new (first purchase in it), returning (purchased in it and the
  previous period), resurrecting (in it, not the previous one, but before), dormant (in the
  previous period, not in it).
- **Anomalies** (`daily_stage_rates`): robust z = (x - median) / (1.4826 * MAD) over the
  baseline days (complete days with at least `anomaly.min_daily_entered` journeys, or payment
  attempts for the failure rate); when MAD = 0 the scale is 1.2533 * mean absolute deviation;
  |z| > `anomaly.threshold` (3.5) flags the day.
- **Payment failure rate** = failed / (succeeded + failed) payment outcome events, summed over
  the `payment_attempts` cells asked about (cells without a failure included).
- **Period headline figures** (`period_figures`): new customers, purchases, repeat purchasers
  and conversion of the complete cohorts of a period, defined in its docstring.
"""

from __future__ import annotations

from datetime import date

import duckdb

from transforms.funnel import Step, funnel_actors
from transforms.journey_map import JourneyMap, rule_sql
from transforms.journeys import count_rows, data_end, fetch_row
from transforms.sqlutil import Params, ident


def low_rating_sql(jmap: JourneyMap, column: str) -> str:
    """The low-rating predicate (rating <= `low_rating_max`), or `false` without ratings."""
    if jmap.low_rating_max is None:
        return "false"
    return f"{column} <= {int(jmap.low_rating_max)}"


def rating_group_sql(jmap: JourneyMap, column: str) -> str:
    """A rating's group: 'low (<=n)', 'high (>=n+1)' or 'no rating'."""
    if jmap.low_rating_max is None:
        return "'no rating'"
    n = int(jmap.low_rating_max)
    return (f"case when {low_rating_sql(jmap, column)} then 'low (<={n})' "
            f"when {column} > {n} then 'high (>={n + 1})' else 'no rating' end")


def _role(jmap: JourneyMap, role: str, params: Params, alias: str = "e") -> str:
    """The predicate of a metric role, or `false` when the journey map does not define it."""
    rule = jmap.metric_events.get(role)
    return rule_sql(rule, params, alias) if rule is not None else "false"


# --------------------------------------------------------------------------------------------
# bookings and payments


def build_booking_outcomes(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `booking_outcomes`: one row per booking_id seen in `events`."""
    p = Params()
    created = _role(jmap, "booking_created", p)
    succeeded = _role(jmap, "payment_succeeded", p)
    failed = _role(jmap, "payment_failed", p)
    initiated = _role(jmap, "payment_initiated", p)
    refunded = _role(jmap, "payment_refunded", p)
    cancelled = _role(jmap, "booking_cancelled", p)
    no_show = _role(jmap, "booking_no_show", p)
    completed = _role(jmap, "booking_completed", p)
    review = _role(jmap, "review", p)
    con.execute(
        f"""
        create or replace table booking_outcomes as
        with flagged as (
            select e.*,
                   {created} as is_created, {succeeded} as is_succeeded, {failed} as is_failed,
                   {initiated} as is_initiated, {refunded} as is_refunded,
                   {cancelled} as is_cancelled, {no_show} as is_no_show,
                   {completed} as is_completed, {review} as is_review
            from events e
            where e.booking_id is not null
        ),
        final as (
            select
                -- ids
                booking_id,
                coalesce(arg_min(customer_id, event_ts) filter (where is_created),
                         arg_min(customer_id, event_ts) filter (where customer_id is not null))
                    as customer_id,
                -- booking
                min(event_ts) filter (where is_created) as created_ts,
                cast(min(event_ts) filter (where is_created) as date) as created_date,
                coalesce(arg_min(platform, event_ts) filter (where is_created),
                         arg_min(platform, event_ts) filter (where platform is not null))
                    as platform,
                arg_min(city, event_ts) filter (where city is not null) as city,
                arg_min(service_category, event_ts) filter (where service_category is not null)
                    as service_category,
                arg_min(salon_id, event_ts) filter (where salon_id is not null) as salon_id,
                coalesce(arg_min(amount, event_ts) filter (where is_created),
                         arg_min(amount, event_ts) filter (where is_succeeded)) as amount,
                -- payment
                bool_or(is_initiated or is_succeeded or is_failed) as payment_started,
                count(distinct payment_id) filter (where is_succeeded or is_failed)
                    as payment_attempts,
                count(distinct payment_id) filter (where is_failed) as failed_attempts,
                bool_or(is_succeeded) as paid,
                min(event_ts) filter (where is_succeeded) as paid_ts,
                bool_or(is_refunded) as refunded,
                bool_or(is_succeeded) and not bool_or(is_refunded) as purchase,
                arg_max(method, event_ts) filter (where method is not null) as last_method,
                arg_max(failure_reason, event_ts) filter (where is_failed)
                    as last_failure_reason,
                -- service
                bool_or(is_cancelled) as cancelled,
                bool_or(is_no_show) as no_show,
                bool_or(is_completed) as completed,
                arg_max(cancel_reason, event_ts) filter (where cancel_reason is not null)
                    as cancel_reason,
                min(event_ts) filter (where is_completed) as completed_ts,
                arg_max(rating, event_ts) filter (where is_review and rating is not null)
                    as rating,
                arg_max(complaint, event_ts) filter (where complaint is not null) as complaint
            from flagged
            group by booking_id
        )
        select * from final order by booking_id
        """,
        p.values,
    )
    return count_rows(con, "booking_outcomes")


def build_booking_funnel(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `booking_funnel`: one row per (segment x value x booking step), actor =
    booking id, from the funnel engine. Needs `booking_outcomes`."""
    p = Params()
    created = _role(jmap, "booking_created", p)
    succeeded = _role(jmap, "payment_succeeded", p)
    completed = _role(jmap, "booking_completed", p)
    steps_named = [("created", "booking created"), ("paid", "payment succeeded"),
                   ("completed", "booking completed")]
    con.execute(
        f"""
        create or replace temp table _booking_steps as
        select booking_id, event_ts,
               case when {created} then 'created' when {succeeded} then 'paid'
                    when {completed} then 'completed' end as step
        from events e
        where booking_id is not null and ({created} or {succeeded} or {completed})
        """,
        p.values,
    )
    steps = [Step(label, event=key) for key, label in steps_named]
    actors = funnel_actors(con, "_booking_steps", steps, window_seconds=jmap.window_seconds,
                           actor_col="booking_id", event_col="step", time_col="event_ts")
    con.execute(f"create or replace temp table _booking_actors as {actors.sql_query()}")
    con.execute("drop table if exists _booking_steps")
    p = Params()
    labels = ", ".join(f"({k}, {p.add(label)})" for k, (_, label) in enumerate(steps_named, 1))
    con.execute(
        f"""
        create or replace table booking_funnel as
        with actors as (
            select a.*, b.platform, b.service_category, b.payment_started,
                   b.payment_started and not b.paid as not_paid
            from _booking_actors a join booking_outcomes b on b.booking_id = a.actor
        ),
        grouped as (
            select 'all' as segment, 'all' as segment_value, * from actors
            union all
            select 'platform', coalesce(platform, '(unknown)'), * from actors
            union all
            select 'service_category', coalesce(service_category, '(unknown)'), * from actors
        ),
        steps as (select * from (values {labels}) s(step_index, step)),
        per_step as (
            select g.segment, g.segment_value, s.step_index, s.step,
                   count(*) filter (where g.furthest_step >= s.step_index) as entered,
                   quantile_cont(case s.step_index when 2 then epoch(g.step_2_ts - g.step_1_ts)
                                 when 3 then epoch(g.step_3_ts - g.step_2_ts) end, 0.5)
                       as median_seconds,
                   quantile_cont(case s.step_index when 2 then epoch(g.step_2_ts - g.step_1_ts)
                                 when 3 then epoch(g.step_3_ts - g.step_2_ts) end, 0.75)
                       as p75_seconds,
                   quantile_cont(case s.step_index when 2 then epoch(g.step_2_ts - g.step_1_ts)
                                 when 3 then epoch(g.step_3_ts - g.step_2_ts) end, 0.9)
                       as p90_seconds,
                   avg(case s.step_index when 2 then epoch(g.step_2_ts - g.step_1_ts)
                       when 3 then epoch(g.step_3_ts - g.step_2_ts) end) as mean_seconds
            from grouped g cross join steps s
            group by all
        ),
        payment as (
            select segment, segment_value,
                   count(*) filter (where payment_started) as payment_started,
                   count(*) filter (where not_paid) as payment_not_paid
            from grouped group by all
        ),
        final as (
            select ps.segment, ps.segment_value, ps.step_index, ps.step, ps.entered,
                   overall_conversion(ps.entered, first_value(ps.entered) over w)
                       as overall_conversion,
                   step_conversion(ps.entered, lag(ps.entered) over w) as step_conversion,
                   lag(ps.entered) over w - ps.entered as dropoff_count,
                   dropout_rate(ps.entered, lag(ps.entered) over w) as dropout_rate,
                   ps.median_seconds, ps.p75_seconds, ps.p90_seconds, ps.mean_seconds,
                   pm.payment_started, pm.payment_not_paid,
                   dropout_rate(pm.payment_started - pm.payment_not_paid, pm.payment_started)
                       as payment_dropout_rate
            from per_step ps join payment pm using (segment, segment_value)
            window w as (partition by ps.segment, ps.segment_value order by ps.step_index)
        )
        select * from final
        order by segment <> 'all', segment, segment_value, step_index
        """,
        p.values,
    )
    con.execute("drop table if exists _booking_actors")
    return count_rows(con, "booking_funnel")


def build_payment_failures(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> dict[str, int]:
    """(Re)build `payment_attempts` (one row per day x platform x method with at least one
    attempt, failures or not) and `payment_failures` (one row per day x platform x method x
    failure_reason with at least one failed attempt). Attempt = a succeeded or failed payment
    outcome event; a rate over several cells is sum(failures) / sum(attempts) of
    `payment_attempts`, never one from `payment_failures`, which has no row for the cells
    without a failure."""
    p = Params()
    succeeded = _role(jmap, "payment_succeeded", p)
    failed = _role(jmap, "payment_failed", p)
    con.execute(
        f"""
        create or replace table payment_attempts as
        with outcomes as (
            select event_date, coalesce(platform, '(unknown)') as platform,
                   coalesce(method, '(unknown)') as method, {failed} as is_failed
            from events e
            where {succeeded} or {failed}
        ),
        final as (
            select event_date, platform, method,
                   count(*) as attempts,
                   count(*) filter (where is_failed) as failures,
                   failure_rate(count(*) filter (where is_failed), count(*)) as failure_rate
            from outcomes group by all
        )
        select * from final order by event_date, platform, method
        """,
        p.values,
    )
    p = Params()
    failed = _role(jmap, "payment_failed", p)
    con.execute(
        f"""
        create or replace table payment_failures as
        with reasons as (
            select event_date, coalesce(platform, '(unknown)') as platform,
                   coalesce(method, '(unknown)') as method,
                   coalesce(failure_reason, '(unknown)') as failure_reason, count(*) as failures
            from events e
            where {failed}
            group by all
        ),
        final as (
            select r.event_date, r.platform, r.method, r.failure_reason, r.failures,
                   a.attempts, failure_rate(r.failures, a.attempts) as failure_rate,
                   a.failure_rate as total_failure_rate
            from reasons r join payment_attempts a using (event_date, platform, method)
        )
        select * from final order by event_date, platform, method, failure_reason
        """,
        p.values,
    )
    return {t: count_rows(con, t) for t in ("payment_attempts", "payment_failures")}


def _robust_z(value: str) -> str:
    """SQL for the robust z-score of column `value`; expects the columns med_<value>,
    mad_<value> and meanad_<value> of its baseline."""
    return (f"case when mad_{value} > 0 then ({value} - med_{value}) / (1.4826 * mad_{value}) "
            f"when meanad_{value} > 0 then ({value} - med_{value}) / (1.253314 * meanad_{value}) "
            f"end")


def build_daily_stage_rates(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `daily_stage_rates`: one row per (day x stage) with journeys first reaching
    the stage that day, how many went on to the next stage, the payment failure rate (on the
    conversion stage's row) and a robust-z anomaly flag. Needs `journey_stages`, `journeys`."""
    p = Params()
    conv_idx = jmap.stage(jmap.conversion_stage).index
    last_idx = jmap.stages[-1].index
    thr = float(jmap.anomaly_threshold)
    min_n = int(jmap.anomaly_min_entered)
    con.execute(
        f"""
        create or replace table daily_stage_rates as
        with reached as (
            select s.customer_id, s.stage_index, s.stage, cast(s.reached_ts as date) as day,
                   s.complete,
                   exists (select 1 from journey_stages n where n.customer_id = s.customer_id
                           and n.stage_index = s.stage_index + 1) as went_on
            from journey_stages s where s.reached_ts is not null
        ),
        per_day as (
            select day as event_date, stage_index, stage, count(*) as entered,
                   count(*) filter (where went_on) as went_on,
                   bool_and(complete) as all_complete
            from reached group by day, stage_index, stage
        ),
        payments as (
            select event_date, sum(attempts) as payment_attempts,
                   sum(failures) as payment_failures
            from payment_attempts group by all
        ),
        joined as (
            select d.event_date, d.stage_index, d.stage, d.entered,
                   case when d.stage_index < {last_idx} then d.went_on end as converted,
                   case when d.stage_index < {last_idx}
                        then dropout_rate(d.went_on, d.entered) end as dropout_rate,
                   d.all_complete as complete,
                   case when d.stage_index = {conv_idx} then py.payment_attempts end
                       as payment_attempts,
                   case when d.stage_index = {conv_idx} then py.payment_failures end
                       as payment_failures,
                   case when d.stage_index = {conv_idx}
                        then failure_rate(py.payment_failures, py.payment_attempts) end
                       as payment_failure_rate
            from per_day d left join payments py using (event_date)
        ),
        baseline as (
            select stage_index,
                   median(dropout_rate) filter (where complete and entered >= {min_n})
                       as med_dropout_rate,
                   median(payment_failure_rate) filter (where payment_attempts >= {min_n})
                       as med_payment_failure_rate
            from joined group by all
        ),
        spread as (
            select j.stage_index,
                   median(abs(j.dropout_rate - b.med_dropout_rate))
                       filter (where j.complete and j.entered >= {min_n}) as mad_dropout_rate,
                   avg(abs(j.dropout_rate - b.med_dropout_rate))
                       filter (where j.complete and j.entered >= {min_n})
                       as meanad_dropout_rate,
                   median(abs(j.payment_failure_rate - b.med_payment_failure_rate))
                       filter (where j.payment_attempts >= {min_n})
                       as mad_payment_failure_rate,
                   avg(abs(j.payment_failure_rate - b.med_payment_failure_rate))
                       filter (where j.payment_attempts >= {min_n})
                       as meanad_payment_failure_rate
            from joined j join baseline b using (stage_index) group by all
        ),
        scored as (
            select j.*,
                   case when j.complete and j.entered >= {min_n}
                        then {_robust_z('dropout_rate')} end as dropout_z,
                   case when j.payment_attempts >= {min_n}
                        then {_robust_z('payment_failure_rate')} end as failure_z
            from joined j join baseline using (stage_index) join spread using (stage_index)
        ),
        final as (
            select event_date, stage_index, stage, entered, converted, dropout_rate,
                   payment_attempts, payment_failures, payment_failure_rate, complete,
                   dropout_z, failure_z,
                   coalesce(abs(dropout_z) > {thr}, false)
                       or coalesce(abs(failure_z) > {thr}, false) as anomaly,
                   nullif(concat_ws(', ',
                       case when abs(failure_z) > {thr} then 'payment_failure_rate '
                            || case when failure_z > 0 then 'high' else 'low' end end,
                       case when abs(dropout_z) > {thr} then 'dropout_rate '
                            || case when dropout_z > 0 then 'high' else 'low' end end), '')
                       as anomaly_reason
            from scored
        )
        select * from final order by event_date, stage_index
        """,
        p.values,
    )
    return count_rows(con, "daily_stage_rates")


# --------------------------------------------------------------------------------------------
# repeat purchase, retention, lifecycle


def build_repeat_purchase(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> dict[str, int]:
    """(Re)build `repeat_purchase` (one row per group x value x horizon) and
    `purchase_frequency` (one row per number of purchases). Needs `purchases`,
    `booking_outcomes`."""
    end = data_end(con)
    horizons = ", ".join(f"({int(h)})" for h in jmap.repeat_horizons)
    con.execute(
        f"""
        create or replace table repeat_purchase as
        with per_customer as (
            select customer_id,
                   min(purchase_ts) as first_ts,
                   min(purchase_ts) filter (where purchase_number = 2) as second_ts,
                   count(*) as purchases,
                   arg_min(booking_id, purchase_number) as first_booking
            from purchases group by all
        ),
        described as (
            select c.*, epoch(c.second_ts - c.first_ts) / 86400 as days_to_second,
                   {rating_group_sql(jmap, "b.rating")} as first_rating,
                   coalesce(b.platform, '(unknown)') as platform,
                   coalesce(b.service_category, '(unknown)') as service_category
            from per_customer c left join booking_outcomes b on b.booking_id = c.first_booking
        ),
        grouped as (
            select 'all' as group_name, 'all' as group_value, * from described
            union all select 'first_rating', first_rating, * from described
            union all select 'platform', platform, * from described
            union all select 'service_category', service_category, * from described
        ),
        horizons as (select * from (values {horizons}) h(horizon_days)),
        final as (
            select g.group_name, g.group_value, h.horizon_days,
                   count(*) as purchasers,
                   count(*) filter (where g.purchases >= 2) as repeat_purchasers,
                   count(*) filter (where g.first_ts + to_days(h.horizon_days) <= $data_end)
                       as eligible,
                   count(*) filter (where g.first_ts + to_days(h.horizon_days) <= $data_end
                                    and g.second_ts <= g.first_ts + to_days(h.horizon_days))
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
    con.execute(
        """
        create or replace table purchase_frequency as
        with per_customer as (
            select customer_id, count(*) as purchases from purchases group by all
        ),
        final as (
            select cast(purchases as integer) as purchases, count(*) as customers,
                   count(*) / sum(count(*)) over () as share
            from per_customer group by all
        )
        select * from final order by purchases
        """
    )
    return {t: count_rows(con, t) for t in ("repeat_purchase", "purchase_frequency")}


def build_retention(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> dict[str, int]:
    """(Re)build `retention_cohorts` (one row per period type x cohort x period number) and
    `lifecycle` (one row per period type x period x status). Needs `purchases`."""
    del jmap
    end = data_end(con)
    con.execute(
        """
        create or replace table retention_cohorts as
        with types as (select * from (values ('week'), ('month')) t(period_type)),
        activity as (
            select distinct t.period_type, p.customer_id,
                   cast(date_trunc(t.period_type, p.purchase_ts) as date) as period_start
            from purchases p cross join types t
        ),
        cohorts as (
            select period_type, customer_id, min(period_start) as cohort_start
            from activity group by all
        ),
        sizes as (
            select period_type, cohort_start, count(*) as cohort_size from cohorts group by all
        ),
        periods as (
            -- every period from each cohort to the period holding the data end
            select s.period_type, s.cohort_start, s.cohort_size,
                   cast(unnest(generate_series(
                       cast(s.cohort_start as timestamp),
                       date_trunc(s.period_type, cast($data_end as timestamp)),
                       case s.period_type when 'week' then interval 7 day
                            else interval 1 month end)) as date) as period_start
            from sizes s
        ),
        numbered as (
            select *, cast(row_number() over (partition by period_type, cohort_start
                                              order by period_start) - 1 as integer)
                          as period_number
            from periods
        ),
        member_activity as (
            select c.period_type, c.cohort_start, a.customer_id, a.period_start
            from cohorts c join activity a using (period_type, customer_id)
        ),
        last_active as (
            select period_type, cohort_start, customer_id, max(period_start) as last_period
            from member_activity group by all
        ),
        on_counts as (
            select period_type, cohort_start, period_start, count(*) as customers_on
            from member_activity group by all
        ),
        final as (
            select n.period_type, n.cohort_start, n.period_number, n.period_start,
                   n.cohort_size,
                   coalesce(o.customers_on, 0) as customers_on,
                   (select count(*) from last_active l
                    where l.period_type = n.period_type and l.cohort_start = n.cohort_start
                      and l.last_period >= n.period_start) as customers_on_or_after,
                   (case n.period_type when 'week' then n.period_start + interval 7 day
                         else n.period_start + interval 1 month end) <= $data_end as complete
            from numbered n
            left join on_counts o using (period_type, cohort_start, period_start)
        )
        select period_type, cohort_start, period_number, period_start, cohort_size,
               customers_on, customers_on_or_after,
               customers_on / cohort_size as share_on,
               customers_on_or_after / cohort_size as share_on_or_after, complete
        from final
        order by period_type, cohort_start, period_number
        """,
        {"data_end": end},
    )
    con.execute(
        """
        create or replace table lifecycle as
        with types as (select * from (values ('week'), ('month')) t(period_type)),
        activity as (
            select distinct t.period_type, p.customer_id,
                   cast(date_trunc(t.period_type, p.purchase_ts) as date) as period_start
            from purchases p cross join types t
        ),
        bounds as (
            select period_type, min(period_start) as first_period from activity group by all
        ),
        calendar as (
            select b.period_type,
                   cast(unnest(generate_series(
                       cast(b.first_period as timestamp),
                       date_trunc(b.period_type, cast($data_end as timestamp)),
                       case b.period_type when 'week' then interval 7 day
                            else interval 1 month end)) as date) as period_start
            from bounds b
        ),
        prev as (
            select period_type, period_start,
                   lag(period_start) over (partition by period_type order by period_start)
                       as prev_start
            from calendar
        ),
        firsts as (
            select period_type, customer_id, min(period_start) as first_period
            from activity group by all
        ),
        statuses as (
            -- customers active in the period: new, returning or resurrecting
            select a.period_type, a.period_start, a.customer_id,
                   case when a.period_start = f.first_period then 'new'
                        when exists (select 1 from activity b
                                     where b.period_type = a.period_type
                                       and b.customer_id = a.customer_id
                                       and b.period_start = pr.prev_start) then 'returning'
                        else 'resurrecting' end as status
            from activity a
            join firsts f using (period_type, customer_id)
            join prev pr using (period_type, period_start)
            union all
            -- customers active in the previous period and not in this one: dormant
            select pr.period_type, pr.period_start, b.customer_id, 'dormant'
            from prev pr
            join activity b on b.period_type = pr.period_type and b.period_start = pr.prev_start
            where not exists (select 1 from activity a
                              where a.period_type = pr.period_type
                                and a.customer_id = b.customer_id
                                and a.period_start = pr.period_start)
        ),
        statuses_list as (
            select * from (values ('new'), ('returning'), ('resurrecting'), ('dormant'))
                s(status)
        ),
        final as (
            select c.period_type, c.period_start, sl.status,
                   count(st.customer_id) as customers,
                   (case c.period_type when 'week' then c.period_start + interval 7 day
                         else c.period_start + interval 1 month end) <= $data_end as complete
            from calendar c cross join statuses_list sl
            left join statuses st
              on st.period_type = c.period_type and st.period_start = c.period_start
             and st.status = sl.status
            group by all
        )
        select * from final order by period_type, period_start, status
        """,
        {"data_end": end},
    )
    return {t: count_rows(con, t) for t in ("retention_cohorts", "lifecycle")}


# --------------------------------------------------------------------------------------------
# the measured journey map: touchpoints, pains, per-stage metrics


def build_stage_touchpoints(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `stage_touchpoints`: one row per (stage x dimension x value) over
    `stage_events`, ranked by events within stage x dimension."""
    p = Params()
    parts = [
        f"select stage, stage_index, {p.add(dim)} as dimension, "
        f"cast({ident(dim)} as varchar) as value, customer_id "
        f"from stage_events where stage_index = {st.index} and {ident(dim)} is not null"
        for st in jmap.stages for dim in st.touchpoints
    ]
    body = " union all ".join(parts) if parts else (
        "select cast(null as varchar) as stage, 0 as stage_index, cast(null as varchar) as "
        "dimension, cast(null as varchar) as value, cast(null as varchar) as customer_id "
        "where false")
    con.execute(
        f"""
        create or replace table stage_touchpoints as
        with touches as ({body}),
        counted as (
            select stage, stage_index, dimension, value, count(*) as events,
                   count(distinct customer_id) as customers
            from touches group by all
        ),
        final as (
            select *, events / sum(events) over (partition by stage_index, dimension) as share,
                   cast(row_number() over (partition by stage_index, dimension
                                           order by events desc, value) as integer) as rank
            from counted
        )
        select * from final order by stage_index, dimension, rank
        """,
        p.values,
    )
    return count_rows(con, "stage_touchpoints")


def build_stage_pains(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `stage_pains`: one row per (stage x pain x reason): the configured pains
    (events of journey customers) plus `dropped_out` = complete journeys ending at the stage.
    Needs `journeys`, `journey_stages`."""
    p = Params()
    parts = []
    for st in jmap.stages:
        for pain in st.pains:
            reason = (f"coalesce(cast(e.{ident(pain.reason_column)} as varchar), '(unknown)')"
                      if pain.reason_column else "'(none)'")
            parts.append(
                f"select {p.add(st.name)} as stage, {st.index} as stage_index, "
                f"{p.add(pain.name)} as pain, {reason} as reason, e.customer_id "
                f"from events e where e.customer_id is not null "
                f"and {rule_sql(pain.rule, p, 'e')}"
            )
    parts.append(
        "select furthest_stage, furthest_stage_index, 'dropped_out', "
        "'stopped after this stage', customer_id from journeys "
        "where complete and not reached_last_stage"
    )
    con.execute(
        f"""
        create or replace table stage_pains as
        with pains as ({' union all '.join(parts)}),
        reached as (
            select stage_index, count(*) as journeys from journey_stages group by all
        ),
        counted as (
            select stage, stage_index, pain, reason, count(*) as events,
                   count(distinct customer_id) as customers
            from pains group by all
        ),
        final as (
            select c.*, c.customers / nullif(r.journeys, 0) as share,
                   cast(row_number() over (partition by c.stage_index
                                           order by c.events desc, c.pain, c.reason)
                        as integer) as rank
            from counted c left join reached r using (stage_index)
        )
        select * from final order by stage_index, rank
        """,
        p.values,
    )
    return count_rows(con, "stage_pains")


def build_stage_metrics(con: duckdb.DuckDBPyConnection, jmap: JourneyMap,
                        currency: str | None = None) -> int:
    """(Re)build `stage_metrics`: one row per (stage x metric x segment x value), long format.
    Needs `journeys`, `journey_stages`, `funnel_steps`, `booking_outcomes`, `repeat_purchase`,
    `purchases`, `stage_events`."""
    # which stage each metric group sits on: named in the map's metric_stages
    idx = {st.name: st.index for st in jmap.stages}
    at = jmap.metric_stages
    p = Params()
    install = _role(jmap, "install", p)
    click = _role(jmap, "campaign_click", p)
    impression = _role(jmap, "campaign_impression", p)
    offer = _role(jmap, "offer_view", p)
    activity = _role(jmap, "app_activity", p)
    has_impressions = "campaign_impression" in jmap.metric_events
    gap_s = float(jmap.session_gap_minutes) * 60
    horizons = list(jmap.repeat_horizons)
    conv_idx = idx[jmap.conversion_stage]
    dec_idx = idx.get(at.get("decision"), 0)
    consider_idx = idx.get(at.get("consideration"), 0)
    money = p.add(currency or "money")
    low = low_rating_sql(jmap, "rating")

    stage_params = {group: p.add(name) for group, name in at.items()}
    rows = _stage_metric_rows(stage_params, money, low, horizons, has_impressions, conv_idx,
                              dec_idx)
    rows = [sql for group, sql in rows if group in at]
    if not rows:
        rows = ["select cast(null as varchar) as stage, '' as metric, '' as segment, "
                "'' as segment_value, 0.0 as value, '' as unit where false"]

    metrics_sql = f"""
        create or replace table stage_metrics as
        with j as (select * from journeys),
        disc as (
            select e.channel, e.customer_id, {install} as is_install, {click} as is_click,
                   {impression} as is_impression
            from events e where e.customer_id is not null
              and ({install} or {click} or {impression})
        ),
        by_channel as (
            select coalesce(channel, '(unknown)') as channel,
                   count(distinct customer_id) filter (where is_install) as installs,
                   count(*) filter (where is_click) as clicks,
                   count(*) filter (where is_impression) as impressions
            from disc group by all
        ),
        clickers as (
            select distinct coalesce(channel, '(unknown)') as channel, customer_id
            from disc where is_click
        ),
        click_conv as (
            select c.channel, count(*) as clickers,
                   count(*) filter (where j.furthest_stage_index >= {dec_idx}) as decided
            from clickers c left join j using (customer_id) group by all
        ),
        new_by_channel as (
            select coalesce(channel, '(unknown)') as channel,
                   count(*) filter (where customer_type = 'new') as new_customers
            from j group by all
        ),
        offers as (
            select count(*) as offer_views from events e
            where {offer} and e.customer_id in (
                select customer_id from journey_stages where stage_index = {consider_idx})
        ),
        consider as (
            select count(*) as customers from journey_stages
            where stage_index = {consider_idx}
        ),
        clicks_seq as (
            select e.customer_id, e.event_ts,
                   epoch(e.event_ts - lag(e.event_ts) over (partition by e.customer_id
                                                           order by e.event_ts)) as gap
            from events e join j using (customer_id)
            where {activity} and e.event_ts between j.entry_ts and j.window_end_ts
        ),
        app_time as (
            select customer_id, sum(case when gap <= {gap_s} then gap else 0 end) / 60
                       as minutes
            from clicks_seq group by all
        ),
        bookings as (select * from booking_outcomes where created_ts is not null),
        funnel as (select * from funnel_steps),
        pay_outcomes as (
            -- every payment attempt outcome (succeeded + failed), from `payment_attempts`: not
            -- from `payment_failures`, which leaves out the day x platform x method cells
            -- without a failure and so would over-state the rate
            select platform, method, sum(attempts) as attempts, sum(failures) as failures
            from payment_attempts group by all
        ),
        rows as (
            select * from ({' union all '.join(rows)})
                as r(stage, metric, segment, segment_value, value, unit)
        ),
        final as (
            select r.stage, sl.stage_index, r.metric, r.segment, r.segment_value,
                   cast(r.value as double) as value, r.unit
            from rows r join (select * from {_stage_values(jmap, p)}) sl using (stage)
        )
        select * from final order by stage_index, metric, segment <> 'all', segment,
                                  segment_value
    """
    con.execute(metrics_sql, p.values)
    return count_rows(con, "stage_metrics")


def _stage_metric_rows(at: dict[str, str], money: str, low: str, horizons: list[int],
                       has_impressions: bool, conv_idx: int, dec_idx: int
                       ) -> list[tuple[str, str]]:
    """The rows of `stage_metrics` as (metric group, SELECT of stage, metric, segment,
    segment_value, value, unit) over the CTEs of build_stage_metrics; `at[group]` is the
    parameter holding the stage of a metric group."""
    d, c, de = at.get("discovery"), at.get("consideration"), at.get("decision")
    pu, sv, rp = at.get("purchase"), at.get("service"), at.get("repeat")
    ctr = "true" if has_impressions else "false"
    hz = ", ".join(str(int(h)) for h in horizons)
    return [
        ("discovery", f"select {d}, 'new_customers', 'channel', channel, "
                      "cast(new_customers as double), 'customers' from new_by_channel"),
        ("discovery", f"select {d}, 'new_customers', 'all', 'all', "
                      "count(*) filter (where customer_type = 'new'), 'customers' from j"),
        ("discovery", f"select {d}, 'installs', 'channel', channel, installs, 'customers' "
                      "from by_channel"),
        ("discovery", f"select {d}, 'installs', 'all', 'all', sum(installs), 'customers' "
                      "from by_channel"),
        ("discovery", f"select {d}, 'campaign_clicks', 'channel', channel, clicks, 'events' "
                      "from by_channel where clicks > 0"),
        ("discovery", f"select {d}, 'campaign_ctr', 'channel', channel, "
                      f"clicks / nullif(impressions, 0), 'rate' from by_channel where {ctr}"),
        ("discovery", f"select {d}, 'campaign_click_to_decision', 'channel', channel, "
                      "step_conversion(decided, clickers), 'rate' from click_conv"),
        ("consideration", f"select {c}, 'offers_viewed_per_customer', 'all', 'all', "
                          "o.offer_views / nullif(c.customers, 0), 'per_customer' "
                          "from offers o, consider c"),
        ("consideration", f"select {c}, 'time_in_app_minutes', 'all', 'all', median(minutes), "
                          "'minutes' from app_time"),
        ("decision", f"select {de}, 'bookings_created', 'all', 'all', count(*), 'events' "
                     "from bookings"),
        ("decision", f"select {de}, 'conversion_to_purchase', 'all', 'all', step_conversion("
                     f"max(entered) filter (where stage_index = {conv_idx}), "
                     f"max(entered) filter (where stage_index = {dec_idx})), 'rate' from funnel"),
        ("decision", f"select {de}, 'average_basket', 'all', 'all', avg(amount), {money} "
                     "from bookings"),
        ("decision", f"select {de}, 'average_basket', 'service_category', "
                     f"coalesce(service_category, '(unknown)'), avg(amount), {money} "
                     "from bookings group by all"),
        ("purchase", f"select {pu}, 'completed_transactions', 'all', 'all', "
                     "count(*) filter (where purchase), 'events' from booking_outcomes"),
        ("purchase", f"select {pu}, 'payment_dropout_rate', 'all', 'all', dropout_rate("
                     "count(*) filter (where payment_started and paid), "
                     "count(*) filter (where payment_started)), 'rate' from booking_outcomes"),
        ("purchase", f"select {pu}, 'payment_dropout_rate', 'platform', "
                     "coalesce(platform, '(unknown)'), dropout_rate("
                     "count(*) filter (where payment_started and paid), "
                     "count(*) filter (where payment_started)), 'rate' "
                     "from booking_outcomes group by all"),
        ("purchase", f"select {pu}, 'payment_failure_rate', 'all', 'all', "
                     "failure_rate(sum(failures), sum(attempts)), 'rate' from pay_outcomes"),
        ("purchase", f"select {pu}, 'payment_failure_rate', 'platform', platform, "
                     "failure_rate(sum(failures), sum(attempts)), 'rate' "
                     "from pay_outcomes group by all"),
        ("purchase", f"select {pu}, 'payment_failure_rate', 'method', method, "
                     "failure_rate(sum(failures), sum(attempts)), 'rate' "
                     "from pay_outcomes group by all"),
        ("purchase", f"select {pu}, 'failure_reason_share', 'failure_reason', failure_reason, "
                     "sum(failures) / sum(sum(failures)) over (), 'rate' "
                     "from payment_failures group by all"),
        ("service", f"select {sv}, 'average_rating', 'all', 'all', avg(rating), 'stars' "
                    "from booking_outcomes"),
        ("service", f"select {sv}, 'ratings', 'all', 'all', count(rating), 'events' "
                    "from booking_outcomes"),
        ("service", f"select {sv}, 'low_ratings', 'all', 'all', count(*) filter (where {low}), "
                    "'events' from booking_outcomes"),
        ("service", f"select {sv}, 'complaints', 'all', 'all', count(complaint), 'events' "
                    "from booking_outcomes"),
        ("service", f"select {sv}, 'cancellations', 'all', 'all', "
                    "count(*) filter (where cancelled), 'events' from booking_outcomes"),
        ("service", f"select {sv}, 'no_shows', 'all', 'all', count(*) filter (where no_show), "
                    "'events' from booking_outcomes"),
        ("service", f"select {sv}, 'cancellation_rate', 'all', 'all', "
                    "count(*) filter (where cancelled) / nullif(count(*), 0), 'rate' "
                    "from bookings"),
        ("service", f"select {sv}, 'no_show_rate', 'all', 'all', "
                    "count(*) filter (where no_show) / nullif(count(*), 0), 'rate' from bookings"),
        ("repeat", f"select {rp}, 'repeat_rate_' || horizon_days || 'd', group_name, "
                   "group_value, repeat_rate, 'rate' from repeat_purchase "
                   f"where group_name in ('all', 'first_rating') and horizon_days in ({hz})"),
        ("repeat", f"select {rp}, 'median_days_to_repeat', 'all', 'all', "
                   "median(epoch(b.purchase_ts - a.purchase_ts) / 86400), 'days' "
                   "from purchases a join purchases b "
                   "on b.customer_id = a.customer_id and b.purchase_number = 2 "
                   "where a.purchase_number = 1"),
        ("repeat", f"select {rp}, 'purchases_per_customer', 'all', 'all', "
                   "count(*) / nullif(count(distinct customer_id), 0), 'per_customer' "
                   "from purchases"),
    ]


def _stage_values(jmap: JourneyMap, params: Params) -> str:
    rows = ", ".join(f"({params.add(s.name)}, {s.index})" for s in jmap.stages)
    return f"(values {rows}) v(stage, stage_index)"


# --------------------------------------------------------------------------------------------
# headline figures of a period


def period_figures(con: duckdb.DuckDBPyConnection, start: date, end: date,
                   conversion_stage: str | None) -> dict[str, int | float | None]:
    """The headline numbers of the days `start` .. `end` (inclusive, UTC). Reads `journeys`,
    `booking_outcomes` and `funnel_cohorts`; builds nothing. Keys:

    - `new_customers`: journeys with `customer_type = 'new'` whose entry day is in the period.
    - `purchases`: purchases (bookings with `purchase`: paid, not refunded) whose first payment
      success (`paid_ts`) falls on a day in the period.
    - `purchasers`: distinct customers among those purchases.
    - `repeat_purchasers`: distinct customers with a purchase in the period that is their 2nd
      or later purchase ever (purchases of a customer numbered by `paid_ts`, then booking_id).
    - `repeat_share`: repeat_purchasers / purchasers; None without purchasers.
    - `conversion_journeys`: journeys entering in the period whose cohort (entry day) is
      complete (`funnel_cohorts.complete`: the whole conversion window observed) — the journeys
      entering the first stage on those days.
    - `conversion`: the share of those journeys that reached `conversion_stage`; None when
      there are no such journeys or no conversion stage is given.
    """
    new_customers = fetch_row(
        con, "select count(*) from journeys where customer_type = 'new' "
             "and entry_date between ? and ?", [start, end])[0]
    purchases, purchasers, repeat_purchasers = fetch_row(
        con,
        """
        with purchases as (
            select customer_id, paid_ts,
                   row_number() over (partition by customer_id order by paid_ts, booking_id)
                       as nth
            from booking_outcomes
            where purchase
        ),
        in_period as (
            select * from purchases where cast(paid_ts as date) between ? and ?
        )
        select count(*),
               count(distinct customer_id),
               count(distinct customer_id) filter (where nth >= 2)
        from in_period
        """, [start, end])
    reached, entered = fetch_row(
        con,
        """
        with steps as (
            select stage, stage_index, sum(entered) as entered from funnel_cohorts
            where complete and cohort_date between ? and ? group by stage, stage_index
        )
        select (select entered from steps where stage = ?),
               (select entered from steps order by stage_index limit 1)
        """, [start, end, conversion_stage])
    journeys = int(entered or 0)
    conversion = (float(reached or 0) / journeys
                  if journeys and conversion_stage is not None else None)
    return {
        "new_customers": int(new_customers or 0),
        "purchases": int(purchases),
        "purchasers": int(purchasers),
        "repeat_purchasers": int(repeat_purchasers),
        "repeat_share": repeat_purchasers / purchasers if purchasers else None,
        "conversion": conversion,
        "conversion_journeys": journeys,
    }
