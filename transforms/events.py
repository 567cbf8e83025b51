"""Unified events: every configured source's records as one `events` table on stitched customers.

Grain: `identity_map` has one row per anonymous id linked to a customer; `events` one row per
loaded source record (all sources with an `event:` block in sources.yaml) on one `customer_id`.
The columns are the core ones (`CORE_EVENT_COLUMNS`) plus the config's `events.columns`, in order.

The rules, each written once here:
- **Event id**: `<source>:<id_columns joined by ':'>` (without id columns `<source>:<file
  name>:<line>`); the same record loaded in two partitions
  (a re-sent row on another day) counts once (earliest event time).
- **Event name**: the source's `event_name` column (with its `prefix`), or a constant.
- **Identity stitching** (transforms/sql/identity_map.sql): an anonymous id belongs to the
  customer whose id first appears on a record carrying that anonymous id; every record of that
  anonymous id, before and after login, is that customer's. Anonymous ids never linked stay
  their own person, `anon:<anonymous_id>`.
- **Lookups**: a source with `event.lookup` takes the listed columns (the customer too) from the
  earliest record (event time, then event id) of the other source with the same `by` value; its
  own value wins where it has one. No such record: the event has no customer (an orphan, kept in
  `events`, left out of journeys).
- **Carry forward**: an event with no value in a `carry_forward` column takes the customer's
  value from their latest event at or before it that has one (of several at that time, the one
  with the largest event id), else from their first (earliest time, then smallest event id).
- **Privacy** (transforms/privacy.py, the config's `privacy:` block): with `pseudonymise`, the
  records' ids (event id after its `<source>:`, customer, anonymous id, the identifier columns
  and JSON keys) are replaced by keyed hashes before anything is stitched, so `identity_map`,
  `events` and every table built on them hold pseudonyms only; listed free-text columns are
  dropped or truncated at the same point.

Values from the files reach SQL as data; names and JSON paths from the validated config are
quoted (`ident`) or bound as parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from transforms.privacy import PrivacyPlan, apply_privacy, privacy_plan
from transforms.sources import EVENT_TYPES, ColumnRef, EventsSchema, ProjectConfig, Source
from transforms.sqlutil import Params, ident, sql_file

EVENT_SQL_TYPES = dict(zip(EVENT_TYPES, ("VARCHAR", "BIGINT", "DECIMAL(18,2)", "JSON"),
                           strict=True))


@dataclass(frozen=True)
class EventsStats:
    events: int
    customers: int
    identified_customers: int
    anonymous_ids_linked: int
    shared_devices: int
    without_customer: int
    by_source: dict[str, int]


def event_sources(cfg: ProjectConfig) -> list[Source]:
    """The sources whose records become events, in config order."""
    return [s for s in cfg.sources.values() if s.event is not None]


def _json_path(path: str) -> str:
    return "$." + ".".join('"' + part.replace('"', '\\"') + '"' for part in path.split("."))


def _ref_sql(ref: ColumnRef, source: Source, sql_type: str, p: Params) -> str:
    """The value of `ref` in raw table rows `r`, cast to `sql_type`."""
    parts = []
    for col in ref.columns:
        head, _, rest = col.partition(".")
        if rest:  # a key inside a json column
            value = f"json_extract_string(r.{ident(head)}, {p.add(_json_path(rest))})"
            parts.append(value if sql_type == "VARCHAR" else f"try_cast({value} as {sql_type})")
        elif sql_type == "JSON" and source.type_of(head) == "json":
            parts.append(f"r.{ident(head)}")
        else:
            parts.append(f"cast(r.{ident(head)} as {sql_type})")
    if ref.default is not None:
        parts.append(f"cast({p.add(ref.default)} as {sql_type})")
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


# a path's file name (after its last / or \), as DuckDB's parse_filename gives it, in a
# pattern both engines' regexp_extract read alike (a parameter: no escaping in SQL text)
FILE_NAME_PATTERN = r"[^/\\]*$"


def _records_sql(source: Source, schema: EventsSchema, p: Params) -> str:
    """One source's raw rows as event records: core columns, the source's own customer, and
    every events attribute column (NULL where the source does not fill it)."""
    ev = source.event
    ids = (", ".join(f"cast(r.{ident(c)} as varchar)" for c in source.id_columns)
           if source.id_columns else  # no record id: the file's name and the line
           f"regexp_extract(r.source_file, {p.add(FILE_NAME_PATTERN)}, 0), "
           "cast(r.source_line as varchar)")
    name = _ref_sql(ev.event_name, source, "VARCHAR", p)
    if ev.event_name_prefix:
        name = f"{p.add(ev.event_name_prefix)} || {name}"
    customer = (_ref_sql(ev.customer, source, "VARCHAR", p) if ev.customer
                else "cast(null as varchar)")
    anon = (_ref_sql(ev.anonymous_id, source, "VARCHAR", p) if ev.anonymous_id
            else "cast(null as varchar)")
    attrs = []
    for col, typ in schema.columns.items():
        sql_type = EVENT_SQL_TYPES[typ]
        ref = ev.columns.get(col)
        value = _ref_sql(ref, source, sql_type, p) if ref else f"cast(null as {sql_type})"
        attrs.append(f"{value} as {ident(col)}")
    return f"""
        select
            {p.add(source.name + ':')} || concat_ws(':', {ids}) as event_id,
            {p.add(source.name)} as source,
            {customer} as own_customer_id,
            {anon} as anonymous_id,
            {name} as event_name,
            r.event_ts,
            {', '.join(attrs)}
        from {ident('raw_' + source.name)} r"""


def _events_sql(cfg: ProjectConfig, sources: list[Source], p: Params) -> str:
    schema = cfg.events
    attrs = list(schema.columns)
    stitched = []
    lookups = []
    # the record columns but the source's own customer (the stitched one replaces it)
    kept = ["event_id", "source", "anonymous_id", "event_name", "event_ts", *attrs]
    for src in sources:
        ev = src.event
        s = p.add(src.name)
        customer = "r.own_customer_id"
        if ev.anonymous_id is not None:
            customer = "coalesce(r.own_customer_id, m.customer_id, 'anon:' || r.anonymous_id)"
        lk = ev.lookup
        if lk is None:
            cols = ", ".join(f"r.{ident(c)}" for c in kept)
            stitched.append(f"select {cols}, {customer} as customer_id "
                            f"from _event_records r left join identity_map m using (anonymous_id) "
                            f"where r.source = {s}")
            continue
        owner = f"owner_{len(lookups)}"
        taken = [c for c in lk.columns if c != "customer_id"]
        picks = ", ".join(
            f"arg_min({ident(c)}, (event_ts, event_id)) as {ident(c)}"
            for c in ("customer_id", *taken))
        lookups.append(f"""{owner} as (
            select {ident(lk.by)} as _key, {picks}
            from stitched where source = {p.add(lk.source)} and {ident(lk.by)} is not null
            group by all
        )""")
        if "customer_id" in lk.columns:
            customer = f"coalesce({customer}, o.customer_id)"
        cols = ", ".join(f"coalesce(r.{ident(c)}, o.{ident(c)}) as {ident(c)}" if c in taken
                         else f"r.{ident(c)}" for c in kept)
        stitched.append(
            f"select {cols}, {customer} as customer_id "
            f"from _event_records r left join identity_map m using (anonymous_id) "
            f"left join {owner} o on o._key = r.{ident(lk.by)} where r.source = {s}")
    # lookups read the stitched rows of the source they look in, so those come first
    direct = [q for q, src in zip(stitched, sources, strict=True) if src.event.lookup is None]
    looked = [q for q, src in zip(stitched, sources, strict=True) if src.event.lookup]
    carry = list(schema.carry_forward)
    # carry forward as window functions both engines run (no as-of join): per customer, a
    # narrow table of the events that have the column or miss it, ordered by time, then those
    # that have it before those that miss it, then event id. The last value up to an event
    # missing it is then the latest value at or before it (of equal times, the larger event
    # id); the first value of all the first. Only the customers with an event missing the
    # value are windowed (in the sample those with bookings or payments, which carry no
    # platform).
    carry_ctes = "".join(f"""
        carry_{k} as (
            select customer_id, event_id, event_ts, {ident(c)} as value,
                   {ident(c)} is null as missing
            from unioned
            where customer_id in (select customer_id from unioned where {ident(c)} is null)
        ),
        filled_{k} as (
            select event_id, value from (
                select event_id, missing,
                       coalesce(
                           last_value(value ignore nulls) over (
                               partition by customer_id order by event_ts, missing, event_id
                               rows between unbounded preceding and current row),
                           first_value(value ignore nulls) over (
                               partition by customer_id order by event_ts, missing, event_id
                               rows between unbounded preceding and unbounded following))
                           as value
                from carry_{k}
            ) w
            where missing
        ),""" for k, c in enumerate(carry))
    carry_joins = "".join(f"""
        left join filled_{k} on filled_{k}.event_id = d.event_id"""
                          for k in range(len(carry)))
    values = []
    for col in attrs:
        if col in carry:
            k = carry.index(col)
            values.append(f"coalesce(d.{ident(col)}, filled_{k}.value) as {ident(col)}")
        else:
            values.append(f"d.{ident(col)}")
    core = """d.event_id, d.source, d.customer_id,
                d.customer_id is not null and not starts_with(d.customer_id, 'anon:')
                    as is_identified,
                d.anonymous_id, d.event_name, d.event_ts, cast(d.event_ts as date) as event_date"""
    final = f"select {core}, {', '.join(values)} from unioned d{carry_joins}"
    if carry:
        # only the events missing a carried value need the join (in the sample the bookings
        # and payments, not the clickstream that carries its platform itself)
        have = " and ".join(f"d.{ident(c)} is not null" for c in carry)
        plain = ", ".join(f"d.{ident(c)}" for c in attrs)
        final = (f"select {core}, {plain} from unioned d where {have}\n"
                 f"            union all\n            {final} where not ({have})")
    ordered = ", ".join(f"{ident(c)}" for c in ["event_id", "source", "customer_id",
                                                  "anonymous_id", "event_name", "event_ts",
                                                  *attrs])
    lookup_ctes = "".join(f"{q},\n" for q in lookups)
    return f"""
        create or replace table events as
        with stitched as (
            {' union all '.join(direct)}
        ),
        {lookup_ctes}
        unioned as (
            select {ordered} from stitched
            {''.join(f' union all select {ordered} from ({q})' for q in looked)}
        ),
        -- a record's identity is unique across days and runs already (ingest quarantines
        -- later copies), so no second dedup here: asset check events_complete holds it
        {carry_ctes}
        final as (
            {final}
        )
        -- not sorted: every reader groups or windows it itself, and the sort of the wide rows
        -- (properties JSON and all) was a fifth of the step at 10M events
        select * from final
    """


def build_events(con: duckdb.DuckDBPyConnection, cfg: ProjectConfig,
                 privacy: PrivacyPlan | None = None) -> EventsStats:
    """(Re)build `identity_map` and `events` from the raw tables of the event sources, with the
    ids pseudonymised and free text withheld as `privacy` says (default: the config file's
    `privacy:` block)."""
    sources = event_sources(cfg)
    privacy = privacy if privacy is not None else privacy_plan(cfg)
    p = Params()
    if sources:
        body = " union all ".join(_records_sql(s, cfg.events, p) for s in sources)
    else:
        attrs = ", ".join(f"cast(null as {EVENT_SQL_TYPES[t]}) as {ident(c)}"
                          for c, t in cfg.events.columns.items())
        body = ("select cast(null as varchar) as event_id, cast(null as varchar) as source, "
                "cast(null as varchar) as own_customer_id, cast(null as varchar) as "
                f"anonymous_id, cast(null as varchar) as event_name, cast(null as timestamp) "
                f"as event_ts{', ' + attrs if attrs else ''} where false")
    con.execute(f"create or replace temp table _event_records as {body}", p.values)
    apply_privacy(con, "_event_records", privacy)
    con.execute(sql_file("identity_map"))
    p = Params()
    if sources:
        con.execute(_events_sql(cfg, sources, p), p.values)
    else:
        con.execute("create or replace table events as select event_id, source, "
                    "own_customer_id as customer_id, false as is_identified, anonymous_id, "
                    "event_name, event_ts, cast(event_ts as date) as event_date "
                    f"{''.join(', ' + ident(c) for c in cfg.events.columns)} "
                    "from _event_records")
    con.execute("drop table if exists _event_records")
    events, customers, identified, without = con.execute("""
        select count(*), count(distinct customer_id),
               count(distinct customer_id) filter (where is_identified),
               count(*) filter (where customer_id is null)
        from events""").fetchone()
    linked, shared = con.execute(
        "select count(*), count(*) filter (where other_customers > 0) from identity_map"
    ).fetchone()
    by_source = dict(con.execute(
        "select source, count(*) from events group by source order by source").fetchall())
    return EventsStats(events, customers, identified, linked, shared, without, by_source)


def distinct_raw_records(con: duckdb.DuckDBPyConnection, cfg: ProjectConfig) -> int:
    """Distinct record identities (`id_columns`) over the raw tables of the event sources: the
    number of rows `events` must hold."""
    parts = [f"select count(*) from (select distinct "
             f"{', '.join(ident(c) for c in s.identity)} from {ident('raw_' + s.name)})"
             for s in event_sources(cfg)]
    if not parts:
        return 0
    return int(con.execute("select " + " + ".join(f"({q})" for q in parts)).fetchone()[0])
