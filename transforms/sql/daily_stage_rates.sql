-- daily_stage_rates: one row per (day x stage) with journeys first reaching the stage that day
-- (`journey_stages.reached_ts`), how many of them went on to the next stage, the day's payment
-- attempts and failure rate (from `payment_attempts`, on the conversion stage's row only) and a
-- robust-z anomaly flag.
--
-- Anomalies: robust z = (x - median) / (1.4826 * MAD) over the baseline days of the stage; when
-- MAD = 0 the scale is 1.2533 * mean absolute deviation. Baseline days: complete days with at
-- least $min_daily_entered journeys for the dropout rate, days with at least
-- $min_daily_entered payment attempts for the failure rate; only such days are scored.
-- |z| > $anomaly_threshold flags the day, and anomaly_reason says which rate, high or low.
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

baseline as (
    select
        stage_index,
        median(dropout_rate) filter (where complete and entered >= $min_daily_entered)
            as med_dropout_rate,
        median(payment_failure_rate) filter (where payment_attempts >= $min_daily_entered)
            as med_payment_failure_rate
    from joined
    group by all
),

spread as (
    select
        j.stage_index,
        median(abs(j.dropout_rate - b.med_dropout_rate))
            filter (where j.complete and j.entered >= $min_daily_entered) as mad_dropout_rate,
        avg(abs(j.dropout_rate - b.med_dropout_rate))
            filter (where j.complete and j.entered >= $min_daily_entered) as meanad_dropout_rate,
        median(abs(j.payment_failure_rate - b.med_payment_failure_rate))
            filter (where j.payment_attempts >= $min_daily_entered) as mad_payment_failure_rate,
        avg(abs(j.payment_failure_rate - b.med_payment_failure_rate))
            filter (where j.payment_attempts >= $min_daily_entered)
            as meanad_payment_failure_rate
    from joined j
    join baseline b using (stage_index)
    group by all
),

scored as (
    select
        j.*,
        case when j.complete and j.entered >= $min_daily_entered then
            case when mad_dropout_rate > 0
                 then (dropout_rate - med_dropout_rate) / (1.4826 * mad_dropout_rate)
                 when meanad_dropout_rate > 0
                 then (dropout_rate - med_dropout_rate) / (1.253314 * meanad_dropout_rate)
            end
        end as dropout_z,
        case when j.payment_attempts >= $min_daily_entered then
            case when mad_payment_failure_rate > 0
                 then (payment_failure_rate - med_payment_failure_rate)
                      / (1.4826 * mad_payment_failure_rate)
                 when meanad_payment_failure_rate > 0
                 then (payment_failure_rate - med_payment_failure_rate)
                      / (1.253314 * meanad_payment_failure_rate)
            end
        end as failure_z
    from joined j
    join baseline using (stage_index)
    join spread using (stage_index)
),

final as (
    select
        -- keys
        event_date, stage_index, stage,
        -- rates
        entered, converted, dropout_rate,
        payment_attempts, payment_failures, payment_failure_rate, complete,
        -- anomaly
        dropout_z, failure_z,
        coalesce(abs(dropout_z) > $anomaly_threshold, false)
            or coalesce(abs(failure_z) > $anomaly_threshold, false) as anomaly,
        nullif(concat_ws(', ',
            case when abs(failure_z) > $anomaly_threshold then 'payment_failure_rate '
                 || case when failure_z > 0 then 'high' else 'low' end end,
            case when abs(dropout_z) > $anomaly_threshold then 'dropout_rate '
                 || case when dropout_z > 0 then 'high' else 'low' end end), '')
            as anomaly_reason
    from scored
)

select * from final order by event_date, stage_index
