"""Daily stage rates: per day and stage, how many journeys reached the stage, how many went on,
the payment failure rate, and which finding covers the day.

`build_daily_stage_rates` takes a DuckDB connection holding `journey_stages`
(transforms/journeys.py) and `payment_attempts` (transforms/bookings.py) and the loaded journey
map, and (re)creates `daily_stage_rates` with CREATE OR REPLACE from
transforms/sql/daily_stage_rates.sql. Grain and columns are in docs/TABLES.md. The rules:

- **Findings** (`dropout_finding`, `failure_finding`): the rank of the best finding of
  everyone (`findings`, transforms/findings.py) whose window holds the day: the odd days are
  the findings' windows, by the findings' rules (baseline without the window, every day present,
  open windows never tested); there is no second rule here.
- The payment failure rate is the one of transforms/bookings.py (failed / attempts of
  `payment_attempts`), shown on the conversion stage's row.
"""

from __future__ import annotations

import duckdb

from transforms.findings import findings_table
from transforms.journey_findings import PAYMENT_TRANSITION
from transforms.journey_map import JourneyMap
from transforms.sqlutil import sql_file
from transforms.tables import built, count_rows, skipped_without, table_columns


def build_daily_stage_rates(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `daily_stage_rates`: one row per (day x stage) with journeys first reaching
    the stage that day, how many went on to the next stage, the payment failure rate (on the
    conversion stage's row) and the findings covering the day. Needs `journey_stages`,
    `payment_attempts` and `findings`."""
    if skipped_without(con, ["daily_stage_rates"], reads=("journey_stages",)):
        return 0
    # without payments the day's payment figures are empty (NULL), the stage rates still stand
    no_payments = not table_columns(con, "payment_attempts")
    if no_payments:
        con.execute("create or replace temp table payment_attempts (event_date DATE, "
                    "attempts BIGINT, failures BIGINT)")
    no_findings = not table_columns(con, "findings")
    if no_findings:
        findings_table(con, [], table="findings")
    con.execute(sql_file("daily_stage_rates"), {
        "conversion_stage_index": jmap.stage(jmap.conversion_stage).index,
        "last_stage_index": jmap.stages[-1].index,
        "payment_to_step": PAYMENT_TRANSITION[1],
    })
    if no_payments:
        con.execute("drop table temp.payment_attempts")
    if no_findings:
        con.execute("drop table findings")
    built(con, ["daily_stage_rates"])
    return count_rows(con, "daily_stage_rates")
