-- _purchase_periods (temporary, read by retention_cohorts.sql and lifecycle.sql): one row per
-- (period type x customer x period with a purchase), over `purchases`
-- (transforms/purchases.py). Periods are calendar weeks (ISO, Monday) and months, named by
-- their first day.
create or replace temp table _purchase_periods as
with types as (
    select * from (values ('week'), ('month')) t(period_type)
),

final as (
    select distinct
        t.period_type,
        p.customer_id,
        cast(date_trunc(t.period_type, p.purchase_ts) as date) as period_start
    from purchases p
    cross join types t
)

select * from final
