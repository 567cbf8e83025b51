"""Small tables that hold the figures the dashboard pages show and no other table has.

Each reads tables built elsewhere, adds up their counts and takes its rates from the macros of
transforms/sql/definitions.sql, so a page only reads and formats. Static statements live in
transforms/sql/<table>.sql; `source_summary` is assembled here because the raw tables it reads
follow the configured sources.

- `payment_failure_matrix` (one row per platform x payment method, all days): reads
  `payment_attempts`; the worst cell is ranked among cells with at least
  `min_attempts_to_rank` attempts (settings), see payment_failure_matrix.sql.
- `stage_time_distribution` (one row per stage with a timed arrival): 5th, 25th and 95th
  percentiles of the time from the previous stage over complete journeys, beside
  `funnel_steps`' median and 75th percentile.
- `repeat_so_far` (one row per `repeat_purchase` group x value): buyers who bought again so far.
- `repeat_gaps` (one row per customer with a second purchase): days from first to second
  purchase, from `purchases.purchase_number`.
- `source_summary` (one row per source in `events`, `ingest_reconciliation` or
  `rejected_files`): events, latest event, how far it is behind the end of the data, the latest
  file of `raw_<source>`, the load reconciliation added up over all days with
  `quarantined_share` = rows quarantined / rows read (rejected rows only: rows waiting in
  `quarantine` for a day outside a run's range, kind 'outside_range', are in no day's count),
  and the files rejected as a whole with the rows read from them (0 when none).
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb

from transforms.sqlutil import Params, ident, sql_file
from transforms.tables import count_rows, list_tables, skipped_without, table_columns

# Payment attempts a platform x method cell needs before it can be named the worst.
MIN_ATTEMPTS_TO_RANK = 20


def build_payment_failure_matrix(con: duckdb.DuckDBPyConnection,
                                 settings: Mapping[str, object]) -> int:
    """(Re)build `payment_failure_matrix` from `payment_attempts`."""
    if skipped_without(con, ["payment_failure_matrix"], reads=("payment_attempts",)):
        return 0
    threshold = settings.get("min_attempts_to_rank", MIN_ATTEMPTS_TO_RANK)
    con.execute(sql_file("payment_failure_matrix"), {"min_attempts_to_rank": threshold})
    return count_rows(con, "payment_failure_matrix")


def build_stage_time_distribution(con: duckdb.DuckDBPyConnection) -> int:
    """(Re)build `stage_time_distribution` from `journey_stages` and `funnel_steps`."""
    if skipped_without(con, ["stage_time_distribution"], reads=("journey_stages", "funnel_steps")):
        return 0
    con.execute(sql_file("stage_time_distribution"))
    return count_rows(con, "stage_time_distribution")


def build_repeat_so_far(con: duckdb.DuckDBPyConnection) -> int:
    """(Re)build `repeat_so_far` from `repeat_purchase`."""
    if skipped_without(con, ["repeat_so_far"], reads=("repeat_purchase",)):
        return 0
    con.execute(sql_file("repeat_so_far"))
    return count_rows(con, "repeat_so_far")


def build_repeat_gaps(con: duckdb.DuckDBPyConnection) -> int:
    """(Re)build `repeat_gaps` from `purchases`."""
    if skipped_without(con, ["repeat_gaps"], reads=("purchases",)):
        return 0
    con.execute(sql_file("repeat_gaps"))
    return count_rows(con, "repeat_gaps")


def build_source_summary(con: duckdb.DuckDBPyConnection) -> int:
    """(Re)build `source_summary` from `events`, `ingest_reconciliation`, `rejected_files`
    (when there: a warehouse without it has 0 rejected files) and the `raw_<source>` tables
    present (a missing one leaves `latest_file` NULL)."""
    tables = list_tables(con)
    rejected = ("select source, source_file, rows_read from rejected_files"
                if "rejected_files" in tables else
                "select cast(null as varchar) as source, cast(null as varchar) as source_file, "
                "cast(null as bigint) as rows_read where false")
    sources = [r[0] for r in con.execute(
        "select source from events union select source from ingest_reconciliation "
        f"union select source from ({rejected}) order by source").fetchall()]
    files: list[str] = []
    params = Params()
    for source in sources:
        raw = f"raw_{source}"
        if raw in tables and "source_file" in table_columns(con, raw):
            files.append(f"select {params.add(source)} as source, "
                         f"max(source_file) as latest_file from {ident(raw)}")
    latest_files = (" union all ".join(files) if files else
                    "select cast(null as varchar) as source, cast(null as varchar) as latest_file "
                    "where false")
    con.execute(
        f"""
        create or replace table source_summary as
        with event_counts as (
            select source, count(*) as events, max(event_ts) as latest_event_ts
            from events group by source
        ),
        data_end as (
            select max(event_ts) as data_end_ts from events
        ),
        loads as (
            select source,
                   cast(sum(rows_read) as bigint) as rows_read,
                   cast(sum(rows_loaded) as bigint) as rows_loaded,
                   cast(sum(rows_quarantined) as bigint) as rows_quarantined,
                   cast(sum(rows_duplicate) as bigint) as rows_duplicate,
                   cast(sum(clock_skew_corrected) as bigint) as clock_skew_corrected,
                   max(loaded_at) as last_loaded_at
            from ingest_reconciliation group by source
        ),
        latest_files as ({latest_files}),
        rejected as (
            -- files rejected as a whole: none of their rows is in any day's rows_read
            select source, count(distinct source_file) as files_rejected,
                   cast(coalesce(sum(rows_read), 0) as bigint) as rows_in_rejected_files
            from ({rejected}) group by source
        ),
        sources as (
            select source from event_counts union select source from loads
            union select source from rejected
        ),
        final as (
            select
                -- grain
                s.source,
                -- freshness
                coalesce(e.events, 0) as events, e.latest_event_ts,
                epoch(d.data_end_ts - e.latest_event_ts) as seconds_behind_data_end,
                f.latest_file, l.last_loaded_at,
                -- load reconciliation, all days
                l.rows_read, l.rows_loaded, l.rows_quarantined,
                l.rows_quarantined / nullif(l.rows_read, 0) as quarantined_share,
                l.rows_duplicate, l.clock_skew_corrected,
                -- files rejected as a whole
                coalesce(r.files_rejected, 0) as files_rejected,
                coalesce(r.rows_in_rejected_files, 0) as rows_in_rejected_files
            from sources s
            cross join data_end d
            left join event_counts e using (source)
            left join loads l using (source)
            left join latest_files f using (source)
            left join rejected r using (source)
        )
        select * from final order by source
        """,
        params.values,
    )
    return count_rows(con, "source_summary")


def build_dashboard_tables(con: duckdb.DuckDBPyConnection,
                           settings: Mapping[str, object]) -> dict[str, int]:
    """Every table of this module whose inputs are in the warehouse; rows per table built."""
    tables = list_tables(con)
    out: dict[str, int] = {}
    if "payment_attempts" in tables:
        out["payment_failure_matrix"] = build_payment_failure_matrix(con, settings)
    if {"journey_stages", "funnel_steps"} <= tables:
        out["stage_time_distribution"] = build_stage_time_distribution(con)
    if "repeat_purchase" in tables:
        out["repeat_so_far"] = build_repeat_so_far(con)
    if "purchases" in tables:
        out["repeat_gaps"] = build_repeat_gaps(con)
    if {"events", "ingest_reconciliation"} <= tables:
        out["source_summary"] = build_source_summary(con)
    return out
