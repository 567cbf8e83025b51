"""Source definitions: load and validate the project config (`sources.yaml`).

The file says where the warehouse, the journey map and the outputs live, which sources exist
(any number, any names), and per source where its exports are, how their fields map to our
columns, and how each record becomes one row of the unified `events` table (its `event:` block:
event name, customer, anonymous id, the events columns it fills, and columns it looks up in
another source). The `events:` block lists the events table's attribute columns. Every mistake
stops with a `ConfigError` naming the file, the key and the fix.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from transforms.errors import ConfigError, UserError

FORMATS = ("jsonl", "csv", "tsv", "parquet", "xes")
# how timestamps are written, besides ISO 8601 (the default): epoch numbers or a strftime pattern
EPOCH_FORMATS = {"epoch_s": 1, "epoch_ms": 1_000, "epoch_us": 1_000_000}
ENCODINGS_HINT = "utf-8, latin-1, cp1252 or utf-16"
TYPES = ("string", "integer", "decimal", "timestamp", "json")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# a file named with a day later than today in every time zone (UTC+14 is the furthest ahead)
# is dated in the future
FUTURE_FILE_HOURS = 14
# days without any export file between two export days that `journeys run` points out when its
# range spans them: a stray early file makes a run of every day since (each daily partition
# costs run-history bookkeeping), which is usually not what was meant
EXPORT_GAP_DAYS = 180
NOW_ENV = "JOURNEYS_NOW"


def now_utc() -> dt.datetime:
    """The current time in UTC (naive), the one clock every plausibility check uses: the
    environment variable JOURNEYS_NOW (an ISO 8601 timestamp, e.g. `2026-10-05T12:00:00Z`;
    without an offset it is UTC) when set, else the system clock. Tests and replays set it."""
    raw = os.environ.get(NOW_ENV, "").strip()
    if not raw:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)
    try:
        when = dt.datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise UserError(f"{NOW_ENV}={raw!r} is not an ISO 8601 timestamp; write it as e.g. "
                        "2026-10-05T12:00:00Z, or unset it") from None
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return when


def future_file_day(path: Path, now: dt.datetime | None = None) -> dt.date | None:
    """The export day in the name of `path` when it is later than today in every time zone
    (after the UTC date of now + 14 hours): such a file is rejected as dated in the future."""
    day = file_date(path)
    now = now or now_utc()
    if day is not None and day > (now + dt.timedelta(hours=FUTURE_FILE_HOURS)).date():
        return day
    return None
# Columns every `events` row has, whatever the sources (docs/CONTRACTS.md); the attribute
# columns after them come from the config's `events.columns`.
CORE_EVENT_COLUMNS = ("event_id", "source", "customer_id", "is_identified", "anonymous_id",
                      "event_name", "event_ts", "event_date")
# the attribute types an events column may have
EVENT_TYPES = ("string", "integer", "decimal", "json")


@dataclass(frozen=True)
class ColumnRef:
    """Where an events value comes from in a source's raw table: the first non-null of
    `columns` (each a mapped column, or `json_column.key.path` inside a json column), else
    `default`."""

    columns: tuple[str, ...] = ()
    default: str | None = None


@dataclass(frozen=True)
class Lookup:
    """Columns a source's events take from the earliest record of `source` with the same `by`
    value (e.g. payments take the customer, city and category of their booking)."""

    source: str
    by: str  # an events column both sources fill
    columns: tuple[str, ...]  # events columns (customer_id for the customer)


@dataclass(frozen=True)
class EventMapping:
    """How one record of a source becomes one row of `events`."""

    event_name: ColumnRef
    event_name_prefix: str = ""
    customer: ColumnRef | None = None
    anonymous_id: ColumnRef | None = None
    columns: dict[str, ColumnRef] = field(default_factory=dict)  # events column -> source
    lookup: Lookup | None = None


@dataclass(frozen=True)
class EventsSchema:
    """The unified events table: core columns plus `columns` (name -> type) in order, and the
    columns an event lacking a value takes from the same customer's latest earlier event."""

    columns: dict[str, str]
    carry_forward: tuple[str, ...] = ()

    @property
    def all_columns(self) -> tuple[str, ...]:
        return CORE_EVENT_COLUMNS + tuple(self.columns)


@dataclass(frozen=True)
class Source:
    name: str
    path_glob: str  # absolute glob
    format: str
    columns: dict[str, str]  # our column -> field in the export
    types: dict[str, str]
    required: tuple[str, ...]
    enums: dict[str, tuple[str, ...]]
    ranges: dict[str, dict[str, float]]
    event_time: str
    timezone: str
    id_columns: tuple[str, ...]
    late_days: int
    earliest: dt.date | None
    max_days_after_export: int
    max_days_before_data: int = 365
    clock_skew_column: str | None = None
    clock_skew_max_seconds: float | None = None
    event: EventMapping | None = None
    delimiter: str = ","  # csv: one character, or "whitespace" (runs of spaces and tabs)
    quote: str = '"'
    header: bool = True  # without one, fields are named column0, column1, ...
    encoding: str = "utf-8"
    time_formats: dict[str, str] = field(default_factory=dict)  # timestamp column -> format

    @property
    def identity(self) -> tuple[str, ...]:
        """The raw-table columns that identify a record: `id_columns`, else its file and
        line."""
        return self.id_columns or ("source_file", "source_line")

    def time_format(self, column: str) -> str:
        """How `column`'s timestamps are written: 'iso', 'epoch_s|ms|us' or a strftime
        pattern."""
        return self.time_formats.get(column, "iso")

    def type_of(self, column: str) -> str:
        return self.types.get(column, "string")

    def files(self) -> list[Path]:
        """Export files of this source, sorted by name."""
        base = Path(self.path_glob)
        anchor = Path(base.anchor)
        return sorted(anchor.glob(str(base.relative_to(anchor))))


ENGINES = ("duckdb", "spark")
SPARK_KEYS = ("master", "remote", "database", "conf")


@dataclass(frozen=True)
class SparkSettings:
    """The `spark:` block (with `engine: spark`): where the session runs and where tables live.

    master: local[N] (default local[*]), spark://host:7077, yarn, k8s://...; remote: a Spark
    Connect URL (sc://host:15002), instead of master; database: keep the tables in this database
    of the session's catalog (a cluster's metastore or Unity Catalog schema) instead of Parquet
    folders under `warehouse`; conf: Spark settings (spark.driver.memory, ...)."""

    master: str | None = None
    remote: str | None = None
    database: str | None = None
    conf: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ProjectConfig:
    path: Path
    warehouse: Path
    journey_map: Path
    output_dir: Path
    sources: dict[str, Source] = field(default_factory=dict)
    schedule_hour_utc: int = 4
    start_date: dt.date | None = None
    events: EventsSchema = field(default_factory=lambda: EventsSchema({}))
    currency: str | None = None
    # the warehouse engine: duckdb (a DuckDB file, the default) or spark (SparkSettings;
    # `warehouse` is then a folder of Parquet tables, unless spark.database names a database)
    engine: str = "duckdb"
    spark: SparkSettings = field(default_factory=SparkSettings)

    def _day_bounds(self) -> tuple[list[dt.date], list[dt.date]]:
        """Earliest and latest days that can hold rows, per file: a dated file's export day
        widened back by how late its rows may arrive (late_days) and forward by how far its
        timestamps may lie after it (max_days_after_export), and for files without a date their
        records' event days. A file dated in the future (see `future_file_day`) and a path that
        is no readable file (`transforms.ingest.file_problem`: a directory, a broken link) hold
        no rows: they add no days."""
        from transforms.ingest import file_problem, undated_day_range

        lows, highs = [], []
        now = now_utc()
        for s in self.sources.values():
            for p in s.files():
                d = file_date(p)
                if d is not None and future_file_day(p, now) is None and \
                        file_problem(p, s) is None:
                    lows.append(d - dt.timedelta(days=s.late_days))
                    highs.append(d + dt.timedelta(days=s.max_days_after_export))
            found = undated_day_range(s)
            if found is not None:
                lows.append(found[0])
                highs.append(found[1])
        return lows, highs

    def first_partition(self) -> dt.date:
        """The first daily partition: start_date, else the earliest day any export can hold
        rows of (an export day moved back by late_days, or the first event day of a file
        without a date), else today (UTC)."""
        if self.start_date:
            return self.start_date
        lows, _ = self._day_bounds()
        return min(lows) if lows else now_utc().date()

    def data_range(self) -> tuple[dt.date, dt.date] | None:
        """Partitions that can hold rows of the exported files: from first_partition() to the
        latest export day plus the largest allowed lead of a timestamp over its export day
        (or the last event day of a file without a date)."""
        lows, highs = self._day_bounds()
        if not highs:
            return None
        return self.first_partition(), max(highs)


    def export_gaps(self, first: dt.date, last: dt.date,
                    min_days: int = EXPORT_GAP_DAYS) -> list[tuple[dt.date, dt.date, list[Path]]]:
        """The stretches of more than `min_days` days inside first..last without any dated
        export file of any source: (last export day before, first export day after, the
        files dated before the stretch), earliest first."""
        dated = sorted((d, f) for s in self.sources.values() for f in s.files()
                       if (d := file_date(f)) is not None and first <= d <= last)
        gaps = []
        for (before, _), (after, _) in zip(dated, dated[1:], strict=False):
            if (after - before).days - 1 > min_days:
                gaps.append((before, after, [f for d, f in dated if d <= before]))
        return gaps


def _fail(path: Path, key: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(path, key, problem, fix)


def _mapping(raw: Any, path: Path, key: str) -> dict:
    if not isinstance(raw, dict):
        raise _fail(path, key, f"expected a mapping, got {type(raw).__name__}",
                    "write it as `name: value` pairs")
    return raw


def _str_list(raw: Any, path: Path, key: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        raise _fail(path, key, "expected a list of names", "write it as [a, b, c]")
    return tuple(raw)


def load_config(config_path: str | Path) -> ProjectConfig:
    """Read and validate the project config. Raises ConfigError on any mistake."""
    path = Path(config_path).expanduser().resolve()
    if not path.exists():
        raise _fail(path, "(file)", "the config file does not exist",
                    "pass --config with the path of your sources.yaml")
    if path.is_dir():
        hint = (f"pass --config {path / 'sources.yaml'}" if (path / "sources.yaml").is_file()
                else "pass --config with the path of your sources.yaml file")
        raise _fail(path, "(file)", "is a folder, not a config file", hint)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise _fail(path, "(file)", f"is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                    f"line {line})", "save sources.yaml as UTF-8, or pass --config with the "
                    "path of your sources.yaml") from None
    except OSError as exc:
        raise _fail(path, "(file)", f"cannot be read ({exc.strerror or exc})",
                    "check the file's permissions, or pass another --config") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise _fail(path, "(syntax)", f"not valid YAML{where}",
                    "fix the indentation or quoting there") from None
    raw = _mapping(raw, path, "(top level)")
    base = path.parent

    def rel(key: str, default: str) -> Path:
        value = raw.get(key, default)
        if not isinstance(value, str) or not value:
            raise _fail(path, key, "expected a path", f"write e.g. `{key}: {default}`")
        return (base / value).resolve()

    sources_raw = _mapping(raw.get("sources"), path, "sources")
    top_keys = {"warehouse", "journey_map", "output_dir", "sources", "schedule", "start_date",
                "events", "currency", "privacy", "engine", "spark"}
    unknown = set(raw) - top_keys
    if unknown:
        key = sorted(unknown)[0]
        raise _fail(path, key, "unknown key",
                    f"use only {', '.join(sorted(top_keys))} at the top level")
    schedule = _mapping(raw.get("schedule", {}), path, "schedule")
    hour = schedule.get("hour_utc", 4)
    if not isinstance(hour, int) or isinstance(hour, bool) or not 0 <= hour <= 23:
        raise _fail(path, "schedule.hour_utc", f"{hour!r} is not an hour",
                    "use an integer from 0 to 23 (UTC)")
    start_date = None
    if raw.get("start_date") is not None:
        try:
            start_date = dt.date.fromisoformat(str(raw["start_date"]))
        except ValueError:
            raise _fail(path, "start_date", "not a date", "write it as YYYY-MM-DD") from None
    if not sources_raw:
        raise _fail(path, "sources", "no source is defined",
                    "define at least one source (see data/sample/sources.yaml)")
    events = _load_events_schema(raw.get("events"), path)
    currency = raw.get("currency")
    if currency is not None and (not isinstance(currency, str) or not currency.strip()):
        raise _fail(path, "currency", f"{currency!r} is not a currency",
                    "write a currency code such as EUR, or leave the key out")
    sources = {name: _load_source(name, src, path, base, events)
               for name, src in sources_raw.items()}
    for name, src in sources.items():
        lk = src.event.lookup if src.event else None
        if lk is None:
            continue
        key = f"sources.{name}.event.lookup"
        other = sources.get(lk.source)
        if other is None or other.event is None or lk.source == name:
            raise _fail(path, f"{key}.source", f"{lk.source!r} is not another source with an "
                        "event block", f"name one of {', '.join(n for n in sources if n != name)}")
        if other.event.lookup is not None:
            raise _fail(path, f"{key}.source", f"source {lk.source!r} takes columns from "
                        "another source itself (its own lookup)", "look up in a source that "
                        "has the columns of its own")
        if lk.by not in other.event.columns:
            raise _fail(path, f"{key}.by", f"source {lk.source!r} does not fill events column "
                        f"{lk.by!r}", f"map {lk.by} under sources.{lk.source}.event.columns")
        for col in lk.columns:
            if col != "customer_id" and col not in other.event.columns:
                raise _fail(path, f"{key}.columns", f"source {lk.source!r} does not fill "
                            f"{col!r}", f"map {col} under sources.{lk.source}.event.columns "
                            "or remove it here")
            if col == "customer_id" and other.event.customer is None:
                raise _fail(path, f"{key}.columns", f"source {lk.source!r} has no customer",
                            f"set sources.{lk.source}.event.customer")
    engine = raw.get("engine", "duckdb")
    if engine not in ENGINES:
        raise _fail(path, "engine", f"{engine!r} is not an engine",
                    "write `engine: duckdb` (the default) or `engine: spark`")
    spark = _load_spark(raw.get("spark"), path, engine)
    if engine == "spark":
        warehouse = rel("warehouse", "warehouse/spark")
        _check_spark_warehouse(path, warehouse, spark)
    else:
        warehouse = rel("warehouse", "warehouse/journeys.duckdb")
        _check_warehouse(path, warehouse)
    journey_map = rel("journey_map", "journey_map.yaml")
    if journey_map.is_dir():
        raise _fail(path, "journey_map", f"{journey_map} is a folder, not a journey map file",
                    "name the YAML file, e.g. `journey_map: journey_map.yaml`")
    output_dir = rel("output_dir", "output")
    if output_dir.exists() and not output_dir.is_dir():
        raise _fail(path, "output_dir", f"{output_dir} is a file, not a folder",
                    "name a folder (it is created if missing), e.g. `output_dir: output`")
    return ProjectConfig(
        path=path,
        warehouse=warehouse,
        journey_map=journey_map,
        output_dir=output_dir,
        sources=sources,
        schedule_hour_utc=hour,
        start_date=start_date,
        events=events,
        currency=currency.strip() if currency else None,
        engine=engine,
        spark=spark,
    )


def _load_spark(raw: Any, path: Path, engine: str) -> SparkSettings:
    """The `spark:` block, checked; Spark itself is looked for only when the engine is spark."""
    if raw is None:
        raw = {}
    elif engine != "spark":
        raise _fail(path, "spark", "is read only with `engine: spark`",
                    "add `engine: spark` or remove the spark block")
    raw = _mapping(raw, path, "spark")
    unknown = sorted(set(raw) - set(SPARK_KEYS))
    if unknown:
        raise _fail(path, f"spark.{unknown[0]}", "unknown key",
                    f"allowed keys are {', '.join(SPARK_KEYS)}")
    for key in ("master", "remote", "database"):
        if raw.get(key) is not None and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise _fail(path, f"spark.{key}", f"{raw[key]!r} is not text",
                        "write it as text, e.g. " + {"master": "`master: local[4]`",
                                                     "remote": "`remote: sc://host:15002`",
                                                     "database": "`database: journeys`"}[key])
    if raw.get("master") and raw.get("remote"):
        raise _fail(path, "spark.remote", "both master and remote are given",
                    "keep one: remote for a Spark Connect server, master otherwise")
    remote = raw.get("remote")
    if remote and not remote.startswith("sc://"):
        raise _fail(path, "spark.remote", f"{remote!r} is not a Spark Connect URL",
                    "write it as sc://host:15002")
    database = raw.get("database")
    if database and not NAME_RE.match(database.replace(".", "_")):
        raise _fail(path, "spark.database", f"{database!r} is not a database name",
                    "use letters, digits and underscores (catalog.schema is allowed)")
    conf = _mapping(raw.get("conf", {}) or {}, path, "spark.conf")
    from transforms.spark_engine import REQUIRED_CONF

    pairs = []
    for key, value in conf.items():
        if not isinstance(key, str) or not key.startswith("spark."):
            raise _fail(path, f"spark.conf.{key}", "is not a Spark setting",
                        "Spark settings start with spark., e.g. spark.driver.memory: 4g")
        if isinstance(value, dict | list) or value is None:
            raise _fail(path, f"spark.conf.{key}", "expected one value",
                        f"write it as `{key}: <value>`")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if key in REQUIRED_CONF and text != REQUIRED_CONF[key]:
            raise _fail(path, f"spark.conf.{key}", f"must be {REQUIRED_CONF[key]} (the "
                        "numbers depend on it)", "remove it from spark.conf")
        pairs.append((key, text))
    if engine == "spark":
        _check_spark_installed(path, remote)
    return SparkSettings(master=raw.get("master"), remote=remote, database=database,
                         conf=tuple(pairs))


def _check_spark_installed(path: Path, remote: str | None) -> None:
    """`engine: spark` needs pyspark here, and Java unless the session is remote."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("pyspark") is None:
        raise _fail(path, "engine", "spark needs pyspark, which is not installed",
                    "run `pip install -e '.[spark]'` (or `engine: duckdb`)")
    if not remote and shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise _fail(path, "engine", "spark needs Java 17 on this machine (no `java` on PATH)",
                    "install Java 17 (e.g. openjdk-17-jre-headless), or use spark.remote")


def _check_spark_warehouse(path: Path, warehouse: Path, spark: SparkSettings) -> None:
    """With Spark's Parquet tables the warehouse is a folder (created when missing)."""
    if spark.database:
        return
    if warehouse.exists() and not warehouse.is_dir():
        raise _fail(path, "warehouse", f"{warehouse} is a file; with `engine: spark` it is the "
                    "folder of the Parquet tables", "name a folder, e.g. `warehouse: "
                    "warehouse/spark`")


# a DuckDB database file has this magic at bytes 8..11 (its first block header)
DUCKDB_MAGIC = b"DUCK"


def _check_warehouse(path: Path, warehouse: Path) -> None:
    """The warehouse is a DuckDB file or not there yet (it is created then)."""
    if warehouse.is_dir():
        raise _fail(path, "warehouse", f"{warehouse} is a folder, not a DuckDB file",
                    "name the database file, e.g. `warehouse: warehouse/journeys.duckdb`")
    if not warehouse.exists():
        return
    try:
        with warehouse.open("rb") as fh:
            head = fh.read(12)
    except OSError as exc:
        raise _fail(path, "warehouse", f"{warehouse} cannot be read ({exc.strerror or exc})",
                    "check the file's permissions") from None
    if head[8:12] != DUCKDB_MAGIC:
        raise _fail(path, "warehouse", f"{warehouse} exists but is not a DuckDB database",
                    "point warehouse at a new file name (it is created) or at the project's "
                    "existing .duckdb file; move the other file away")


def _load_events_schema(raw: Any, path: Path) -> EventsSchema:
    raw = _mapping(raw if raw is not None else {}, path, "events")
    extra = set(raw) - {"columns", "carry_forward"}
    if extra:
        raise _fail(path, f"events.{sorted(extra)[0]}", "unknown key",
                    "allowed keys are columns, carry_forward")
    cols = _mapping(raw.get("columns", {}) or {}, path, "events.columns")
    for col, typ in cols.items():
        if not isinstance(col, str) or not NAME_RE.match(col):
            raise _fail(path, f"events.columns.{col}", "column names must be lowercase "
                        "snake_case", "rename it, e.g. order_id")
        if col in CORE_EVENT_COLUMNS:
            raise _fail(path, f"events.columns.{col}", "is a core column of every event",
                        f"leave it out (core columns: {', '.join(CORE_EVENT_COLUMNS)})")
        if typ not in EVENT_TYPES:
            raise _fail(path, f"events.columns.{col}", f"unknown type {typ!r}",
                        f"use one of {', '.join(EVENT_TYPES)}")
    carry = _str_list(raw.get("carry_forward", []) or [], path, "events.carry_forward")
    for col in carry:
        if col not in cols:
            raise _fail(path, "events.carry_forward", f"{col!r} is not an events column",
                        "list columns declared under events.columns")
    return EventsSchema(dict(cols), carry)


def _check_json_path(field: str, path: Path, key: str) -> None:
    """A dotted JSON path has no backslash (DuckDB's JSON paths read it as an escape)."""
    if "\\" in field:
        raise _fail(path, key, f"the JSON path {field!r} contains a backslash, which JSON paths "
                    "read as an escape", "remove the backslash (keys with one cannot be read)")


def _column_ref(raw: Any, path: Path, key: str, columns: dict[str, str],
                types: dict[str, str]) -> ColumnRef:
    """`col`, `json_col.key.path`, a list of those (first non-null), or
    {column(s): ..., default: text}."""
    default = None
    if isinstance(raw, dict):
        extra = set(raw) - {"column", "columns", "default"}
        if extra:
            raise _fail(path, f"{key}.{sorted(extra)[0]}", "unknown key",
                        "use column (or columns) and default")
        default = raw.get("default")
        if default is not None and not isinstance(default, str | int | float):
            raise _fail(path, f"{key}.default", "expected a single value",
                        "write e.g. `default: organic`")
        raw = raw.get("columns", raw.get("column", []))
    refs = raw if isinstance(raw, list) else [raw]
    for ref in refs:
        if not isinstance(ref, str) or not ref:
            raise _fail(path, key, f"{ref!r} is not a column", "name a mapped column")
        head, _, rest = ref.partition(".")
        if head not in columns:
            raise _fail(path, key, f"{head!r} is not a mapped column of this source",
                        f"use one of {', '.join(columns)}")
        if rest and types.get(head) != "json":
            raise _fail(path, key, f"{ref!r} reads a key inside {head!r}, which is not a json "
                        "column", f"declare {head}: json under types, or name the column alone")
        if rest:
            _check_json_path(rest, path, key)
    if not refs and default is None:
        raise _fail(path, key, "names no column", "name a mapped column")
    return ColumnRef(tuple(refs), None if default is None else str(default))


def _load_event_mapping(raw: Any, path: Path, k: str, columns: dict[str, str],
                        types: dict[str, str], events: EventsSchema) -> EventMapping:
    raw = _mapping(raw, path, k)
    allowed = {"event_name", "customer", "anonymous_id", "columns", "lookup"}
    extra = set(raw) - allowed
    if extra:
        raise _fail(path, f"{k}.{sorted(extra)[0]}", "unknown key",
                    f"allowed keys are {', '.join(sorted(allowed))}")
    if "event_name" not in raw:
        raise _fail(path, f"{k}.event_name", "missing", "name the column holding the event "
                    "name, e.g. `event_name: event`, or `{prefix: order_, column: status}`, or "
                    "a constant `{default: purchase}`")
    name_raw = raw["event_name"]
    prefix = ""
    if isinstance(name_raw, dict) and "prefix" in name_raw:
        prefix = name_raw["prefix"]
        if not isinstance(prefix, str):
            raise _fail(path, f"{k}.event_name.prefix", "expected text", "write e.g. booking_")
        name_raw = {key: v for key, v in name_raw.items() if key != "prefix"}
    event_name = _column_ref(name_raw, path, f"{k}.event_name", columns, types)
    customer = (_column_ref(raw["customer"], path, f"{k}.customer", columns, types)
                if raw.get("customer") is not None else None)
    anon = (_column_ref(raw["anonymous_id"], path, f"{k}.anonymous_id", columns, types)
            if raw.get("anonymous_id") is not None else None)
    cols_raw = _mapping(raw.get("columns", {}) or {}, path, f"{k}.columns")
    cols = {}
    for col, ref in cols_raw.items():
        if col not in events.columns:
            raise _fail(path, f"{k}.columns.{col}", "not a column of the events table",
                        "declare it under events.columns (top level) or remove it here")
        cols[col] = _column_ref(ref, path, f"{k}.columns.{col}", columns, types)
    lookup = None
    if raw.get("lookup") is not None:
        lk = _mapping(raw["lookup"], path, f"{k}.lookup")
        extra = set(lk) - {"source", "by", "columns"}
        if extra or not {"source", "by", "columns"} <= set(lk):
            raise _fail(path, f"{k}.lookup", "expected source, by and columns",
                        "write e.g. {source: bookings, by: booking_id, columns: [customer_id]}")
        if lk["by"] not in cols:
            raise _fail(path, f"{k}.lookup.by", f"{lk['by']!r} is not filled by this source",
                        f"map {lk['by']} under {k}.columns")
        lcols = _str_list(lk["columns"], path, f"{k}.lookup.columns")
        for col in lcols:
            if col != "customer_id" and col not in events.columns:
                raise _fail(path, f"{k}.lookup.columns", f"{col!r} is not an events column",
                            "name customer_id or columns declared under events.columns")
        lookup = Lookup(str(lk["source"]), lk["by"], lcols)
    if customer is None and anon is None and not (lookup and "customer_id" in lookup.columns):
        raise _fail(path, f"{k}.customer", "the source names no customer",
                    "map the customer id (`customer: user_id`), an anonymous id, or look the "
                    "customer up in another source (`lookup`)")
    return EventMapping(event_name, prefix, customer, anon, cols, lookup)


def _load_source(name: str, raw: Any, path: Path, base: Path, events: EventsSchema) -> Source:
    k = f"sources.{name}"
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > 50:
        raise _fail(path, k, "source names must be lowercase snake_case (at most 50 "
                    "characters)", "rename it, e.g. orders")
    raw = _mapping(raw, path, k)
    allowed = {"path", "format", "columns", "types", "required", "enums", "ranges", "event_time",
               "timezone", "id_columns", "late_days", "plausible", "clock_skew", "event",
               "delimiter", "quote", "header", "encoding", "time_format"}
    extra = set(raw) - allowed
    if extra:
        raise _fail(path, f"{k}.{sorted(extra)[0]}", "unknown key",
                    f"allowed keys are {', '.join(sorted(allowed))}")
    glob = raw.get("path")
    if not isinstance(glob, str) or not glob:
        raise _fail(path, f"{k}.path", "missing", "give a glob of the export files, "
                    "e.g. raw/clickstream/*.jsonl")
    fmt = raw.get("format")
    if fmt not in FORMATS:
        raise _fail(path, f"{k}.format", f"{fmt!r} is not supported",
                    f"use one of {', '.join(FORMATS)}")
    columns = _mapping(raw.get("columns"), path, f"{k}.columns")
    for col, fld in columns.items():
        if not isinstance(col, str) or not NAME_RE.match(col):
            raise _fail(path, f"{k}.columns.{col}", "column names must be lowercase snake_case",
                        "rename it, e.g. event_name")
        if not isinstance(fld, str) or not fld:
            raise _fail(path, f"{k}.columns.{col}", "expected the field name in the export",
                        f"write e.g. `{col}: {col}`")
        if fmt == "jsonl":
            _check_json_path(fld, path, f"{k}.columns.{col}")
    types = _mapping(raw.get("types", {}), path, f"{k}.types")
    for col, typ in types.items():
        if col not in columns:
            raise _fail(path, f"{k}.types.{col}", "not a mapped column",
                        "add it under columns or remove it here")
        if typ not in TYPES:
            raise _fail(path, f"{k}.types.{col}", f"unknown type {typ!r}",
                        f"use one of {', '.join(TYPES)}")
    required = _str_list(raw.get("required", []), path, f"{k}.required")
    for col in required:
        if col not in columns:
            raise _fail(path, f"{k}.required", f"{col!r} is not a mapped column",
                        "add it under columns or remove it from required")
    enums_raw = _mapping(raw.get("enums", {}), path, f"{k}.enums")
    enums = {}
    for col, values in enums_raw.items():
        if col not in columns:
            raise _fail(path, f"{k}.enums.{col}", "not a mapped column",
                        "add it under columns or remove it here")
        enums[col] = _str_list(values, path, f"{k}.enums.{col}")
    ranges_raw = _mapping(raw.get("ranges", {}), path, f"{k}.ranges")
    ranges: dict[str, dict[str, float]] = {}
    for col, bounds in ranges_raw.items():
        bounds = _mapping(bounds, path, f"{k}.ranges.{col}")
        if col not in columns or types.get(col) not in ("integer", "decimal"):
            raise _fail(path, f"{k}.ranges.{col}", "ranges apply to integer/decimal columns",
                        f"declare {col} as integer or decimal under types")
        for b, v in bounds.items():
            if b not in ("min", "max") or not isinstance(v, int | float) \
                    or isinstance(v, bool):
                raise _fail(path, f"{k}.ranges.{col}.{b}", "expected min/max numbers",
                            "write e.g. {min: 0, max: 5}")
            if not math.isfinite(v):
                raise _fail(path, f"{k}.ranges.{col}.{b}", f"{v!r} is not a finite number",
                            f"write a number, or leave {b} out for no bound")
        if bounds.get("min", -math.inf) > bounds.get("max", math.inf):
            raise _fail(path, f"{k}.ranges.{col}", f"min {bounds['min']} is above max "
                        f"{bounds['max']}", "swap them, or fix the one that is wrong")
        ranges[col] = dict(bounds)
    event_time = raw.get("event_time")
    if event_time not in columns or types.get(event_time) != "timestamp":
        raise _fail(path, f"{k}.event_time", f"{event_time!r} is not a timestamp column",
                    "name a mapped column declared `timestamp` under types")
    tz = raw.get("timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(str(tz))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _fail(path, f"{k}.timezone", f"unknown time zone {tz!r}",
                    "use an IANA name such as UTC or Europe/Berlin") from None
    # without id columns a record is identified by its place (file and line): no duplicates
    id_columns = (_str_list(raw["id_columns"], path, f"{k}.id_columns")
                  if raw.get("id_columns") else ())
    for col in id_columns:
        if col not in columns:
            raise _fail(path, f"{k}.id_columns", f"{col!r} is not a mapped column",
                        "list mapped columns that identify a record")
    late_days = raw.get("late_days", 1)
    if not isinstance(late_days, int) or isinstance(late_days, bool) or not 0 <= late_days <= 30:
        raise _fail(path, f"{k}.late_days", f"{late_days!r} is not a number of days",
                    "use an integer from 0 to 30")
    plaus = _mapping(raw.get("plausible", {}), path, f"{k}.plausible")
    try:
        earliest = (dt.date.fromisoformat(str(plaus["earliest"]))
                    if plaus.get("earliest") is not None else None)
    except ValueError:
        raise _fail(path, f"{k}.plausible.earliest", "not a date",
                    "write it as YYYY-MM-DD") from None
    max_after = plaus.get("max_days_after_export", 1)
    if not isinstance(max_after, int) or max_after < 0:
        raise _fail(path, f"{k}.plausible.max_days_after_export", "not a number of days",
                    "use an integer >= 0")
    max_before = plaus.get("max_days_before_data", 365)
    if not isinstance(max_before, int) or isinstance(max_before, bool) or max_before < 1:
        raise _fail(path, f"{k}.plausible.max_days_before_data", "not a number of days",
                    "use an integer >= 1")
    skew_col = skew_max = None
    if "clock_skew" in raw:
        skew = _mapping(raw["clock_skew"], path, f"{k}.clock_skew")
        skew_col = skew.get("received_column")
        if skew_col not in columns or types.get(skew_col) != "timestamp":
            raise _fail(path, f"{k}.clock_skew.received_column", f"{skew_col!r} is not a "
                        "timestamp column", "name the mapped received-at timestamp column")
        skew_max = skew.get("max_seconds")
        if not isinstance(skew_max, int | float) or skew_max <= 0:
            raise _fail(path, f"{k}.clock_skew.max_seconds", "not a positive number",
                        "write e.g. `max_seconds: 86400`")
    event = (_load_event_mapping(raw["event"], path, f"{k}.event", columns, types, events)
             if raw.get("event") is not None else None)
    reading = _load_reading(raw, path, k, fmt, columns, types)
    return Source(
        name=name, path_glob=str((base / glob).resolve()) if not Path(glob).is_absolute()
        else glob, format=fmt, columns=dict(columns), types=dict(types), required=required,
        enums=enums, ranges=ranges, event_time=event_time, timezone=str(tz),
        id_columns=id_columns, late_days=late_days, earliest=earliest,
        max_days_after_export=max_after, max_days_before_data=max_before,
        clock_skew_column=skew_col,
        clock_skew_max_seconds=float(skew_max) if skew_max else None, event=event,
        **reading,
    )


def _load_reading(raw: dict, path: Path, k: str, fmt: str, columns: dict[str, str],
                  types: dict[str, str]) -> dict[str, Any]:
    """The reader options of a source: delimiter, quote, header, encoding, time formats."""
    out: dict[str, Any] = {}
    text_only = ("delimiter", "quote", "header")
    for key in text_only:
        if key in raw and fmt not in ("csv", "tsv"):
            raise _fail(path, f"{k}.{key}", f"only csv and tsv files have a {key}",
                        "remove it, or set format: csv")
    delim = raw.get("delimiter", "\t" if fmt == "tsv" else ",")
    delim = {"\\t": "\t", "tab": "\t", "space": "whitespace"}.get(delim, delim)
    if not isinstance(delim, str) or not (len(delim) == 1 or delim == "whitespace"):
        raise _fail(path, f"{k}.delimiter", f"{delim!r} is not a single character",
                    "write one character such as ';' or '|', '\\t' for tabs, or whitespace "
                    "for columns separated by runs of spaces")
    out["delimiter"] = delim
    quote = raw.get("quote", '"')
    if not isinstance(quote, str) or len(quote) != 1:
        raise _fail(path, f"{k}.quote", f"{quote!r} is not a single character",
                    "write e.g. quote: \"'\"")
    out["quote"] = quote
    header = raw.get("header", True)
    if not isinstance(header, bool):
        raise _fail(path, f"{k}.header", f"{header!r} is not true or false",
                    "write header: false when the first line holds data, not names")
    out["header"] = header
    enc = raw.get("encoding", "utf-8")
    try:
        import codecs

        codecs.lookup(str(enc))
    except LookupError:
        raise _fail(path, f"{k}.encoding", f"unknown encoding {enc!r}",
                    f"use e.g. {ENCODINGS_HINT}") from None
    if fmt in ("parquet", "xes") and "encoding" in raw:
        raise _fail(path, f"{k}.encoding", f"{fmt} files declare their own encoding",
                    "remove the key")
    out["encoding"] = str(enc).lower()
    tf = raw.get("time_format")
    stamps = [c for c in columns if types.get(c) == "timestamp"]
    formats: dict[str, str] = {}
    if isinstance(tf, str):
        formats = dict.fromkeys(stamps, tf)
    elif isinstance(tf, dict):
        for col, f in tf.items():
            if col not in stamps:
                raise _fail(path, f"{k}.time_format.{col}", "not a timestamp column",
                            "name a column declared `timestamp` under types")
            formats[col] = f
    elif tf is not None:
        raise _fail(path, f"{k}.time_format", "expected a format or column: format pairs",
                    "write e.g. time_format: '%Y%m%d' or time_format: epoch_ms")
    for f in formats.values():
        ok = isinstance(f, str) and (f in EPOCH_FORMATS or f == "iso" or "%" in f)
        if not ok:
            raise _fail(path, f"{k}.time_format", f"{f!r} is not a time format",
                        "use iso, epoch_s, epoch_ms, epoch_us or a strftime pattern such as "
                        "'%Y%m%d' or '%d/%m/%Y %H:%M'")
    out["time_formats"] = formats
    return out


FILE_DATE_RE = re.compile(r"(\d{4}-\d{2}-\d{2})")


def file_date(path: Path) -> dt.date | None:
    """The export day written in a file name (last YYYY-MM-DD in it), or None."""
    found = FILE_DATE_RE.findall(path.name)
    if not found:
        return None
    try:
        return dt.date.fromisoformat(found[-1])
    except ValueError:
        return None
