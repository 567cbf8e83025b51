"""Reading an event log from a file into DuckDB, in the shape the mining engine expects.

One row of the resulting table is one event:

| column | type | meaning |
|---|---|---|
| case | VARCHAR | case (journey) id |
| activity | VARCHAR | activity (stage) name |
| ts | TIMESTAMP | event time, UTC (naive) |
| lifecycle | VARCHAR | lifecycle transition, only when the source has one |
| event_index | BIGINT | position in the file (0-based): tie-break for equal timestamps |

The file is read by `transforms.readers.read_table`: every format it reads (XES `.xes`/`.xes.gz`,
CSV with any delimiter or whitespace-separated, with or without header, in any declared
encoding, JSON lines and Segment exports, Parquet; gzip/zstd compressed), and times by
`transforms.readers.timestamp_sql` under the declared `time_format` and `timezone` (default
ISO 8601: offsets honoured, naive times UTC).

XES is read with the streaming parser in `transforms.readers` rather than `pm4py.read_xes`: it
only keeps the requested attributes, which makes BPIC 2012 load in about a second instead of
eight. A column name starting with `case:` is a trace attribute (`case:concept:name` is the
trace's `concept:name`), any other name an event attribute — the same naming pm4py's data frames
use. Events keep file order, so `event_index` equals the row position in pm4py's data frame.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import duckdb

from transforms import readers
from transforms.errors import UserError
from transforms.sqlutil import ident

XES_DEFAULTS = ("case:concept:name", "concept:name", "time:timestamp")
TABULAR_DEFAULTS = ("case", "activity", "timestamp")
LIFECYCLE_COLUMN = "lifecycle:transition"

Lifecycle = Literal["all", "complete"]




def _is_temporal(column_type: str) -> bool:
    """A DuckDB column type that `readers.timestamp_sql` converts without parsing text."""
    t = column_type.upper()
    return t.startswith("TIMESTAMP") or t in ("DATE", "DATETIME")


def detect_format(path: str | Path) -> str:
    """The log format implied by the file name: 'xes', 'csv', 'parquet' or 'jsonl' (see
    `transforms.readers.detect_format`)."""
    try:
        return readers.detect_format(path)
    except UserError:
        raise UserError(
            f"{path}: unknown event log format; use a file ending in .xes, .xes.gz, .csv, "
            ".tsv, .txt, .parquet or .jsonl (optionally .gz/.zst)"
        ) from None


def read_event_log(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    *,
    case_col: str | None = None,
    activity_col: str | None = None,
    time_col: str | None = None,
    lifecycle: Lifecycle = "all",
    table: str | None = None,
    time_format: str | None = None,
    timezone: str = "UTC",
    delimiter: str | None = None,
    header: bool = True,
    encoding: str | None = None,
    lifecycle_col: str | None = None,
    activities: Sequence[str] | None = None,
) -> duckdb.DuckDBPyRelation:
    """Load the event log at `path` into the temporary table `table` and return it.

    Column defaults: XES `case:concept:name`, `concept:name`, `time:timestamp`; other formats
    `case`, `activity`, `timestamp`. `lifecycle="complete"` keeps only events whose lifecycle
    column (`lifecycle_col`, default `lifecycle:transition`) is "complete" (any case); it is an
    error when the log has no such column or no such value. `activities` keeps only those
    activities (each must occur). `time_format`, `timezone`, `delimiter`, `header` and
    `encoding` are `transforms.readers` options. Mistakes raise UserError, one line.
    """
    path = Path(path)
    if lifecycle not in ("all", "complete"):
        raise UserError(f"unknown lifecycle option {lifecycle!r}; use 'complete' or 'all'")
    fmt = detect_format(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; check the path to the event log")
    defaults = XES_DEFAULTS if fmt == "xes" else TABULAR_DEFAULTS
    cols = (case_col or defaults[0], activity_col or defaults[1], time_col or defaults[2])
    lc_col = lifecycle_col or LIFECYCLE_COLUMN
    table = table or f"event_log_{uuid.uuid4().hex[:12]}"
    readers.check_time_format(time_format)
    readers.check_timezone(timezone)

    raw = f"__raw_{uuid.uuid4().hex[:12]}"
    try:
        # insertion order of the table is file order; rowid then numbers the events
        rel = readers.read_table(con, path, delimiter=delimiter, header=header,
                                 encoding=encoding, table=raw,
                                 columns=[*cols, lc_col] if fmt == "xes" else None)
        _build_log_table(con, path, raw, rel.columns, cols, lc_col, lifecycle, table,
                         fmt == "xes", time_format, timezone, activities)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {ident(raw)}")
    return con.table(table)


def _build_log_table(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    raw: str,
    columns: list[str],
    cols: tuple[str, str, str],
    lc_col: str,
    lifecycle: Lifecycle,
    table: str,
    xes: bool,
    time_format: str | None,
    timezone: str,
    activities: Sequence[str] | None,
) -> None:
    for role, col in zip(("case", "activity", "time"), cols, strict=True):
        if col not in columns:
            if xes:
                raise UserError(
                    f"{path}: no {role} attribute {col!r} in the XES file; pass --{role}-col "
                    "with an event attribute key, or case:<key> for a trace attribute"
                )
            shown = ", ".join(columns[:15]) + (", ..." if len(columns) > 15 else "")
            raise UserError(
                f"{path}: no {role} column {col!r}; pass --{role}-col with one of: {shown}"
            )
    case_c, act_c, time_c = cols
    has_lifecycle = lc_col in columns
    lc = ident(lc_col)
    where = []
    if lifecycle == "complete":
        if not has_lifecycle:
            shown = ", ".join(columns[:15]) + (", ..." if len(columns) > 15 else "")
            raise UserError(
                f"{path}: --lifecycle complete needs a lifecycle column, and there is no "
                f"{lc_col!r} (columns: {shown}); pass --lifecycle-col or drop --lifecycle"
            )
        n_complete = con.execute(f"SELECT count(*) FROM {ident(raw)} "
                                 f"WHERE lower(CAST({lc} AS VARCHAR)) = 'complete'").fetchone()[0]
        if not n_complete:
            present = readers.occurring_values(con, raw, lc_col)
            listed = ", ".join(f"{v} ({n:,})" for v, n in present) or "none (all empty)"
            raise UserError(
                f"{path}: --lifecycle complete keeps nothing: no event has lifecycle "
                f"'complete' in {lc_col!r}; values there: {listed}; use --lifecycle all"
            )
        where.append(f"lower(CAST({lc} AS VARCHAR)) = 'complete'")
    if activities is not None:
        readers.require_values(con, raw, act_c, activities, what="activity",
                               flag="--activities", path=path)
        where.append(f"CAST({ident(act_c)} AS VARCHAR) IN (SELECT unnest($activities))")
    params: dict[str, object] = {}
    if activities is not None:
        params["activities"] = list(activities)
    time_type = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {ident(raw)})"
                                 ).fetchall()).get(time_c, "")
    if _is_temporal(time_type):
        # a typed time (e.g. Parquet) is converted in the one pass that builds the log:
        # it has a time exactly when it is not NULL, and it always converts
        ts_params = readers.Params()
        ts = readers.timestamp_sql(ident(time_c), time_format, timezone, ts_params,
                                   source_type=time_type)
        has_time_sql = f"{ident(time_c)} IS NOT NULL"
        params |= ts_params.values
    else:
        has_time = f"__has_time_{uuid.uuid4().hex[:8]}"
        con.execute(f"ALTER TABLE {ident(raw)} ADD COLUMN {ident(has_time)} BOOLEAN")
        con.execute(f"UPDATE {ident(raw)} SET {ident(has_time)} = "
                    f"nullif(trim(CAST({ident(time_c)} AS VARCHAR)), '') IS NOT NULL")
        readers.parse_times(con, raw, time_c, time_format=time_format, timezone=timezone,
                            path=path)
        ts, has_time_sql = ident(time_c), ident(has_time)
    lc_select = f", CAST({lc} AS VARCHAR) AS lifecycle" if has_lifecycle else ""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {ident(table)} AS
        with numbered as (
            select *, rowid as __event_index from {ident(raw)}
        )
        select
            CAST({ident(case_c)} AS VARCHAR) AS "case",
            CAST({ident(act_c)} AS VARCHAR) AS activity,
            {ts} AS ts
            {lc_select},
            __event_index AS event_index,
            {has_time_sql} AS __has_time
        from numbered
        {"where " + " and ".join(where) if where else ""}
        order by __event_index
        """,
        params or None,
    )
    bad = con.execute(
        f"""select count(*) filter (where "case" is null),
                   count(*) filter (where activity is null),
                   count(*) filter (where not __has_time)
            from {ident(table)}"""
    ).fetchall()[0]
    problems = [
        f"{n} event(s) without {what}"
        for n, what in zip(
            bad,
            (f"a case id ({case_c!r})", f"an activity ({act_c!r})",
             f"a timestamp ({time_c!r})"),
            strict=True,
        )
        if n
    ]
    if problems:
        con.execute(f"DROP TABLE {ident(table)}")
        raise UserError(f"{path}: " + "; ".join(problems) + "; fix or remove those events")
    con.execute(f"ALTER TABLE {ident(table)} DROP COLUMN __has_time")
