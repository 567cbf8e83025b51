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

All per-event work runs in DuckDB; pm4py only ever sees one trace per variant. The model and
replay use pm4py internals (inductive miner on a variant counter), pinned to pm4py 2.7.23 in
pyproject.toml and checked against pm4py on the full log by tests/transforms/test_mining*.py.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from transforms.errors import UserError
from transforms.sqlutil import ident

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
        try:
            columns = con.table(log).columns
        except duckdb.Error:
            raise UserError(f"no table or view named {log!r} to mine") from None
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
    return con.sql(f"select * from {src} limit 0").columns


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


def variants(con: duckdb.DuckDBPyConnection,
             log: str | duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
    """One row per variant: activities (list), cases, share of cases, median case duration in
    seconds, and — when the log has a `converted` column — converted cases and conversion rate.
    """
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
                   log: str | duckdb.DuckDBPyRelation) -> Counter[tuple[str, ...]]:
    """The variant counter (pm4py's UVCL): activity tuple -> number of cases."""
    rows = con.execute(f"""
        with {_journeys_ctes(con, log)},
        grouped as (select codes, count(*) as cases from journeys group by codes)
        select list_transform(codes, lambda c: names[c]), cases from grouped, names
    """).fetchall()
    return Counter({tuple(acts): n for acts, n in rows})


def dfg(con: duckdb.DuckDBPyConnection,
        log: str | duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
    """One row per directly-follows pair: from, to, count, mean/median/p90 seconds."""
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
                         log: str | duckdb.DuckDBPyRelation | VariantCounts,
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

def _pm4py() -> Any:
    os.environ.setdefault("PM4PY_SHOW_PROGRESS_BAR", "False")
    import pm4py

    return pm4py


def discover_model(variant_counts: VariantCounts, noise_threshold: float = 0.0) -> Any:
    """Inductive miner process tree from a variant counter.

    Same tree as `pm4py.discover_process_tree_inductive(log, noise_threshold)` on the full log:
    plain IM (noise 0) depends only on the set of variants, IMf on their counts too.
    """
    _pm4py()
    from pm4py.algo.discovery.inductive.dtypes.im_ds import IMDataStructureUVCL
    from pm4py.algo.discovery.inductive.variants.im import IMUVCL
    from pm4py.algo.discovery.inductive.variants.imf import IMFUVCL
    from pm4py.objects.process_tree.utils import generic as pt_util

    uvcl = Counter({tuple(k): int(v) for k, v in variant_counts.items() if v > 0})
    parameters = {"noise_threshold": noise_threshold, "multiprocessing": False,
                  "disable_fallthroughs": False}
    miner = IMFUVCL(parameters) if noise_threshold > 0 else IMUVCL(parameters)
    tree = miner.apply(IMDataStructureUVCL(uvcl), parameters)
    tree = pt_util.fold(tree)
    pt_util.tree_sort(tree)
    return tree


def to_petri_net(model: Any) -> tuple[Any, Any, Any]:
    """(net, initial marking, final marking) of a process tree, tree string or Petri net triple."""
    pm4py = _pm4py()
    if isinstance(model, tuple) and len(model) == 3:
        return model
    if isinstance(model, str):
        model = parse_tree(model)
    return pm4py.convert_to_petri_net(model)


def parse_tree(text: str) -> Any:
    """A pm4py process tree from its string form, or UserError."""
    pm4py = _pm4py()
    try:
        return pm4py.parse_process_tree(text)
    except Exception as exc:  # the pm4py parser raises bare AssertionError/IndexError
        raise UserError(f"not a process tree string ({type(exc).__name__}): {text[:80]}") from None


def export_bpmn(model: Any, path: str | Path) -> Path:
    """Write a process tree as BPMN 2.0 XML."""
    pm4py = _pm4py()
    if isinstance(model, str):
        model = parse_tree(model)
    pm4py.write_bpmn(pm4py.convert_to_bpmn(model), str(path), auto_layout=False)
    return Path(path)


def export_pnml(model: Any, path: str | Path) -> Path:
    """Write a process tree (or Petri net triple) as PNML."""
    pm4py = _pm4py()
    net, im, fm = to_petri_net(model)
    pm4py.write_pnml(net, im, fm, str(path))
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


def conformance(variant_counts: VariantCounts,
                designed: DesignedJourney | str | Any) -> Conformance:
    """Token-based replay of one trace per variant, weighted by the variant counts.

    `designed` is a `DesignedJourney` (then deviations are reported per variant), a process
    tree string, a pm4py ProcessTree or a (net, initial marking, final marking) triple.
    Log fitness = ½(1 − Σn·missing/Σn·consumed) + ½(1 − Σn·remaining/Σn·produced), which is
    pm4py's token-based replay fitness on the full log.
    """
    _pm4py()
    from pm4py.algo.conformance.tokenreplay import algorithm as token_replay
    from pm4py.objects.log.obj import Event, EventLog, Trace

    journey = designed if isinstance(designed, DesignedJourney) else None
    net, im, fm = to_petri_net(designed.tree() if journey else designed)
    items = sorted(((tuple(k), int(n)) for k, n in variant_counts.items() if n > 0),
                   key=lambda kv: (-kv[1], kv[0]))
    log = EventLog([Trace([Event({"concept:name": a}) for a in acts]) for acts, _ in items])
    replayed = token_replay.apply(log, net, im, fm, parameters={"show_progress_bar": False})

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
