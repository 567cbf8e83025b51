-- ingest_reconciliation_periods: `ingest_reconciliation` added up per (grain x source x
-- period): grain 'day' (the partition day), 'week' (ISO, Monday to Sunday) or 'month'
-- (calendar month).
--
-- period_start / period_end = the period's first and last day; partitions = the partition days
-- of the source in it; days_covered = its days within the data's days (first to last
-- partition day over all sources); complete = the period lies wholly within those days (a
-- first or last week or month the data covers only in part is not: the current month, say);
-- rows_* and clock_skew_corrected = sums over its partitions. is_default = the grain
-- $default_grain that the Quality page shows first (chosen from the span of the data,
-- transforms/ingest_periods.py).
create or replace table ingest_reconciliation_periods as
with bounds as (
    select min(partition_date) as first_day, max(partition_date) as last_day
    from ingest_reconciliation
),

grains(grain, grain_order) as (values ('day', 1), ('week', 2), ('month', 3)),

dated as (
    select
        g.grain, g.grain_order, r.source, r.partition_date,
        cast(case g.grain
            when 'day' then r.partition_date
            when 'week' then date_trunc('week', r.partition_date)
            else date_trunc('month', r.partition_date)
        end as date) as period_start,
        r.rows_read, r.rows_loaded, r.rows_quarantined, r.rows_duplicate, r.clock_skew_corrected
    from ingest_reconciliation r
    cross join grains g
),

summed as (
    select
        grain, grain_order, source, period_start,
        cast(case grain
            when 'day' then period_start
            when 'week' then period_start + 6
            else cast(period_start + interval 1 month as date) - 1
        end as date) as period_end,
        count(*) as partitions,
        cast(sum(rows_read) as bigint) as rows_read,
        cast(sum(rows_loaded) as bigint) as rows_loaded,
        cast(sum(rows_quarantined) as bigint) as rows_quarantined,
        cast(sum(rows_duplicate) as bigint) as rows_duplicate,
        cast(sum(clock_skew_corrected) as bigint) as clock_skew_corrected
    from dated
    group by all
),

final as (
    select
        -- grain
        s.grain, s.source, s.period_start, s.period_end,
        -- coverage
        s.partitions,
        cast(least(s.period_end, b.last_day) - greatest(s.period_start, b.first_day) + 1
             as integer) as days_covered,
        s.period_start >= b.first_day and s.period_end <= b.last_day as complete,
        s.grain = cast($default_grain as varchar) as is_default,
        -- counts
        s.rows_read, s.rows_loaded, s.rows_quarantined, s.rows_duplicate,
        s.clock_skew_corrected,
        s.grain_order
    from summed s
    cross join bounds b
)

select grain, source, period_start, period_end, partitions, days_covered, complete, is_default,
       rows_read, rows_loaded, rows_quarantined, rows_duplicate, clock_skew_corrected
from final
order by grain_order, source, period_start
