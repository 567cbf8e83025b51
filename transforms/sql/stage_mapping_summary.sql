-- stage_mapping_summary: one row per (source, event_name) present in `events`, with how many of
-- its events map to at least one stage (are in `stage_events`, built by transforms/stages.py) and
-- how many do not. Events of no known customer (orphan payments) never map: they are counted in
-- `without_customer` and in `unmapped_events`. `stages` lists the stages the name maps to, in
-- journey order ([] when none).
create or replace table stage_mapping_summary as
with mapped as (
    select distinct event_id from stage_events
),

stages as (
    select source, event_name, list(stage order by stage_index) as stages
    from (select distinct source, event_name, stage, stage_index from stage_events)
    group by all
),

counts as (
    select
        -- keys
        e.source,
        e.event_name,
        -- counts
        count(*) as events,
        count(m.event_id) as mapped_events,
        count(*) - count(m.event_id) as unmapped_events,
        count(*) filter (where e.customer_id is null) as without_customer
    from events e
    left join mapped m using (event_id)
    group by all
),

final as (
    select c.*, coalesce(s.stages, []) as stages
    from counts c
    left join stages s using (source, event_name)
    order by c.source, c.event_name
)

select * from final
