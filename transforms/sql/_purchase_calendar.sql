-- _purchase_calendar (temporary, read by retention_cohorts.sql and lifecycle.sql): one row per
-- (period type x period), every calendar week (ISO, Monday) and month from the first period with
-- a purchase (`_purchase_periods`) to the period holding $data_end. A period is complete when
-- it ended by the data end.
create or replace temp table _purchase_calendar as
with bounds as (
    select period_type, min(period_start) as first_period
    from _purchase_periods
    group by all
),

periods as (
    -- weeks and months apart: a step of days and a step of months are two interval types on
    -- some engines (Spark), so no expression mixes them; the series is cast to dates outside
    -- the unnest (a generator cannot sit inside an expression there)
    select period_type, cast(ts as date) as period_start
    from (
        select b.period_type,
               unnest(generate_series(cast(b.first_period as timestamp),
                                      date_trunc('week', cast($data_end as timestamp)),
                                      interval 7 day)) as ts
        from bounds b
        where b.period_type = 'week'
        union all
        select b.period_type,
               unnest(generate_series(cast(b.first_period as timestamp),
                                      date_trunc('month', cast($data_end as timestamp)),
                                      interval 1 month)) as ts
        from bounds b
        where b.period_type = 'month'
    ) series
),

final as (
    select
        period_type,
        period_start,
        case period_type when 'week' then period_start + interval 7 day <= $data_end
             else period_start + interval 1 month <= $data_end end as complete
    from periods
)

select * from final
