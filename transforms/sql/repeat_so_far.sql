-- repeat_so_far: one row per repeat_purchase group (group_name x group_value): of its
-- purchasers, how many have bought again so far, whatever time they had to (not controlled for
-- a horizon: recent buyers had less time). repeat_share = repeat_rate of definitions.sql.
create or replace table repeat_so_far as
with groups as (
    select distinct group_name, group_value, purchasers, repeat_purchasers
    from repeat_purchase
),
final as (
    select group_name, group_value, purchasers, repeat_purchasers,
           repeat_rate(repeat_purchasers, purchasers) as repeat_share
    from groups
)
select * from final order by group_name <> 'all', group_name, group_value
