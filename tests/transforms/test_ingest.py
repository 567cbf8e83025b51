"""Ingestion rules, one hand-written bad row each, with the outcome in the assertion."""

from __future__ import annotations

import datetime as dt

import duckdb

from tests.conftest import TinyProject, click
from transforms import ingest
from transforms.events import build_events
from transforms.sources import load_config

D1 = dt.date(2026, 10, 1)
D2 = dt.date(2026, 10, 2)
D3 = dt.date(2026, 10, 3)


def load(tiny: TinyProject, source: str, first=D1, last=D3):
    cfg = load_config(tiny.config)
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    stats = ingest.load_range(con, cfg.sources[source], first, last)
    return con, {s.partition_date: s for s in stats}, cfg


def quarantined(con, source: str) -> list[tuple]:
    return con.execute(
        "select source_line, kind, reason from quarantine where source = ? order by source_line",
        [source]).fetchall()


def test_clean_clickstream_rows_load_typed_in_utc(tiny: TinyProject) -> None:
    tiny.clicks("2026-10-01",
                click("m1", "a1", "app_installed", "2026-10-01T10:00:00+02:00",
                      received="2026-10-01T08:00:01Z", medium="paid_social"),
                click("m2", "a1", "service_viewed", "2026-10-01T10:05:00+02:00",
                      received="2026-10-01T08:05:02Z", service_category="hair"))
    con, stats, _ = load(tiny, "clickstream")
    rows = con.execute("select event_id, event_ts, channel, partition_date from raw_clickstream "
                       "order by event_id").fetchall()
    # 10:00 at +02:00 is 08:00 UTC
    assert rows == [("m1", dt.datetime(2026, 10, 1, 8, 0), "paid_social", D1),
                    ("m2", dt.datetime(2026, 10, 1, 8, 5), None, D1)]
    assert (stats[D1].rows_read, stats[D1].rows_loaded) == (2, 2)
    assert stats[D2].rows_read == 0


def test_malformed_json_line_is_quarantined_with_its_line(tiny: TinyProject) -> None:
    tiny.clicks("2026-10-01",
                click("m1", "a1", "app_opened", "2026-10-01T08:00:00Z"),
                '{"messageId": "m2", "anonymousId": "a1", "event": "app_op',
                "[1, 2]")
    con, stats, _ = load(tiny, "clickstream")
    assert quarantined(con, "clickstream") == [
        (2, "rejected", "malformed JSON line"), (3, "rejected", "malformed JSON line")]
    raw = con.execute("select raw_record from quarantine where source_line = 2").fetchone()[0]
    assert raw.startswith('{"messageId": "m2"')
    assert (stats[D1].rows_read, stats[D1].rows_loaded, stats[D1].rows_quarantined) == (3, 1, 2)


def test_missing_required_field(tiny: TinyProject) -> None:
    no_event = click("m1", "a1", "", "2026-10-01T08:00:00Z")
    no_anon = click("m2", "a1", "app_opened", "2026-10-01T08:00:00Z")
    del no_anon["anonymousId"]
    tiny.clicks("2026-10-01", no_event, no_anon)
    con, _, _ = load(tiny, "clickstream")
    assert [r[2] for r in quarantined(con, "clickstream")] == [
        "missing required field: event_name", "missing required field: anonymous_id"]


def test_bad_timestamp_and_unknown_event_and_bad_enum(tiny: TinyProject) -> None:
    tiny.clicks("2026-10-01",
                click("m1", "a1", "app_opened", "not-a-date", received="2026-10-01T08:00:00Z"),
                click("m2", "a1", "debug_ping", "2026-10-01T08:00:00Z"),
                click("m3", "a1", "app_opened", "2026-10-01T08:00:00Z", platform="blackberry"))
    con, stats, _ = load(tiny, "clickstream")
    assert [r[2] for r in quarantined(con, "clickstream")] == [
        "bad timestamp in client_ts: not-a-date",
        "unknown event_name: debug_ping",
        "unknown platform: blackberry"]
    assert stats[D1].reasons == {"bad timestamp in client_ts": 1, "unknown event_name": 1,
                                 "unknown platform": 1}


def test_duplicate_event_id_is_kept_aside_not_loaded_twice(tiny: TinyProject) -> None:
    e = click("m1", "a1", "app_opened", "2026-10-01T08:00:00Z")
    tiny.clicks("2026-10-01", e, e)
    tiny.clicks("2026-10-02", e)  # the SDK retried again the next day
    con, stats, _ = load(tiny, "clickstream")
    assert con.execute("select count(*) from raw_clickstream").fetchone() == (1,)
    q = quarantined(con, "clickstream")
    assert [(line, kind) for line, kind, _ in q] == [(1, "duplicate"), (2, "duplicate")]
    assert q[0][2].startswith("duplicate of ") and q[0][2].endswith("2026-10-01.jsonl:1")
    assert (stats[D1].rows_read, stats[D1].rows_loaded, stats[D1].rows_duplicate) == (3, 1, 2)
    assert stats[D2].rows_read == 0  # the late copy belongs to its event day


def test_late_event_lands_in_the_partition_of_its_event_time(tiny: TinyProject) -> None:
    tiny.clicks("2026-10-02",
                click("late", "a1", "app_opened", "2026-10-01T23:59:50Z",
                      received="2026-10-02T00:00:05Z"),
                click("m2", "a1", "app_opened", "2026-10-02T09:00:00Z"))
    con, stats, _ = load(tiny, "clickstream")
    got = con.execute("select event_id, partition_date, source_file like '%2026-10-02.jsonl' "
                      "from raw_clickstream order by event_id").fetchall()
    assert got == [("late", D1, True), ("m2", D2, True)]
    assert (stats[D1].rows_read, stats[D2].rows_read) == (1, 1)


def test_too_late_event_is_quarantined_in_its_file_day(tiny: TinyProject) -> None:
    # late_days is 1: an event of Oct 1 arriving in the Oct 3 file is past that
    tiny.clicks("2026-10-03",
                click("old", "a1", "app_opened", "2026-10-01T12:00:00Z",
                      received="2026-10-01T12:00:01Z"))
    con, stats, _ = load(tiny, "clickstream")
    assert quarantined(con, "clickstream")[0][2] == (
        "arrived too late: 2 days after its event day (late_days is 1)")
    assert stats[D3].rows_quarantined == 1 and stats[D1].rows_read == 0


def test_clock_skewed_client_time_falls_back_to_received_time(tiny: TinyProject) -> None:
    tiny.clicks("2026-10-01",
                click("skew", "a1", "app_opened", "2019-03-01T08:00:00Z",
                      received="2026-10-01T08:00:02Z"),
                click("ok", "a1", "app_opened", "2026-10-01T07:59:00Z",
                      received="2026-10-01T08:00:02Z"))
    con, stats, _ = load(tiny, "clickstream")
    got = con.execute("select event_id, event_ts, clock_skew_corrected from raw_clickstream "
                      "order by event_id").fetchall()
    assert got == [("ok", dt.datetime(2026, 10, 1, 7, 59), False),
                   ("skew", dt.datetime(2026, 10, 1, 8, 0, 2), True)]
    assert stats[D1].clock_skew_corrected == 1


def test_implausible_timestamp_in_the_future_is_quarantined(tiny: TinyProject) -> None:
    tiny.bookings("2026-10-01", "b1,c1,s1,Berlin,hair,2026-10-05 10:00:00,45.00,EUR,created,,,,"
                  "2031-01-01 10:00:00")
    con, stats, _ = load(tiny, "bookings")
    assert quarantined(con, "bookings")[0][2] == (
        "implausible timestamp: 2031-01-01 09:00:00 UTC in a file exported on 2026-10-01")


def test_csv_naive_times_are_local_time_of_the_configured_zone(tiny: TinyProject) -> None:
    # bookings are exported in Europe/Berlin local time: 10:00 CEST = 08:00 UTC, and on
    # 2026-10-25 (after the clocks go back) 10:00 CET = 09:00 UTC
    tiny.bookings("2026-10-01", "b1,c1,s1,Berlin,hair,2026-10-05 10:00:00,45.00,EUR,created,,,,"
                  "2026-10-01 10:00:00")
    tiny.bookings("2026-10-25", "b2,c1,s1,Berlin,hair,2026-10-28 10:00:00,45.00,EUR,created,,,,"
                  "2026-10-25 10:00:00")
    con, _, _ = load(tiny, "bookings", D1, dt.date(2026, 10, 25))
    got = con.execute("select booking_id, event_ts from raw_bookings order by 1").fetchall()
    assert got == [("b1", dt.datetime(2026, 10, 1, 8)), ("b2", dt.datetime(2026, 10, 25, 9))]


def test_csv_wrong_field_count_negative_amount_and_bad_number(tiny: TinyProject) -> None:
    tiny.payments("2026-10-01",
                  "p1,b1,45.00,EUR,card,initiated,,2026-10-01T08:00:00Z",
                  "p2,b1,45.00,EUR,card,succeeded,2026-10-01T08:01:00Z",
                  "p3,b2,-5.00,EUR,card,initiated,,2026-10-01T08:00:00Z",
                  "p4,b3,abc,EUR,card,initiated,,2026-10-01T08:00:00Z",
                  '"p5",b4,"45.00",EUR,paypal,failed,"declined, try again",2026-10-01T08:00:00Z')
    con, stats, _ = load(tiny, "payments")
    assert [r[2] for r in quarantined(con, "payments")] == [
        "malformed CSV row: expected 8 fields, got 7",
        "amount below minimum 0: -5.00",
        "not a number in amount: abc"]
    assert con.execute("select payment_id, failure_reason from raw_payments order by 1"
                       ).fetchall() == [("p1", None), ("p5", "declined, try again")]
    assert quarantined(con, "payments")[0][0] == 3  # line 3 (the header is line 1)
    assert stats[D1].reconciles


def test_csv_header_missing_a_column_quarantines_rows_with_the_reason(tiny: TinyProject) -> None:
    path = tiny.root / "raw" / "payments" / "2026-10-01.csv"
    path.write_text("payment_id,booking_id,amount,currency,method,status,created_at\n"
                    "p1,b1,45.00,EUR,card,initiated,2026-10-01T08:00:00Z\n")
    con, stats, _ = load(tiny, "payments")
    assert quarantined(con, "payments") == [
        (2, "rejected", "file header lacks column(s): failure_reason")]


def test_rerunning_a_partition_replaces_it(tiny: TinyProject) -> None:
    tiny.clicks("2026-10-01", click("m1", "a1", "app_opened", "2026-10-01T08:00:00Z"),
                "garbage")
    cfg = load_config(tiny.config)
    con = duckdb.connect()
    for _ in range(3):
        ingest.load_range(con, cfg.sources["clickstream"], D1, D1)
    assert con.execute("select count(*) from raw_clickstream").fetchone() == (1,)
    assert con.execute("select count(*) from quarantine").fetchone() == (1,)
    assert con.execute("select count(*) from ingest_reconciliation").fetchone() == (1,)
    assert ingest.reconciliation_problems(con, cfg.sources["clickstream"]) == []


def test_reconciliation_check_catches_a_lost_row(tiny: TinyProject) -> None:
    tiny.clicks("2026-10-01", click("m1", "a1", "app_opened", "2026-10-01T08:00:00Z"),
                click("m2", "a1", "app_opened", "2026-10-01T08:01:00Z"))
    con, _, cfg = load(tiny, "clickstream", D1, D1)
    con.execute("delete from raw_clickstream where event_id = 'm2'")
    problems = ingest.reconciliation_problems(con, cfg.sources["clickstream"])
    assert problems == ["clickstream 2026-10-01: recorded loaded/quarantined/duplicates 2/0/0 "
                        "but tables hold 1/0/0"]


def test_stitching_links_anonymous_browsing_to_the_customer(tiny: TinyProject) -> None:
    tiny.clicks("2026-10-01",
                click("m1", "anon-1", "app_installed", "2026-10-01T08:00:00Z",
                      medium="paid_social"),
                click("m2", "anon-1", "service_viewed", "2026-10-01T08:02:00Z"),
                click("m3", "anon-1", "logged_in", "2026-10-01T08:05:00Z", user="cust-9"),
                click("m4", "anon-2", "app_opened", "2026-10-01T09:00:00Z", platform="ios"))
    tiny.bookings("2026-10-01", "b1,cust-9,s1,Berlin,hair,2026-10-05 10:00:00,45.00,EUR,"
                  "created,,,,2026-10-01 10:06:00")
    tiny.payments("2026-10-01", "p1,b1,45.00,EUR,card,succeeded,,2026-10-01T08:07:00Z",
                  "p9,b404,45.00,EUR,card,succeeded,,2026-10-01T08:07:00Z")
    cfg = load_config(tiny.config)
    con = duckdb.connect()
    for name in ("clickstream", "bookings", "payments"):
        ingest.load_range(con, cfg.sources[name], D1, D1)
    stats = build_events(con, cfg)
    rows = con.execute("select event_id, customer_id, platform, channel from events "
                       "order by event_ts, event_id").fetchall()
    assert rows == [
        ("clickstream:m1", "cust-9", "android", "paid_social"),
        ("clickstream:m2", "cust-9", "android", "organic"),
        ("clickstream:m3", "cust-9", "android", "organic"),
        ("bookings:b1:created", "cust-9", "android", None),
        ("payments:p1:succeeded", "cust-9", "android", None),
        ("payments:p9:succeeded", None, None, None),
        ("clickstream:m4", "anon:anon-2", "ios", "organic"),
    ]
    assert (stats.events, stats.customers, stats.identified_customers) == (7, 2, 1)
    assert (stats.anonymous_ids_linked, stats.without_customer) == (1, 1)


def test_carry_forward_takes_the_latest_value_at_or_before_else_the_first(
        tiny: TinyProject) -> None:
    # the bookings export writes local time (Europe/Berlin, +02:00 in October): 10:00 there
    # is 08:00 UTC. cust-7's platform, worked out by hand from the rule (transforms/events.py),
    # in UTC: b0 at 08:00 comes before any click, so it takes the first value (m1's ios); b2
    # at 09:30 the latest at or before it (m1, ios); b1 at 10:00 ties with m3 (web) and m4
    # (android) at 10:00, which are "at or before" it, and of those the larger event id wins
    # (m4: android)
    tiny.clicks("2026-10-01",
                click("m1", "anon-7", "app_opened", "2026-10-01T09:00:00Z", user="cust-7",
                      platform="ios"),
                click("m3", "anon-7", "service_viewed", "2026-10-01T10:00:00Z", platform="web"),
                click("m4", "anon-7", "service_viewed", "2026-10-01T10:00:00Z",
                      platform="android"),
                click("m5", "anon-8", "app_opened", "2026-10-01T11:00:00Z", platform="web"))
    tiny.bookings("2026-10-01",
                  "b0,cust-7,s1,Berlin,hair,2026-10-05 10:00:00,45.00,EUR,created,,,,"
                  "2026-10-01 10:00:00",
                  "b2,cust-7,s1,Berlin,hair,2026-10-06 10:00:00,45.00,EUR,created,,,,"
                  "2026-10-01 11:30:00",
                  "b1,cust-7,s1,Berlin,hair,2026-10-07 10:00:00,45.00,EUR,created,,,,"
                  "2026-10-01 12:00:00",
                  # a customer with no click at all has nothing to carry
                  "b9,cust-9,s1,Berlin,hair,2026-10-07 10:00:00,45.00,EUR,created,,,,"
                  "2026-10-01 10:00:00")
    cfg = load_config(tiny.config)
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    for name in ("clickstream", "bookings", "payments"):
        ingest.load_range(con, cfg.sources[name], D1, D1)
    build_events(con, cfg)
    rows = dict(con.execute("select event_id, platform from events").fetchall())
    assert rows == {
        "clickstream:m1": "ios", "clickstream:m3": "web", "clickstream:m4": "android",
        "clickstream:m5": "web", "bookings:b0:created": "ios", "bookings:b2:created": "ios",
        "bookings:b1:created": "android", "bookings:b9:created": None}
