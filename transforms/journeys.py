"""Journeys: one per customer, from the customer's stage events.

`build_journeys` takes a DuckDB connection (or another engine: transforms/spark_engine.py)
holding `events`, `stage_events` (transforms/stages.py) and `purchases` (transforms/purchases.py)
and the loaded journey map, and
(re)creates `journeys` (one row per customer journey), `journey_stages` (one row per journey x
stage reached) and the view `journeys_wide` (journeys + one column per stage) with CREATE OR
REPLACE. Grains and columns are in docs/TABLES.md. The rules:

- **Journey.** One per customer: the funnel engine (transforms/funnel.py: ordered, re-entry
  `latest`, window = `conversion_window`) runs over the *required* stages, actor = customer;
  the journey is the attempt that got furthest (first on a tie), entry = its first-stage event.
- **Optional stages.** An optional stage is *observed* when the customer has an event of it at
  or after the previous stage observed (the previous required stage, or an optional stage
  before it between the same two required stages), within the window and not after the next
  required stage was reached; it counts as *reached* when observed or when a later stage was
  reached (then it was skipped: `observed = false`, listed in `skipped_stages`, no timestamp,
  left out of time-to-convert figures). So counts never increase along the stages, and times
  between stages are never negative.
- **Segments** take the first non-null value from the journey's entry on (entry event first)
  within its window; `new_vs_returning`: `returning` if the customer purchased before entry or
  has no `new_when` event up to the journey's window end (a user from before the data), else
  `new` (an install right after the campaign click that opened the journey makes it new).
- **Completeness.** data end = max(event_ts) of `events`; a journey is complete when
  entry + window <= data end (the tables of transforms/stage_funnels.py count complete
  journeys only).

Every statement here is assembled from the journey map (its required and optional stages, its
segments), so none of them is a static .sql file.
"""

from __future__ import annotations

import duckdb

from transforms.funnel import Step, funnel_actors
from transforms.journey_map import JourneyMap, rule_sql
from transforms.sqlutil import Params, ident
from transforms.tables import count_rows, data_end, table_columns


def build_journeys(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `journeys` (one row per customer journey), `journey_stages` (one row per
    journey x stage reached) and the view `journeys_wide` (journeys + one column per stage).
    Needs `stage_events` and `purchases`."""
    end = data_end(con)
    _create_journey_actors(con, jmap)
    _build_journey_stages(con, jmap, end)
    _build_journeys_table(con, jmap, end)
    con.execute("drop table if exists _journey_actors")
    _build_journeys_wide(con, jmap)
    return count_rows(con, "journeys")


def _create_journey_actors(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> None:
    """Temp table `_journey_actors`: the funnel engine over the required stages, one row per
    entered customer with r1..rn (the time each required stage was reached) and the window
    end."""
    window = jmap.window_seconds
    required = jmap.required_stages
    marks = ", ".join(str(s.index) for s in required)
    con.execute(
        f"create or replace temp table _journey_input as "
        f"select customer_id, stage, event_ts from stage_events where stage_index in ({marks})"
    )
    # a stage's `window` is the time allowed from the previous required stage being reached
    steps = [Step(s.name, event=s.name, window_seconds=s.window_seconds) for s in required]
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


def _build_journey_stages(con: duckdb.DuckDBPyConnection, jmap: JourneyMap, end: object) -> None:
    """`journey_stages`: one row per journey x stage reached, required stages from the engine,
    optional ones observed or implied (module docstring)."""
    required = jmap.required_stages
    p = Params()
    req_pos = {s.index: k for k, s in enumerate(required, start=1)}
    _observe_optional_stages(con, jmap, req_pos)
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
        next_k = min((k for i, k in req_pos.items() if i > st.index), default=None)
        # reached when observed, or when a later stage of the same gap or the next required
        # stage was reached (then it was skipped): counts never rise along the stages
        later = [f"o.ts_{s.index} is not null" for s in jmap.stages
                 if s.optional and s.index > st.index
                 and _gap(s.index, req_pos) == _gap(st.index, req_pos)]
        if next_k:
            later.append(f"a.r{next_k} is not null")
        implied = " or ".join(later) or "false"
        parts.append(
            f"""select o.customer_id, {name} as stage, {st.index} as stage_index, {opt} as
                   optional, o.ts_{st.index} as reached_ts,
                   o.ts_{st.index} is not null as observed
            from _optional_seen o join _journey_actors a using (customer_id)
            where o.ts_{st.index} is not null or {implied}"""
        )
    con.execute(
        f"""
        create or replace table journey_stages as
        with reached as ({' union all '.join(parts)}),
        final as (
            select r.customer_id, r.stage, r.stage_index, r.optional, r.reached_ts, r.observed,
                   (epoch_us(r.reached_ts) - epoch_us(lag(r.reached_ts) over w)) / 1e6
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
    con.execute("drop table if exists _optional_seen")


def _gap(index: int, req_pos: dict[int, int]) -> int:
    """The required stage (its position k) after which an optional stage lies."""
    return max((k for i, k in req_pos.items() if i < index), default=1)


def _observe_optional_stages(con: duckdb.DuckDBPyConnection, jmap: JourneyMap,
                             req_pos: dict[int, int]) -> None:
    """`_optional_seen`: per journey, when each optional stage was observed (`ts_<index>`,
    NULL when not). Optional stages between two required stages are observed in their order:
    each at or after the previous one observed in the gap (else the previous required stage),
    not after the next required stage was reached, within the window."""
    optional = [s for s in jmap.stages if s.optional]
    con.execute("create or replace temp table _optional_seen as "
                "select customer_id from _journey_actors")
    bound: dict[int, str] = {}  # gap -> SQL of the lower bound so far
    for st in optional:
        gap = _gap(st.index, req_pos)
        next_k = min((k for i, k in req_pos.items() if i > st.index), default=None)
        lower = bound.get(gap, f"a.r{gap}")
        upper = f"and se.event_ts <= coalesce(a.r{next_k}, a.window_end_ts)" if next_k else ""
        con.execute(f"""
            create or replace temp table _optional_seen as
            select o.*, x.ts as ts_{st.index}
            from _optional_seen o
            left join (
                select a.customer_id, min(se.event_ts) as ts
                from _journey_actors a join _optional_seen o using (customer_id)
                join stage_events se
                  on se.customer_id = a.customer_id and se.stage_index = {st.index}
                 and se.event_ts >= {lower} and se.event_ts <= a.window_end_ts {upper}
                where a.r{gap} is not null
                group by a.customer_id
            ) x using (customer_id)""")
        bound[gap] = f"coalesce(o.ts_{st.index}, {lower})"


def _build_journeys_table(con: duckdb.DuckDBPyConnection, jmap: JourneyMap, end: object) -> None:
    """`journeys`: segments at entry, customer type, furthest stage, completeness."""
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
    # a customer's first purchase makes later journeys 'returning'; no purchases: none do
    purchases_sql = ("select customer_id, min(purchase_ts) as first_purchase_ts from purchases "
                     "group by all" if table_columns(con, "purchases") else
                     "select cast(null as varchar) as customer_id, "
                     "cast(null as timestamp) as first_purchase_ts where false")
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
            {purchases_sql}
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


def _build_journeys_wide(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> None:
    """The view `journeys_wide`: journeys + one column per stage (its reached_ts)."""
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
