"""One `journeys run` of the committed sample with SQL capture on, shared by the engine tests,
and the replay of its statements on Spark and DuckDB.

Every statement the run sends to the warehouse is in the capture log (transforms/engine.py,
`JOURNEYS_SQL_LOG`); `statements` are its distinct texts, each with the first caller and
parameters that ran it.

`replay` runs each statement's query (a SELECT, or the SELECT of a CREATE TABLE AS / INSERT) on
both engines over the tables of the finished run and compares the results as sorted multisets
(floats to 1e-6 relative); a statement reading a table the run does not keep (a temporary table
of one step) is left out as "inputs not kept".
"""

from __future__ import annotations

import datetime as dt
import decimal
import importlib.util
import math
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from tests.e2e.conftest import journeys, sample_config
from transforms.engine import SQL_LOG_ENV, decode_params, read_sql_log
from transforms.spark_sql import DuckDBAsWritten, NotPortable, _name_placeholders, spark_args
from transforms.sqlutil import ident

# why the Spark tests skip here, or None when pyspark and Java are both present
SPARK_MISSING = ("pyspark is not installed (pip install -e '.[spark]')"
                 if importlib.util.find_spec("pyspark") is None else
                 "java is not on PATH (Spark needs Java 17)" if shutil.which("java") is None
                 else None)


@dataclass
class Statement:
    sql: str
    caller: str
    params: object
    calls: int = 1
    callers: list[str] = field(default_factory=list)  # every caller that ran this text


@dataclass
class CapturedRun:
    root: Path
    warehouse: Path
    log: list[dict]
    statements: list[Statement] = field(default_factory=list)

    def column_types(self) -> dict[str, str]:
        """column name -> DuckDB type over every warehouse table (names with two types left
        out): what the Spark dialect's `date - date` rule is told."""
        con = duckdb.connect(str(self.warehouse), read_only=True)
        try:
            rows = con.execute("select column_name, data_type from information_schema.columns "
                               "where table_schema = 'main'").fetchall()
        finally:
            con.close()
        seen: dict[str, set[str]] = {}
        for name, typ in rows:
            seen.setdefault(name.lower(), set()).add(typ)
        return {name: next(iter(ts)) for name, ts in seen.items() if len(ts) == 1}


@pytest.fixture(scope="session")
def captured_run(tmp_path_factory: pytest.TempPathFactory) -> CapturedRun:
    root = tmp_path_factory.mktemp("captured_run")
    config = sample_config(root)
    log = root / "sql.jsonl"
    proc = journeys("run", "--config", str(config),
                    env={"DAGSTER_HOME": str(root / "dagster_home"), SQL_LOG_ENV: str(log)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_sql_log(log)
    distinct: dict[str, Statement] = {}
    for row in rows:
        st = distinct.get(row["sql"])
        if st is None:
            st = distinct[row["sql"]] = Statement(row["sql"], row["caller"],
                                                  decode_params(row["params"]), 0)
        st.calls += 1
        if row["caller"] not in st.callers:
            st.callers.append(row["caller"])
    return CapturedRun(root, root / "warehouse" / "journeys.duckdb", rows,
                       list(distinct.values()))


# --- replay on both engines ----------------------------------------------------------------

REL_TOL = 1e-6


def _norm(value: object) -> object:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, list | tuple):
        return tuple(_norm(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _norm(v)) for k, v in value.items())
    return value


def _sort_key(row: tuple) -> tuple:
    def key(v: object) -> tuple:
        if v is None:
            return (0, "")
        if isinstance(v, int | float):
            return (1, float(f"{v:.5g}"))
        if isinstance(v, tuple):
            return (2, tuple(key(x) for x in v))
        return (3, str(v))
    return tuple(key(v) for v in row)


def _close(a: object, b: object) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return a == b or math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def same_rows(left: list[tuple], right: list[tuple]) -> bool:
    if len(left) != len(right):
        return False
    a = sorted((tuple(_norm(v) for v in r) for r in left), key=_sort_key)
    b = sorted((tuple(_norm(v) for v in r) for r in right), key=_sort_key)
    return all(_close(x, y) for x, y in zip(a, b, strict=True))


@dataclass
class Replay:
    identical: list[str] = field(default_factory=list)
    names_differ: list[str] = field(default_factory=list)
    differing: list[tuple[str, str]] = field(default_factory=list)
    spark_errors: list[tuple[str, str]] = field(default_factory=list)
    not_portable: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=lambda: {"duckdb": 0.0, "spark": 0.0})

    def summary(self) -> str:
        return (f"identical {len(self.identical)}, column names differ "
                f"{len(self.names_differ)}, differing {len(self.differing)}, Spark errors "
                f"{len(self.spark_errors)}, not portable {sum(self.not_portable.values())}, "
                f"skipped {dict(self.skipped)}; DuckDB {self.seconds['duckdb']:.1f} s, "
                f"Spark {self.seconds['spark']:.1f} s")


def _rows(table) -> list[tuple]:
    return list(zip(*[c.to_pylist() for c in table.columns], strict=True))


def query_part(sql: str) -> exp.Expression | None:
    """The query a statement runs (named `$p<n>` parameters), or None."""
    text, _ = _name_placeholders(sql)
    try:
        tree = sqlglot.parse_one(text, read=DuckDBAsWritten)
    except sqlglot.errors.SqlglotError:
        return None
    if isinstance(tree, exp.Create | exp.Insert):
        tree = tree.expression
        if isinstance(tree, exp.Query):
            tree.meta["builds_table"] = True
    return tree if isinstance(tree, exp.Query) else None


def input_tables(tree: exp.Expression) -> set[str]:
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    return {t.name for t in tree.find_all(exp.Table)
            if t.name and t.name not in ctes and not t.args.get("db")}


def load_tables(duck, spark_engine, tables: list[str]) -> dict[str, str]:
    """Hand every warehouse table to Spark as Arrow; {table: why not} for those Spark refuses."""
    refused = {}
    for t in tables:
        try:
            spark_engine.register_arrow(t, duck.query(f"select * from {ident(t)}"))
        except Exception as e:  # noqa: BLE001 - a type Spark cannot take is a finding
            refused[t] = str(e).splitlines()[0][:200]
    return refused


def replay(statements, duck, spark_engine, available: set[str],
           column_types: dict[str, str]) -> Replay:
    out = Replay()
    for st in statements:
        tree = query_part(st.sql)
        if tree is None:
            out.skipped["not a query"] += 1
            continue
        if not input_tables(tree) <= available:
            out.skipped["inputs not kept"] += 1
            continue
        used = {p.name for p in tree.find_all(exp.Placeholder)}
        params = {k: v for k, v in spark_args(st.params).items() if k in used}
        duck_sql = tree.sql(dialect=DuckDBAsWritten)
        label = f"{st.caller}: {' '.join(st.sql.split())[:90]}"
        try:
            spark_engine.transpile(duck_sql, params, st.caller)
        except NotPortable as e:
            out.not_portable[e.function] += 1
            continue
        t0 = time.perf_counter()
        try:
            want = duck.query(duck_sql, params or None)
        except Exception:  # noqa: BLE001 - the regenerated text must run on DuckDB too
            out.skipped["DuckDB refuses the regenerated text"] += 1
            continue
        out.seconds["duckdb"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            got = spark_engine.query(duck_sql, params or None)
        except Exception as e:  # noqa: BLE001 - every Spark failure is counted and shown
            out.spark_errors.append((label, str(e).strip().splitlines()[0][:300]))
            continue
        finally:
            out.seconds["spark"] += time.perf_counter() - t0
        rows_w = _rows(want)
        rows_g = _rows(got)
        if not same_rows(rows_w, rows_g):
            out.differing.append((label, f"{len(rows_w)} vs {len(rows_g)} rows"))
        elif want.column_names != got.column_names:
            # a table's columns are named by the statement, so their names must match; an ad-hoc
            # query's unnamed expressions are read by position
            if tree.meta.get("builds_table"):
                out.differing.append((label, f"columns {want.column_names} vs "
                                             f"{got.column_names}"))
            else:
                out.names_differ.append(label)
        else:
            out.identical.append(label)
    return out
