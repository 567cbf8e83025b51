-- daily_stage_rates: one row per (day x stage) with journeys first reaching the stage that day
-- (`journey_stages.reached_ts`), how many of them went on to the next stage, the day's payment
-- attempts and failure rate (from `payment_attempts`, on the conversion stage's row only), and
-- which finding (transforms/findings.py: the `findings` table) covers the day: a view of the
-- findings, not a rule of its own. dropout_finding: the best-ranked finding of everyone (no
-- segment) on the transition from this stage whose window holds the day; failure_finding: the
-- same for the payments (conversion stage's row only). NULL: no finding that day.
-- The last stage ($last_stage_index) has no next stage: no converted count, no dropout.
create or replace table daily_stage_rates as
with reached as (
    select
        s.customer_id, s.stage_index, s.stage,
        cast(s.reached_ts as date) as day,
        s.complete,
        exists (select 1 from journey_stages n
                where n.customer_id = s.customer_id and n.stage_index = s.stage_index + 1)
            as went_on
    from journey_stages s
    where s.reached_ts is not null
),

per_day as (
    select
        day as event_date, stage_index, stage,
        count(*) as entered,
        count(*) filter (where went_on) as went_on,
        bool_and(complete) as all_complete
    from reached
    group by day, stage_index, stage
),

payments as (
    select event_date, sum(attempts) as payment_attempts, sum(failures) as payment_failures
    from payment_attempts
    group by all
),

joined as (
    select
        -- keys
        d.event_date, d.stage_index, d.stage,
        -- journeys
        d.entered,
        case when d.stage_index < $last_stage_index then d.went_on end as converted,
        case when d.stage_index < $last_stage_index
             then dropout_rate(d.went_on, d.entered) end as dropout_rate,
        d.all_complete as complete,
        -- payments, on the conversion stage's row
        case when d.stage_index = $conversion_stage_index then py.payment_attempts end
            as payment_attempts,
        case when d.stage_index = $conversion_stage_index then py.payment_failures end
            as payment_failures,
        case when d.stage_index = $conversion_stage_index
             then failure_rate(py.payment_failures, py.payment_attempts) end
            as payment_failure_rate
    from per_day d
    left join payments py using (event_date)
),

overall_findings as (
    select rank, from_step, to_step, start_day, end_day
    from findings
    where segment_column is null and kind in ('window', 'hours', 'step')
),

final as (
    select
        j.*,
        (select min(f.rank) from overall_findings f
         where f.from_step = j.stage and j.event_date between f.start_day and f.end_day
           and f.to_step <> $payment_to_step)
            as dropout_finding,
        case when j.stage_index = $conversion_stage_index then
            (select min(f.rank) from overall_findings f
             where f.to_step = $payment_to_step and j.event_date between f.start_day and f.end_day)
        end as failure_finding
    from joined j
)

select * from final order by event_date, stage_index
