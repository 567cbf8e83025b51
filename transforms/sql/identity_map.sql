-- identity_map: one row per anonymous id that any event links to a customer (user) id.
-- The link is the earliest event carrying both ids (event time, then event id); a device later
-- used by a second account stays with the first (counted as `other_customers`).
create or replace table identity_map as
with links as (
    select anonymous_id, user_id, event_ts, event_id
    from raw_clickstream
    where anonymous_id is not null and user_id is not null
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
