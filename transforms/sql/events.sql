-- events: one row per loaded source event, all sources, on one stitched customer id.
--
-- Identity stitching: an anonymous id belongs to the customer whose user id first appears on an
-- event carrying that anonymous id (earliest event time, then event id); every event of that
-- anonymous id — before and after login — is that customer's. Anonymous ids never linked stay
-- their own person, as 'anon:<anonymous_id>'. Bookings carry the customer id; payments take the
-- customer of their booking (NULL when the booking is unknown: an orphan payment).
create or replace table events as
with clicks as (
    select
        -- ids
        'clickstream:' || c.event_id as event_id,
        'clickstream' as source,
        coalesce(c.user_id, m.customer_id, 'anon:' || c.anonymous_id) as customer_id,
        c.anonymous_id,
        c.event_name,
        -- time
        c.event_ts,
        -- context
        json_extract_string(c.properties, '$.booking_id') as booking_id,
        cast(null as varchar) as payment_id,
        c.platform,
        coalesce(c.channel, 'organic') as channel,
        coalesce(c.city, json_extract_string(c.properties, '$.city')) as city,
        json_extract_string(c.properties, '$.service_category') as service_category,
        json_extract_string(c.properties, '$.salon_id') as salon_id,
        c.screen,
        -- amounts and outcomes
        cast(null as decimal(12, 2)) as amount,
        cast(null as varchar) as status,
        cast(null as varchar) as method,
        cast(null as varchar) as failure_reason,
        cast(null as varchar) as cancel_reason,
        cast(null as varchar) as complaint,
        cast(null as integer) as rating,
        c.properties
    from raw_clickstream c
    left join identity_map m on m.anonymous_id = c.anonymous_id
),

booking_rows as (
    select
        'bookings:' || b.booking_id || ':' || b.status as event_id,
        'bookings' as source,
        b.customer_id,
        cast(null as varchar) as anonymous_id,
        'booking_' || b.status as event_name,
        b.event_ts,
        b.booking_id,
        cast(null as varchar) as payment_id,
        cast(null as varchar) as platform,
        cast(null as varchar) as channel,
        b.city,
        b.service_category,
        b.salon_id,
        cast(null as varchar) as screen,
        cast(b.price as decimal(12, 2)) as amount,
        b.status,
        cast(null as varchar) as method,
        cast(null as varchar) as failure_reason,
        b.cancel_reason,
        b.complaint,
        cast(b.rating as integer) as rating,
        cast(null as json) as properties
    from raw_bookings b
),

booking_owner as (
    -- one owner per booking: the customer on its earliest state change
    select booking_id, customer_id, city, service_category, salon_id
    from (
        select booking_id, customer_id, city, service_category, salon_id,
               row_number() over (partition by booking_id order by event_ts, status) as rn
        from raw_bookings
    ) ranked
    where rn = 1
),

payment_rows as (
    select
        'payments:' || p.payment_id || ':' || p.status as event_id,
        'payments' as source,
        o.customer_id,
        cast(null as varchar) as anonymous_id,
        'payment_' || p.status as event_name,
        p.event_ts,
        p.booking_id,
        p.payment_id,
        cast(null as varchar) as platform,
        cast(null as varchar) as channel,
        o.city,
        o.service_category,
        o.salon_id,
        cast(null as varchar) as screen,
        cast(p.amount as decimal(12, 2)) as amount,
        p.status,
        p.method,
        p.failure_reason,
        cast(null as varchar) as cancel_reason,
        cast(null as varchar) as complaint,
        cast(null as integer) as rating,
        cast(null as json) as properties
    from raw_payments p
    left join booking_owner o on o.booking_id = p.booking_id
),

unioned as (
    select * from clicks
    union all select * from booking_rows
    union all select * from payment_rows
),

deduplicated as (
    -- the same record loaded in two partitions (a re-sent row on another day) counts once
    select * exclude (rn)
    from (
        select *, row_number() over (partition by event_id order by event_ts, source) as rn
        from unioned
    ) ranked
    where rn = 1
),

click_platforms as (
    select customer_id, event_ts, platform
    from clicks
    where platform is not null
),

first_platform as (
    select customer_id, arg_min(platform, event_ts) as platform
    from click_platforms
    group by customer_id
),

final as (
    -- bookings and payments take the customer's most recent app platform at or before the
    -- event (the device they booked on), else their first
    select
        d.event_id, d.source, d.customer_id,
        d.customer_id is not null and not starts_with(d.customer_id, 'anon:') as is_identified,
        d.anonymous_id, d.event_name, d.event_ts, cast(d.event_ts as date) as event_date,
        d.booking_id, d.payment_id,
        coalesce(d.platform, cp.platform, fp.platform) as platform,
        d.channel, d.city, d.service_category, d.salon_id, d.screen,
        d.amount, d.status, d.method, d.failure_reason, d.cancel_reason, d.complaint, d.rating,
        d.properties
    from deduplicated d
    asof left join click_platforms cp
        on cp.customer_id = d.customer_id and d.event_ts >= cp.event_ts
    left join first_platform fp on fp.customer_id = d.customer_id
)

select * from final
order by event_ts, event_id
