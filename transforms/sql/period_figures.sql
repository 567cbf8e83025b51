-- period_figures: the overview's headline numbers, one row per (period_days, figure), for the
-- last $period_days days vs the $period_days days before them.
--
-- Each figure has a basis that says which days it covers:
--   data    the last period_days days of data, ending at $data_end (new customers, purchases,
--           purchasers, repeat purchasers, repeat rate); the previous period counts only when
--           it lies wholly in the data (starts on or after $data_start), else it is NULL.
--   cohorts the last period_days entry days whose cohort is complete (funnel_cohorts.complete:
--           the whole conversion window observed), ending at the latest such day (journeys
--           entering, journeys reaching $conversion_stage, conversion); the previous period
--           counts when it holds at least one complete-cohort journey, else it is NULL.
-- Figures: new_customers = journeys of new customers (`_new_journeys`: the map's new vs
-- returning segment is 'new') entering in the period; purchases =
-- rows of `purchases` on a purchase_date in the period, purchasers = their distinct customers,
-- repeat_purchasers = distinct customers with a purchase_number >= 2 among them, repeat_rate =
-- repeat_rate(repeat_purchasers, purchasers); revenue = the sum of those purchases' amounts
-- (NULL without amounts; kind `amount`, in the run's currency); conversion_journeys = complete-cohort journeys
-- entering the first stage, converted_journeys = those reaching the conversion stage,
-- conversion = overall_conversion(converted_journeys, conversion_journeys).
-- change = current - previous (for a rate: a difference of shares); relative_change =
-- change / previous, counts only.
create or replace table period_figures as
with settings as (
    select cast($period_days as integer) as period_days,
           cast($data_start as date) as data_start,
           cast($data_end as date) as data_end,
           cast($conversion_stage as varchar) as conversion_stage
),
last_complete_cohort as (
    select max(cohort_date) as cohort_date from funnel_cohorts where complete
),
entry_stage as (
    select min(stage_index) as stage_index from funnel_cohorts
),
bases as (
    select 'data' as basis, data_end as last_day from settings
    union all
    select 'cohorts', cohort_date from last_complete_cohort
),
periods as (
    -- period n = 0 (current) ends on the basis' last day, n = 1 (previous) just before it
    select b.basis, p.period,
           b.last_day - (p.n * s.period_days + s.period_days - 1) as start_date,
           b.last_day - p.n * s.period_days as end_date
    from bases b
    cross join settings s
    cross join (values ('current', 0), ('previous', 1)) p(period, n)
),
journey_counts as (
    select p.period, count(j.customer_id) as new_customers
    from periods p
    left join _new_journeys j
      on j.entry_date between p.start_date and p.end_date
    where p.basis = 'data'
    group by p.period
),
purchase_counts as (
    select p.period,
           count(pu.order_id) as purchases,
           count(distinct pu.customer_id) as purchasers,
           count(distinct pu.customer_id) filter (where pu.purchase_number >= 2)
               as repeat_purchasers,
           sum(pu.amount) as revenue
    from periods p
    left join purchases pu on pu.purchase_date between p.start_date and p.end_date
    where p.basis = 'data'
    group by p.period
),
cohort_counts as (
    select p.period,
           coalesce(sum(c.entered) filter (where c.stage_index = e.stage_index), 0)
               as conversion_journeys,
           coalesce(sum(c.entered) filter (where c.stage = s.conversion_stage), 0)
               as converted_journeys
    from periods p
    cross join settings s
    cross join entry_stage e
    left join funnel_cohorts c
      on c.complete and c.cohort_date between p.start_date and p.end_date
    where p.basis = 'cohorts'
    group by p.period
),
figures as (
    select 'new_customers' as figure, 'count' as kind, 'data' as basis, period,
           cast(new_customers as double) as value
    from journey_counts
    union all
    select 'purchases', 'count', 'data', period, purchases from purchase_counts
    union all
    select 'purchasers', 'count', 'data', period, purchasers from purchase_counts
    union all
    select 'repeat_purchasers', 'count', 'data', period, repeat_purchasers from purchase_counts
    union all
    select 'repeat_rate', 'rate', 'data', period, repeat_rate(repeat_purchasers, purchasers)
    from purchase_counts
    union all
    select 'revenue', 'amount', 'data', period, cast(revenue as double) from purchase_counts
    union all
    select 'conversion_journeys', 'count', 'cohorts', period, conversion_journeys
    from cohort_counts
    union all
    select 'converted_journeys', 'count', 'cohorts', period, converted_journeys
    from cohort_counts
    union all
    select 'conversion', 'rate', 'cohorts', period,
           overall_conversion(converted_journeys, conversion_journeys)
    from cohort_counts
),
observed as (
    -- is the previous period of each basis there to compare with?
    select p.basis,
           case p.basis
               when 'data' then coalesce(p.start_date >= s.data_start, false)
               else coalesce((select conversion_journeys > 0 from cohort_counts
                              where period = 'previous'), false)
           end as previous_observed
    from periods p cross join settings s
    where p.period = 'previous'
),
paired as (
    select s.period_days, cur.figure, cur.kind, cur.basis,
           -- a period longer than the data covers the data's days only
           case when pc.start_date is not null
                then greatest(pc.start_date, s.data_start) end as current_start,
           pc.end_date as current_end,
           pp.start_date as previous_start, pp.end_date as previous_end,
           o.previous_observed,
           cur.value as current_value,
           case when o.previous_observed then prev.value end as previous_value
    from figures cur
    join figures prev on prev.figure = cur.figure and prev.period = 'previous'
    join periods pc on pc.basis = cur.basis and pc.period = 'current'
    join periods pp on pp.basis = cur.basis and pp.period = 'previous'
    join observed o on o.basis = cur.basis
    cross join settings s
    where cur.period = 'current'
),
final as (
    select
        -- grain
        period_days, figure,
        -- what the figure is and which days it covers
        kind, basis, current_start, current_end, previous_start, previous_end,
        previous_observed,
        -- values
        current_value, previous_value,
        current_value - previous_value as change,
        case when kind in ('count', 'amount')
             then (current_value - previous_value) / nullif(previous_value, 0)
        end as relative_change
    from paired
)
select * from final order by period_days, figure
