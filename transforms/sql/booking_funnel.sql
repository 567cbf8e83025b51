-- booking_funnel: one row per (segment x segment_value x booking step), actor = booking id (the
-- booking held constant). Reads `_booking_actors` (the funnel engine's actors over the steps
-- created -> paid -> completed, built by transforms/bookings.py) and `booking_outcomes`.
--
-- Segments: 'all', platform and service_category of the booking ('(unknown)' when it has none).
-- entered = bookings whose furthest step is at least this one; the rates are those of
-- definitions.sql; times are seconds from the previous step. Payment dropout = bookings whose
-- payment started and never succeeded, over those whose payment started (a failed attempt
-- followed by a success is paid).
create or replace table booking_funnel as
with actors as (
    select
        a.*,
        b.platform,
        b.service_category,
        b.payment_started,
        b.payment_started and not b.paid as not_paid
    from _booking_actors a
    join booking_outcomes b on b.booking_id = a.actor
),

grouped as (
    select 'all' as segment, 'all' as segment_value, * from actors
    union all
    select 'platform', coalesce(platform, '(unknown)'), * from actors
    union all
    select 'service_category', coalesce(service_category, '(unknown)'), * from actors
),

steps as (
    -- in the order of the engine's steps
    select * from (values (1, 'booking created'), (2, 'payment succeeded'),
                          (3, 'booking completed')) s(step_index, step)
),

step_seconds as (
    select
        g.*,
        s.step_index,
        s.step,
        case s.step_index when 2 then epoch(g.step_2_ts - g.step_1_ts)
                          when 3 then epoch(g.step_3_ts - g.step_2_ts) end as seconds
    from grouped g
    cross join steps s
),

per_step as (
    select
        segment, segment_value, step_index, step,
        -- counts
        count(*) filter (where furthest_step >= step_index) as entered,
        -- time from the previous step
        quantile_cont(seconds, 0.5) as median_seconds,
        quantile_cont(seconds, 0.75) as p75_seconds,
        quantile_cont(seconds, 0.9) as p90_seconds,
        avg(seconds) as mean_seconds
    from step_seconds
    group by all
),

payment as (
    select
        segment, segment_value,
        count(*) filter (where payment_started) as payment_started,
        count(*) filter (where not_paid) as payment_not_paid
    from grouped
    group by all
),

final as (
    select
        -- keys
        ps.segment, ps.segment_value, ps.step_index, ps.step,
        -- the booking funnel
        ps.entered,
        overall_conversion(ps.entered, first_value(ps.entered) over w) as overall_conversion,
        step_conversion(ps.entered, lag(ps.entered) over w) as step_conversion,
        lag(ps.entered) over w - ps.entered as dropoff_count,
        dropout_rate(ps.entered, lag(ps.entered) over w) as dropout_rate,
        -- time from the previous step
        ps.median_seconds, ps.p75_seconds, ps.p90_seconds, ps.mean_seconds,
        -- payment
        pm.payment_started,
        pm.payment_not_paid,
        dropout_rate(pm.payment_started - pm.payment_not_paid, pm.payment_started)
            as payment_dropout_rate
    from per_step ps
    join payment pm using (segment, segment_value)
    window w as (partition by ps.segment, ps.segment_value order by ps.step_index)
)

select * from final
order by segment <> 'all', segment, segment_value, step_index
