-- payment_failure_matrix: one row per platform x payment method over all days: the
-- payment_attempts cells (days without a failure included) added up, and failure_rate of
-- definitions.sql over the sums.
-- rank_failure_rate: 1 = the highest failure rate among the cells with at least
-- $min_attempts_to_rank attempts (small cells are noisy), or among all cells when none has that
-- many; ties go to platform, then method, in name order. NULL for cells not ranked.
create or replace table payment_failure_matrix as
with cells as (
    select platform, method,
           cast(sum(attempts) as bigint) as attempts,
           cast(sum(failures) as bigint) as failures
    from payment_attempts
    group by all
),
rated as (
    select *,
           failure_rate(failures, attempts) as failure_rate,
           attempts >= cast($min_attempts_to_rank as integer) as enough_attempts
    from cells
),
rankable as (
    select *,
           enough_attempts or not coalesce((select bool_or(enough_attempts) from rated), false)
               as rankable
    from rated
),
final as (
    select
        -- grain
        platform, method,
        -- counts
        attempts, failures,
        -- rate
        failure_rate, enough_attempts,
        case when rankable then cast(row_number() over (
            partition by rankable order by failure_rate desc nulls last, platform, method)
            as integer) end as rank_failure_rate
    from rankable
)
select * from final order by platform, method
