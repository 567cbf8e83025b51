-- stage_time_distribution: one row per stage with a timed arrival, the spread of
-- journey_stages.seconds_from_previous over complete journeys (a skipped optional stage has no
-- time and is left out), for the bottleneck page's box plot. The median and 75th percentile are
-- funnel_steps' own (the same rows); this table adds how many arrivals were timed and the 5th,
-- 25th and 95th percentiles.
create or replace table stage_time_distribution as
with spread as (
    select stage_index,
           count(seconds_from_previous) as timed,
           quantile_cont(seconds_from_previous, 0.05) as p5_seconds,
           quantile_cont(seconds_from_previous, 0.25) as p25_seconds,
           quantile_cont(seconds_from_previous, 0.95) as p95_seconds
    from journey_stages
    where complete and seconds_from_previous is not null
    group by stage_index
),
final as (
    select
        -- grain
        f.stage_index, f.stage,
        -- arrivals timed
        s.timed,
        -- seconds from the previous stage reached
        s.p5_seconds, s.p25_seconds, f.median_seconds, f.p75_seconds, s.p95_seconds
    from spread s join funnel_steps f using (stage_index)
)
select * from final order by stage_index
