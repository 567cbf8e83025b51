"""Ingestion: source export files → typed, validated, deduplicated `raw_<source>` tables.

Grain: `raw_<source>` has one row per loaded source record; `quarantine` one row per rejected or
duplicate record, with its file, line, raw text and reason; `ingest_reconciliation` one row per
(source, partition day) with rows read = loaded + quarantined + duplicates.

Which partition a row belongs to (each row read belongs to exactly one):
- a valid row belongs to the UTC day of its event time, wherever it arrived (late data lands in
  the partition of its event time) — unless it arrived more than `late_days` after that day;
- a rejected row (malformed, missing field, bad type, unknown enum value, implausible or too-late
  timestamp) belongs to the export day of its file, where it is quarantined with its reason.
So partition D reads the files exported on days D - max_days_after_export … D + late_days and
keeps the rows assigned to D. Re-running a partition replaces its rows (one transaction).

Duplicates: among the valid rows of a partition, the first row of each identity (`id_columns`,
in file and line order) is loaded; later ones are kept in `quarantine` with kind 'duplicate'.

Clock skew: when a source declares `clock_skew`, an event whose client time differs from its
received-at time by more than `max_seconds` takes the received-at time as its event time (the row
is loaded, flagged `clock_skew_corrected`).

All values from the files reach SQL as data (read by DuckDB, or bound as parameters); column
names come from the validated config and are quoted.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from transforms.errors import UserError
from transforms.sources import Source, file_date
from transforms.sqlutil import ident

RECON_TABLE = "ingest_reconciliation"
QUARANTINE_TABLE = "quarantine"
SQL_TYPES = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "decimal": "DECIMAL(18,2)",
    "timestamp": "TIMESTAMP",
    "json": "JSON",
}
# bound the memory a load needs: a range is processed this many partition days at a time
CHUNK_DAYS = 3
OFFSET_RE = r"(Z|z|[+-][0-9]{2}:?[0-9]{2})$"


@dataclass
class PartitionStats:
    source: str
    partition_date: dt.date
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    clock_skew_corrected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def reconciles(self) -> bool:
        return self.rows_read == self.rows_loaded + self.rows_quarantined + self.rows_duplicate


def raw_table(source: Source) -> str:
    return f"raw_{source.name}"


def ensure_tables(con: duckdb.DuckDBPyConnection, source: Source) -> None:
    """Create the raw table of `source` and the shared quarantine/reconciliation tables."""
    cols = ",\n  ".join(
        f"{ident(c)} {SQL_TYPES[source.type_of(c)]}" for c in source.columns
    )
    table = raw_table(source)
    con.execute(f"""
        create table if not exists {ident(table)} (
          {cols},
          event_ts TIMESTAMP,
          partition_date DATE,
          clock_skew_corrected BOOLEAN,
          source_file VARCHAR,
          source_line BIGINT,
          loaded_at TIMESTAMP
        )""")
    expected = [*source.columns, "event_ts", "partition_date", "clock_skew_corrected",
                "source_file", "source_line", "loaded_at"]
    actual = [r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_name = ? "
        "order by ordinal_position", [table]).fetchall()]
    if actual != expected:
        raise UserError(
            f"table {table} in the warehouse was built from a different column mapping "
            f"(has {', '.join(actual)}); delete the warehouse file (or drop {table}) and run "
            "`journeys run` again to reload all partitions"
        )
    con.execute(f"""
        create table if not exists {QUARANTINE_TABLE} (
          source VARCHAR, partition_date DATE, source_file VARCHAR, source_line BIGINT,
          raw_record VARCHAR, reason VARCHAR, kind VARCHAR, quarantined_at TIMESTAMP
        )""")
    con.execute(f"""
        create table if not exists {RECON_TABLE} (
          source VARCHAR, partition_date DATE, rows_read BIGINT, rows_loaded BIGINT,
          rows_quarantined BIGINT, rows_duplicate BIGINT, clock_skew_corrected BIGINT,
          files VARCHAR[], loaded_at TIMESTAMP
        )""")


# --------------------------------------------------------------------------- reading files


def _files_for(source: Source, first: dt.date, last: dt.date) -> list[Path]:
    """Export files that may hold rows of partitions first..last."""
    lo = first - dt.timedelta(days=source.max_days_after_export)
    hi = last + dt.timedelta(days=source.late_days)
    chosen = []
    for path in source.files():
        day = file_date(path)
        if day is None:
            raise UserError(
                f"{path}: the file name has no export date; name export files with their "
                "day, e.g. 2026-10-01.csv, so late rows can be placed"
            )
        if lo <= day <= hi:
            chosen.append(path)
    return chosen


def _stage_jsonl(con: duckdb.DuckDBPyConnection, source: Source, files: list[Path]) -> None:
    """Stage JSON-lines files as one row per line: file, line, raw text and field strings."""
    if not files:
        _empty_stage(con, source)
        return
    con.execute("create or replace temp table _files (source_file VARCHAR, file_date DATE)")
    con.executemany("insert into _files values (?, ?)",
                    [[str(p), file_date(p)] for p in files])
    # every field is pulled out of one parse of the line: a list of JSON paths at once
    text_cols = [c for c in source.columns if source.type_of(c) != "json"]
    json_cols = [c for c in source.columns if source.type_of(c) == "json"]

    def json_path(field: str) -> str:
        return "$." + ".".join('"' + part.replace('"', '\\"') + '"'
                               for part in field.split("."))

    fields = [f"vals[{i + 1}] as {ident('s_' + c)}" for i, c in enumerate(text_cols)]
    fields += [f"jvals[{i + 1}] as {ident('s_' + c)}" for i, c in enumerate(json_cols)]
    params: list[object] = [
        [str(p) for p in files],
        [json_path(source.columns[c]) for c in text_cols] or ["$"],
        [json_path(source.columns[c]) for c in json_cols] or ["$"],
    ]
    con.execute(f"""
        create or replace temp table _stage as
        with texts as (
            select filename as source_file, string_split(content, chr(10)) as lines
            from read_text(?)
        ), numbered as (
            select t.source_file, f.file_date,
                   generate_subscripts(t.lines, 1) as source_line,
                   unnest(t.lines) as raw_record,
                   len(t.lines) as n_lines
            from texts t join _files f using (source_file)
        ), lines as (
            select source_file, file_date, source_line,
                   rtrim(raw_record, chr(13)) as raw_record,
                   case when json_valid(raw_record)
                        then json_type(raw_record) = 'OBJECT' else false end as ok
            from numbered
            -- the empty string after the file's final newline is not a line
            where not (source_line = n_lines and raw_record = '')
        ), extracted as (
            select *,
                   case when ok then json_extract_string(raw_record, ?::VARCHAR[]) end as vals,
                   case when ok then json_extract(raw_record, ?::VARCHAR[]) end as jvals
            from lines
        )
        select source_file, file_date, source_line, raw_record,
               case when not ok then 'malformed JSON line' end as malformed,
               {', '.join(fields)}
        from extracted
    """, params)


def _csv_records(path: Path) -> Iterator[tuple[int, list[str], str]]:
    """(first physical line number, fields, raw text) per CSV record, header included."""
    buffer: list[str] = []

    def lines() -> Iterator[str]:
        for line in fh:
            buffer.append(line)
            yield line

    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.reader(lines())
        line_no = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error:
                row = None  # e.g. a NUL byte or an unterminated quote: quarantined as malformed
            raw = "".join(buffer)
            buffer.clear()
            yield line_no, row if row is not None else [], raw.rstrip("\r\n")
            line_no = reader.line_num + 1


def _stage_csv(con: duckdb.DuckDBPyConnection, source: Source, files: list[Path]) -> None:
    """Stage CSV files as one row per record: file, line, raw text and field strings."""
    cols = list(source.columns)
    data: dict[str, list] = {k: [] for k in
                             ("source_file", "file_date", "source_line", "raw_record", "malformed")}
    for c in cols:
        data["s_" + c] = []
    for path in files:
        day = file_date(path)
        records = _csv_records(path)
        header_missing: list[str] = []
        positions: dict[str, int] = {}
        n_header = 0
        for line_no, row, raw in records:
            if line_no == 1:
                header = [h.strip().lstrip("\ufeff") for h in row]
                n_header = len(header)
                positions = {c: header.index(f) for c, f in source.columns.items() if f in header}
                header_missing = [f for c, f in source.columns.items() if c not in positions]
                continue
            if not row and raw == "":
                continue  # blank line
            malformed = None
            if header_missing:
                malformed = f"file header lacks column(s): {', '.join(header_missing)}"
            elif len(row) != n_header:
                malformed = f"malformed CSV row: expected {n_header} fields, got {len(row)}"
            data["source_file"].append(str(path))
            data["file_date"].append(day)
            data["source_line"].append(line_no)
            data["raw_record"].append(raw)
            data["malformed"].append(malformed)
            for c in cols:
                pos = positions.get(c)
                data["s_" + c].append(row[pos] if malformed is None and pos is not None else None)
    schema = pa.schema(
        [("source_file", pa.string()), ("file_date", pa.date32()), ("source_line", pa.int64()),
         ("raw_record", pa.string()), ("malformed", pa.string())]
        + [("s_" + c, pa.string()) for c in cols]
    )
    staged = pa.Table.from_pydict(data, schema=schema)
    con.register("_stage_arrow", staged)
    try:
        con.execute("create or replace temp table _stage as select * from _stage_arrow")
    finally:
        con.unregister("_stage_arrow")


def _empty_stage(con: duckdb.DuckDBPyConnection, source: Source) -> None:
    cols = ", ".join(f"NULL::VARCHAR as {ident('s_' + c)}" for c in source.columns)
    con.execute(f"""
        create or replace temp table _stage as
        select NULL::VARCHAR as source_file, NULL::DATE as file_date, NULL::BIGINT as source_line,
               NULL::VARCHAR as raw_record, NULL::VARCHAR as malformed, {cols}
        where false""")


# --------------------------------------------------------------------------- classifying


def _typed_expr(source: Source, col: str, params: list[object]) -> str:
    s = ident("s_" + col)
    kind = source.type_of(col)
    if kind == "timestamp":
        params.append(source.timezone)
        return (f"case when regexp_matches({s}, '{OFFSET_RE}') "
                f"then timezone('UTC', try_cast({s} as TIMESTAMPTZ)) "
                f"else timezone('UTC', timezone(?, try_cast({s} as TIMESTAMP))) end")
    if kind == "decimal":
        return f"try_cast({s} as DECIMAL(18,2))"
    if kind == "integer":
        return f"try_cast(try_cast({s} as DOUBLE) as BIGINT)"
    if kind == "json":
        return f"{s}::JSON"
    return f"nullif({s}, '')"


def _classify(con: duckdb.DuckDBPyConnection, source: Source) -> None:
    """Type every staged row and give each its partition and, if rejected, its reason."""
    params: list[object] = []
    typed = ",\n".join(f"{_typed_expr(source, c, params)} as {ident(c)}" for c in source.columns)
    ev = ident(source.event_time)
    if source.clock_skew_column:
        rc = ident(source.clock_skew_column)
        params.append(source.clock_skew_max_seconds)
        skew = f"coalesce(abs(epoch({ev}) - epoch({rc})) > ?, false)"
        event_ts = f"case when _skew then {rc} else {ev} end"
    else:
        skew = "false"
        event_ts = ev
    checks: list[str] = []
    for col in source.required:
        checks.append(f"when coalesce({ident('s_' + col)}, '') = '' "
                      f"then 'missing required field: {col}'")
    for col in source.columns:
        kind = source.type_of(col)
        s = ident("s_" + col)
        if kind in ("timestamp", "decimal", "integer"):
            what = {"timestamp": "bad timestamp", "decimal": "not a number",
                    "integer": "not an integer"}[kind]
            checks.append(f"when coalesce({s}, '') <> '' and {ident(col)} is null "
                          f"then '{what} in {col}: ' || left({s}, 60)")
    for col in source.enums:
        checks.append(f"when {ident(col)} is not null and not list_contains(?, {ident(col)}) "
                      f"then 'unknown {col}: ' || left({ident(col)}, 60)")
    enum_params = [list(v) for v in source.enums.values()]
    for col, bounds in source.ranges.items():
        if "min" in bounds:
            checks.append(f"when {ident(col)} < {float(bounds['min'])} "
                          f"then '{col} below minimum {bounds['min']}: ' || {ident(col)}")
        if "max" in bounds:
            checks.append(f"when {ident(col)} > {float(bounds['max'])} "
                          f"then '{col} above maximum {bounds['max']}: ' || {ident(col)}")
    checks.append(
        "when _event_ts < ? or _event_ts >= file_date + ? "
        "then 'implausible timestamp: ' || strftime(_event_ts, '%Y-%m-%d %H:%M:%S') "
        "|| ' UTC in a file exported on ' || file_date::VARCHAR"
    )
    checks.append(
        "when file_date - cast(_event_ts as DATE) > ? "
        "then 'arrived too late: ' || (file_date - cast(_event_ts as DATE))::VARCHAR "
        "|| ' days after its event day (late_days is ' || ?::VARCHAR || ')'"
    )
    tail_params: list[object] = [
        dt.datetime.combine(source.earliest, dt.time()),
        source.max_days_after_export + 1,
        source.late_days, source.late_days,
    ]
    con.execute(f"""
        create or replace temp table _classified as
        with typed as (
            select source_file, file_date, source_line, raw_record, malformed,
                   {', '.join(ident('s_' + c) for c in source.columns)},
                   {typed}
            from _stage
        ), skewed as (
            select *, {skew} as _skew from typed
        ), timed as (
            select *, {event_ts} as _event_ts from skewed
        ), checked as (
            select *, case when malformed is not null then malformed
                           {' '.join(checks)}
                      end as reason
            from timed
        )
        select *, case when reason is null then cast(_event_ts as DATE) else file_date end
                  as partition_date
        from checked
    """, params + enum_params + tail_params)


# --------------------------------------------------------------------------- loading


def load_range(con: duckdb.DuckDBPyConnection, source: Source, first: dt.date, last: dt.date,
               on_partition: object = None) -> list[PartitionStats]:
    """(Re)load partitions first..last of `source`; returns one PartitionStats per day."""
    ensure_tables(con, source)
    stats: list[PartitionStats] = []
    day = first
    while day <= last:
        chunk_last = min(last, day + dt.timedelta(days=CHUNK_DAYS - 1))
        chunk = _load_chunk(con, source, day, chunk_last)
        for s in chunk:
            if callable(on_partition):
                on_partition(s)
        stats.extend(chunk)
        day = chunk_last + dt.timedelta(days=1)
    return stats


def _load_chunk(con: duckdb.DuckDBPyConnection, source: Source, first: dt.date,
                last: dt.date) -> list[PartitionStats]:
    files = _files_for(source, first, last)
    if source.format == "jsonl":
        _stage_jsonl(con, source, files)
    else:
        _stage_csv(con, source, files)
    _classify(con, source)
    id_cols = ", ".join(ident(c) for c in source.id_columns)
    con.execute(f"""
        create or replace temp table _ranked as
        select *, case when reason is null then row_number() over (
                    partition by partition_date, {id_cols}
                    order by file_date, source_file, source_line) end as _copy,
               case when reason is null then first_value(source_file || ':' || source_line)
                    over (partition by partition_date, {id_cols}
                          order by file_date, source_file, source_line) end as _original
        from _classified
        where partition_date between ? and ?
    """, [first, last])
    table = ident(raw_table(source))
    cols = ", ".join(ident(c) for c in source.columns)
    con.execute("begin transaction")
    try:
        con.execute(f"delete from {table} where partition_date between ? and ?", [first, last])
        con.execute(f"delete from {QUARANTINE_TABLE} where source = ? "
                    "and partition_date between ? and ?", [source.name, first, last])
        con.execute(f"delete from {RECON_TABLE} where source = ? "
                    "and partition_date between ? and ?", [source.name, first, last])
        con.execute(f"""
            insert into {table}
            select {cols}, _event_ts, partition_date, _skew, source_file, source_line,
                   now()::TIMESTAMP
            from _ranked where reason is null and _copy = 1
            order by partition_date, _event_ts""")
        con.execute(f"""
            insert into {QUARANTINE_TABLE}
            select ?, partition_date, source_file, source_line, raw_record,
                   coalesce(reason, 'duplicate of ' || _original),
                   case when reason is null then 'duplicate' else 'rejected' end,
                   now()::TIMESTAMP
            from _ranked where reason is not null or _copy > 1""", [source.name])
        con.execute(f"""
            insert into {RECON_TABLE}
            with days as (
                select unnest(generate_series(?::DATE, ?::DATE, interval 1 day))::DATE
                       as partition_date
            ), counts as (
                select partition_date, count(*) as rows_read,
                       count(*) filter (where reason is null and _copy = 1) as rows_loaded,
                       count(*) filter (where reason is not null) as rows_quarantined,
                       count(*) filter (where reason is null and _copy > 1) as rows_duplicate,
                       count(*) filter (where reason is null and _copy = 1 and _skew)
                           as clock_skew_corrected
                from _ranked group by partition_date
            )
            select ?, d.partition_date, coalesce(rows_read, 0), coalesce(rows_loaded, 0),
                   coalesce(rows_quarantined, 0), coalesce(rows_duplicate, 0),
                   coalesce(clock_skew_corrected, 0), ?, now()::TIMESTAMP
            from days d left join counts c using (partition_date)
        """, [first, last, source.name, [str(p) for p in files]])
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    rows = con.execute(f"""
        select partition_date, rows_read, rows_loaded, rows_quarantined, rows_duplicate,
               clock_skew_corrected
        from {RECON_TABLE} where source = ? and partition_date between ? and ?
        order by partition_date""", [source.name, first, last]).fetchall()
    reasons = con.execute("""
        select partition_date, regexp_replace(reason, ':.*$', '') as why, count(*)
        from _ranked where reason is not null group by all""").fetchall()
    by_day: dict[dt.date, dict[str, int]] = {}
    for day, why, n in reasons:
        by_day.setdefault(day, {})[why] = n
    return [PartitionStats(source.name, d, r, ld, q, dup, sk, by_day.get(d, {}))
            for d, r, ld, q, dup, sk in rows]


def reconciliation_problems(con: duckdb.DuckDBPyConnection, source: Source) -> list[str]:
    """Partitions whose counts do not reconcile, checked against the tables themselves.

    rows_read must equal loaded + quarantined + duplicates, and loaded / quarantined /
    duplicates must equal what the raw and quarantine tables actually hold for that day.
    """
    ensure_tables(con, source)
    rows = con.execute(f"""
        with loaded as (
            select partition_date, count(*) as n from {ident(raw_table(source))} group by all
        ), q as (
            select partition_date, count(*) filter (where kind = 'rejected') as rejected,
                   count(*) filter (where kind = 'duplicate') as dups
            from {QUARANTINE_TABLE} where source = ? group by all
        )
        select r.partition_date, r.rows_read, r.rows_loaded, r.rows_quarantined,
               r.rows_duplicate, coalesce(l.n, 0), coalesce(q.rejected, 0), coalesce(q.dups, 0)
        from {RECON_TABLE} r
        left join loaded l using (partition_date)
        left join q using (partition_date)
        where r.source = ?
        order by r.partition_date""", [source.name, source.name]).fetchall()
    problems = []
    for day, read, loaded, quar, dup, n_raw, n_rej, n_dup in rows:
        if read != loaded + quar + dup:
            problems.append(f"{source.name} {day}: read {read} != loaded {loaded} + "
                            f"quarantined {quar} + duplicates {dup}")
        if (loaded, quar, dup) != (n_raw, n_rej, n_dup):
            problems.append(f"{source.name} {day}: recorded loaded/quarantined/duplicates "
                            f"{loaded}/{quar}/{dup} but tables hold {n_raw}/{n_rej}/{n_dup}")
    return problems


def describe(stats: list[PartitionStats]) -> str:
    read = sum(s.rows_read for s in stats)
    return (f"read {read:,}, loaded {sum(s.rows_loaded for s in stats):,}, "
            f"quarantined {sum(s.rows_quarantined for s in stats):,}, "
            f"duplicates {sum(s.rows_duplicate for s in stats):,}")
