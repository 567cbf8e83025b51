-- repeat_gaps: one row per customer with a second purchase: the time from the first to the
-- second purchase (purchases.purchase_number 1 and 2).
create or replace table repeat_gaps as
with firsts as (
    select customer_id, purchase_ts from purchases where purchase_number = 1
),
seconds as (
    select customer_id, purchase_ts from purchases where purchase_number = 2
),
final as (
    select
        -- ids
        f.customer_id,
        -- timestamps
        f.purchase_ts as first_purchase_ts, s.purchase_ts as second_purchase_ts,
        -- duration
        epoch(s.purchase_ts - f.purchase_ts) / 86400 as days_to_second
    from firsts f join seconds s using (customer_id)
)
select * from final order by customer_id
