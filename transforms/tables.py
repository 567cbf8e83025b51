"""Helpers every journey and metric transform shares: reading one row, counting a table, the end
of the data, and the SQL fragments the journey map decides (its stages as a VALUES list, journeys
per segment value, the predicate of a metric role, the low-rating rule).

- **Data end** = max(event_ts) of `events` (None when empty): completeness, horizons and periods
  are measured against it.
- **Metric roles**: which events play which role (payment succeeded, refund, review, ...) comes
  from the journey map's `metric_events`, never from names written in a transform; a role the map
  does not define matches nothing (`false`).
- **Low rating**: a rating at or below the map's `low_rating_max`; without it nothing is low and
  every rating groups as 'no rating'.
"""

from __future__ import annotations

import duckdb

from transforms.journey_map import JourneyMap, rule_sql
from transforms.sqlutil import Params, ident


def fetch_row(con: duckdb.DuckDBPyConnection, sql: str, params: object = None) -> tuple:
    """The single row of a query (fetched to the end, so the connection is free again)."""
    rows = con.execute(sql, params).fetchall() if params else con.execute(sql).fetchall()
    return rows[0]


def count_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(fetch_row(con, f"select count(*) from {ident(table)}")[0])


def data_end(con: duckdb.DuckDBPyConnection) -> object:
    """The end of the data: the latest event time in `events` (None when empty)."""
    return fetch_row(con, "select max(event_ts) from events")[0]


def stage_list_sql(jmap: JourneyMap, params: Params) -> str:
    """A VALUES list (stage_index, stage, optional) of the configured stages."""
    rows = ", ".join(
        f"({s.index}, {params.add(s.name)}, {'true' if s.optional else 'false'})"
        for s in jmap.stages
    )
    return f"(values {rows}) as stage_list(stage_index, stage, optional)"


def segment_rows_sql(jmap: JourneyMap, params: Params, alias: str = "j") -> str:
    """Complete journeys unpivoted: one row per journey x segment (segment, segment_value)."""
    if not jmap.segments:
        return (f"select {alias}.customer_id, cast(null as varchar) as segment, "
                f"cast(null as varchar) as segment_value from journeys {alias} where false")
    return " union all ".join(
        f"select {alias}.customer_id, {params.add(seg.name)} as segment, "
        f"coalesce(cast({alias}.{ident(seg.name)} as varchar), '(unknown)') as segment_value "
        f"from journeys {alias} where {alias}.complete"
        for seg in jmap.segments
    )


def role_sql(jmap: JourneyMap, role: str, params: Params, alias: str = "e") -> str:
    """The predicate of a metric role, or `false` when the journey map does not define it."""
    rule = jmap.metric_events.get(role)
    return rule_sql(rule, params, alias) if rule is not None else "false"


def low_rating_sql(jmap: JourneyMap, column: str) -> str:
    """The low-rating predicate (rating <= `low_rating_max`), or `false` without ratings."""
    if jmap.low_rating_max is None:
        return "false"
    return f"{column} <= {int(jmap.low_rating_max)}"


def rating_group_sql(jmap: JourneyMap, column: str) -> str:
    """A rating's group: 'low (<=n)', 'high (>=n+1)' or 'no rating'."""
    if jmap.low_rating_max is None:
        return "'no rating'"
    n = int(jmap.low_rating_max)
    return (f"case when {low_rating_sql(jmap, column)} then 'low (<={n})' "
            f"when {column} > {n} then 'high (>={n + 1})' else 'no rating' end")


# --------------------------------------------------------------------------------------------
# tables the project's data cannot fill

SKIPPED_TABLE = "skipped_tables"


def engine_of(con: object) -> object:
    """`con` as an engine (transforms/engine.py): a bare DuckDB connection gets the DuckDB
    engine's catalog look-ups."""
    if callable(getattr(type(con), "tables", None)):
        return con
    from transforms.engine import DuckDBEngine

    return DuckDBEngine(con)


def list_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The tables and views of the warehouse's current schema (temporary ones included). The
    one catalog look-up every transform, page and summary uses: it goes through the engine, so
    it holds on every engine (no `information_schema` in the transforms)."""
    return set(engine_of(con).tables())


def column_names(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """The columns of `table` in order (empty when it does not exist)."""
    eng = engine_of(con)
    if table not in eng.tables():
        return []
    return [name for name, _ in eng.columns(table)]


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """The columns of `table` (empty when it does not exist)."""
    return set(column_names(con, table))


def select_columns(con: duckdb.DuckDBPyConnection, table: str, alias: str, *,
                   exclude: tuple[str, ...] = (), replace: dict[str, str] | None = None) -> str:
    """`alias.*` of `table` as an explicit column list, in the table's order, without the
    columns in `exclude` and with the SQL of `replace` (column -> expression) in place of those
    columns: what DuckDB writes `* EXCLUDE (...)` / `* REPLACE (...)`, in SQL every engine
    runs."""
    replace = replace or {}
    a = ident(alias)
    return ", ".join(f"{replace[c]} as {ident(c)}" if c in replace else f"{a}.{ident(c)}"
                     for c in column_names(con, table) if c not in exclude)


def missing_inputs(con: duckdb.DuckDBPyConnection, *, columns: tuple[str, ...] = (),
                   tables: tuple[str, ...] = ()) -> str | None:
    """Why a table cannot be built here — the `events` columns and the tables it reads that are
    absent — or None when everything is there."""
    have = table_columns(con, "events")
    cols = [c for c in columns if c not in have]
    tabs = [t for t in tables if not table_columns(con, t)]
    parts = []
    if cols:
        parts.append("the events have no " + ", ".join(cols) + " column" +
                     ("s" if len(cols) > 1 else ""))
    skipped = dict(con.execute(f"select table_name, reason from {SKIPPED_TABLE}").fetchall()
                   ) if tabs and table_columns(con, SKIPPED_TABLE) else {}
    # a table left out for lack of data passes its reason on to what reads it
    parts.extend(dict.fromkeys(skipped[t] for t in tabs if t in skipped))
    rest = [t for t in tabs if t not in skipped]
    if rest:
        parts.append("no " + ", ".join(rest) + " table" + ("s" if len(rest) > 1 else ""))
    return "; ".join(parts) or None


def skip(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...] | list[str],
         reason: str) -> None:
    """Leave `tables` out of this warehouse (a table from an earlier run is dropped) and record
    why in `skipped_tables` (one row per table left out), for the report and the pages."""
    con.execute(f"create table if not exists {SKIPPED_TABLE} "
                "(table_name VARCHAR, reason VARCHAR, skipped_at TIMESTAMP)")
    for table in tables:
        con.execute(f"drop table if exists {ident(table)}")
        con.execute(f"delete from {SKIPPED_TABLE} where table_name = ?", [table])
        con.execute(f"insert into {SKIPPED_TABLE} values (?, ?, now()::TIMESTAMP)",
                    [table, reason])


def skipped_without(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...] | list[str], *,
                    columns: tuple[str, ...] = (), reads: tuple[str, ...] = ()) -> bool:
    """Skip `tables` (with the reason) when the `events` columns or the tables they read are
    absent; True when skipped, so the builder returns at once."""
    why = missing_inputs(con, columns=columns, tables=reads)
    if why:
        skip(con, tables, why)
    return why is not None


def built(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...] | list[str]) -> None:
    """`tables` were built: no longer listed as skipped."""
    if table_columns(con, SKIPPED_TABLE):
        for table in tables:
            con.execute(f"delete from {SKIPPED_TABLE} where table_name = ?", [table])


def skipped_reasons(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    """{table: {"skipped": reason}} for the tables left out, as asset metadata."""
    if not table_columns(con, SKIPPED_TABLE):
        return {}
    return {t: {"skipped": r} for t, r in con.execute(
        f"select table_name, reason from {SKIPPED_TABLE}").fetchall()}
