"""The headline figures (transforms/report.py) on hand-built tables; every expected value is
worked out by hand in the comments."""

from __future__ import annotations

import datetime as dt

from transforms.report import NOT_AVAILABLE, render_table, report
from transforms.settings import build_run_settings


def build_warehouse(con) -> None:
    con.execute("""
        create table ingest_reconciliation (source varchar, partition_date date,
            rows_read bigint, rows_loaded bigint, rows_quarantined bigint,
            rows_duplicate bigint, clock_skew_corrected bigint)""")
    con.execute("""insert into ingest_reconciliation values
        ('clicks', '2026-10-01', 10, 8, 1, 1, 0),
        ('clicks', '2026-10-02', 5, 5, 0, 0, 0),
        ('orders', '2026-10-01', 4, 3, 1, 0, 0),
        ('orders', '2026-10-02', 0, 0, 0, 0, 0)""")
    con.execute("""
        create table events (event_id varchar, source varchar, customer_id varchar,
            event_name varchar, event_ts timestamp, event_date date)""")
    con.execute("""insert into events values
        ('e1', 'clicks', 'a', 'view', '2026-10-01 10:00', '2026-10-01'),
        ('e2', 'clicks', 'a', 'cart', '2026-10-01 10:05', '2026-10-01'),
        ('e3', 'clicks', 'anon:x', 'view', '2026-10-02 09:00', '2026-10-02'),
        ('e4', 'orders', 'b', 'order', '2026-10-03 12:00', '2026-10-03'),
        ('e5', 'orders', null, 'order', '2026-09-30 23:00', '2026-09-30')""")
    con.execute("""
        create table journey_stages (customer_id varchar, stage varchar, stage_index integer,
            complete boolean)""")
    # Discovery: a, anon:x, b = 3 (complete or not); Decision: a, b = 2; Purchase: b = 1;
    # Repeat: nobody (0, from the stages setting)
    con.execute("""insert into journey_stages values
        ('a', 'Discovery', 1, true), ('a', 'Decision', 2, true),
        ('anon:x', 'Discovery', 1, false),
        ('b', 'Discovery', 1, true), ('b', 'Decision', 2, true), ('b', 'Purchase', 3, true)""")
    con.execute("""
        create table purchases (customer_id varchar, booking_id varchar, amount decimal(12,2),
            purchase_number bigint)""")
    # purchasers a, b = 2; repeat: b (purchase 2) = 1; revenue 10.50 + 20.00 + 5.25 = 35.75
    con.execute("""insert into purchases values
        ('a', 'k1', 10.50, 1), ('b', 'k2', 20.00, 1), ('b', 'k3', 5.25, 2)""")
    build_run_settings(con, {"stages": ["Discovery", "Decision", "Purchase", "Repeat"],
                             "currency": "EUR"})


def test_figures_of_a_hand_built_warehouse(con) -> None:
    build_warehouse(con)
    assert report(con) == {
        # clicks: read 10 + 5, loaded 8 + 5, quarantined 1, duplicates 1; orders 4 = 3 + 1
        "sources": {
            "clicks": {"read": 15, "loaded": 13, "quarantined": 1, "duplicates": 1,
                       "rejected": 0},
            "orders": {"read": 4, "loaded": 3, "quarantined": 1, "duplicates": 0,
                       "rejected": 0},
        },
        "events": 5,
        "customers": 3,  # a, anon:x, b (the NULL customer is not one)
        "data_start": dt.date(2026, 9, 30),
        "data_end": dt.date(2026, 10, 3),
        "stages": [{"name": "Discovery", "customers": 3}, {"name": "Decision", "customers": 2},
                   {"name": "Purchase", "customers": 1}, {"name": "Repeat", "customers": 0}],
        "purchasers": 2,
        "repeat_purchasers": 1,
        "revenue": 35.75,
        "currency": "EUR",
    }


def test_rejected_files_are_counted_when_the_table_exists(con) -> None:
    build_warehouse(con)
    # the columns ingest writes (transforms/ingest.py ensure_tables, docs/TABLES.md)
    con.execute("create table rejected_files (source varchar, source_file varchar, "
                "rows_read bigint, reason varchar, rejected_at timestamp)")
    con.execute("insert into rejected_files values "
                "('orders', 'x.csv', 7, 'a broken gzip stream', now()), "
                "('orders', 'y.csv', 2, 'cannot be opened', now()), "
                "('refunds', 'z.csv', 3, 'no valid record; first problem: x', now())")
    # orders 7 + 2 = 9; refunds, a source with only a rejected file, 3
    sources = report(con)["sources"]
    assert sources["orders"]["rejected"] == 9 and sources["clicks"]["rejected"] == 0
    assert sources["refunds"] == {"read": 0, "loaded": 0, "quarantined": 0, "duplicates": 0,
                                  "rejected": 3}


def test_stage_order_without_run_settings_comes_from_stage_index(con) -> None:
    build_warehouse(con)
    con.execute("drop table run_settings")
    con.execute("insert into journey_stages values ('c', 'Aaa first?', 4, true)")
    figures = report(con)
    assert [s["name"] for s in figures["stages"]] == [
        "Discovery", "Decision", "Purchase", "Aaa first?"]
    assert figures["currency"] is None


def test_revenue_is_none_without_amounts(con) -> None:
    build_warehouse(con)
    con.execute("update purchases set amount = null")
    assert report(con)["revenue"] is None
    con.execute("alter table purchases drop column amount")
    figures = report(con)
    assert figures["revenue"] is None and figures["purchasers"] == 2


def test_an_empty_warehouse_has_every_figure_missing(con) -> None:
    figures = report(con)
    assert figures == {key: None for key in (
        "sources", "events", "customers", "data_start", "data_end", "stages", "purchasers",
        "repeat_purchasers", "revenue", "currency")}
    text = render_table(figures)
    assert f"sources: {NOT_AVAILABLE}" in text and f"stages: {NOT_AVAILABLE}" in text
    for label in ("events", "customers", "purchasers", "repeat purchasers", "revenue", "data"):
        line = next(ln for ln in text.splitlines() if ln.startswith(label + " "))
        assert line.endswith(NOT_AVAILABLE), line


def test_only_some_tables_missing(con) -> None:
    # an orders-only warehouse: no journeys were built
    build_warehouse(con)
    con.execute("drop table journey_stages")
    figures = report(con)
    assert figures["stages"] is None and figures["events"] == 5 and figures["purchasers"] == 2


def test_table_is_aligned(con) -> None:
    build_warehouse(con)
    lines = render_table(report(con)).splitlines()
    assert lines[:3] == [
        "source          read        loaded   quarantined    duplicates      rejected",
        "clicks            15            13             1             1             0",
        "orders             4             3             1             0             0",
    ]
    assert "revenue            35.75 EUR" in lines and "events                 5" in lines
    assert "data               2026-09-30 … 2026-10-03" in lines
    assert lines[-5:] == ["stage         customers", "Discovery             3",
                          "Decision              2", "Purchase              1",
                          "Repeat                0"]
