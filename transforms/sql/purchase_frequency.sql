-- purchase_frequency: one row per number of purchases a customer has made (1, 2, ...), over
-- the customers of `purchases` (transforms/purchases.py): how many customers made exactly that
-- many, and their share of all purchasers.
create or replace table purchase_frequency as
with per_customer as (
    select customer_id, count(*) as purchases
    from purchases
    group by all
),

final as (
    select
        cast(purchases as integer) as purchases,
        count(*) as customers,
        count(*) / sum(count(*)) over () as share
    from per_customer
    group by all
)

select * from final order by purchases
