"""Load reconciliation per day, week and month: the Quality page's readable long histories.

`ingest_reconciliation_periods`: one row per (grain x source x period), `ingest_reconciliation`
(transforms/ingest.py) added up per day, ISO week (Monday start) or calendar month, with
`complete` (the period lies wholly within the data's days: the first and last week or month
usually do not) and `is_default` (the grain to show first, from the span of the data:
`default_grain`). Columns and rules are in the header of
transforms/sql/ingest_reconciliation_periods.sql.
"""

from __future__ import annotations

import duckdb

from transforms.sqlutil import sql_file
from transforms.tables import count_rows, table_columns

GRAINS = ("day", "week", "month")
# The longest spans (days, first to last partition day) shown by day and by week first: about
# 90 daily bars, then up to about 104 weekly ones; longer histories by month.
DAY_GRAIN_MAX_DAYS = 92
WEEK_GRAIN_MAX_DAYS = 731


def default_grain(span_days: int | None) -> str:
    """The grain to show first for a history of `span_days` days."""
    if span_days is None or span_days <= DAY_GRAIN_MAX_DAYS:
        return "day"
    if span_days <= WEEK_GRAIN_MAX_DAYS:
        return "week"
    return "month"


def build_ingest_reconciliation_periods(con: duckdb.DuckDBPyConnection) -> int:
    """(Re)build `ingest_reconciliation_periods` from `ingest_reconciliation`; 0 rows (and no
    table) without it."""
    if not table_columns(con, "ingest_reconciliation"):
        return 0
    span = con.execute("select max(partition_date) - min(partition_date) + 1 "
                       "from ingest_reconciliation").fetchone()[0]
    con.execute(sql_file("ingest_reconciliation_periods"),
                {"default_grain": default_grain(None if span is None else int(span))})
    return count_rows(con, "ingest_reconciliation_periods")
