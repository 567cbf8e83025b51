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
    select
        b.period_type,
        cast(unnest(generate_series(
            cast(b.first_period as timestamp),
            date_trunc(b.period_type, cast($data_end as timestamp)),
            case b.period_type when 'week' then interval 7 day else interval 1 month end
        )) as date) as period_start
    from bounds b
),

final as (
    select
        period_type,
        period_start,
        (case period_type when 'week' then period_start + interval 7 day
              else period_start + interval 1 month end) <= $data_end as complete
    from periods
)

select * from final
