"""Observed journeys: events mapped to stages, one journey per customer, funnels and bottlenecks.

Every function takes a DuckDB connection holding the `events` table (docs/CONTRACTS.md) and the
loaded journey map, and (re)creates its tables with CREATE OR REPLACE. Grains and columns are in
docs/TABLES.md; the rules that decide the numbers are here:

- **Stage mapping.** An event belongs to every stage one of whose rules it matches; events of
  no known customer (orphan payments) and events matching no rule stay out of `stage_events`
  and are counted in `stage_mapping_summary`. A derived `repeat_of` stage holds the event that
  reached the `repeat_of` stage for the customer's `min_occurrence`-th, ... distinct
  `distinct_by` value (booking), in order of first reaching it, ignoring values that have a
  `cancelled_by` event (refund).
- **Journey.** One per customer: the funnel engine (transforms/funnel.py: ordered, re-entry
  `latest`, window = `conversion_window`) runs over the *required* stages, actor = customer;
  the journey is the attempt that got furthest (first on a tie), entry = its first-stage event.
- **Optional stages.** An optional stage is *observed* when the customer has an event of it at
  or after the previous required stage was reached, within the window and not after the next
  required stage was reached; it counts as *reached* when observed or when the next required
  stage was reached (then it was skipped: `observed = false`, listed in `skipped_stages`, no
  timestamp, left out of time-to-convert figures). So counts never increase along the stages.
- **Segments** take the first non-null value from the journey's entry on (entry event first)
  within its window; `new_vs_returning`: `returning` if the customer purchased before entry or
  has no `new_when` event up to the journey's window end (a user from before the data), else
  `new` (an install right after the campaign click that opened the journey makes it new).
- **Completeness.** data end = max(event_ts) of `events`; a journey is complete when
  entry + window <= data end. Funnel, segment and transition rates use complete journeys only;
  cohort rows are kept for every entry day and marked.
- **Bottleneck.** Transitions are ranked (dropout rate, journeys lost, median time) only up
  to and including the one into the conversion stage; the bottleneck is the rank-1 dropout
  among them when its rate is above 0. Later transitions (e.g. Service -> Repeat: customers
  not having bought again yet) stay in the tables with NULL ranks and are never flagged.
- **Significance.** `stage_transition_segments` compares the conversion of a segment value
  with all other values of the segment by a pooled two-proportion z-test, two-sided p-value
  (normal CDF via the Abramowitz–Stegun 7.1.26 erfc approximation, error < 1.5e-7);
  `significant` = p < 0.05 with at least 5 conversions and 5 drop-offs in both groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from transforms.funnel import Step, funnel_actors
from transforms.journey_map import JourneyMap, rule_sql
from transforms.sqlutil import Params, ident

SIGNIFICANCE_LEVEL = 0.05
MIN_GROUP_OUTCOMES = 5


@dataclass(frozen=True)
class MappingStats:
    events: int
    mapped_events: int
    unmapped_events: int
    stage_events: int


def fetch_row(con: duckdb.DuckDBPyConnection, sql: str, params: object = None) -> tuple:
    """The single row of a query (fetched to the end, so the connection is free again)."""
    rows = con.execute(sql, params).fetchall() if params else con.execute(sql).fetchall()
    return rows[0]


def count_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(fetch_row(con, f"select count(*) from {ident(table)}")[0])


def data_end(con: duckdb.DuckDBPyConnection) -> object:
    """The end of the data: the latest event time in `events` (None when empty)."""
    return fetch_row(con, "select max(event_ts) from events")[0]


def _stage_list_sql(jmap: JourneyMap, params: Params) -> str:
    """A VALUES list (stage_index, stage, optional) of the configured stages."""
    rows = ", ".join(
        f"({s.index}, {params.add(s.name)}, {'true' if s.optional else 'false'})"
        for s in jmap.stages
    )
    return f"(values {rows}) as stage_list(stage_index, stage, optional)"


# --------------------------------------------------------------------------------------------
# stage_events, stage_mapping_summary, purchases


def build_stage_events(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> MappingStats:
    """(Re)build `stage_events` (one row per event x stage it maps to) and
    `stage_mapping_summary` (one row per source x event_name present in `events`)."""
    params = Params()
    selects = []
    for st in jmap.stages:
        if st.repeat is not None:
            continue
        preds = [rule_sql(r, params, "e") for r in st.rules]
        case = " ".join(f"when {p} then {j}" for j, p in enumerate(preds))
        where = " or ".join(rule_sql(r, params, "e") for r in st.rules)
        selects.append(
            f"select e.* exclude (properties), {params.add(st.name)} as stage, "
            f"{st.index} as stage_index, case {case} end as rule_index "
            f"from events e where e.customer_id is not null and ({where})"
        )
    if selects:
        body = " union all ".join(selects)
    else:
        body = ("select e.* exclude (properties), cast(null as varchar) as stage, "
                "0 as stage_index, 0 as rule_index from events e where false")
    con.execute(f"create or replace table stage_events as {body}", params.values)

    for st in jmap.stages:
        if st.repeat is None:
            continue
        rep = st.repeat
        of = jmap.stage(rep.repeat_of)
        key = ident(rep.distinct_by)
        p = Params()
        cancelled = (f"select distinct {key} as k from events e "
                     f"where {rule_sql(rep.cancelled_by, p, 'e')} and {key} is not null"
                     if rep.cancelled_by is not None
                     else "select cast(null as varchar) as k where false")
        con.execute(
            f"""
            insert into stage_events
            with base as (
                select * from stage_events where stage_index = {of.index} and {key} is not null
            ),
            cancelled as ({cancelled}),
            firsts as (
                -- the event that first reached the stage for each distinct value
                select customer_id, {key} as k,
                       arg_min(event_id, (event_ts, event_id)) as event_id,
                       min(event_ts) as first_ts
                from base
                where {key} not in (select k from cancelled where k is not null)
                group by all
            ),
            ranked as (
                select *, row_number() over (partition by customer_id order by first_ts, k) as n
                from firsts
            ),
            final as (
                select b.* replace ({p.add(st.name)} as stage, {st.index} as stage_index,
                                    0 as rule_index)
                from base b join ranked r using (event_id)
                where r.n >= {int(rep.min_occurrence)}
            )
            select * from final
            """,
            p.values,
        )

    con.execute(
        """
        create or replace table stage_mapping_summary as
        with mapped as (
            select distinct event_id from stage_events
        ),
        stages as (
            select source, event_name, list(stage order by stage_index) as stages
            from (select distinct source, event_name, stage, stage_index from stage_events)
            group by all
        ),
        counts as (
            select e.source, e.event_name,
                   count(*) as events,
                   count(m.event_id) as mapped_events,
                   count(*) - count(m.event_id) as unmapped_events,
                   count(*) filter (where e.customer_id is null) as without_customer
            from events e left join mapped m using (event_id)
            group by all
        ),
        final as (
            select c.*, coalesce(s.stages, []) as stages
            from counts c left join stages s using (source, event_name)
            order by c.source, c.event_name
        )
        select * from final
        """
    )
    events, mapped, unmapped = fetch_row(
        con, "select coalesce(sum(events), 0), coalesce(sum(mapped_events), 0), "
        "coalesce(sum(unmapped_events), 0) from stage_mapping_summary")
    n_stage = count_rows(con, "stage_events")
    return MappingStats(int(events), int(mapped), int(unmapped), int(n_stage))


def build_purchases(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `purchases`: one row per purchase = booking with a payment success and no
    refund (distinct booking ids), at its first payment success, numbered per customer."""
    succeeded = jmap.metric_events.get("payment_succeeded")
    refunded = jmap.metric_events.get("payment_refunded")
    p = Params()
    paid_where = rule_sql(succeeded, p, "e") if succeeded is not None else "false"
    refund_where = rule_sql(refunded, p, "e") if refunded is not None else "false"
    con.execute(
        f"""
        create or replace table purchases as
        with paid as (
            select booking_id,
                   arg_min(customer_id, event_ts) as customer_id,
                   min(event_ts) as purchase_ts,
                   arg_min(amount, event_ts) as amount
            from events e
            where {paid_where} and booking_id is not null and customer_id is not null
            group by booking_id
        ),
        refunded as (
            select distinct booking_id from events e
            where {refund_where} and booking_id is not null
        ),
        final as (
            select p.customer_id, p.booking_id, p.purchase_ts,
                   cast(p.purchase_ts as date) as purchase_date, p.amount,
                   row_number() over (partition by p.customer_id
                                      order by p.purchase_ts, p.booking_id) as purchase_number
            from paid p
            where p.booking_id not in (select booking_id from refunded)
        )
        select * from final
        """,
        p.values,
    )
    return count_rows(con, "purchases")


# --------------------------------------------------------------------------------------------
# journeys


def build_journeys(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `journeys` (one row per customer journey), `journey_stages` (one row per
    journey x stage reached) and the view `journeys_wide` (journeys + one column per stage).
    Needs `stage_events` and `purchases`."""
    window = jmap.window_seconds
    required = jmap.required_stages
    end = data_end(con)

    # 1. the funnel engine over the required stages: one row per entered customer
    p = Params()
    marks = ", ".join(str(s.index) for s in required)
    con.execute(
        f"create or replace temp table _journey_input as "
        f"select customer_id, stage, event_ts from stage_events where stage_index in ({marks})"
    )
    steps = [Step(s.name, event=s.name) for s in required]
    actors = funnel_actors(con, "_journey_input", steps, window_seconds=window,
                           order="ordered", reentry="latest", actor_col="customer_id",
                           event_col="stage", time_col="event_ts")
    step_cols = ", ".join(f"step_{k}_ts as r{k}" for k in range(1, len(required) + 1))
    con.execute(
        f"create or replace temp table _journey_actors as "
        f"select actor as customer_id, entry_ts, {step_cols}, "
        f"entry_ts + to_seconds({window}) as window_end_ts "
        f"from ({actors.sql_query()})"
    )
    con.execute("drop table if exists _journey_input")

    # 2. journey_stages: one row per journey x stage reached
    req_pos = {s.index: k for k, s in enumerate(required, start=1)}
    parts = []
    for st in jmap.stages:
        name = p.add(st.name)
        opt = "true" if st.optional else "false"
        if not st.optional:
            k = req_pos[st.index]
            parts.append(
                f"select customer_id, {name} as stage, {st.index} as stage_index, {opt} as "
                f"optional, r{k} as reached_ts, true as observed "
                f"from _journey_actors where r{k} is not null"
            )
            continue
        prev_k = max((k for i, k in req_pos.items() if i < st.index), default=1)
        next_k = min((k for i, k in req_pos.items() if i > st.index), default=None)
        upper = (f"and se.event_ts <= coalesce(a.r{next_k}, a.window_end_ts)" if next_k
                 else "")
        implied = f"a.r{next_k} is not null" if next_k else "false"
        parts.append(
            f"""select a.customer_id, {name} as stage, {st.index} as stage_index, {opt} as
                   optional, min(se.event_ts) as reached_ts,
                   min(se.event_ts) is not null as observed
            from _journey_actors a
            left join stage_events se
              on se.customer_id = a.customer_id and se.stage_index = {st.index}
             and se.event_ts >= a.r{prev_k} and se.event_ts <= a.window_end_ts {upper}
            where a.r{prev_k} is not null
            group by a.customer_id
            having min(se.event_ts) is not null or bool_or({implied})"""
        )
    con.execute(
        f"""
        create or replace table journey_stages as
        with reached as ({' union all '.join(parts)}),
        final as (
            select r.customer_id, r.stage, r.stage_index, r.optional, r.reached_ts, r.observed,
                   epoch_us(r.reached_ts - lag(r.reached_ts) over w) / 1e6
                       as seconds_from_previous,
                   a.entry_ts, cast(a.entry_ts as date) as entry_date,
                   coalesce(a.window_end_ts <= $data_end, false) as complete
            from reached r join _journey_actors a using (customer_id)
            window w as (partition by r.customer_id order by r.stage_index)
        )
        select * from final order by customer_id, stage_index
        """,
        {**p.values, "data_end": end},
    )

    # 3. journeys: segments at entry, customer type, furthest stage
    p = Params()
    seg_cols = []
    seg_selects = []
    new_selects = []
    for seg in jmap.segments:
        col_name = ident(seg.name)
        if seg.column is not None:
            col = f"cast(e.{ident(seg.column)} as varchar)"
            seg_selects.append(
                f"arg_min({col}, (e.event_ts, e.event_id <> ee.entry_event_id, e.event_id)) "
                f"filter (where {col} is not null) as {col_name}"
            )
            seg_cols.append(f"s.{col_name}")
        else:
            new_pred = rule_sql(seg.new_when, p, "e")
            new_selects.append(
                f"coalesce(bool_or({new_pred}), false) as {ident('_new_' + seg.name)}"
            )
            seg_cols.append(
                f"case when pp.first_purchase_ts < a.entry_ts then 'returning' "
                f"when nw.{ident('_new_' + seg.name)} then 'new' else 'returning' end "
                f"as {col_name}"
            )
    seg_agg = ", ".join(seg_selects) if seg_selects else "count(*) as _n"
    new_agg = ", ".join(new_selects) if new_selects else "count(*) as _n"
    conv_idx = jmap.stage(jmap.conversion_stage).index
    last_idx = jmap.stages[-1].index
    con.execute(
        f"""
        create or replace table journeys as
        with a as (
            select * from _journey_actors
        ),
        entry_event as (
            select a.customer_id, min(se.event_id) as entry_event_id
            from a join stage_events se
              on se.customer_id = a.customer_id and se.stage_index = 1
             and se.event_ts = a.entry_ts
            group by all
        ),
        s as (
            -- segment values: first non-null from entry (entry event first) within the window
            select a.customer_id, {seg_agg}
            from a
            left join entry_event ee using (customer_id)
            left join events e
              on e.customer_id = a.customer_id
             and e.event_ts >= a.entry_ts and e.event_ts <= a.window_end_ts
            group by a.customer_id
        ),
        nw as (
            -- new_when events (install, sign-up) from before the entry up to the window end:
            -- the campaign click that starts a journey comes before the install it leads to
            select a.customer_id, {new_agg}
            from a
            left join events e
              on e.customer_id = a.customer_id and e.event_ts <= a.window_end_ts
            group by a.customer_id
        ),
        pp as (
            select customer_id, min(purchase_ts) as first_purchase_ts from purchases group by all
        ),
        reach as (
            select customer_id,
                   max(stage_index) as furthest_stage_index,
                   arg_max(stage, stage_index) as furthest_stage,
                   count(*) as stages_reached,
                   coalesce(list(stage order by stage_index) filter (where not observed), [])
                       as skipped_stages
            from journey_stages group by all
        ),
        ident_flag as (
            select customer_id, bool_or(is_identified) as is_identified
            from events where customer_id in (select customer_id from a) group by all
        ),
        final as (
            select
                -- ids
                a.customer_id, coalesce(i.is_identified, false) as is_identified,
                -- timestamps
                a.entry_ts, cast(a.entry_ts as date) as entry_date, a.window_end_ts,
                -- segments at entry
                {', '.join(seg_cols) + ',' if seg_cols else ''}
                -- outcome
                r.furthest_stage, r.furthest_stage_index, r.stages_reached,
                r.furthest_stage_index >= {conv_idx} as converted,
                r.furthest_stage_index >= {last_idx} as reached_last_stage,
                r.skipped_stages,
                coalesce(a.window_end_ts <= $data_end, false) as complete
            from a
            join reach r using (customer_id)
            left join s using (customer_id)
            left join nw using (customer_id)
            left join pp using (customer_id)
            left join ident_flag i using (customer_id)
        )
        select * from final order by customer_id
        """,
        {**p.values, "data_end": end},
    )
    con.execute("drop table if exists _journey_actors")

    stage_cols = ", ".join(
        f"max(s.reached_ts) filter (where s.stage_index = {st.index}) as {ident(st.name)}"
        for st in jmap.stages
    )
    con.execute(
        f"""
        create or replace view journeys_wide as
        select j.*, {stage_cols}
        from journeys j left join journey_stages s using (customer_id)
        group by all
        """
    )
    return count_rows(con, "journeys")


# --------------------------------------------------------------------------------------------
# funnels


def _segment_rows_sql(jmap: JourneyMap, params: Params, alias: str = "j") -> str:
    """journeys unpivoted: one row per journey x segment (segment, segment_value)."""
    if not jmap.segments:
        return (f"select {alias}.customer_id, cast(null as varchar) as segment, "
                f"cast(null as varchar) as segment_value from journeys {alias} where false")
    return " union all ".join(
        f"select {alias}.customer_id, {params.add(seg.name)} as segment, "
        f"coalesce(cast({alias}.{ident(seg.name)} as varchar), '(unknown)') as segment_value "
        f"from journeys {alias} where {alias}.complete"
        for seg in jmap.segments
    )


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
                    _stage_list_sql(jmap, p),
                    extra_select=", (select count(*) from journeys where not complete) "
                                 "as incomplete_journeys"),
        p.values,
    )
    p = Params()
    p.values["data_end"] = end
    con.execute(
        _funnel_sql("funnel_cohorts", ["cohort_date"],
                    "select customer_id, entry_date as cohort_date from journeys",
                    _stage_list_sql(jmap, p),
                    extra_select=f", coalesce(cohort_date + interval 1 day "
                                 f"+ to_seconds({jmap.window_seconds}) <= $data_end, false) "
                                 "as complete"),
        p.values,
    )
    p = Params()
    seg_sql = _segment_rows_sql(jmap, p)
    con.execute(
        _funnel_sql("funnel_segments", ["segment", "segment_value"], seg_sql,
                    _stage_list_sql(jmap, p)),
        p.values,
    )
    return {t: count_rows(con, t) for t in ("funnel_steps", "funnel_cohorts", "funnel_segments")}


# --------------------------------------------------------------------------------------------
# transitions (bottlenecks)


_ERFC_SQL = """(
    (1.0 / (1.0 + 0.3275911 * {x})) * (0.254829592 + (1.0 / (1.0 + 0.3275911 * {x})) * (
     -0.284496736 + (1.0 / (1.0 + 0.3275911 * {x})) * (1.421413741 + (1.0 / (1.0 + 0.3275911 *
     {x})) * (-1.453152027 + (1.0 / (1.0 + 0.3275911 * {x})) * 1.061405429))))
    * exp(-({x}) * ({x})))"""


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
                         _stage_list_sql(jmap, p), conv_idx),
        p.values,
    )
    p = Params()
    con.execute(
        _transitions_sql("_transition_segments", ["segment", "segment_value"],
                         _segment_rows_sql(jmap, p), _stage_list_sql(jmap, p), conv_idx),
        p.values,
    )
    x = "abs(z_score) / sqrt(2)"
    con.execute(
        f"""
        create or replace table stage_transition_segments as
        with seg as (
            select *,
                   sum(entered_from) over (partition by segment, from_index) - entered_from
                       as rest_entered_from,
                   sum(reached_to) over (partition by segment, from_index) - reached_to
                       as rest_reached_to
            from _transition_segments
        ),
        tested as (
            select *,
                   dropout_rate(rest_reached_to, rest_entered_from) as rest_dropout_rate,
                   (reached_to + rest_reached_to) / nullif(entered_from + rest_entered_from, 0)
                       as pooled
            from seg
        ),
        z as (
            select *,
                   dropout_rate - rest_dropout_rate as dropout_diff,
                   case when pooled > 0 and pooled < 1 and entered_from > 0
                             and rest_entered_from > 0
                        then (reached_to / entered_from - rest_reached_to / rest_entered_from)
                             / sqrt(pooled * (1 - pooled)
                                    * (1.0 / entered_from + 1.0 / rest_entered_from))
                   end as z_score
            from tested
        ),
        final as (
            select * exclude (pooled),
                   {_ERFC_SQL.format(x=x)} as p_value
            from z
        )
        select *,
               coalesce(p_value < {SIGNIFICANCE_LEVEL}
                        and least(reached_to, dropoff_count, rest_reached_to,
                                  rest_entered_from - rest_reached_to) >= {MIN_GROUP_OUTCOMES},
                        false) as significant
        from final order by segment, segment_value, from_index
        """
    )
    con.execute("drop table if exists _transition_segments")
    return {t: count_rows(con, t) for t in ("stage_transitions", "stage_transition_segments")}
