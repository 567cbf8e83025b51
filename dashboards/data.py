"""Reading the warehouse for the dashboard: which tables exist, the run's settings, and
queries as DataFrames.

The dashboard only reads. Every optional table is checked with `has()` first so a warehouse
where, say, mining has not run yet gives a page with a "not available" note instead of a crash.
The run's settings (stages, conversion stage, currency, thresholds) come from `run_settings`
through `settings()`, never from guesses over other tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pandas as pd

from transforms.settings import read_settings
from transforms.sqlutil import ident
from transforms.tables import SKIPPED_TABLE, list_tables, table_columns

# Which command produces a table, for the "not available: run X" notes.
MINING_TABLES = frozenset({
    "variants", "dfg_edges", "dfg_endpoints", "dropoff_points", "conformance_overall",
    "conformance_deviations",
})


def how_to_build(table: str) -> str:
    """The command a user runs to produce `table`."""
    if table in MINING_TABLES:
        return "journeys mine"
    return "journeys run"


class MissingTables(list):
    """Names of missing tables; `reasons` holds why the run skipped some of them."""

    reasons: dict[str, str]

    def __init__(self, tables: object = ()) -> None:
        super().__init__(tables)
        self.reasons = {}


class Warehouse:
    """Read-only view of the tables in one DuckDB connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._tables = list_tables(con)
        self._columns: dict[str, set[str]] = {}
        self._scopes: dict[tuple[str, str | None, bool], tuple[dict, pd.DataFrame]] = {}
        # tables the run left out because the data cannot fill them, with the reason
        self.skipped: dict[str, str] = dict(con.execute(
            f"select table_name, reason from {SKIPPED_TABLE}").fetchall()
        ) if SKIPPED_TABLE in self._tables else {}

    def settings(self) -> dict[str, object]:
        """The run's settings from `run_settings`; empty when the table is not there."""
        if not self.has("run_settings"):
            return {}
        return read_settings(self.con)

    def has(self, *tables: str) -> bool:
        return all(t in self._tables for t in tables)

    def missing(self, *tables: str) -> MissingTables:
        """The tables of `tables` not in the warehouse, with the run's reason for those it
        skipped (`reasons`)."""
        gone = MissingTables(t for t in tables if t not in self._tables)
        gone.reasons = {t: self.skipped[t] for t in gone if t in self.skipped}
        return gone

    def columns(self, table: str) -> set[str]:
        if table not in self._columns:
            self._columns[table] = table_columns(self.con, table)
        return self._columns[table]

    def has_columns(self, table: str, *cols: str) -> bool:
        return self.has(table) and set(cols) <= self.columns(table)

    def df(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, list(params or [])).df()

    def scope_rows(self, table: str, period_days: int, segment: tuple[str, str] | None = None,
                   order_by: str | None = None) -> pd.DataFrame:
        """The rows of a table kept per (period_days[, segment, segment_value]) — period_figures,
        period_funnel — for one scope of the pickers (`segment` None: by period alone), in
        `order_by` column's order. The table is read once and grouped in memory: a page of a
        hundred scopes costs one query, not one per scope (on Spark each query costs a
        planning round trip)."""
        key = (table, order_by, segment is not None)
        if key not in self._scopes:
            sql = f"select * from {ident(table)}"
            if order_by is not None:
                sql += f" order by {ident(order_by)}"
            rows = self.df(sql)
            by = ["period_days", *(("segment", "segment_value") if segment else ())]
            groups = {k: g.reset_index(drop=True)
                      for k, g in rows.groupby(by, sort=False, dropna=False)}
            self._scopes[key] = (groups, rows.iloc[0:0])
        groups, empty = self._scopes[key]
        found = groups.get((period_days, *(segment or ())), empty)
        return found.copy()

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        row = self.con.execute(sql, list(params or [])).fetchone()
        return None if row is None else row[0]
