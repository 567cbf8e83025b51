"""Process mining on observed journeys: variants, directly-follows graph, model, conformance.

The input `log` is a DuckDB table or view name, or a relation, with one row per event:
`case`, `activity`, `ts` (UTC TIMESTAMP) and, optionally, `event_index` (position in the source)
and `converted` (a per-case flag, e.g. "reached Purchase"). `transforms.eventlog.read_event_log`
produces this shape from XES/CSV/Parquet/JSON lines.

Semantics, stated once:

- **Journey order.** A case's events are ordered by `ts`, then by `event_index`; without an
  `event_index` column, by `ts`, then by activity name. With `event_index` = file position this
  is exactly a stable sort by time, i.e. what pm4py sees after `sort_values([case, time])` on a
  frame in file order.
- **Variant.** The ordered list of activities of a case. Only the activity is used, never the
  lifecycle transition: on BPIC 2012 this gives the published 4,366 variants with all lifecycle
  transitions (4,336 when only COMPLETE events are kept). Variants are sorted by count, then by
  the activity list.
- **Directly-follows pair.** Two consecutive events of one case in journey order; its time is
  the target's timestamp minus the source's, in seconds (pm4py's performance DFG).
- **Designed journey.** An ordered list of stages, some optional. It is prefix-closed: a journey
  may stop after any stage; stopping early is drop-off (the funnel's business), not a deviation.
- **Deviations** of a journey against the designed journey (see `deviations`):
  *skipped* — a required stage that never occurs although a later stage does;
  *out_of_order* — a stage whose first occurrence comes after a later stage has already occurred;
  *repeated* — a stage that occurs again after its first occurrence (loops and re-entries);
  *unexpected* — an activity that is not a stage of the designed journey.
  A journey without deviations is a prefix of a designed path, so it replays with fitness 1.

All per-event work runs in DuckDB; pm4py only ever sees one trace per variant. `case_paths`
sorts a log once into per-case paths from which variants, variant counts and the DFG are read
(the per-log functions remain for one-off use). The model and replay use pm4py internals
(inductive miner on a variant counter; token replay memoised per marking and activity,
`_TokenReplay`), loaded without pm4py's package __init__ (`_pm4py`), pinned to pm4py 2.7.23 in
pyproject.toml and checked against pm4py on the full log by tests/transforms/test_mining*.py.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from copy import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from transforms.errors import UserError
from transforms.sqlutil import ident
from transforms.tables import column_names, engine_of, list_tables

VariantCounts = Mapping[tuple[str, ...], int]




# --------------------------------------------------------------------------------------------
# Per-event work: DuckDB
# --------------------------------------------------------------------------------------------

def _resolve(con: duckdb.DuckDBPyConnection, log: str | duckdb.DuckDBPyRelation) -> str:
    """The name of a table or view holding `log`, after checking its columns."""
    if isinstance(log, duckdb.DuckDBPyRelation):
        name = f"__mining_log_{uuid.uuid4().hex[:12]}"
        log.create_view(name, replace=True)
        columns = log.columns
    else:
        name = log
        if log not in list_tables(con):
            raise UserError(f"no table or view named {log!r} to mine")
        columns = column_names(con, log)
    missing = [c for c in ("case", "activity", "ts") if c not in columns]
    if missing:
        raise UserError(
            f"the event log lacks column(s) {', '.join(missing)}; it needs case, activity, ts"
        )
    return name


def _source(con: duckdb.DuckDBPyConnection, log: str | duckdb.DuckDBPyRelation) -> str:
    """A FROM-clause reference to `log`."""
    return ident(_resolve(con, log))


def _columns(con: duckdb.DuckDBPyConnection, src: str) -> list[str]:
    return engine_of(con).query(f"select * from {src} limit 0").column_names


def _order(con: duckdb.DuckDBPyConnection, src: str) -> str:
    tiebreak = "event_index" if "event_index" in _columns(con, src) else "activity"
    return f"ts, {tiebreak}"


def _journeys_ctes(con: duckdb.DuckDBPyConnection, log: str | duckdb.DuckDBPyRelation) -> str:
    """CTEs `acts` (activity -> small integer code, in name order), `names` (code -> activity
    list) and `journeys` (one row per case: ordered code list, first/last time, converted).

    Lists of integers group and compare about twice as fast as lists of strings; the codes are
    mapped back to names once per variant. Events without an activity are ignored.
    """
    src = _source(con, log)
    converted = ("bool_or(converted)" if "converted" in _columns(con, src)
                 else "null::boolean")
    return f"""
        acts as (
            select activity, (row_number() over (order by activity))::integer as code
            from (select distinct activity from {src} where activity is not null)
        ),
        names as (select list(activity order by code) as names from acts),
        journeys as (
            select
                "case",
                list(code order by {_order(con, src)}) as codes,
                min(ts) as started_at,
                max(ts) as ended_at,
                {converted} as converted
            from {src} join acts using (activity)
            group by "case"
        )
    """


@dataclass(frozen=True)
class CasePaths:
    """A log's cases, each as its ordered path, computed in one pass (`case_paths`).

    `table` is a temporary table with one row per case: `case`, `path` (the case's events in
    journey order, each packed into one integer: time offset in microseconds shifted left by
    `bits`, ORed with the activity code), `codes` (INTEGER[]: the activity codes alone, the
    variant), `duration_us` (last minus first event time) and `converted` (the case's flag, or
    NULL). `names` maps codes (1-based, in name order) back to activities; the temporary table
    `names_table` holds it as one row, column `names`. `variants`, `variant_counts` and `dfg`
    accept it in place of the log, so one sort of the log serves them all, with the same
    results (DFG means up to the last bits of floating-point summation order).
    """

    table: str
    names: tuple[str, ...]
    bits: int

    @property
    def mask(self) -> int:
        return (1 << self.bits) - 1

    @property
    def names_table(self) -> str:
        return f"{self.table}__names"

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        for name in (self.table, self.names_table):
            con.execute(f"drop table if exists {ident(name)}")


def case_paths(con: duckdb.DuckDBPyConnection, log: str | duckdb.DuckDBPyRelation,
               table: str | None = None) -> CasePaths:
    """Sort the log once into `CasePaths` (temporary table `table`, default a fresh name).

    Sorting is what a per-case ordered list costs; sorting one integer per event that carries
    both the activity and the time costs the same as sorting the activity alone, so variants
    and directly-follows times come out of a single sort. Events without an activity are
    ignored, as in `variants`. Without a time an event still takes its place in the path (last,
    as in an ORDER BY), and its steps have no duration, as in `dfg`.
    """
    src = _source(con, log)
    columns = _columns(con, src)
    order = _order(con, src)
    names, lo, hi = con.execute(f"""
        select (select list(distinct activity order by activity) from {src}
                where activity is not null),
               epoch_us(min(ts)), epoch_us(max(ts))
        from {src}
    """).fetchone()
    names = tuple(names or ())
    bits = max(1, len(names).bit_length())
    span = (hi - lo + 1) if lo is not None else 0
    # an integer of time offset (0 = no time) and code; BIGINT when it fits, else HUGEINT
    kind = "bigint" if span < 1 << (62 - bits) else "hugeint"
    converted = "bool_or(converted)" if "converted" in columns else "null::boolean"
    table = table or f"__case_paths_{uuid.uuid4().hex[:12]}"
    con.execute(f"""
        create or replace temp table {ident(table)} as
        with acts as (
            select unnest($names::varchar[]) as activity,
                   unnest(range(1, len($names::varchar[]) + 1))::integer as code
        ),
        paths as (
            select
                "case",
                list(((coalesce(epoch_us(ts) - $lo + 1, 0))::{kind} << {bits}) | code
                     order by {order}) as path,
                date_diff('microsecond', min(ts), max(ts)) as duration_us,
                {converted} as converted
            from {src} join acts using (activity)
            group by "case"
        )
        select "case", path,
               list_transform(path, lambda x: (x & {(1 << bits) - 1})::integer) as codes,
               duration_us, converted
        from paths
    """, {"names": list(names), "lo": lo or 0})
    paths = CasePaths(table, names, bits)
    con.execute(f"create or replace temp table {ident(paths.names_table)} as "
                "select $names::varchar[] as names", {"names": list(names)})
    return paths


def paths_variants_sql(paths: CasePaths) -> str:
    """The query of `variants` over `CasePaths` (any engine)."""
    return f"""
        with grouped as (
            select
                codes,
                count(*) as cases,
                count(*) / sum(count(*)) over () as share,
                median(duration_us / 1e6) as median_duration_seconds,
                count(*) filter (where converted) as converted_cases,
                avg(converted::int) as conversion_rate
            from {ident(paths.table)}
            group by codes
        ),
        final as (
            select
                list_transform(codes, lambda c: names[c]) as activities,
                cases, share, median_duration_seconds, converted_cases, conversion_rate
            from grouped, {ident(paths.names_table)}
        )
        select * from final order by cases desc, activities
    """


def paths_dfg_sql(paths: CasePaths) -> str:
    """The query of `dfg` over `CasePaths` (any engine)."""
    mask, bits = paths.mask, paths.bits
    return f"""
        with pairs as (
            select unnest(path[1:array_length(path) - 1]) as a, unnest(path[2:]) as b
            from {ident(paths.table)} where array_length(path) > 1
        ),
        steps as (
            select (a & {mask})::integer as f, (b & {mask})::integer as t,
                   case when a >> {bits} > 0 and b >> {bits} > 0
                        then ((b >> {bits}) - (a >> {bits}))::bigint / 1e6 end as seconds
            from pairs
        ),
        grouped as (
            select f, t, count(*) as count, avg(seconds) as mean_seconds,
                   median(seconds) as median_seconds,
                   quantile_cont(seconds, 0.9) as p90_seconds
            from steps group by f, t
        ),
        final as (
            select names[f] as "from", names[t] as "to", count,
                   mean_seconds, median_seconds, p90_seconds
            from grouped, {ident(paths.names_table)}
        )
        select * from final order by count desc, "from", "to"
    """


def variants(con: duckdb.DuckDBPyConnection,
             log: str | duckdb.DuckDBPyRelation | CasePaths) -> duckdb.DuckDBPyRelation:
    """One row per variant: activities (list), cases, share of cases, median case duration in
    seconds, and — when the log has a `converted` column — converted cases and conversion rate.
    """
    if isinstance(log, CasePaths):
        return con.sql(paths_variants_sql(log))
    sql = f"""
        with {_journeys_ctes(con, log)},
        grouped as (
            select
                codes,
                count(*) as cases,
                count(*) / sum(count(*)) over () as share,
                median(date_diff('microsecond', started_at, ended_at) / 1e6)
                    as median_duration_seconds,
                count(*) filter (where converted) as converted_cases,
                avg(converted::int) as conversion_rate
            from journeys
            group by codes
        ),
        final as (
            select
                list_transform(codes, lambda c: names[c]) as activities,
                cases, share, median_duration_seconds, converted_cases, conversion_rate
            from grouped, names
        )
        select * from final order by cases desc, activities
    """
    return con.sql(sql)


def variant_counts(con: duckdb.DuckDBPyConnection,
                   log: str | duckdb.DuckDBPyRelation | CasePaths) -> Counter[tuple[str, ...]]:
    """The variant counter (pm4py's UVCL): activity tuple -> number of cases."""
    if isinstance(log, CasePaths):
        names = log.names
        rows = con.execute(f"select codes, count(*) from {ident(log.table)} group by codes"
                           ).fetchall()
        return Counter({tuple(names[c - 1] for c in codes): n for codes, n in rows})
    rows = con.execute(f"""
        with {_journeys_ctes(con, log)},
        grouped as (select codes, count(*) as cases from journeys group by codes)
        select list_transform(codes, lambda c: names[c]), cases from grouped, names
    """).fetchall()
    return Counter({tuple(acts): n for acts, n in rows})


def dfg(con: duckdb.DuckDBPyConnection,
        log: str | duckdb.DuckDBPyRelation | CasePaths) -> duckdb.DuckDBPyRelation:
    """One row per directly-follows pair: from, to, count, mean/median/p90 seconds."""
    if isinstance(log, CasePaths):
        return con.sql(paths_dfg_sql(log))
    src = _source(con, log)
    sql = f"""
        with steps as (
            select
                activity as "from",
                lead(activity) over journey as "to",
                date_diff('microsecond', ts, lead(ts) over journey) / 1e6 as seconds
            from {src}
            window journey as (partition by "case" order by {_order(con, src)})
        ),
        final as (
            select
                "from",
                "to",
                count(*) as count,
                avg(seconds) as mean_seconds,
                median(seconds) as median_seconds,
                quantile_cont(seconds, 0.9) as p90_seconds
            from steps
            where "to" is not null
            group by "from", "to"
        )
        select * from final order by count desc, "from", "to"
    """
    return con.sql(sql)


def _endpoint_activities(con: duckdb.DuckDBPyConnection,
                         log: str | duckdb.DuckDBPyRelation | CasePaths | VariantCounts,
                         index: int) -> dict[str, int]:
    counts: Counter[str] = Counter()
    source = log if isinstance(log, Mapping) else variant_counts(con, log)
    for acts, n in source.items():
        if acts:
            counts[acts[index]] += n
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def start_activities(con: duckdb.DuckDBPyConnection,
                     log: str | duckdb.DuckDBPyRelation | VariantCounts) -> dict[str, int]:
    """First activity of each case -> number of cases (from a log or its variant counts)."""
    return _endpoint_activities(con, log, 0)


def end_activities(con: duckdb.DuckDBPyConnection,
                   log: str | duckdb.DuckDBPyRelation | VariantCounts) -> dict[str, int]:
    """Last activity of each case -> number of cases (from a log or its variant counts)."""
    return _endpoint_activities(con, log, -1)


def summary(con: duckdb.DuckDBPyConnection, log: str | duckdb.DuckDBPyRelation,
            top: int = 10) -> dict[str, Any]:
    """Headline figures of a log, JSON-ready (the `journeys mine` output)."""
    name = _resolve(con, log)
    counts = variant_counts(con, name)
    events, activities = con.execute(
        f"select count(*), count(distinct activity) from {ident(name)}").fetchall()[0]
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    pairs = dfg(con, name).fetchall()
    return {
        "cases": sum(counts.values()),
        "events": int(events),
        "activities": int(activities),
        "variants": len(counts),
        "top_variants": [{"activities": list(a), "count": n} for a, n in ranked[:top]],
        "dfg": [
            {"from": f, "to": t, "count": int(n), "mean_seconds": mean,
             "median_seconds": median, "p90_seconds": p90}
            for f, t, n, mean, median, p90 in pairs
        ],
        "start_activities": start_activities(con, counts),
        "end_activities": end_activities(con, counts),
    }


# --------------------------------------------------------------------------------------------
# Per-variant work: pm4py on one trace per variant
# --------------------------------------------------------------------------------------------

# The pm4py modules the engine uses. `import pm4py` costs ~1.5 CPU s, more than mining a
# million events in DuckDB: its package __init__s import every algorithm, visualisation and
# connector. These modules alone take about a third of that (pandas and networkx remain; scipy
# comes only with pm4py's token replay module, so `_TokenReplay` carries its steps itself).
PM4PY_MODULES = {
    "im_ds": "pm4py.algo.discovery.inductive.dtypes.im_ds",
    "im": "pm4py.algo.discovery.inductive.variants.im",
    "imf": "pm4py.algo.discovery.inductive.variants.imf",
    "tree_util": "pm4py.objects.process_tree.utils.generic",
    "tree_to_petri": "pm4py.objects.conversion.process_tree.variants.to_petri_net",
    "tree_to_bpmn": "pm4py.objects.conversion.process_tree.variants.to_bpmn",
    "bpmn_exporter": "pm4py.objects.bpmn.exporter.exporter",
    "pnml_exporter": "pm4py.objects.petri_net.exporter.exporter",
    "petri_utils": "pm4py.objects.petri_net.utils.petri_utils",
    "semantics": "pm4py.objects.petri_net.semantics",
}


class _BarePackages:
    """Import hook: pm4py's packages as bare packages (path only, __init__ not run)."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> Any:
        import importlib.machinery

        if name != "pm4py" and not name.startswith("pm4py."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.submodule_search_locations is None:
            return spec
        bare = importlib.machinery.ModuleSpec(name, None, is_package=True)
        bare.submodule_search_locations = spec.submodule_search_locations
        return bare


def _pm4py(module: str) -> Any:
    """One pm4py module (a key of PM4PY_MODULES), imported without pm4py's package __init__s.

    When pm4py is not imported yet, its packages are loaded, for the duration of the import,
    as bare packages (`_BarePackages`), with pm4py's own switch for lazy imports
    (PM4PY_ENABLE_INTERNAL_IMPORTS=False) set: the module then loads only what it imports
    itself. The top package is removed again afterwards, so a later `import pm4py` anywhere in
    the process runs pm4py's __init__ (its API) and finds these modules already loaded.
    """
    import importlib
    import importlib.machinery
    import sys

    name = PM4PY_MODULES[module]
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    os.environ.setdefault("PM4PY_SHOW_PROGRESS_BAR", "False")
    if "pm4py" in sys.modules:
        return importlib.import_module(name)
    if importlib.machinery.PathFinder.find_spec("pm4py") is None:
        raise UserError("pm4py is not installed; install the project's dependencies "
                        "(pip install -e .) to mine journeys")
    switch = os.environ.get("PM4PY_ENABLE_INTERNAL_IMPORTS")
    os.environ["PM4PY_ENABLE_INTERNAL_IMPORTS"] = "False"
    hook = _BarePackages()
    sys.meta_path.insert(0, hook)
    try:
        return importlib.import_module(name)
    finally:
        sys.meta_path.remove(hook)
        sys.modules.pop("pm4py", None)
        if switch is None:
            del os.environ["PM4PY_ENABLE_INTERNAL_IMPORTS"]
        else:
            os.environ["PM4PY_ENABLE_INTERNAL_IMPORTS"] = switch


def discover_model(variant_counts: VariantCounts, noise_threshold: float = 0.0) -> Any:
    """Inductive miner process tree from a variant counter.

    Same tree as `pm4py.discover_process_tree_inductive(log, noise_threshold)` on the full log:
    plain IM (noise 0) depends only on the set of variants, IMf on their counts too.
    """
    im_ds, pt_util = _pm4py("im_ds"), _pm4py("tree_util")
    uvcl = Counter({tuple(k): int(v) for k, v in variant_counts.items() if v > 0})
    parameters = {"noise_threshold": noise_threshold, "multiprocessing": False,
                  "disable_fallthroughs": False}
    miner = (_pm4py("imf").IMFUVCL(parameters) if noise_threshold > 0
             else _pm4py("im").IMUVCL(parameters))
    tree = miner.apply(im_ds.IMDataStructureUVCL(uvcl), parameters)
    tree = pt_util.fold(tree)
    pt_util.tree_sort(tree)
    return tree


def to_petri_net(model: Any) -> tuple[Any, Any, Any]:
    """(net, initial marking, final marking) of a process tree, tree string or Petri net triple
    (what `pm4py.convert_to_petri_net` gives for a process tree)."""
    if isinstance(model, tuple) and len(model) == 3:
        return model
    if isinstance(model, str):
        model = parse_tree(model)
    return _pm4py("tree_to_petri").apply(model)


def parse_tree(text: str) -> Any:
    """A pm4py process tree from its string form (`pm4py.parse_process_tree`), or UserError."""
    parse = _pm4py("tree_util").parse
    try:
        return parse(text)
    except Exception as exc:  # the pm4py parser raises bare AssertionError/IndexError
        raise UserError(f"not a process tree string ({type(exc).__name__}): {text[:80]}") from None


def export_bpmn(model: Any, path: str | Path) -> Path:
    """Write a process tree as BPMN 2.0 XML (`pm4py.write_bpmn`, no layout)."""
    if isinstance(model, str):
        model = parse_tree(model)
    bpmn = _pm4py("tree_to_bpmn").apply(model)
    _pm4py("bpmn_exporter").apply(bpmn, str(path), parameters={"encoding": "utf-8"})
    return Path(path)


def export_pnml(model: Any, path: str | Path) -> Path:
    """Write a process tree (or Petri net triple) as PNML (`pm4py.write_pnml`)."""
    net, im, fm = to_petri_net(model)
    _pm4py("pnml_exporter").apply(net, im, str(path), final_marking=fm,
                                  parameters={"encoding": "utf-8"})
    return Path(path)


@dataclass(frozen=True)
class DesignedJourney:
    """The journey map as designed: stages in order; optional ones may be skipped."""

    stages: tuple[str, ...]
    optional: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.stages:
            raise UserError("the designed journey has no stages; list at least one")
        if len(set(self.stages)) != len(self.stages):
            raise UserError(f"the designed journey repeats a stage: {list(self.stages)}")
        unknown = set(self.optional) - set(self.stages)
        if unknown:
            raise UserError(f"optional stage(s) {sorted(unknown)} are not journey stages")

    def tree(self) -> str:
        return designed_journey_tree(list(self.stages), set(self.optional))


def designed_journey_tree(stages: Sequence[str], optional: Iterable[str] = ()) -> str:
    """Process tree string of the prefix-closed designed journey.

    Read from the last stage back: `rest(i)` is "any prefix of the path from stage i on".
    Required stage: `X(tau, ->('s', rest(i+1)))` (stop here, or do s and go on);
    optional stage: `->(X(tau, 's'), rest(i+1))` (s or not, then go on, which may be stopping).
    """
    optional = set(optional)
    for stage in stages:
        if "'" in stage:
            raise UserError(f"stage name {stage!r} contains a single quote, which process "
                            "tree strings cannot hold; rename the stage")
    rest = "tau"
    for stage in reversed(list(stages)):
        label = f"'{stage}'"
        if stage in optional:
            rest = f"X( tau, {label} )" if rest == "tau" else f"->( X( tau, {label} ), {rest} )"
        else:
            rest = f"X( tau, {label} )" if rest == "tau" else f"X( tau, ->( {label}, {rest} ) )"
    return rest


@dataclass(frozen=True)
class Deviations:
    skipped: tuple[str, ...] = ()
    repeated: tuple[str, ...] = ()
    out_of_order: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.skipped or self.repeated or self.out_of_order or self.unexpected)

    def as_dict(self) -> dict[str, list[str]]:
        return {"skipped": list(self.skipped), "repeated": list(self.repeated),
                "out_of_order": list(self.out_of_order), "unexpected": list(self.unexpected)}


def deviations(journey: Sequence[str], designed: DesignedJourney) -> Deviations:
    """Deviations of one journey from the designed journey (definitions in the module doc).

    Each stage is listed once per kind, in designed order (unexpected: in order of appearance).
    """
    position = {stage: i for i, stage in enumerate(designed.stages)}
    seen: set[str] = set()
    repeated: set[str] = set()
    out_of_order: set[str] = set()
    unexpected: list[str] = []
    furthest = -1
    for activity in journey:
        if activity not in position:
            if activity not in unexpected:
                unexpected.append(activity)
            continue
        i = position[activity]
        if activity in seen:
            repeated.add(activity)
            continue
        seen.add(activity)
        if i < furthest:
            out_of_order.add(activity)
        furthest = max(furthest, i)
    skipped = [s for s in designed.stages[: furthest + 1]
               if s not in seen and s not in designed.optional]
    order = designed.stages
    return Deviations(
        skipped=tuple(skipped),
        repeated=tuple(s for s in order if s in repeated),
        out_of_order=tuple(s for s in order if s in out_of_order),
        unexpected=tuple(unexpected),
    )


@dataclass(frozen=True)
class VariantConformance:
    activities: tuple[str, ...]
    count: int
    fitness: float
    is_fit: bool
    missing_tokens: int
    consumed_tokens: int
    remaining_tokens: int
    produced_tokens: int
    deviations: Deviations | None = None


@dataclass(frozen=True)
class Conformance:
    log_fitness: float
    fitting_cases_share: float
    average_case_fitness: float
    variants: list[VariantConformance] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "log_fitness": self.log_fitness,
            "fitting_cases_share": self.fitting_cases_share,
            "average_case_fitness": self.average_case_fitness,
            "variants": [
                {"activities": list(v.activities), "count": v.count, "fitness": v.fitness,
                 "is_fit": v.is_fit,
                 "deviations": v.deviations.as_dict() if v.deviations else None}
                for v in self.variants
            ],
        }


# pm4py's token replay constants (TechnicalParameters in its token_replay module)
_TBR_MAX_REC_DEPTH = 50
_TBR_MAX_IT_FINAL1 = 5
_TBR_MAX_IT_FINAL2 = 5
_TBR_MAX_REC_DEPTH_HIDTRANSENABL = 2


def _consumed(t: Any) -> int:
    return sum(a.weight for a in t.in_arcs)


def _produced(t: Any) -> int:
    return sum(a.weight for a in t.out_arcs)


def _paths_between(marking_places: Iterable[Any], targets: Iterable[Any],
                   shortest: Mapping[Any, Any]) -> list[Any]:
    """Hidden-transition paths from the marked places to the target places, shortest first
    (pm4py's get_hidden_transitions_to_enable / get_req_transitions_for_final_marking)."""
    found = []
    targets = sorted(targets, key=lambda x: x.name)
    for p1 in sorted(marking_places, key=lambda x: x.name):
        for p2 in targets:
            if p1 in shortest and p2 in shortest[p1]:
                found.append(shortest[p1][p2])
    return sorted(found, key=len)


class _TokenReplay:
    """pm4py's token-based replay of one trace (`token_replay.apply_trace` of pm4py 2.7.23 with
    the defaults of `pm4py.fitness_token_based_replay`: no caches, hidden transitions walked,
    remaining tokens counted), computed step by step and memoised.

    In that algorithm the handling of one event depends only on the current marking (in its
    insertion order, which the hidden-transition search reads) and the event's activity; the
    bookkeeping it carries along (fired transitions, visited markings) only grows and is never
    read back, and the closing phase (reaching the final marking through hidden transitions,
    counting remaining and missing tokens) depends only on the last marking. So each (marking,
    activity) step and each closing marking is computed once, and a trace is a walk through
    those memo tables: identical token counts, a fraction of the work. The steps are pm4py's
    code, transcribed (its token_replay module drags in scipy, which costs more CPU than the
    replay itself); tests/transforms/test_mining_fast_paths.py checks them against pm4py
    trace by trace.
    """

    def __init__(self, net: Any, initial_marking: Any, final_marking: Any) -> None:
        self._sem = _pm4py("semantics")
        self.net, self.im, self.fm = net, initial_marking, final_marking
        self.shortest = _pm4py("petri_utils").get_places_shortest_path_by_hidden(
            net, _TBR_MAX_REC_DEPTH)
        self.trans_map = {}
        for t in sorted(net.transitions, key=lambda x: x.name):
            self.trans_map[t.label] = t
        self._ids: dict[tuple, int] = {}
        self._markings: list[Any] = []
        self._steps: dict[tuple[int, str], tuple[int, int, int, int]] = {}
        self._ends: dict[int, tuple[int, int, int, int]] = {}
        self.start = self._state(copy(initial_marking))

    def _state(self, marking: Any) -> int:
        key = tuple((id(p), n) for p, n in marking.items())
        state = self._ids.get(key)
        if state is None:
            state = self._ids[key] = len(self._markings)
            self._markings.append(marking)
        return state

    def _enable_hidden(self, marking: Any, fired: list[Any], visited: set[Any],
                       paths: list[Any], t: Any) -> Any:
        """pm4py's enable_hidden_transitions (non-exhaustive)."""
        sem, net = self._sem, self.net
        j_indexes = [0] * len(paths)
        for z in range(10000000):
            something_changed = False
            zz = z % len(paths)
            for _ in range(j_indexes[zz], len(paths[zz])):
                t3 = paths[zz][j_indexes[zz]]
                if t3 != t and sem.is_enabled(t3, net, marking) and t3 not in visited:
                    marking = sem.execute(t3, net, marking)
                    fired.append(t3)
                    visited.add(t3)
                    something_changed = True
                j_indexes[zz] += 1
                if sem.is_enabled(t, net, marking):
                    break
            if sem.is_enabled(t, net, marking) or not something_changed:
                break
        return marking

    def _apply_hidden(self, t: Any, marking: Any, fired: list[Any], depth: int,
                      visited: set[Any]) -> Any:
        """pm4py's apply_hidden_trans: fire hidden transitions to enable `t`."""
        sem, net = self._sem, self.net
        if depth >= _TBR_MAX_REC_DEPTH_HIDTRANSENABL or t in visited:
            return marking
        visited.add(t)
        marking_at_start = copy(marking)
        missing_places = set()
        for a in t.in_arcs:
            if marking[a.source] < a.weight:
                missing_places.add(a.source)
        paths = _paths_between(marking, missing_places, self.shortest)
        if paths:
            marking = self._enable_hidden(marking, fired, visited, paths, t)
            if not sem.is_enabled(t, net, marking):
                paths = _paths_between(marking, missing_places, self.shortest)
                for path in paths:
                    for t4 in path:
                        if t4 != t and t4 not in visited:
                            if not sem.is_enabled(t4, net, marking):
                                marking = self._apply_hidden(t4, marking, fired, depth + 1,
                                                             visited)
                            if sem.is_enabled(t4, net, marking):
                                marking = sem.execute(t4, net, marking)
                                fired.append(t4)
                                visited.add(t4)
            if not sem.is_enabled(t, net, marking) and not (marking_at_start == marking):
                marking = self._apply_hidden(t, marking, fired, depth + 1, visited)
        return marking

    def _step(self, state: int, activity: str) -> tuple[int, int, int, int]:
        """(next state, consumed, produced, missing) of one event: the loop body of
        `apply_trace` under the defaults."""
        sem, net = self._sem, self.net
        marking = copy(self._markings[state])
        consumed = produced = missing = 0
        if activity in self.trans_map:
            enabled = [x for x in sem.enabled_transitions(net, marking) if x.label == activity]
            t = enabled[0] if enabled else self.trans_map[activity]
            if not sem.is_enabled(t, net, marking):
                fired: list[Any] = []
                marking = self._apply_hidden(t, copy(marking), fired, 0, set())
                for hidden in fired:
                    consumed += _consumed(hidden)
                    produced += _produced(hidden)
            if not sem.is_enabled(t, net, marking):
                for a in t.in_arcs:  # add the missing tokens
                    if marking[a.source] < a.weight:
                        missing += a.weight - marking[a.source]
                        marking[a.source] = marking[a.source] + a.weight
            consumed += _consumed(t)
            produced += _produced(t)
            if sem.is_enabled(t, net, marking):
                marking = sem.execute(t, net, marking)
        return self._state(marking), consumed, produced, missing

    def _end(self, state: int) -> tuple[int, int, int, int]:
        """(consumed, produced, missing, remaining) of the closing phase of `apply_trace`."""
        sem, net, fm = self._sem, self.net, self.fm
        marking = copy(self._markings[state])
        consumed = produced = 0

        def done(m: Any) -> bool:  # pm4py's break_condition_final_marking
            return set(fm.keys()).issubset(set(m.keys()))

        for _ in range(_TBR_MAX_IT_FINAL1):
            if done(marking):
                break
            for group in _paths_between(marking, fm, self.shortest):
                for t in group:
                    if sem.is_enabled(t, net, marking):
                        marking = sem.execute(t, net, marking)
                        consumed += _consumed(t)
                        produced += _produced(t)
                if done(marking):
                    break
        if not done(marking) and len(fm) == 1:
            sink = list(fm)[0]
            connections = sorted(
                ([p, self.shortest[p][sink]] for p in marking
                 if p in self.shortest and sink in self.shortest[p]),
                key=lambda x: len(x[1]))
            for _ in range(_TBR_MAX_IT_FINAL2):
                for _place, path in connections:
                    for t in path:
                        if not sem.is_enabled(t, net, marking):
                            break
                        marking = sem.execute(t, net, marking)
                        consumed += _consumed(t)
                        produced += _produced(t)
        missing = sum(max(0, fm[p] - marking[p]) for p in fm)
        remaining = 0
        for p in marking:
            remaining += max(0, marking[p] - fm[p]) if p in fm else marking[p]
        consumed += sum(fm[p] for p in fm)
        return consumed, produced, missing, remaining

    def replay(self, activities: Sequence[str]) -> dict[str, Any]:
        """pm4py's result fields for one trace: trace_is_fit, trace_fitness and the four token
        counts."""
        state = self.start
        consumed, produced, missing = 0, sum(self.im[p] for p in self.im), 0
        for activity in activities:
            key = (state, activity)
            step = self._steps.get(key)
            if step is None:
                step = self._steps[key] = self._step(state, activity)
            state, c, p, m = step
            consumed, produced, missing = consumed + c, produced + p, missing + m
        end = self._ends.get(state)
        if end is None:
            end = self._ends[state] = self._end(state)
        c, p, m_final, remaining = end
        is_fit = missing == 0 and remaining == 0  # decided before the final marking's misses
        consumed, produced, missing = consumed + c, produced + p, missing + m_final
        fitness = 1.0
        if consumed > 0 and produced > 0:
            fitness = (0.5 * (1.0 - float(missing) / float(consumed))
                       + 0.5 * (1.0 - float(remaining) / float(produced)))
        return {"trace_is_fit": is_fit, "trace_fitness": fitness, "missing_tokens": missing,
                "consumed_tokens": consumed, "remaining_tokens": remaining,
                "produced_tokens": produced}


def replay_variants(variants: Iterable[Sequence[str]], net: Any, initial_marking: Any,
                    final_marking: Any) -> list[dict[str, Any]]:
    """pm4py's token-based replay result (fitness, fit flag, token counts) of each trace."""
    replayer = _TokenReplay(net, initial_marking, final_marking)
    return [replayer.replay(acts) for acts in variants]


def conformance(variant_counts: VariantCounts,
                designed: DesignedJourney | str | Any) -> Conformance:
    """Token-based replay of one trace per variant, weighted by the variant counts.

    `designed` is a `DesignedJourney` (then deviations are reported per variant), a process
    tree string, a pm4py ProcessTree or a (net, initial marking, final marking) triple.
    Log fitness = ½(1 − Σn·missing/Σn·consumed) + ½(1 − Σn·remaining/Σn·produced), which is
    pm4py's token-based replay fitness on the full log. The replay is `replay_variants`.
    """
    journey = designed if isinstance(designed, DesignedJourney) else None
    net, im, fm = to_petri_net(designed.tree() if journey else designed)
    items = sorted(((tuple(k), int(n)) for k, n in variant_counts.items() if n > 0),
                   key=lambda kv: (-kv[1], kv[0]))
    replayed = replay_variants((acts for acts, _ in items), net, im, fm)

    results = []
    totals = Counter()
    for (acts, n), r in zip(items, replayed, strict=True):
        results.append(VariantConformance(
            activities=acts, count=n, fitness=float(r["trace_fitness"]),
            is_fit=bool(r["trace_is_fit"]), missing_tokens=int(r["missing_tokens"]),
            consumed_tokens=int(r["consumed_tokens"]),
            remaining_tokens=int(r["remaining_tokens"]),
            produced_tokens=int(r["produced_tokens"]),
            deviations=deviations(acts, journey) if journey else None,
        ))
        for key in ("missing_tokens", "consumed_tokens", "remaining_tokens", "produced_tokens"):
            totals[key] += n * int(r[key])
        totals["cases"] += n
        totals["fit"] += n * bool(r["trace_is_fit"])
        totals["fitness"] += n * float(r["trace_fitness"])
    log_fitness = 0.0
    if totals["consumed_tokens"] > 0 and totals["produced_tokens"] > 0:
        log_fitness = (0.5 * (1 - totals["missing_tokens"] / totals["consumed_tokens"])
                       + 0.5 * (1 - totals["remaining_tokens"] / totals["produced_tokens"]))
    cases = totals["cases"] or 1
    return Conformance(
        log_fitness=log_fitness,
        fitting_cases_share=totals["fit"] / cases,
        average_case_fitness=totals["fitness"] / cases,
        variants=results,
    )
