"""Stage funnels and transitions: how many journeys reach each stage, and where they drop out.

Every function takes a DuckDB connection holding `journeys` and `journey_stages`
(transforms/journeys.py) and the loaded journey map, and (re)creates its tables with CREATE OR
REPLACE. Grains and columns are in docs/TABLES.md. The rates are the definition macros of
transforms/sql/definitions.sql (step_conversion, dropout_rate, overall_conversion). The engine
behind the journeys is transforms/funnel.py; this module only counts them. The rules:

- **Completeness.** Funnel, segment and transition rates use complete journeys only (entry +
  window <= data end, transforms/journeys.py); cohort rows are kept for every entry day and
  marked: a cohort is complete when its day + 1 day + the window <= data end.
- **Bottleneck.** Transitions are ranked (dropout rate, journeys lost, median time) only up
  to and including the one into the conversion stage; the bottleneck is the rank-1 dropout
  among them when its rate is above 0. Later transitions (e.g. Service -> Repeat: customers
  not having bought again yet) stay in the tables with NULL ranks and are never flagged.
- **Significance.** `stage_transition_segments` compares the conversion of a segment value
  with all other values of the segment by a pooled two-proportion z-test, two-sided p-value
  (normal CDF via the Abramowitz–Stegun 7.1.26 erfc approximation, error < 1.5e-7);
  `significant` = p < 0.05 (`SIGNIFICANCE_LEVEL`) with at least 5 (`MIN_GROUP_OUTCOMES`)
  conversions and 5 drop-offs in both groups (transforms/sql/stage_transition_segments.sql).

The funnel and transition statements are assembled here: one template each serves the overall,
per-cohort and per-segment tables, over the journey map's stages and segments.
"""

from __future__ import annotations

import duckdb

from transforms.journey_map import JourneyMap
from transforms.sqlutil import Params, sql_file
from transforms.tables import count_rows, data_end, segment_rows_sql, stage_list_sql

SIGNIFICANCE_LEVEL = 0.05
MIN_GROUP_OUTCOMES = 5
# A rate over fewer actors than this is shown as "small n" (greyed, not ranked) on the pages:
# its 95 % interval is wider than about +-18 points.
SMALL_N = 30


def _funnel_sql(table: str, groups: list[str], grouped_sql: str, stage_list: str,
                extra_select: str = "") -> str:
    """A funnel table over `grouped_sql` (one row per journey x group keys, with
    customer_id): per group x stage the standard per-step figures."""
    g = ", ".join(groups)
    gk = (g + ", ") if groups else ""
    part = f"partition by {g}" if groups else ""
    return f"""
        create or replace table {table} as
        with grouped as ({grouped_sql}),
        per_stage as (
            select {gk}s.stage_index,
                   count(*) as entered,
                   count(*) filter (where s.observed) as observed,
                   quantile_cont(s.seconds_from_previous, 0.5) as median_seconds,
                   quantile_cont(s.seconds_from_previous, 0.75) as p75_seconds,
                   quantile_cont(s.seconds_from_previous, 0.9) as p90_seconds,
                   avg(s.seconds_from_previous) as mean_seconds
            from grouped gr join journey_stages s using (customer_id)
            group by all
        ),
        grid as (
            select {gk}stage_list.stage_index, stage_list.stage, stage_list.optional
            from (select distinct {g if groups else '1 as _one'} from grouped) gg
            cross join {stage_list}
        ),
        filled as (
            select gd.*, coalesce(ps.entered, 0) as entered, coalesce(ps.observed, 0) as observed,
                   ps.median_seconds, ps.p75_seconds, ps.p90_seconds, ps.mean_seconds
            from grid gd left join per_stage ps using ({gk}stage_index)
        ),
        final as (
            select {gk}stage_index, stage, optional, entered, observed,
                   overall_conversion(entered, first_value(entered) over w)
                       as overall_conversion,
                   step_conversion(entered, lag(entered) over w) as step_conversion,
                   lag(entered) over w - entered as dropoff_count,
                   dropout_rate(entered, lag(entered) over w) as dropout_rate,
                   median_seconds, p75_seconds, p90_seconds, mean_seconds
                   {extra_select}
            from filled
            window w as ({part} order by stage_index)
        )
        select * from final order by {gk}stage_index
    """


def build_funnels(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> dict[str, int]:
    """(Re)build `funnel_steps` (one row per stage, complete journeys), `funnel_cohorts` (one
    row per entry day x stage, every day, marked complete or not) and `funnel_segments` (one
    row per segment x value x stage, complete journeys). Needs `journeys`, `journey_stages`."""
    end = data_end(con)
    p = Params()
    con.execute(
        _funnel_sql("funnel_steps", [], "select customer_id from journeys where complete",
                    stage_list_sql(jmap, p),
                    extra_select=", (select count(*) from journeys where not complete) "
                                 "as incomplete_journeys"),
        p.values,
    )
    p = Params()
    p.values["data_end"] = end
    con.execute(
        _funnel_sql("funnel_cohorts", ["cohort_date"],
                    "select customer_id, entry_date as cohort_date from journeys",
                    stage_list_sql(jmap, p),
                    extra_select=f", coalesce(cohort_date + interval 1 day "
                                 f"+ to_seconds({jmap.window_seconds}) <= $data_end, false) "
                                 "as complete"),
        p.values,
    )
    p = Params()
    seg_sql = segment_rows_sql(jmap, p)
    con.execute(
        _funnel_sql("funnel_segments", ["segment", "segment_value"], seg_sql,
                    stage_list_sql(jmap, p)),
        p.values,
    )
    return {t: count_rows(con, t) for t in ("funnel_steps", "funnel_cohorts", "funnel_segments")}


def _transitions_sql(table: str, groups: list[str], grouped_sql: str, stage_list: str,
                     last_ranked_index: int) -> str:
    """Transitions into stages up to `last_ranked_index` (the conversion stage) are ranked and
    can be the bottleneck; later ones keep their counts with NULL ranks, never flagged."""
    g = ", ".join(groups)
    gk = (g + ", ") if groups else ""
    ranked = f"to_index <= {int(last_ranked_index)}"
    part = f"partition by {gk}{ranked}"
    return f"""
        create or replace table {table} as
        with grouped as ({grouped_sql}),
        stages as (select * from {stage_list}),
        pairs as (
            select f.stage_index as from_index, f.stage as from_stage,
                   t.stage_index as to_index, t.stage as to_stage
            from stages f join stages t on t.stage_index = f.stage_index + 1
        ),
        per_pair as (
            select {gk}pr.from_index,
                   count(*) as entered_from,
                   count(t.customer_id) as reached_to,
                   count(t.seconds_from_previous) as timed,
                   quantile_cont(t.seconds_from_previous, 0.5) as median_seconds,
                   quantile_cont(t.seconds_from_previous, 0.75) as p75_seconds,
                   quantile_cont(t.seconds_from_previous, 0.9) as p90_seconds,
                   avg(t.seconds_from_previous) as mean_seconds
            from grouped gr
            join journey_stages f using (customer_id)
            join pairs pr on pr.from_index = f.stage_index
            left join journey_stages t
              on t.customer_id = f.customer_id and t.stage_index = pr.to_index
            group by all
        ),
        grid as (
            select {gk}pr.*
            from (select distinct {g if groups else '1 as _one'} from grouped) gg
            cross join pairs pr
        ),
        filled as (
            select gd.*, coalesce(pp.entered_from, 0) as entered_from,
                   coalesce(pp.reached_to, 0) as reached_to,
                   coalesce(pp.entered_from, 0) - coalesce(pp.reached_to, 0) as dropoff_count,
                   dropout_rate(pp.reached_to, pp.entered_from) as dropout_rate,
                   coalesce(pp.timed, 0) as timed,
                   pp.median_seconds, pp.p75_seconds, pp.p90_seconds, pp.mean_seconds
            from grid gd left join per_pair pp using ({gk}from_index)
        ),
        final as (
            select *,
                   case when {ranked} then cast(rank() over (
                       {part} order by dropout_rate desc nulls last) as integer) end
                       as rank_dropout,
                   case when {ranked} then cast(rank() over (
                       {part} order by dropoff_count desc) as integer) end as rank_dropoff,
                   case when {ranked} then cast(rank() over (
                       {part} order by median_seconds desc nulls last) as integer) end
                       as rank_time
            from filled
        )
        select *, coalesce(rank_dropout = 1 and dropout_rate > 0, false) as is_bottleneck
        from final order by {gk}from_index
    """


def build_transitions(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> dict[str, int]:
    """(Re)build `stage_transitions` (one row per pair of consecutive stages, complete journeys)
    and `stage_transition_segments` (one row per segment x value x pair, with a two-proportion
    z-test of the value's conversion against the rest of the segment). Ranks and the bottleneck
    flag cover the transitions up to and including the conversion stage only."""
    conv_idx = jmap.stage(jmap.conversion_stage).index
    p = Params()
    con.execute(
        _transitions_sql("stage_transitions", [],
                         "select customer_id from journeys where complete",
                         stage_list_sql(jmap, p), conv_idx),
        p.values,
    )
    p = Params()
    con.execute(
        _transitions_sql("_transition_segments", ["segment", "segment_value"],
                         segment_rows_sql(jmap, p), stage_list_sql(jmap, p), conv_idx),
        p.values,
    )
    con.execute(sql_file("stage_transition_segments"), {
        "significance_level": SIGNIFICANCE_LEVEL, "min_group_outcomes": MIN_GROUP_OUTCOMES})
    con.execute("drop table if exists _transition_segments")
    return {t: count_rows(con, t) for t in ("stage_transitions", "stage_transition_segments")}
