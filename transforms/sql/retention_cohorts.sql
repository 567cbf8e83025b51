-- retention_cohorts: one row per (period type x first-purchase cohort x period number), up to
-- the period holding the data end. Reads `_purchase_periods` (each customer's weeks and months
-- with a purchase, from `purchases`) and `_purchase_calendar` (every period to the data end).
--
-- Cohort = the calendar week (ISO, Monday) or month of a customer's first purchase; period 0 is
-- the cohort's own period. Cell (c, p) counts the cohort members purchasing in period p
-- (customers_on) or in p or any later period (customers_on_or_after); shares are over the
-- cohort size. A period not ended by the data end is incomplete (complete = false).
create or replace table retention_cohorts as
with activity as (
    select * from _purchase_periods
),

calendar as (
    select * from _purchase_calendar
),

cohorts as (
    select period_type, customer_id, min(period_start) as cohort_start
    from activity
    group by all
),

sizes as (
    select period_type, cohort_start, count(*) as cohort_size
    from cohorts
    group by all
),

periods as (
    -- every period from each cohort to the period holding the data end
    select s.period_type, s.cohort_start, s.cohort_size, c.period_start, c.complete
    from sizes s
    join calendar c on c.period_type = s.period_type and c.period_start >= s.cohort_start
),

numbered as (
    select
        *,
        cast(row_number() over (partition by period_type, cohort_start order by period_start)
             - 1 as integer) as period_number
    from periods
),

member_activity as (
    select c.period_type, c.cohort_start, a.customer_id, a.period_start
    from cohorts c
    join activity a using (period_type, customer_id)
),

last_active as (
    select period_type, cohort_start, customer_id, max(period_start) as last_period
    from member_activity
    group by all
),

on_counts as (
    select period_type, cohort_start, period_start, count(*) as customers_on
    from member_activity
    group by all
),

final as (
    select
        -- keys
        n.period_type, n.cohort_start, n.period_number, n.period_start,
        -- counts
        n.cohort_size,
        coalesce(o.customers_on, 0) as customers_on,
        (select count(*) from last_active l
         where l.period_type = n.period_type and l.cohort_start = n.cohort_start
           and l.last_period >= n.period_start) as customers_on_or_after,
        -- completeness
        n.complete
    from numbered n
    left join on_counts o using (period_type, cohort_start, period_start)
)

select
    period_type, cohort_start, period_number, period_start, cohort_size,
    customers_on, customers_on_or_after,
    customers_on / cohort_size as share_on,
    customers_on_or_after / cohort_size as share_on_or_after,
    complete
from final
order by period_type, cohort_start, period_number
