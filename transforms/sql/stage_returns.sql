-- stage_returns: one row per stage: how often customers come back to a stage after reaching a
-- later one, and after how long. Read from `stage_events` (every event, whatever the stage's
-- `occurrence:`), so a stage whose later visits are left out of the paths (occurrence: first)
-- still has its returns measured here.
--
-- A visit is a run of consecutive events of one stage in the customer's time order (ties at
-- one instant by stage position, then event id, as in mining_log). For stage S:
-- customers_reached_later = customers with an event of any stage after S in the journey map
-- (higher stage_index); customers_returning = those of them with a visit of S starting after
-- their first such event;
-- return_visits = those visits; median_seconds_to_return = median over returning customers of
-- (first return - first event of a later stage). The last stage has no later stage: 0 / NULL.
create or replace table stage_returns as
with ev as (
    select customer_id, stage, stage_index, event_ts,
           row_number() over (partition by customer_id
                              order by event_ts, stage_index, event_id) as seq
    from stage_events
    where customer_id is not null
),
visit_starts as (
    select * from (
        select *, lag(stage) over (partition by customer_id order by seq) as previous_stage
        from ev)
    where previous_stage is null or previous_stage <> stage
),
stages as (
    select distinct stage, stage_index from stage_events
),
later as (
    select s.stage, e.customer_id, min(e.seq) as later_seq, min(e.event_ts) as later_ts
    from stages s
    join ev e on e.stage_index > s.stage_index
    group by all
),
returns as (
    select l.stage, l.customer_id, l.later_ts,
           count(v.customer_id) as visits, min(v.event_ts) as first_return_ts
    from later l
    left join visit_starts v
      on v.customer_id = l.customer_id and v.stage = l.stage and v.seq > l.later_seq
    group by all
),
final as (
    select
        s.stage, s.stage_index,
        count(r.customer_id) as customers_reached_later,
        count(r.customer_id) filter (where r.visits > 0) as customers_returning,
        return_rate(count(r.customer_id) filter (where r.visits > 0),
                    count(r.customer_id)) as return_rate,
        coalesce(sum(r.visits), 0) as return_visits,
        median(epoch(r.first_return_ts - r.later_ts)) filter (where r.visits > 0)
            as median_seconds_to_return
    from stages s
    left join returns r using (stage)
    group by all
)
select * from final order by stage_index
