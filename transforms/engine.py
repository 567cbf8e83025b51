"""The execution seam: transforms run their SQL through an engine, not a bare DuckDB connection.

`DuckDBEngine` wraps one DuckDB connection and behaves exactly like it: every attribute it does
not define itself (`fetchone`, `fetchall`, `df`, `to_arrow_table`, `register`, `close`, ...) is the
connection's, so every transform written against a connection keeps working unchanged. On top it
offers the engine-neutral operations a second engine (Spark, transforms/spark_engine.py) also
implements: `query`, `create_table_as`, `replace_partition`, `tables`, `columns`,
`register_arrow`.

SQL capture: with `JOURNEYS_SQL_LOG=<file>` set when the engine is built, every statement it
executes is appended to that file as one JSON line `{"sql", "params", "caller"}` (parameters
encoded by `encode_params`, `caller` the first `module:function` outside this module). The
Spark transpile check (tests/engine/test_spark_transpile.py) reads a sample run's log.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import os
import re
import sys
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from transforms.sqlutil import ident

SQL_LOG_ENV = "JOURNEYS_SQL_LOG"
_TRANSACTION = re.compile(r"\s*(begin|start|commit|end|rollback|abort)\b", re.IGNORECASE)

Params = Sequence[object] | Mapping[str, object] | None


# --- parameter encoding for the capture log (JSON keeps the types needed to replay) -------------

def _encode(value: object) -> object:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else {"$float": repr(value)}
    if isinstance(value, dt.datetime):
        return {"$timestamp": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"$interval_us": value // dt.timedelta(microseconds=1)}
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {"$map": [[_encode(k), _encode(v)] for k, v in value.items()]}
    return {"$repr": repr(value)}


def _decode(value: object) -> object:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    ((tag, raw),) = value.items()
    match tag:
        case "$float":
            return float(raw)
        case "$timestamp":
            return dt.datetime.fromisoformat(raw)
        case "$date":
            return dt.date.fromisoformat(raw)
        case "$interval_us":
            return dt.timedelta(microseconds=raw)
        case "$decimal":
            return decimal.Decimal(raw)
        case "$uuid":
            return uuid.UUID(raw)
        case "$map":
            return {_decode(k): _decode(v) for k, v in raw}
        case "$repr":
            raise ValueError(f"parameter {raw} was captured as text only and cannot be replayed")
    raise ValueError(f"unknown captured parameter tag {tag!r}")


def encode_params(params: Params) -> object:
    """`params` as JSON-safe data that `decode_params` turns back into the same values."""
    if params is None:
        return None
    if isinstance(params, Mapping):
        return {"$named": {str(k): _encode(v) for k, v in params.items()}}
    return [_encode(v) for v in params]


def decode_params(encoded: object) -> Params:
    if encoded is None:
        return None
    if isinstance(encoded, dict):
        return {k: _decode(v) for k, v in encoded["$named"].items()}
    return [_decode(v) for v in encoded]  # type: ignore[union-attr]


def _caller() -> str:
    """`module:function` of the first frame outside this module (and contextlib's wrappers)."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__") in (__name__, "contextlib"):
        frame = frame.f_back
    if frame is None:
        return "?"
    return f"{frame.f_globals.get('__name__', '?')}:{frame.f_code.co_name}"


class SqlLog:
    """Appends one JSON line per statement to a file (one `write` per line: several processes
    may append to the same log)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, sql: str, params: Params, caller: str) -> None:
        line = json.dumps({"sql": sql, "params": encode_params(params), "caller": caller},
                          ensure_ascii=False) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)


def sql_log_from_env() -> SqlLog | None:
    path = os.environ.get(SQL_LOG_ENV)
    return SqlLog(path) if path else None


def read_sql_log(path: str | Path) -> list[dict[str, Any]]:
    """The captured statements of a log, in execution order."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# --- the DuckDB engine ---------------------------------------------------------------------------

class DuckDBEngine:
    """One DuckDB connection behind the engine interface; anything else is the connection's."""

    name = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection, sql_log: SqlLog | None = None) -> None:
        self._con = con
        self._sql_log = sql_log
        self._in_transaction = False

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The wrapped connection (for APIs that insist on a real `DuckDBPyConnection`)."""
        return self._con

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._con, attr)

    def __enter__(self) -> DuckDBEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self._con.close()

    def __repr__(self) -> str:
        return f"DuckDBEngine({self._con!r})"

    def _record(self, sql: str, params: Params) -> None:
        if self._sql_log is not None:
            self._sql_log.record(sql, params, _caller())

    # the connection's statement methods, captured
    def execute(self, query: str, parameters: Params = None) -> DuckDBEngine:
        self._record(query, parameters)
        if parameters is None:
            self._con.execute(query)
        else:
            self._con.execute(query, parameters)
        if len(query) < 40:
            self._track(query)
        return self

    def executemany(self, query: str, parameters: Iterable[Params]) -> DuckDBEngine:
        rows = list(parameters)
        if self._sql_log is not None:
            caller = _caller()
            for row in rows:
                self._sql_log.record(query, row, caller)
        self._con.executemany(query, rows)
        return self

    def sql(self, query: str, *, alias: str = "", params: Params = None
            ) -> duckdb.DuckDBPyRelation | None:
        self._record(query, params)
        return self._con.sql(query, alias=alias, params=params)

    # the engine interface
    def query(self, sql: str, params: Params = None) -> pa.Table:
        """The rows of one query, as an Arrow table."""
        self._record(sql, params)
        # through execute(), like every other statement (a relation from sql() would refuse to
        # run while the caller holds an unfinished execute() result); the copy DuckDB warns
        # about is of the result only
        cur = self._con.execute(sql, params) if params is not None else self._con.execute(sql)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
            return cur.to_arrow_table()

    def create_table_as(self, name: str, select_sql: str, params: Params = None, *,
                        replace: bool = True) -> None:
        """(Re)create table `name` from a query."""
        verb = "create or replace table" if replace else "create table"
        self.execute(f"{verb} {ident(name)} as {select_sql}", params)

    def replace_partition(self, table: str, where: str, params: Params, select: str,
                          select_params: Params = None) -> None:
        """Delete the rows of `table` matching `where` and insert the rows of `select` instead,
        in one transaction (or inside the caller's, when one is open)."""
        with self.transaction():
            self.execute(f"delete from {ident(table)} where {where}", params)
            self.execute(f"insert into {ident(table)} {select}", select_params)

    def _begin(self) -> bool:
        if self._in_transaction:  # the caller's transaction: join it
            return False
        self.execute("begin transaction")
        return True

    def _track(self, sql: str) -> None:
        """Follow BEGIN/COMMIT/ROLLBACK run through the engine (DuckDB cannot be asked whether a
        transaction is open without aborting it)."""
        m = _TRANSACTION.match(sql)
        if m:
            self._in_transaction = m.group(1).lower() in ("begin", "start")

    def begin(self) -> DuckDBEngine:
        self._con.begin()
        self._in_transaction = True
        return self

    def commit(self) -> DuckDBEngine:
        self._con.commit()
        self._in_transaction = False
        return self

    def rollback(self) -> DuckDBEngine:
        self._con.rollback()
        self._in_transaction = False
        return self

    @contextlib.contextmanager
    def transaction(self) -> Iterator[DuckDBEngine]:
        """One transaction around the block (committed, or rolled back on an error); inside the
        caller's open transaction the block joins it."""
        own = self._begin()
        try:
            yield self
        except BaseException:
            if own:
                self.execute("rollback")
            raise
        if own:
            self.execute("commit")

    def tables(self) -> list[str]:
        """The tables and views of the current schema (temporary ones included), sorted."""
        rows = self._con.execute(
            "select table_name from duckdb_tables() "
            "where schema_name = current_schema() or temporary "
            "union select view_name from duckdb_views() "
            "where not internal and (schema_name = current_schema() or temporary) "
            "order by 1").fetchall()
        return [r[0] for r in rows]

    def columns(self, table: str) -> list[tuple[str, str]]:
        """(name, DuckDB type) of each column of `table`, in order."""
        rows = self._con.execute(f"describe {ident(table)}").fetchall()
        return [(r[0], r[1]) for r in rows]

    def register_arrow(self, name: str, table: pa.Table) -> None:
        """Make an Arrow table queryable as view `name` (until unregistered or closed)."""
        self._con.register(name, table)
