"""The journey map: stages, the rules that put events in them, segments and metric roles.

`load_journey_map(path)` reads the YAML file (default: data/sample/journey_map.yaml) and
validates all of it before anything runs; every mistake raises
`ConfigError(path, key, problem, fix)` with the dotted key (`stages[2].rules[0].event_name`).

Rules become SQL predicates over the `events` table with `rule_sql(rule, params)`: columns come
only from the known `events` columns (and are quoted), values only as named parameters.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from transforms.durations import DurationError, parse_duration
from transforms.errors import ConfigError
from transforms.sqlutil import Params, ident

OPERATORS = ("eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "is_null")
METRIC_ROLES = (
    "install", "campaign_click", "campaign_impression", "offer_view", "booking_created",
    "booking_completed", "booking_cancelled", "booking_no_show", "review",
    "payment_initiated", "payment_succeeded", "payment_failed", "payment_refunded",
    "app_activity",
)
# The groups of per-stage metrics (stage_metrics) and the stage each sits on: named in the map's
# `metric_stages`, never found by a stage's position. `purchase` defaults to the conversion stage
# and `repeat` to the derived repeat stage; a group with no stage is left out.
METRIC_STAGE_GROUPS = ("discovery", "consideration", "decision", "purchase", "service", "repeat")
DERIVED_SEGMENTS = ("new_vs_returning",)
# Columns of `journeys` that a segment name must not shadow.
RESERVED_JOURNEY_COLUMNS = (
    "customer_id", "is_identified", "entry_ts", "entry_date", "window_end_ts", "furthest_stage",
    "furthest_stage_index", "stages_reached", "converted", "reached_last_stage",
    "skipped_stages", "complete",
)
_SEGMENT_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PROPERTY_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")

TOP_KEYS = (
    "version", "conversion_window", "conversion_stage", "stages", "segments", "repeat_horizons",
    "metric_events", "metric_stages", "low_rating_max", "session_gap_minutes", "anomaly",
    "purchase", "payment_segments",
)
STAGE_KEYS = ("name", "description", "optional", "window", "occurrence", "rules", "touchpoints",
              "pains")
OCCURRENCES = ("all", "first")
RULE_KEYS = ("source", "event_name", "where", "properties")
REPEAT_KEYS = ("repeat_of", "distinct_by", "min_occurrence", "cancelled_by")


@dataclass(frozen=True)
class Condition:
    """One condition on a column (or a `properties` key): `op` is one of OPERATORS."""

    column: str
    op: str
    value: Any
    is_property: bool = False


@dataclass(frozen=True)
class Rule:
    """Events of `source` (named one of `event_names`, if given) meeting every condition."""

    source: str
    event_names: tuple[str, ...] | None = None
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class RepeatRule:
    """Derived stage: the `min_occurrence`-th and later distinct `distinct_by` values of the
    customer's `repeat_of` stage events, ignoring values that have a `cancelled_by` event."""

    repeat_of: str
    distinct_by: str = "booking_id"
    min_occurrence: int = 2
    cancelled_by: Rule | None = None


@dataclass(frozen=True)
class PurchaseRule:
    """What a purchase is: an event matching `event`, once per distinct `key` value (an order
    or booking) at its first such event; a key with a `cancelled_by` event (a refund) does not
    count."""

    event: Rule | None
    key: str
    cancelled_by: Rule | None = None


@dataclass(frozen=True)
class Pain:
    name: str
    rule: Rule
    reason_column: str | None = None


@dataclass(frozen=True)
class Stage:
    name: str
    index: int  # 1-based position
    description: str = ""
    optional: bool = False
    rules: tuple[Rule, ...] = ()
    repeat: RepeatRule | None = None
    touchpoints: tuple[str, ...] = ()
    pains: tuple[Pain, ...] = ()
    # `window:` seconds allowed from the previous required stage being reached (required stages
    # after the first only); None: only the conversion window from the entry applies
    window_seconds: int | None = None
    # `occurrence: first`: in the stage paths (mining) only the customer's first visit of the
    # stage is a step; later visits are returns (table stage_returns), not path steps
    occurrence: str = "all"


@dataclass(frozen=True)
class Segment:
    name: str
    column: str | None = None
    derived: str | None = None
    new_when: Rule | None = None


@dataclass(frozen=True)
class JourneyMap:
    path: str
    stages: tuple[Stage, ...]
    window_seconds: int
    conversion_stage: str
    segments: tuple[Segment, ...]
    repeat_horizons: tuple[int, ...]
    metric_events: dict[str, Rule] = field(default_factory=dict)
    session_gap_minutes: float = 30.0
    metric_stages: dict[str, str] = field(default_factory=dict)  # group -> stage name
    low_rating_max: int | None = None  # ratings at or below it are low
    purchase: PurchaseRule | None = None
    # events columns payment outcomes are broken down by in the findings (each payment event's
    # own value); default: the columns of the column segments
    payment_segments: tuple[str, ...] = ()

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    @property
    def required_stages(self) -> list[Stage]:
        return [s for s in self.stages if not s.optional]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def rule_sql(rule: Rule, params: Params, alias: str = "") -> str:
    """The rule as a SQL predicate over `events` (optionally `alias.`-qualified); its values
    are added to `params`."""
    pre = f"{alias}." if alias else ""
    parts = [f"{pre}source = {params.add(rule.source)}"]
    if rule.event_names is not None:
        marks = ", ".join(params.add(n) for n in rule.event_names)
        parts.append(f"{pre}event_name IN ({marks})")
    for cond in rule.conditions:
        if cond.is_property:
            col = f"json_extract_string({pre}properties, {params.add('$.' + cond.column)})"
        else:
            col = pre + ident(cond.column)
        parts.append(_condition_sql(col, cond, params))
    return "(" + " AND ".join(parts) + ")"


def _condition_sql(col: str, cond: Condition, params: Params) -> str:
    value = cond.value
    if cond.is_property and cond.op != "is_null":
        value = [str(v) for v in value] if isinstance(value, list) else str(value)
    if cond.op == "is_null":
        return f"{col} IS NULL" if value else f"{col} IS NOT NULL"
    if cond.op in ("in", "not_in"):
        marks = ", ".join(params.add(v) for v in value)
        neg = "NOT " if cond.op == "not_in" else ""
        return f"coalesce({col} {neg}IN ({marks}), false)"
    sym = {"eq": "=", "ne": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[cond.op]
    return f"coalesce({col} {sym} {params.add(value)}, false)"


# --------------------------------------------------------------------------------------------
# loading and validation


@dataclass(frozen=True)
class Vocabulary:
    """What rules may name: the configured sources and the columns of the `events` table (from
    sources.yaml). Without one, any plain name is accepted (unit tests of the map alone)."""

    sources: tuple[str, ...]
    columns: tuple[str, ...]


def load_journey_map(path: str | Path, vocabulary: Vocabulary | None = None) -> JourneyMap:
    """Read and validate the journey map YAML at `path` against the project's sources and
    events columns."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "(file)", "the journey map file does not exist",
                          "create it (copy data/sample/journey_map.yaml) or fix the path") from None
    except IsADirectoryError:
        raise ConfigError(path, "(file)", "is a folder, not a journey map file",
                          "set journey_map in sources.yaml to the YAML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, "(file)", f"is not UTF-8 text (byte 0x{exc.object[exc.start]:02x}"
                          f" at offset {exc.start})", "save the journey map as UTF-8") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(path, "(file)", f"YAML syntax error{where}: {problem}",
                          "fix the indentation/quoting on that line (YAML uses spaces, "
                          "and values with ':' or '#' need quotes)") from None
    return parse_journey_map(doc, path, vocabulary)


def parse_journey_map(doc: Any, path: str | Path = "<journey map>",
                      vocabulary: Vocabulary | None = None) -> JourneyMap:
    """Validate an already-parsed journey map document."""
    v = _Validator(str(path), vocabulary)
    return v.parse(doc)


_PLAIN_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class _Validator:
    def __init__(self, path: str, vocabulary: Vocabulary | None = None) -> None:
        self.path = path
        self.vocabulary = vocabulary

    def fail(self, key: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(self.path, key, problem, fix)

    def mapping(self, value: Any, key: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping (key: value), got {_kind(value)}",
                            "write it as indented `key: value` lines")
        return value

    def no_unknown(self, value: dict, allowed: tuple[str, ...], key: str) -> None:
        for k in value:
            if k not in allowed:
                prefix = f"{key}." if key else ""
                raise self.fail(f"{prefix}{k}", f"unknown key '{k}'",
                                f"use one of: {', '.join(allowed)} (check the spelling)")

    def name_list(self, value: Any, key: str) -> tuple[str, ...]:
        items = value if isinstance(value, list) else [value]
        if not items:
            raise self.fail(key, "empty list", "name at least one value or remove the key")
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item.strip():
                k = f"{key}[{i}]" if isinstance(value, list) else key
                raise self.fail(k, f"expected a non-empty text value, got {_kind(item)}",
                                "write the name as text, e.g. payment_succeeded")
        return tuple(items)

    def column(self, value: Any, key: str, what: str = "column") -> str:
        known = self.vocabulary.columns if self.vocabulary else None
        if not isinstance(value, str) or (value not in known if known is not None
                                          else not _PLAIN_NAME.match(value)):
            raise self.fail(key, f"unknown {what} '{value}' (not a column of the events table)",
                            f"use one of: {', '.join(known)} (events.columns in sources.yaml "
                            "lists them)" if known else "name a column of the events table")
        return value

    # -- top level --------------------------------------------------------------------------
    def parse(self, doc: Any) -> JourneyMap:
        if doc is None:
            raise self.fail("(file)", "the file is empty",
                            "start from data/sample/journey_map.yaml")
        doc = self.mapping(doc, "(file)")
        self.no_unknown(doc, TOP_KEYS, "")
        if doc.get("version", 1) != 1:
            raise self.fail("version", f"unsupported version {doc.get('version')!r}",
                            "set version: 1")
        if "stages" not in doc:
            raise self.fail("stages", "missing", "list the journey stages under `stages:`")
        stages_doc = doc["stages"]
        if not isinstance(stages_doc, list) or not stages_doc:
            raise self.fail("stages", "expected a non-empty list of stages",
                            "add `- name: ...` entries with rules under `stages:`")
        stages: list[Stage] = []
        seen: dict[str, tuple[int, str]] = {}
        for i, sdoc in enumerate(stages_doc):
            stage = self.stage(sdoc, i, seen)
            seen[stage.name.lower()] = (i, stage.name)
            stages.append(stage)
        names = [s.name for s in stages]
        if stages[0].optional:
            raise self.fail("stages[0].optional", "the first stage cannot be optional",
                            "remove `optional: true` from the first stage (it is the entry)")
        if stages[0].repeat is not None:
            raise self.fail("stages[0].rules[0].repeat_of",
                            "the first stage cannot be a derived repeat stage",
                            "make the first stage match events directly")
        for i, st in enumerate(stages):
            if st.optional and st.repeat is not None:
                raise self.fail(f"stages[{i}].optional", "a derived repeat stage cannot be "
                                "optional", "remove `optional: true`")

        window = self.window(doc.get("conversion_window", "30d"), "conversion_window")
        conv = doc.get("conversion_stage", names[-1])
        if conv not in names:
            raise self.fail("conversion_stage", f"unknown stage '{conv}'",
                            f"use one of the stage names: {', '.join(names)}")
        segments = self.segments(doc.get("segments", {}))
        # journeys_wide is journeys plus one column per stage: a stage must not take the name
        # of a journeys column (DuckDB compares names ignoring case and would rename it)
        taken = {c.lower(): c for c in (*RESERVED_JOURNEY_COLUMNS, *(s.name for s in segments))}
        for i, st in enumerate(stages):
            if st.name.lower() in taken:
                raise self.fail(f"stages[{i}].name", f"stage name '{st.name}' is also the name "
                                f"of the journeys column '{taken[st.name.lower()]}' (names are "
                                "compared ignoring case), so its journeys_wide column would be "
                                "renamed", "rename the stage, e.g. add a word to it")
        horizons = self.horizons(doc.get("repeat_horizons", [30, 60, 90]))
        roles = self.metric_events(doc.get("metric_events", {}))
        gap = doc.get("session_gap_minutes", 30)
        if not _is_number(gap) or gap <= 0:
            raise self.fail("session_gap_minutes", f"expected a positive number, got {gap!r}",
                            "set e.g. session_gap_minutes: 30")
        if "anomaly" in doc:
            raise self.fail("anomaly", "is no longer read: the odd days are the findings' "
                            "windows (table findings), which need no threshold",
                            "delete the anomaly: block")
        metric_stages = self.metric_stages(doc.get("metric_stages", {}), stages, conv)
        purchase = self.purchase(doc.get("purchase"), roles, stages)
        low = doc.get("low_rating_max")
        if low is not None and (not isinstance(low, int) or isinstance(low, bool)):
            raise self.fail("low_rating_max", f"expected a whole number, got {low!r}",
                            "set e.g. low_rating_max: 2 (ratings 1-2 are low), or leave it out "
                            "when your data has no ratings")
        return JourneyMap(
            path=self.path, stages=tuple(stages), window_seconds=window, conversion_stage=conv,
            segments=segments, repeat_horizons=horizons, metric_events=roles,
            session_gap_minutes=float(gap), metric_stages=metric_stages, low_rating_max=low,
            purchase=purchase,
            payment_segments=self.payment_segments(doc.get("payment_segments"), segments),
        )

    def payment_segments(self, value: Any, segments: tuple[Segment, ...]) -> tuple[str, ...]:
        """`payment_segments`: a list of events columns (default: the column segments')."""
        if value is None:
            return tuple(dict.fromkeys(s.column for s in segments if s.column))
        if not isinstance(value, list):
            raise self.fail("payment_segments", f"expected a list of events columns, got "
                            f"{value!r}", "write e.g. payment_segments: [platform, method]")
        cols = [self.column(c, f"payment_segments[{i}]", "payment segment column")
                for i, c in enumerate(value)]
        for i, c in enumerate(cols):
            if c in ("event_ts", "event_date", "event_id", "customer_id", "amount"):
                raise self.fail(f"payment_segments[{i}]", f"'{c}' cannot be a segment (one "
                                "value per event)", "pick a categorical column such as method")
        return tuple(dict.fromkeys(cols))

    def purchase(self, value: Any, roles: dict[str, Rule],
                 stages: list[Stage]) -> PurchaseRule | None:
        """The `purchase` block; without it, the `payment_succeeded` and `payment_refunded`
        metric events per distinct key of the repeat stage (else booking_id)."""
        repeat = next((s.repeat for s in stages if s.repeat is not None), None)
        default_key = repeat.distinct_by if repeat else "booking_id"
        if value is None:
            if "payment_succeeded" not in roles:
                return None
            return PurchaseRule(roles["payment_succeeded"], default_key,
                                roles.get("payment_refunded"))
        value = self.mapping(value, "purchase")
        self.no_unknown(value, ("event", "key", "cancelled_by"), "purchase")
        if "event" not in value:
            raise self.fail("purchase.event", "missing", "add event: {source: orders} (the "
                            "event that is a purchase)")
        event = self.rule(value["event"], "purchase.event")
        key = self.column(value.get("key", default_key), "purchase.key", "purchase key column")
        cancelled = (self.rule(value["cancelled_by"], "purchase.cancelled_by")
                     if value.get("cancelled_by") is not None else None)
        return PurchaseRule(event, key, cancelled)

    def metric_stages(self, value: Any, stages: list[Stage], conv: str) -> dict[str, str]:
        value = self.mapping(value or {}, "metric_stages")
        self.no_unknown(value, METRIC_STAGE_GROUPS, "metric_stages")
        names = {s.name.lower(): s.name for s in stages}
        out = {"purchase": conv}
        repeat = next((s.name for s in stages if s.repeat is not None), None)
        if repeat is not None:
            out["repeat"] = repeat
        for group, name in value.items():
            if name is None:
                out.pop(group, None)
                continue
            if not isinstance(name, str) or name.lower() not in names:
                raise self.fail(f"metric_stages.{group}", f"unknown stage {name!r}",
                                f"use one of the stage names: {', '.join(names.values())}")
            out[group] = names[name.lower()]
        return {g: out[g] for g in METRIC_STAGE_GROUPS if g in out}

    def window(self, value: Any, key: str) -> int:
        try:
            return parse_duration(value)
        except DurationError as exc:
            raise self.fail(key, exc.problem, exc.fix) from None

    # -- stages -----------------------------------------------------------------------------
    def stage(self, sdoc: Any, i: int, seen: dict[str, tuple[int, str]]) -> Stage:
        key = f"stages[{i}]"
        sdoc = self.mapping(sdoc, key)
        self.no_unknown(sdoc, STAGE_KEYS, key)
        name = sdoc.get("name")
        if not isinstance(name, str) or not name.strip() or name != name.strip() \
                or len(name) > 63:
            raise self.fail(f"{key}.name", f"expected a stage name (text, 1-63 characters, no "
                            f"surrounding spaces), got {name!r}", "give the stage a name")
        if "'" in name:
            raise self.fail(f"{key}.name", f"stage name {name!r} contains a single quote ('), "
                            "which the process model written by mining cannot hold",
                            "rename the stage without it, e.g. write ’ (a typographic "
                            "apostrophe) instead")
        if name.lower() in seen:
            raise self.fail(f"{key}.name", f"duplicate stage '{name}' (also stages"
                            f"[{seen[name.lower()][0]}]; names are compared ignoring case)",
                            "give each stage a unique name or merge their rules")
        optional = sdoc.get("optional", False)
        if not isinstance(optional, bool):
            raise self.fail(f"{key}.optional", f"expected true or false, got {optional!r}",
                            "write optional: true or leave it out")
        description = sdoc.get("description", "") or ""
        occurrence = sdoc.get("occurrence", "all")
        if occurrence not in OCCURRENCES:
            raise self.fail(f"{key}.occurrence", f"expected first or all, got {occurrence!r}",
                            "write occurrence: first (only the first visit is a path step) "
                            "or leave it out")
        window = None
        if "window" in sdoc:
            if i == 0:
                raise self.fail(f"{key}.window", "the first stage cannot have a window: a "
                                "stage window is the time from the previous required stage",
                                "remove `window:` from the first stage (conversion_window "
                                "counts from it)")
            if optional:
                raise self.fail(f"{key}.window", "an optional stage cannot have a window: a "
                                "stage window is the time a required stage may take from the "
                                "previous required stage",
                                "remove `window:` or put it on the next required stage")
            window = self.window(sdoc["window"], f"{key}.window")
        rules_doc = sdoc.get("rules")
        if not isinstance(rules_doc, list) or not rules_doc:
            raise self.fail(f"{key}.rules", "empty rules: a stage needs at least one rule",
                            "add e.g. `rules: [{source: clickstream, event_name: app_opened}]`")
        rules: list[Rule] = []
        repeat: RepeatRule | None = None
        for j, rdoc in enumerate(rules_doc):
            rkey = f"{key}.rules[{j}]"
            if isinstance(rdoc, dict) and "repeat_of" in rdoc:
                if len(rules_doc) != 1:
                    raise self.fail(rkey, "a repeat_of rule must be the stage's only rule",
                                    "move the other rules to another stage")
                repeat = self.repeat_rule(rdoc, rkey, seen)
            else:
                rules.append(self.rule(rdoc, rkey))
        touch = sdoc.get("touchpoints", []) or []
        if not isinstance(touch, list):
            raise self.fail(f"{key}.touchpoints", "expected a list of columns",
                            "write e.g. touchpoints: [screen, channel, source]")
        touchpoints = tuple(self.column(c, f"{key}.touchpoints[{k}]", "touchpoint column")
                            for k, c in enumerate(touch))
        pains_doc = sdoc.get("pains", []) or []
        if not isinstance(pains_doc, list):
            raise self.fail(f"{key}.pains", "expected a list of pains",
                            "write `- name: ..., rule: {...}` entries")
        pains: list[Pain] = []
        for k, pdoc in enumerate(pains_doc):
            pkey = f"{key}.pains[{k}]"
            pdoc = self.mapping(pdoc, pkey)
            self.no_unknown(pdoc, ("name", "rule", "reason_column"), pkey)
            pname = pdoc.get("name")
            if not isinstance(pname, str) or not pname.strip():
                raise self.fail(f"{pkey}.name", "missing pain name", "add name: <text>")
            if "rule" not in pdoc:
                raise self.fail(f"{pkey}.rule", "missing rule",
                                "add rule: {source: ..., event_name: ...}")
            prule = self.rule(pdoc["rule"], f"{pkey}.rule")
            reason = pdoc.get("reason_column")
            if reason is not None:
                reason = self.column(reason, f"{pkey}.reason_column", "reason column")
            pains.append(Pain(pname, prule, reason))
        return Stage(name=name, index=i + 1, description=str(description), optional=optional,
                     rules=tuple(rules), repeat=repeat, touchpoints=touchpoints,
                     pains=tuple(pains), window_seconds=window, occurrence=occurrence)

    def rule(self, rdoc: Any, key: str) -> Rule:
        rdoc = self.mapping(rdoc, key)
        self.no_unknown(rdoc, RULE_KEYS, key)
        source = rdoc.get("source")
        sources = self.vocabulary.sources if self.vocabulary else None
        if source is None:
            raise self.fail(f"{key}.source", "missing source",
                            f"add source: one of {', '.join(sources)}" if sources
                            else "add source: <a source name from sources.yaml>")
        if not isinstance(source, str) or (source not in sources if sources is not None
                                           else not _PLAIN_NAME.match(source)):
            raise self.fail(f"{key}.source", f"unknown source '{source}'",
                            f"use one of: {', '.join(sources)}" if sources
                            else "name a source defined in sources.yaml")
        names = None
        if "event_name" in rdoc:
            names = self.name_list(rdoc["event_name"], f"{key}.event_name")
        conds: list[Condition] = []
        where = self.mapping(rdoc.get("where", {}) or {}, f"{key}.where")
        for col, spec in where.items():
            ckey = f"{key}.where.{col}"
            self.column(col, ckey)
            conds.extend(self.conditions(col, spec, ckey, is_property=False))
        props = self.mapping(rdoc.get("properties", {}) or {}, f"{key}.properties")
        for pk, spec in props.items():
            ckey = f"{key}.properties.{pk}"
            if not isinstance(pk, str) or not _PROPERTY_KEY.match(pk):
                raise self.fail(ckey, f"property key {pk!r} is not a plain name",
                                "use letters, digits and _ only (top-level properties keys)")
            conds.extend(self.conditions(pk, spec, ckey, is_property=True))
        return Rule(source=source, event_names=names, conditions=tuple(conds))

    def conditions(self, col: str, spec: Any, key: str, is_property: bool) -> list[Condition]:
        if isinstance(spec, list):
            return [Condition(col, "in", self.scalars(spec, key), is_property)]
        if not isinstance(spec, dict):
            self.scalar(spec, key)
            return [Condition(col, "eq", spec, is_property)]
        if not spec:
            raise self.fail(key, "empty condition", "write e.g. {lte: 2} or a plain value")
        out = []
        for op, val in spec.items():
            okey = f"{key}.{op}"
            if op not in OPERATORS:
                raise self.fail(okey, f"unknown operator '{op}'",
                                f"use one of: {', '.join(OPERATORS)}")
            if op == "is_null":
                if not isinstance(val, bool):
                    raise self.fail(okey, f"expected true or false, got {val!r}",
                                    "write is_null: true or is_null: false")
            elif op in ("in", "not_in"):
                if not isinstance(val, list):
                    raise self.fail(okey, "expected a list", f"write {op}: [a, b]")
                val = self.scalars(val, okey)
            else:
                self.scalar(val, okey)
            out.append(Condition(col, op, val, is_property))
        return out

    def scalars(self, values: list, key: str) -> list:
        if not values:
            raise self.fail(key, "empty list", "list at least one value")
        for k, val in enumerate(values):
            self.scalar(val, f"{key}[{k}]")
        return list(values)

    def scalar(self, val: Any, key: str) -> None:
        if val is None or isinstance(val, (dict, list)):
            raise self.fail(key, f"expected a single value, got {_kind(val)}",
                            "write a text or number value (use is_null for missing values)")

    def repeat_rule(self, rdoc: dict, key: str,
                    seen: dict[str, tuple[int, str]]) -> RepeatRule:
        self.no_unknown(rdoc, REPEAT_KEYS, key)
        of = rdoc.get("repeat_of")
        if not isinstance(of, str) or of.lower() not in seen:
            raise self.fail(f"{key}.repeat_of", f"unknown stage '{of}' (repeat_of must name an "
                            "earlier stage)", f"use one of: {', '.join(_names(seen)) or '-'}")
        distinct_by = self.column(rdoc.get("distinct_by", "booking_id"), f"{key}.distinct_by")
        nth = rdoc.get("min_occurrence", 2)
        if not isinstance(nth, int) or isinstance(nth, bool) or nth < 2:
            raise self.fail(f"{key}.min_occurrence", f"expected a whole number >= 2, got "
                            f"{nth!r}", "set min_occurrence: 2 (the second purchase)")
        cancelled = None
        if rdoc.get("cancelled_by") is not None:
            cancelled = self.rule(rdoc["cancelled_by"], f"{key}.cancelled_by")
        return RepeatRule(seen[of.lower()][1], distinct_by, nth, cancelled)

    # -- segments, horizons, roles ----------------------------------------------------------
    def segments(self, sdoc: Any) -> tuple[Segment, ...]:
        sdoc = self.mapping(sdoc or {}, "segments")
        out = []
        for name, spec in sdoc.items():
            key = f"segments.{name}"
            if not isinstance(name, str) or not _SEGMENT_NAME.match(name):
                raise self.fail(key, f"segment name {name!r} is not a plain lowercase name",
                                "use lowercase letters, digits and _ (it becomes a column)")
            if name in RESERVED_JOURNEY_COLUMNS:
                raise self.fail(key, f"segment name '{name}' clashes with a journeys column",
                                "rename the segment")
            spec = self.mapping(spec, key)
            self.no_unknown(spec, ("column", "derived", "new_when"), key)
            if "derived" in spec:
                if spec["derived"] not in DERIVED_SEGMENTS:
                    raise self.fail(f"{key}.derived", f"unknown derived segment "
                                    f"'{spec['derived']}'",
                                    f"use one of: {', '.join(DERIVED_SEGMENTS)}")
                if "new_when" not in spec:
                    raise self.fail(f"{key}.new_when", "missing",
                                    "add new_when: {source: clickstream, event_name: "
                                    "app_installed}")
                out.append(Segment(name, derived=spec["derived"],
                                   new_when=self.rule(spec["new_when"], f"{key}.new_when")))
            else:
                if "column" not in spec:
                    raise self.fail(f"{key}.column", "missing column",
                                    "add column: <events column>, e.g. column: platform")
                col = self.column(spec["column"], f"{key}.column", "segment column")
                if col in ("event_ts", "event_date", "event_id", "customer_id", "amount"):
                    raise self.fail(f"{key}.column", f"'{col}' cannot be a segment (one value "
                                    "per event)", "pick a categorical column such as channel")
                out.append(Segment(name, column=col))
        return tuple(out)

    def horizons(self, value: Any) -> tuple[int, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail("repeat_horizons", "expected a non-empty list of days",
                            "write e.g. repeat_horizons: [30, 60, 90]")
        for k, h in enumerate(value):
            if not isinstance(h, int) or isinstance(h, bool) or h <= 0:
                raise self.fail(f"repeat_horizons[{k}]", f"expected a whole number of days > 0, "
                                f"got {h!r}", "write e.g. 30")
        if len(set(value)) != len(value):
            raise self.fail("repeat_horizons", "duplicate horizon", "list each horizon once")
        return tuple(sorted(value))

    def metric_events(self, value: Any) -> dict[str, Rule]:
        value = self.mapping(value or {}, "metric_events")
        self.no_unknown(value, METRIC_ROLES, "metric_events")
        return {role: self.rule(r, f"metric_events.{role}")
                for role, r in value.items() if r is not None}


def _names(seen: dict[str, tuple[int, str]]) -> list[str]:
    return [name for _, name in seen.values()]


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: f"text {value!r}", bool: f"{value}"}.get(
        type(value), f"{type(value).__name__} {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
        value)
