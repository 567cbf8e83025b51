-- identity_map: one row per anonymous id that any record links to a customer (user) id.
-- Reads `_event_records` (every source's records as events, before stitching; built by
-- transforms/events.py). The link is the earliest record carrying both ids (event time, then
-- event id); a device later used by a second account stays with the first (counted as
-- `other_customers`).
create or replace table identity_map as
with links as (
    select anonymous_id, own_customer_id as user_id, event_ts, event_id
    from _event_records
    where anonymous_id is not null and own_customer_id is not null
),

final as (
    select
        anonymous_id,
        arg_min(user_id, (event_ts, event_id)) as customer_id,
        min(event_ts) as linked_at,
        count(distinct user_id) - 1 as other_customers
    from links
    group by anonymous_id
)

select * from final
order by anonymous_id
