"""One reader for every events export: CSV/TSV/any delimiter, whitespace-separated text, JSON
lines (and Segment-spec exports), Parquet and XES, plain or .gz/.zst compressed; and one
timestamp parser for every declared time format. `journeys funnel` and `journeys mine`
(through `transforms.eventlog.read_event_log`) read files with it; `timestamp_sql` is
standalone SQL for any caller.

Formats (`detect_format`, by file name; a trailing `.gz` or `.zst` is looked through)
-------------------------------------------------------------------------------
- ``csv``: `.csv`, `.tsv`, `.txt`, `.dat`. The delimiter is sniffed by DuckDB unless given
  (`.tsv` means tab); any single character works, ``"\\t"``/``tab`` mean tab, and
  ``whitespace`` splits fields on runs of spaces and tabs (no quoting in that mode; leading and
  trailing blanks and blank lines are ignored). RFC 4180 quoting: a quoted field may hold the
  delimiter, doubled quotes and newlines. ``header=False`` names the columns column0,
  column1, ...
- ``jsonl``: `.jsonl`, `.ndjson`, `.json` (one object per line, or one JSON array of objects).
  Nested objects are flattened to dotted column names, recursively: ``{"properties": {"plan":
  "pro"}}`` gives a column ``properties.plan``; arrays (and a key that is an object on some lines
  and a scalar on others) stay as JSON text. Scalars keep their JSON text (``1.5``, ``true``);
  strings are unquoted. Columns come in the order keys first appear.
- Segment spec (track/identify/page/screen/group/alias calls): JSON lines whose keys include
  ``type`` and ``anonymousId`` or ``messageId`` are read as above (``properties.x``,
  ``context.page.path``, ``traits.email``, ...) plus two conveniences: ``event``, which only
  track calls carry, is filled with the call type for the others (``identify``, ``page``, ...),
  and an ``actor`` column is added (unless the file has one): the ``userId``, else the user id
  first identified (earliest ``timestamp``) with the event's ``anonymousId``, else the
  ``anonymousId`` -- so a visitor's anonymous events before sign-up join their user.
- ``parquet``: `.parquet`, `.pq`.
- ``xes``: `.xes` (read with a streaming lxml parser). Trace attributes are named
  ``case:<key>`` (``case:concept:name`` is the trace's ``concept:name``), event attributes by
  their key, as in pm4py's data frames; values are the attribute's text. `columns` restricts
  the attributes kept (much faster on big logs).

Column types: `read_table` returns every column as VARCHAR, text exactly as in the file, for
CSV, text, JSON lines and XES -- ids keep leading zeros and times are parsed by `timestamp_sql`
under the caller's declared format, never guessed. Parquet keeps its own types (the file is
typed already); `timestamp_sql(..., source_type=...)` handles typed columns directly.

Encodings: UTF-8 with or without byte-order mark (the default), and any declared Python codec
(``latin-1``, ``cp1252``, ``utf-16``, ...). DuckDB 2.0's read_csv decodes utf-8, latin-1 and
utf-16 (little-endian only) itself; anything else (cp1252, big-endian UTF-16, every encoding of a
JSON file) is transcoded to UTF-8 by Python first. A UTF-16 byte-order mark is recognised
without ``encoding``. XES declares its own encoding in the XML prolog.

Compression: gzip and zstd. `read_table` goes by the file name: DuckDB reads compressed CSV and
JSON itself; XES `.xes.gz` is opened by Python's gzip, `.xes.zst` needs the ``zstandard``
package. `open_binary` (ingestion, XES) goes by the file's first bytes (`sniff_compression`), so
a gzip file named `.jsonl` is read as gzip and a plain file named `.gz` as plain.

Materialisation: `read_table` loads the file into a temporary table of `con` (insertion order is
file order, so `rowid` numbers the rows) and returns it; a mistake in the file or the options
raises `UserError` with one line naming the file and the fix.
"""

from __future__ import annotations

import codecs
import gzip
import json
import shutil
import tempfile
import uuid
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from transforms.errors import UserError
from transforms.sqlutil import Params, ident, literal

FORMATS = ("csv", "jsonl", "parquet", "xes")
_SUFFIXES = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv", ".dat": "csv",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".parquet": "parquet", ".pq": "parquet",
    ".xes": "xes",
}
_COMPRESSION = {".gz": "gzip", ".zst": "zstd"}
WHITESPACE = "whitespace"
EPOCH_FORMATS = {"epoch_s": 1_000_000, "epoch_ms": 1_000, "epoch_us": 1, "epoch_ns": 0.001}
TIME_FORMAT_HINT = ("iso, a strftime pattern such as %Y%m%d or '%d/%m/%Y %H:%M', or "
                    "epoch_s, epoch_ms, epoch_us, epoch_ns")
# An ISO 8601 time followed by an offset or zone: Z, UTC, +02, +0200, +02:00, Europe/Berlin.
OFFSET_RE = (r"(?i)[0-9]{1,2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?\s*"
             r"(z|utc|gmt|[+-][0-9]{2}(:?[0-9]{2})?|[a-z_]+/[a-z0-9_/+-]+)$")
XES_ROLE_DEFAULTS = {"actor": "case:concept:name", "case": "case:concept:name",
                     "event": "concept:name", "activity": "concept:name",
                     "time": "time:timestamp", "timestamp": "time:timestamp"}
_YEAR_9999_US = 253_402_300_799_000_000  # microseconds from 1970 to the end of year 9999
_DUCKDB_ENCODINGS = {"utf-8": "utf-8", "utf-8-sig": "utf-8", "iso8859-1": "latin-1",
                     "utf-16": "utf-16", "utf-16-le": "utf-16"}
MAX_LISTED = 15


# --------------------------------------------------------------------------- options


def detect_format(path: str | Path) -> str:
    """'csv', 'jsonl', 'parquet' or 'xes' from the file name (a trailing .gz/.zst looked
    through); UserError for any other name."""
    name = Path(path).name.lower()
    for suffix in _COMPRESSION:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    fmt = _SUFFIXES.get(Path(name).suffix)
    if fmt is None:
        raise UserError(
            f"cannot read {path}: unknown file type; use a name ending in .csv, .tsv, .txt, "
            ".jsonl/.ndjson/.json, .parquet or .xes, optionally .gz/.zst compressed"
        )
    return fmt


def compression_of(path: str | Path) -> str | None:
    """'gzip', 'zstd' or None, from the file name."""
    return _COMPRESSION.get(Path(path).suffix.lower())


def parse_delimiter(text: str | None) -> str | None:
    """A `--delimiter` value: None (sniff), one character, ``\\t``/``tab`` (tab) or
    ``whitespace`` (runs of spaces and tabs)."""
    if text is None:
        return None
    low = text.lower()
    if low in ("\\t", "tab", "\t"):
        return "\t"
    if low in (WHITESPACE, "ws", "spaces"):
        return WHITESPACE
    if low == "space":
        return " "
    if len(text) != 1 or text in ('"', "\n", "\r", "\x00"):
        raise UserError(f"invalid --delimiter {text!r}: give one character (e.g. ';' or '|'), "
                        "'\\t' for tab, or 'whitespace' for runs of spaces and tabs")
    return text


def normalise_encoding(name: str | None) -> str | None:
    """The Python codec name of a declared encoding (None: UTF-8 with or without BOM)."""
    if name is None:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise UserError(f"unknown --encoding {name!r}: use e.g. utf-8, latin-1, cp1252 or "
                        "utf-16") from None


def check_time_format(time_format: str | None) -> str:
    """'iso' for None, else the format itself if it is one `timestamp_sql` understands."""
    if time_format is None or time_format.strip().lower() in ("", "iso", "iso8601"):
        return "iso"
    if time_format.lower() in EPOCH_FORMATS:
        return time_format.lower()
    if "%" not in time_format:
        raise UserError(f"invalid --time-format {time_format!r}: use {TIME_FORMAT_HINT}")
    return time_format


def check_timezone(timezone: str | None) -> str:
    """The IANA time zone name (default UTC), validated."""
    tz = "UTC" if timezone is None or not timezone.strip() else timezone.strip()
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UserError(f"unknown --timezone {tz!r}: use an IANA name such as UTC or "
                        "Europe/Berlin") from None
    return tz


def table_options(args: Any) -> dict[str, Any]:
    """`read_table` keyword arguments from the parsed reader flags (--delimiter, --no-header,
    --encoding: `pipelines.cli.mine.add_reader_options`)."""
    return {"delimiter": args.delimiter, "header": args.header, "encoding": args.encoding}


# --------------------------------------------------------------------------- timestamps


def timestamp_sql(expr: str, time_format: str | None, timezone: str, params: Params, *,
                  source_type: str | None = None, engine: str = "duckdb") -> str:
    """A DuckDB expression turning `expr` into a naive UTC TIMESTAMP, NULL when it does not
    parse (or is empty). Independent of the session TimeZone; values are bound through
    `params` (`$pN`).

    - `time_format` None or 'iso': ISO 8601 (`2024-05-01`, `2024-05-01 10:00`,
      `2024-05-01T10:00:00.123+02:00`). A value with an offset or zone (`Z`, `+02`, `+0200`,
      `+02:00`, `UTC`, `Europe/Berlin`) is that instant; a naive value is a wall-clock time
      in `timezone`.
    - a strftime pattern (`%Y%m%d`, `%d/%m/%Y %H:%M`, DuckDB's strptime specifiers): read in
      `timezone`, unless the pattern has `%z`/`%Z`, which gives the instant.
    - 'epoch_s', 'epoch_ms', 'epoch_us', 'epoch_ns': a number (decimals allowed) of units since
      1970-01-01 UTC; `timezone` does not apply. Values beyond year 9999 are NULL.

    Naive times in a daylight-saving gap or overlap follow ICU: a time in the spring-forward
    gap is moved forward by the gap (02:30 on 2026-03-29 in Europe/Berlin is 01:30 UTC), an
    ambiguous autumn time is the later, standard-time instant (02:30 on 2026-10-25 in
    Europe/Berlin is 01:30 UTC).

    `source_type` (a DuckDB type name) lets typed columns skip the text route: TIMESTAMPTZ is
    converted to UTC, TIMESTAMP/DATE are wall-clock times in `timezone`, numbers are read by an
    epoch format. Without it, any non-text value is cast to VARCHAR first.

    `engine` "spark": the same values from text for the Spark engine (`_spark_timestamp_sql`).
    """
    fmt = check_time_format(time_format)
    tz = check_timezone(timezone)
    if engine == "spark" and source_type is None:
        return _spark_timestamp_sql(expr, fmt, tz, params)

    def local(ts: str) -> str:
        if tz == "UTC":
            return ts
        return f"timezone('UTC', timezone({params.add(tz)}, {ts}))"

    t = (source_type or "").upper()
    if t.startswith("TIMESTAMP WITH TIME ZONE") or t == "TIMESTAMPTZ":
        return f"timezone('UTC', {expr})"
    if t.startswith("TIMESTAMP") or t in ("DATE", "DATETIME"):
        return local(f"CAST({expr} AS TIMESTAMP)")
    numeric = t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                    "USMALLINT", "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE") or \
        t.startswith("DECIMAL")
    if numeric and fmt in EPOCH_FORMATS:
        return _epoch_sql(f"CAST({expr} AS DECIMAL(38, 9))", fmt)
    text = f"nullif(trim(CAST({expr} AS VARCHAR)), '')"
    if fmt in EPOCH_FORMATS:
        return _epoch_sql(f"try_cast({text} AS DECIMAL(38, 9))", fmt)
    if fmt != "iso":
        parsed = f"try_strptime({text}, {params.add(fmt)})"
        if "%z" in fmt or "%Z" in fmt:
            return f"timezone('UTC', CAST({parsed} AS TIMESTAMPTZ))"
        return local(parsed)
    return (f"(CASE WHEN regexp_matches({text}, {literal(OFFSET_RE)}) "
            f"THEN timezone('UTC', try_cast({text} AS TIMESTAMPTZ)) "
            f"ELSE {local(f'try_cast({text} AS TIMESTAMP)')} END)")


def _spark_timestamp_sql(expr: str, fmt: str, tz: str, params: Params) -> str:
    """`timestamp_sql` of text for the Spark engine, in SQL its dialect (transforms/spark_sql.py)
    turns into Spark's: DuckDB's `timezone()` is Spark's `to_utc_timestamp`, an offset read by
    a TIMESTAMP_LTZ cast in the session's UTC. An ambiguous autumn wall-clock time is the later,
    standard-time instant, as ICU gives it in DuckDB (Java takes the earlier one: it moves by
    the hour of the overlap), a time in the spring-forward gap moves forward by the gap in both.
    strftime patterns are DuckDB's strptime specifiers: not on Spark yet."""
    def local(ts: str) -> str:
        if tz == "UTC":
            return ts
        zone = params.add(tz)
        utc = f"to_utc_timestamp({ts}, {zone})"
        later = f"({utc} + interval 1 hour)"
        return (f"CAST(CASE WHEN from_utc_timestamp({later}, {zone}) = {ts} THEN {later} "
                f"ELSE {utc} END AS TIMESTAMP)")

    text = f"nullif(trim(CAST({expr} AS VARCHAR)), '')"
    if fmt in EPOCH_FORMATS:
        us = f"(try_cast({text} AS DECIMAL(38, 9)) * {EPOCH_FORMATS[fmt]})"
        return (f"(CASE WHEN abs({us}) <= {_YEAR_9999_US} "
                f"THEN CAST(timestamp_micros(CAST(round({us}) AS BIGINT)) AS TIMESTAMP) END)")
    if fmt != "iso":
        raise UserError(f"time format {fmt!r} is not read on the Spark engine yet (ISO 8601 and "
                        "the epoch formats are); use the DuckDB engine")
    return (f"(CASE WHEN regexp_matches({text}, {literal(OFFSET_RE)}) "
            f"THEN CAST(try_cast({text} AS TIMESTAMP_LTZ) AS TIMESTAMP) "
            f"ELSE {local(f'try_cast({text} AS TIMESTAMP)')} END)")


def _epoch_sql(number: str, fmt: str) -> str:
    us = f"({number} * {EPOCH_FORMATS[fmt]})"
    return (f"(CASE WHEN abs({us}) <= {_YEAR_9999_US} "
            f"THEN make_timestamp(CAST(round({us}) AS BIGINT)) END)")


# --------------------------------------------------------------------------- reading


def read_table(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    *,
    delimiter: str | None = None,
    header: bool = True,
    encoding: str | None = None,
    columns: Sequence[str] | None = None,
    table: str | None = None,
) -> duckdb.DuckDBPyRelation:
    """Load the events file at `path` into the temporary table `table` of `con` (default: a
    fresh name) and return it: one row per record in file order (`rowid`), every column VARCHAR
    except Parquet's (see the module docstring for formats and rules).

    - delimiter: CSV field separator (None: sniffed, tab for .tsv; '\\t'; 'whitespace').
    - header: the CSV/text file's first row names the columns (False: column0, column1, ...).
    - encoding: the declared text encoding (None: UTF-8, BOM or not; a UTF-16 BOM is seen).
    - columns: XES only, the attributes to keep (None: all).

    Raises UserError for a missing file, an unknown type, an option that does not apply to the
    format, or a file DuckDB or the XES parser cannot read.
    """
    path = Path(path)
    fmt = detect_format(path)
    if not path.is_file():
        raise UserError(f"cannot read {path}: no such file; check the path")
    delim = parse_delimiter(delimiter)
    enc = normalise_encoding(encoding)
    if fmt != "csv" and (delim is not None or not header):
        flag = "--delimiter" if delim is not None else "--no-header"
        raise UserError(f"{path}: {flag} applies to CSV/text files only, not {fmt}; drop it")
    if fmt in ("parquet", "xes") and enc is not None:
        raise UserError(f"{path}: --encoding does not apply to {fmt} files; drop it")
    if fmt == "csv" and delim is None and ".tsv" in path.name.lower():
        delim = "\t"
    table = table or f"read_{uuid.uuid4().hex[:12]}"
    con.execute(f"DROP TABLE IF EXISTS {ident(table)}")
    if fmt == "xes":
        _load_xes(con, path, table, columns)
        return con.table(table)
    if fmt == "parquet":
        _create(con, path, fmt, table, f"SELECT * FROM read_parquet({literal(str(path))})")
        return con.table(table)
    with _decoded(path, enc) as (source, duck_encoding):
        if fmt == "csv":
            _load_csv(con, path, source, table, delim, header, duck_encoding)
        else:
            _load_json(con, path, source, table)
    return con.table(table)


def _create(con: duckdb.DuckDBPyConnection, path: Path, fmt: str, table: str, select: str,
            hint: str = "") -> None:
    try:
        con.execute(f"CREATE TEMP TABLE {ident(table)} AS {select}")
    except duckdb.Error as exc:
        raise UserError(f"cannot read {path} as {fmt}: {_first_line(exc)}{hint}") from None


class _decoded:
    """Context manager: (file DuckDB can read, encoding option for read_csv or None).

    The file itself when DuckDB decodes it; else a temporary UTF-8 copy (decompressed),
    removed on exit."""

    def __init__(self, path: Path, encoding: str | None) -> None:
        self.path, self.encoding, self.tmpdir = path, encoding, None

    def __enter__(self) -> tuple[Path, str | None]:
        path, enc, comp = self.path, self.encoding, compression_of(self.path)
        json_file = detect_format(path) == "jsonl"
        if enc is None:
            bom = _peek(path, 2)
            if bom in (b"\xff\xfe", b"\xfe\xff"):
                enc = "utf-16"
        if enc is None or enc in ("utf-8", "utf-8-sig"):  # DuckDB skips a UTF-8 BOM
            return path, None
        native = _DUCKDB_ENCODINGS.get(enc)
        if native and not json_file and native != "utf-8":
            big_endian = enc == "utf-16" and _peek(path, 2) == b"\xfe\xff"
            if not big_endian and comp is None:
                return path, native
        self.tmpdir = tempfile.mkdtemp(prefix="journeys_read_")
        name = path.name
        for suffix in _COMPRESSION:
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
        target = Path(self.tmpdir) / name
        try:
            with open_binary(path) as raw, \
                    codecs.getreader(enc)(raw, errors="strict") as text, \
                    open(target, "w", encoding="utf-8", newline="") as out:
                first = True
                while chunk := text.read(1 << 20):
                    if first and chunk.startswith("\ufeff"):
                        chunk = chunk[1:]
                    first = False
                    out.write(chunk)
        except UnicodeDecodeError as exc:
            self.__exit__()
            raise UserError(f"cannot read {path}: byte {exc.start} is not valid {enc}; "
                            "declare the file's encoding with --encoding") from None
        except (OSError, EOFError) as exc:
            self.__exit__()
            raise UserError(f"cannot read {path}: {exc}") from None
        return target, None

    def __exit__(self, *exc: object) -> None:
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def sniff_compression(path: str | Path) -> str | None:
    """'gzip', 'zstd' or None, from the file's first bytes (its name when they cannot be read):
    a gzip file named `.jsonl` is read as gzip, a plain file named `.gz` as plain text."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return compression_of(path)
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


def open_binary(path: Path) -> Any:
    """The file as a binary stream, gzip or zstd decompressed by its content (`sniff_compression`:
    the first bytes decide, not the name)."""
    comp = sniff_compression(path)
    if comp == "gzip":
        return gzip.open(path, "rb")
    if comp == "zstd":
        try:
            import zstandard
        except ImportError:
            raise UserError(f"cannot read {path}: reading this .zst file needs the zstandard "
                            "package (pip install zstandard), or decompress it first") from None
        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"),  # noqa: SIM115
                                                          closefd=True)
    return open(path, "rb")  # noqa: SIM115 - closed by the caller's with


def _peek(path: Path, n: int) -> bytes:
    """The first `n` decompressed bytes (b'' when they cannot be read cheaply)."""
    if sniff_compression(path) == "zstd":
        return b""
    try:
        with open_binary(path) as fh:
            return fh.read(n)
    except (OSError, EOFError):
        return b""


def _load_csv(con: duckdb.DuckDBPyConnection, path: Path, source: Path, table: str,
              delim: str | None, header: bool, duck_encoding: str | None) -> None:
    src = literal(str(source))
    enc = f", encoding = {literal(duck_encoding)}" if duck_encoding else ""
    hint = ("; check --delimiter and --encoding (or --no-header), or pass --delimiter "
            "whitespace for space-separated columns")
    if delim == WHITESPACE:
        lines = f"__lines_{uuid.uuid4().hex[:12]}"
        _create(con, path, "text", lines,
                f"""SELECT string_split_regex(trim(line, ' \t\r'), '[ \t]+') AS f
                    FROM read_csv({src}, columns = {{'line': 'VARCHAR'}}, header = false,
                                  delim = '\x1f', quote = '', escape = '', auto_detect = false,
                                  strict_mode = false{enc})
                    WHERE trim(line, ' \t\r') <> ''""", hint)
        try:
            _split_lines(con, path, lines, table, header)
        finally:
            con.execute(f"DROP TABLE IF EXISTS {ident(lines)}")
        return
    opts = f"header = {'true' if header else 'false'}, all_varchar = true{enc}"
    if delim is not None:
        opts += f", delim = {literal(delim)}"
    _create(con, path, "csv", table, f"SELECT * FROM read_csv({src}, {opts})", hint)


def _split_lines(con: duckdb.DuckDBPyConnection, path: Path, lines: str, table: str,
                 header: bool) -> None:
    widest, rows = con.execute(f"SELECT max(len(f)), count(*) FROM {ident(lines)}").fetchone()
    if not rows:
        raise UserError(f"cannot read {path}: the file has no lines")
    if header:
        names = con.execute(f"SELECT f FROM {ident(lines)} WHERE rowid = 0").fetchone()[0]
        if widest > len(names):
            longer = con.execute(f"SELECT count(*) FROM {ident(lines)} "
                                 f"WHERE len(f) > {len(names)}").fetchone()[0]
            raise UserError(f"cannot read {path} as whitespace-separated text: {longer} row(s) "
                            f"have more than the header's {len(names)} fields (a value with a "
                            "space?); use a delimited file or --no-header")
        names = _unique(names)
        where = "WHERE rowid > 0"
    else:
        names = [f"column{i}" for i in range(widest)]
        where = ""
    cols = ", ".join(f"f[{i + 1}] AS {ident(n)}" for i, n in enumerate(names))
    con.execute(f"CREATE TEMP TABLE {ident(table)} AS SELECT {cols} FROM {ident(lines)} "
                f"{where} ORDER BY rowid")


def _unique(names: Iterable[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        name, k = n, 1
        while name in out:
            k += 1
            name = f"{n}_{k}"
        out.append(name)
    return out


def _load_json(con: duckdb.DuckDBPyConnection, path: Path, source: Path, table: str) -> None:
    objects = f"read_json_objects({literal(str(source))}, format = 'auto')"
    raw = f"__json_{uuid.uuid4().hex[:12]}"
    _create(con, path, "JSON lines", raw, f"SELECT json FROM {objects}",
            "; give one JSON object per line (or a JSON array of objects)")
    try:
        structure = con.execute(f"SELECT json_group_structure(json) FROM {ident(raw)}"
                                ).fetchone()[0]
        shape = json.loads(structure) if structure else {}
        if not isinstance(shape, dict):
            raise UserError(f"cannot read {path} as JSON lines: the records are not JSON "
                            "objects; give one object per line")
        leaves: list[tuple[str, str]] = []  # (column name, JSON pointer)
        _json_leaves(shape, [], leaves)
        if not leaves:
            raise UserError(f"cannot read {path} as JSON lines: no fields in the records")
        names = _unique(name for name, _ in leaves)
        pointers = "[" + ", ".join(literal(p) for _, p in leaves) + "]"
        cols = ", ".join(f"v[{i + 1}] AS {ident(n)}" for i, n in enumerate(names))
        select = (f"SELECT {cols} FROM (SELECT json_extract_string(json, {pointers}) AS v "
                  f"FROM {ident(raw)} ORDER BY rowid)")
        if is_segment(names):
            _create_segment(con, path, table, select, names)
        else:
            _create(con, path, "JSON lines", table, select)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {ident(raw)}")


def _json_leaves(shape: Any, prefix: list[str], out: list[tuple[str, str]]) -> None:
    for key, sub in shape.items():
        here = [*prefix, key]
        if isinstance(sub, dict) and sub:
            _json_leaves(sub, here, out)
        else:
            pointer = "".join("/" + k.replace("~", "~0").replace("/", "~1") for k in here)
            out.append((".".join(here), pointer))


def is_segment(columns: Sequence[str]) -> bool:
    """Whether flattened JSON columns look like a Segment-spec export."""
    cols = set(columns)
    return "type" in cols and "timestamp" in cols and bool({"anonymousId", "messageId"} & cols)


def _create_segment(con: duckdb.DuckDBPyConnection, path: Path, table: str, select: str,
                    names: list[str]) -> None:
    flat = f"__segment_{uuid.uuid4().hex[:12]}"
    _create(con, path, "JSON lines", flat, select)
    try:
        params = Params()
        ts = timestamp_sql("timestamp", "iso", "UTC", params, source_type="VARCHAR")
        event = ("coalesce(event, type) AS event" if "event" in names else "type AS event")
        cols = [event if n == "event" else ident(n) for n in names]
        if "event" not in names:
            cols.insert(names.index("type") + 1, event)
        actor = ""
        if "actor" not in names:
            uid = "userId" if "userId" in names else "NULL::VARCHAR"
            anon = "anonymousId" if "anonymousId" in names else "NULL::VARCHAR"
            actor = (f", coalesce({uid}, arg_min({uid}, {ts}) FILTER (WHERE {uid} IS NOT NULL) "
                     f"OVER (PARTITION BY {anon}), {anon}) AS actor")
        sql = (f"SELECT {', '.join(cols)}{actor} FROM "
               f"(SELECT *, rowid AS __r FROM {ident(flat)}) ORDER BY __r")
        try:
            con.execute(f"CREATE TEMP TABLE {ident(table)} AS {sql}", params.values)
        except duckdb.Error as exc:
            raise UserError(f"cannot read {path} as a Segment export: {_first_line(exc)}"
                            ) from None
    finally:
        con.execute(f"DROP TABLE IF EXISTS {ident(flat)}")


def _load_xes(con: duckdb.DuckDBPyConnection, path: Path, table: str,
              keys: Sequence[str] | None) -> list[str]:
    """Stream the XES file into table `table` (all values as text), keeping only `keys` (None:
    every attribute). Returns the columns created (keys never seen are left out)."""
    arrow, present = xes_table(path, keys)
    view = f"__arrow_{uuid.uuid4().hex[:12]}"
    con.register(view, arrow)
    try:
        con.execute(f"CREATE TEMP TABLE {ident(table)} AS SELECT * FROM {ident(view)}")
    finally:
        con.unregister(view)
    return present


def xes_table(path: Path, keys: Sequence[str] | None) -> tuple[pa.Table, list[str]]:
    """The events of an XES file in file order as an Arrow table (all values as text; trace
    attributes as `case:<key>`), keeping only `keys` (None: every attribute), and the keys it
    holds (keys never seen are left out). Streamed with lxml: one trace in memory at a time."""
    from lxml import etree

    wanted = list(dict.fromkeys(keys)) if keys is not None else None
    trace_keys = ({k[len("case:"):]: k for k in wanted if k.startswith("case:")}
                  if wanted is not None else None)
    event_keys = ({k for k in wanted if not k.startswith("case:")}
                  if wanted is not None else None)
    order: dict[str, None] = dict.fromkeys(wanted) if wanted is not None else {}
    values: dict[str, list[str | None]] = {k: [] for k in order}
    seen: set[str] = set()
    n_rows = 0
    pending: list[dict[str, str]] = []

    try:
        with open_binary(path) as fh:
            for _, elem in etree.iterparse(
                fh, events=("end",), tag=("{*}event", "{*}trace"), huge_tree=True
            ):
                if etree.QName(elem).localname == "event":
                    found = {}
                    for child in elem:
                        key = child.get("key")
                        if key is not None and (event_keys is None or key in event_keys):
                            found[key] = child.get("value")
                    pending.append(found)
                    elem.clear()
                    continue
                trace_values = {}
                for child in elem:
                    key = child.get("key")
                    if key is None:
                        continue
                    if trace_keys is None:
                        trace_values["case:" + key] = child.get("value")
                    elif key in trace_keys:
                        trace_values[trace_keys[key]] = child.get("value")
                for found in pending:
                    found.update(trace_values)
                    for k in found:
                        if k not in order:
                            order[k] = None
                            values[k] = [None] * n_rows
                    for k in order:
                        v = found.get(k)
                        values[k].append(v)
                        if v is not None:
                            seen.add(k)
                    n_rows += 1
                pending.clear()
                elem.clear()
                while elem.getprevious() is not None:
                    del elem.getparent()[0]
    except (etree.XMLSyntaxError, OSError, EOFError) as exc:
        raise UserError(f"{path}: not a readable XES file ({exc})") from None

    present = [k for k in order if k in seen]
    arrow = pa.table({k: pa.array(values[k], type=pa.string()) for k in present})
    if not present:  # (the events are still counted: none holds a wanted attribute)
        arrow = pa.table({"__empty": pa.nulls(n_rows, pa.string())})
    return arrow, present


# --------------------------------------------------------------------------- checks


def role_columns(fmt: str, columns: Sequence[str], chosen: Mapping[str, str]) -> dict[str, str]:
    """Columns for roles (actor/case, event/activity, time/timestamp): for XES a role whose
    chosen name is the tabular default and is no column of the file becomes the XES standard
    attribute (case:concept:name, concept:name, time:timestamp)."""
    out = dict(chosen)
    if fmt == "xes":
        for role, col in chosen.items():
            if col == role and col not in columns and role in XES_ROLE_DEFAULTS:
                out[role] = XES_ROLE_DEFAULTS[role]
    return out


def require_columns(path: str | Path, columns: Sequence[str],
                    wanted: Mapping[str, str | None]) -> None:
    """UserError for the first flag (e.g. '--actor-col') whose column is not in `columns`,
    listing the columns there are: "missing actor column 'x' (--actor-col); columns are: ..."."""
    roles = {"--by": "breakdown", "--hold": "hold"}
    for flag, col in wanted.items():
        if col is not None and col not in columns:
            role = roles.get(flag, flag.lstrip("-").removesuffix("-col"))
            shown = ", ".join(columns[:40]) + (", ..." if len(columns) > 40 else "")
            raise UserError(f"{path}: missing {role} column {col!r} ({flag}); columns are: "
                            f"{shown}")


def occurring_values(con: duckdb.DuckDBPyConnection, source: str, col: str,
                     limit: int = MAX_LISTED) -> list[tuple[str, int]]:
    """(value, count) of column `col` of table/view `source`, most frequent first."""
    return [(v, n) for v, n in con.execute(
        f"SELECT CAST({ident(col)} AS VARCHAR) AS v, count(*) AS n FROM {ident(source)} "
        f"WHERE {ident(col)} IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT {int(limit)}"
    ).fetchall()]


def _listing(values: list[tuple[str, int]], total: int) -> str:
    text = ", ".join(f"{v} ({n:,})" for v, n in values) or "none"
    if total > len(values):
        text += f", ... ({total - len(values)} more)"
    return text


def require_values(con: duckdb.DuckDBPyConnection, source: str, col: str,
                   names: Iterable[str], *, what: str, flag: str, path: str | Path) -> None:
    """UserError when a name in `names` never occurs in column `col` of `source`, listing the
    values that do occur (most frequent first, up to 15, with counts)."""
    names = list(dict.fromkeys(names))
    if not names:
        return
    found = {r[0] for r in con.execute(
        f"SELECT DISTINCT CAST({ident(col)} AS VARCHAR) FROM {ident(source)} "
        f"WHERE CAST({ident(col)} AS VARCHAR) IN (SELECT unnest($names))",
        {"names": names}).fetchall()}
    missing = [n for n in names if n not in found]
    if missing:
        total = con.execute(f"SELECT count(DISTINCT {ident(col)}) FROM {ident(source)}"
                            ).fetchone()[0]
        shown = ", ".join(repr(m) for m in missing)
        raise UserError(
            f"{path}: {what} {shown} never occur{'s' if len(missing) == 1 else ''} in column "
            f"{col!r} ({flag}); values there, most frequent first: "
            f"{_listing(occurring_values(con, source, col), total)}"
        )


def parse_times(con: duckdb.DuckDBPyConnection, source: str, col: str, *,
                time_format: str | None, timezone: str, path: str | Path) -> int:
    """Replace the time column `col` of temporary table `source` by a naive UTC TIMESTAMP
    (`timestamp_sql`), keeping the row order. A non-empty value that does not parse raises
    UserError saying how many rows failed, with an example, and suggesting --time-format.
    Returns the number of rows with no time at all (NULL or empty)."""
    params = Params()
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {ident(source)})"
                             ).fetchall())
    expr = timestamp_sql(ident(col), time_format, timezone, params,
                         source_type=types.get(col))
    try:
        bad, example, empty, rows = con.execute(
            f"SELECT count(*) FILTER (WHERE raw IS NOT NULL AND ts IS NULL), "
            f"min(raw) FILTER (WHERE raw IS NOT NULL AND ts IS NULL), "
            f"count(*) FILTER (WHERE raw IS NULL), count(*) "
            f"FROM (SELECT nullif(trim(CAST({ident(col)} AS VARCHAR)), '') AS raw, "
            f"{expr} AS ts FROM {ident(source)})", params.values).fetchone()
    except duckdb.Error as exc:
        raise UserError(f"{path}: cannot read times in {col!r} with --time-format "
                        f"{time_format!r}: {_first_line(exc)}; use {TIME_FORMAT_HINT}") from None
    if bad:
        fmt = check_time_format(time_format)
        how = ("are not ISO 8601 timestamps" if fmt == "iso"
               else f"do not match --time-format {time_format!r}")
        raise UserError(
            f"{path}: {bad:,} of {rows - empty:,} row(s) with a time in column {col!r} have no "
            f"readable timestamp: "
            f"values such as {example!r} {how}; pass --time-format ({TIME_FORMAT_HINT}) or "
            "choose another column with --time-col"
        )
    typed = f"__typed_{uuid.uuid4().hex[:12]}"
    con.execute(f"CREATE TEMP TABLE {ident(typed)} AS SELECT * REPLACE ({expr} AS {ident(col)}) "
                f"FROM {ident(source)} ORDER BY rowid", params.values)
    con.execute(f"DROP TABLE {ident(source)}")
    con.execute(f"ALTER TABLE {ident(typed)} RENAME TO {ident(source)}")
    return empty


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
