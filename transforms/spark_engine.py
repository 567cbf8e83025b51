"""The Spark engine: the engine interface of transforms/engine.py on a SparkSession.

Each DuckDB statement is transpiled once (transforms/spark_sql.py, cached per text) and run with
`spark.sql(text, args=params)`. Spark has no local tables a temp view cannot be, so locally the
catalog is temp views, each materialised (`localCheckpoint`) when written so a chain of
statements does not grow one ever longer plan:

- a query: `query()` / `execute()` then `fetchall()`, `fetchone()`, `to_arrow_table()`;
- CREATE [OR REPLACE] [TEMP] TABLE t AS SELECT, CREATE VIEW: the select's rows become view t;
- CREATE TABLE t (columns): an empty view of that schema;
- INSERT INTO t SELECT: t's rows and the select's (by position, t's column names);
- DELETE FROM t WHERE c: the rows where c is not true;
- DROP TABLE/VIEW t: the view goes.

Anything else, and any DuckDB-only function left after transpiling, raises NotPortable. Results
come back as Arrow (`toArrow`): PySpark warns it does not fully support pandas 3.

Needs `pyspark` (the `spark` extra) and Java 17; `local_session` starts a local session sized for
the sample (tests/engine/test_spark_engine.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Iterator, Mapping, Sequence
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
    """A local SparkSession (starting the JVM the first time, about 20 s)."""
    from pyspark.sql import SparkSession

    return (SparkSession.builder.master(f"local[{LOCAL_CORES}]").appName(app_name)
            .config("spark.driver.memory", LOCAL_DRIVER_MEMORY)
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", str(LOCAL_SHUFFLE_PARTITIONS))
            .config("spark.default.parallelism", str(LOCAL_CORES))
            .config("spark.ui.enabled", "false")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            # DuckDB's TIMESTAMP has no time zone: so has Spark's, then
            .config("spark.sql.timestampType", "TIMESTAMP_NTZ")
            .getOrCreate())


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


class SparkEngine:
    """The engine interface on a SparkSession (temp views as the catalog)."""

    name = "spark"

    def __init__(self, spark: Any, *, column_types: Mapping[str, str] | None = None) -> None:
        self.spark = spark
        self._given = {k.lower(): v for k, v in (column_types or {}).items()}
        self._table_types: dict[str, dict[str, str]] = {}
        self._types: tuple[tuple[str, str], ...] | None = None
        self._result: Any = None
        self._retype()

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
                if not self.spark.catalog.dropTempView(name) and not tree.args.get("exists"):
                    raise NotPortable("DROP", detail=f"no table {name}")
                self._table_types.pop(name, None)
            self._retype()
        elif isinstance(tree, exp.Query):
            self._result = self._run(tree, params)
        else:
            raise NotPortable(type(tree).__name__.upper(), detail="no Spark mapping yet")
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

    # --- the catalog --------------------------------------------------------------------------
    def _save(self, name: str, df: Any) -> None:
        df.localCheckpoint(eager=True).createOrReplaceTempView(name)
        self._table_types[name] = {f.name.lower(): _duckdb_type(f.dataType.simpleString())
                                   for f in df.schema}
        self._retype()

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
        if tree.expression is not None:
            df = self._run(tree.expression, params)
            if kind == "VIEW":
                df.createOrReplaceTempView(name)
            else:
                self._save(name, df)
            return
        if schema is None:
            raise NotPortable("CREATE TABLE", detail="neither columns nor a query")
        cols = ", ".join(f"CAST(NULL AS {c.args['kind'].sql(dialect=Spark)}) AS "
                         f"{c.this.sql(dialect=Spark)}" for c in schema.expressions
                         if isinstance(c, exp.ColumnDef))
        self._save(name, self.spark.sql(f"SELECT {cols}").limit(0))

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

    def tables(self) -> list[str]:
        return sorted(t.name for t in self.spark.catalog.listTables())

    def columns(self, table: str) -> list[tuple[str, str]]:
        return [(f.name, f.dataType.simpleString()) for f in self.spark.table(table).schema]

    def register_arrow(self, name: str, table: pa.Table) -> None:
        self._save(name, self.spark.createDataFrame(table))

    def register_dataframe(self, name: str, df: Any) -> None:
        """A Spark DataFrame (e.g. from Spark's file readers) as table `name`, materialised."""
        self._save(name, df)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[SparkEngine]:
        """Spark SQL has no multi-statement transactions: each write replaces one table whole
        (temp view or Parquet version), so the block's statements simply run in order."""
        yield self

    def close(self) -> None:
        for name in self.tables():
            self.spark.catalog.dropTempView(name)
        self._table_types.clear()
        self._retype()
