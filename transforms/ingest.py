"""Ingestion: source export files → typed, validated, deduplicated `raw_<source>` tables.

Grain: `raw_<source>` has one row per loaded source record; `quarantine` one row per rejected or
duplicate record, with its file, line, raw text and reason (kind 'rejected' or 'duplicate'), and
per record read but waiting for a day outside the run's range (kind 'outside_range');
`rejected_files` one row per (source, file) rejected as a whole, with the records it holds as
far as they can be counted and the reason; `ingest_reconciliation` one row per (source,
partition day) with rows read = loaded + quarantined + duplicates.

Every physical record of every file read ends up loaded, quarantined with a reason, or in a
rejected file (a blank line, nothing but spaces and tabs, is no record):
- a path the source's glob matches that cannot be read is rejected alone, and every other file
  loads as without it: a directory, a broken link, not a regular file, a file that cannot be
  opened, a broken gzip stream, a Parquet file that is none (no PAR1 marker) or is compressed
  whole, an XES log that does not parse (`file_problem`, `_stage_files`). Such a path adds no
  partition. Compression is seen from the first bytes, so gzip bytes named `.jsonl` are read.
- a record that belongs to a day outside the run's range (a late row that file D holds for
  D - 1 when only D is run) and that no earlier load has loaded or quarantined is kept in
  `quarantine` in its own day, kind 'outside_range', reason `belongs to day <D-1>, outside this
  run's range <first> … <last>; run that day to load it (...)`, until that day is loaded. The
  first partition reaches back late_days before the earliest export day, so a full run leaves
  none.

Which partition a row belongs to (each row read belongs to exactly one):
- a valid row belongs to the UTC day of its event time, wherever it arrived (late data lands in
  the partition of its event time) — unless it arrived more than `late_days` after that day;
- a rejected row (malformed, missing field, bad type, unknown enum value, implausible or too-late
  timestamp) belongs to the export day of its file, where it is quarantined with its reason.
So partition D reads the files exported on days D - max_days_after_export … D + late_days and
keeps the rows assigned to D. Re-running a partition replaces its rows (one transaction).

Duplicates: across days and runs, the first row of each identity (`id_columns`, in export day,
file and line order) is loaded; later ones are kept in `quarantine` with kind 'duplicate' in
their own partition, as `duplicate of <file>:<line>` (an exact copy) or `conflicting duplicate
of <file>:<line>: differs in <columns>`. A load compares its rows with the rows already loaded
into other partitions (one anti-join on the ids); when it loads an earlier copy of a row loaded
before (days run out of order), that row moves to `quarantine` and its day's counts follow.

Plausibility against the clock (`transforms.sources.now_utc`: JOURNEYS_NOW, else the system
clock) and the data's own range: a file named with a day later than today in every time zone is
rejected as a whole (`rejected_files`: `file dated in the future: <day> (today <day>)`) and adds
no partition; a row timed after now (plus `clock_skew.max_seconds` when declared) is quarantined
as `implausible timestamp: ... is in the future`; in a file without a date, rows before a gap of
more than `plausible.max_days_before_data` days (walking back from the file's latest day, with
fewer rows before the gap than after it) are quarantined as `implausible timestamp: <ts> is <n>
days before the rest of its file` and do not widen the run's days.

Clock skew: when a source declares `clock_skew`, an event whose client time differs from its
received-at time by more than `max_seconds` takes the received-at time as its event time (the row
is loaded, flagged `clock_skew_corrected`).

All values from the files reach SQL as data (read by DuckDB, or bound as parameters); column
names come from the validated config and are quoted.

On the Spark engine (transforms/spark_engine.py) the same contract holds: the staging step
(files -> one row per record) is Spark's readers (transforms/spark_ingest.py: JSON lines, CSV
and Parquet; XES is parsed in Python for both engines) and every statement after it is the same SQL
text (explicit column lists, no UPDATE or transaction statements on Spark); timestamps are read
by `readers.timestamp_sql(..., engine="spark")`.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from transforms.errors import UserError
from transforms.readers import open_binary, sniff_compression, timestamp_sql
from transforms.sources import Source, file_date, future_file_day, now_utc
from transforms.sqlutil import Params, ident, literal
from transforms.tables import column_names, engine_of

RECON_TABLE = "ingest_reconciliation"
QUARANTINE_TABLE = "quarantine"
REJECTED_FILES_TABLE = "rejected_files"
SQL_TYPES = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "decimal": "DECIMAL(18,2)",  # the same in `events` (transforms.events.EVENT_SQL_TYPES)
    "timestamp": "TIMESTAMP",
    "json": "JSON",
}
# the largest magnitude DECIMAL(18,2) holds is just under 10^16; a larger amount is
# quarantined as out of range (never NULL, never a crash of a later step)
DECIMAL_LIMIT = 10 ** 16
# bound the memory a load needs: a range is loaded in passes of at least CHUNK_DAYS partition
# days, each reading about CHUNK_BYTES of export files (as stored); a range whose files fit is
# one pass, so each file is read once (a pass over days D..E reads the files exported on
# D - max_days_after_export .. E + late_days: consecutive passes share those few files)
CHUNK_DAYS = 3
CHUNK_BYTES = 1 << 30
# within a pass, files are staged (read, split into records, fields pulled out) in groups of
# about this many bytes as stored, each group typed into the pass's table before the next is
# read: a file's text, its lines and their field strings are in memory for one group only
STAGE_BYTES = 256 << 20
OFFSET_RE = r"(Z|z|[+-][0-9]{2}:?[0-9]{2})$"
# the hours and minutes of a numeric UTC offset after an ISO 8601 time (+02, +0200, -05:30)
TZ_OFFSET_RE = r"[0-9]:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?\s*[+-]([0-9]{2}):?([0-9]{2})?\s*$"


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


def _sql_type(con: object, kind: str) -> str:
    """The column type of a source type: Spark has no JSON type, its JSON is the text."""
    return "VARCHAR" if kind == "json" and _on_spark(con) else SQL_TYPES[kind]


def _on_spark(con: object) -> bool:
    """Whether `con` is the Spark engine (transforms/spark_engine.py): its files are staged by
    Spark's readers (transforms/spark_ingest.py); everything after staging is the same SQL."""
    return getattr(type(con), "name", None) == "spark"


def _rows_table(con: duckdb.DuckDBPyConnection, name: str, columns: str, schema: pa.Schema,
                rows: list[list]) -> None:
    """Temporary table `name` (`columns`: its DuckDB column list) holding `rows`: DuckDB
    inserts them as parameters, Spark takes them as Arrow (in `schema`)."""
    if _on_spark(con):
        con.register_arrow(name, pa.Table.from_pylist(
            [dict(zip(schema.names, r, strict=True)) for r in rows], schema=schema))
        return
    con.execute(f"create or replace temp table {name} ({columns})")
    if rows:
        con.executemany(f"insert into {name} values ({', '.join('?' * len(schema))})", rows)


def _register(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    """Arrow rows queryable as `name` on either engine (`_unregister` drops them)."""
    if _on_spark(con):
        con.register_arrow(name, table)
    else:
        con.register(name, table)


def _unregister(con: duckdb.DuckDBPyConnection, name: str) -> None:
    if _on_spark(con):
        con.execute(f"drop view if exists {name}")
    else:
        con.unregister(name)


def ensure_tables(con: duckdb.DuckDBPyConnection, source: Source) -> None:
    """Create the raw table of `source` and the shared quarantine/reconciliation tables."""
    cols = ",\n  ".join(
        f"{ident(c)} {_sql_type(con, source.type_of(c))}" for c in source.columns
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
    actual = column_names(con, table)
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
        create table if not exists {REJECTED_FILES_TABLE} (
          source VARCHAR, source_file VARCHAR, rows_read BIGINT, reason VARCHAR,
          rejected_at TIMESTAMP
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
    now = now_utc()
    for path in source.files():
        day = file_date(path)
        # a file without an export day in its name may hold rows of any day; one dated in the
        # future is rejected as a whole (`_reject_future_files`)
        if future_file_day(path, now) is not None:
            continue
        if day is None or lo <= day <= hi:
            chosen.append(path)
    return chosen


def _register_files(con: duckdb.DuckDBPyConnection, files: list[Path]) -> None:
    """`_files`: the files of this load and their export days (NULL: not in the name)."""
    _rows_table(con, "_files", "source_file VARCHAR, file_date DATE", _FILES_SCHEMA,
                [[str(p), file_date(p)] for p in files])


_FILES_SCHEMA = pa.schema([("source_file", pa.string()), ("file_date", pa.date32())])
_BAD_FILES_SCHEMA = pa.schema([("source_file", pa.string()), ("rows_read", pa.int64()),
                               ("reason", pa.string())])


def _compressed(path: Path) -> bool:
    """Whether the file is gzip or zstd compressed, by its first bytes (whatever its name)."""
    return sniff_compression(path) is not None


# what reading one bad file can raise (bad bytes, a broken compressed stream, a file that
# vanished or cannot be opened, a file DuckDB or the XES parser refuses): that file is rejected
# alone; anything else is a bug and propagates
READ_ERRORS: tuple[type[BaseException], ...] = (
    duckdb.Error, UserError, OSError, EOFError, zlib.error, ValueError)
try:
    import zstandard

    READ_ERRORS += (zstandard.ZstdError,)
except ImportError:  # pragma: no cover - zstandard is optional
    pass


def file_problem(path: Path, source: Source) -> str | None:
    """Why the path a source's glob matched cannot be read as an export file, or None: a
    directory, a broken link, not a regular file, cannot be opened, or (Parquet) not a Parquet
    file. Such a path is rejected alone (`rejected_files`); every other file loads."""
    if path.is_symlink() and not path.exists():
        return f"a broken link to {os.readlink(path)}"
    if path.is_dir():
        return "a directory, not a file" if not path.is_symlink() else \
            f"a link to a directory ({os.readlink(path)}), not a file"
    if not path.is_file():
        return "not a regular file (a pipe, socket or device)"
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            if source.format == "parquet" and head == b"PAR1":
                fh.seek(-4, os.SEEK_END)
                tail = fh.read(4)
    except OSError as exc:
        return f"cannot be opened: {exc.strerror or exc}"
    if source.format == "parquet":
        comp = sniff_compression(path)
        if comp is not None:
            return (f"{comp}-compressed, but Parquet is read as is (it compresses inside); "
                    "decompress the file")
        if head != b"PAR1" or tail != b"PAR1":
            return ("empty, not a Parquet file" if not head else
                    "not a Parquet file (no PAR1 marker at its start and end; truncated, or "
                    "another format named .parquet)")
    return None


def physical_records(path: Path, source: Source) -> int:
    """The records a rejected file holds as far as they can be counted without parsing it: its
    physical lines (decompressed as far as the stream reads; a CSV header not counted), the
    rows in a Parquet footer, the `<event` elements of an XES log; 0 for what is not a file."""
    if not path.is_file():
        return 0
    if source.format == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (OSError, ValueError, pa.ArrowException):
            return 0
    lines, last, events = 0, b"\n", 0
    for chunk in _readable_bytes(path):
        lines += chunk.count(b"\n")
        events += chunk.count(b"<event")
        last = chunk[-1:] or last  # a broken stream may yield nothing
    if source.format == "xes":
        return events
    lines += last != b"\n"
    if source.format == "csv" and source.header and source.delimiter != "whitespace":
        lines -= 1 if lines else 0
    return lines


def _readable_bytes(path: Path) -> Iterator[bytes]:
    """The file's decompressed bytes as far as they can be read: a broken gzip stream up to
    the break (fed to zlib piece by piece, so nothing decoded before the break is lost)."""
    try:
        if sniff_compression(path) != "gzip":
            with open_binary(path) as fh:
                while chunk := fh.read(1 << 20):
                    yield chunk
            return
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        with open(path, "rb") as fh:
            while raw := fh.read(1 << 16):
                while raw:
                    yield inflate.decompress(raw)
                    raw = inflate.unused_data  # a next gzip member
                    if raw:
                        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    except READ_ERRORS:
        return  # a broken stream: the bytes before the break


def _read_failure(path: Path, exc: BaseException) -> str:
    """The rejected_files reason for a file whose reading raised `exc`."""
    comp = sniff_compression(path)
    text = _first_line(exc)
    if type(exc).__module__.startswith(("py4j", "pyspark")):
        from transforms import spark_ingest

        text = spark_ingest.error_text(exc)
    for prefix in (f"cannot read {path}: ", f"{path}: "):  # the file is named beside it
        text = text.removeprefix(prefix)
    broken = _gzip_break(path) if comp == "gzip" else None
    if broken is not None:
        return f"a broken gzip stream (truncated or corrupt): {broken}"
    if isinstance(exc, (EOFError, zlib.error)) or (comp and isinstance(exc, OSError)):
        return f"a broken {comp or 'compressed'} stream (truncated or corrupt): {text}"
    return f"cannot be read: {text}"


def _gzip_break(path: Path) -> str | None:
    """What is wrong with the gzip stream of `path` (None: it decompresses to its end)."""
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        with open(path, "rb") as fh:
            while raw := fh.read(1 << 16):
                while raw:
                    inflate.decompress(raw)
                    raw = inflate.unused_data
                    if raw:
                        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    except zlib.error as exc:
        return str(exc)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None if inflate.eof else "the file ends before the end of the compressed stream"


def _stage_files(con: duckdb.DuckDBPyConnection, source: Source, files: list[Path]
                 ) -> list[list]:
    """Stage `files` (`_stage`: one row per physical record) and return the files that cannot
    be read, as `rejected_files` rows [file, rows read, reason]: each bad file is rejected
    alone (`file_problem`, or an error while reading it) and every other file is staged as
    without it. All files are read in one pass; only when that fails, one at a time."""
    stage = _STAGERS.get(source.format, _stage_csv)
    errors = READ_ERRORS
    if _on_spark(con):
        from transforms import spark_ingest

        errors += spark_ingest.read_errors()
    bad: list[list] = []
    good: list[Path] = []
    for path in files:
        why = file_problem(path, source)
        if why is None:
            good.append(path)
        else:
            bad.append([str(path), physical_records(path, source), why])
    try:
        stage(con, source, good)
        return bad
    except errors:
        pass  # one of them is unreadable: find which, file by file
    staged = False  # whether _stage_all holds a file yet
    for path in good:
        try:
            stage(con, source, [path])
        except errors as exc:
            bad.append([str(path), physical_records(path, source), _read_failure(path, exc)])
            continue
        if staged:  # (the same stager: the same columns in the same order)
            con.execute("insert into _stage_all select * from _stage")
        else:
            con.execute("create or replace temp table _stage_all as select * from _stage")
            staged = True
    if staged:
        con.execute("create or replace temp table _stage as select * from _stage_all")
        con.execute("drop table _stage_all")
    else:
        _empty_stage(con, source)
    return bad


def _stage_jsonl(con: duckdb.DuckDBPyConnection, source: Source, files: list[Path]) -> None:
    """Stage JSON-lines files as one row per line: file, line, raw text and field strings."""
    if not files:
        _empty_stage(con, source)
        return
    utf8 = source.encoding.replace("_", "-") in ("utf-8", "utf8", "utf-8-sig")
    plain = [p for p in files if utf8 and not _compressed(p)]
    if _on_spark(con):
        from transforms import spark_ingest

        # Spark's text reader decodes bad bytes silently: a file that is not UTF-8 is read in
        # Python, as DuckDB's read_text refusing it has it read below
        plain = [p for p in plain if _is_utf8(p)]
        spark_ingest.stage_jsonl(con, source, plain,
                                 _packed_lines(source, [p for p in files if p not in plain]),
                                 _id_columns(source))
        return
    try:
        _stage_jsonl_lines(con, source, plain, [p for p in files if p not in plain])
    except duckdb.InvalidInputException as exc:
        if "UTF-8" not in str(exc):
            raise
        # read_text refuses a file that is not UTF-8: such files are read in Python, where
        # their lines with undecodable bytes are quarantined and the others load
        plain = [p for p in plain if _is_utf8(p)]
        _stage_jsonl_lines(con, source, plain, [p for p in files if p not in plain])


def _packed_lines(source: Source, packed: list[Path]) -> pa.Table:
    """The lines of `packed` files read in Python: (source_file, source_line, raw_record with
    its line end, undecodable)."""
    utf8 = source.encoding.replace("_", "-") in ("utf-8", "utf8", "utf-8-sig")
    # compressed files, files in another encoding and files with bytes that are not UTF-8 are
    # read line by line in Python (read_text neither decompresses nor decodes); lines end at
    # LF, CRLF or a lone CR; a line with undecodable bytes is quarantined
    enc = "utf-8-sig" if utf8 else source.encoding
    lines: dict[str, list] = {"source_file": [], "source_line": [], "raw_record": [],
                              "undecodable": []}
    for path in packed:
        with open_binary(path) as raw, io.TextIOWrapper(raw, encoding=enc, errors="replace",
                                                         newline=None) as fh:
            for n, text in enumerate(fh, start=1):
                lines["source_file"].append(str(path))
                lines["source_line"].append(n)
                lines["raw_record"].append(text)
                lines["undecodable"].append("\ufffd" in text)
    return pa.table({
        "source_file": pa.array(lines["source_file"], pa.string()),
        "source_line": pa.array(lines["source_line"], pa.int64()),
        "raw_record": pa.array(lines["raw_record"], pa.string()),
        "undecodable": pa.array(lines["undecodable"], pa.bool_())})


def _stage_jsonl_lines(con: duckdb.DuckDBPyConnection, source: Source, plain: list[Path],
                       packed: list[Path]) -> None:
    con.register("_packed_lines", _packed_lines(source, packed))
    # every field is pulled out of one parse of the line: a list of JSON paths at once
    text_cols = [c for c in source.columns if source.type_of(c) != "json"]
    json_cols = [c for c in source.columns if source.type_of(c) == "json"]

    def json_path(field: str) -> str:
        return "$." + ".".join('"' + part.replace('"', '\\"') + '"'
                               for part in field.split("."))

    undecodable = f"undecodable bytes: the file is not {source.encoding}"
    # an id (the record's identity, its customer, its anonymous id) is a JSON string or
    # number; true, an object or an array would become a customer named 'true' or '{"id":1}'
    # (the id columns' JSON values come with the json columns' in one json_extract, and their
    # types are read from those small values: each line is parsed by json_valid and twice more)
    id_checks = []
    id_cols = [c for c in _id_columns(source) if c in text_cols]
    for col, what in _id_columns(source).items():
        if col in text_cols:
            i = text_cols.index(col) + 1
            k = len(json_cols) + id_cols.index(col) + 1
            id_checks.append(
                f"when ok and json_type(jvals[{k}]) not in ('VARCHAR', 'BIGINT', 'UBIGINT', "
                f"'DOUBLE', 'NULL') then {literal(f'{what} is not text or a number in {col}: ')} "
                f"|| left(vals[{i}], 60)")
    fields = [f"vals[{i + 1}] as {ident('s_' + c)}" for i, c in enumerate(text_cols)]
    fields += [f"jvals[{i + 1}] as {ident('s_' + c)}" for i, c in enumerate(json_cols)]
    params: list[object] = [
        [str(p) for p in plain] or [""],
        [json_path(source.columns[c]) for c in text_cols] or ["$"],
        [json_path(source.columns[c]) for c in json_cols + id_cols] or ["$"],
    ]
    try:
        con.execute(f"""
        create or replace temp table _stage as
        with texts as (
            -- a line ends at LF, CRLF or a lone CR (old Mac exports)
            select filename as source_file,
                   string_split(case when contains(content, chr(13))
                                     then replace(replace(content, chr(13) || chr(10), chr(10)),
                                                  chr(13), chr(10))
                                     else content end, chr(10)) as lines
            from read_text(?) where filename <> ''
        ), numbered as (
            select t.source_file, generate_subscripts(t.lines, 1) as source_line,
                   unnest(t.lines) as raw_record, false as undecodable
            from texts t
            union all
            select source_file, source_line, rtrim(raw_record, chr(10)), undecodable
            from _packed_lines
        ), stripped as (
            select n.source_file, f.file_date, n.source_line, n.undecodable,
                   -- a byte-order mark opens the file, it is not part of its first record
                   -- (the guards spare the copy of a line with nothing to trim)
                   case when n.source_line = 1 and starts_with(n.raw_record, chr(65279))
                        then ltrim(rtrim(n.raw_record, chr(13)), chr(65279))
                        when ends_with(n.raw_record, chr(13)) then rtrim(n.raw_record, chr(13))
                        else n.raw_record end as raw_record
            from numbered n join _files f using (source_file)
        ), lines as (
            -- a valid line is an object when its first character after JSON whitespace is a
            -- brace (DuckDB's JSON reader takes no comments): no second parse of the line
            select *,
                   coalesce(json_valid(raw_record)
                            and (starts_with(raw_record, '{{') or starts_with(
                                 ltrim(raw_record, ' ' || chr(9) || chr(10) || chr(13)), '{{')),
                            false) as ok
            from stripped
            -- a blank line (nothing but spaces and tabs, or the empty string after the final
            -- newline) is no record, as in CSV (a line opening an object is none: no trim)
            where starts_with(raw_record, '{{') or trim(raw_record, ' ' || chr(9)) <> ''
        ), extracted as (
            select *,
                   case when ok then json_extract_string(raw_record, ?::VARCHAR[]) end as vals,
                   case when ok then json_extract(raw_record, ?::VARCHAR[]) end as jvals
            from lines
        )
        select source_file, file_date, source_line, raw_record,
               case when undecodable then {literal(undecodable)}
                    when not ok then 'malformed JSON line' {' '.join(id_checks)}
               end as malformed,
               {', '.join(fields)}
        from extracted
    """, params)
    finally:
        con.unregister("_packed_lines")


def _id_columns(source: Source) -> dict[str, str]:
    """The mapped columns holding an id, and what id: the customer (and anonymous) id of the
    source's events, and its id_columns."""
    out = {c: "id" for c in source.id_columns}
    if source.event is not None:
        for ref, what in ((source.event.anonymous_id, "anonymous id"),
                          (source.event.customer, "customer id")):
            for c in ref.columns if ref is not None else ():
                if c in source.columns and source.type_of(c) == "string":
                    out[c] = what
    return out


def _is_utf8(path: Path) -> bool:
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _text_lines(path: Path, encoding: str) -> Iterator[str]:
    """The file's lines as text (decompressed; a leading byte-order mark dropped). Bytes that
    are not `encoding` become U+FFFD, and such records are quarantined as undecodable."""
    enc = "utf-8-sig" if encoding.replace("_", "-") in ("utf-8", "utf8") else encoding
    with open_binary(path) as raw, io.TextIOWrapper(raw, encoding=enc, errors="replace",
                                                     newline="") as fh:
        yield from fh


class _RecordTooLong(Exception):
    """A quoted field has run over MAX_RECORD_LINES physical lines."""


# a quoted field may hold line breaks, but a record longer than this many physical lines is an
# unterminated quote (this also bounds the work of re-reading after one)
MAX_RECORD_LINES = 100
UNTERMINATED = "unterminated quote"


def _other_delimiter(header: str, source: Source) -> str | None:
    """When a header line split by another common delimiter holds every mapped field: the
    hint for the reason (one file of a comma source exported with semicolons)."""
    want = set(source.columns.values())
    for delim, name in ((";", "';'"), ("\t", "tabs"), ("|", "'|'"), (",", "','")):
        if delim == source.delimiter or delim not in header:
            continue
        fields = {f.strip().strip('"').lstrip("\ufeff") for f in header.rstrip("\r\n").split(delim)}
        if want <= fields:
            return (f" (its fields are separated by {name}, the source's by "
                    f"{source.delimiter!r}: export it like the others, or give such files a "
                    f"source of their own with delimiter: {delim!r})")
    return None


def _csv_records(path: Path, source: Source
                 ) -> Iterator[tuple[int, list[str], str, str | None]]:
    """(first physical line number, fields, raw text, problem) per CSV record, header included.

    A record is one physical line, or several when a quoted field holds line breaks. A quoted
    field that runs to the end of the file, over more than MAX_RECORD_LINES lines, or into a
    record of the wrong width (or that the csv module cannot parse) is an unterminated quote:
    its first line alone is the record (problem "unterminated quote: ..."), and reading resumes
    at the next physical line, so every later line is read as if the quote had been closed."""
    if source.delimiter == "whitespace":
        for n, line in enumerate(_text_lines(path, source.encoding), start=1):
            raw = line.rstrip("\r\n")
            yield n, raw.split(), raw, None
        return
    src = _text_lines(path, source.encoding)
    pending: list[str] = []  # lines to read again (after an unterminated quote), reversed
    buffer: list[str] = []  # the physical lines of the record being read
    state = {"eof": False}

    def lines() -> Iterator[str]:
        while True:
            if pending:
                line = pending.pop()
            else:
                line = next(src, None)
                if line is None:
                    state["eof"] = True
                    return
            buffer.append(line)
            if len(buffer) > MAX_RECORD_LINES:
                raise _RecordTooLong
            yield line

    def new_reader() -> Iterator[list[str]]:
        return csv.reader(lines(), delimiter=source.delimiter, quotechar=source.quote)

    reader = new_reader()
    line_no = 1
    width: int | None = None  # the header's (or first record's) number of fields
    while True:
        problem = None
        try:
            row: list[str] | None = next(reader)
        except StopIteration:
            return
        except _RecordTooLong:
            row, problem = None, f"runs over more than {MAX_RECORD_LINES} lines"
        except csv.Error:
            row = None  # e.g. a NUL byte: quarantined as malformed
        if row is not None and state["eof"]:
            problem = "runs to the end of the file"
        elif len(buffer) > 1 and problem is None and (
                row is None or (width is not None and len(row) != width)):
            problem = f"runs over {len(buffer)} lines into a record of the wrong width"
        elif len(buffer) > 1 and problem is None and _whole_record(buffer[1], width, source):
            problem = "swallows the next line, which is a whole record by itself"
        if problem is not None and len(buffer) > 1:
            # the record is the quote's first line; the lines after it are read again
            first, rest = buffer[0], buffer[1:]
            buffer.clear()
            pending.extend(reversed(rest))
            state["eof"] = False
            reader = new_reader()
            yield line_no, [], first.rstrip("\r\n"), f"{UNTERMINATED}: the quoted field " \
                f"opened on this line {problem}"
            line_no += 1
            continue
        raw = "".join(buffer)
        n_lines = len(buffer)
        buffer.clear()
        if problem is not None:  # a one-line record with an open quote at the end of the file
            problem = f"{UNTERMINATED}: the quoted field opened on this line {problem}"
        if width is None and row:
            width = len(row)
        yield line_no, row if row is not None else [], raw.rstrip("\r\n"), problem
        line_no += n_lines


def _whole_record(line: str, width: int | None, source: Source) -> bool:
    """Whether `line` alone is a complete record of `width` fields (no quote left open): the
    line after a line break inside a quoted field is then a record of its own, and the quote
    was never closed. (Text continued in a quoted field ends it, with a quote and few fields.)"""
    if width is None or width < 2:
        return False
    try:
        rows = list(csv.reader([line], delimiter=source.delimiter, quotechar=source.quote,
                               strict=True))
    except csv.Error:
        return False
    return len(rows) == 1 and len(rows[0]) == width


def _plain_csv(path: Path, source: Source) -> tuple[str, dict[int, list[str]]] | None:
    """(header line, fields of the lines holding a quote character by line number) of a CSV
    file that DuckDB can split line by line with exactly the outcome of `_csv_records`, else
    None: a plain (uncompressed) UTF-8 file with a header, no CR (every line ends at LF), no NUL
    byte (which the csv module refuses), no line longer than the csv module's field size limit,
    and every quote closed on its own line (each line holding one parses alone in strict mode,
    so no record spans lines; those few lines are split by the csv module, the others at each
    delimiter)."""
    if source.delimiter == "whitespace" or not source.header or \
            source.encoding.replace("_", "-").lower() not in ("utf-8", "utf8", "utf-8-sig"):
        return None
    if sniff_compression(path) is not None:
        return None
    quote, limit = source.quote.encode(), csv.field_size_limit()
    decoder = codecs.getincrementaldecoder("utf-8")()
    head, line = b"", 0  # the first line's bytes; the length of the line being read
    quoted = False
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                if b"\r" in chunk or b"\x00" in chunk:
                    return None
                quoted = quoted or quote in chunk
                decoder.decode(chunk)
                if b"\n" not in head and len(head) <= limit:
                    head += chunk[: limit + 1]
                pieces = chunk.split(b"\n")
                line += len(pieces[0])
                if len(pieces) > 1:
                    line = max(line, *map(len, pieces[1:-1]), 0)
                    if line > limit:
                        return None
                    line = len(pieces[-1])
                if line > limit:
                    return None
            decoder.decode(b"", final=True)
        fields: dict[int, list[str]] = {}
        if quoted:
            with open(path, encoding="utf-8-sig", newline="") as fh:
                for n, text in enumerate(fh, start=1):
                    if source.quote not in text:
                        continue
                    rows = list(csv.reader([text.removesuffix("\n")], strict=True,
                                           delimiter=source.delimiter,
                                           quotechar=source.quote))
                    if len(rows) != 1:
                        return None
                    fields[n] = rows[0]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return head.split(b"\n", 1)[0].decode("utf-8").removeprefix("\ufeff"), fields


def _header_positions(source: Source, header_line: str
                      ) -> tuple[dict[str, int], list[str], int, str | None]:
    """(column -> field position, fields the header lacks, header width, hint) of a file's
    header line read as `_stage_csv` reads it."""
    row = next(csv.reader([header_line], delimiter=source.delimiter, quotechar=source.quote),
               [])
    header = [h.strip().lstrip("\ufeff") for h in row]
    positions = {c: header.index(f) for c, f in source.columns.items() if f in header}
    missing = [f for c, f in source.columns.items() if c not in positions]
    hint = _other_delimiter(header_line, source) if missing else None
    return positions, missing, len(header), hint


def _stage_plain_csv(con: duckdb.DuckDBPyConnection, source: Source,
                     files: list[tuple[Path, str, dict[int, list[str]]]]) -> None:
    """`_stage_csv_plain`: the records of plain CSV files (`_plain_csv`), one row per line
    after the header, split by DuckDB (a line holding a quote as the csv module split it): the
    same rows `_csv_records` gives (blank lines, nothing but spaces and tabs without a
    delimiter, are no record; a row of the wrong width, a file header lacking a mapped field, a
    U+FFFD character are malformed with the same reasons)."""
    cols = list(source.columns)
    layout = []
    quoted: dict[str, list] = {"source_file": [], "source_line": [], "f": []}
    for path, header_line, fields_of in files:
        for n, row in fields_of.items():
            quoted["source_file"].append(str(path))
            quoted["source_line"].append(n)
            quoted["f"].append(row)
        positions, missing, width, hint = _header_positions(source, header_line)
        malformed = (f"file header lacks column(s): {', '.join(missing)}{hint or ''}"
                     if missing else None)
        layout.append((str(path), file_date(path), width, malformed,
                       [positions.get(c, -1) + 1 for c in cols]))
    if _on_spark(con):
        from transforms import spark_ingest

        spark_ingest.stage_plain_csv(con, source, files, layout)
        return
    con.execute("create or replace temp table _csv_layout (source_file VARCHAR, "
                "file_date DATE, width BIGINT, header_problem VARCHAR, positions BIGINT[])")
    con.executemany("insert into _csv_layout values (?, ?, ?, ?, ?)", [list(r) for r in layout])
    con.register("_csv_quoted", pa.table({
        "source_file": pa.array(quoted["source_file"], pa.string()),
        "source_line": pa.array(quoted["source_line"], pa.int64()),
        "f": pa.array(quoted["f"], pa.list_(pa.string()))}))
    undecodable = f"undecodable bytes: the file is not {source.encoding}"
    fields = ", ".join(
        f"case when malformed is null and positions[{i + 1}] > 0 "
        f"then f[positions[{i + 1}]] end as {ident('s_' + c)}" for i, c in enumerate(cols))
    con.execute(f"""
        create or replace temp table _stage_csv_plain as
        with texts as (
            select filename as source_file,
                   string_split(case when starts_with(content, chr(65279))
                                     then substr(content, 2) else content end, chr(10)) as lines
            from read_text($files)
        ), numbered as (
            select source_file, generate_subscripts(lines, 1) as source_line,
                   unnest(lines) as raw_record
            from texts
        ), records as (
            select n.source_file, l.file_date, n.source_line, n.raw_record, l.positions,
                   coalesce(q.f, string_split(n.raw_record, $delim)) as f, l.width,
                   l.header_problem
            from numbered n join _csv_layout l using (source_file)
            left join _csv_quoted q on q.source_file = n.source_file
                                   and q.source_line = n.source_line
            where n.source_line > 1
              and (contains(n.raw_record, $delim) or trim(n.raw_record, ' ' || chr(9)) <> '')
        ), checked as (
            select *, case when header_problem is not null then header_problem
                           when contains(raw_record, chr(65533)) then $undecodable
                           when len(f) <> width then 'malformed CSV row: expected '
                                || width::VARCHAR || ' fields, got ' || len(f)::VARCHAR
                      end as malformed
            from records
        )
        select source_file, file_date, source_line, raw_record, malformed, {fields}
        from checked
    """, {"delim": source.delimiter, "undecodable": undecodable,
          "files": [str(p) for p, _, _ in files]})
    con.unregister("_csv_quoted")


def _stage_csv(con: duckdb.DuckDBPyConnection, source: Source, files: list[Path]) -> None:
    """Stage CSV files as one row per record: file, line, raw text and field strings. Plain
    files (`_plain_csv`: no record spans lines, ...) are split by DuckDB, the others read record
    by record with Python's csv module (`_csv_records`); both give the same rows."""
    cols = list(source.columns)
    data: dict[str, list] = {k: [] for k in
                             ("source_file", "file_date", "source_line", "raw_record", "malformed")}
    for c in cols:
        data["s_" + c] = []
    plain = [(p, *h) for p in files if (h := _plain_csv(p, source)) is not None]
    slow = [p for p in files if p not in {q for q, _, _ in plain}]
    for path in slow:
        day = file_date(path)
        records = _csv_records(path, source)
        header_missing: list[str] = []
        hint: str | None = None
        positions: dict[str, int] = {}
        n_header = None
        if not source.header:  # fields are named by position: column0, column1, ...
            positions = {c: int(f[len("column"):]) for c, f in source.columns.items()
                         if f.startswith("column") and f[len("column"):].isdigit()}
            header_missing = [f for c, f in source.columns.items() if c not in positions]
        for line_no, row, raw, problem in records:
            if line_no == 1 and source.header:
                header = [h.strip().lstrip("\ufeff") for h in row]
                n_header = len(header)
                positions = {c: header.index(f) for c, f in source.columns.items() if f in header}
                header_missing = [f for c, f in source.columns.items() if c not in positions]
                hint = _other_delimiter(raw, source) if header_missing else None
                continue
            if len(row) <= 1 and raw.strip(" \t\r") == "":
                continue  # a blank line (nothing but spaces and tabs), as in JSON lines
            if n_header is None:
                n_header = len(row)  # no header: the first record gives the width
            malformed = None
            if header_missing:
                what = "file header lacks" if source.header else "no such position for"
                malformed = f"{what} column(s): {', '.join(header_missing)}{hint or ''}"
            elif problem is not None:
                malformed = problem
            elif "\ufffd" in raw:
                malformed = f"undecodable bytes: the file is not {source.encoding}"
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
    _register(con, "_stage_arrow", staged)
    try:
        if plain:
            _stage_plain_csv(con, source, plain)
            # both in the same column order
            con.execute("create or replace temp table _stage as select * from _stage_arrow "
                        "union all select * from _stage_csv_plain")
            con.execute("drop table _stage_csv_plain")
        else:
            con.execute("create or replace temp table _stage as select * from _stage_arrow")
    finally:
        _unregister(con, "_stage_arrow")


def _stage_parquet(con: duckdb.DuckDBPyConnection, source: Source, files: list[Path]) -> None:
    """Stage Parquet files: one row per record (its row number in the file as its line), the
    record as JSON for the quarantine, mapped fields as text (dotted paths into structs).
    Schemas are merged by name: a field a file lacks is null in its rows (as a key a JSON line
    lacks; a required one quarantines them), whichever files are staged together."""
    if not files:
        _empty_stage(con, source)
        return
    if _on_spark(con):
        from transforms import spark_ingest

        spark_ingest.stage_parquet(con, source, files)
        return
    present, names = _parquet_fields(source, files)

    def field_sql(path: str) -> str:
        parts = path.split(".")
        return "r." + ".".join(ident(p) for p in parts)

    def field(c: str, f: str) -> str:
        if f not in present:
            return "cast(null as VARCHAR)"
        x = field_sql(f)
        if source.type_of(c) == "timestamp":
            return (f"case when typeof({x}) like 'TIMESTAMP%' "
                    f"then strftime(cast({x} as TIMESTAMP), '%Y-%m-%dT%H:%M:%S.%f') "
                    f"else cast({x} as VARCHAR) end")
        if source.type_of(c) == "json":  # a struct, list or map as JSON; a text as it is
            return (f"case when typeof({x}) = 'VARCHAR' then cast({x} as VARCHAR) "
                    f"else cast(to_json({x}) as VARCHAR) end")
        return f"cast({x} as VARCHAR)"

    fields = ", ".join(f"{field(c, f)} as {ident('s_' + c)}" for c, f in source.columns.items())
    # the reader's virtual columns name the file and the row, out of the record's JSON; a file
    # with its own `filename` column has the file's name under another, and one with its own
    # `file_row_number` is refused by the option (a rejected file: no row is lost unseen)
    record, file_col, options = "to_json(r)", "r.filename", ""
    if "filename" in names:
        record = "json_merge_patch(to_json(r), '{\"_oj_file\": null}')"
        file_col, options = "r._oj_file", ", filename = '_oj_file'"
    if "file_row_number" in names:
        options += ", file_row_number = true"
    try:
        con.execute(f"""
            create or replace temp table _stage as
            select {file_col} as source_file, f.file_date, r.file_row_number + 1 as source_line,
                   cast({record} as VARCHAR) as raw_record,
                   cast(null as VARCHAR) as malformed, {fields}
            from read_parquet(?, union_by_name = true{options}) r
            join _files f on f.source_file = {file_col}""", [[str(p) for p in files]])
    except duckdb.Error as exc:
        raise UserError(_first_line(exc)) from None


def _parquet_fields(source: Source, files: list[Path]) -> tuple[set[str], set[str]]:
    """The mapped fields (dotted paths into structs) some file of `files` holds, and the
    top-level column names of the files, from their footers. A file whose footer pyarrow
    cannot read counts as holding every field: DuckDB's reader then decides (and a file it
    cannot read is rejected)."""
    import pyarrow.parquet as pq

    wanted = set(source.columns.values())
    found: set[str] = set()
    names: set[str] = set()
    for path in files:
        try:
            schema = pq.read_schema(path)
        except (OSError, ValueError, pa.ArrowException):
            found = wanted
            continue
        names.update(schema.names)
        for field_path in wanted - found:
            kind: pa.Schema | pa.DataType = schema
            for part in field_path.split("."):
                if not isinstance(kind, pa.Schema) and not pa.types.is_struct(kind):
                    break
                i = kind.get_field_index(part)
                if i < 0:
                    break
                kind = kind.field(i).type
            else:
                found.add(field_path)
    return found, names


def _stage_xes(con: duckdb.DuckDBPyConnection, source: Source, files: list[Path]) -> None:
    """Stage XES event logs: one row per event (its position in the file as its line), its
    mapped attributes as text (`case:<key>` for trace attributes, as pm4py names them) and the
    event as JSON for the quarantine. The files are parsed in Python (streamed with lxml, on
    the driver on Spark) and handed to either engine as Arrow."""
    from transforms.readers import xes_table

    keys = list(dict.fromkeys(source.columns.values()))
    cols = {"source_file": [], "source_line": [], "raw_record": [],
            **{"s_" + c: [] for c in source.columns}}
    for path in files:
        events, present = xes_table(path, keys)
        values = {k: events.column(k).to_pylist() for k in present}
        n = events.num_rows  # (an event holding none of the keys is still a record)
        cols["source_file"] += [str(path)] * n
        cols["source_line"] += range(1, n + 1)
        # (as DuckDB's to_json of the attributes the file holds writes it)
        cols["raw_record"] += [
            json.dumps({k: values[k][i] for k in present}, ensure_ascii=False,
                       separators=(",", ":")) for i in range(n)]
        for c, f in source.columns.items():
            cols["s_" + c] += values[f] if f in present else [None] * n
    if not cols["source_file"]:
        _empty_stage(con, source)
        return
    _register(con, "_xes_events", pa.table(
        {k: pa.array(v, pa.int64() if k == "source_line" else pa.string())
         for k, v in cols.items()}))
    try:
        con.execute(f"""
            create or replace temp table _stage as
            select x.source_file, f.file_date, x.source_line, x.raw_record,
                   cast(null as VARCHAR) as malformed,
                   {', '.join('x.' + ident('s_' + c) for c in source.columns)}
            from _xes_events x join _files f on f.source_file = x.source_file""")
    finally:
        _unregister(con, "_xes_events")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_STAGERS = {"csv": _stage_csv, "jsonl": _stage_jsonl, "parquet": _stage_parquet,
            "xes": _stage_xes}


def _empty_stage(con: duckdb.DuckDBPyConnection, source: Source) -> None:
    cols = ", ".join(f"NULL::VARCHAR as {ident('s_' + c)}" for c in source.columns)
    con.execute(f"""
        create or replace temp table _stage as
        select NULL::VARCHAR as source_file, NULL::DATE as file_date, NULL::BIGINT as source_line,
               NULL::VARCHAR as raw_record, NULL::VARCHAR as malformed, {cols}
        where false""")


# --------------------------------------------------------------------------- classifying


def _finite(d: str) -> str:
    """`isfinite(d)` of a DOUBLE in SQL both engines run (NaN compares above every number on
    both; NULL stays NULL). Whole is `d % 1 = 0` (fmod on both; `trunc` is a BIGINT cast on
    Spark, which overflows)."""
    return f"{d} between -1.7976931348623157e308 and 1.7976931348623157e308"


def _typed_expr(source: Source, col: str, p: Params, engine: str = "duckdb") -> str:
    s = ident("s_" + col)
    kind = source.type_of(col)
    if kind == "timestamp":  # ISO 8601, a strftime pattern or epoch numbers (readers.py)
        return timestamp_sql(s, source.time_format(col), source.timezone, p, engine=engine)
    if kind == "decimal":
        return f"try_cast({s} as {SQL_TYPES['decimal']})"
    if kind == "integer":  # a whole number only (5.0 and 1e3 are; 5.4 is not, never rounded)
        d = f"try_cast({s} as DOUBLE)"
        return (f"case when {_finite(d)} and {d} % 1 = 0 "
                f"then coalesce(try_cast({s} as BIGINT), try_cast({d} as BIGINT)) end")
    if kind == "json":  # (Spark has no JSON type: JSON text, as json_extract wrote it)
        return s if engine == "spark" else f"{s}::JSON"
    return f"nullif({s}, '')"


def _classify(con: duckdb.DuckDBPyConnection, source: Source, append: bool = False) -> None:
    """Type every staged row and give each its partition and, if rejected, its reason
    (`_classified`; with `append`, the staged rows are added to it: a load stages its files
    in groups, `_stage_groups`, and every row depends on its own file's rows only).

    A rejected row of a dated file belongs to the file's export day; one of a file without a
    date in its name to the earliest event day of the file's valid rows. A file without a date
    and without one valid row has no partition (NULL): it is a rejected file."""
    p = Params()
    engine = "spark" if _on_spark(con) else "duckdb"
    typed = ",\n".join(f"{_typed_expr(source, c, p, engine)} as {ident(c)}"
                       for c in source.columns)
    ev = ident(source.event_time)
    if source.clock_skew_column:
        rc = ident(source.clock_skew_column)
        skew = (f"coalesce(abs(epoch({ev}) - epoch({rc})) > "
                f"{p.add(source.clock_skew_max_seconds)}, false)")
        event_ts = f"case when _skew then {rc} else {ev} end"
    else:
        skew = "false"
        event_ts = ev
    checks: list[str] = []
    for col in source.required:
        checks.append(f"when coalesce({ident('s_' + col)}, '') = '' "
                      f"then {p.add('missing required field: ' + col)}")
    for col in source.columns:
        kind = source.type_of(col)
        s = ident("s_" + col)
        d = f"try_cast({s} as DOUBLE)"
        if kind == "integer":
            checks.append(f"when {_finite(d)} and {d} % 1 <> 0 "
                          f"then {p.add(f'not a whole number in {col}: ')} || left({s}, 60)")
        if kind == "decimal":
            checks.append(
                f"when {ident(col)} is null and {_finite(d)} and abs({d}) >= "
                f"{p.add(float(DECIMAL_LIMIT))} then "
                f"{p.add(f'{col} out of range of {SQL_TYPES[kind]} (below 10^16 in size): ')}"
                f" || left({s}, 60)")
        if kind == "timestamp" and source.time_format(col) == "iso":
            # an offset lies within ±18:00 (ISO 8601; real zones span -12:00..+14:00) and its
            # minutes below 60; DuckDB would read +25:00 as an instant a day away
            # (a group each: '' when absent on both engines)
            h = f"try_cast(regexp_extract({s}, {literal(TZ_OFFSET_RE)}, 1) as INTEGER)"
            m = (f"coalesce(try_cast(regexp_extract({s}, {literal(TZ_OFFSET_RE)}, 2) "
                 "as INTEGER), 0)")
            checks.append(f"when {h} * 60 + {m} > 18 * 60 or {m} > 59 "
                          f"then {p.add(f'timestamp offset out of range in {col}: ')} "
                          f"|| left({s}, 60) || ' (offsets lie within ±18:00)'")
        if kind in ("timestamp", "decimal", "integer"):
            what = {"timestamp": "bad timestamp", "decimal": "not a number",
                    "integer": "not an integer"}[kind]
            checks.append(f"when coalesce({s}, '') <> '' and {ident(col)} is null "
                          f"then {p.add(f'{what} in {col}: ')} || left({s}, 60)")
    for col, values in source.enums.items():
        checks.append(f"when {ident(col)} is not null and not list_contains("
                      f"{p.add(list(values))}, {ident(col)}) "
                      f"then {p.add(f'unknown {col}: ')} || left({ident(col)}, 60)")
    for col, bounds in source.ranges.items():
        for bound, op, word in (("min", "<", "below minimum"), ("max", ">", "above maximum")):
            if bound in bounds:
                label = p.add(f"{col} {word} {bounds[bound]}: ")
                checks.append(f"when {ident(col)} {op} {p.add(float(bounds[bound]))} "
                              f"then {label} || {ident(col)}")
    # a dated file holds timestamps up to max_days_after_export after its export day; the
    # clock bounds every timestamp (later than now is in the future; with clock_skew, later
    # than now + max_seconds)
    lead = p.add(source.max_days_after_export + 1)
    allowance = dt.timedelta(seconds=source.clock_skew_max_seconds or 0)
    future = p.add(now_utc() + allowance)
    plausible = [f"_event_ts >= file_date + {lead}", f"_event_ts > {future}"]
    if source.earliest is not None:
        earliest = p.add(dt.datetime.combine(source.earliest, dt.time()))
        plausible.insert(0, f"_event_ts < {earliest}")
    checks.append(
        f"when {' or '.join(plausible)} "
        "then 'implausible timestamp: ' || strftime(_event_ts, '%Y-%m-%d %H:%M:%S') "
        f"|| ' UTC ' || case when file_date is not null and _event_ts >= file_date + {lead} "
        "then 'in a file exported on ' || file_date::VARCHAR else 'is in the future' end"
    )
    gap_max = p.add(source.max_days_before_data)
    late = p.add(source.late_days)
    checks.append(
        f"when cast(file_date as DATE) - cast(_event_ts as DATE) > {late} "
        "then 'arrived too late: ' "
        "|| (cast(file_date as DATE) - cast(_event_ts as DATE))::VARCHAR "
        f"|| ' days after its event day (late_days is ' || {late}::VARCHAR || ')'"
    )
    # the field strings are read here only: _classified holds the typed columns. Column lists
    # are written out (no `* EXCLUDE` / `* REPLACE` / UNION BY NAME): the same text runs on
    # the Spark engine
    staged = [ident("s_" + c) for c in source.columns]
    base = [ident(c) for c in ("source_file", "file_date", "source_line", "raw_record",
                               "malformed")]
    typed_cols = [ident(c) for c in source.columns]
    # the columns of `checked` after the field strings, and around `reason`
    kept = [*base, *typed_cols, "_skew", "_event_ts"]
    checked_cols = [*base, *staged, *typed_cols, "_skew", "_event_ts", "reason"]

    def cols(names: list[str]) -> str:
        return ", ".join(names)

    head = ("insert into _classified by name select * from (" if append else
            "create or replace temp table _classified as (")
    con.execute(f"""
        {head}
        with typed as (
            select {cols(base)},
                   {cols(staged)},
                   {typed}
            from _stage
        ), skewed as (
            select *, {skew} as _skew from typed
        ), timed as (
            select *, {event_ts} as _event_ts from skewed
        ), checked as not materialized (
            select *, case when malformed is not null then malformed
                           {' '.join(checks)}
                      end as reason
            from timed
        ), gapped as (
            -- a file without a date: days between a valid row and the next later valid row,
            -- the row's place in time order and the file's count of valid rows (only the rows
            -- of files without a date are sorted: a dated file's rows belong to their event
            -- day, or when rejected to the file's day)
            select *, case when reason is null then
                       cast(lead(_event_ts) over w as DATE) - cast(_event_ts as DATE) end
                      as _gap,
                   row_number() over w as _rn,
                   count(*) over (partition by source_file, reason is null) as _valid_rows
            from checked
            where file_date is null
            window w as (partition by source_file, reason is null
                         order by _event_ts, source_line)
        ), cut as (
            -- walking back from the file's latest day, the first gap of more than
            -- max_days_before_data days with fewer rows before it than after it: every row
            -- before it is implausibly far before the rest (a file of two distant halves is
            -- a history, not an outlier)
            select {cols(checked_cols)}, _gap,
                   coalesce(_rn <= max(case when _gap > {gap_max} and 2 * _rn < _valid_rows
                                            then _rn end)
                                   over (partition by source_file, reason is null), false)
                      as _cut
            from gapped
        ), cut_reason as (
            select {cols(checked_cols[:-1])},
                   case when _cut then 'implausible timestamp: '
                        || strftime(_event_ts, '%Y-%m-%d %H:%M:%S') || ' UTC is '
                        || (cast(min(case when reason is null and not _cut
                                          then cast(_event_ts as DATE) end)
                                     over (partition by source_file) as DATE)
                            - cast(_event_ts as DATE))::VARCHAR
                        || ' days before the rest of its file'
                        else reason end as reason
            from cut
        ), anchored as (
            select {cols(checked_cols)},
                   min(case when reason is null then cast(_event_ts as DATE) end)
                       over (partition by source_file) as _file_first_day
            from cut_reason
        )
        select {cols(kept)}, reason,
               case when reason is null then cast(_event_ts as DATE)
                    else _file_first_day end as partition_date
        from anchored
        union all
        select {cols(kept)}, reason,
               case when reason is null then cast(_event_ts as DATE)
                    else file_date end as partition_date
        from checked
        where file_date is not null)
    """, p.values)


# --------------------------------------------------------------------------- loading


def check_fields(source: Source, config_path: Path | str) -> None:
    """Stop before any work when the source's files lack a mapped field: the header of each
    CSV/TSV file (with a header), the schema of each Parquet file. Raises ConfigError naming the
    first column whose field no file has and the fields the first file has. A field missing
    from some files only is those files' fault, not the mapping's: their rows are quarantined
    (`file header lacks column(s)`) and the other files load. A path that is no readable file
    (`file_problem`) is skipped here and rejected by the load."""
    from transforms.errors import ConfigError

    missing: dict[str, tuple[Path, list[str], str]] = {}  # column -> first file lacking it
    found: set[str] = set()
    for path in source.files():
        if file_problem(path, source) is not None:
            continue
        fields: list[str] | None = None
        if source.format in ("csv", "tsv") and source.header and \
                source.delimiter != "whitespace":
            try:
                for _, row, _, _ in _csv_records(path, source):
                    fields = [h.strip().lstrip("\ufeff") for h in row]
                    break
            except READ_ERRORS:
                continue  # an unreadable file is the load's to reject
        elif source.format == "parquet":
            import pyarrow.parquet as pq

            try:
                fields = list(pq.read_schema(path).names)
            except (OSError, ValueError):
                continue  # an unreadable file is the load's to report
        if fields is None:
            continue
        for col, field_name in source.columns.items():
            top = field_name.split(".")[0] if source.format == "parquet" else field_name
            if top in fields:
                found.add(col)
            else:
                missing.setdefault(col, (path, fields, field_name))
    for col in source.columns:
        if col not in missing or col in found:
            continue
        path, fields, field_name = missing[col]
        shown = ", ".join(fields[:15]) + (", ..." if len(fields) > 15 else "")
        raise ConfigError(config_path, f"sources.{source.name}.columns.{col}",
                          f"{path.name} has no field {field_name!r} (it has: {shown})",
                          "map the column to one of those fields, or remove it")


# (source, its undated files with size and mtime) -> (first, last) valid event day
_RANGE_CACHE: dict[tuple, tuple[dt.date, dt.date] | None] = {}


def undated_day_range(source: Source) -> tuple[dt.date, dt.date] | None:
    """The first and last event day of the valid records in the source's files that carry no
    date in their name (None when there are none): read and checked exactly as a load would,
    once per file version."""
    undated = [p for p in source.files()
               if file_date(p) is None and file_problem(p, source) is None]
    if not undated:
        return None
    # rows after now are in the future: the answer holds for the clock's hour
    hour = now_utc().replace(minute=0, second=0, microsecond=0)
    key = (repr(source), hour, tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns)
                                     for p in undated))
    if key not in _RANGE_CACHE:
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            _register_files(con, undated)
            _stage_files(con, source, undated)  # an unreadable file adds no days
            _classify(con, source)
            lo, hi = con.execute("select min(partition_date), max(partition_date) "
                                 "from _classified where reason is null").fetchone()
        finally:
            con.close()
        _RANGE_CACHE[key] = (lo, hi) if lo is not None else None
    return _RANGE_CACHE[key]


def _chunk_days(source: Source, first: dt.date, last: dt.date) -> int:
    """Partition days per pass of a load of first..last: the whole range when a file without a
    date is among the source's files (it may hold rows of any day: one pass reads it once) or
    when the range's files hold at most CHUNK_BYTES; else as many days as the average export
    day's bytes let a pass read within CHUNK_BYTES (at least CHUNK_DAYS)."""
    days = (last - first).days + 1
    sizes: dict[dt.date, int] = {}
    for path in _files_for(source, first, last):
        day = file_date(path)
        if day is None:
            return days
        try:
            sizes[day] = sizes.get(day, 0) + path.stat().st_size
        except OSError:
            continue  # the load rejects it
    total = sum(sizes.values())
    if total <= CHUNK_BYTES:
        return days
    per_day = total / len(sizes)
    reach = source.max_days_after_export + source.late_days  # extra export days a pass reads
    return max(CHUNK_DAYS, min(days, int(CHUNK_BYTES / per_day) - reach))


def load_range(con: duckdb.DuckDBPyConnection, source: Source, first: dt.date, last: dt.date,
               on_partition: object = None) -> list[PartitionStats]:
    """(Re)load partitions first..last of `source`; returns one PartitionStats per day.

    The range is one pass when its files fit in CHUNK_BYTES (each file read and parsed once,
    every row's partition derived from its event time in that pass), else passes of
    `_chunk_days` days; the tables are the same either way."""
    ensure_tables(con, source)
    stats: list[PartitionStats] = []
    step = _chunk_days(source, first, last)
    day = first
    while day <= last:
        chunk_last = min(last, day + dt.timedelta(days=step - 1))
        chunk = _load_chunk(con, source, day, chunk_last, first, last)
        for s in chunk:
            if callable(on_partition):
                on_partition(s)
        stats.extend(chunk)
        day = chunk_last + dt.timedelta(days=1)
    return stats


def _stage_groups(files: list[Path]) -> list[list[Path]]:
    """The files of a pass in groups staged one at a time: consecutive files of at most
    STAGE_BYTES together (as stored; a larger file is a group by itself), at least one group
    (an empty one when there are no files)."""
    groups: list[list[Path]] = [[]]
    size = 0
    for path in files:
        try:
            n = path.stat().st_size
        except OSError:
            n = 0  # the load rejects it
        if groups[-1] and size + n > STAGE_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(path)
        size += n
    return groups


def _rank_copies(con: duckdb.DuckDBPyConnection, source: Source, first: dt.date,
                 last: dt.date) -> None:
    """`_ranked`: the classified rows of partitions first..last; a valid one with `_copy` (1:
    the first copy of its identity, which is loaded) and, for a later copy, `_dup_reason`.

    Copies are found across days and runs: the candidates of an identity are the valid rows
    read by this load (of any partition) and the rows already loaded into other partitions;
    the first in (export day, file, line) order is the original. A later copy whose content
    (any mapped column) differs from the original's is a conflicting duplicate. Also `_copies`,
    which `_demote_later_copies` reads: the rank of every candidate of an identity that has more
    than one (an identity with one candidate is its own original, `_copy` 1: only the few
    identities with copies are sorted, not every row)."""
    table = ident(raw_table(source))
    ids = list(source.identity)
    id_cols = ", ".join(ident(c) for c in ids)
    data = [c for c in source.columns if c not in ids]
    cols = ", ".join(ident(c) for c in source.columns)
    r_cols = ", ".join(f"r.{ident(c)}" for c in source.columns)
    known = {str(p): file_date(p) for p in source.files()}
    _rows_table(con, "_all_files", "source_file VARCHAR, file_date DATE", _FILES_SCHEMA,
                [[k, v] for k, v in known.items()])
    same_id = " and ".join(f"k.{ident(c)} is not distinct from r.{ident(c)}" for c in ids)
    # without id_columns a record is its file and line: it has no copies elsewhere
    loaded = "true" if source.id_columns else "false"
    con.execute(f"""
        create or replace temp table _cands as
        with staged as (
            select source_file, file_date, source_line, partition_date, {cols},
                   partition_date between $first and $last as _in_chunk, true as _staged
            from _classified where reason is null
        ), keys as (
            select distinct {id_cols} from staged where _in_chunk
        ), candidates as not materialized (
            select * from staged
            union all
            select r.source_file, af.file_date, r.source_line, r.partition_date, {r_cols},
                   false as _in_chunk, false as _staged
            from {table} r left join _all_files af using (source_file)
            where {loaded} and r.partition_date not between $first and $last
              and exists (select 1 from keys k where {same_id})
              and not exists (select 1 from staged s where s.source_file = r.source_file
                                                       and s.source_line = r.source_line)
        ), copied as (
            -- the identities with more than one candidate (one hash aggregate, no sort)
            select {id_cols} from candidates group by all having count(*) > 1
        )
        select * from candidates r
        where exists (select 1 from copied k where {same_id})
    """, {"first": first, "last": last})
    differs = ", ".join(
        f"case when cast({ident(c)} as VARCHAR) is distinct from "
        f"first_value(cast({ident(c)} as VARCHAR)) over w then {literal(c)} end"
        for c in data)
    differs_sql = f"concat_ws(', ', {differs})" if data else "''"
    con.execute(f"""
        create or replace temp table _copies as
        with ranked as (
            select source_file, source_line, partition_date, _in_chunk, _staged,
                   row_number() over w as _copy,
                   first_value(source_file || ':' || source_line) over w as _original,
                   first_value(_in_chunk) over w as _first_in_chunk,
                   {differs_sql} as _differs
            from _cands
            window w as (partition by {id_cols} order by file_date, source_file, source_line)
        )
        select *, case when _copy > 1 and _differs = '' then 'duplicate of ' || _original
                       when _copy > 1 then 'conflicting duplicate of ' || _original
                                           || ': differs in ' || _differs end as _dup_reason
        from ranked
    """)
    # a view: _copies holds the few rows with copies, so each reader joins it cheaply
    # instead of a third wide copy of every row (a view takes no parameters: the days are
    # dates, written as literals)
    con.execute(f"""
        create or replace temp view _ranked as
        select c.*, case when c.reason is null then coalesce(d._copy, 1) end as _copy,
               case when c.reason is null then d._dup_reason end as _dup_reason
        from _classified c
        left join _copies d on d._staged and d.source_file = c.source_file
                           and d.source_line = c.source_line
        where c.partition_date between {literal(first.isoformat())}::DATE
                                   and {literal(last.isoformat())}::DATE
    """)


def _demote_later_copies(con: duckdb.DuckDBPyConnection, source: Source, first: dt.date,
                         last: dt.date) -> None:
    """Rows loaded into other partitions that are later copies of a row this load loads (a
    partition re-run after a later day was loaded) move from `raw_<source>` to `quarantine` as
    duplicates, and their days' reconciliation counts follow (part of the load's transaction)."""
    table = ident(raw_table(source))
    record = "to_json({" + ", ".join(f"{literal(c)}: r.{ident(c)}" for c in source.columns) \
        + "})::VARCHAR"
    con.execute(f"""
        create or replace temp table _demoted as
        select r.partition_date, r.source_file, r.source_line,
               coalesce(c.raw_record, {record}) as raw_record, d._dup_reason
        from {table} r
        join _copies d on d.source_file = r.source_file and d.source_line = r.source_line
        left join _classified c on c.source_file = r.source_file
                               and c.source_line = r.source_line
        where r.partition_date not between ? and ?
          and d._copy > 1 and d._first_in_chunk and not d._in_chunk
    """, [first, last])
    if _on_spark(con) and not con.query("select count(*) as n from _demoted")["n"][0].as_py():
        return  # nothing moves (each write below rewrites a whole table on Spark)
    con.execute(f"""
        delete from {table} where exists (
            select 1 from _demoted d where d.source_file = {table}.source_file
              and d.source_line = {table}.source_line
              and d.partition_date = {table}.partition_date)""")
    con.execute(f"""
        insert into {QUARANTINE_TABLE}
        select ?, partition_date, source_file, source_line, raw_record, _dup_reason,
               'duplicate', now()::TIMESTAMP
        from _demoted""", [source.name])
    moved = "(select partition_date, count(*) as n from _demoted group by all)"
    if not _on_spark(con):
        con.execute(f"""
            update {RECON_TABLE} r set rows_loaded = r.rows_loaded - m.n,
                                       rows_duplicate = r.rows_duplicate + m.n
            from {moved} m
            where r.source = ? and r.partition_date = m.partition_date""", [source.name])
        return
    # Spark SQL has no UPDATE on a view: the table again, with the counts moved
    n = "case when r.source = ? then coalesce(m.n, 0) else 0 end"
    names = column_names(con, RECON_TABLE)
    new = {"rows_loaded": f"r.rows_loaded - {n}", "rows_duplicate": f"r.rows_duplicate + {n}"}
    con.create_table_as(RECON_TABLE, f"""
        select {', '.join(f'{new[c]} as {ident(c)}' if c in new else f'r.{ident(c)}'
                          for c in names)}
        from {RECON_TABLE} r left join {moved} m on r.partition_date = m.partition_date""",
                        [source.name, source.name])


def _future_files(con: duckdb.DuckDBPyConnection, source: Source) -> list[list]:
    """The source's files named with a day later than today in every time zone (see
    `future_file_day`), as `rejected_files` rows: [file, rows read, reason]. They are never
    loaded and add no partition."""
    now = now_utc()
    future = [(p, d) for p in source.files() if (d := future_file_day(p, now)) is not None]
    if not future:
        return []
    _register_files(con, [p for p, _ in future])
    unreadable = {f: n for f, n, _ in _stage_files(con, source, [p for p, _ in future])}
    counts = dict(con.execute("select source_file, count(*) from _stage group by all").fetchall())
    counts.update(unreadable)
    return [[str(p), counts.get(str(p), 0),
             f"file dated in the future: {d.isoformat()} (today {now.date().isoformat()})"]
            for p, d in future]


def _load_chunk(con: duckdb.DuckDBPyConnection, source: Source, first: dt.date,
                last: dt.date, run_first: dt.date | None = None,
                run_last: dt.date | None = None) -> list[PartitionStats]:
    """Load partitions first..last (a chunk of the run's range run_first..run_last)."""
    run_first, run_last = run_first or first, run_last or last
    future = _future_files(con, source)
    files = _files_for(source, first, last)
    _register_files(con, files)
    bad: list[list] = []
    for n, group in enumerate(_stage_groups(files)):
        # one group of files staged at a time: _classified holds them all, typed, and only
        # one group's lines and field strings are in memory beside it
        bad += _stage_files(con, source, group)
        _classify(con, source, append=n > 0)
        con.execute("drop table _stage")
    _rows_table(con, "_bad_files", "source_file VARCHAR, rows_read BIGINT, reason VARCHAR",
                _BAD_FILES_SCHEMA, bad)
    table = ident(raw_table(source))
    _rank_copies(con, source, first, last)
    cols = ", ".join(ident(c) for c in source.columns)
    with engine_of(con).transaction():
        con.execute(f"delete from {table} where partition_date between ? and ?", [first, last])
        con.execute(f"delete from {QUARANTINE_TABLE} where source = ? "
                    "and partition_date between ? and ?", [source.name, first, last])
        con.execute(f"delete from {RECON_TABLE} where source = ? "
                    "and partition_date between ? and ?", [source.name, first, last])
        # a file without a date and without one valid record belongs to no day: the whole
        # file is rejected, with the first problem found in it; so is a file dated in the
        # future (a file read again, or no longer in the future, loses its old record)
        con.execute(f"delete from {REJECTED_FILES_TABLE} where source = ? and (source_file in "
                    "(select source_file from _files) or list_contains(?, source_file))",
                    [source.name, [f for f, _, _ in future]])
        if (future or bad) and _on_spark(con):
            _rows_table(con, "_rejected_now", "", _BAD_FILES_SCHEMA, future + bad)
            con.execute(f"insert into {REJECTED_FILES_TABLE} select ?, source_file, rows_read, "
                        "reason, now()::TIMESTAMP from _rejected_now", [source.name])
        elif future or bad:
            con.executemany(f"insert into {REJECTED_FILES_TABLE} values "
                            "(?, ?, ?, ?, now()::TIMESTAMP)",
                            [[source.name, *row] for row in future + bad])
        con.execute(f"""
            insert into {REJECTED_FILES_TABLE}
            select ?, source_file, count(*),
                   'no valid record; first problem: ' || arg_min(reason, source_line),
                   now()::TIMESTAMP
            from _classified where partition_date is null group by source_file""",
                    [source.name])
        con.execute(f"""
            insert into {table}
            select {cols}, _event_ts, partition_date, _skew, source_file, source_line,
                   now()::TIMESTAMP
            from _ranked where reason is null and _copy = 1
            order by partition_date, _event_ts, source_file, source_line""")
        con.execute(f"""
            insert into {QUARANTINE_TABLE}
            select ?, partition_date, source_file, source_line, raw_record,
                   coalesce(reason, _dup_reason),
                   case when reason is null then 'duplicate' else 'rejected' end,
                   now()::TIMESTAMP
            from _ranked where reason is not null or _copy > 1""", [source.name])
        _demote_later_copies(con, source, first, last)
        _note_outside_range(con, source, run_first, run_last)
        con.execute(f"""
            insert into {RECON_TABLE}
            with days as (
                -- (the generator alone in its select: Spark's explode may not be cast)
                select cast(d as DATE) as partition_date
                from (select unnest(generate_series(?::DATE, ?::DATE, interval 1 day)) as d) s
            ), counts as (
                select partition_date, count(*) as rows_read,
                       count(*) filter (where reason is null and _copy = 1) as rows_loaded,
                       count(*) filter (where reason is not null) as rows_quarantined,
                       count(*) filter (where reason is null and _copy > 1) as rows_duplicate,
                       count(*) filter (where reason is null and _copy = 1 and _skew)
                           as clock_skew_corrected
                from _ranked group by partition_date
            )
            , day_files as (
                -- the files that may hold rows of the day: exported from max_days_after_export
                -- before it to late_days after it, and every file without a date
                -- (a rejected file is not read: it is in `rejected_files`)
                select d.partition_date, list(f.source_file order by f.source_file) as files
                from days d join _files f
                  on f.file_date is null
                  or f.file_date between d.partition_date - ?::INTEGER
                                     and d.partition_date + ?::INTEGER
                where f.source_file not in (select source_file from _bad_files)
                group by all
            )
            select ?, d.partition_date, coalesce(rows_read, 0), coalesce(rows_loaded, 0),
                   coalesce(rows_quarantined, 0), coalesce(rows_duplicate, 0),
                   coalesce(clock_skew_corrected, 0), coalesce(df.files, []),
                   now()::TIMESTAMP
            from days d left join counts c using (partition_date)
            left join day_files df using (partition_date)
        """, [first, last, source.max_days_after_export, source.late_days, source.name])
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


def _note_outside_range(con: duckdb.DuckDBPyConnection, source: Source, run_first: dt.date,
                        run_last: dt.date) -> None:
    """Rows of the files read that belong to a day outside the run's range run_first..run_last
    (a late row of the earliest file read, a row that file D holds for D-1 when only D is run)
    and that no earlier load has loaded or quarantined: kept in `quarantine` in their own
    partition with kind 'outside_range' and the day to run, so no row read is dropped unsaid.
    Loading that partition replaces them (its load deletes the partition's quarantine)."""
    table = ident(raw_table(source))
    con.execute(f"""
        delete from {QUARANTINE_TABLE}
        where source = ? and kind = 'outside_range'
          and exists (select 1 from _classified c
                      where c.source_file = {QUARANTINE_TABLE}.source_file
                        and c.source_line = {QUARANTINE_TABLE}.source_line)""",
                [source.name])
    con.execute(f"""
        insert into {QUARANTINE_TABLE}
        select $source, c.partition_date, c.source_file, c.source_line, c.raw_record,
               'belongs to day ' || c.partition_date::VARCHAR || ', outside this run''s range '
               || $first::VARCHAR || ' … ' || $last::VARCHAR
               || '; run that day to load it (journeys run --start '
               || c.partition_date::VARCHAR || ' --end ' || c.partition_date::VARCHAR || ')',
               'outside_range', now()::TIMESTAMP
        from _classified c
        where c.partition_date is not null
          and c.partition_date not between $first and $last
          and not exists (select 1 from {table} r where r.source_file = c.source_file
                                                     and r.source_line = c.source_line)
          and not exists (select 1 from {QUARANTINE_TABLE} q
                          where q.source = $source and q.source_file = c.source_file
                            and q.source_line = c.source_line)""",
                {"source": source.name, "first": run_first, "last": run_last})


def outside_range_rows(con: duckdb.DuckDBPyConnection, source: Source
                       ) -> list[tuple[dt.date, int]]:
    """(day, rows) of the source's rows read but kept aside as outside a run's range."""
    ensure_tables(con, source)
    return con.execute(f"select partition_date, count(*) from {QUARANTINE_TABLE} "
                       "where source = ? and kind = 'outside_range' group by all order by 1",
                       [source.name]).fetchall()


def rejected_files(con: duckdb.DuckDBPyConnection, source: Source) -> list[tuple[str, int, str]]:
    """(file, rows read, reason) of the source's rejected files, by file name."""
    ensure_tables(con, source)
    return con.execute(f"select source_file, rows_read, reason from {REJECTED_FILES_TABLE} "
                       "where source = ? order by source_file", [source.name]).fetchall()


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
