"""The measured journey map: per stage, where customers met it (touchpoints), why they left
(pains) and its metrics.

Every function takes a DuckDB connection holding `events`, `stage_events` and the journey,
funnel, booking, payment and repeat tables (transforms/journeys.py, stage_funnels.py,
bookings.py, repeat.py, purchases.py) and the loaded journey map, and (re)creates its table with
CREATE OR REPLACE. Grains and columns are in docs/TABLES.md. The rules:

- **Touchpoints**: per stage, the values of its configured `touchpoints` columns on its stage
  events, ranked by events within stage x dimension.
- **Pains**: per stage, the events of journey customers matching its configured pains, with
  the pain's reason column, plus `dropped_out` = complete journeys ending at the stage; share =
  customers over the journeys reaching the stage.
- **Stage metrics** sit on the stage the journey map's `metric_stages` names for their group
  (discovery, consideration, decision, purchase, service, repeat), never on a stage found by
  position; a group the map does not place is left out. Which events play which role comes
  from the map's `metric_events`. Rates are the definitions of transforms/sql/definitions.sql;
  the payment failure rate sums the attempts of `payment_attempts` (cells without a failure
  included), never those of `payment_failures`.

- **Periods.** The per-persona tables (`*_segments`, `stage_exit_events`, `journey_map_funnel`)
  hold one map per period length of `transforms.periods.period_lengths` (`period_days`): the
  journeys entering on the last `period_days` entry days whose conversion window is fully
  observed (`funnel_cohorts.complete`), ending at the latest such day — the Overview's `cohorts`
  basis (transforms/sql/period_figures.sql), so the map of a period covers the journeys of the
  Overview's conversion card and funnel. The longest length (the whole data) holds every
  complete cohort. Journeys whose window is still open belong to no period: every row of a
  map, touchpoints, pains and metrics included, counts the same journeys.

- **Set-based.** Each per-persona table is one statement over every (period, persona) at
  once: the journeys of each (period length x persona) are a group of temp table
  `_jm_group_members` (an integer g per group, `_build_scope`), the rows per customer are
  counted once (`_count_per_customer`) and joined to the members, and the metrics run over
  every group at once, each table cut to the groups' members and every aggregate grouped by
  g (`per_group_sql`: no correlated subquery, so both engines run it). Period lengths holding
  the same journeys are computed once.

All are assembled here: their rows follow the map's stages, touchpoints, pains and
metric roles.
"""

from __future__ import annotations

import re

import duckdb
import sqlglot
from sqlglot import exp

from transforms.journey_map import JourneyMap, rule_sql
from transforms.periods import build_segment_members, period_lengths, segment_names
from transforms.settings import DEFAULT_PERIOD_DAYS, read_settings
from transforms.spark_sql import DuckDBAsWritten
from transforms.sqlutil import Params, ident, sql_file
from transforms.stage_funnels import _funnel_sql
from transforms.tables import (
    count_rows,
    data_end,
    low_rating_sql,
    role_sql,
    select_columns,
    stage_list_sql,
    table_columns,
)


def build_stage_touchpoints(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `stage_touchpoints`: one row per (stage x dimension x value) over
    `stage_events`, ranked by events within stage x dimension; then its per-persona table
    `stage_touchpoint_segments`. Returns the rows of `stage_touchpoints`."""
    _build_touches(con, jmap)
    con.execute(
        """
        create or replace table stage_touchpoints as
        with counted as (
            select k.stage, k.stage_index, k.dimension, k.value, c.events, c.customers
            from (select k, cast(sum(events) as bigint) as events,
                         count(customer_id) as customers
                  from _jm_touches group by all) c
            join _jm_touches_keys k using (k)
        ),
        final as (
            select *, events / sum(events) over (partition by stage_index, dimension) as share,
                   cast(row_number() over (partition by stage_index, dimension
                                           order by events desc, value) as integer) as rank
            from counted
        )
        select * from final order by stage_index, dimension, rank
        """
    )
    _build_scope(con, jmap)
    build_stage_touchpoint_segments(con, jmap, scope_built=True, touches_built=True)
    con.execute("drop table if exists _jm_touches")
    con.execute("drop table if exists _jm_touches_keys")
    return count_rows(con, "stage_touchpoints")


def _build_touches(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> None:
    """(Re)build temp tables `_jm_touches` / `_jm_touches_keys`: `_touches_sql` counted per
    customer (`_count_per_customer`), so the touchpoint tables scan `stage_events` once."""
    p = Params()
    _count_per_customer(con, "_jm_touches", _touches_sql(jmap, p),
                        ["stage", "stage_index", "dimension", "value"], p.values)


def _count_per_customer(con: duckdb.DuckDBPyConnection, table: str, rows_sql: str,
                        keys: list[str], values: dict[str, object]) -> None:
    """(Re)build temp tables `table` (k, customer_id, events): one row per distinct `keys` x
    customer of `rows_sql` (which has those columns and customer_id), events = its rows; and
    `table`_keys (k, <keys>): one row per distinct keys, k an integer. A customer's row counts
    once in the customers of a group, so the per-persona tables join the members on
    customer_id and group on two integers (g, k)."""
    cols = ", ".join(keys)
    con.execute(f"""
        create or replace temp table {table}_all as
        select {cols}, customer_id, count(*) as events from ({rows_sql}) group by all""",
                values)
    con.execute(f"""
        create or replace temp table {table}_keys as
        select cast(row_number() over (order by {cols}) as integer) as k, {cols}
        from (select distinct {cols} from {table}_all)""")
    same = " and ".join(f"a.{c} is not distinct from k.{c}" for c in keys)
    con.execute(f"""
        create or replace temp table {table} as
        select k.k, a.customer_id, a.events from {table}_all a join {table}_keys k on {same}""")
    con.execute(f"drop table {table}_all")


def _touches_sql(jmap: JourneyMap, p: Params) -> str:
    """(stage, stage_index, dimension, value, customer_id) per stage event and touchpoint
    dimension: one definition for `stage_touchpoints` and `stage_touchpoint_segments`."""
    parts = [
        f"select stage, stage_index, {p.add(dim)} as dimension, "
        f"cast({ident(dim)} as varchar) as value, customer_id "
        f"from stage_events where stage_index = {st.index} and {ident(dim)} is not null"
        for st in jmap.stages for dim in st.touchpoints
    ]
    return " union all ".join(parts) if parts else (
        "select cast(null as varchar) as stage, 0 as stage_index, cast(null as varchar) as "
        "dimension, cast(null as varchar) as value, cast(null as varchar) as customer_id "
        "where false")


def period_windows(con: duckdb.DuckDBPyConnection) -> list[tuple[int, object, object]]:
    """(period_days, first entry day, last entry day) per length of `period_lengths` (the run's
    settings from `run_settings`, else the default period and the data's days): the last
    `period_days` entry days up to the latest complete cohort of `funnel_cohorts` (the
    Overview's `cohorts` basis). No rows without a complete cohort."""
    if not table_columns(con, "funnel_cohorts"):
        return []
    last = con.execute("select max(cohort_date) filter (where complete) "
                       "from funnel_cohorts").fetchone()[0]
    if last is None:
        return []
    if table_columns(con, "run_settings"):
        settings = read_settings(con)
    else:
        start, end = con.execute("select min(event_date), max(event_date) from events"
                                 ).fetchone()
        settings = {"data_start": start, "data_end": end}
    settings.setdefault("period_days", DEFAULT_PERIOD_DAYS)
    out = []
    for days in period_lengths(settings):
        first = con.execute("select cast($last as date) - cast($days as integer) + 1",
                            {"last": last, "days": days}).fetchone()[0]
        out.append((days, first, last))
    return out


def _build_scope(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> None:
    """(Re)build temp table `_jm_scope` (period_days, period_start, period_end, segment,
    segment_value, customer_id): one row per period x journey entering in it (complete, entry
    day in the period's window) x ('all' and each of its journey-map segment values that is
    offered: `transforms.periods.build_segment_members`, known values, at most
    MAX_SEGMENT_VALUES per segment).

    And for the tables computed per group: `_jm_same` (rep, period_days), per period length
    the first length whose window holds the same journeys (the same entry days once clipped
    to the first complete journey's: on data shorter than a length, that length and the whole
    data hold the same journeys), so those rows are computed once and copied; `_jm_groups`
    (g, period_days, segment, segment_value), one row per (rep length x persona with a
    journey in it), g an integer; `_jm_group_members` (g, customer_id), one row per group x
    journey, so the per-persona tables join and group on integers. Built once per public
    build_* function; the builders of the per-persona tables read them."""
    p = Params()
    windows = period_windows(con)
    if windows:
        rows = ", ".join(f"({int(d)}, cast({p.add(a)} as date), cast({p.add(b)} as date))"
                         for d, a, b in windows)
    else:
        rows = "(0, cast(null as date), cast(null as date))"
    # the personas: the values the Overview's segment picker offers (periods.py, one
    # definition: known, the most journeys first, at most MAX_SEGMENT_VALUES per segment — a
    # city column with thousands of values gives ten maps, not thousands), any with a journey
    build_segment_members(con, segment_names(con, [s.name for s in jmap.segments]), 1,
                          "_jm_members")
    personas = "select customer_id, segment, segment_value from _jm_members"
    con.execute(
        f"""
        create or replace temp table _jm_scope as
        with windows(period_days, period_start, period_end) as (values {rows}),
        inside as (
            select w.period_days, w.period_start, w.period_end, j.customer_id
            from windows w join journeys j
              on j.complete and j.entry_date between w.period_start and w.period_end
        ),
        personas as ({personas})
        select period_days, period_start, period_end, 'all' as segment, 'all' as segment_value,
               customer_id
        from inside
        union all
        select i.period_days, i.period_start, i.period_end, ps.segment, ps.segment_value,
               i.customer_id
        from inside i join personas ps using (customer_id)
        """,
        p.values,
    )
    con.execute("drop table _jm_members")
    first = con.execute("select min(entry_date) from journeys where complete").fetchone()[0]
    reps: dict[tuple[object, object], int] = {}
    same = []
    for days, start, end in windows:
        clipped = (max(start, first) if first is not None else start, end)
        same.append((reps.setdefault(clipped, int(days)), int(days)))
    con.execute("create or replace temp table _jm_same as select * from (values "
                + (", ".join(f"({a}, {b})" for a, b in same) or "(0, 0)")
                + ") s(rep, period_days)")
    con.execute("""
        create or replace temp table _jm_groups as
        select cast(row_number() over (order by period_days, segment, segment_value)
                    as integer) as g, period_days, segment, segment_value
        from (select distinct period_days, segment, segment_value from _jm_scope
              where period_days in (select rep from _jm_same))""")
    con.execute("""
        create or replace temp table _jm_group_members as
        select g.g, sc.customer_id
        from _jm_scope sc join _jm_groups g using (period_days, segment, segment_value)""")


def build_journey_map_funnel(con: duckdb.DuckDBPyConnection, jmap: JourneyMap,
                             scope_built: bool = False) -> int:
    """(Re)build `journey_map_funnel`: one row per (period_days x segment x segment value x
    stage): the stage funnel of the journeys entering in the period (segment 'all': every one,
    then per persona), with `period_start` / `period_end` (its entry days) and the per-step
    figures of `funnel_steps` (transforms/stage_funnels.py: entered, observed,
    overall_conversion, step_conversion, dropoff_count, dropout_rate, median / p75 / p90 / mean
    seconds from the previous stage). A persona without journeys in a period has no rows.
    Needs `journeys`, `journey_stages`, `funnel_cohorts`; `scope_built`: the temp tables of
    _build_scope are already built."""
    if not scope_built:
        _build_scope(con, jmap)
    p = Params()
    con.execute(
        _funnel_sql("journey_map_funnel",
                    ["period_days", "period_start", "period_end", "segment", "segment_value"],
                    "select * from _jm_scope", stage_list_sql(jmap, p)),
        p.values,
    )
    return count_rows(con, "journey_map_funnel")


def build_stage_touchpoint_segments(con: duckdb.DuckDBPyConnection, jmap: JourneyMap,
                                    scope_built: bool = False,
                                    touches_built: bool = False) -> int:
    """(Re)build `stage_touchpoint_segments`: one row per (period_days x segment x segment value
    x stage x dimension x value) over the stage events of the journeys entering in the period
    (module docstring: Periods): segment 'all' = every one, then per persona = journey-map
    segment value; ranked by events within period x persona x stage x dimension. Needs
    `stage_events`, `journeys`, `funnel_cohorts`. `scope_built` / `touches_built`: the temp
    tables of _build_scope / _build_touches are already built (by build_stage_touchpoints)."""
    if not scope_built:
        _build_scope(con, jmap)
    if not touches_built:
        _build_touches(con, jmap)
    con.execute(
        """
        create or replace table stage_touchpoint_segments as
        with per_group as (
            select m.g, t.k, cast(sum(t.events) as bigint) as events, count(*) as customers
            from _jm_touches t join _jm_group_members m using (customer_id) group by all
        ),
        counted as (
            select s.period_days, grp.segment, grp.segment_value, k.stage, k.stage_index,
                   k.dimension, k.value, c.events, c.customers
            from per_group c join _jm_groups grp using (g) join _jm_touches_keys k using (k)
            join _jm_same s on s.rep = grp.period_days
        ),
        final as (
            select *, events / sum(events) over (partition by period_days, segment,
                                                 segment_value, stage_index, dimension)
                          as share,
                   cast(row_number() over (partition by period_days, segment, segment_value,
                                                        stage_index, dimension
                                           order by events desc, value) as integer) as rank
            from counted
        )
        select * from final
        order by period_days, segment <> 'all', segment, segment_value, stage_index, dimension,
                 rank
        """
    )
    return count_rows(con, "stage_touchpoint_segments")


def build_stage_pain_segments(con: duckdb.DuckDBPyConnection, jmap: JourneyMap,
                              scope_built: bool = False, pains_built: bool = False) -> int:
    """(Re)build `stage_pain_segments`: one row per (period_days x segment x segment value x
    stage x pain x reason): the pains of `stage_pains` over the customers whose journey enters
    in the period (module docstring: Periods), segment 'all' = every one, then per persona =
    journey-map segment value; share = customers / the period's persona journeys reaching the
    stage. Needs `journeys`, `journey_stages`, `funnel_cohorts`. `scope_built` /
    `pains_built`: the temp tables of _build_scope / _build_pains are already built (by
    build_stage_pains)."""
    if not scope_built:
        _build_scope(con, jmap)
    if not pains_built:
        _build_pains(con, jmap)
    con.execute(
        """
        create or replace table stage_pain_segments as
        with per_group as (
            select m.g, b.k, cast(sum(b.events) as bigint) as events, count(*) as customers
            from _jm_pains b join _jm_group_members m using (customer_id) group by all
        ),
        counted as (
            select s.period_days, grp.segment, grp.segment_value, k.stage, k.stage_index,
                   k.pain, k.reason, c.events, c.customers
            from per_group c join _jm_groups grp using (g) join _jm_pains_keys k using (k)
            join _jm_same s on s.rep = grp.period_days
        ),
        reached as (
            select s.period_days, grp.segment, grp.segment_value, r.stage_index, r.journeys
            from (select m.g, js.stage_index, count(*) as journeys
                  from journey_stages js join _jm_group_members m using (customer_id)
                  group by all) r
            join _jm_groups grp using (g) join _jm_same s on s.rep = grp.period_days
        ),
        final as (
            select c.*, c.customers / nullif(r.journeys, 0) as share,
                   cast(row_number() over (partition by c.period_days, c.segment,
                                                        c.segment_value, c.stage_index
                                           order by c.events desc, c.pain, c.reason)
                        as integer) as rank
            from counted c
            left join reached r
              on r.period_days = c.period_days and r.segment = c.segment
             and r.segment_value = c.segment_value and r.stage_index = c.stage_index
        )
        select * from final
        order by period_days, segment <> 'all', segment, segment_value, stage_index, rank
        """
    )
    return count_rows(con, "stage_pain_segments")


def build_stage_exit_events(con: duckdb.DuckDBPyConnection, jmap: JourneyMap,
                            scope_built: bool = False) -> int:
    """(Re)build `stage_exit_events`: one row per (period_days x segment x segment value x stage
    x dimension x value): what the journeys that ended at a stage did last. A leaver is a
    journey entering in the period (module docstring: Periods; all complete) that did not
    reach the last stage, at its furthest stage (the journeys `journey_map_funnel` counts as
    lost before the next stage); its last event is the customer's latest event in `events`
    within the journey (entry_ts to window_end_ts, ties by event_id): dimension `event_name`
    is that event's name, dimension `screen` (when `events` has one) the screen of the latest
    event with a screen. Segment 'all' = every leaver; then per persona = journey-map segment
    value (transforms/sql/stage_exit_events.sql), computed once per set of period lengths
    holding the same journeys (`_jm_same`). Needs `journeys`, `events`,
    `funnel_cohorts`; `scope_built`: the temp tables of _build_scope are already built."""
    if not scope_built:
        _build_scope(con, jmap)
    has_screen = "screen" in table_columns(con, "events")
    leavers = "complete and not reached_last_stage"
    dims = [("event_name", "e.event_name is not null")]
    if has_screen:
        dims.append(("screen", "e.screen is not null"))
    # one scan of the leavers' events for every dimension: per dimension the latest of its
    # events with a value (NULL when none)
    latest = ", ".join(
        f"arg_max(cast(e.{ident(dim)} as varchar), (e.event_ts, e.event_id)) "
        f"filter (where {cond}) as {ident(dim)}"
        for dim, cond in dims)
    last = f"""
        select customer_id, dimension, value
        from (select l.customer_id, {latest}
              from leavers l join events e
                on e.customer_id = l.customer_id
               and e.event_ts between l.entry_ts and l.window_end_ts
              where {' or '.join(cond for _, cond in dims)}
              group by all)
        unpivot (value for dimension in ({', '.join(ident(d) for d, _ in dims)}))"""
    dim_list = ", ".join(f"('{d}')" for d, _ in dims)
    con.execute(
        f"""
        create or replace temp table _exit_last as
        with leavers as (
            select customer_id, entry_ts, window_end_ts, furthest_stage as stage,
                   furthest_stage_index as stage_index
            from journeys where {leavers}
              and customer_id in (select customer_id from _jm_scope)
        ),
        last as ({last})
        -- every leaver once per dimension (value NULL: no such event), so the shares are
        -- over all of them
        select sc.period_days, sc.segment, sc.segment_value, l.stage, l.stage_index,
               d.dimension, x.value, l.customer_id
        from leavers l
        join (select * from _jm_scope where period_days in (select rep from _jm_same)) sc
          using (customer_id)
        cross join (values {dim_list}) d(dimension)
        left join last x on x.customer_id = l.customer_id and x.dimension = d.dimension
        """
    )
    con.execute(sql_file("stage_exit_events"),
                {"conversion_stage_index": jmap.stage(jmap.conversion_stage).index})
    con.execute("drop table if exists _exit_last")
    # the lengths holding the same journeys as an earlier one (`_jm_same`): its rows, in the
    # order of transforms/sql/stage_exit_events.sql
    if con.execute("select count(*) from _jm_same where rep <> period_days").fetchone()[0]:
        rest = select_columns(con, "stage_exit_events", "e", exclude=("period_days",))
        con.execute(f"""
            create or replace table stage_exit_events as
            select s.period_days, {rest}
            from stage_exit_events e join _jm_same s on e.period_days = s.rep
            order by period_days, segment <> 'all', segment, segment_value, stage_index,
                     dimension, rank""")
    return count_rows(con, "stage_exit_events")


def build_stage_pains(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `stage_pains`: one row per (stage x pain x reason): the configured pains
    (events of journey customers) plus `dropped_out` = complete journeys ending at the stage;
    then, per period and persona, `journey_map_funnel`, `stage_pain_segments` and
    `stage_exit_events` (what the journeys ending at a stage did last). Needs `journeys`,
    `journey_stages`, `events`, `funnel_cohorts`. Returns the rows of `stage_pains`."""
    _build_pains(con, jmap)
    con.execute(
        """
        create or replace table stage_pains as
        with counted as (
            select k.stage, k.stage_index, k.pain, k.reason, c.events, c.customers
            from (select k, cast(sum(events) as bigint) as events,
                         count(customer_id) as customers
                  from _jm_pains group by all) c
            join _jm_pains_keys k using (k)
        ),
        reached as (
            select stage_index, count(*) as journeys from journey_stages group by all
        ),
        final as (
            select c.*, c.customers / nullif(r.journeys, 0) as share,
                   cast(row_number() over (partition by c.stage_index
                                           order by c.events desc, c.pain, c.reason)
                        as integer) as rank
            -- ON, not USING: `c.*` keeps counted's column order on every engine (Spark puts
            -- a USING column first)
            from counted c left join reached r on r.stage_index = c.stage_index
        )
        select * from final order by stage_index, rank
        """
    )
    _build_scope(con, jmap)
    build_journey_map_funnel(con, jmap, scope_built=True)
    build_stage_pain_segments(con, jmap, scope_built=True, pains_built=True)
    con.execute("drop table if exists _jm_pains")
    con.execute("drop table if exists _jm_pains_keys")
    build_stage_exit_events(con, jmap, scope_built=True)
    return count_rows(con, "stage_pains")


def _build_pains(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> None:
    """(Re)build temp tables `_jm_pains` / `_jm_pains_keys`: the pains of `_pain_parts`
    counted per customer (`_count_per_customer`), so the pain tables scan `events` once."""
    p = Params()
    _count_per_customer(con, "_jm_pains", " union all ".join(_pain_parts(jmap, p)),
                        ["stage", "stage_index", "pain", "reason"], p.values)


def _pain_parts(jmap: JourneyMap, p: Params) -> list[str]:
    """The SELECTs of (stage, stage_index, pain, reason, customer_id): the configured pains
    and `dropped_out`, one definition for `stage_pains` and `stage_pain_segments`."""
    parts = []
    for st in jmap.stages:
        for pain in st.pains:
            reason = (f"coalesce(cast(e.{ident(pain.reason_column)} as varchar), '(unknown)')"
                      if pain.reason_column else "'(none)'")
            parts.append(
                f"select {p.add(st.name)} as stage, {st.index} as stage_index, "
                f"{p.add(pain.name)} as pain, {reason} as reason, e.customer_id "
                f"from events e where e.customer_id is not null "
                f"and {rule_sql(pain.rule, p, 'e')}"
            )
    parts.append(
        "select furthest_stage as stage, furthest_stage_index as stage_index, "
        "'dropped_out' as pain, 'stopped after this stage' as reason, customer_id "
        "from journeys "
        "where complete and not reached_last_stage"
    )
    return parts


def build_stage_metrics(con: duckdb.DuckDBPyConnection, jmap: JourneyMap,
                        currency: str | None = None) -> int:
    """(Re)build `stage_metrics`: one row per (stage x metric x segment x value), long format.
    Needs `journeys`, `journey_stages`, `funnel_steps`, `booking_outcomes`, `payment_attempts`,
    `payment_failures`, `repeat_purchase`, `purchases`, `stage_events`; then its per-persona
    table `stage_metric_segments`. Returns the rows of `stage_metrics`."""
    _build_app_time(con, jmap)
    sql, values = _stage_metrics_sql(con, jmap, currency)
    con.execute(f"""
        create or replace table stage_metrics as
        {sql}
        select * from final order by stage_index, metric, segment <> 'all', segment,
                                  segment_value
    """, values)
    _build_scope(con, jmap)
    build_stage_metric_segments(con, jmap, currency, scope_built=True)
    con.execute("drop table if exists _jm_app_time")
    return count_rows(con, "stage_metrics")


# the tables a persona's metrics read from its own customers' rows (p_<table>)
PERSONA_TABLES = ("journeys", "events", "journey_stages", "booking_outcomes", "purchases",
                  "funnel_steps", "payment_attempts", "repeat_purchase")
# the CTEs of the metrics that are per customer, from that customer's rows alone (their time
# in app, from the activity gaps within their journey): a group's rows are those of its
# customers among everyone's, so they are computed once over everyone (a temp table) and read
# cut to the group (p_<cte>)
_PER_CUSTOMER_CTES = ("app_time",)
_CUT_CTES = _PER_CUSTOMER_CTES
_FROM_TABLE = re.compile(rf"\b(from|join)\s+({'|'.join(PERSONA_TABLES + _CUT_CTES)})\b")


def _stage_metrics_sql(con: duckdb.DuckDBPyConnection, jmap: JourneyMap,
                       currency: str | None, persona: bool = False,
                       segments: bool = False) -> tuple[str, dict[str, object]]:
    """The WITH clause (ending in CTE `final`) of the stage metrics and its parameters.

    persona False: every customer (`stage_metrics`). persona True: the same metric rows over
    the customers of one group of `_jm_group_members` (the journeys entering in a period, 'all'
    or with one segment value), for every group at once (column g first: `per_group_sql`,
    build_stage_metric_segments) — every table read is cut to their rows (p_<table> CTEs; the
    funnel counted from their journey stages, payment attempts and repeat rates from their
    events and purchases as transforms/bookings.py and repeat.py count them).
    segments (`stage_metric_segments`, always with a persona): plus the all-customer value of
    the by-channel campaign metrics and a `row_order` column (the metric's position in the
    definitions)."""
    # which stage each metric group sits on: named in the map's metric_stages
    idx = {st.name: st.index for st in jmap.stages}
    at = jmap.metric_stages
    p = Params()
    install = role_sql(jmap, "install", p)
    click = role_sql(jmap, "campaign_click", p)
    impression = role_sql(jmap, "campaign_impression", p)
    offer = role_sql(jmap, "offer_view", p)
    has_impressions = "campaign_impression" in jmap.metric_events
    horizons = list(jmap.repeat_horizons)
    conv_idx = idx[jmap.conversion_stage]
    dec_idx = idx.get(at.get("decision"), 0)
    consider_idx = idx.get(at.get("consideration"), 0)
    money = p.add(currency or "money")
    low = low_rating_sql(jmap, "rating")

    stage_params = {group: p.add(name) for group, name in at.items()}
    new_seg = next((ident(sg.name) for sg in jmap.segments if sg.derived == "new_vs_returning"),
                   None)
    is_new = f"{new_seg} = 'new'" if new_seg else "false"
    rows = _stage_metric_rows(stage_params, money, low, horizons, has_impressions, conv_idx,
                              dec_idx, is_new, totals=segments)

    # each CTE with what it reads: a CTE (or a metric row) is kept only when all it reads is
    # in the warehouse, so a project without bookings, payments or campaigns gets the rest
    ctes = {
        "j": ("select * from journeys", ["journeys"]),
        "disc": (f"""
            select e.channel, e.customer_id, {install} as is_install, {click} as is_click,
                   {impression} as is_impression
            from events e where e.customer_id is not null
              and ({install} or {click} or {impression})""", ["events.channel"]),
        "by_channel": ("""
            select coalesce(channel, '(unknown)') as channel,
                   count(distinct customer_id) filter (where is_install) as installs,
                   count(*) filter (where is_click) as clicks,
                   count(*) filter (where is_impression) as impressions
            from disc group by all""", ["disc"]),
        "clickers": ("""
            select distinct coalesce(channel, '(unknown)') as channel, customer_id
            from disc where is_click""", ["disc"]),
        "click_conv": (f"""
            select c.channel, count(*) as clickers,
                   count(*) filter (where j.furthest_stage_index >= {dec_idx}) as decided
            from clickers c left join j using (customer_id) group by all""",
                       ["clickers", "j"]),
        "new_by_channel": (f"""
            select coalesce(channel, '(unknown)') as channel,
                   count(*) filter (where {is_new}) as new_customers
            from j group by all""", ["j", "journeys.channel"]),
        # a join, not IN (subquery): the per-group form joins on the group too
        "offers": (f"""
            select count(*) as offer_views from events e
            join (select distinct customer_id from journey_stages
                  where stage_index = {consider_idx}) c using (customer_id)
            where {offer}""", ["journey_stages"]),
        "consider": (f"""
            select count(*) as customers from journey_stages
            where stage_index = {consider_idx}""", ["journey_stages"]),
        # per customer, built once for both tables (_build_app_time)
        "app_time": ("select * from _jm_app_time", ["journeys"]),
        "bookings": ("select * from booking_outcomes where created_ts is not null",
                     ["booking_outcomes"]),
        "funnel": ("select * from funnel_steps", ["funnel_steps"]),
        # every payment attempt outcome (succeeded + failed), from `payment_attempts`: not from
        # `payment_failures`, which leaves out the day x platform x method cells without a
        # failure and so would over-state the rate
        "pay_outcomes": ("""
            select platform, method, sum(attempts) as attempts, sum(failures) as failures
            from payment_attempts group by all""", ["payment_attempts"]),
    }
    tables = {"journeys", "journey_stages", "booking_outcomes", "funnel_steps",
              "payment_attempts", "payment_failures", "repeat_purchase", "purchases"}
    have = {t for t in tables if table_columns(con, t)}
    have |= {f"events.{c}" for c in table_columns(con, "events")}
    have |= {f"journeys.{c}" for c in table_columns(con, "journeys")}
    if persona:  # the funnel of the scope's journeys, from their journey stages
        if "journey_stages" in have:
            have.add("funnel_steps")
        else:
            have.discard("funnel_steps")
    for name, (_, reads) in ctes.items():  # in order: a CTE reads only earlier ones
        if all(r in have for r in reads):
            have.add(name)
    names = set(ctes) | tables
    kept, used = [], set()
    for order, (group, sql) in enumerate(rows):
        reads = {w for w in re.findall(r"\b[a-z_]+\b", sql) if w in names}
        if group in at and reads <= have:
            kept.append(f"select *, {order} from ({sql})" if segments else sql)
            used |= reads
    # the CTEs the kept rows read, and the ones those read
    for name in reversed(list(ctes)):
        if name in used:
            used |= {r for r in ctes[name][1] if r in ctes}
    if not kept:
        kept = ["select cast(null as varchar), '', '', '', 0.0, ''"
                + (", 0" if segments else "") + " where false"]
    with_parts = [(n, sql) for n, (sql, _) in ctes.items() if n in used]
    columns = "stage, metric, segment, segment_value, value, unit"
    if segments:
        columns += ", row_order"
    if persona:
        # (only tables the warehouse has: a cut of a missing one is a CTE Spark's analyser
        # refuses even unread, e.g. booking_outcomes of a log without bookings)
        own = _persona_ctes(con, jmap, p, used | {r for _, (_, rs) in ctes.items()
                                                            for r in rs if r in tables & have})
        cut = []
        for n, sql in with_parts:
            if n not in _PER_CUSTOMER_CTES:
                cut.append((n, _FROM_TABLE.sub(r"\1 p_\2", sql)))
                continue
            cut.append((n, sql))  # over everyone, computed once
            cut.append((f"p_{n}", _group_rows(n)))
        # every group at once: each CTE and row carries the group g (per_group_sql)
        grouped: set[str] = set()
        with_parts = []
        for n, sql in own + cut:
            if n.startswith("p_") and n[2:] in PERSONA_TABLES + _CUT_CTES and \
                    sql == _group_rows(n[2:]):
                grouped.add(n)
            else:
                sql, carries = per_group_sql(sql, grouped)
                if carries:
                    grouped.add(n)
            with_parts.append((n, sql))
        kept = [per_group_sql(_FROM_TABLE.sub(r"\1 p_\2", sql), grouped, everywhere=True)[0]
                for sql in kept]
        columns = "g, " + columns
    # per group not materialized: each reader's filters reach the scans of the big tables
    with_sql = ",\n".join(
        f"{n} as {'not materialized ' if persona and n not in _PER_CUSTOMER_CTES else ''}({sql})"
        for n, sql in with_parts)
    metrics_sql = f"""
        with {with_sql + "," if with_sql else ""}
        rows as (
            select * from ({' union all '.join(kept)})
                as r({columns})
        ),
        final as (
            select {"r.g, " if persona else ""}r.stage, sl.stage_index, r.metric, r.segment,
                   r.segment_value, cast(r.value as double) as value,
                   r.unit{", r.row_order" if segments else ""}
            from rows r join (select * from {stage_list_sql(jmap, p)}) sl using (stage)
        )
    """
    # only the parameters the kept parts use
    values = {k: v for k, v in p.values.items() if re.search(rf"\${k}\b", metrics_sql)}
    return metrics_sql, values


def _build_app_time(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> None:
    """(Re)build temp table `_jm_app_time` (customer_id, minutes): one row per customer with
    an `app_activity` event within their journey (entry_ts to window_end_ts), minutes = the
    sum of the gaps between consecutive such events of at most `session_gap_minutes` (the
    `time_in_app_minutes` metric is their median). Read by `stage_metrics` and, cut to each
    group, by `stage_metric_segments`; empty without `journeys`."""
    p = Params()
    if not table_columns(con, "journeys"):
        con.execute("create or replace temp table _jm_app_time "
                    "(customer_id varchar, minutes double)")
        return
    activity = role_sql(jmap, "app_activity", p)
    gap_s = float(jmap.session_gap_minutes) * 60
    con.execute(f"""
        create or replace temp table _jm_app_time as
        with clicks_seq as (
            select e.customer_id, e.event_ts,
                   epoch(e.event_ts - lag(e.event_ts) over (partition by e.customer_id
                                                           order by e.event_ts)) as gap
            from events e join journeys j using (customer_id)
            where {activity} and e.event_ts between j.entry_ts and j.window_end_ts
        )
        select customer_id, sum(case when gap <= {gap_s} then gap else 0 end) / 60
                   as minutes
        from clicks_seq group by all""", p.values)


def _group_rows(table: str) -> str:
    """The rows of `table` (a table or CTE with customer_id) of every group's customers, with
    the group g of `_jm_group_members` (a customer in several groups: once per group)."""
    return f"select m.g, t.* from _jm_group_members m join {table} t using (customer_id)"


def _persona_ctes(con: duckdb.DuckDBPyConnection, jmap: JourneyMap, p: Params,
                  reads: set[str]) -> list[tuple[str, str]]:
    """The p_<table> CTEs: each table the metrics read, cut to the customers of each group of
    `_jm_group_members` (column g; the aggregates per group: `per_group_sql`)."""
    mine = _group_rows
    succeeded = role_sql(jmap, "payment_succeeded", p)
    failed = role_sql(jmap, "payment_failed", p)
    horizons = ", ".join(f"({int(h)})" for h in jmap.repeat_horizons) or "(0)"
    end = p.add(data_end(con))
    ctes = {
        "journeys": mine("journeys"),
        "events": mine("events"),
        "journey_stages": mine("journey_stages"),
        "booking_outcomes": mine("booking_outcomes"),
        "purchases": mine("purchases"),
        # every journey of the scope is complete: its funnel counts all of them
        "funnel_steps": "select stage_index, count(*) as entered from p_journey_stages "
                        "group by all",
        # as payment_attempts counts them (transforms/bookings.py), over the persona's events
        "payment_attempts": f"""
            select coalesce(platform, '(unknown)') as platform,
                   coalesce(method, '(unknown)') as method, count(*) as attempts,
                   count(*) filter (where {failed}) as failures
            from p_events e where {succeeded} or {failed} group by all""",
        # the 'all' rows of repeat_purchase (transforms/repeat.py), over the persona's purchases
        "repeat_purchase": f"""
            with per_customer as (
                select customer_id, min(purchase_ts) as first_ts,
                       min(purchase_ts) filter (where purchase_number = 2) as second_ts
                from p_purchases group by all
            )
            select 'all' as group_name, 'all' as group_value, h.horizon_days,
                   repeat_rate(
                       count(*) filter (where c.first_ts + to_days(h.horizon_days) <= {end}
                                        and c.second_ts
                                            <= c.first_ts + to_days(h.horizon_days)),
                       count(*) filter (where c.first_ts + to_days(h.horizon_days) <= {end}))
                       as repeat_rate
            from per_customer c cross join (values {horizons}) h(horizon_days)
            group by all""",
    }
    needs = {"funnel_steps": {"journey_stages"}, "payment_attempts": {"events"},
             "repeat_purchase": {"purchases"}}
    want = {t for t in PERSONA_TABLES if t in reads}
    for t in list(want):
        want |= needs.get(t, set())
    for t in list(want):
        want |= needs.get(t, set())
    return [(f"p_{t}", ctes[t]) for t in PERSONA_TABLES if t in want]


def build_stage_metric_segments(con: duckdb.DuckDBPyConnection, jmap: JourneyMap,
                                currency: str | None = None, scope_built: bool = False) -> int:
    """(Re)build `stage_metric_segments`: one row per (period_days x segment x segment value x
    stage x metric): the metrics of `stage_metrics` over the journeys entering in the period
    (module docstring: Periods) and their events, bookings, payments and purchases — segment
    'all' = every one (plus the by-channel campaign metrics over all channels), then per
    persona = journey-map segment value — with `metric_order`: the metric's position in the
    definitions (repeat horizons ascending). Periods holding the same journeys are computed
    once (`_jm_same`). Needs what `stage_metrics` needs, plus `funnel_cohorts`.

    One statement for every (period, persona): the metric statement of `stage_metrics` over
    every row of `_jm_groups` (_build_scope) at once, its tables cut to the groups' customers
    and its aggregates per group (`_stage_metrics_sql` with `persona=True`, `per_group_sql`),
    so each table is scanned once for all groups, on DuckDB and on Spark. `scope_built`: the
    temp tables of _build_scope and _build_app_time are already built (by
    build_stage_metrics)."""
    if not scope_built:
        _build_scope(con, jmap)
        _build_app_time(con, jmap)
    sql, values = _stage_metrics_sql(con, jmap, currency, persona=True, segments=True)
    con.execute(f"""
        create or replace table stage_metric_segments as
        with computed as (
            select grp.period_days, grp.segment, grp.segment_value, r.stage, r.stage_index,
                   r.metric, r.value, r.unit, r.row_order
            from _jm_groups grp
            join ({sql} select * from final where segment = 'all') r on r.g = grp.g
        ),
        copied as (
            select s.period_days, c.segment, c.segment_value, c.stage, c.stage_index,
                   c.metric, c.value, c.unit, c.row_order
            from computed c join _jm_same s on c.period_days = s.rep
        )
        select period_days, segment, segment_value, stage, stage_index, metric, value, unit,
               cast(dense_rank() over (order by row_order, {_HORIZON}) as integer)
                   as metric_order
        from copied
        order by period_days, segment <> 'all', segment, segment_value, stage_index,
                 metric_order
    """, values)
    return count_rows(con, "stage_metric_segments")


# --- the metrics per group, as joins on the group (no correlated subquery) ---------------------
#
# The persona metric statement reads each table cut to a group's customers. Written once over
# every group at once: each p_<table> carries the group `g` of `_jm_group_members`, and every
# CTE and metric row reading one is rewritten (`_per_group`) to carry `g` as well — joins of two
# such relations also match on g, GROUP BY and window partitions gain g. An aggregate without
# GROUP BY (one row over a group's rows, also when the group has none) becomes one row per
# group of `_jm_groups`: its value over the group's rows where it has any, else its value over
# no rows (the same select with WHERE false: count 0, NULL sums). A metric row reading no cut
# table is the same for every group (a cross join with the groups).

def _parse(sql: str) -> exp.Expression:
    return sqlglot.parse_one(sql, read=DuckDBAsWritten)


def _g(table: str) -> exp.Column:
    return exp.column("g", table=table)


def _own_aggregates(select: exp.Select) -> bool:
    """Whether `select` aggregates (an aggregate of its own, not of a window or a subquery)."""
    for node in [*select.expressions, select.args.get("having")]:
        if node is None:
            continue
        for agg in node.find_all(exp.AggFunc):
            if agg.find_ancestor(exp.Select, exp.Window, exp.Subquery) is select:
                return True
    return False


def _output_names(select: exp.Select) -> list[str]:
    return [e.alias if isinstance(e, exp.Alias) else e.name if isinstance(e, exp.Column)
            else f"__c{i}" for i, e in enumerate(select.expressions)]


def _fill_groups(original: exp.Select, grouped_sql: exp.Select) -> exp.Select:
    """One row per group of `_jm_groups` for a global aggregate: `grouped_sql` (its rows per
    group with rows, g first) or else `original` over no rows."""
    names = _output_names(original)
    per_group = grouped_sql.copy()
    per_group.set("expressions", [per_group.expressions[0]] + [
        exp.alias_(e.this if isinstance(e, exp.Alias) else e, n, quoted=True)
        for e, n in zip(per_group.expressions[1:], names, strict=True)])
    empty = original.copy()
    empty.set("expressions", [exp.alias_(e.this if isinstance(e, exp.Alias) else e, n,
                                         quoted=True)
                              for e, n in zip(empty.expressions, names, strict=True)]
              + [exp.alias_(exp.true(), "__present")])
    where = empty.args.get("where")
    empty.set("where", exp.Where(this=exp.and_(where.this, exp.false()) if where
                                 else exp.false()))
    cols = [exp.alias_(exp.Case(ifs=[exp.If(this=_g("__s").is_(exp.null()),
                                            true=exp.column(n, table="__e", quoted=True))],
                                default=exp.column(n, table="__s", quoted=True)),
                       n, quoted=True) for n in names]
    out = (exp.select(exp.alias_(_g("__grp"), "g"), *cols)
           .from_(exp.to_table("_jm_groups").as_("__grp"))
           .join(per_group.subquery("__s"), on=exp.EQ(this=_g("__s"), expression=_g("__grp")),
                 join_type="left")
           .join(empty.subquery("__e"), on=exp.true(), join_type="left")
           .where(exp.or_(exp.not_(_g("__s").is_(exp.null())),
                          exp.column("__present", table="__e").is_(exp.true()))))
    out.meta["per_group"] = True
    return out


def _per_group(select: exp.Expression, grouped: set[str]) -> exp.Expression | None:
    """`select` rewritten to carry the group column g of the relations in `grouped` (its
    CTEs and FROM subqueries first), or None when it reads none of them."""
    if not isinstance(select, exp.Select):
        raise ValueError(f"per group: not a SELECT: {select.sql(dialect=DuckDBAsWritten)}")
    local = set(grouped)
    with_ = select.args.get("with_")
    for cte in with_.expressions if with_ else []:
        new = _rewritten(cte.this, local)
        if new is not None:
            cte.set("this", new)
            local.add(cte.alias_or_name)
    sources = []  # (alias, join or None) of the relations carrying g
    items = [(select.args["from_"].this, None)] if select.args.get("from_") else []
    items += [(j.this, j) for j in select.args.get("joins") or []]
    for n, (src, join) in enumerate(items):
        if isinstance(src, exp.Subquery):
            new = _rewritten(src.this, local)
            if new is not None:
                src.set("this", new)
            if not src.alias:
                src.set("alias", exp.TableAlias(this=exp.to_identifier(f"__q{n}")))
            if src.this.meta.get("per_group"):
                sources.append((src.alias, join))
        elif isinstance(src, exp.Table) and src.name in local:
            sources.append((src.alias_or_name, join))
    if not sources:
        return None
    if any(node.args.get("query") for node in select.find_all(exp.In)
           if node.find_ancestor(exp.Select) is select):
        raise ValueError("per group: IN (subquery) is not rewritten; join instead")
    first = sources[0][0]
    for alias, join in sources[1:]:
        same = exp.EQ(this=_g(alias), expression=_g(first))
        if join is not None and join.args.get("using"):
            join.set("using", [*join.args["using"], exp.to_identifier("g")])
        elif join is not None and join.args.get("on") is not None:
            join.set("on", exp.and_(join.args["on"], same))
        else:
            select.where(same, copy=False)
    star = any(isinstance(e, exp.Star) or (isinstance(e, exp.Column) and
               isinstance(e.this, exp.Star) and e.table == first) for e in select.expressions)
    if not star:
        select.set("expressions", [exp.alias_(_g(first), "g"), *select.expressions])
    for window in select.find_all(exp.Window):
        if window.find_ancestor(exp.Select) is select:
            window.set("partition_by", [_g(first), *(window.args.get("partition_by") or [])])
    group = select.args.get("group")
    is_global = group is None and _own_aggregates(select)
    if group is not None and not group.args.get("all"):
        group.set("expressions", [_g(first), *group.expressions])
    elif group is None and is_global:
        select.set("group", exp.Group(expressions=[_g(first)]))
    select.meta["per_group"] = True
    select.meta["global"] = is_global
    return select


def _rewritten(select: exp.Expression, grouped: set[str]) -> exp.Expression | None:
    """`_per_group`, a global aggregate made one row per group; None: reads no cut table."""
    original = select.copy()
    new = _per_group(select, grouped)
    if new is None:
        return None
    return _fill_groups(original, new) if new.meta.get("global") else new


def per_group_sql(sql: str, grouped: set[str], *, everywhere: bool = False
                  ) -> tuple[str, bool]:
    """`sql` over the relations `grouped` (each with a column g) per group (see above), and
    whether it carries g. `everywhere`: a query reading none of them is the same for every
    group (crossed with `_jm_groups`)."""
    new = _rewritten(_parse(sql), grouped)
    if new is not None:
        return new.sql(dialect=DuckDBAsWritten), True
    if not everywhere:
        return sql, False
    return (f"select __grp.g as g, __x.* from _jm_groups __grp cross join ({sql}) __x", True)


# the horizon of a `repeat_rate_<h>d` metric as a number (0 for the others): 7d before 14d
_HORIZON = "coalesce(try_cast(regexp_extract(metric, '_([0-9]+)d$', 1) as integer), 0)"


def _stage_metric_rows(at: dict[str, str], money: str, low: str, horizons: list[int],
                       has_impressions: bool, conv_idx: int, dec_idx: int, is_new: str,
                       totals: bool = False) -> list[tuple[str, str]]:
    """The rows of `stage_metrics` as (metric group, SELECT of stage, metric, segment,
    segment_value, value, unit) over the CTEs of build_stage_metrics; `at[group]` is the
    parameter holding the stage of a metric group. `totals`: plus, after each metric that
    `stage_metrics` has by channel only, its value over all channels (for
    `stage_metric_segments`)."""
    d, c, de = at.get("discovery"), at.get("consideration"), at.get("decision")
    pu, sv, rp = at.get("purchase"), at.get("service"), at.get("repeat")
    ctr = "true" if has_impressions else "false"
    hz = ", ".join(str(int(h)) for h in horizons)
    rows = [
        ("discovery", f"select {d}, 'new_customers', 'channel', channel, "
                      "cast(new_customers as double), 'customers' from new_by_channel"),
        ("discovery", f"select {d}, 'new_customers', 'all', 'all', "
                      f"count(*) filter (where {is_new}), 'customers' from j"),
        ("discovery", f"select {d}, 'installs', 'channel', channel, installs, 'customers' "
                      "from by_channel"),
        ("discovery", f"select {d}, 'installs', 'all', 'all', sum(installs), 'customers' "
                      "from by_channel"),
        ("discovery", f"select {d}, 'campaign_clicks', 'channel', channel, clicks, 'events' "
                      "from by_channel where clicks > 0"),
        ("discovery", f"select {d}, 'campaign_ctr', 'channel', channel, "
                      f"clicks / nullif(impressions, 0), 'rate' from by_channel where {ctr}"),
        ("discovery", f"select {d}, 'campaign_click_to_decision', 'channel', channel, "
                      "step_conversion(decided, clickers), 'rate' from click_conv"),
        ("consideration", f"select {c}, 'offers_viewed_per_customer', 'all', 'all', "
                          "o.offer_views / nullif(c.customers, 0), 'per_customer' "
                          "from offers o, consider c"),
        ("consideration", f"select {c}, 'time_in_app_minutes', 'all', 'all', median(minutes), "
                          "'minutes' from app_time"),
        ("decision", f"select {de}, 'bookings_created', 'all', 'all', count(*), 'events' "
                     "from bookings"),
        ("decision", f"select {de}, 'conversion_to_purchase', 'all', 'all', step_conversion("
                     f"max(entered) filter (where stage_index = {conv_idx}), "
                     f"max(entered) filter (where stage_index = {dec_idx})), 'rate' from funnel"),
        ("decision", f"select {de}, 'average_basket', 'all', 'all', avg(amount), {money} "
                     "from bookings"),
        ("decision", f"select {de}, 'average_basket', 'service_category', "
                     f"coalesce(service_category, '(unknown)'), avg(amount), {money} "
                     "from bookings group by all"),
        ("purchase", f"select {pu}, 'completed_transactions', 'all', 'all', "
                     "count(*) filter (where purchase), 'events' from booking_outcomes"),
        ("purchase", f"select {pu}, 'payment_dropout_rate', 'all', 'all', dropout_rate("
                     "count(*) filter (where payment_started and paid), "
                     "count(*) filter (where payment_started)), 'rate' from booking_outcomes"),
        ("purchase", f"select {pu}, 'payment_dropout_rate', 'platform', "
                     "coalesce(platform, '(unknown)'), dropout_rate("
                     "count(*) filter (where payment_started and paid), "
                     "count(*) filter (where payment_started)), 'rate' "
                     "from booking_outcomes group by all"),
        ("purchase", f"select {pu}, 'payment_failure_rate', 'all', 'all', "
                     "failure_rate(sum(failures), sum(attempts)), 'rate' from pay_outcomes"),
        ("purchase", f"select {pu}, 'payment_failure_rate', 'platform', platform, "
                     "failure_rate(sum(failures), sum(attempts)), 'rate' "
                     "from pay_outcomes group by all"),
        ("purchase", f"select {pu}, 'payment_failure_rate', 'method', method, "
                     "failure_rate(sum(failures), sum(attempts)), 'rate' "
                     "from pay_outcomes group by all"),
        ("purchase", f"select {pu}, 'failure_reason_share', 'failure_reason', failure_reason, "
                     "sum(failures) / sum(sum(failures)) over (), 'rate' "
                     "from payment_failures group by all"),
        ("service", f"select {sv}, 'average_rating', 'all', 'all', avg(rating), 'stars' "
                    "from booking_outcomes"),
        ("service", f"select {sv}, 'ratings', 'all', 'all', count(rating), 'events' "
                    "from booking_outcomes"),
        ("service", f"select {sv}, 'low_ratings', 'all', 'all', count(*) filter (where {low}), "
                    "'events' from booking_outcomes"),
        ("service", f"select {sv}, 'complaints', 'all', 'all', count(complaint), 'events' "
                    "from booking_outcomes"),
        ("service", f"select {sv}, 'cancellations', 'all', 'all', "
                    "count(*) filter (where cancelled), 'events' from booking_outcomes"),
        ("service", f"select {sv}, 'no_shows', 'all', 'all', count(*) filter (where no_show), "
                    "'events' from booking_outcomes"),
        ("service", f"select {sv}, 'cancellation_rate', 'all', 'all', "
                    "count(*) filter (where cancelled) / nullif(count(*), 0), 'rate' "
                    "from bookings"),
        ("service", f"select {sv}, 'no_show_rate', 'all', 'all', "
                    "count(*) filter (where no_show) / nullif(count(*), 0), 'rate' from bookings"),
        ("repeat", f"select {rp}, 'repeat_rate_' || horizon_days || 'd', group_name, "
                   "group_value, repeat_rate, 'rate' from repeat_purchase "
                   f"where group_name in ('all', 'first_rating') and horizon_days in ({hz})"),
        ("repeat", f"select {rp}, 'median_days_to_repeat', 'all', 'all', "
                   "median(epoch(b.purchase_ts - a.purchase_ts) / 86400), 'days' "
                   "from purchases a join purchases b "
                   "on b.customer_id = a.customer_id and b.purchase_number = 2 "
                   "where a.purchase_number = 1"),
        ("repeat", f"select {rp}, 'purchases_per_customer', 'all', 'all', "
                   "count(*) / nullif(count(distinct customer_id), 0), 'per_customer' "
                   "from purchases"),
    ]
    if not totals:
        return rows
    over_channels = {
        "campaign_clicks": f"select {d}, 'campaign_clicks', 'all', 'all', sum(clicks), "
                           "'events' from by_channel having sum(clicks) > 0",
        "campaign_ctr": f"select {d}, 'campaign_ctr', 'all', 'all', "
                        f"sum(clicks) / nullif(sum(impressions), 0), 'rate' from by_channel "
                        f"having {ctr}",
        # distinct clickers: a customer clicking in two channels counts once
        "campaign_click_to_decision": (
            f"select {d}, 'campaign_click_to_decision', 'all', 'all', step_conversion("
            f"count(*) filter (where j.furthest_stage_index >= {dec_idx}), count(*)), 'rate' "
            "from (select distinct customer_id from clickers) c left join j using (customer_id) "
            "having count(*) > 0"),
    }
    out = []
    for group, sql in rows:
        out.append((group, sql))
        for metric, total in over_channels.items():
            if f"'{metric}', 'channel'" in sql:
                out.append((group, total))
    return out
