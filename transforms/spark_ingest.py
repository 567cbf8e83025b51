"""Ingestion's staging step on the Spark engine: export files read by Spark's readers into the
same `_stage` rows DuckDB's readers give (transforms/ingest.py); everything after staging
(classification, typed columns, quarantine reasons, dedup, reconciliation) is the one SQL text
both engines run.

`_stage` has one row per physical record: source_file (the path as the source's glob gives it),
file_date, source_line (1-based physical line), raw_record, malformed (the reason when the
record cannot be split into fields) and one `s_<column>` field string per mapped column.

- JSON lines: `spark.read.text(paths, wholetext=True)` (one row per file), the text split at
  LF after CRLF and lone CR became LF, `posexplode` numbering the lines exactly as DuckDB's
  `string_split` + `generate_subscripts`; fields by `get_json_object` (JSON paths given as
  parameters), an id's JSON type by `schema_of_variant`. Files Python reads (compressed, another
  encoding, bytes that are not UTF-8) come as Arrow rows (`packed`).
- plain CSV (`transforms.ingest._plain_csv`: no record spans lines): the same whole-text read,
  each line after the header split at the delimiter (a line holding a quote as the csv module
  split it, given as Arrow rows).
- Parquet: Spark's Parquet reader (`stage_parquet`), a row's line its `_metadata.row_index`
  + 1. Its quarantine record is Spark's JSON of the row (`to_json`: timestamps as ISO text,
  doubles as Java writes them), where DuckDB's is DuckDB's; the fields are the same text.
- XES is parsed in Python on both engines (transforms/ingest.py `_stage_xes`) and handed over
  as Arrow: XES logs are process-mining size, streamed one trace at a time.

A file Spark cannot read (`read_errors`) is one `rejected_files` row with `error_text`'s line,
as on DuckDB: the other files load.

Needs pyspark; imported only when the engine is Spark. Known differences from DuckDB's JSON
functions on lines that are no plain JSON object: a line holding an object with a duplicate key
is valid for both, but an id column's type check reads Spark's variant, which refuses
duplicate keys (the check is then skipped); numbers are written back as Jackson writes them.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa

from transforms.sources import Source


def _functions() -> Any:
    from pyspark.sql import functions

    return functions


def _uris(engine: Any, files: list[Path]) -> Any:
    """(uri, source_file): the URIs Spark may name each file by (file:/abs/path,
    percent-encoded), matched back to the source's own spelling of the path."""
    uris = []
    for path in files:
        absolute = Path(path).absolute()
        for uri in {absolute.as_uri(), "file:" + str(absolute), "file://" + str(absolute),
                    _hadoop_uri(str(absolute))}:
            uris.append((uri, str(path)))
    return engine.spark.createDataFrame(uris, "uri string, source_file string").distinct()


def _whole_texts(engine: Any, files: list[Path]) -> Any:
    """(source_file, content): one row per file, the file named as `files` name it."""
    F = _functions()
    texts = (engine.spark.read.text([str(Path(p).absolute()) for p in files], wholetext=True)
             .select(F.input_file_name().alias("uri"), F.col("value").alias("content")))
    return texts.join(F.broadcast(_uris(engine, files)), "uri").select("source_file", "content")


def stage_parquet(engine: Any, source: Source, files: list[Path]) -> None:
    """`_stage` of Parquet files read by Spark's Parquet reader (schemas merged by name, as
    DuckDB's `union_by_name`): the row's position in its file as its line, the row as JSON
    (Spark's `to_json`, nulls kept) for the quarantine, mapped fields (dotted paths into
    structs) as text, timestamps written as DuckDB's stager writes them, a struct, list or
    map mapped to a json column as its JSON. A file holding a column type Spark's reader
    refuses (`_spark_refuses`: UUID, nanosecond timestamps, as pandas and DuckDB write them)
    is read by pyarrow on the driver instead and handed over as Arrow, one file at a time."""
    F = _functions()
    refused = [p for p in files if _spark_refuses(p)]
    native = [p for p in files if p not in refused]
    parts = []
    if native:
        rows = engine.spark.read.option("mergeSchema", "true").parquet(
            *[str(Path(p).absolute()) for p in native])
        data = rows.columns
        rows = (rows.select("*", F.col("_metadata.file_path").alias("_oj_uri"),
                            (F.col("_metadata.row_index") + 1).alias("_oj_line"))
                .join(F.broadcast(_uris(engine, native).withColumnRenamed("uri", "_oj_uri")
                                  .withColumnRenamed("source_file", "_oj_file")), "_oj_uri"))
        parts.append(_parquet_stage(source, rows, data))
    for path in refused:
        table = _spark_readable(path)
        rows = engine.spark.createDataFrame(table.append_column(
            "_oj_line", pa.array(range(1, table.num_rows + 1), pa.int64())))
        parts.append(_parquet_stage(source, rows.withColumn("_oj_file", F.lit(str(path))),
                                    table.column_names))
    staged = parts[0]
    for part in parts[1:]:
        staged = staged.unionByName(part)
    out = staged.join(engine.spark.table("_files"), "source_file").select(
        "source_file", "file_date", "source_line", "raw_record",
        F.lit(None).cast("string").alias("malformed"), *["s_" + c for c in source.columns])
    engine.register_dataframe("_stage", out)


def _parquet_stage(source: Source, rows: Any, data: list[str]) -> Any:
    """(source_file, source_line, raw_record, s_<column>...) of Parquet rows: `data` their
    columns, `_oj_file` and `_oj_line` the file and the row's 1-based position in it."""
    F = _functions()
    from pyspark.sql import types as T

    fields = []
    for c, f in source.columns.items():
        kind: Any = T.StructType([x for x in rows.schema if x.name in data])
        for part in f.split("."):
            names = kind.fieldNames() if isinstance(kind, T.StructType) else []
            if part not in names:
                kind = None  # in no file: null, as on DuckDB (a required one quarantines)
                break
            kind = kind[part].dataType
        if kind is None:
            fields.append(F.lit(None).cast("string").alias("s_" + c))
            continue
        col = F.col(".".join(_backquoted(part) for part in f.split(".")))
        if source.type_of(c) == "timestamp" and isinstance(
                kind, (T.TimestampType, T.TimestampNTZType)):
            col = F.date_format(col, "yyyy-MM-dd'T'HH:mm:ss.SSSSSS")
        elif source.type_of(c) == "json" and isinstance(
                kind, (T.StructType, T.ArrayType, T.MapType)):
            col = F.to_json(col, {"ignoreNullFields": "false"})
        fields.append(col.cast("string").alias("s_" + c))
    record = F.to_json(F.struct(*[F.col(_backquoted(n)) for n in data]),
                       {"ignoreNullFields": "false"})
    return rows.select(F.col("_oj_file").alias("source_file"),
                       F.col("_oj_line").cast("bigint").alias("source_line"),
                       record.alias("raw_record"), *fields)


# Parquet logical types Spark's reader refuses ("Illegal Parquet type"), as pyarrow names them
_REFUSED = {"UUID", "Float16", "Interval"}


def _spark_refuses(path: Path) -> bool:
    """Whether the file's schema holds a type Spark's Parquet reader refuses (a UUID, a
    nanosecond timestamp). A footer pyarrow cannot read is Spark's to reject."""
    import pyarrow.parquet as pq

    try:
        schema = pq.ParquetFile(path).schema
    except (OSError, ValueError, pa.ArrowException):
        return False
    for i in range(len(schema)):
        logical = json.loads(schema.column(i).logical_type.to_json())
        if logical.get("Type") in _REFUSED or logical.get("timeUnit") == "nanoseconds":
            return True
    return False


def _spark_readable(path: Path) -> pa.Table:
    """The file read by pyarrow, its top-level UUIDs as their text (as DuckDB casts them) and
    nanosecond timestamps as microseconds (the stager writes microseconds on both engines)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    for i, field in enumerate(table.schema):
        kind = field.type
        if isinstance(kind, pa.BaseExtensionType):
            kind = kind.storage_type
        if pa.types.is_fixed_size_binary(kind) and kind.byte_width == 16:
            storage = table.column(i)
            if isinstance(field.type, pa.BaseExtensionType):
                storage = pa.chunked_array([c.storage for c in storage.chunks], kind)
            text = [None if b is None else str(uuid.UUID(bytes=b))
                    for b in storage.to_pylist()]
            table = table.set_column(i, field.name, pa.array(text, pa.string()))
        elif pa.types.is_timestamp(kind) and kind.unit == "ns":
            table = table.set_column(i, field.name, pc.cast(
                table.column(i), pa.timestamp("us", kind.tz), safe=False))
    return table


def _backquoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def read_errors() -> tuple[type[BaseException], ...]:
    """What Spark raises when a file cannot be read (its JVM errors, its analysis errors)."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    return (Py4JJavaError, PySparkException)


def error_text(exc: BaseException) -> str:
    """One line for a Spark error: the innermost cause's message, without the Java class,
    Spark's error class or its SQLSTATE."""
    text = str(exc)
    causes = re.findall(r"^Caused by: [\w.$]+: (.+)$", text, re.M)
    if causes:
        line = causes[-1]
    else:
        found = re.search(r"^(?::\s*)?[\w.$]+(?:Exception|Error): (.+)$", text, re.M)
        line = found.group(1) if found else (text.strip().splitlines() or [type(exc).__name__])[0]
    line = re.sub(r"^\[[A-Z0-9_.]+\]\s*", "", line.strip())
    return re.sub(r"\s*SQLSTATE: \w+\.?$", "", line).strip()


def _hadoop_uri(path: str) -> str:
    """The URI Hadoop's Path gives a local absolute path (`file:` + the path, with the
    characters java.net.URI quotes percent-encoded)."""
    safe = re.sub(r"[^A-Za-z0-9/\-._~!$&'()*+,;=:@]",
                  lambda m: "".join(f"%{b:02X}" for b in m.group(0).encode()), path)
    return "file:" + safe


def _numbered(texts: Any) -> Any:
    """(source_file, source_line, raw_record) per physical line of each file's text."""
    F = _functions()
    return texts.select("source_file", F.posexplode(F.split("content", "\n", -1))
                        .alias("pos", "raw_record")).select(
        "source_file", (F.col("pos") + 1).cast("bigint").alias("source_line"), "raw_record")


def _json_path(field: str) -> str:
    return "$" + "".join("['" + part + "']" for part in field.split("."))


def stage_jsonl(engine: Any, source: Source, plain: list[Path], packed: pa.Table,
                id_columns: dict[str, str]) -> None:
    """`_stage` of JSON-lines files: `plain` (UTF-8, uncompressed) read by Spark, `packed`
    (source_file, source_line, raw_record, undecodable: lines Python read) beside them."""
    F = _functions()
    spark = engine.spark
    parts = []
    if plain:
        texts = _whole_texts(engine, plain)
        cr = F.instr("content", "\r") > 0
        texts = texts.select("source_file", F.when(
            cr, F.regexp_replace(F.regexp_replace("content", "\r\n", "\n"), "\r", "\n"))
            .otherwise(F.col("content")).alias("content"))
        parts.append(_numbered(texts).withColumn("undecodable", F.lit(False)))
    if packed.num_rows or not parts:
        rows = spark.createDataFrame(packed)
        parts.append(rows.select(
            "source_file", F.col("source_line").cast("bigint").alias("source_line"),
            F.regexp_replace("raw_record", "\n+$", "").alias("raw_record"),
            F.col("undecodable").cast("boolean").alias("undecodable")))
    numbered = parts[0]
    for p in parts[1:]:
        numbered = numbered.unionByName(p)
    files = spark.table("_files")
    raw = F.col("raw_record")
    stripped = numbered.join(files, "source_file").select(
        "source_file", "file_date", "source_line", "undecodable",
        F.when((F.col("source_line") == 1) & raw.startswith("\ufeff"),
               F.regexp_replace(F.regexp_replace(raw, "\r+$", ""), "^\ufeff+", ""))
        .when(raw.endswith("\r"), F.regexp_replace(raw, "\r+$", ""))
        .otherwise(raw).alias("raw_record"))
    # a blank line (nothing but spaces and tabs) is no record; a valid line is a JSON object
    lines = stripped.where(raw.startswith("{") | raw.rlike("[^ \t]"))
    ok = F.coalesce(F.json_object_keys(raw).isNotNull()
                    & raw.rlike(r"\}[ \t\n\r]*$"), F.lit(False))
    lines = lines.withColumn("ok", ok)
    text_cols = [c for c in source.columns if source.type_of(c) != "json"]
    json_cols = [c for c in source.columns if source.type_of(c) == "json"]
    needs_variant = json_cols or any(c in text_cols for c in id_columns)
    if needs_variant:
        lines = lines.withColumn("_v", F.when(F.col("ok"), F.expr("try_parse_json(raw_record)")))

    def kind(col: str) -> Any:
        path = _quoted(_json_path(source.columns[col]))
        return F.expr(f"schema_of_variant(variant_get(_v, {path}))")

    fields = []
    for c in text_cols:
        fields.append(F.when(F.col("ok"), F.get_json_object(raw, _json_path(source.columns[c])))
                      .alias("s_" + c))
    for c in json_cols:
        # DuckDB's json_extract: the value as JSON text (a string quoted, null as 'null')
        scalar = kind(c).isin("STRING", "VOID", "BOOLEAN")
        as_json = F.expr(f"to_json(variant_get(_v, {_quoted(_json_path(source.columns[c]))}))")
        fields.append(F.when(F.col("ok") & scalar, as_json)
                      .when(F.col("ok"), F.get_json_object(raw, _json_path(source.columns[c])))
                      .alias("s_" + c))
    undecodable = f"undecodable bytes: the file is not {source.encoding}"
    malformed = (F.when(F.col("undecodable"), F.lit(undecodable))
                 .when(~F.col("ok"), F.lit("malformed JSON line")))
    for col, what in id_columns.items():
        if col not in text_cols:
            continue
        t = kind(col)
        bad = F.col("ok") & ~(t.isin("STRING", "BIGINT", "INT", "SMALLINT", "TINYINT",
                                     "DOUBLE", "FLOAT", "VOID") | t.startswith("DECIMAL"))
        value = F.get_json_object(raw, _json_path(source.columns[col]))
        malformed = malformed.when(bad, F.concat(F.lit(f"{what} is not text or a number in "
                                                       f"{col}: "), F.substring(value, 1, 60)))
    out = lines.select("source_file", "file_date", "source_line", "raw_record",
                       malformed.alias("malformed"), *fields)
    engine.register_dataframe("_stage", out)


def _quoted(text: str) -> str:
    """`text` as a Spark SQL string literal (backslashes and quotes escaped: Spark reads
    escapes inside literals)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def stage_plain_csv(engine: Any, source: Source,
                    files: list[tuple[Path, str, dict[int, list[str]]]],
                    layout: list[tuple], name: str = "_stage_csv_plain") -> None:
    """`name`: the records of plain CSV files, one row per line after the header, split at
    the delimiter (a line holding a quote as the csv module split it: `files`' dicts);
    `layout` one (file, file_date, width, header problem, 1-based field position per column,
    0 for none) per file, as `transforms.ingest._stage_plain_csv` builds it."""
    F = _functions()
    spark = engine.spark
    cols = list(source.columns)
    quoted = [(str(p), n, row) for p, _, fields_of in files for n, row in fields_of.items()]
    q = spark.createDataFrame(quoted, "source_file string, source_line bigint, f array<string>")
    lay = spark.createDataFrame(
        [list(r) for r in layout], "source_file string, file_date date, width bigint, "
        "header_problem string, positions array<bigint>")
    texts = _whole_texts(engine, [p for p, _, _ in files])
    texts = texts.select("source_file", F.when(F.col("content").startswith("\ufeff"),
                                               F.expr("substr(content, 2)"))
                         .otherwise(F.col("content")).alias("content"))
    delim = source.delimiter
    raw = F.col("n.raw_record")
    records = (_numbered(texts).alias("n")
               .join(F.broadcast(lay).alias("l"), "source_file")
               .join(F.broadcast(q).alias("q"),
                     (F.col("q.source_file") == F.col("n.source_file"))
                     & (F.col("q.source_line") == F.col("n.source_line")), "left")
               .where((F.col("n.source_line") > 1)
                      & ((F.instr(raw, delim) > 0) | raw.rlike("[^ \t]")))
               # (no alias of a column under its own name: Spark's union of this and the
               # Arrow rows loses track of a renamed attribute in its constraints)
               .select(F.col("n.source_file"), "l.file_date", F.col("n.source_line"),
                       raw, "l.positions",
                       F.coalesce(F.col("q.f"), F.split(raw, re.escape(delim), -1)).alias("f"),
                       "l.width", "l.header_problem"))
    undecodable = f"undecodable bytes: the file is not {source.encoding}"
    f = F.col("f")
    malformed = (F.when(F.col("header_problem").isNotNull(), F.col("header_problem"))
                 .when(F.instr("raw_record", "\ufffd") > 0, F.lit(undecodable))
                 .when(F.size(f) != F.col("width"),
                       F.concat(F.lit("malformed CSV row: expected "),
                                F.col("width").cast("string"), F.lit(" fields, got "),
                                F.size(f).cast("string"))))
    checked = records.withColumn("malformed", malformed)
    fields = []
    for i, c in enumerate(cols):
        pos = F.element_at("positions", i + 1)
        fields.append(F.when(F.col("malformed").isNull() & (pos > 0),
                             F.expr(f"try_element_at(f, cast(positions[{i}] as int))"))
                      .alias("s_" + c))
    out = checked.select("source_file", "file_date", "source_line", "raw_record", "malformed",
                         *fields)
    engine.register_dataframe(name, out)
