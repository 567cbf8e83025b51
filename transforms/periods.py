"""The overview's headline period: the last `period_days` days of data vs the days before.

Two tables, each for every period length the Overview's picker offers (`period_lengths`: the
run's `period_days` setting, `PERIOD_CHOICES` (7, 28, 90 days) that fit in the data, and the
whole data as one period):

- `period_figures`: one row per (period_days, figure). Figures: new_customers, purchases,
  purchasers, repeat_purchasers, repeat_rate (basis `data`: the last period_days days of
  data and the period_days days before them) and conversion_journeys, converted_journeys,
  conversion (basis `cohorts`: the last period_days entry days whose conversion window is fully
  observed, and the days before those). Columns: period_days, figure, kind (`count`|`rate`),
  basis, current_start, current_end, previous_start, previous_end, previous_observed,
  current_value, previous_value (NULL when the previous period is not there to compare),
  change (current - previous), relative_change (change / previous, counts only). The rules are
  in the header of transforms/sql/period_figures.sql.
- `period_funnel`: one row per (period_days, stage): the stage funnel of the complete cohorts
  of the current `cohorts` period, with the rates of transforms/sql/definitions.sql and the
  stage with the largest dropout up to the conversion stage flagged
  (transforms/sql/period_funnel.sql).

Needs `journeys`, `purchases` and `funnel_cohorts` (and, for the funnel, `period_figures`), and
the definition macros on the connection (transforms.definitions.create_macros).
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb

from transforms.sqlutil import ident, sql_file
from transforms.tables import count_rows, table_columns

PERIOD_CHOICES = (7, 28, 90)


def period_lengths(settings: Mapping[str, object]) -> list[int]:
    """The period lengths (days) the tables hold: the run's `period_days`, the choices of
    `PERIOD_CHOICES` shorter than the data, and the whole data (its number of days)."""
    run = int(settings["period_days"])
    start, end = settings.get("data_start"), settings.get("data_end")
    if start is None or end is None:
        return [run]
    span = (end - start).days + 1  # type: ignore[operator]
    return sorted({run, span, *(p for p in PERIOD_CHOICES if p < span)})


def _for_each_length(con: duckdb.DuckDBPyConnection, table: str, lengths: list[int],
                     build: object) -> None:
    """Run `build(length)` (which replaces `table` with one length's rows) for each length
    and keep the rows of all of them in `table`."""
    acc = f"_{table}_all"
    for i, length in enumerate(lengths):
        build(length)  # type: ignore[operator]
        if i == 0:
            con.execute(f"create or replace temp table {acc} as select * from {table}")
        else:
            con.execute(f"insert into {acc} select * from {table}")
    con.execute(f"create or replace table {table} as select * from {acc} order by all")
    con.execute(f"drop table {acc}")


def build_period_figures(con: duckdb.DuckDBPyConnection,
                         settings: Mapping[str, object]) -> int:
    """(Re)build `period_figures` for every length of `period_lengths(settings)`, ending at
    `settings["data_end"]` (read_settings of run_settings gives both). Without a new vs
    returning segment there are no new customers to count; without purchases none either."""
    seg = settings.get("new_customer_segment")
    if seg and seg in table_columns(con, "journeys"):
        con.execute(f"create or replace temp view _new_journeys as select customer_id, "
                    f"entry_date from journeys where {ident(str(seg))} = 'new'")
    else:
        con.execute("create or replace temp view _new_journeys as select customer_id, "
                    "entry_date from journeys where false")
    no_purchases = not table_columns(con, "purchases")
    if no_purchases:
        con.execute("create or replace temp table purchases (customer_id VARCHAR, "
                    "order_id VARCHAR, purchase_date DATE, purchase_number BIGINT, "
                    "amount DECIMAL(18,2))")
    _for_each_length(con, "period_figures", period_lengths(settings), lambda days: con.execute(
        sql_file("period_figures"), {
            "period_days": days,
            "data_start": settings.get("data_start"),
            "data_end": settings.get("data_end"),
            "conversion_stage": settings.get("conversion_stage"),
        }))
    con.execute("drop view _new_journeys")
    if no_purchases:
        con.execute("drop table temp.purchases")
    return count_rows(con, "period_figures")


def build_period_funnel(con: duckdb.DuckDBPyConnection,
                        settings: Mapping[str, object]) -> int:
    """(Re)build `period_funnel` from `period_figures` and `funnel_cohorts`, for every
    length of `period_lengths(settings)`."""
    _for_each_length(con, "period_funnel", period_lengths(settings), lambda days: con.execute(
        sql_file("period_funnel"), {
            "period_days": days,
            "conversion_stage": settings.get("conversion_stage"),
        }))
    return count_rows(con, "period_funnel")
