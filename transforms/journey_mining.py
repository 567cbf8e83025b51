"""Process mining of the observed journeys: the tables the Paths dashboard reads.

The mining log (`mining_log`, one row per stage visit) is, for each customer with a journey
(a row of `journeys`, transforms/journeys.py: the customer entered the first required stage),
the customer's stage events in time order with consecutive repeats of a stage collapsed into
one visit (ten service views in a row are one Consideration visit), up to and including the
customer's first Repeat: the designed journey ends there, and later purchases would only repeat
it. Ties at one instant are ordered by stage position, then event id. A customer with stage
events but no journey (at the end of the data: a device whose app open is still in transit when
its next screens, or the booking the server wrote, are already exported) is in no mining table
built from the log, so `journey_variants` has exactly one row per journey.

Everything per event runs in DuckDB (transforms.mining): the mining log is sorted once into
per-case paths (`mining.case_paths`) that the variant, DFG, endpoint and drop-off tables all
read, and stage events once per customer for `stage_event_variants`. pm4py sees one trace per
variant for the discovered model (inductive miner, exported as BPMN and PNML) and for
conformance (token-based replay against the designed journey, prefix-closed: stopping early
is drop-off, reported by the funnel, not a deviation). Grains:

- `mining_log`: one row per stage visit of a customer (case, activity, ts, event_index).
- `variants`: one row per distinct stage path (variant).
- `journey_variants`: one row per customer journey: its variant and replay fitness.
- `dfg_edges`: one row per directly-follows pair of stages; `dfg_endpoints`: one row per
  (activity, start|end).
- `dropoff_points`: one row per stage where non-converting journeys end.
- `conformance_overall`: one row; `conformance_deviations`: one row per (stage, deviation,
  segment, segment value); deviations are skipped / repeated / out_of_order (transforms.mining).
- `stage_event_variants`: one row per (stage, sequence of event names inside one visit of that
  stage), the top paths within each stage (e.g. what people did inside Consideration).
- `stage_returns`: one row per stage: customers coming back to it after reaching a later
  stage, and after how long (transforms/sql/stage_returns.sql).

A stage with `occurrence: first` in the journey map is a path step on the customer's first
event of it only (an app open in every session would otherwise read as "back to Discovery");
its later visits are measured in `stage_returns` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from transforms import mining
from transforms.findings import unregister_arrow
from transforms.journey_map import JourneyMap
from transforms.sqlutil import ident, sql_file
from transforms.tables import engine_of, table_columns

TOP_STAGE_EVENT_VARIANTS = 15


@dataclass(frozen=True)
class MiningStats:
    journeys: int
    visits: int
    variants: int
    edges: int
    log_fitness: float
    fitting_share: float
    model_files: tuple[Path, ...]


def build_mining_log(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `mining_log` from `stage_events` and `journeys` (see the module doc)."""
    last_stage = jmap.stages[-1].name
    firsts = [s.name for s in jmap.stages if s.occurrence == "first"]
    con.execute("""
        create or replace table mining_log as
        with all_events as (
            select customer_id, stage, stage_index, event_ts, event_id,
                   row_number() over (partition by customer_id, stage
                                      order by event_ts, event_id) as nth_of_stage
            from stage_events
            -- the cases are the journeys: one definition of who has one (transforms/journeys.py)
            where customer_id in (select customer_id from journeys)
        ),
        ordered as (
            -- a stage with occurrence: first is a path step on its first event only
            select customer_id, stage, stage_index, event_ts, event_id,
                   row_number() over (partition by customer_id
                                      order by event_ts, stage_index, event_id) as seq
            from all_events
            where nth_of_stage = 1 or not list_contains($first_stages, stage)
        ),
        first_repeat as (
            select customer_id, min(seq) as seq
            from ordered where stage = $last_stage group by customer_id
        ),
        bounded as (
            -- up to the first visit of the last stage; the same event's mapping to an earlier
            -- stage (a repeat purchase is also a Purchase) sorts before it and is kept
            select o.* from ordered o left join first_repeat r using (customer_id)
            where r.seq is null or o.seq <= r.seq
        ),
        visits as (
            select *, lag(stage) over (partition by customer_id order by seq) as previous_stage
            from bounded
        ),
        final as (
            select customer_id as "case", stage as activity, event_ts as ts,
                   row_number() over (order by customer_id, seq) as event_index
            from visits
            where previous_stage is null or previous_stage <> stage
        )
        select * from final order by "case", event_index
    """, {"last_stage": last_stage, "first_stages": firsts})
    return con.execute("select count(*) from mining_log").fetchone()[0]


def build_stage_returns(con: duckdb.DuckDBPyConnection) -> int:
    """(Re)build `stage_returns` (one row per stage) from `stage_events`
    (transforms/sql/stage_returns.sql)."""
    con.execute(sql_file("stage_returns"))
    return con.execute("select count(*) from stage_returns").fetchone()[0]


def build_mining_tables(con: duckdb.DuckDBPyConnection, jmap: JourneyMap,
                        models_dir: str | Path) -> MiningStats:
    """Build every mining table and export the discovered model. Needs `stage_events`,
    `journeys` (for conversion and segments)."""
    visits = build_mining_log(con, jmap)
    con.execute("""
        create or replace temp view _mining_cases as
        select l.*, coalesce(j.converted, false) as converted
        from mining_log l left join journeys j on j.customer_id = l."case"
    """)
    # the one sort of the mining log: every path table below reads these per-case paths
    paths = mining.case_paths(con, "_mining_cases", table="_mining_paths")
    counts = mining.variant_counts(con, paths)
    designed = mining.DesignedJourney(
        tuple(jmap.stage_names),
        frozenset(s.name for s in jmap.stages if s.optional),
    )
    result = mining.conformance(counts, designed)
    _variants_table(con, result, paths)
    _dfg_tables(con, paths)
    _dropoff_table(con, paths)
    _conformance_tables(con, jmap, result)
    paths.drop(con)
    _stage_event_variants(con)
    build_stage_returns(con)
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    model = mining.discover_model(counts)
    files = (mining.export_bpmn(model, models_dir / "journey_model.bpmn"),
             mining.export_pnml(model, models_dir / "journey_model.pnml"))
    (models_dir / "journey_model.tree.txt").write_text(str(model) + "\n")
    n_journeys = sum(counts.values())
    edges = con.execute("select count(*) from dfg_edges").fetchone()[0]
    return MiningStats(n_journeys, visits, len(counts), edges, result.log_fitness,
                       result.fitting_cases_share, files)


def _variants_table(con: duckdb.DuckDBPyConnection, result: mining.Conformance,
                    paths: mining.CasePaths) -> None:
    fitness = [(list(v.activities), v.fitness, v.is_fit,
                list(v.deviations.skipped), list(v.deviations.repeated),
                list(v.deviations.out_of_order), list(v.deviations.unexpected))
               for v in result.variants]
    # pm4py's per-variant results back to the engine as one Arrow table
    stages = pa.list_(pa.string())
    schema = pa.schema([("stages", stages), ("fitness", pa.float64()), ("is_fit", pa.bool_()),
                        ("skipped", stages), ("repeated", stages), ("out_of_order", stages),
                        ("unexpected", stages)])
    eng = engine_of(con)
    eng.register_arrow("_variant_fitness_rows", pa.Table.from_pylist(
        [dict(zip(schema.names, row, strict=True)) for row in fitness], schema=schema))
    try:
        con.execute("create or replace temp table _variant_fitness as "
                    "select * from _variant_fitness_rows")
    finally:
        unregister_arrow(eng, "_variant_fitness_rows")
    con.execute("create or replace temp table _mining_variants as "
                + mining.paths_variants_sql(paths))
    con.execute("""
        create or replace table variants as
        with base as (
            select activities as stages, cases as journeys, share,
                   median_duration_seconds, converted_cases, conversion_rate
            from _mining_variants
        ),
        final as (
            select
                row_number() over (order by b.journeys desc, array_to_string(b.stages, '>'))
                    as variant_id,
                b.stages,
                array_to_string(b.stages, ' → ') as path,
                b.journeys,
                b.share,
                b.median_duration_seconds as median_duration_s,
                b.converted_cases,
                b.conversion_rate as converted_share,
                f.fitness,
                f.is_fit,
                f.skipped, f.repeated, f.out_of_order
            from base b left join _variant_fitness f on f.stages = b.stages
        )
        select * from final order by variant_id
    """)
    con.execute(f"""
        create or replace table journey_variants as
        with paths as (
            select p."case" as customer_id, list_transform(p.codes, lambda c: n.names[c]) as stages
            from {ident(paths.table)} p, {ident(paths.names_table)} n
        )
        select p.customer_id, v.variant_id, v.fitness, v.is_fit
        from paths p join variants v on v.stages = p.stages
        order by p.customer_id
    """)


def _dfg_tables(con: duckdb.DuckDBPyConnection, paths: mining.CasePaths) -> None:
    con.execute(f"""
        create or replace table dfg_edges as
        select "from" as source, "to" as target, count, mean_seconds as mean_s,
               median_seconds as median_s, p90_seconds as p90_s
        from ({mining.paths_dfg_sql(paths)}) order by count desc, source, target
    """)
    con.execute(f"""
        create or replace table dfg_endpoints as
        with ends as (
            select codes[1] as first, codes[-1] as last from {ident(paths.table)}
        ),
        final as (
            select n.names[first] as activity, 'start' as kind, count(*) as count
            from ends, {ident(paths.names_table)} n group by 1
            union all
            select n.names[last], 'end', count(*) from ends, {ident(paths.names_table)} n
            group by 1
        )
        select * from final order by kind desc, count desc, activity
    """)


def _dropoff_table(con: duckdb.DuckDBPyConnection, paths: mining.CasePaths) -> None:
    # a case's last visit in path order is its last by event_index (build_mining_log numbers
    # the visits in time order)
    con.execute(f"""
        create or replace table dropoff_points as
        with ends as (
            select p."case", n.names[p.codes[-1]] as stage, p.converted as conv
            from {ident(paths.table)} p, {ident(paths.names_table)} n
        ),
        final as (
            select stage, count(*) as journeys, count(*) / sum(count(*)) over () as share
            from ends where not conv group by stage
        )
        select * from final order by journeys desc, stage
    """)


def _conformance_tables(con: duckdb.DuckDBPyConnection, jmap: JourneyMap,
                        result: mining.Conformance) -> None:
    con.execute("create or replace table conformance_overall as select ? as journeys, "
                "? as fitness, ? as fitting_share, ? as average_journey_fitness",
                [sum(v.count for v in result.variants), result.log_fitness,
                 result.fitting_cases_share, result.average_case_fitness])
    journey_cols = table_columns(con, "journeys")
    segments = [s.name for s in jmap.segments if s.name in journey_cols]
    seg_rows = " union all ".join(
        ["select customer_id, 'all' as segment, 'all' as segment_value from journeys"]
        + [f"select customer_id, ? as segment, "
           f"coalesce(cast({ident(name)} as varchar), '(unknown)') from journeys"
           for name in segments]
    )
    con.execute(f"""
        create or replace table conformance_deviations as
        with per_journey as (
            select jv.customer_id, d.deviation, unnest(d.stages) as stage
            from journey_variants jv
            join (select variant_id, 'skipped' as deviation, skipped as stages from variants
                  union all
                  select variant_id, 'repeated', repeated from variants
                  union all
                  select variant_id, 'out_of_order', out_of_order from variants) d
                using (variant_id)
        ),
        segs as ({seg_rows}),
        final as (
            select p.stage, p.deviation, s.segment, s.segment_value,
                   count(distinct p.customer_id) as journeys
            from per_journey p join segs s using (customer_id)
            group by all
        )
        select * from final order by segment, segment_value, journeys desc, stage, deviation
    """, segments)


def _stage_event_variants(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        create or replace table stage_event_variants as
        with pairs as (
            -- (stage, event name) pairs as small integers: integer lists sort and group fast
            select stage, event_name,
                   (row_number() over (order by stage, event_name))::integer as code
            from (select distinct stage, event_name from stage_events
                  where customer_id is not null)
        ),
        dict as (
            select list(stage order by code) as stage_of, list(event_name order by code) as name_of
            from pairs
        ),
        per_customer as (
            -- one ordered list per customer (the one sort); a visit = a run of consecutive
            -- events of one stage in it
            select list(p.code order by e.event_ts, e.stage_index, e.event_id) as codes
            from stage_events e
            join pairs p on p.stage is not distinct from e.stage
                        and p.event_name is not distinct from e.event_name
            where e.customer_id is not null
            group by e.customer_id
        ),
        runs as (
            select codes, list_filter(range(1, array_length(codes) + 1), lambda i: i = 1
                   or stage_of[codes[i]] is distinct from stage_of[codes[i - 1]]) as starts
            from per_customer, dict
        ),
        numbered as (
            select codes, starts, unnest(range(1, array_length(starts) + 1)) as visit from runs
        ),
        visits as (
            select codes[starts[visit]] as first_code,
                   codes[starts[visit]:coalesce(starts[visit + 1] - 1, array_length(codes))]
                       as visit_codes
            from numbered
        ),
        counted as (
            select stage_of[first(first_code)] as stage,
                   list_transform(visit_codes, lambda c: name_of[c]) as events,
                   count(*) as visits
            from visits, dict group by visit_codes, stage_of, name_of
        ),
        grouped as (
            select stage, events, sum(visits)::bigint as visits,
                   sum(visits) / sum(sum(visits)) over (partition by stage) as share,
                   row_number() over (partition by stage order by sum(visits) desc,
                                      array_to_string(events, '>')) as rank
            from counted group by stage, events
        )
        select stage, rank, events, array_to_string(events, ' → ') as path, visits, share
        from grouped where rank <= $top
        order by stage, rank
    """, {"top": TOP_STAGE_EVENT_VARIANTS})
