"""Inspect events exports and guess a project for them: what `journeys init` writes.

`inspect_file(path)` reads one export the way ingestion will (`transforms.ingest`): it finds the
format (from the name, a trailing .gz/.zst looked through, else from the content), and for text
files the encoding (UTF-8 with or without byte-order mark, UTF-16 by its mark, else what
charset-normalizer suggests, in the West latin-1 or cp1252), the delimiter (DuckDB's
`sniff_csv`, checked against Python's csv reader as ingestion uses it; runs of blanks become
`whitespace`), the quote and whether the first row is a header. It profiles every column
(distinct values, numbers, timestamp formats: ISO 8601, strftime patterns such as `%Y%m%d` and
`%d/%m/%Y`, epoch seconds/ms/us by magnitude) and guesses each column's role by its name and its
content: event id, customer (case id for a process log), anonymous id, session, event name, time,
order id, amount, currency, status, JSON properties, and low-cardinality text columns as
candidate segments.

`propose(paths, out_dir)` turns the inspected files into a project: the sources, the stages (a
process log's or clickstream's most frequent activities in their typical order; an orders table's
Purchase -> Repeat; a Segment export's track events with identity stitching), the conversion
window, the repeat horizons and the purchase role, rendered as commented `sources.yaml` and
`journey_map.yaml` texts, with one printable line per guess and a list of things to check.
Pure: DuckDB in memory, no Dagster; `write_proposal` writes the two files.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import glob as globlib
import io
import json
import math
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import yaml

from transforms.errors import UserError
from transforms.readers import open_binary
from transforms.sqlutil import ident

MAX_ROWS = 500_000  # records read per file (the profile and the stages are from these)
HEAD_BYTES = 1 << 20  # decoded text sniffed for the dialect
SCAN_BYTES = 64 << 20  # bytes checked for valid UTF-8
MAX_STAGES = 8
MIN_STAGE_SHARE = 0.05  # an activity becomes a stage when at least 5% of the actors do it
MAX_SEGMENTS = 3
SEGMENT_MAX_VALUES = 20

_SUFFIXES = {".csv": "csv", ".txt": "csv", ".dat": "csv", ".log": "csv", ".tsv": "tsv",
             ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
             ".parquet": "parquet", ".pq": "parquet", ".xes": "xes"}
_COMPRESSION = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd"}
_JSON_OBJECTS = ("properties", "traits")  # kept as one json column (keys vary per event)
_XES_NAMES = {"case:concept:name": "case_id", "concept:name": "activity",
              "time:timestamp": "timestamp", "org:resource": "resource",
              "lifecycle:transition": "lifecycle", "org:role": "role", "org:group": "org_group"}
# our events columns that sources fill, by role
ROLE_EVENT_COLUMNS = {"order_id": ("order_id", "string"), "amount": ("amount", "decimal"),
                      "currency": ("currency", "string"), "status": ("status", "string"),
                      "session": ("session_id", "string"), "properties": ("properties", "json"),
                      "lifecycle": ("lifecycle", "string")}
_CORE = ("event_id", "source", "customer_id", "is_identified", "anonymous_id", "event_name",
         "event_ts", "event_date")
_RESERVED = ("customer_id", "is_identified", "entry_ts", "entry_date", "window_end_ts",
             "furthest_stage", "furthest_stage_index", "stages_reached", "converted",
             "reached_last_stage", "skipped_stages", "complete", "amount")

# Names (normalised to snake_case) per role, strongest first.
ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "event_id": ("message_id", "event_id", "event_uuid", "uuid", "id", "record_id", "row_id",
                 "log_id", "line_id", "eventid", "messageid", "insert_id"),
    "case": ("case_id", "case", "caseid", "case_concept_name", "case_key", "trace_id",
             "process_id", "instance_id", "ticket_id", "application_id"),
    "customer": ("user_id", "customer_id", "customer", "client_id", "client", "userid",
                 "customerid", "cust_id", "account_id", "member_id", "buyer_id", "person_id",
                 "customer_no", "customer_number", "shopper_id", "contact_id", "user",
                 "patient_id", "kunde", "kunden_id", "kundennummer", "distinct_id"),
    "anonymous_id": ("anonymous_id", "anon_id", "anonymousid", "device_id", "visitor_id",
                     "cookie_id", "browser_id", "install_id"),
    "session": ("session_id", "session", "sessionid", "visit_id", "session_key"),
    "event_name": ("event", "event_name", "activity", "concept_name", "activity_name",
                   "action", "event_type", "eventtype", "type", "step", "task", "name"),
    "time": ("time_timestamp", "timestamp", "event_timestamp", "event_time", "ts", "time",
             "datetime", "occurred_at", "created_at", "created", "event_date", "date",
             "order_date", "purchase_date", "transaction_date", "invoice_date", "booking_date",
             "sent_at", "start_time", "start_timestamp", "complete_timestamp", "end_time",
             "received_at", "updated_at", "datum", "zeit"),
    "order_id": ("order_id", "order", "order_number", "order_no", "orderid", "booking_id",
                 "transaction_id", "invoice_id", "invoice", "invoice_no", "invoiceno",
                 "purchase_id", "receipt_id", "basket_id", "cart_id", "bestellung",
                 "bestellnummer"),
    "amount": ("amount", "revenue", "total", "price", "value", "order_total", "total_amount",
               "amount_total", "total_price", "grand_total", "order_value", "sales", "gross",
               "net", "spend", "sum", "betrag", "preis", "umsatz"),
    "currency": ("currency", "currency_code", "cur", "ccy", "waehrung"),
    "status": ("status", "state", "order_status", "payment_status", "booking_status"),
    "lifecycle": ("lifecycle", "lifecycle_transition"),
}
ROLE_LABELS = {"event_id": "event id", "case": "case id", "customer": "customer",
               "anonymous_id": "anonymous id", "session": "session", "event_name": "event name",
               "time": "time", "order_id": "order id", "amount": "amount",
               "currency": "currency", "status": "status", "properties": "properties",
               "lifecycle": "lifecycle", "segment": "segment"}
_SEGMENT_NAMES = ("platform", "channel", "country", "city", "region", "device", "device_type",
                  "os", "browser", "category", "service_category", "product_category", "plan",
                  "tier", "segment", "source", "medium", "utm_source", "utm_medium", "campaign",
                  "market", "store", "shop", "language", "gender", "stadt", "land")
_PURCHASE_RE = re.compile(r"(purchase|order[ _.-]?(completed|placed|paid)|checkout[ _.-]?"
                          r"completed|payment[ _.-]?(succeeded|completed|success)|\bpaid\b|"
                          r"subscri(bed|ption[ _.-]?started)|transaction[ _.-]?completed)",
                          re.IGNORECASE)
_SUCCESS_STATUS = ("paid", "completed", "complete", "succeeded", "success", "successful",
                   "delivered", "shipped", "fulfilled", "closed", "done", "confirmed", "ok",
                   "bezahlt", "geliefert")
_SEGMENT_CALLS = ("identify", "alias", "group")
# activities that sound like a way out, not a step forward: optional, never the goal
_EXIT_RE = re.compile(r"(declin|cancel|reject|fail|abort|lost|denied|deny|refus|abandon|"
                      r"expire|withdr|error|churn|unsubscrib|refund)", re.IGNORECASE)
# strftime patterns tried for text times that are not ISO 8601, most specific first
TIME_PATTERNS = ("%Y%m%d%H%M%S", "%Y%m%d", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y",
                 "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y", "%d.%m.%Y %H:%M:%S",
                 "%d.%m.%Y %H:%M", "%d.%m.%Y", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d",
                 "%d-%m-%Y %H:%M:%S", "%d-%m-%Y", "%Y-%m-%d %H:%M:%S", "%d %b %Y",
                 "%d-%b-%Y %H:%M:%S", "%d-%b-%Y")
_EPOCHS = (("epoch_s", 1e8, 1e10, 1), ("epoch_ms", 1e11, 1e13, 1e3),
           ("epoch_us", 1e14, 1e16, 1e6))
_OFFSET_RE = r"(Z|z|[+-][0-9]{2}:?[0-9]{2})$"  # as transforms.ingest reads ISO offsets
_NUMBER_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_COMMA_DECIMAL_RE = r"^[+-]?[0-9]{1,3}(\.[0-9]{3})*,[0-9]{1,4}$|^[+-]?[0-9]+,[0-9]{1,4}$"


# --------------------------------------------------------------------------- data


@dataclass
class FileInfo:
    """How a file is written: what the source's reader keys in sources.yaml say."""

    path: Path
    format: str  # csv | tsv | jsonl | parquet | xes
    compression: str | None = None
    encoding: str = "utf-8"
    delimiter: str | None = None  # csv/tsv: one character or 'whitespace'
    quote: str = '"'
    header: bool = True
    segment: bool = False  # a Segment-spec JSON export
    rows: int = 0  # records read
    truncated: bool = False  # more than MAX_ROWS records: only the first were read
    malformed: int = 0  # records with another field count than the first
    why: list[str] = field(default_factory=list)  # how each of the above was found


@dataclass
class Column:
    """One field of the export, profiled."""

    field: str  # the name in the export (dotted path into JSON; column0... without header)
    name: str  # our column name (snake_case)
    db_type: str = "VARCHAR"  # Parquet's own type, else VARCHAR
    non_null: int = 0
    distinct: int = 0
    numeric: bool = False  # (almost) every value is a number
    integer: bool = False
    comma_decimal: bool = False  # numbers written 12,50
    minimum: float | None = None
    maximum: float | None = None
    time_format: str | None = None  # iso | epoch_* | strftime pattern, when times
    has_offset: bool = False  # every time names its offset (Z, +02:00) or is typed UTC
    date_only: bool = False  # every time is a midnight: days, not instants
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    top: list[tuple[str, int]] = field(default_factory=list)  # most frequent values
    inside_json: str | None = None  # 'properties' for properties.plan (read from the json col)
    is_json: bool = False  # a JSON object column (properties)

    @property
    def unnamed(self) -> bool:
        return bool(re.fullmatch(r"column[0-9]+", self.field))

    def values_text(self, n: int = 4) -> str:
        shown = ", ".join(_short(v) for v, _ in self.top[:n])
        return shown + (", ..." if self.distinct > n else "")


@dataclass
class Activity:
    name: str
    events: int
    cases: int  # actors with at least one such event
    starts: int  # actors whose first event it is
    median_position: float  # of its first occurrence in the actor's events (0 = first)
    ends: int = 0  # actors whose last event it is


@dataclass
class SourceGuess:
    """What one file is, and what each of its columns means."""

    name: str
    file: FileInfo
    columns: list[Column]
    roles: dict[str, Column] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # role -> why
    kind: str = "events"  # orders | process | segment | clickstream | events | records
    segments: list[Column] = field(default_factory=list)
    other_segments: list[Column] = field(default_factory=list)  # candidates not used
    id_columns: list[Column] = field(default_factory=list)
    id_reason: str = ""
    duplicates: int = 0  # records repeating an earlier record's id
    activities: list[Activity] = field(default_factory=list)  # by cases, most first
    actors: int = 0
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    duration_p90_s: float | None = None  # per actor, first to last event
    repeat_gap_p90_s: float | None = None  # orders: first to second order
    repeaters: int = 0
    purchase_event: str | None = None  # an event name that is a purchase
    success_statuses: list[str] = field(default_factory=list)
    lifecycle_complete: str | None = None  # the 'complete' value when the log has others
    checks: list[str] = field(default_factory=list)

    def column(self, role: str) -> Column | None:
        return self.roles.get(role)

    @property
    def customer(self) -> Column | None:
        return self.roles.get("customer") or self.roles.get("case")


@dataclass
class Stage:
    name: str
    description: str
    rule: dict[str, Any] | None = None  # {source, event_name, where}
    repeat_of: str | None = None
    distinct_by: str | None = None
    optional: bool = False
    comment: str = ""


@dataclass
class Proposal:
    sources: list[SourceGuess]
    stages: list[Stage]
    conversion_stage: str
    conversion_reason: str
    window_days: int
    window_reason: str
    horizons: list[int]
    horizons_reason: str
    currency: str | None
    currency_reason: str
    purchase: dict[str, Any] | None  # the payment_succeeded rule
    purchase_reason: str
    event_columns: dict[str, str]  # events column -> type
    event_column_notes: dict[str, str]
    segments: list[tuple[str, str, Column]]  # (segment name, events column, column)
    metric_activity: dict[str, Any] | None
    out_dir: Path
    lines: list[str]
    checks: list[str]
    sources_yaml: str = ""
    journey_map_yaml: str = ""


# --------------------------------------------------------------------------- reading


def detect_format(path: Path) -> tuple[str, str | None]:
    """(format, compression) from the name, else from the first bytes."""
    name = path.name.lower()
    compression = None
    for suffix, comp in _COMPRESSION.items():
        if name.endswith(suffix):
            name, compression = name[: -len(suffix)], comp
            break
    fmt = _SUFFIXES.get(Path(name).suffix)
    if fmt is not None:
        return fmt, compression
    head = _head_bytes(path, compression, 4096)
    if head.startswith(b"PAR1"):
        return "parquet", compression
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<") and b"<log" in head:
        return "xes", compression
    if text.startswith((b"{", b"[")):
        return "jsonl", compression
    return "csv", compression


def _head_bytes(path: Path, compression: str | None, n: int) -> bytes:
    try:
        with open_binary(path) as fh:
            return fh.read(n)
    except (OSError, EOFError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None


def detect_encoding(path: Path, compression: str | None = None) -> tuple[str, str]:
    """(encoding, why): UTF-8 (with or without BOM), UTF-16 by its BOM, else the guess of
    charset-normalizer, narrowed to latin-1 or cp1252 for Western European text."""
    head = _head_bytes(path, compression, HEAD_BYTES)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", "UTF-8 with byte-order mark"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "UTF-16 (byte-order mark)"
    decoder = codecs.getincrementaldecoder("utf-8")()
    bad: bytes | None = None
    with open_binary(path) as fh:
        seen = 0
        while seen < SCAN_BYTES and (chunk := fh.read(1 << 20)):
            seen += len(chunk)
            try:
                decoder.decode(chunk, final=False)
            except UnicodeDecodeError as exc:
                bad = chunk[max(0, exc.start - 2000): exc.start + 2000]
                break
    if bad is None:
        return "utf-8", "valid UTF-8"
    sample = head if not head.isascii() else bad
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    suggested = best.encoding if best is not None else None
    western = {"iso8859-1", "cp1252", "iso8859-15", "cp1250", "iso8859-2", "mac-roman",
               "cp850", "cp437", "utf-8", "ascii"}
    if suggested:
        name = codecs.lookup(suggested).name
        if name not in western:
            try:
                sample.decode(name)
                return name, f"not UTF-8; charset-normalizer suggests {name}"
            except UnicodeDecodeError:
                pass
    c1 = any(0x80 <= b <= 0x9F for b in sample)
    if c1:
        try:
            sample.decode("cp1252")
            return "cp1252", ("not valid UTF-8; Windows-1252 (bytes 0x80-0x9F such as € or "
                              "curly quotes)")
        except UnicodeDecodeError:
            pass
    return "latin-1", "not valid UTF-8; Western European text (ISO 8859-1)"


def _text_lines(path: Path, compression: str | None, encoding: str) -> Any:
    enc = "utf-8-sig" if encoding == "utf-8" else encoding
    raw = open_binary(path)
    return io.TextIOWrapper(raw, encoding=enc, errors="replace", newline="")


def _sniff_dialect(path: Path, info: FileInfo) -> list[str]:
    """Set info.delimiter/quote/header from the decoded head; returns the first lines."""
    with _text_lines(path, info.compression, info.encoding) as fh:
        text = fh.read(HEAD_BYTES)
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(text) >= HEAD_BYTES and lines:
        lines = lines[:-1]  # the last line may be cut
    lines = lines[:500]
    if not lines:
        raise UserError(f"cannot inspect {path}: the file is empty")
    sniffed: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="journeys_init_") as tmp:
        sample = Path(tmp) / "sample.csv"
        sample.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            with duckdb.connect() as sniffer:
                row = sniffer.execute(f"SELECT Delimiter, Quote, HasHeader FROM sniff_csv("
                                      f"'{_sql_text(sample)}', sample_size = 500)").fetchone()
            sniffed = {"delimiter": row[0], "quote": row[1], "header": row[2]}
        except duckdb.Error:
            sniffed = {}

    def widths(delim: str, quote: str = '"') -> list[int]:
        if delim == "whitespace":
            return [len(ln.split()) for ln in lines]
        return [len(r) for r in csv.reader(lines, delimiter=delim, quotechar=quote)]

    def consistent(delim: str, quote: str = '"') -> int:
        ws = widths(delim, quote)
        width, count = Counter(ws).most_common(1)[0]
        return width if width >= 2 and count >= 0.9 * len(ws) else 0

    if info.format == "tsv" and consistent("\t"):
        delim, why = "\t", "tab (a .tsv file)"
    else:
        delim = why = None
        s = sniffed.get("delimiter")
        quote = sniffed.get("quote") if sniffed.get("quote") in ("'", '"') else '"'
        if s and s not in (" ",) and len(s) == 1 and consistent(s, quote):
            delim, why = s, f"{_delim_name(s)} (DuckDB sniff_csv; {consistent(s, quote)} "\
                             "fields on every line)"
            info.quote = quote
        else:
            scores = {d: consistent(d) for d in (",", ";", "\t", "|")}
            best = max(scores, key=lambda d: scores[d])
            if scores[best]:
                delim, why = best, f"{_delim_name(best)} ({scores[best]} fields on every line)"
        if delim is None:
            n = consistent("whitespace")
            if n:
                delim, why = "whitespace", f"runs of spaces/tabs ({n} fields on every line)"
        if delim is None:
            delim, why = ",", "comma (no delimiter found: one column per line?)"
    info.delimiter = delim
    info.why.append(f"delimiter {why}")
    rows = ([ln.split() for ln in lines] if delim == "whitespace"
            else list(csv.reader(lines, delimiter=delim, quotechar=info.quote)))
    header, hwhy = _guess_header(rows)
    if header is None:
        header = bool(sniffed.get("header", True))
        hwhy = ("the first row names the columns (DuckDB sniff_csv)" if header
                else "the first row holds data (DuckDB sniff_csv)")
    info.header = header
    info.why.append(hwhy)
    return lines


def _delim_name(d: str) -> str:
    return {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}.get(d, repr(d))


def _looks_typed(value: str) -> bool:
    """A number or a date/time (what a header cell is not)."""
    v = value.strip()
    return bool(re.fullmatch(_NUMBER_RE, v) or re.match(r"^[0-9]{1,4}[-/.][0-9]{1,2}[-/.]", v)
                or re.fullmatch(r"[0-9]+,[0-9]+", v))


def _guess_header(rows: list[list[str]]) -> tuple[bool | None, str]:
    if len(rows) < 2:
        return None, ""
    first, rest = rows[0], rows[1:200]
    for i, cell in enumerate(first):
        col = [r[i] for r in rest if len(r) > i and r[i].strip()]
        if col and not _looks_typed(cell) and sum(map(_looks_typed, col)) >= 0.8 * len(col):
            return True, (f"the first row names the columns ({cell!r} above values such as "
                          f"{col[0]!r})")
    if any(_looks_typed(c) for c in first):
        return False, "the first row holds data (numbers or dates in it), no header"
    repeated = [c for i, c in enumerate(first)
                if c and any(len(r) > i and r[i] == c for r in rest)]
    if repeated:
        return False, (f"the first row holds data (its value {repeated[0]!r} recurs below), "
                       "no header")
    return None, ""


def _flatten(obj: dict, prefix: str, out: dict[str, Any], keep: tuple[str, ...]) -> None:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and name not in keep:
            _flatten(value, name + ".", out, keep)
        else:
            out[name] = value


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _load(con: duckdb.DuckDBPyConnection, info: FileInfo) -> list[Column]:
    """Read the file into table `t` (every column text except Parquet's, `__row` = file
    order) and return its columns in file order."""
    import pyarrow as pa

    path = info.path
    if info.format == "parquet":
        try:
            con.execute(f"CREATE TABLE t AS SELECT *, row_number() OVER () AS __row FROM "
                        f"read_parquet('{_sql_text(path)}') LIMIT {MAX_ROWS}")
        except duckdb.Error as exc:
            raise UserError(f"cannot read {path} as Parquet: {str(exc).splitlines()[0]}"
                            ) from None
        info.rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
        total = con.execute(f"SELECT count(*) FROM read_parquet('{_sql_text(path)}')"
                            ).fetchone()[0]
        info.truncated = total > info.rows
        info.why.append("Parquet (columns typed by the file)")
        return [Column(n, snake(n), db_type=t) for n, t in con.execute(
            "SELECT column_name, column_type FROM (DESCRIBE t) WHERE column_name <> '__row'"
        ).fetchall()]
    if info.format == "xes":
        from transforms.readers import read_table

        read_table(con, path, table="x")
        con.execute("CREATE TABLE t AS SELECT *, rowid + 1 AS __row FROM x")
        con.execute("DROP TABLE x")
        info.rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
        info.why.append("XES event log (trace attributes named case:<key>)")
        return [Column(n, _XES_NAMES.get(n, snake(n))) for n in con.execute(
            "SELECT column_name FROM (DESCRIBE t) WHERE column_name <> '__row'").fetchall()
            for n in n]
    info.encoding, why = detect_encoding(path, info.compression)
    info.why.append(f"encoding {info.encoding} ({why})")
    records: list[dict[str, Any]] | list[list[str]]
    if info.format == "jsonl":
        return _load_json(con, info)
    _sniff_dialect(path, info)
    names: list[str] | None = None
    data: list[list[str]] = []
    with _text_lines(path, info.compression, info.encoding) as fh:
        if info.delimiter == "whitespace":
            records = (ln.split() for ln in fh)
        else:
            records = csv.reader(fh, delimiter=info.delimiter, quotechar=info.quote)
        for row in records:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if names is None:
                if info.header:
                    names = [h.strip().lstrip("\ufeff") for h in row]
                    continue
                names = [f"column{i}" for i in range(len(row))]
            if len(data) >= MAX_ROWS:
                info.truncated = True
                break
            if len(row) != len(names):
                info.malformed += 1
                continue
            data.append(row)
    if names is None:
        raise UserError(f"cannot inspect {path}: no records")
    info.rows = len(data)
    seen: set[str] = set()
    keep = []
    for i, n in enumerate(names):  # ingestion maps a header name to its first position
        if n and n not in seen:
            seen.add(n)
            keep.append(i)
    table = pa.table({**{names[i]: pa.array([r[i] if r[i] != "" else None for r in data],
                                            pa.string()) for i in keep},
                      "__row": pa.array(range(1, len(data) + 1), pa.int64())})
    con.register("arrow_t", table)
    con.execute("CREATE TABLE t AS SELECT * FROM arrow_t")
    con.unregister("arrow_t")
    return [Column(names[i], snake(names[i])) for i in keep]


def _load_json(con: duckdb.DuckDBPyConnection, info: FileInfo) -> list[Column]:
    import pyarrow as pa

    rows: list[dict[str, Any]] = []
    order: dict[str, None] = {}
    objects: set[str] = set()
    with _text_lines(info.path, info.compression, info.encoding) as fh:
        text_start = fh.read(1)
        body = fh if text_start != "[" else None
        if body is None:  # one JSON array of objects
            items = json.loads("[" + fh.read())
            lines: Any = (json.dumps(o) for o in items)
        else:
            lines = (text_start + ln if i == 0 else ln for i, ln in enumerate(fh))
        for line in lines:
            line = line.strip().lstrip("\ufeff")
            if not line:
                continue
            if len(rows) >= MAX_ROWS:
                info.truncated = True
                break
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                info.malformed += 1
                continue
            if not isinstance(obj, dict):
                info.malformed += 1
                continue
            flat: dict[str, Any] = {}
            _flatten(obj, "", flat, _JSON_OBJECTS)
            for k, v in flat.items():
                if isinstance(v, dict) and k in _JSON_OBJECTS:
                    objects.add(k)
                    for sub, sv in v.items():  # profiled too: properties.revenue, ...
                        if not isinstance(sv, dict):
                            flat_key = f"{k}.{sub}"
                            order.setdefault(flat_key, None)
                order.setdefault(k, None)
            for k in list(flat):
                if k in objects and isinstance(flat[k], dict):
                    for sub, sv in flat[k].items():
                        if not isinstance(sv, dict):
                            flat[f"{k}.{sub}"] = sv
            rows.append(flat)
    if not rows:
        raise UserError(f"cannot inspect {info.path}: no JSON objects in it (one per line)")
    info.rows = len(rows)
    names = list(order)
    info.segment = ("type" in order and "timestamp" in order
                    and bool({"anonymousId", "messageId"} & set(order)))
    info.why.append("JSON lines" + (", a Segment-spec export (type, anonymousId, messageId)"
                                    if info.segment else ""))
    cols = {n: pa.array([_json_text(r.get(n)) if not (n in objects and isinstance(
        r.get(n), dict)) else json.dumps(r[n], ensure_ascii=False) for r in rows], pa.string())
        for n in names}
    cols["__row"] = pa.array(range(1, len(rows) + 1), pa.int64())
    con.register("arrow_t", pa.table(cols))
    con.execute("CREATE TABLE t AS SELECT * FROM arrow_t")
    con.unregister("arrow_t")
    out = []
    for n in names:
        head = n.split(".", 1)[0]
        c = Column(n, snake(n))
        if n in objects:
            c.is_json = True
        elif "." in n and head in objects:
            c.inside_json = head
        out.append(c)
    return out


def _sql_text(path: Path) -> str:
    return str(path).replace("'", "''")


def snake(text: str) -> str:
    """A column name as snake_case: `anonymousId` -> anonymous_id, `case:concept:name` ->
    case_concept_name, `Order Date` -> order_date."""
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    s = re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_").lower()
    if not s:
        s = "column"
    if s[0].isdigit():
        s = "c_" + s
    return s


# --------------------------------------------------------------------------- profiling


def time_sql(expr: str, fmt: str, db_type: str = "VARCHAR") -> str:
    """A DuckDB expression reading `expr` as ingestion would (times without offset as UTC)."""
    t = db_type.upper()
    if t.startswith("TIMESTAMP WITH TIME ZONE") or t == "TIMESTAMPTZ":
        return f"timezone('UTC', {expr})"
    if t.startswith("TIMESTAMP") or t == "DATE":
        return f"CAST({expr} AS TIMESTAMP)"
    s = f"CAST({expr} AS VARCHAR)"
    if fmt.startswith("epoch_"):
        div = {"epoch_s": 1, "epoch_ms": 1_000, "epoch_us": 1_000_000}[fmt]
        return (f"CASE WHEN abs(try_cast({s} AS DOUBLE) / {div}) < 253402300799 THEN "
                f"timezone('UTC', to_timestamp(try_cast({s} AS DOUBLE) / {div})) END")
    if fmt != "iso":
        pattern = fmt.replace("'", "''")
        if "%z" in fmt or "%Z" in fmt:
            return f"timezone('UTC', try_strptime({s}, '{pattern}')::TIMESTAMPTZ)"
        return f"try_strptime({s}, '{pattern}')"
    return (f"CASE WHEN regexp_matches({s}, '{_OFFSET_RE}') "
            f"THEN timezone('UTC', try_cast({s} AS TIMESTAMPTZ)) "
            f"ELSE try_cast({s} AS TIMESTAMP) END")


def _profile(con: duckdb.DuckDBPyConnection, col: Column) -> None:
    c = ident(col.field)
    text = f"nullif(trim(CAST({c} AS VARCHAR)), '')"
    row = con.execute(
        f"SELECT count({text}), count(DISTINCT {text}), "
        f"count(*) FILTER (WHERE regexp_matches({text}, '{_NUMBER_RE}')), "
        f"count(*) FILTER (WHERE regexp_matches({text}, '^[+-]?[0-9]+$')), "
        f"count(*) FILTER (WHERE regexp_matches({text}, '{_COMMA_DECIMAL_RE}')), "
        f"min(try_cast({text} AS DOUBLE)), max(try_cast({text} AS DOUBLE)) FROM t").fetchone()
    col.non_null, col.distinct, numbers, integers, commas, lo, hi = row
    if col.non_null:
        col.numeric = numbers >= 0.98 * col.non_null
        col.integer = integers >= 0.98 * col.non_null
        col.comma_decimal = not col.numeric and commas >= 0.9 * col.non_null
        if col.comma_decimal:
            lo, hi = con.execute(
                f"SELECT min(v), max(v) FROM (SELECT try_cast(replace(replace({text}, '.', ''),"
                f" ',', '.') AS DOUBLE) AS v FROM t)").fetchone()
        col.minimum, col.maximum = lo, hi
    col.top = [(str(v), n) for v, n in con.execute(
        f"SELECT {text} AS v, count(*) AS n FROM t WHERE v IS NOT NULL GROUP BY v "
        f"ORDER BY n DESC, v LIMIT 6").fetchall()]
    if col.is_json or not col.non_null:
        return
    _detect_time(con, col)


def _time_like_name(name: str) -> bool:
    return bool(re.search(r"(^|_)(ts|time|timestamp|date|datetime|datum|zeit|day)($|_)", name)
                or name.endswith(("_at", "_on")) or name in ("created", "updated", "when"))


def _detect_time(con: duckdb.DuckDBPyConnection, col: Column) -> None:
    c = ident(col.field)
    t = col.db_type.upper()
    typed = t.startswith("TIMESTAMP") or t == "DATE"
    candidates: list[str] = []
    if typed:
        candidates = ["iso"]
    elif col.numeric:
        if col.integer and col.minimum is not None and len(str(int(col.minimum))) in (8, 14):
            candidates += ["%Y%m%d", "%Y%m%d%H%M%S"]
        if col.minimum is not None and (_time_like_name(col.name) or col.unnamed):
            for fmt, lo, hi, _ in _EPOCHS:
                if lo <= abs(col.minimum) and abs(col.maximum or 0) < hi:
                    candidates.append(fmt)
    else:
        candidates = ["iso", *TIME_PATTERNS]
    if not candidates:
        return
    values = f"(SELECT DISTINCT {c} AS v FROM t WHERE nullif(trim(CAST({c} AS VARCHAR)), '') " \
             f"IS NOT NULL LIMIT 2000)"
    for fmt in candidates:
        expr = time_sql("v", fmt, col.db_type)
        try:
            ok, n, lo, hi = con.execute(
                f"SELECT count({expr}), count(*), min({expr}), max({expr}) FROM {values}"
            ).fetchone()
        except duckdb.Error:
            continue
        if n and ok == n and lo is not None and lo.year >= 1970 and hi.year <= 2100:
            col.time_format = fmt
            col.has_offset = fmt.startswith("epoch_") or "%z" in fmt or \
                t.startswith("TIMESTAMP WITH") or (fmt == "iso" and not typed and con.execute(
                    f"SELECT bool_and(regexp_matches(CAST(v AS VARCHAR), '{_OFFSET_RE}')) "
                    f"FROM {values}").fetchone()[0])
            full = time_sql(c, fmt, col.db_type)
            col.first, col.last, col.date_only = con.execute(
                f"SELECT min({full}), max({full}), coalesce(bool_and({full} = "
                f"date_trunc('day', {full})), false) FROM t").fetchone()
            return


# --------------------------------------------------------------------------- roles


def _by_name(cols: list[Column], role: str, taken: set[str]) -> Column | None:
    names = ROLE_NAMES[role]
    found = [c for c in cols if c.field not in taken and c.name in names]
    if found:
        return min(found, key=lambda c: names.index(c.name))
    return None


def inspect_file(path: str | Path, name: str | None = None) -> SourceGuess:
    """Read one export and guess what it is and what each column means."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"cannot inspect {path}: no such file")
    fmt, compression = detect_format(path)
    info = FileInfo(path=path.resolve(), format=fmt, compression=compression)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        columns = _load(con, info)
        if not info.rows:
            raise UserError(f"cannot inspect {path}: no records in it")
        for col in columns:
            _profile(con, col)
        guess = SourceGuess(name or source_name(path), info, columns)
        _guess_roles(guess)
        _guess_ids(con, guess)
        _guess_segments(guess)
        _measure(con, guess)
    finally:
        con.close()
    return guess


def source_name(path: Path) -> str:
    """A source name from a file name: `Orders 2024.csv.gz` -> orders_2024."""
    name = path.name
    for suffix in (*_COMPRESSION, *_SUFFIXES):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    s = snake(name)[:50].strip("_") or "events"
    return s if s[0].isalpha() else f"src_{s}"[:50]


def _guess_roles(g: SourceGuess) -> None:
    cols = [c for c in g.columns if not c.is_json]
    taken: set[str] = set()
    n = g.file.rows

    def take(role: str, col: Column | None, why: str) -> Column | None:
        if col is not None:
            g.roles[role] = col
            g.reasons[role] = why
            taken.add(col.field)
        return col

    def named(role: str, ok: Any = None) -> Column | None:
        col = _by_name([c for c in cols if c.inside_json is None], role, taken)
        if col is not None and (ok is None or ok(col)):
            return col
        return None

    for c in g.columns:
        if c.is_json:
            take("properties", c, "a JSON object whose keys vary from event to event")
            break
    # time: a named time column that parses, else the first column that parses as times
    t = named("time", lambda c: c.time_format is not None)
    why = "its name"
    if t is None:
        timed = [c for c in cols if c.time_format and c.inside_json is None]
        t = timed[0] if timed else None
        why = "its values"
    if t is not None:
        take("time", t, f"{why}; {_fmt_name(t.time_format)}, {_day(t.first)} .. {_day(t.last)}")

    def unique(c: Column) -> bool:
        return c.distinct == c.non_null and c.non_null >= 0.99 * n

    e = named("event_id", unique)
    if e is not None:
        take("event_id", e, f"its name; unique on every record ({e.distinct:,} values)")
    name_ok = (lambda c: 1 <= c.distinct <= max(200, n // 20)  # noqa: E731
               and c.time_format is None and not c.numeric)
    act = named("event_name", lambda c: name_ok(c) and c.name != "type"
                and c.name != "name")
    if act is None and g.file.segment:
        act = named("event_name", name_ok)
    if act is None:
        act = named("event_name", lambda c: name_ok(c) and c.distinct <= 50)
    if act is not None:
        take("event_name", act, f"its name; {act.distinct:,} distinct values "
                                f"({act.values_text(3)})")
    case = named("case", lambda c: c.distinct >= 1 and not c.numeric or c.integer)
    if case is not None and (act is not None or g.file.format == "xes"):
        take("case", case, f"its name; {case.distinct:,} cases")
    cust = named("customer", lambda c: c.distinct >= 1 and c.time_format is None)
    if cust is not None:
        take("customer", cust, f"its name; {cust.distinct:,} distinct values")
    anon = named("anonymous_id", lambda c: c.distinct >= 1)
    if anon is not None:
        take("anonymous_id", anon, f"its name; {anon.distinct:,} distinct values")
    ses = named("session", lambda c: c.distinct >= 1)
    if ses is not None:
        take("session", ses, f"its name; {ses.distinct:,} sessions")
    order = named("order_id", lambda c: c.distinct >= 1 and c.time_format is None)
    if order is not None:
        take("order_id", order, f"its name; {order.distinct:,} distinct values")
    money = [c for c in cols if c.field not in taken]
    amount = _by_name([c for c in money if c.numeric or c.comma_decimal], "amount", taken)
    if amount is None:  # properties.revenue and the like in a JSON export
        amount = next((c for c in money if (c.numeric or c.comma_decimal) and c.inside_json
                       and c.name.split("_", 1)[-1] in ROLE_NAMES["amount"]), None)
    if amount is not None:
        take("amount", amount, f"its name; numbers {_num(amount.minimum)} .. "
                               f"{_num(amount.maximum)}")
    cur = _by_name([c for c in cols if c.field not in taken and c.top
                    and all(re.fullmatch(r"[A-Z]{3}", v) for v, _ in c.top)], "currency", taken)
    if cur is not None:
        take("currency", cur, f"its name; 3-letter codes ({cur.values_text(3)})")
    st = named("status", lambda c: 1 <= c.distinct <= 30 and not c.numeric)
    if st is not None:
        take("status", st, f"its name; {st.distinct} values ({st.values_text(4)})")
    lc = named("lifecycle", lambda c: c.distinct <= 20)
    if lc is not None:
        take("lifecycle", lc, f"its name; {lc.values_text(4)}")
    if "order_id" not in g.roles and g.file.segment:  # properties.order_id
        order = next((c for c in cols if c.inside_json and c.field not in taken
                      and c.name.split("_", 1)[-1] in ROLE_NAMES["order_id"]), None)
        if order is not None:
            take("order_id", order, f"its name; {order.distinct:,} distinct values")

    # without names (no header): by content
    free = [c for c in cols if c.field not in taken and c.inside_json is None
            and c.time_format is None]
    if "event_name" not in g.roles and "customer" not in g.roles and "case" not in g.roles:
        texts = [c for c in free if not c.numeric and c.distinct >= 2] or \
                [c for c in free if c.distinct >= 2]
        texts.sort(key=lambda c: c.distinct)
        low = [c for c in texts if c.distinct <= max(100, n // 20) and c.distinct < n / 2]
        if low and len(texts) >= 2:
            act = low[0]
            take("event_name", act, f"its values: the text column with fewest distinct values "
                                    f"({act.distinct}: {act.values_text(3)})")
            rest = [c for c in texts if c is not act and c.distinct < c.non_null]
            if rest:
                case = min(rest, key=lambda c: -c.distinct)
                take("case", case, f"its values: repeated ids ({case.distinct:,} distinct, "
                                   f"{case.non_null / max(case.distinct, 1):.1f} records each)")
    if "amount" not in g.roles and any(c.unnamed for c in cols):
        amt = next((c for c in free if c.field not in taken and c.numeric and not c.integer),
                   None)
        if amt is not None:
            take("amount", amt, f"its values: decimal numbers {_num(amt.minimum)} .. "
                                f"{_num(amt.maximum)}")

    # which kind of file
    has_event = "event_name" in g.roles
    if g.file.segment:
        g.kind = "segment"
    elif "case" in g.roles and (has_event or g.file.format == "xes"):
        g.kind = "process"
    elif has_event and ("customer" in g.roles or "anonymous_id" in g.roles
                        or "session" in g.roles):
        g.kind = "clickstream" if ("anonymous_id" in g.roles or "session" in g.roles) \
            else "events"
    elif not has_event and ("amount" in g.roles or "order_id" in g.roles):
        g.kind = "orders"
    elif has_event:
        g.kind = "events"
    else:
        g.kind = "records"
    # a process log follows cases; a customer column beside it is only noted
    if g.kind == "process" and "customer" in g.roles:
        other = g.roles.pop("customer")
        g.reasons.pop("customer")
        g.checks.append(f"{g.name}: journeys follow the case id {g.roles['case'].field!r}; "
                        f"to follow customers across cases set event.customer to "
                        f"{other.name} ({other.distinct:,} distinct values in "
                        f"{other.field!r})")
    if g.kind in ("clickstream", "events") and "customer" not in g.roles:
        if "anonymous_id" not in g.roles and "session" in g.roles:
            g.roles["customer"] = g.roles["session"]
            g.reasons["customer"] = "no customer or anonymous id: each session is an actor"
    if g.kind == "orders" and "status" in g.roles:
        found = [v for v, _ in g.roles["status"].top if v.lower() in _SUCCESS_STATUS]
        if found and len(found) < len(g.roles["status"].top):
            g.success_statuses = found
    if "lifecycle" in g.roles:
        values = [v for v, _ in g.roles["lifecycle"].top]
        complete = next((v for v in values if v.lower() == "complete"), None)
        if complete is not None and len(values) > 1:
            g.lifecycle_complete = complete
        else:
            g.roles.pop("lifecycle")
            g.reasons.pop("lifecycle")
    if "event_name" in g.roles:
        names = [v for v, _ in g.roles["event_name"].top]
        g.purchase_event = next((v for v in names if _PURCHASE_RE.search(v)), None)


def _guess_ids(con: duckdb.DuckDBPyConnection, g: SourceGuess) -> None:
    """The record identity: a unique id column, else the smallest set of role columns that
    is unique, else every column (only identical records are duplicates)."""
    n = g.file.rows
    if "event_id" in g.roles:
        g.id_columns = [g.roles["event_id"]]
        g.id_reason = f"{g.roles['event_id'].field!r} is unique on every record"
        return
    mapped = [c for c in g.columns if not c.is_json and c.inside_json is None]
    unique = [c for c in mapped if c.distinct == n and c.non_null == n
              and c.time_format is None and not (c.numeric and not c.integer)]
    order = g.roles.get("order_id")
    if order is not None and order in unique:
        g.id_columns = [order]
        g.id_reason = f"the order id {order.field!r} is unique on every record"
        return
    # the natural identity of an event (who, what, when), widened until it is unique
    roles = [g.roles[r] for r in ("case", "customer", "anonymous_id", "event_name", "time",
                                  "order_id", "session", "lifecycle", "status", "amount")
             if r in g.roles and g.roles[r].inside_json is None]
    base = sum(1 for r in ("case", "customer", "anonymous_id", "event_name", "time")
               if r in g.roles and g.roles[r].inside_json is None)
    time = g.roles.get("time")
    if time is not None and time.date_only:  # two orders of a customer on one day: distinct
        roles = []
    for k in range(max(2, base), len(roles) + 1):
        combo = roles[:k]
        distinct = con.execute(f"SELECT count(*) FROM (SELECT DISTINCT "
                               f"{', '.join(ident(c.field) for c in combo)} FROM t)"
                               ).fetchone()[0]
        if distinct == n:
            g.id_columns = combo
            g.id_reason = ("no id column; these together are unique on every record: "
                           + ", ".join(c.field for c in combo))
            return
    g.id_columns = []
    distinct = con.execute(f"SELECT count(*) FROM (SELECT DISTINCT "
                           f"{', '.join(ident(c.field) for c in mapped)} FROM t)").fetchone()[0]
    g.duplicates = n - distinct
    g.id_reason = ("no id column" + (" and the times are days" if time is not None and
                                     time.date_only else "")
                   + ": a record is identified by its file and line (none is a duplicate)")
    if g.duplicates:
        g.checks.append(f"{g.name}: {g.duplicates:,} record(s) repeat an earlier record exactly; "
                        "all are loaded (identity: file and line); set id_columns to drop "
                        "such repeats as duplicates")


def _guess_segments(g: SourceGuess) -> None:
    used = {c.field for c in g.roles.values()} | {c.field for c in g.id_columns
                                                   if c.distinct == c.non_null}
    n = g.file.rows
    cands = []
    for c in g.columns:
        if c.field in used or c.is_json or c.inside_json or c.time_format or c.numeric:
            continue
        if not 2 <= c.distinct <= SEGMENT_MAX_VALUES or c.non_null < 0.5 * n:
            continue
        if c.distinct > n / 10 or c.name.endswith("_id") or c.name in ("id", "version"):
            continue
        if g.file.segment and c.field in ("type", "channel", "version"):
            continue  # Segment's call type and library fields, not a customer trait
        cands.append(c)
    base = lambda c: c.name.split("_")[-1] if c.name.startswith("context_") else c.name  # noqa
    cands.sort(key=lambda c: (base(c) not in _SEGMENT_NAMES and c.name not in _SEGMENT_NAMES,
                              c.distinct))
    g.segments = cands[:MAX_SEGMENTS]
    g.other_segments = cands[MAX_SEGMENTS:]


def _measure(con: duckdb.DuckDBPyConnection, g: SourceGuess) -> None:
    """Span, actors, activities in typical order, durations (what stages and windows need)."""
    t = g.roles.get("time")
    if t is None:
        return
    ts = time_sql(ident(t.field), t.time_format or "iso", t.db_type)
    actor = _actor_sql(g)
    name = g.roles.get("event_name")
    ev = ident(name.field) if name is not None else "NULL"
    if g.kind == "segment" and "type" in [c.field for c in g.columns] and name is not None:
        ev = f"coalesce({ev}, \"type\")"
    where = ""
    if g.lifecycle_complete is not None:
        lc = ident(g.roles["lifecycle"].field)
        where = f"WHERE {lc} = '{g.lifecycle_complete.replace(chr(39), chr(39) * 2)}'"
    con.execute(f"CREATE TABLE ev AS SELECT * FROM (SELECT {actor} AS actor, "
                f"CAST({ev} AS VARCHAR) AS ename, {ts} AS ts, __row FROM t {where}) "
                f"WHERE ts IS NOT NULL")
    g.first, g.last = con.execute("SELECT min(ts), max(ts) FROM ev").fetchone()
    g.actors = con.execute("SELECT count(DISTINCT actor) FROM ev").fetchone()[0]
    g.duration_p90_s = con.execute(
        "SELECT quantile_cont(d, 0.9) FROM (SELECT epoch(max(ts) - min(ts)) AS d FROM ev "
        "WHERE actor IS NOT NULL GROUP BY actor)").fetchone()[0]
    if name is not None:
        skip = _SEGMENT_CALLS if g.kind == "segment" else ()
        rows = con.execute(f"""
            WITH e AS (SELECT * FROM ev WHERE actor IS NOT NULL AND ename IS NOT NULL
                       AND ename NOT IN ({', '.join(f"'{s}'" for s in skip) or "''"})),
            p AS (SELECT actor, ename,
                         row_number() OVER (PARTITION BY actor ORDER BY ts, __row) - 1 AS pos,
                         row_number() OVER (PARTITION BY actor ORDER BY ts DESC, __row DESC)
                           = 1 AS last
                  FROM e),
            f AS (SELECT actor, ename, min(pos) AS pos, bool_or(last) AS last FROM p
                  GROUP BY actor, ename)
            SELECT f.ename, (SELECT count(*) FROM e WHERE e.ename = f.ename) AS events,
                   count(*) AS cases, count(*) FILTER (WHERE pos = 0) AS starts,
                   median(pos) AS med, count(*) FILTER (WHERE last) AS ends
            FROM f GROUP BY f.ename ORDER BY cases DESC, events DESC, f.ename""").fetchall()
        g.activities = [Activity(str(a), e, c, s, float(m), n) for a, e, c, s, m, n in rows]
    if g.kind == "orders" or (g.purchase_event and name is not None):
        key = g.roles.get("order_id")
        keyexpr = ident(key.field) if key is not None and key.inside_json is None else "__row"
        only = ""
        if g.kind != "orders":
            only = f"AND ename = '{g.purchase_event.replace(chr(39), chr(39) * 2)}'"
        con.execute(f"""CREATE TABLE buys AS SELECT ev.actor, min(ev.ts) AS ts FROM ev
                        JOIN t USING (__row) WHERE ev.actor IS NOT NULL {only}
                        GROUP BY ev.actor, {keyexpr}""")
        g.repeaters, g.repeat_gap_p90_s = con.execute("""
            SELECT count(*), quantile_cont(gap, 0.9) FROM (
              SELECT actor, epoch(list_sort(list(ts))[2] - min(ts)) AS gap FROM buys
              GROUP BY actor HAVING count(*) >= 2)""").fetchone()


def _actor_sql(g: SourceGuess) -> str:
    cust = g.customer
    anon = g.roles.get("anonymous_id")
    if cust is not None and anon is not None:
        c, a = ident(cust.field), ident(anon.field)
        tcol = g.roles["time"]
        ts = time_sql(ident(tcol.field), tcol.time_format or "iso", tcol.db_type)
        return (f"coalesce({c}, arg_min({c}, {ts}) FILTER (WHERE {c} IS NOT NULL) "
                f"OVER (PARTITION BY {a}), 'anon:' || {a})")
    if cust is not None:
        return f"CAST({ident(cust.field)} AS VARCHAR)"
    if anon is not None:
        return f"CAST({ident(anon.field)} AS VARCHAR)"
    return "NULL"


# --------------------------------------------------------------------------- proposing


def propose(paths: list[str | Path], out_dir: str | Path) -> Proposal:
    """Inspect every file and build the project proposal (texts included)."""
    out = Path(out_dir).expanduser().resolve()
    guesses: list[SourceGuess] = []
    names: set[str] = set()
    for p in paths:
        path = Path(p).expanduser()
        name = source_name(path)
        k, base = 1, name
        while name in names:
            k += 1
            name = f"{base[:46]}_{k}"
        names.add(name)
        guesses.append(inspect_file(path, name))
    prop = _plan(guesses, out)
    prop.sources_yaml = render_sources(prop)
    prop.journey_map_yaml = render_journey_map(prop)
    return prop


def _event_col_name(column: str) -> str:
    """The events column for a source column (context_os_name -> os_name)."""
    name = column
    if name.startswith("context_") and len(name) > len("context_"):
        name = name[len("context_"):]
    if name in _CORE or name in _RESERVED:
        name = f"{name}_value"
    return name


def _plan(guesses: list[SourceGuess], out: Path) -> Proposal:
    checks: list[str] = []
    lines: list[str] = []
    event_columns: dict[str, str] = {}
    notes: dict[str, str] = {}
    for g in guesses:
        if g.roles.get("time") is None:
            raise UserError(f"{g.file.path}: found no time column (no column parses as "
                            "timestamps); a source needs the time of each record")
        if g.customer is None and "anonymous_id" not in g.roles:
            raise UserError(f"{g.file.path}: found no customer, case or anonymous id column "
                            f"(columns: {', '.join(c.field for c in g.columns[:20])}); rename "
                            "the customer column to customer_id or user_id and run init again")
        for role, (col, typ) in ROLE_EVENT_COLUMNS.items():
            c = g.roles.get(role)
            if c is None or (role == "lifecycle" and g.lifecycle_complete is None):
                continue
            if role == "amount" and c.comma_decimal:
                continue  # read as text by ingestion: not an amount
            event_columns.setdefault(col, typ)
            notes.setdefault(col, f"{ROLE_LABELS[role]}: {g.name}.{c.field}")
    segs: list[tuple[str, str, Column]] = []
    for g in guesses:
        for c in g.segments:
            name = _event_col_name(c.name)
            if name in event_columns and not any(s[1] == name for s in segs):
                continue
            event_columns.setdefault(name, "string")
            notes.setdefault(name, f"candidate segment: {g.name}.{c.field}")
            if not any(s[0] == name for s in segs) and len(segs) < MAX_SEGMENTS:
                segs.append((name, name, c))
    # stages
    stages: list[Stage] = []
    event_sources = [g for g in guesses if g.kind in ("process", "segment", "clickstream",
                                                      "events")]
    orders = [g for g in guesses if g.kind == "orders"]
    records = [g for g in guesses if g.kind == "records"]
    used: set[str] = set()

    def unique_name(text: str) -> str:
        name = re.sub(r"\s+", " ", text.strip())[:60] or "Stage"
        k, base = 1, name
        while name.lower() in used:
            k += 1
            name = f"{base[:56]} ({k})"
        used.add(name.lower())
        return name

    purchase_rule: dict[str, Any] | None = None
    purchase_reason = ""
    purchase_stage: str | None = None
    repeat_key: str | None = None
    end_stage: tuple[int, str] | None = None  # (journeys ending there, stage name)
    for g in event_sources:
        acts = _stage_activities(g)
        if not acts:
            continue
        first = acts[0]
        # where most journeys end: the conversion stage when there is no purchase
        ahead = [a for a in acts[1:] if not _EXIT_RE.search(a.name)] or acts[1:] or acts
        goal = max(ahead, key=lambda a: (a.ends, a.median_position))
        for i, a in enumerate(acts):
            rule: dict[str, Any] = {"source": g.name, "event_name": a.name}
            if g.lifecycle_complete is not None:
                rule["where"] = {"lifecycle": g.lifecycle_complete}
            share = a.cases / max(g.actors, 1)
            is_goal = a is goal and not g.purchase_event
            exit_like = i > 0 and bool(_EXIT_RE.search(a.name)) and not is_goal
            optional = bool(stages) and i > 0 and (share <= 0.5 or exit_like) and not is_goal
            what = "cases" if g.kind == "process" else "actors"
            comment = (f"{a.cases:,} of {g.actors:,} {what} ({share:.0%}), median position "
                       f"{a.median_position:g}")
            if i == 0:
                comment += f"; starts {first.starts:,} {what}: the entry"
            if is_goal:
                comment += f"; ends {a.ends:,} {what}"
            if exit_like:
                comment += "; sounds like a way out, not a step: optional"
            elif optional:
                comment += "; half or fewer reach it: optional"
            st = Stage(unique_name(a.name), f"{g.name}: {a.name}", rule, optional=optional,
                       comment=comment)
            stages.append(st)
            if is_goal and (end_stage is None or a.ends > end_stage[0]):
                end_stage = (a.ends, st.name)
            if g.purchase_event == a.name and purchase_stage is None and not orders:
                purchase_stage = st.name
        if g.purchase_event and purchase_rule is None and not orders:
            purchase_rule = {"source": g.name, "event_name": g.purchase_event}
            purchase_reason = f"the event {g.purchase_event!r} of {g.name} looks like a purchase"
            if purchase_stage is None:
                st = Stage(unique_name("Purchase"), f"{g.name}: {g.purchase_event}",
                           dict(purchase_rule), comment="the purchase event")
                stages.append(st)
                purchase_stage = st.name
            if "order_id" in g.roles:
                repeat_key = "order_id"
    for g in orders:
        rule = {"source": g.name}
        reason = f"every record of {g.name} is a purchase (an orders table: no event column)"
        if g.success_statuses:
            rule["where"] = {"status": g.success_statuses[0] if len(g.success_statuses) == 1
                             else g.success_statuses}
            reason = (f"a record of {g.name} with status {', '.join(g.success_statuses)} is a "
                      "purchase")
            checks.append(f"{g.name}: only status {', '.join(g.success_statuses)} counts as a "
                          f"purchase (statuses: {g.roles['status'].values_text(6)})")
        if purchase_rule is None:
            purchase_rule, purchase_reason = dict(rule), reason
            if "order_id" in g.roles:
                repeat_key = "order_id"
        if purchase_stage is None:
            st = Stage(unique_name("Purchase"), f"an order ({g.name})", dict(rule),
                       comment=reason)
            stages.append(st)
            purchase_stage = st.name
        else:  # a second orders source: its records also reach Purchase
            stages[[s.name for s in stages].index(purchase_stage)].comment += \
                f"; also {g.name}"
    for g in records:
        stages.append(Stage(unique_name(g.name.replace("_", " ").capitalize()),
                            f"a record of {g.name}", {"source": g.name},
                            comment="no event column: every record is this event"))
        checks.append(f"{g.name}: found no event name or amount column; every record is one "
                      f"event named {g.name!r}")
    if purchase_stage is not None:
        st = Stage(unique_name("Repeat"), "a later purchase by the same customer",
                   repeat_of=purchase_stage, distinct_by=repeat_key or "event_id",
                   comment=("the 2nd and later distinct " +
                            ("order ids" if repeat_key else "purchase records")))
        stages.append(st)
    # conversion stage
    if purchase_stage is not None:
        conv, conv_reason = purchase_stage, "the purchase stage"
    elif end_stage is not None:
        conv = end_stage[1]
        conv_reason = (f"most journeys end there ({end_stage[0]:,}); no purchase event found")
        checks.append(f"conversion_stage: {conv!r} is where most journeys end (no purchase in "
                      "the data); name the stage that means success")
    else:
        required = [s for s in stages if not s.optional and s.repeat_of is None]
        conv = required[-1].name
        conv_reason = "the last stage (no purchase event found)"
        checks.append(f"conversion_stage: {conv!r} is a guess (no purchase in the data); name "
                      "the stage that means success")
    # the data's span and windows
    firsts = [g.first for g in guesses if g.first]
    lasts = [g.last for g in guesses if g.last]
    span_days = ((max(lasts) - min(firsts)).total_seconds() / 86400) if firsts else 0.0
    horizons, hreason = _horizons(span_days)
    window, wreason = _window(guesses, span_days, purchase_stage is not None and not
                              event_sources, max(horizons))
    # currency
    currency, creason = None, ""
    for g in guesses:
        c = g.roles.get("currency")
        if c is not None and c.distinct == 1:
            currency, creason = c.top[0][0], f"{g.name}.{c.field} holds only {c.top[0][0]}"
            break
        if c is not None:
            checks.append(f"currency: {g.name}.{c.field} holds {c.values_text(4)}; amounts "
                          "are summed across currencies, set `currency` to the main one")
    if currency is None and purchase_rule is not None and "amount" in event_columns:
        checks.append("currency: none found in the data; add `currency: EUR` (or yours) to "
                      "sources.yaml so money figures carry it")
    activity = None
    clicks = [g for g in guesses if g.kind in ("segment", "clickstream")]
    if clicks:
        activity = {"source": clicks[0].name}
    prop = Proposal(guesses, stages, conv, conv_reason, window, wreason, horizons, hreason,
                    currency, creason, purchase_rule, purchase_reason, event_columns, notes,
                    segs, activity, out, lines, checks)
    _describe(prop, span_days)
    return prop


def _stage_activities(g: SourceGuess) -> list[Activity]:
    """Up to MAX_STAGES activities done by at least MIN_STAGE_SHARE of the actors: the most
    frequent (by actors reaching them), the entry
    first (the activity most actors start with), the rest by median position."""
    acts = [a for a in g.activities if a.cases >= max(1, MIN_STAGE_SHARE * g.actors)]
    if not acts:
        return []
    chosen = acts[:MAX_STAGES]
    if g.purchase_event and not any(a.name == g.purchase_event for a in chosen):
        buy = next((a for a in acts if a.name == g.purchase_event), None)
        if buy is not None:
            chosen = [*chosen[:MAX_STAGES - 1], buy]
    entry = max(chosen, key=lambda a: (a.starts, a.cases))
    rest = sorted((a for a in chosen if a is not entry),
                  key=lambda a: (a.median_position, -a.cases))
    return [entry, *rest]


def _horizons(span_days: float) -> tuple[list[int], str]:
    if span_days >= 365:
        h = [30, 90, 180]
    elif span_days >= 180:
        h = [30, 60, 90]
    elif span_days >= 60:
        h = [14, 30, 60]
    elif span_days >= 21:
        h = [7, 14, 30]
    else:
        h = [1, 3, 7]
    return h, f"the data spans {span_days:,.0f} days"


def _window(guesses: list[SourceGuess], span_days: float, orders_only: bool,
            horizon: int) -> tuple[int, str]:
    cap = max(1, math.floor(span_days / 2))
    if orders_only:
        gaps = [g.repeat_gap_p90_s for g in guesses if g.repeat_gap_p90_s is not None]
        if gaps:
            days = max(1, math.ceil(max(gaps) / 86400))
            why = f"90% of second orders come within {days} days of the first"
            if days > horizon:
                why += f"; capped at the longest repeat horizon ({horizon}d)"
                days = horizon
        else:
            days, why = 30, "no customer ordered twice; 30 days"
    else:
        durs = [g.duration_p90_s for g in guesses if g.duration_p90_s is not None]
        days = max(1, math.ceil((max(durs) if durs else 86400) / 86400))
        why = f"90% of journeys last at most {days} day(s) from first to last event"
    if days > cap:
        why += f"; capped at half the data's span ({cap}d) so most cohorts are complete"
        days = cap
    return days, why


# --------------------------------------------------------------------------- describing


def _describe(p: Proposal, span_days: float) -> None:
    lines = p.lines
    for g in p.sources:
        f = g.file
        how = [f.format.upper()] + ([f.compression] if f.compression else [])
        lines.append(f"{g.name}: {f.path.name}: {' '.join(how)}, {f.rows:,} records"
                     f"{' (only the first read)' if f.truncated else ''}; {_KIND[g.kind]}")
        for w in f.why:
            lines.append(f"  {w}")
        for role, col in g.roles.items():
            lines.append(f"  {ROLE_LABELS[role]:<13} {col.field!r}: {g.reasons[role]}")
        ids = ", ".join(repr(c.field) for c in g.id_columns) or "file and line"
        lines.append(f"  {'record id':<13} {ids}: {g.id_reason}")
        for c in g.segments:
            lines.append(f"  {'segment':<13} {c.field!r}: {c.distinct} values "
                         f"({c.values_text(4)})")
        p.checks.extend(g.checks)
        if f.malformed:
            p.checks.append(f"{g.name}: {f.malformed:,} record(s) have another number of "
                            "fields than the first; they will be quarantined")
        t = g.roles.get("time")
        if t is not None and not t.has_offset:
            p.checks.append(f"{g.name}: times in {t.field!r} without an offset are read as "
                            "UTC; set sources." + g.name + ".timezone if they are local time")
        if t is not None and t.time_format and "%d/%m" in t.time_format:
            p.checks.append(f"{g.name}: {t.field!r} read as day/month ({t.time_format}); if "
                            "it is month/day, use %m/%d/%Y")
        amount = g.roles.get("amount")
        if amount is not None and amount.comma_decimal:
            p.checks.append(f"{g.name}: amounts in {amount.field!r} use a decimal comma, which "
                            "ingestion does not read as numbers: mapped as text, no revenue")
        if g.other_segments:
            p.checks.append(f"{g.name}: other candidate segments: "
                            + ", ".join(c.field for c in g.other_segments[:6]))
        if g.kind == "process" and g.lifecycle_complete:
            p.checks.append(f"{g.name}: stages count only events with lifecycle "
                            f"{g.lifecycle_complete!r}")
    arrow = " -> ".join(s.name + (" (optional)" if s.optional else "") for s in p.stages)
    lines.append(f"stages: {arrow}")
    lines.append(f"conversion_stage: {p.conversion_stage} ({p.conversion_reason})")
    lines.append(f"conversion_window: {p.window_days}d ({p.window_reason})")
    lines.append(f"repeat_horizons: {p.horizons} ({p.horizons_reason})")
    if p.purchase:
        lines.append(f"purchase: metric_events.payment_succeeded = {_flow(p.purchase)} "
                     f"({p.purchase_reason})")
    if p.currency:
        lines.append(f"currency: {p.currency} ({p.currency_reason})")
    if p.segments:
        lines.append("segments: " + ", ".join(s[0] for s in p.segments))
    else:
        lines.append("segments: none (no low-cardinality text column)")
    if any(s.optional for s in p.stages):
        p.checks.append("stages marked optional are reached by under half of the journeys; "
                        "make one required (or remove it) if it must happen")
    p.checks.append("stage names and their order: rename them to your business's words; "
                    "merge activities into one stage by listing several event names")


_KIND = {"orders": "an orders table: every record is a purchase",
         "process": "a process log: case, activity, time",
         "segment": "a Segment-style export: identify calls stitch anonymous ids to users",
         "clickstream": "a clickstream: events of anonymous ids, sessions or users",
         "events": "an event log: customer, event, time",
         "records": "records without an event name: every record is one event"}


def _fmt_name(fmt: str | None) -> str:
    if fmt is None:
        return "not times"
    if fmt == "iso":
        return "ISO 8601 times"
    if fmt.startswith("epoch_"):
        return {"epoch_s": "epoch seconds", "epoch_ms": "epoch milliseconds",
                "epoch_us": "epoch microseconds"}[fmt]
    return f"times written {fmt}"


def _day(ts: dt.datetime | None) -> str:
    return ts.date().isoformat() if ts else "?"


def _num(x: float | None) -> str:
    if x is None:
        return "?"
    return f"{x:,.2f}" if x != int(x) else f"{int(x):,}"


def _short(v: str, n: int = 24) -> str:
    return v if len(v) <= n else v[: n - 1] + "…"


# --------------------------------------------------------------------------- rendering

_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$")
_YAML_WORDS = {"yes", "no", "on", "off", "true", "false", "null", "y", "n", "~"}


def yv(value: Any) -> str:
    """A YAML scalar or flow collection for `value`, quoted where YAML needs it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{yv(k)}: {yv(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(yv(v) for v in value) + "]"
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _YAML_WORDS:
        try:
            if yaml.safe_load(text) == text:
                return text
        except yaml.YAMLError:
            pass
    return json.dumps(text, ensure_ascii=False)


def _flow(value: Any) -> str:
    return yv(value)


def _line(indent: int, key: str, value: Any = None, comment: str = "", *,
          block: bool = False) -> str:
    head = " " * indent + (f"{yv(key)}:" if not block else f"{yv(key)}:")
    text = head if value is None and block else f"{head} {yv(value)}"
    if comment:
        text += "  # " + comment.replace("\n", " ")
    return text


def _path_text(path: Path, out: Path) -> str:
    """The file's path as a glob: relative to the project folder when it is inside it."""
    try:
        rel = path.relative_to(out)
        text = rel.as_posix()
    except ValueError:
        text = path.as_posix()
    return globlib.escape(text)


def render_sources(p: Proposal) -> str:
    out: list[str] = []
    today = dt.date.today().isoformat()
    out += [
        f"# Project config written by `journeys init` on {today} from "
        + ", ".join(g.file.path.name for g in p.sources) + ".",
        "# Every value below is a guess from the files; the `guessed:` comments say why. Check",
        "# them (and the `check:` list init printed), then run:",
        "#   journeys run --config " + str(p.out_dir / "sources.yaml"),
        "#",
        "# Keys (all explained in data/sample/sources.yaml of Observed Journeys):",
        "#   path: glob of the export files (relative to this file); format: csv | tsv | jsonl |",
        "#   parquet | xes; delimiter/quote/header/encoding: how a text file is written;",
        "#   columns: our column name -> field in the export; types: string | integer | decimal |",
        "#   timestamp | json; time_format: iso | epoch_s | epoch_ms | epoch_us | a strftime",
        "#   pattern; event_time: the column whose UTC day is the record's partition; timezone:",
        "#   zone of times written without an offset; id_columns: the record's identity (a",
        "#   repeat is a duplicate); plausible: left to the defaults (no earliest date; at most",
        "#   max_days_after_export = 1 day after a dated file's export day);",
        "#   event: how a record becomes one row of the unified events table (event_name: a",
        "#   column, a list of columns (first non-empty wins) or {default: name}; customer;",
        "#   anonymous_id: stitched to the customer first seen with it; columns: events column",
        "#   -> source column).",
        "",
        "warehouse: warehouse/journeys.duckdb",
        "journey_map: journey_map.yaml",
        "output_dir: output",
        "",
    ]
    if p.currency:
        out += [_line(0, "currency", p.currency, f"guessed: {p.currency_reason}"), ""]
    else:
        out += ["# currency: EUR   # the currency of amounts (none found in the data)", ""]
    out += ["# The unified events table: its core columns, then these attribute columns,",
            "# filled by the sources' event.columns (journey-map rules and segments name them)."]
    if p.event_columns:
        out += ["events:", "  columns:"]
        for col, typ in p.event_columns.items():
            out.append(_line(4, col, typ, p.event_column_notes.get(col, "")))
    else:
        out += ["events:", "  columns: {}"]
    out += ["", "sources:"]
    for g in p.sources:
        out += _render_source(g, p)
    return "\n".join(out) + "\n"


def _render_source(g: SourceGuess, p: Proposal) -> list[str]:
    f = g.file
    out = [f"  {g.name}:", f"    # guessed from {f.path.name}: {_KIND[g.kind]}; "
                           f"{f.rows:,} records" + (" (first read)" if f.truncated else "")]
    out.append(_line(4, "path", _path_text(f.path, p.out_dir)))
    out.append(_line(4, "format", f.format, ", ".join(
        w for w in f.why if w.startswith(("JSON", "XES", "Parquet")))))
    if f.format in ("csv", "tsv"):
        delim = "\\t" if f.delimiter == "\t" else f.delimiter
        why = next((w for w in f.why if w.startswith("delimiter")), "")
        out.append(_line(4, "delimiter", delim, f"guessed: {why[len('delimiter '):]}"))
        if f.quote != '"':
            out.append(_line(4, "quote", f.quote))
        hwhy = next((w for w in f.why if "row" in w), "")
        out.append(_line(4, "header", f.header, f"guessed: {hwhy}"))
    if f.format not in ("parquet", "xes"):
        ewhy = next((w for w in f.why if w.startswith("encoding")), "")
        out.append(_line(4, "encoding", f.encoding, f"guessed: {ewhy[len('encoding '):]}"))
    # columns
    role_of = {c.field: r for r, c in g.roles.items()}
    seg_fields = {c.field for c in g.segments}
    mapped = [c for c in g.columns if c.inside_json is None]
    our: dict[str, str] = {}  # field -> our name
    used: set[str] = set()
    for c in mapped:
        name = c.name if c.name not in ("event_ts", "partition_date", "clock_skew_corrected",
                                        "source_file", "source_line", "loaded_at") \
            else f"{c.name}_value"
        k, base = 1, name
        while name in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        our[c.field] = name
    out.append("    columns:")
    for c in mapped:
        role = role_of.get(c.field)
        if role:
            comment = f"guessed: {ROLE_LABELS[role]} — {g.reasons[role]}"
        elif c.field in seg_fields:
            comment = f"candidate segment — {c.distinct} values ({c.values_text(4)})"
        elif c.time_format:
            comment = f"{_fmt_name(c.time_format)} (kept as text)"
        else:
            comment = f"{c.distinct:,} distinct values" if c.non_null else "always empty"
        out.append(_line(6, our[c.field], c.field, comment))
    t = g.roles["time"]
    types: dict[str, str] = {our[t.field]: "timestamp"}
    amount = g.roles.get("amount")
    if amount is not None and amount.inside_json is None and not amount.comma_decimal:
        types[our[amount.field]] = "decimal"
    for c in mapped:
        if c.is_json:
            types[our[c.field]] = "json"
    out.append("    types:")
    for col, typ in types.items():
        out.append(_line(6, col, typ))
    if t.time_format and t.time_format != "iso":
        out.append(_line(4, "time_format", t.time_format,
                         f"guessed: {_fmt_name(t.time_format)}"))
    required = [our[t.field]]
    ename = g.roles.get("event_name")
    if ename is not None and g.kind != "segment" and ename.non_null == f.rows:
        required.append(our[ename.field])
    cust = g.customer
    if cust is not None and "anonymous_id" not in g.roles and cust.non_null == f.rows:
        required.append(our[cust.field])
    anon = g.roles.get("anonymous_id")
    if anon is not None and anon.non_null == f.rows:
        required.append(our[anon.field])
    out.append(_line(4, "required", list(dict.fromkeys(required)),
                     "a record without them is quarantined"))
    out.append(_line(4, "event_time", our[t.field]))
    out.append(_line(4, "timezone", "UTC", "the times name their offset" if t.has_offset else
                     "check: the zone of the times, written without an offset"))
    ids = [our[c.field] for c in g.id_columns if c.field in our]
    if ids:
        out.append(_line(4, "id_columns", ids, f"guessed: {g.id_reason}"))
    else:
        out.append(f"    # id_columns: left out — {g.id_reason}; a record repeating another's "
                   "id_columns would be a duplicate")
    # event block
    out.append("    event:")
    if ename is not None:
        if g.kind == "segment" and "type" in our and ename.field != "type":
            out.append(_line(6, "event_name", [our[ename.field], our["type"]],
                             "track calls name the event; identify/page calls have their type"))
        else:
            out.append(_line(6, "event_name", our[ename.field]))
    elif g.kind == "orders":
        out.append(_line(6, "event_name", {"default": "order"},
                         "no event column: every record is an order"))
    else:
        out.append(_line(6, "event_name", {"default": g.name},
                         "no event column: every record is this event"))
    if cust is not None:
        label = ROLE_LABELS["case" if cust is g.roles.get("case") else "customer"]
        out.append(_line(6, "customer", our[cust.field],
                         f"guessed: {label} — {cust.distinct:,} distinct values"))
    if anon is not None:
        out.append(_line(6, "anonymous_id", our[anon.field],
                         "identity stitching: an anonymous id belongs to the customer first "
                         "seen with it"))
    cols: dict[str, Any] = {}
    for role, (col, _) in ROLE_EVENT_COLUMNS.items():
        c = g.roles.get(role)
        if c is None or col not in p.event_columns:
            continue
        if role == "amount" and c.comma_decimal:
            continue
        if c.inside_json is not None:
            ref = f"{our[c.inside_json]}.{c.field.split('.', 1)[1]}"
            if not re.fullmatch(r"[A-Za-z0-9_.]+", ref):
                continue
            cols[col] = ref
        else:
            cols[col] = our[c.field]
    for _name, ecol, c in p.segments:
        if c.field in our and any(c is s for s in g.segments):
            cols[ecol] = our[c.field]
    if cols:
        out.append("      columns:")
        for col, ref in cols.items():
            out.append(_line(8, col, ref))
    out.append("")
    return out


def render_journey_map(p: Proposal) -> str:
    out = [
        "# Journey map written by `journeys init`: the stages and roles below are guesses from",
        "# the data (see the comments). Rename the stages, merge or drop some, then run",
        "# `journeys run`. A rule matches events of a source (source, optional event_name: one",
        "# name or a list, optional where: events column -> value); a derived stage",
        "# (repeat_of) counts a customer's distinct purchases. The keys are explained in",
        "# data/sample/journey_map.yaml of Observed Journeys.",
        "",
        "version: 1",
        "",
        "# Time allowed from a journey's entry (its first-stage event) to every later stage.",
        _line(0, "conversion_window", f"{p.window_days}d", f"guessed: {p.window_reason}"),
        "",
        "# The stage whose reaching counts as converted.",
        _line(0, "conversion_stage", p.conversion_stage, f"guessed: {p.conversion_reason}"),
        "",
        "# Stages in journey order; `optional: true` lets customers skip one.",
        "stages:",
    ]
    for s in p.stages:
        out.append(f"  - name: {yv(s.name)}" + (f"  # {s.comment}" if s.comment else ""))
        out.append(_line(4, "description", s.description))
        if s.optional:
            out.append(_line(4, "optional", True))
        out.append("    rules:")
        if s.repeat_of:
            out.append(f"      - repeat_of: {yv(s.repeat_of)}")
            out.append(_line(8, "distinct_by", s.distinct_by,
                             "each distinct value is one purchase"))
            out.append(_line(8, "min_occurrence", 2, "the 2nd purchase and every later one"))
        else:
            out.append("      - " + yv(s.rule))
        out.append("")
    out.append("# Columns journeys and funnels are broken down by (events columns).")
    if p.segments:
        out.append("segments:")
        for name, col, c in p.segments:
            out.append(_line(2, name, {"column": col},
                             f"guessed: {c.distinct} values ({c.values_text(4)})"))
    else:
        out.append("segments: {}  # no good candidate (a text column with 2-20 values)")
    out += ["",
            "# Repeat purchase is measured at these horizons (days after the first purchase).",
            _line(0, "repeat_horizons", p.horizons, f"guessed: {p.horizons_reason}"), ""]
    out.append("# Which events play which role in the metrics (leave a role out when your data "
               "has none).")
    roles: dict[str, Any] = {}
    if p.purchase:
        roles["payment_succeeded"] = p.purchase
    if p.metric_activity:
        roles["app_activity"] = p.metric_activity
    if roles:
        out.append("metric_events:")
        if p.purchase:
            out.append(_line(2, "payment_succeeded", p.purchase,
                             f"guessed: the purchase — {p.purchase_reason}"))
        if p.metric_activity:
            out.append(_line(2, "app_activity", p.metric_activity,
                             "events whose gaps make up time in app (sessions)"))
    else:
        out.append("metric_events: {}  # no purchase found")
    if not p.purchase:
        out += ["", "# Per-stage metric groups: purchase metrics need a purchase event.",
                "metric_stages:", "  purchase: null"]
    return "\n".join(out) + "\n"


def write_proposal(p: Proposal, out_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Write sources.yaml and journey_map.yaml into the project folder; returns their paths."""
    out = Path(out_dir).expanduser().resolve() if out_dir else p.out_dir
    out.mkdir(parents=True, exist_ok=True)
    src, jm = out / "sources.yaml", out / "journey_map.yaml"
    src.write_text(p.sources_yaml, encoding="utf-8")
    jm.write_text(p.journey_map_yaml, encoding="utf-8")
    return src, jm


__all__ = ["FileInfo", "Column", "SourceGuess", "Proposal", "inspect_file", "propose",
           "render_sources", "render_journey_map", "write_proposal", "detect_encoding",
           "detect_format", "snake", "source_name", "time_sql", "yv"]
