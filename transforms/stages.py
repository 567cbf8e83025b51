"""Stage mapping: which journey stage each event belongs to.

`build_stage_events` takes a DuckDB connection holding the `events` table (docs/CONTRACTS.md)
and the loaded journey map, and (re)creates `stage_events` (one row per event x stage it maps
to) and `stage_mapping_summary` (one row per source x event_name present in `events`,
transforms/sql/stage_mapping_summary.sql) with CREATE OR REPLACE. Grains and columns are in
docs/TABLES.md. The rules:

- **Stage mapping.** An event belongs to every stage one of whose rules it matches; events of
  no known customer (orphan payments) and events matching no rule stay out of `stage_events`
  and are counted in `stage_mapping_summary`. A derived `repeat_of` stage holds the event that
  reached the `repeat_of` stage for the customer's `min_occurrence`-th, ... distinct
  `distinct_by` value (booking), in order of first reaching it, ignoring values that have a
  `cancelled_by` event (refund).

`stage_events` is assembled here because its SQL is the journey map's: one SELECT per stage
from its rules, one INSERT per derived repeat stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from transforms.journey_map import JourneyMap, Stage, rule_sql
from transforms.sqlutil import Params, ident, sql_file
from transforms.tables import count_rows, fetch_row, select_columns


@dataclass(frozen=True)
class MappingStats:
    events: int
    mapped_events: int
    unmapped_events: int
    stage_events: int


def build_stage_events(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> MappingStats:
    """(Re)build `stage_events` (one row per event x stage it maps to) and
    `stage_mapping_summary` (one row per source x event_name present in `events`)."""
    _create_rule_stages(con, jmap)
    for st in jmap.stages:
        if st.repeat is not None:
            _insert_repeat_stage(con, jmap, st)
    con.execute(sql_file("stage_mapping_summary"))
    events, mapped, unmapped = fetch_row(
        con, "select coalesce(sum(events), 0), coalesce(sum(mapped_events), 0), "
        "coalesce(sum(unmapped_events), 0) from stage_mapping_summary")
    n_stage = count_rows(con, "stage_events")
    return MappingStats(int(events), int(mapped), int(unmapped), int(n_stage))


def _create_rule_stages(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> None:
    """`stage_events` of the stages mapped by rules: one SELECT per stage, the index of the
    first rule an event matches as `rule_index`."""
    params = Params()
    selects = []
    # the json `properties` column stays in `events` (rules read it there), not in stage_events
    kept = select_columns(con, "events", "e", exclude=("properties",))
    for st in jmap.stages:
        if st.repeat is not None:
            continue
        preds = [rule_sql(r, params, "e") for r in st.rules]
        case = " ".join(f"when {p} then {j}" for j, p in enumerate(preds))
        where = " or ".join(rule_sql(r, params, "e") for r in st.rules)
        selects.append(
            f"select {kept}, {params.add(st.name)} as stage, "
            f"{st.index} as stage_index, case {case} end as rule_index "
            f"from events e where e.customer_id is not null and ({where})"
        )
    if selects:
        body = " union all ".join(selects)
    else:
        body = (f"select {kept}, cast(null as varchar) as stage, "
                "0 as stage_index, 0 as rule_index from events e where false")
    con.execute(f"create or replace table stage_events as {body}", params.values)


def _insert_repeat_stage(con: duckdb.DuckDBPyConnection, jmap: JourneyMap, st: Stage) -> None:
    """Add the events of a derived `repeat_of` stage to `stage_events` (rule in the module
    docstring); needs the rule stages in it already."""
    rep = st.repeat
    of = jmap.stage(rep.repeat_of)
    key = ident(rep.distinct_by)
    p = Params()
    cancelled = (f"select distinct {key} as k from events e "
                 f"where {rule_sql(rep.cancelled_by, p, 'e')} and {key} is not null"
                 if rep.cancelled_by is not None
                 else "select cast(null as varchar) as k where false")
    replaced = select_columns(con, "stage_events", "b", replace={
        "stage": p.add(st.name), "stage_index": str(st.index), "rule_index": "0"})
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
            select {replaced}
            from base b join ranked r using (event_id)
            where r.n >= {int(rep.min_occurrence)}
        )
        select * from final
        """,
        p.values,
    )
