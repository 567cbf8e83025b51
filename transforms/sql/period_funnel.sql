-- period_funnel: the stage funnel of the overview's period, one row per (period_days, segment,
-- segment_value, stage): the complete cohorts (funnel_cohorts.complete) entering in the
-- group's current `cohorts` period of period_figures (the conversion figure's days), their
-- journeys of the group (`_period_cohorts`, built by transforms/periods.py: `all`/`all` from
-- funnel_cohorts, a segment value from its members' journey_stages) added up per stage and the
-- step rates of definitions.sql over those sums.
-- small_n: the step rate into the stage rests on fewer than $small_n journeys (those reaching
-- the stage before). largest_dropout flags the stage with the highest dropout rate into it
-- among the stages up to and including $conversion_stage that are not small n (the first such
-- stage on a tie): the overview names it.
-- No rows for a group whose period holds no complete-cohort journey of it.
create or replace table period_funnel as
with period as (
    select period_days, segment, segment_value, current_start, current_end
    from period_figures
    where figure = 'conversion' and current_start is not null
),
stages as (
    select distinct stage_index, stage from funnel_cohorts
),
summed as (
    select p.period_days, p.segment, p.segment_value, st.stage_index, st.stage,
           coalesce(sum(c.entered), 0) as entered,
           min(c.cohort_date) as first_cohort,
           max(c.cohort_date) as last_cohort
    from period p
    cross join stages st
    left join _period_cohorts c
      on c.segment = p.segment and c.segment_value = p.segment_value
     and c.stage_index = st.stage_index
     and c.cohort_date between p.current_start and p.current_end
    group by all
),
rates as (
    select period_days, segment, segment_value, stage_index, stage, entered,
           overall_conversion(entered, first_value(entered) over w) as overall_conversion,
           step_conversion(entered, lag(entered) over w) as step_conversion,
           lag(entered) over w - entered as dropoff_count,
           dropout_rate(entered, lag(entered) over w) as dropout_rate,
           lag(entered) over w < cast($small_n as integer) as small_n,
           first_value(entered) over w as group_entered,
           min(first_cohort) over g as first_cohort,
           max(last_cohort) over g as last_cohort
    from summed
    window w as (partition by period_days, segment, segment_value order by stage_index),
           g as (partition by period_days, segment, segment_value)
),
conversion_stage as (
    select coalesce(max(stage_index) filter (where stage = cast($conversion_stage as varchar)),
                    max(stage_index)) as stage_index
    from stages
),
ranked as (
    select r.*,
           r.stage_index <= cs.stage_index and r.dropout_rate is not null
               and not r.small_n as rankable
    from rates r cross join conversion_stage cs
    where r.group_entered > 0
),
ordered as (
    select *,
           row_number() over (partition by period_days, segment, segment_value
                              order by rankable desc, dropout_rate desc nulls last,
                                       stage_index) as dropout_order
    from ranked
),
final as (
    select
        -- grain
        period_days, segment, segment_value, stage_index, stage,
        -- counts and rates
        entered, overall_conversion, step_conversion, dropoff_count, dropout_rate, small_n,
        coalesce(rankable and dropout_order = 1, false) as largest_dropout,
        -- the cohorts added up
        first_cohort, last_cohort
    from ordered
)
select * from final
order by period_days, segment <> $all, segment, segment_value, stage_index
