"""Data that used to load wrongly while every check passed (issue 12, items 3 and 4): copies of
a record on different days or in different runs, and timestamps or export days that cannot be
right against the clock or the rest of the data."""

from __future__ import annotations

import datetime as dt

import duckdb

from tests.conftest import TinyProject, click
from transforms import ingest
from transforms.sources import load_config

D1, D2 = dt.date(2026, 10, 1), dt.date(2026, 10, 2)


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    return con


def load(con, tiny: TinyProject, first: dt.date, last: dt.date, source: str = "clickstream"):
    cfg = load_config(tiny.config)
    return ingest.load_range(con, cfg.sources[source], first, last)


def quarantined(con) -> list[tuple]:
    return con.execute("select partition_date, source_file, source_line, reason, kind "
                       "from quarantine order by partition_date, source_file, source_line"
                       ).fetchall()


def totals(con) -> tuple:
    return con.execute("select sum(rows_read), sum(rows_loaded), sum(rows_quarantined), "
                       "sum(rows_duplicate) from ingest_reconciliation").fetchone()


def raw(con) -> list[tuple]:
    return con.execute("select event_id, partition_date, source_line from raw_clickstream "
                       "order by all").fetchall()


def no_problems(con, tiny: TinyProject) -> None:
    cfg = load_config(tiny.config)
    assert ingest.reconciliation_problems(con, cfg.sources["clickstream"]) == []


# --------------------------------------------------------------------------- item 4: copies


def two_day_copy(tiny: TinyProject):
    """e1 on 1 October and again (re-sent, another time) on 2 October; e2 only once."""
    f1 = tiny.clicks("2026-10-01", click("e1", "a1", "app_opened", "2026-10-01T10:00:00Z"))
    f2 = tiny.clicks("2026-10-02", click("e1", "a1", "app_opened", "2026-10-02T09:00:00Z"),
                     click("e2", "a1", "app_opened", "2026-10-02T09:30:00Z"))
    return f1, f2


def test_same_id_on_two_days_is_loaded_once_and_the_later_copy_is_a_conflicting_duplicate(
        tiny: TinyProject) -> None:
    f1, f2 = two_day_copy(tiny)
    con = connect()
    load(con, tiny, dt.date(2026, 9, 29), dt.date(2026, 10, 3))
    assert raw(con) == [("e1", D1, 1), ("e2", D2, 2)]
    assert quarantined(con) == [
        (D2, str(f2), 1, f"conflicting duplicate of {f1}:1: differs in client_ts, received_at",
         "duplicate")]
    assert totals(con) == (3, 2, 0, 1)
    no_problems(con, tiny)


def test_exact_copy_in_another_file_is_a_plain_duplicate(tiny: TinyProject) -> None:
    line = click("e1", "a1", "app_opened", "2026-10-01T23:30:00Z")
    f1 = tiny.clicks("2026-10-01", line)
    f2 = tiny.clicks("2026-10-02", line)
    con = connect()
    load(con, tiny, D1, D2)
    assert quarantined(con) == [(D1, str(f2), 1, f"duplicate of {f1}:1", "duplicate")]


def test_copy_of_a_row_loaded_by_an_earlier_daily_run_is_a_duplicate(tiny: TinyProject) -> None:
    f1, f2 = two_day_copy(tiny)
    con = connect()
    load(con, tiny, D1, D1)  # yesterday's run
    load(con, tiny, D2, D2)  # today's run: e1 was loaded yesterday
    assert raw(con) == [("e1", D1, 1), ("e2", D2, 2)]
    assert [(d, f, n, kind) for d, f, n, _, kind in quarantined(con)] == [
        (D2, str(f2), 1, "duplicate")]
    assert totals(con) == (3, 2, 0, 1)
    no_problems(con, tiny)


def test_rerun_of_an_earlier_day_moves_the_later_copy_to_quarantine(tiny: TinyProject) -> None:
    # partitions run out of order (a backfill): the result is that of one run in order
    f1, f2 = two_day_copy(tiny)
    con = connect()
    load(con, tiny, D2, D2)
    load(con, tiny, D1, D1)
    assert raw(con) == [("e1", D1, 1), ("e2", D2, 2)]
    q = quarantined(con)
    assert [(d, f, n, kind) for d, f, n, _, kind in q] == [(D2, str(f2), 1, "duplicate")]
    assert q[0][3].startswith(f"conflicting duplicate of {f1}:1")
    assert totals(con) == (3, 2, 0, 1)
    no_problems(con, tiny)
    # and re-running the later day again changes nothing
    load(con, tiny, D2, D2)
    assert raw(con) == [("e1", D1, 1), ("e2", D2, 2)] and quarantined(con) == q
    no_problems(con, tiny)
