-- lifecycle: one row per (period type x period x status): every calendar week (ISO, Monday) or
-- month from the first purchase to the period holding the data end, every status (0 customers
-- included). Reads `_purchase_periods` (each customer's weeks and months with a purchase, from
-- `purchases`) and `_purchase_calendar` (every period to the data end).
--
-- Statuses per period: new (first purchase in it), returning (purchased in it and the previous
-- period), resurrecting (in it, not the previous one, but before), dormant (in the previous
-- period, not in it). A period not ended by the data end is incomplete (complete = false).
create or replace table lifecycle as
with activity as (
    select * from _purchase_periods
),

calendar as (
    select * from _purchase_calendar
),

prev as (
    select
        period_type, period_start,
        lag(period_start) over (partition by period_type order by period_start) as prev_start
    from calendar
),

firsts as (
    select period_type, customer_id, min(period_start) as first_period
    from activity
    group by all
),

statuses as (
    -- customers active in the period: new, returning or resurrecting
    select
        a.period_type, a.period_start, a.customer_id,
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
    select * from (values ('new'), ('returning'), ('resurrecting'), ('dormant')) s(status)
),

final as (
    select
        -- keys
        c.period_type, c.period_start, sl.status,
        -- counts
        count(st.customer_id) as customers,
        -- completeness
        c.complete
    from calendar c
    cross join statuses_list sl
    left join statuses st
      on st.period_type = c.period_type and st.period_start = c.period_start
     and st.status = sl.status
    group by all
)

select * from final order by period_type, period_start, status
