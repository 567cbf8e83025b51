"""Data that used to load wrongly while every check passed (issue 12, items 3 and 4): copies of
a record on different days or in different runs, and timestamps or export days that cannot be
right against the clock or the rest of the data."""

from __future__ import annotations

import datetime as dt
import json

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


# --------------------------------------------------------------------------- item 3: the clock


def rejected_files(con) -> list[tuple]:
    return con.execute("select source, source_file, rows_read, reason from rejected_files "
                       "order by all").fetchall()


def test_journeys_now_is_the_one_clock_and_defaults_to_utc(monkeypatch) -> None:
    import pytest

    from transforms.errors import UserError
    from transforms.sources import now_utc

    monkeypatch.setenv("JOURNEYS_NOW", "2026-10-02T12:00:00Z")
    assert now_utc() == dt.datetime(2026, 10, 2, 12)
    monkeypatch.setenv("JOURNEYS_NOW", "2026-10-02T14:00:00+02:00")  # an offset is honoured
    assert now_utc() == dt.datetime(2026, 10, 2, 12)
    monkeypatch.setenv("JOURNEYS_NOW", "2026-10-02T12:00:00")  # no offset: UTC
    assert now_utc() == dt.datetime(2026, 10, 2, 12)
    monkeypatch.setenv("JOURNEYS_NOW", "tomorrow")
    with pytest.raises(UserError, match="JOURNEYS_NOW"):
        now_utc()
    monkeypatch.delenv("JOURNEYS_NOW")
    real = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert abs(now_utc() - real) < dt.timedelta(seconds=5)


def test_the_day_range_follows_the_injected_clock(tiny: TinyProject, monkeypatch) -> None:
    tiny.clicks("2026-10-01", click("e1", "a1", "app_opened", "2026-10-01T10:00:00Z"))
    tiny.clicks("2026-10-05", click("e2", "a1", "app_opened", "2026-10-05T10:00:00Z"))
    monkeypatch.setenv("JOURNEYS_NOW", "2026-10-06T00:00:00Z")
    assert load_config(tiny.config).data_range() == (dt.date(2026, 9, 30), dt.date(2026, 10, 6))
    # two days earlier, the file of 5 October is dated in the future
    monkeypatch.setenv("JOURNEYS_NOW", "2026-10-03T00:00:00Z")
    assert load_config(tiny.config).data_range() == (dt.date(2026, 9, 30), dt.date(2026, 10, 2))


def test_a_file_dated_in_the_future_is_rejected_and_adds_no_partition(
        tiny: TinyProject, monkeypatch) -> None:
    monkeypatch.setenv("JOURNEYS_NOW", "2026-10-02T12:00:00Z")
    tiny.clicks("2026-10-01", click("e1", "a1", "app_opened", "2026-10-01T10:00:00Z"))
    tiny.clicks("2026-10-02", click("e2", "a1", "app_opened", "2026-10-02T10:00:00Z"))
    # already 3 October in UTC+14: not in the future
    tiny.clicks("2026-10-03", click("e3", "a1", "app_opened", "2026-10-02T11:00:00Z"))
    future = tiny.clicks("2027-01-01", click("e4", "a1", "app_opened", "2027-01-01T10:00:00Z"),
                         click("e5", "a1", "app_opened", "2027-01-01T11:00:00Z"))
    cfg = load_config(tiny.config)
    first, last = cfg.data_range()
    assert (first, last) == (dt.date(2026, 9, 30), dt.date(2026, 10, 4))
    con = connect()
    load(con, tiny, first, last)
    assert [r[0] for r in raw(con)] == ["e1", "e2", "e3"]
    reason = "file dated in the future: 2027-01-01 (today 2026-10-02)"
    assert rejected_files(con) == [("clickstream", str(future), 2, reason)]
    # a range reaching the file's day does not read it either, and the record is not doubled
    load(con, tiny, dt.date(2026, 12, 31), dt.date(2027, 1, 2))
    assert [r[0] for r in raw(con)] == ["e1", "e2", "e3"]
    assert rejected_files(con) == [("clickstream", str(future), 2, reason)]
    assert totals(con)[0] == 3
    no_problems(con, tiny)


def test_a_row_after_now_is_in_the_future_beyond_the_clock_skew_allowance(
        tiny: TinyProject, monkeypatch) -> None:
    monkeypatch.setenv("JOURNEYS_NOW", "2026-10-01T12:00:00Z")
    # bookings declare no clock_skew: an hour after now is in the future
    f = tiny.bookings("2026-10-01",
                      "b1,c1,s1,Berlin,hair,2026-10-05T10:00:00,10,EUR,created,,,,"
                      "2026-10-01T11:00:00Z",
                      "b2,c1,s1,Berlin,hair,2026-10-05T10:00:00,10,EUR,created,,,,"
                      "2026-10-01T13:00:00Z")
    con = connect()
    load(con, tiny, D1, D1, source="bookings")
    assert con.execute("select booking_id from raw_bookings").fetchall() == [("b1",)]
    assert con.execute("select source_file, source_line, reason from quarantine").fetchall() == [
        (str(f), 3, "implausible timestamp: 2026-10-01 13:00:00 UTC is in the future")]
    # the clickstream allows clock_skew.max_seconds (a day) after now
    tiny.clicks("2026-10-01", click("e1", "a1", "app_opened", "2026-10-01T20:00:00Z"),
                click("e2", "a1", "app_opened", "2026-10-02T12:00:01Z"))
    con = connect()
    load(con, tiny, D1, D2)
    assert [r[0] for r in raw(con)] == ["e1"]
    assert [r[3] for r in quarantined(con)] == [
        "implausible timestamp: 2026-10-02 12:00:01 UTC is in the future"]


def history(tiny: TinyProject, *stamps: str):
    """One clickstream file without a date in its name, a row per timestamp."""
    path = tiny.root / "raw" / "clickstream" / "history.jsonl"
    path.write_text("".join(
        json.dumps(click(f"h{i}", "a1", "app_opened", ts)) + "\n"
        for i, ts in enumerate(stamps, 1)))
    return path


def test_a_row_far_before_the_rest_of_an_undated_file_is_quarantined(
        tiny: TinyProject, monkeypatch) -> None:
    monkeypatch.setenv("JOURNEYS_NOW", "2026-12-01T00:00:00Z")
    path = history(tiny, "2026-10-01T10:00:00Z", "2019-03-01T08:00:00Z",
                   "2026-10-02T10:00:00Z", "2026-10-03T10:00:00Z")
    cfg = load_config(tiny.config)
    assert cfg.sources["clickstream"].max_days_before_data == 365
    first, last = cfg.data_range()
    assert (first, last) == (D1, dt.date(2026, 10, 3))  # not ~2,800 partitions
    con = connect()
    load(con, tiny, first, last)
    assert [r[0] for r in raw(con)] == ["h1", "h3", "h4"]
    gap = (D1 - dt.date(2019, 3, 1)).days
    assert quarantined(con) == [
        (D1, str(path), 2, f"implausible timestamp: 2019-03-01 08:00:00 UTC is {gap} days "
         "before the rest of its file", "rejected")]
    no_problems(con, tiny)


def test_a_long_history_without_a_gap_loads_completely(tiny: TinyProject, monkeypatch) -> None:
    monkeypatch.setenv("JOURNEYS_NOW", "2026-12-01T00:00:00Z")
    # three years, a row every 200 days (the gaps stay within max_days_before_data)
    days = [dt.date(2023, 10, 1) + dt.timedelta(days=200 * i) for i in range(6)]
    history(tiny, *(f"{d.isoformat()}T10:00:00Z" for d in days))
    first, last = load_config(tiny.config).data_range()
    assert (first, last) == (days[0], days[-1])
    con = connect()
    load(con, tiny, first, last)
    assert len(raw(con)) == 6 and quarantined(con) == []
    # a stricter bound cuts the history at its last long gap, walking back from the end
    text = tiny.config.read_text().replace("max_days_after_export: 1\n    clock_skew:",
                                           "max_days_after_export: 1\n"
                                           "      max_days_before_data: 100\n    clock_skew:", 1)
    assert text != tiny.config.read_text()
    tiny.config.write_text(text)
    con = connect()
    cfg = load_config(tiny.config)
    assert cfg.sources["clickstream"].max_days_before_data == 100
    load(con, tiny, days[0], days[-1])
    # every gap is too long: the cut is the latest one with fewer rows before it than after
    # it (a file of two equal halves is a history, not an outlier)
    assert [r[0] for r in raw(con)] == ["h3", "h4", "h5", "h6"]
    assert [(r[2], r[3].split(" UTC ")[1]) for r in quarantined(con)] == [
        (1, "is 400 days before the rest of its file"),
        (2, "is 200 days before the rest of its file")]
    no_problems(con, tiny)
