"""Bookings, payments, daily anomalies, repeat purchase, retention, lifecycle and the measured
journey map (transforms/bookings.py, daily_rates.py, repeat.py, journey_map_tables.py) on
hand-built `events` tables; expected values are worked out by hand in the comments."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from tests.events import DAY, HOUR, T0, E, make_events_table
from transforms.bookings import build_booking_funnel, build_booking_outcomes, build_payment_failures
from transforms.daily_rates import build_daily_stage_rates
from transforms.journey_findings import build_findings
from transforms.journey_map_tables import (
    build_stage_metrics,
    build_stage_pains,
    build_stage_touchpoints,
)
from transforms.journeys import build_journeys
from transforms.purchases import build_purchases
from transforms.repeat import build_repeat_purchase, build_retention
from transforms.stage_funnels import build_funnels
from transforms.stages import build_stage_events


def _pay(c, name, ts, booking, payment, **cols):
    return E(c, name, ts, booking_id=booking, payment_id=payment, **cols)


def _booking_rows():
    return [
        E("c1", "app_opened", T0, platform="android"),
        E("c1", "booking_created", T0 + HOUR, booking_id="b1", amount=40, platform="android",
          service_category="nails"),
        # b1: a card payment fails, the retry succeeds -> paid (no payment dropout)
        _pay("c1", "payment_failed", T0 + 2 * HOUR, "b1", "p1", method="card",
             platform="android", failure_reason="card_declined"),
        _pay("c1", "payment_succeeded", T0 + 3 * HOUR, "b1", "p2", method="card",
             platform="android"),
        E("c1", "booking_completed", T0 + 2 * DAY, booking_id="b1"),
        E("c1", "booking_reviewed", T0 + 2 * DAY + HOUR, booking_id="b1", rating=1,
          complaint="late"),
        # b2: initiated, failed, never paid -> payment dropout
        E("c2", "booking_created", T0 + HOUR, booking_id="b2", amount=60, platform="android"),
        _pay("c2", "payment_initiated", T0 + 2 * HOUR, "b2", "p3", method="card",
             platform="android"),
        _pay("c2", "payment_failed", T0 + 2 * HOUR, "b2", "p3", method="card",
             platform="android", failure_reason="card_declined"),
        # b3: created, no payment at all
        E("c3", "booking_created", T0 + HOUR, booking_id="b3", amount=20, platform="ios"),
        E("x", "favourite_removed", T0 + 60 * DAY),
    ]


def test_booking_funnel_retry_counts_as_paid(con, jmap):
    make_events_table(con, _booking_rows())
    build_booking_outcomes(con, jmap)
    build_booking_funnel(con, jmap)
    rows = con.execute(
        "select step, entered, dropoff_count, payment_started, payment_not_paid, "
        "payment_dropout_rate from booking_funnel where segment = 'all' order by step_index"
    ).fetchall()
    # created b1, b2, b3 = 3; paid only b1 (failed then succeeded) = 1; completed b1 = 1.
    # payment started: b1, b2 = 2; started but never paid: b2 = 1 -> dropout 0.5
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("booking created", 3, None), ("payment succeeded", 1, 2), ("booking completed", 1, 0)]
    assert {r[3:] for r in rows} == {(2, 1, 0.5)}
    b1 = con.execute("select paid, purchase, payment_attempts, failed_attempts, rating, "
                     "complaint from booking_outcomes where booking_id = 'b1'").fetchone()
    assert b1 == (True, True, 2, 1, 1, "late")
    android = con.execute("select entered from booking_funnel where segment = 'platform' and "
                          "segment_value = 'android' order by step_index").fetchall()
    assert [r[0] for r in android] == [2, 1, 1]  # b1, b2 booked on android


def test_payment_failures_by_reason_platform_method_day(con, jmap):
    make_events_table(con, _booking_rows())
    build_payment_failures(con, jmap)
    rows = con.execute("select event_date, platform, method, failure_reason, failures, "
                       "attempts, failure_rate from payment_failures").fetchall()
    # attempts (outcomes) on android/card on day 0: p1 failed, p2 succeeded, p3 failed = 3
    assert rows == [(T0.date(), "android", "card", "card_declined", 2, 3, pytest.approx(2 / 3))]


def test_payment_attempts_include_cells_without_failures(con, jmap):
    rows = _booking_rows() + [
        # day 0, web + klarna: one success, no failure (same day as android + card's failures)
        _pay("c5", "payment_succeeded", T0 + 4 * HOUR, "b5", "p5", method="klarna",
             platform="web"),
        # day 5, ios + apple_pay: one success, on a day without any failure at all
        _pay("c4", "payment_succeeded", T0 + 5 * DAY + HOUR, "b4", "p4", method="apple_pay",
             platform="ios"),
    ]
    make_events_table(con, rows)
    counts = build_payment_failures(con, jmap)
    got = con.execute("select event_date, platform, method, attempts, failures, failure_rate "
                      "from payment_attempts").fetchall()
    # android + card, day 0: p1 failed, p2 succeeded, p3 failed (p3's `initiated` is not an
    # attempt) -> 3 attempts, 2 failures; the two zero-failure cells are rows with rate 0
    day0, day5 = T0.date(), (T0 + 5 * DAY).date()
    assert got == [(day0, "android", "card", 3, 2, pytest.approx(2 / 3)),
                   (day0, "web", "klarna", 1, 0, 0.0),
                   (day5, "ios", "apple_pay", 1, 0, 0.0)]
    assert counts == {"payment_attempts": 3, "payment_failures": 1}
    # payment_failures takes its attempts from the same cells
    assert con.execute("select attempts, total_failure_rate from payment_failures").fetchall() \
        == [(3, pytest.approx(2 / 3))]


def test_refund_cancels_purchase_and_repeat_horizons(con, jmap):
    jmap = dataclasses.replace(jmap, repeat_horizons=(30, 60, 90))  # worked out for these

    def buy(c, day, booking, rating=None):
        rows = [_pay(c, "payment_succeeded", T0 + day * DAY, booking, "p" + booking)]
        if rating is not None:
            rows.append(E(c, "booking_reviewed", T0 + day * DAY + HOUR, booking_id=booking,
                          rating=rating))
        return rows

    rows = [E("x", "favourite_removed", T0 + 100 * DAY)]  # data end: T0 + 100 d
    rows += buy("A", 0, "a1", rating=1) + buy("A", 20, "a2")     # repeat after 20 d
    rows += buy("B", 0, "b1", rating=5) + buy("B", 45, "b2")     # repeat after 45 d
    rows += buy("C", 50, "c1") + buy("C", 55, "c2")              # repeat after 5 d, late start
    rows += buy("D", 0, "d1") + buy("D", 80, "d2")               # d1 refunded: one purchase
    rows.append(_pay("D", "payment_refunded", T0 + 2 * DAY, "d1", "pd1"))
    rows += buy("E", 0, "e1")                                    # never again
    make_events_table(con, rows)
    build_purchases(con, jmap)
    build_booking_outcomes(con, jmap)
    build_repeat_purchase(con, jmap)
    got = {r[0]: r[1:] for r in con.execute(
        "select horizon_days, purchasers, repeat_purchasers, eligible, repeated_within, "
        "repeat_rate, median_days_to_second from repeat_purchase where group_name = 'all'"
    ).fetchall()}
    # purchasers A B C D E = 5 (D's refunded d1 does not count; d2 at 80 d does), repeat: A B C
    # 30 d: observed >= 30 d after the first purchase: A B C(50+30 <= 100) E; D (80) not -> 4;
    #       repeated within 30 d: A (20), C (5) -> 2/4
    # 60 d: A B E (C: 50+60 > 100) -> 3; within 60 d: A, B -> 2/3
    # 90 d: A B E (0+90 <= 100) -> 3; A, B -> 2/3.  median days to second of 20, 45, 5 = 20
    assert got[30] == (5, 3, 4, 2, 0.5, 20.0)
    assert got[60] == (5, 3, 3, 2, pytest.approx(2 / 3), 20.0)
    assert got[90] == (5, 3, 3, 2, pytest.approx(2 / 3), 20.0)
    by_rating = {r[0]: r[1:] for r in con.execute(
        "select group_value, eligible, repeated_within from repeat_purchase "
        "where group_name = 'first_rating' and horizon_days = 60").fetchall()}
    # A rated its first booking 1 (low) and came back; B rated 5 (high) and came back
    assert by_rating["low (<=2)"] == (1, 1) and by_rating["high (>=3)"] == (1, 1)
    assert by_rating["no rating"] == (1, 0)  # E (C and D are not observed 60 days)
    freq = con.execute("select purchases, customers, share from purchase_frequency").fetchall()
    assert freq == [(1, 2, 0.4), (2, 3, 0.6)]


def _monthly_rows():
    d = dt.datetime
    rows = [E("x", "favourite_removed", d(2024, 4, 15))]  # data end: mid April
    for c, when in (("P1", d(2024, 1, 10)), ("P1", d(2024, 3, 5)),
                    ("P2", d(2024, 1, 12)),
                    ("P3", d(2024, 1, 20)), ("P3", d(2024, 2, 3)),
                    ("P4", d(2024, 3, 9))):
        rows.append(_pay(c, "payment_succeeded", when, f"{c}-{when:%m%d}", f"p{c}{when:%m%d}"))
    return rows


def test_retention_on_vs_on_or_after(con, jmap):
    make_events_table(con, _monthly_rows())
    build_purchases(con, jmap)
    build_retention(con, jmap)
    rows = con.execute(
        "select period_number, cohort_size, customers_on, customers_on_or_after, complete "
        "from retention_cohorts where period_type = 'month' and cohort_start = '2024-01-01' "
        "order by period_number").fetchall()
    # January cohort P1 P2 P3. Feb: on = P3; on or after = P3 + P1 (bought again in March).
    # Mar: on = P1 = on or after. Apr: nobody, and April has not ended by 15 April.
    assert rows == [(0, 3, 3, 3, True), (1, 3, 1, 2, True), (2, 3, 1, 1, True),
                    (3, 3, 0, 0, False)]


def test_lifecycle_classes(con, jmap):
    make_events_table(con, _monthly_rows())
    build_purchases(con, jmap)
    build_retention(con, jmap)
    got = {(str(r[0]), r[1]): r[2] for r in con.execute(
        "select period_start, status, customers from lifecycle where period_type = 'month' "
        "and customers > 0").fetchall()}
    # Jan: P1 P2 P3 new. Feb: P3 returning; P1 P2 dormant. Mar: P1 resurrecting (not in Feb,
    # bought before), P4 new, P3 dormant. Apr: P1 and P4 dormant.
    assert got == {("2024-01-01", "new"): 3, ("2024-02-01", "returning"): 1,
                   ("2024-02-01", "dormant"): 2, ("2024-03-01", "resurrecting"): 1,
                   ("2024-03-01", "new"): 1, ("2024-03-01", "dormant"): 1,
                   ("2024-04-01", "dormant"): 2}


def test_daily_rates_mark_the_days_of_the_findings(con, jmap):
    # 20 days x 20 customers: open, book, pay. 2 payments fail per day, 14 on day 10 (outage).
    rows = [E("x", "favourite_removed", T0 + 60 * DAY)]
    for day in range(20):
        fails = 14 if day == 10 else 2
        for i in range(20):
            c, t = f"d{day}c{i}", T0 + day * DAY + i * 60 * dt.timedelta(seconds=1)
            rows += [E(c, "app_opened", t),
                     E(c, "booking_created", t + HOUR, booking_id=f"{c}b"),
                     _pay(c, "payment_failed" if i < fails else "payment_succeeded",
                          t + 2 * HOUR, f"{c}b", f"{c}p", failure_reason="timeout")]
    make_events_table(con, rows)
    build_stage_events(con, jmap)
    build_purchases(con, jmap)
    build_journeys(con, jmap)
    build_payment_failures(con, jmap)  # payment_attempts, which the failure rate reads
    build_findings(con, jmap)
    build_daily_stage_rates(con, jmap)
    day10 = (T0 + 10 * DAY).date()
    # day 10: 6 of 20 paid against 18 of 20 on each other day; Fisher's exact test of 6/20
    # against 342/380 gives p ~ 1e-9, far below any scan correction: one finding of
    # everyone on the payments, the day (or hours of it), and the day's rows point at it
    found = con.execute("select rank, from_step, to_step, segment_column, start_day, end_day, "
                        "n, successes from findings order by rank").fetchall()
    pay = [r for r in found if r[1] == "payment attempt"]
    assert [(r[3], r[4], r[5], r[6], r[7]) for r in pay] == [(None, day10, day10, 20, 6)]
    flagged = con.execute("select event_date, stage, failure_finding from daily_stage_rates "
                          "where failure_finding is not null").fetchall()
    assert flagged == [(day10, "Purchase", pay[0][0])]
    # Decision -> Purchase is the same story (failed customers never pay): its finding, if
    # any, covers day 10 only
    dropout = con.execute("select distinct event_date from daily_stage_rates "
                          "where dropout_finding is not null").fetchall()
    assert dropout in ([], [(day10,)])


def _build_stage_metric_inputs(con, jmap):
    """Every table `stage_metrics` reads, by the real transforms."""
    build_stage_events(con, jmap)
    build_purchases(con, jmap)
    build_journeys(con, jmap)
    build_funnels(con, jmap)
    build_booking_outcomes(con, jmap)
    build_payment_failures(con, jmap)
    build_repeat_purchase(con, jmap)


def test_touchpoints_pains_and_metrics(con, jmap):
    make_events_table(con, _booking_rows())
    _build_stage_metric_inputs(con, jmap)
    build_stage_touchpoints(con, jmap)
    build_stage_pains(con, jmap)
    build_stage_metrics(con, jmap)
    pains = {(r[0], r[1], r[2]): r[3] for r in con.execute(
        "select stage, pain, reason, events from stage_pains").fetchall()}
    # two declined card payments (b1's first attempt and b2), one low rating, one complaint
    assert pains[("Purchase", "payment_failed", "card_declined")] == 2
    assert pains[("Service", "low_rating", "1")] == 1
    assert pains[("Service", "complaint", "late")] == 1
    methods = con.execute("select value, events from stage_touchpoints where stage = "
                          "'Purchase' and dimension = 'method'").fetchall()
    assert methods == [("card", 1)]  # only b1's success maps to Purchase
    metric = {(r[0], r[1], r[2]): r[3] for r in con.execute(
        "select metric, segment, segment_value, value from stage_metrics").fetchall()}
    assert metric[("payment_dropout_rate", "all", "all")] == 0.5  # b2 of b1, b2
    assert metric[("average_basket", "all", "all")] == 40.0  # (40 + 60 + 20) / 3
    assert metric[("payment_failure_rate", "all", "all")] == pytest.approx(2 / 3)
    assert metric[("average_rating", "all", "all")] == 1.0


def test_payment_failure_rate_counts_attempts_on_days_without_failures(con, jmap):
    # `payment_failures` only holds day x platform x method cells with a failure; the overall
    # failure rate must still count the successful attempts of the other cells.
    rows = _booking_rows() + [
        # b4: an ios apple_pay success on a day (T0 + 5 days) without any failure
        E("c4", "booking_created", T0 + 5 * DAY, booking_id="b4", amount=30, platform="ios"),
        _pay("c4", "payment_succeeded", T0 + 5 * DAY + HOUR, "b4", "p4", method="apple_pay",
             platform="ios"),
    ]
    make_events_table(con, rows)
    _build_stage_metric_inputs(con, jmap)
    build_stage_metrics(con, jmap)
    metric = {(r[0], r[1], r[2]): r[3] for r in con.execute(
        "select metric, segment, segment_value, value from stage_metrics "
        "where metric = 'payment_failure_rate'").fetchall()}
    # attempts: p1 failed, p2 succeeded (b1), p3 failed (b2), p4 succeeded (b4) -> 2 / 4
    assert metric[("payment_failure_rate", "all", "all")] == pytest.approx(2 / 4)
    # android: p1, p2, p3 -> 2 / 3; ios: p4 -> 0; card: 2 / 3; apple_pay: 0
    assert metric[("payment_failure_rate", "platform", "android")] == pytest.approx(2 / 3)
    assert metric[("payment_failure_rate", "platform", "ios")] == 0.0
    assert metric[("payment_failure_rate", "method", "card")] == pytest.approx(2 / 3)
    assert metric[("payment_failure_rate", "method", "apple_pay")] == 0.0


def test_payment_findings_break_down_by_the_maps_payment_segments(con, jmap):
    # 20 days x 21 customers paying at salons s0, s1, s2 in turn; 4 of s1's 7 payments a day
    # fail (customers 1, 4, 7, 10), none of the others' (every day alike: no window, a segment).
    # Broken down by salon_id, salon s1 is the finding; by the sample's platform and method
    # (every payment: android, card) there is no segment to tell apart
    rows = [E("x", "favourite_removed", T0 + 60 * DAY)]
    for day in range(20):
        for i in range(21):
            salon = f"s{i % 3}"
            c, t = f"d{day}c{i}", T0 + day * DAY + i * 60 * dt.timedelta(seconds=1)
            failed = i in (1, 4, 7, 10)
            rows += [E(c, "app_opened", t, platform="android"),
                     E(c, "booking_created", t + HOUR, booking_id=f"{c}b", salon_id=salon),
                     _pay(c, "payment_failed" if failed else "payment_succeeded",
                          t + 2 * HOUR, f"{c}b", f"{c}p", salon_id=salon, method="card",
                          platform="android")]
    make_events_table(con, rows)
    build_stage_events(con, jmap)
    build_purchases(con, jmap)
    build_journeys(con, jmap)
    fails = con.execute("select salon_id, count(*) filter (where event_name = 'payment_failed'),"
                        " count(*) from events where event_name like 'payment_%' "
                        "group by salon_id order by salon_id").fetchall()
    assert [f[0] for f in fails] == ["s0", "s1", "s2"] and fails[0][1] == fails[2][1] == 0
    by_salon = dataclasses.replace(jmap, payment_segments=("salon_id",))
    build_findings(con, by_salon)
    found = con.execute("select segment_column, segment_value, kind, n, successes from findings "
                        "where from_step = 'payment attempt'").fetchall()
    s1_fails, s1_n = fails[1][1], fails[1][2]
    assert found == [("salon_id", "s1", "segment", s1_n, s1_n - s1_fails)]
    build_findings(con, jmap)  # platform and method: one value each, nothing to compare
    assert con.execute("select count(*) from findings where from_step = 'payment attempt' "
                       "and segment_column is not null").fetchone()[0] == 0
