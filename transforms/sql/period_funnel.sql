-- period_funnel: the stage funnel of the overview's period, one row per (period_days, stage):
-- the complete cohorts (funnel_cohorts.complete) entering in the current `cohorts` period of
-- period_figures (the conversion figure's days), their counts added up per stage and the step
-- rates of definitions.sql over those sums.
-- largest_dropout flags the stage with the highest dropout rate into it among the stages up to
-- and including $conversion_stage (the first such stage on a tie): the overview names it.
-- No rows when the period holds no complete cohort.
create or replace table period_funnel as
with period as (
    select period_days, current_start, current_end
    from period_figures
    where figure = 'conversion' and period_days = cast($period_days as integer)
),
summed as (
    select p.period_days, c.stage_index, c.stage,
           sum(c.entered) as entered,
           min(c.cohort_date) as first_cohort,
           max(c.cohort_date) as last_cohort
    from period p
    join funnel_cohorts c
      on c.complete and c.cohort_date between p.current_start and p.current_end
    group by all
),
rates as (
    select period_days, stage_index, stage, entered,
           overall_conversion(entered, first_value(entered) over w) as overall_conversion,
           step_conversion(entered, lag(entered) over w) as step_conversion,
           lag(entered) over w - entered as dropoff_count,
           dropout_rate(entered, lag(entered) over w) as dropout_rate,
           min(first_cohort) over (partition by period_days) as first_cohort,
           max(last_cohort) over (partition by period_days) as last_cohort
    from summed
    window w as (partition by period_days order by stage_index)
),
conversion_stage as (
    select coalesce(max(stage_index) filter (where stage = cast($conversion_stage as varchar)),
                    max(stage_index)) as stage_index
    from summed
),
ranked as (
    select r.*,
           row_number() over (partition by r.period_days
                              order by (r.stage_index <= cs.stage_index
                                        and r.dropout_rate is not null) desc,
                                       r.dropout_rate desc nulls last, r.stage_index)
               as dropout_order,
           r.stage_index <= cs.stage_index and r.dropout_rate is not null as rankable
    from rates r cross join conversion_stage cs
),
final as (
    select
        -- grain
        period_days, stage_index, stage,
        -- counts and rates
        entered, overall_conversion, step_conversion, dropoff_count, dropout_rate,
        coalesce(rankable and dropout_order = 1, false) as largest_dropout,
        -- the cohorts added up
        first_cohort, last_cohort
    from ranked
)
select * from final order by period_days, stage_index
