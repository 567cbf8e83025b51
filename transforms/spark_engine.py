"""The Spark engine: the engine interface of transforms/engine.py on a SparkSession.

Each DuckDB statement is transpiled once (transforms/spark_sql.py, cached per text) and run with
`spark.sql(text, args=params)`. Every table written is materialised (`localCheckpoint`) so a
chain of statements does not grow one ever longer plan. The catalog (see `SparkEngine`): temp
views, plus the stored tables, Parquet folders under the warehouse folder or managed tables of a
database:

- a query: `query()` / `execute()` then `fetchall()`, `fetchone()`, `to_arrow_table()`;
- CREATE [OR REPLACE] [TEMP] TABLE t AS SELECT: the select's rows become table t (stored unless
  TEMP); CREATE VIEW: a view by its SQL text, resolved when read;
- CREATE TABLE t (columns): an empty table of that schema;
- INSERT INTO t SELECT: t's rows and the select's (by position, t's column names);
- DELETE FROM t WHERE c: the rows where c is not true;
- DROP TABLE/VIEW t: the table or view goes, with its stored copy.

Anything else, and any DuckDB-only function left after transpiling, raises NotPortable. Results
come back as Arrow (`toArrow`): PySpark warns it does not fully support pandas 3.

Needs `pyspark` (the `spark` extra) and Java 17 (or a Spark Connect server); `session` builds the
session of the config's `spark:` block (transforms/warehouse.open_engine), `local_session` a
small local one for the tests.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import re
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlglot import exp
from sqlglot.dialects.spark import Spark

from transforms.spark_sql import NotPortable, _value_type, spark_args, to_spark_tree

Params = Sequence[object] | Mapping[str, object] | None

# a local session for the sample and the tests: small, UTC, few shuffle partitions
LOCAL_DRIVER_MEMORY = "1g"
LOCAL_SHUFFLE_PARTITIONS = 2
LOCAL_CORES = 2


def local_session(app_name: str = "observed-journeys") -> Any:
    """A local SparkSession for the sample and the tests (starting the JVM the first time,
    about 20 s)."""
    return session(master=f"local[{LOCAL_CORES}]", app_name=app_name, conf={
        "spark.driver.memory": LOCAL_DRIVER_MEMORY,
        "spark.sql.shuffle.partitions": str(LOCAL_SHUFFLE_PARTITIONS),
        "spark.default.parallelism": str(LOCAL_CORES),
        "spark.ui.enabled": "false"})


# a terminal `journeys run` reports its own progress: no progress bars from Spark (a user's
# `conf` may turn them back on), and Spark's log below FATAL off: its per-statement WARN lines
# (e.g. a window without PARTITION BY over a small table) are noise, and its ERROR lines are
# Java stack traces of failures Python gets as exceptions anyway (a file Spark cannot read is a
# rejected file with a one-line reason; any other failure stops the run with its message)
QUIET_CONF = {"spark.ui.showConsoleProgress": "false"}
LOG_LEVEL = "FATAL"
# the same level from the JVM's start (its start-up lines: the default log4j profile, the host
# name's address), for a local JVM this process starts and a user's conf not setting its own
# driver Java options
_LOG4J2 = f"""\
rootLogger.level = {LOG_LEVEL.lower()}
# (PySpark is a "shell" to Spark: without a logger of its own configured for the shell's
# class, under org, Spark sets the root to WARN at start and says so)
logger.org.name = org
logger.org.level = {LOG_LEVEL.lower()}
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{{yy/MM/dd HH:mm:ss}} %p %c{{1}}: %m%n%ex
"""


@functools.cache
def _log4j2_file() -> str:
    folder = Path(tempfile.mkdtemp(prefix="journeys-spark-log-"))
    path = folder / "log4j2.properties"
    path.write_text(_LOG4J2)
    return path.as_uri()

# settings the SQL's meaning depends on: every session gets them, a user's conf may not change
# them (transforms/sources.py refuses it)
REQUIRED_CONF = {
    "spark.sql.session.timeZone": "UTC",
    # DuckDB's TIMESTAMP has no time zone: so has Spark's, then
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def session(*, master: str | None = None, remote: str | None = None,
            conf: Mapping[str, str] | None = None, app_name: str = "observed-journeys") -> Any:
    """The SparkSession of the `spark:` settings: a Spark Connect server (`remote`, sc://...),
    or a master (local[N], spark://..., yarn, k8s://...; default local[*]), with `conf` and the
    settings the SQL needs (REQUIRED_CONF). One per process (getOrCreate)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    builder = builder.remote(remote) if remote else builder.master(master or "local[*]")
    quiet = dict(QUIET_CONF)
    if not remote and "spark.driver.extraJavaOptions" not in (conf or {}):
        quiet["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={_log4j2_file()}"
    for key, value in {**quiet, **(conf or {}), **REQUIRED_CONF}.items():
        builder = builder.config(key, value)
    with warnings.catch_warnings():
        # PySpark's notice that it does not fully support pandas 3: the project hands data
        # over as Arrow, never as pandas (docs/SPARK.md)
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                                category=FutureWarning)
        spark = builder.getOrCreate()
    if not remote:  # the run's own progress lines, not Spark's warnings, in the terminal
        spark.sparkContext.setLogLevel(LOG_LEVEL)
    # PySpark logs each SQL or DataFrame error with its Java stack trace as JSON before
    # raising it: the error is raised (and reported in one line) all the same
    # (PySpark's own logger class: it logs with keyword arguments a plain Logger refuses)
    from pyspark.logger import PySparkLogger

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)
    for key, value in REQUIRED_CONF.items():  # a session that already ran keeps its own
        spark.conf.set(key, value)
    return spark


# all the dialect needs to know of a parameter is its type (the `date - date` rule): the cache
# of transpiled texts is keyed by the types, one value of each stands for them
_TYPE_SAMPLES: dict[str, object] = {
    "int": 0, "date": dt.date(2000, 1, 1), "timestamp": dt.datetime(2000, 1, 1),
    "interval": dt.timedelta(0), "other": None,
}


def _kind(value: object) -> str:
    """The `_TYPE_SAMPLES` key of a parameter value (the transpiler's own type of it)."""
    kind = _value_type(value)
    return kind if kind in _TYPE_SAMPLES else "other"


@functools.lru_cache(maxsize=4096)
def _transpiled(sql: str, caller: str | None, types: tuple[tuple[str, str], ...] | None,
                param_kinds: tuple[tuple[str, str], ...]) -> exp.Expression:
    params = {name: _TYPE_SAMPLES[kind] for name, kind in param_kinds}
    return to_spark_tree(sql, caller=caller, column_types=dict(types) if types else None,
                         params=params)


def _param_kinds(params: Params) -> tuple[tuple[str, str], ...]:
    return tuple((name, _kind(value)) for name, value in spark_args(params).items())


def _duckdb_type(spark_type: str) -> str:
    """A Spark column type in the DuckDB spelling the dialect's type rules read."""
    t = spark_type.lower()
    if t.startswith("array<"):
        return _duckdb_type(t[len("array<"):-1]) + "[]"
    if t.startswith("interval"):
        return "INTERVAL"
    return {"date": "DATE", "timestamp": "TIMESTAMP WITH TIME ZONE",
            "timestamp_ntz": "TIMESTAMP", "tinyint": "TINYINT", "smallint": "SMALLINT",
            "int": "INTEGER", "bigint": "BIGINT"}.get(t, t.upper())


def _table_name(table: exp.Table) -> str:
    return table.name


_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _quoted(name: str) -> str:
    """A Spark identifier in backquotes (a backquote inside doubled)."""
    return "`" + name.replace("`", "``") + "`"


class SparkEngine:
    """The engine interface on a SparkSession.

    The catalog: with neither `location` nor `database`, temp views only (the tests' scratch
    engine). With `location` (a folder the driver can write: the local warehouse), each table
    that is not TEMP is also a Parquet folder `<location>/<table>`, written whole on every change
    (into a new folder, swapped in), and a new engine on the same folder finds the tables again.
    With `database` (a cluster's metastore or Unity Catalog schema), each such table is a managed
    table `<database>.<table>` (`saveAsTable`, overwritten on every change). TEMP tables, views
    and registered Arrow tables are temp views in both cases."""

    name = "spark"

    def __init__(self, spark: Any, *, column_types: Mapping[str, str] | None = None,
                 location: str | Path | None = None, database: str | None = None) -> None:
        if location is not None and database is not None:
            raise ValueError("a Spark catalog is a Parquet folder or a database, not both")
        self.spark = spark
        self.location = Path(location) if location is not None else None
        self.database = database
        self._given = {k.lower(): v for k, v in (column_types or {}).items()}
        self._table_types: dict[str, dict[str, str]] = {}
        self._types: tuple[tuple[str, str], ...] | None = None
        self._result: Any = None
        self._stored: set[str] = set()  # tables kept in the folder or database
        self._open_catalog()
        self._retype()

    def _open_catalog(self) -> None:
        """The stored tables of the folder or database, each readable under its own name."""
        if self.location is not None:
            self.location.mkdir(parents=True, exist_ok=True)
            for folder in sorted(self.location.iterdir()):
                if folder.is_dir() and not folder.name.startswith((".", "_tmp_")) and \
                        _TABLE_NAME.match(folder.name):
                    self._view_of_folder(folder.name)
            views = self.location / ".views"
            for path in sorted(views.glob("*.sql")) if views.is_dir() else []:
                self.spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW {_quoted(path.stem)} AS "
                               f"{path.read_text(encoding='utf-8')}")
                self._stored.add(path.stem)
        elif self.database is not None:
            self.spark.sql(f"CREATE DATABASE IF NOT EXISTS {_quoted(self.database)}")
            self.spark.catalog.setCurrentDatabase(self.database)
            for t in self.spark.catalog.listTables(self.database):
                if not t.isTemporary:
                    self._stored.add(t.name)
                    self._note_types(t.name, self.spark.table(self._stored_name(t.name)))

    def _view_of_folder(self, name: str) -> None:
        df = self.spark.read.parquet(str(self.location / name))
        df.createOrReplaceTempView(name)
        self._stored.add(name)
        self._note_types(name, df)

    def _stored_name(self, name: str) -> str:
        return f"{_quoted(self.database)}.{_quoted(name)}"

    def _retype(self) -> None:
        """The column types the dialect is told: those of every view this engine wrote (a name
        with two types in two tables is left out), then the ones given."""
        seen: dict[str, set[str]] = {}
        for cols in self._table_types.values():
            for name, typ in cols.items():
                seen.setdefault(name, set()).add(typ)
        merged = {n: next(iter(ts)) for n, ts in seen.items() if len(ts) == 1}
        merged.update(self._given)
        self._types = tuple(sorted(merged.items())) or None

    # --- statements ---------------------------------------------------------------------------
    def transpile(self, sql: str, params: Params = None, caller: str | None = None
                  ) -> exp.Expression:
        return _transpiled(sql, caller, self._types, _param_kinds(params)).copy()

    def dataframe(self, sql: str, params: Params = None) -> Any:
        """A query's DataFrame (lazy)."""
        tree = self.transpile(sql, params)
        return self._run(tree, params)

    def _run(self, tree: exp.Expression, params: Params, text: str | None = None) -> Any:
        """`tree` (or `text`, SQL written from it) on Spark with the parameters it uses."""
        args = spark_args(params)
        used = {p.name for p in tree.find_all(exp.Placeholder)}
        return self.spark.sql(tree.sql(dialect=Spark) if text is None else text,
                              args={k: v for k, v in args.items() if k in used})

    def query(self, sql: str, params: Params = None) -> pa.Table:
        """The rows of one query, as an Arrow table."""
        return self.dataframe(sql, params).toArrow()

    def execute(self, sql: str, params: Params = None) -> SparkEngine:
        tree = self.transpile(sql, params)
        self._result = None
        if isinstance(tree, exp.Create):
            self._create(tree, params)
        elif isinstance(tree, exp.Insert):
            self._insert(tree, params)
        elif isinstance(tree, exp.Delete):
            self._delete(tree, params)
        elif isinstance(tree, exp.Drop):
            for table in tree.args.get("tables") or [tree.this]:
                name = _table_name(table)
                if not self._drop(name) and not tree.args.get("exists"):
                    raise NotPortable("DROP", detail=f"no table {name}")
            self._retype()
        elif isinstance(tree, exp.Query):
            self._result = self._run(tree, params)
        else:
            raise NotPortable(type(tree).__name__.upper(), detail="no Spark mapping yet")
        return self

    def executemany(self, sql: str, rows: Sequence[Params]) -> SparkEngine:
        """`sql` once per parameter row, in order (an INSERT per row: for the few rows of the
        settings tables; bulk rows go through `register_arrow`)."""
        for row in rows:
            self.execute(sql, row)
        return self

    def fetchall(self) -> list[tuple]:
        return [tuple(r) for r in self._result.collect()] if self._result is not None else []

    def fetchone(self) -> tuple | None:
        if self._result is None:
            return None
        rows = self._result.limit(1).collect()
        return tuple(rows[0]) if rows else None

    def to_arrow_table(self) -> pa.Table:
        return self._result.toArrow()

    def df(self) -> Any:
        """The last query's rows as a pandas DataFrame, typed as DuckDB's `.df()` types them
        (DECIMAL as float64, not Python Decimal objects)."""
        table = self._result.toArrow()
        cols = [c.cast(pa.float64()) if pa.types.is_decimal(c.type) else c
                for c in table.columns]
        return pa.table(cols, names=table.column_names).to_pandas()

    # --- the catalog --------------------------------------------------------------------------
    def _note_types(self, name: str, df: Any) -> None:
        self._table_types[name] = {f.name.lower(): _duckdb_type(f.dataType.simpleString())
                                   for f in df.schema}

    def _save(self, name: str, df: Any, *, temp: bool = False) -> None:
        """`df`'s rows (computed now) as table `name`: stored when the catalog keeps tables and
        `name` is not temporary (a TEMP table, or a name first made TEMP), else a temp view."""
        df = df.localCheckpoint(eager=True)
        # fresh attribute ids: two checkpoints of one lineage (e.g. two temp tables both from
        # `journeys`) otherwise share them, and Spark's analyser then mis-resolves `t.*` of a
        # join of the two (MISSING_ATTRIBUTES.RESOLVED_ATTRIBUTE_APPEAR_IN_OPERATION)
        df = df.select(*[df[c].alias(c) for c in df.columns])
        keep = not temp and (self.location is not None or self.database is not None) and \
            (name in self._stored or name not in self._temp_names())
        if keep and self.location is not None:
            final = self.location / name
            staged = self.location / f"_tmp_{name}_{uuid.uuid4().hex}"
            df.write.parquet(str(staged))
            if final.exists():
                old = self.location / f"_tmp_old_{name}_{uuid.uuid4().hex}"
                final.rename(old)
                staged.rename(final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                staged.rename(final)
            self._view_of_folder(name)
        elif keep:
            df.write.mode("overwrite").saveAsTable(self._stored_name(name))
            self.spark.catalog.dropTempView(name)
            self._stored.add(name)
            self._note_types(name, df)
        else:
            df.createOrReplaceTempView(name)
            self._note_types(name, df)
        self._retype()

    def _temp_names(self) -> set[str]:
        return {t.name for t in self.spark.catalog.listTables() if t.isTemporary}

    def _create(self, tree: exp.Create, params: Params) -> None:
        kind = (tree.args.get("kind") or "").upper()
        target = tree.this
        if kind not in ("TABLE", "VIEW"):
            raise NotPortable(f"CREATE {kind}")
        schema = target if isinstance(target, exp.Schema) else None
        name = _table_name(schema.this if schema else target)
        exists = name in self.tables()
        if exists and not tree.args.get("replace"):
            if tree.args.get("exists"):
                return
            raise NotPortable("CREATE TABLE", detail=f"table {name} exists")
        temp = tree.find(exp.TemporaryProperty) is not None
        if kind == "VIEW" and tree.expression is not None:
            self._create_view(name, tree.expression, params, temp=temp)
            return
        if tree.expression is not None:
            df = self._run(tree.expression, params)
            self._save(name, df, temp=temp)
            return
        if schema is None:
            raise NotPortable("CREATE TABLE", detail="neither columns nor a query")
        cols = ", ".join(f"CAST(NULL AS {c.args['kind'].sql(dialect=Spark)}) AS "
                         f"{c.this.sql(dialect=Spark)}" for c in schema.expressions
                         if isinstance(c, exp.ColumnDef))
        self._save(name, self.spark.sql(f"SELECT {cols}").limit(0), temp=temp)

    def _insert(self, tree: exp.Insert, params: Params) -> None:
        target = tree.this
        if isinstance(target, exp.Schema):
            raise NotPortable("INSERT INTO t (columns)", detail="give every column in order")
        name = _table_name(target)
        old = self.spark.table(name)
        new = self._run(tree.expression, params)
        if len(new.columns) != len(old.columns):
            raise NotPortable("INSERT", detail=f"{len(new.columns)} columns into "
                              f"{len(old.columns)} of {name}")
        new = new.toDF(*old.columns)
        self._save(name, old.unionByName(new.select(*[
            new[c].cast(old.schema[c].dataType) for c in old.columns])))

    def _delete(self, tree: exp.Delete, params: Params) -> None:
        name = _table_name(tree.this)
        where = tree.args.get("where")
        if where is None:
            self._save(name, self.spark.table(name).limit(0))
            return
        text = (f"SELECT * FROM {exp.to_identifier(name).sql(dialect=Spark)} "
                f"WHERE NOT COALESCE({where.this.sql(dialect=Spark)}, FALSE)")
        self._save(name, self._run(where, params, text))

    def create_table_as(self, name: str, select_sql: str, params: Params = None, *,
                        replace: bool = True) -> None:
        if not replace and name in self.tables():
            raise NotPortable("CREATE TABLE", detail=f"table {name} exists")
        self._save(name, self.dataframe(select_sql, params))

    def replace_partition(self, table: str, where: str, params: Params, select: str,
                          select_params: Params = None) -> None:
        """The rows of `table` not matching `where`, and the rows of `select`: one new version
        of the table (an overwrite, which is what the DuckDB engine's transaction amounts to)."""
        old = self.spark.table(table)
        keep = self.dataframe(f"select * from {exp.to_identifier(table).sql(dialect=Spark)} "
                              f"where not coalesce({where}, false)", params)
        new = self.dataframe(select, select_params).toDF(*old.columns)
        self._save(table, keep.unionByName(new))

    def _create_view(self, name: str, query: exp.Expression, params: Params, *,
                     temp: bool) -> None:
        """A view resolved by name when read (as DuckDB's): created from its SQL text, so a
        table it reads may be replaced later; a view that is not TEMP is kept with the tables
        (its text in `<location>/.views`; a database's own view)."""
        if any(True for _ in query.find_all(exp.Placeholder)):  # Spark: no parameters in views
            self._run(query, params).createOrReplaceTempView(name)
            return
        text = query.sql(dialect=Spark)
        if not temp and self.database is not None:
            self.spark.sql(f"CREATE OR REPLACE VIEW {self._stored_name(name)} AS {text}")
            self._stored.add(name)
            return
        self.spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW {_quoted(name)} AS {text}")
        if not temp and self.location is not None:
            views = self.location / ".views"
            views.mkdir(exist_ok=True)
            (views / f"{name}.sql").write_text(text, encoding="utf-8")
            self._stored.add(name)

    def _drop(self, name: str) -> bool:
        """Drop table or view `name` (and its stored copy); False when there was none."""
        found = self.spark.catalog.dropTempView(name)
        if name in self._stored:
            self._stored.discard(name)
            found = True
            if self.location is not None:
                shutil.rmtree(self.location / name, ignore_errors=True)
                (self.location / ".views" / f"{name}.sql").unlink(missing_ok=True)
            elif self.database is not None:
                kind = "VIEW" if self.spark.catalog.getTable(
                    self._stored_name(name)).tableType == "VIEW" else "TABLE"
                self.spark.sql(f"DROP {kind} IF EXISTS {self._stored_name(name)}")
        self._table_types.pop(name, None)
        return found

    def tables(self) -> list[str]:
        """The tables and views: the stored ones and this session's temp views, sorted."""
        return sorted(self._temp_names() | self._stored)

    def columns(self, table: str) -> list[tuple[str, str]]:
        return [(f.name, f.dataType.simpleString()) for f in self.spark.table(table).schema]

    def register_arrow(self, name: str, table: pa.Table) -> None:
        self._save(name, self.spark.createDataFrame(table), temp=True)

    def register_dataframe(self, name: str, df: Any) -> None:
        """A Spark DataFrame (e.g. from Spark's file readers) as temp table `name`, materialised."""
        self._save(name, df, temp=True)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[SparkEngine]:
        """Spark SQL has no multi-statement transactions: each write replaces one table whole
        (temp view or Parquet version), so the block's statements simply run in order."""
        yield self

    def close(self) -> None:
        """Drop this session's temp views (stored tables stay in their folder or database)."""
        for name in self._temp_names():
            self.spark.catalog.dropTempView(name)
        self._stored.clear()
        self._table_types.clear()
        self._retype()
