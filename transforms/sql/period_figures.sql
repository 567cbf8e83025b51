-- period_figures: the overview's headline numbers, one row per (period_days, segment,
-- segment_value, figure), for the last period_days days vs the period_days days before them,
-- for every length of $period_lengths and every group: `all`/`all` (every customer) and each
-- offered segment value of `_period_members` (segment, segment_value, customer_id; built by
-- transforms/periods.py from the journeys' segment columns).
--
-- Each figure has a basis that says which days it covers (the same days for every group):
--   data    the last period_days days of data, ending at $data_end (new customers, purchases,
--           purchasers, repeat purchasers, repeat rate); the previous period counts only when
--           it lies wholly in the data (starts on or after $data_start), else it is NULL.
--   cohorts the last period_days entry days whose cohort is complete (funnel_cohorts.complete:
--           the whole conversion window observed), ending at the latest such day (journeys
--           entering, journeys reaching $conversion_stage, conversion); the previous period
--           counts when it holds at least one complete-cohort journey of the group, else it is
--           NULL.
-- Figures: new_customers = journeys of new customers (`_new_journeys`: the map's new vs
-- returning segment is 'new') entering in the period; purchases =
-- rows of `purchases` on a purchase_date in the period, purchasers = their distinct customers,
-- repeat_purchasers = distinct customers with a purchase_number >= 2 among them, repeat_rate =
-- repeat_rate(repeat_purchasers, purchasers); revenue = the sum of those purchases' amounts
-- (NULL without amounts; kind `amount`, in the run's currency); conversion_journeys = complete-cohort journeys
-- entering the first stage, converted_journeys = those reaching the conversion stage,
-- conversion = overall_conversion(converted_journeys, conversion_journeys). A group's journeys
-- are its members'; its purchases those of its members (`all`: every purchase).
-- change = current - previous (for a rate: a difference of shares); relative_change =
-- change / previous, counts only. small_n: a rate whose current n (purchasers for
-- repeat_rate, conversion_journeys for conversion) is below $small_n; NULL for the others.
create or replace table period_figures as
with settings as (
    select cast($data_start as date) as data_start,
           cast($data_end as date) as data_end,
           cast($conversion_stage as varchar) as conversion_stage,
           cast($small_n as integer) as small_n
),
lengths as (
    select unnest(cast($period_lengths as integer[])) as period_days
),
groups as (
    select cast($all as varchar) as segment, cast($all as varchar) as segment_value
    union
    select distinct segment, segment_value from _period_members
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
    select l.period_days, b.basis, p.period,
           cast(b.last_day as date)
               - cast(p.n * l.period_days + l.period_days - 1 as integer) as start_date,
           cast(b.last_day as date) - cast(p.n * l.period_days as integer) as end_date
    from bases b
    cross join lengths l
    cross join (values ('current', 0), ('previous', 1)) p(period, n)
),
group_periods as (
    select p.*, g.segment, g.segment_value from periods p cross join groups g
),
new_daily as (
    -- new journeys per group and entry day
    select segment, segment_value, entry_date, count(*) as journeys
    from (
        select $all as segment, $all as segment_value, entry_date from _new_journeys
        union all
        select m.segment, m.segment_value, j.entry_date
        from _new_journeys j join _period_members m using (customer_id)
    )
    group by all
),
group_purchases as (
    select $all as segment, $all as segment_value, pu.* from purchases pu
    union all
    select m.segment, m.segment_value, pu.*
    from purchases pu join _period_members m using (customer_id)
),
journey_counts as (
    select gp.period_days, gp.segment, gp.segment_value, gp.period,
           coalesce(sum(n.journeys), 0) as new_customers
    from group_periods gp
    left join new_daily n
      on n.segment = gp.segment and n.segment_value = gp.segment_value
     and n.entry_date between gp.start_date and gp.end_date
    where gp.basis = 'data'
    group by all
),
purchase_counts as (
    -- a purchase on day d is in period n = (data_end - d) // period_days (0 current,
    -- 1 previous): arithmetic, not a range join, for millions of purchases
    select gp.period_days, gp.segment, gp.segment_value, gp.period,
           coalesce(pc.purchases, 0) as purchases,
           coalesce(pc.purchasers, 0) as purchasers,
           coalesce(pc.repeat_purchasers, 0) as repeat_purchasers,
           pc.revenue
    from group_periods gp
    left join (
        select l.period_days, pu.segment, pu.segment_value,
               case (s.data_end - pu.purchase_date) // l.period_days
                   when 0 then 'current' else 'previous' end as period,
               count(pu.order_id) as purchases,
               count(distinct pu.customer_id) as purchasers,
               count(distinct pu.customer_id) filter (where pu.purchase_number >= 2)
                   as repeat_purchasers,
               sum(pu.amount) as revenue
        from group_purchases pu
        cross join lengths l
        cross join settings s
        where pu.purchase_date <= s.data_end
          and (s.data_end - pu.purchase_date) // l.period_days < 2
        group by all
    ) pc using (period_days, segment, segment_value, period)
    where gp.basis = 'data'
),
cohort_counts as (
    select gp.period_days, gp.segment, gp.segment_value, gp.period,
           coalesce(sum(c.entered) filter (where c.stage_index = e.stage_index), 0)
               as conversion_journeys,
           coalesce(sum(c.entered) filter (where c.stage = s.conversion_stage), 0)
               as converted_journeys
    from group_periods gp
    cross join settings s
    cross join entry_stage e
    left join _period_cohorts c
      on c.segment = gp.segment and c.segment_value = gp.segment_value
     and c.cohort_date between gp.start_date and gp.end_date
    where gp.basis = 'cohorts'
    group by all
),
figures as (
    select period_days, segment, segment_value, 'new_customers' as figure, 'count' as kind,
           'data' as basis, period, cast(new_customers as double) as value,
           cast(null as double) as n
    from journey_counts
    union all
    select period_days, segment, segment_value, 'purchases', 'count', 'data', period,
           purchases, null from purchase_counts
    union all
    select period_days, segment, segment_value, 'purchasers', 'count', 'data', period,
           purchasers, null from purchase_counts
    union all
    select period_days, segment, segment_value, 'repeat_purchasers', 'count', 'data', period,
           repeat_purchasers, null from purchase_counts
    union all
    select period_days, segment, segment_value, 'repeat_rate', 'rate', 'data', period,
           repeat_rate(repeat_purchasers, purchasers), purchasers
    from purchase_counts
    union all
    select period_days, segment, segment_value, 'revenue', 'amount', 'data', period,
           cast(revenue as double), null from purchase_counts
    union all
    select period_days, segment, segment_value, 'conversion_journeys', 'count', 'cohorts',
           period, conversion_journeys, null
    from cohort_counts
    union all
    select period_days, segment, segment_value, 'converted_journeys', 'count', 'cohorts',
           period, converted_journeys, null
    from cohort_counts
    union all
    select period_days, segment, segment_value, 'conversion', 'rate', 'cohorts', period,
           overall_conversion(converted_journeys, conversion_journeys), conversion_journeys
    from cohort_counts
),
observed as (
    -- is the previous period of each basis there to compare with?
    select gp.period_days, gp.segment, gp.segment_value, gp.basis,
           case gp.basis
               when 'data' then coalesce(gp.start_date >= s.data_start, false)
               else coalesce(cc.conversion_journeys > 0, false)
           end as previous_observed
    from group_periods gp
    cross join settings s
    left join cohort_counts cc
      on cc.period_days = gp.period_days and cc.segment = gp.segment
     and cc.segment_value = gp.segment_value and cc.period = 'previous'
    where gp.period = 'previous'
),
paired as (
    select cur.period_days, cur.segment, cur.segment_value, cur.figure, cur.kind, cur.basis,
           -- a period longer than the data covers the data's days only
           case when pc.start_date is not null
                then greatest(pc.start_date, s.data_start) end as current_start,
           pc.end_date as current_end,
           pp.start_date as previous_start, pp.end_date as previous_end,
           o.previous_observed,
           cur.value as current_value,
           case when o.previous_observed then prev.value end as previous_value,
           case when cur.kind = 'rate' then coalesce(cur.n, 0) < s.small_n end as small_n
    from figures cur
    join figures prev
      on prev.period_days = cur.period_days and prev.segment = cur.segment
     and prev.segment_value = cur.segment_value and prev.figure = cur.figure
     and prev.period = 'previous'
    join periods pc
      on pc.period_days = cur.period_days and pc.basis = cur.basis and pc.period = 'current'
    join periods pp
      on pp.period_days = cur.period_days and pp.basis = cur.basis and pp.period = 'previous'
    join observed o
      on o.period_days = cur.period_days and o.segment = cur.segment
     and o.segment_value = cur.segment_value and o.basis = cur.basis
    cross join settings s
    where cur.period = 'current'
),
final as (
    select
        -- grain
        period_days, segment, segment_value, figure,
        -- what the figure is and which days it covers
        kind, basis, current_start, current_end, previous_start, previous_end,
        previous_observed,
        -- values
        current_value, previous_value,
        current_value - previous_value as change,
        case when kind in ('count', 'amount')
             then (current_value - previous_value) / nullif(previous_value, 0)
        end as relative_change,
        small_n
    from paired
)
select * from final
order by period_days, segment <> $all, segment, segment_value, figure
