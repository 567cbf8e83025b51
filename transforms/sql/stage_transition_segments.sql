-- stage_transition_segments: one row per (segment x segment_value x pair of consecutive
-- stages), complete journeys only: the counts, dropout, times and ranks of `stage_transitions`
-- within the value (read from `_transition_segments`, built by transforms/stage_funnels.py), and
-- a test of the value's conversion against all other values of the segment.
--
-- The test is a pooled two-proportion z-test with a two-sided p-value: the normal CDF via the
-- Abramowitz–Stegun 7.1.26 approximation of erfc (error < 1.5e-7), p = erfc(|z| / sqrt(2)).
-- `significant` = p < $significance_level with at least $min_group_outcomes conversions and
-- $min_group_outcomes drop-offs in both groups (the value and the rest).
create or replace table stage_transition_segments as
with seg as (
    select
        *,
        -- the rest: every other value of the same segment, same pair
        sum(entered_from) over (partition by segment, from_index) - entered_from
            as rest_entered_from,
        sum(reached_to) over (partition by segment, from_index) - reached_to
            as rest_reached_to
    from _transition_segments
),

tested as (
    select
        *,
        dropout_rate(rest_reached_to, rest_entered_from) as rest_dropout_rate,
        (reached_to + rest_reached_to) / nullif(entered_from + rest_entered_from, 0) as pooled
    from seg
),

z as (
    select
        *,
        dropout_rate - rest_dropout_rate as dropout_diff,
        case when pooled > 0 and pooled < 1 and entered_from > 0 and rest_entered_from > 0
             -- on dropout, so its sign is dropout_diff's (positive = drops out more)
             then (rest_reached_to / rest_entered_from - reached_to / entered_from)
                  / sqrt(pooled * (1 - pooled) * (1.0 / entered_from + 1.0 / rest_entered_from))
        end as z_score
    from tested
),

erfc_terms as (
    -- erfc(x) ~ t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * a5)))) * exp(-x * x),
    -- x = |z| / sqrt(2), t = 1 / (1 + p * x) (Abramowitz–Stegun 7.1.26)
    select
        *,
        abs(z_score) / sqrt(2) as x,
        1.0 / (1.0 + 0.3275911 * abs(z_score) / sqrt(2)) as t
    from z
),

final as (
    select
        * exclude (pooled, x, t),
        (t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
              + t * 1.061405429))))) * exp(-(x) * (x)) as p_value
    from erfc_terms
)

select
    *,
    coalesce(p_value < $significance_level
             and least(reached_to, dropoff_count, rest_reached_to,
                       rest_entered_from - rest_reached_to) >= $min_group_outcomes,
             false) as significant
from final
order by segment, segment_value, from_index
