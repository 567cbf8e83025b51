"""The overview's headline period: the last `period_days` days of data vs the days before, for
all customers and for each offered segment value.

Two tables, each for every period length the pickers offer (`period_lengths`: the run's
`period_days` setting, `PERIOD_CHOICES` (7, 28, 90 days) that fit in the data, and the whole
data as one period) and every group (`segment`, `segment_value`): `all`/`all` = every customer,
then the offered values of the journey map's segments (`offered_segment_values`):

- `period_figures`: one row per (period_days, segment, segment_value, figure). Figures:
  new_customers, purchases, purchasers, repeat_purchasers, repeat_rate, revenue (basis `data`:
  the last period_days days of data and the period_days days before them) and
  conversion_journeys, converted_journeys, conversion (basis `cohorts`: the last period_days
  entry days whose conversion window is fully observed, and the days before those). Columns:
  period_days, segment, segment_value, figure, kind (`count`|`amount`|`rate`), basis,
  current_start, current_end, previous_start, previous_end, previous_observed, current_value,
  previous_value (NULL when the previous period is not there to compare), change (current -
  previous), relative_change (change / previous, counts and amounts only), small_n (a rate
  whose current n, purchasers or conversion_journeys, is below the run's `small_n`). The rules
  are in the header of transforms/sql/period_figures.sql.
- `period_funnel`: one row per (period_days, segment, segment_value, stage): the stage funnel
  of the complete cohorts of the group's current `cohorts` period, with the rates of
  transforms/sql/definitions.sql, small_n (the step rate rests on fewer than `small_n`
  journeys) and the stage with the largest dropout up to the conversion stage flagged among
  the steps that are not small n (transforms/sql/period_funnel.sql).

A journey belongs to a segment value by its `journeys` column of that segment (the value at
entry, the one `funnel_segments` and the journey map's persona tables group by); a purchase
belongs to the value of its customer's journey. Offered values: at least `min_journeys`
journeys over the whole data (by default the run's `small_n`), the `MAX_SEGMENT_VALUES` with
the most journeys per segment; NULL and '(unknown)' are never offered (no ranking, no picker).

Needs `journeys`, `purchases` and `funnel_cohorts` (with segments also `journey_stages`; for
the funnel, `period_figures`), and the definition macros on the connection
(transforms.definitions.create_macros).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import duckdb

from transforms.findings import UNKNOWN
from transforms.sqlutil import Params, ident, sql_file
from transforms.stage_funnels import SMALL_N
from transforms.tables import count_rows, table_columns

PERIOD_CHOICES = (7, 28, 90)
# Segment values offered per segment (the most journeys first): a city column with thousands
# of values must not multiply the tables and the pages' pickers.
MAX_SEGMENT_VALUES = 10
ALL = "all"


def period_lengths(settings: Mapping[str, object]) -> list[int]:
    """The period lengths (days) the tables hold: the run's `period_days`, the choices of
    `PERIOD_CHOICES` shorter than the data, and the whole data (its number of days)."""
    run = int(settings["period_days"])
    start, end = settings.get("data_start"), settings.get("data_end")
    if start is None or end is None:
        return [run]
    span = (end - start).days + 1  # type: ignore[operator]
    return sorted({run, span, *(p for p in PERIOD_CHOICES if p < span)})


def _small_n(settings: Mapping[str, object]) -> int:
    value = settings.get("small_n", SMALL_N)
    return int(value) if value is not None else SMALL_N


def segment_names(con: duckdb.DuckDBPyConnection,
                  segments: Sequence[str] | None = None) -> list[str]:
    """The segments the period tables break down by: `segments` (the journey map's, in map
    order) or, when not given, those `funnel_segments` holds; only columns of `journeys`."""
    if segments is None:
        segments = ([str(r[0]) for r in con.execute(
            "select distinct segment from funnel_segments order by 1").fetchall()]
            if table_columns(con, "funnel_segments") else [])
    have = table_columns(con, "journeys")
    return [s for s in segments if s in have and s != ALL]


def _member_rows_sql(segments: list[str], p: Params) -> str:
    """(customer_id, segment, segment_value): one row per journey x segment, the value as the
    journey's column of that segment holds it (NULL when missing)."""
    if not segments:
        return ("select cast(null as varchar) as customer_id, cast(null as varchar) as "
                "segment, cast(null as varchar) as segment_value where false")
    return " union all ".join(
        f"select customer_id, {p.add(s)} as segment, "
        f"cast({ident(s)} as varchar) as segment_value from journeys" for s in segments)


def build_segment_members(con: duckdb.DuckDBPyConnection, segments: list[str],
                          min_journeys: int, table: str = "_period_members") -> None:
    """Temp table `table` (segment, segment_value, customer_id): one row per journey x offered
    value of its segments (one statement over every segment). The one definition of the values
    a page offers to pick: known (not NULL, not '(unknown)'), at least `min_journeys` journeys,
    the `MAX_SEGMENT_VALUES` with the most journeys per segment (ties by value)."""
    p = Params()
    rows = _member_rows_sql(segments, p)
    con.execute(f"""
        create or replace temp table {ident(table)} as
        with rows as ({rows}),
        counted as (
            select segment, segment_value, count(*) as journeys
            from rows
            where segment_value is not null and segment_value <> {p.add(UNKNOWN)}
            group by all
        ),
        offered as (
            select segment, segment_value
            from counted
            where journeys >= {p.add(int(min_journeys))}
            qualify row_number() over (partition by segment
                                       order by journeys desc, segment_value)
                    <= {p.add(MAX_SEGMENT_VALUES)}
        )
        select r.segment, r.segment_value, r.customer_id
        from rows r join offered o using (segment, segment_value)""", p.values)


def _members_of_figures(con: duckdb.DuckDBPyConnection) -> None:
    """Temp table `_period_members` for the groups `period_figures` holds (its offered
    values), so the funnel covers exactly the figures' groups."""
    p = Params()
    segments = segment_names(con, sorted({s for s, _ in offered_segment_values(con)}))
    con.execute(f"""
        create or replace temp table _period_members as
        with rows as ({_member_rows_sql(segments, p)})
        select r.segment, r.segment_value, r.customer_id
        from rows r
        join (select distinct segment, segment_value from period_figures) o
          using (segment, segment_value)""", p.values)


def _build_cohorts(con: duckdb.DuckDBPyConnection) -> None:
    """Temp table `_period_cohorts` (segment, segment_value, cohort_date, stage_index, stage,
    entered): the complete cohorts of `funnel_cohorts` for `all`/`all`, and per offered value
    its journeys of those cohorts reaching each stage (from `journey_stages`, as
    `funnel_cohorts` counts them)."""
    members = count_rows(con, "_period_members")
    seg_rows = """
        union all
        select m.segment, m.segment_value, s.entry_date as cohort_date, s.stage_index,
               s.stage, count(*) as entered
        from _period_members m
        join journey_stages s using (customer_id)
        where s.entry_date in (select cohort_date from funnel_cohorts where complete)
        group by all""" if members else ""
    con.execute(f"""
        create or replace temp table _period_cohorts as
        select $all as segment, $all as segment_value, cohort_date, stage_index, stage,
               cast(entered as bigint) as entered
        from funnel_cohorts where complete
        {seg_rows}""", {"all": ALL})


def offered_segment_values(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """The (segment, value) groups of `period_figures` after `all`/`all`, by segment and value."""
    return [(str(s), str(v)) for s, v in con.execute(
        "select distinct segment, segment_value from period_figures where segment <> ? "
        "order by 1, 2", [ALL]).fetchall()]


def build_period_figures(con: duckdb.DuckDBPyConnection, settings: Mapping[str, object], *,
                         segments: Sequence[str] | None = None,
                         min_journeys: int | None = None) -> int:
    """(Re)build `period_figures` for every length of `period_lengths(settings)`, ending at
    `settings["data_end"]` (read_settings of run_settings gives both), for all customers and
    every offered value of `segments` (see `segment_names`) with at least `min_journeys`
    journeys (default: the run's `small_n`). Without a new vs returning segment there are no
    new customers to count; without purchases none either."""
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
    small_n = _small_n(settings)
    build_segment_members(con, segment_names(con, segments),
                   small_n if min_journeys is None else min_journeys)
    _build_cohorts(con)
    con.execute(sql_file("period_figures"), {
        "period_lengths": period_lengths(settings),
        "data_start": settings.get("data_start"),
        "data_end": settings.get("data_end"),
        "conversion_stage": settings.get("conversion_stage"),
        "small_n": small_n,
        "all": ALL,
    })
    con.execute("drop view _new_journeys")
    con.execute("drop table _period_cohorts")
    con.execute("drop table _period_members")
    if no_purchases:
        con.execute("drop table temp.purchases")
    return count_rows(con, "period_figures")


def build_period_funnel(con: duckdb.DuckDBPyConnection, settings: Mapping[str, object]) -> int:
    """(Re)build `period_funnel` from `period_figures`, `funnel_cohorts` and (for the segment
    values of `period_figures`) `journey_stages`, for every length and group of
    `period_figures`."""
    _members_of_figures(con)
    _build_cohorts(con)
    con.execute(sql_file("period_funnel"), {
        "conversion_stage": settings.get("conversion_stage"),
        "small_n": _small_n(settings),
        "all": ALL,
    })
    con.execute("drop table _period_cohorts")
    con.execute("drop table _period_members")
    return count_rows(con, "period_funnel")
