-- stage_exit_events: one row per (period_days x segment x segment_value x stage x dimension x
-- value): what the journeys that ended at a stage did last, read from `_exit_last` (built by
-- transforms/journey_map_tables.py: one row per period x leaver x persona x dimension, value =
-- the leaver's last event name / last screen, NULL when it has none).
--
-- journeys = leavers whose last value it is; leavers = every leaver of the period's persona at
-- the stage (= the drop-off into the next stage of `journey_map_funnel`); share =
-- journeys / leavers; rank 1 = the most common last value within period x segment x value x
-- stage x dimension; stage_rank 1 = the stage before the conversion stage losing the most
-- journeys of the period's persona (ties: the earlier stage first); NULL from the conversion
-- stage on.
create or replace table stage_exit_events as
with leavers as (
    select period_days, segment, segment_value, stage_index, dimension,
           count(distinct customer_id) as leavers
    from _exit_last
    group by all
),

counted as (
    select period_days, segment, segment_value, stage, stage_index, dimension, value,
           count(distinct customer_id) as journeys
    from _exit_last
    where value is not null
    group by all
),

final as (
    select
        c.period_days, c.segment, c.segment_value, c.stage, c.stage_index, c.dimension,
        c.value, c.journeys, l.leavers,
        c.journeys / l.leavers as share,
        cast(row_number() over (
            partition by c.period_days, c.segment, c.segment_value, c.stage_index, c.dimension
            order by c.journeys desc, c.value
        ) as integer) as rank,
        -- ranked up to the conversion stage only (as the bottleneck of stage_transitions):
        -- after it, "leaving" is not buying again, the repeat page's story
        case when c.stage_index < $conversion_stage_index then cast(dense_rank() over (
            partition by c.period_days, c.segment, c.segment_value, c.dimension,
                         c.stage_index < $conversion_stage_index
            order by l.leavers desc, c.stage_index
        ) as integer) end as stage_rank
    from counted c
    inner join leavers l using (period_days, segment, segment_value, stage_index, dimension)
)

select * from final
order by period_days, segment <> 'all', segment, segment_value, stage_index, dimension, rank
