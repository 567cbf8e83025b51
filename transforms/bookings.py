"""Bookings and payments: each booking from creation through payment to service, the booking
funnel, and payment attempts and failures.

Every function takes a DuckDB connection holding `events` (docs/CONTRACTS.md) and the loaded
journey map, and (re)creates its tables with CREATE OR REPLACE. Grains and columns are in
docs/TABLES.md. Which events play which role (booking created, payment succeeded, refund,
review, ...) comes from the journey map's `metric_events`, never from names written here; a
role the map does not define matches nothing. The rules:

- **Purchase** (funnel-semantics.md): a booking with a payment success and no refund
  (`booking_outcomes.purchase`; the numbered `purchases` are built by transforms/purchases.py).
- **Booking funnel**: actor = booking id (booking held constant), ordered steps created ->
  payment succeeded -> completed through the funnel engine, window = `conversion_window`.
  A failed attempt followed by a success is paid; payment dropout = started, never paid
  (transforms/sql/booking_funnel.sql).
- **Payment attempt** = a succeeded or failed payment outcome event (an `initiated` event is
  not one). **Payment failure rate** = failed / (succeeded + failed) payment outcome events,
  summed over the `payment_attempts` cells asked about (cells without a failure included).

`booking_outcomes`, the engine's input steps, `payment_attempts` and `payment_failures` are
assembled here from the roles' predicates.
"""

from __future__ import annotations

import duckdb

from transforms.funnel import funnel_actors
from transforms.journey_map import JourneyMap
from transforms.sqlutil import Params, sql_file
from transforms.tables import built, count_rows, role_sql, skipped_without

# the booking funnel's steps in order; their labels are in transforms/sql/booking_funnel.sql
BOOKING_STEPS = ("created", "paid", "completed")


# the events columns the booking and payment tables read: without them they are skipped
BOOKING_COLUMNS = ("booking_id", "payment_id", "amount", "city", "service_category", "salon_id",
                   "platform", "method", "failure_reason", "cancel_reason", "complaint", "rating")
PAYMENT_COLUMNS = ("platform", "method", "failure_reason")


def build_booking_outcomes(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `booking_outcomes`: one row per booking_id seen in `events`."""
    if skipped_without(con, ["booking_outcomes"], columns=BOOKING_COLUMNS):
        return 0
    p = Params()
    created = role_sql(jmap, "booking_created", p)
    succeeded = role_sql(jmap, "payment_succeeded", p)
    failed = role_sql(jmap, "payment_failed", p)
    initiated = role_sql(jmap, "payment_initiated", p)
    refunded = role_sql(jmap, "payment_refunded", p)
    cancelled = role_sql(jmap, "booking_cancelled", p)
    no_show = role_sql(jmap, "booking_no_show", p)
    completed = role_sql(jmap, "booking_completed", p)
    review = role_sql(jmap, "review", p)
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
    built(con, ["booking_outcomes"])
    return count_rows(con, "booking_outcomes")


def build_booking_funnel(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `booking_funnel`: one row per (segment x value x booking step), actor =
    booking id, from the funnel engine. Needs `booking_outcomes`."""
    if skipped_without(con, ["booking_funnel"], reads=("booking_outcomes",)):
        return 0
    p = Params()
    created = role_sql(jmap, "booking_created", p)
    succeeded = role_sql(jmap, "payment_succeeded", p)
    completed = role_sql(jmap, "booking_completed", p)
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
    actors = funnel_actors(con, "_booking_steps", BOOKING_STEPS,
                           window_seconds=jmap.window_seconds,
                           actor_col="booking_id", event_col="step", time_col="event_ts")
    con.execute(f"create or replace temp table _booking_actors as {actors.sql_query()}")
    con.execute("drop table if exists _booking_steps")
    con.execute(sql_file("booking_funnel"))
    con.execute("drop table if exists _booking_actors")
    built(con, ["booking_funnel"])
    return count_rows(con, "booking_funnel")


def build_payment_failures(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> dict[str, int]:
    """(Re)build `payment_attempts` (one row per day x platform x method with at least one
    attempt, failures or not) and `payment_failures` (one row per day x platform x method x
    failure_reason with at least one failed attempt). Attempt = a succeeded or failed payment
    outcome event; a rate over several cells is sum(failures) / sum(attempts) of
    `payment_attempts`, never one from `payment_failures`, which has no row for the cells
    without a failure."""
    if skipped_without(con, ["payment_attempts", "payment_failures"], columns=PAYMENT_COLUMNS):
        return {"payment_attempts": 0, "payment_failures": 0}
    p = Params()
    succeeded = role_sql(jmap, "payment_succeeded", p)
    failed = role_sql(jmap, "payment_failed", p)
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
    failed = role_sql(jmap, "payment_failed", p)
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
    built(con, ["payment_attempts", "payment_failures"])
    return {t: count_rows(con, t) for t in ("payment_attempts", "payment_failures")}
