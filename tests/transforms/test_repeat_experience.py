"""Repeat purchase by the experience of the first journey (transforms/repeat_experience.py) on
hand-built `events`; expected counts and p-values are worked out by hand in the comments."""

from __future__ import annotations

import dataclasses
import math

import pytest

from tests.events import DAY, HOUR, T0, E, make_events_table
from transforms.bookings import build_booking_outcomes
from transforms.journeys import build_journeys
from transforms.purchases import build_purchases
from transforms.repeat import build_repeat_purchase
from transforms.repeat_experience import (
    build_repeat_by_experience,
    compare_with_rest,
    two_proportion_test,
)
from transforms.stage_funnels import SIGNIFICANCE_LEVEL
from transforms.stages import build_stage_events

PATH_FULL = "Discovery → Consideration → Decision → Purchase"
PATH_SKIP = "Discovery → Decision → Purchase"


def _book(c, day, booking, *, platform, view=True, fail=False, rating=None):
    """A journey to a paid booking on `day`: open the app, (view a service), book, (a failed
    payment), pay; a review `rating` the next day."""
    t = T0 + day * DAY
    rows = [E(c, "app_opened", t, platform=platform)]
    if view:
        rows.append(E(c, "service_viewed", t + HOUR, platform=platform))
    rows.append(E(c, "booking_created", t + 2 * HOUR, booking_id=booking, platform=platform))
    if fail:
        rows.append(E(c, "payment_failed", t + 3 * HOUR, booking_id=booking,
                      payment_id=f"f{booking}", platform=platform))
    rows.append(E(c, "payment_succeeded", t + 4 * HOUR, booking_id=booking,
                  payment_id=f"p{booking}", platform=platform))
    if rating is not None:
        rows.append(E(c, "booking_reviewed", t + DAY, booking_id=booking, rating=rating))
    return rows


def _events():
    rows = [E("x", "favourite_removed", T0 + 60 * DAY)]  # data end: T0 + 60 days
    # A: a failed payment before the first purchase (day 0), rates it 1; buys again on day 10
    rows += _book("A", 0, "a1", platform="android", fail=True, rating=1)
    rows += _book("A", 10, "a2", platform="android")
    # B: skips Consideration (books without viewing), rates 5, never buys again
    rows += _book("B", 1, "b1", platform="ios", view=False, rating=5)
    # C: no rating; buys again on day 40: 38 days later, outside a 30-day horizon
    rows += _book("C", 2, "c1", platform="android")
    rows += _book("C", 40, "c2", platform="android")
    # D: rates 4; buys again on day 20 after a failed payment, which is not in its first journey
    rows += _book("D", 3, "d1", platform="ios", rating=4)
    rows += _book("D", 20, "d2", platform="ios", fail=True)
    # E: first purchase on day 45: not observed 30 days (45 + 30 > 60); buys again on day 50
    rows += _book("E", 45, "e1", platform="android")
    rows += _book("E", 50, "e2", platform="android")
    return rows


def _build(con, jmap, rows=None):
    make_events_table(con, _events() if rows is None else rows)
    build_stage_events(con, jmap)
    build_purchases(con, jmap)
    build_journeys(con, jmap)
    build_booking_outcomes(con, jmap)
    return build_repeat_by_experience(con, jmap)


def _rows(con, horizon=30):
    return {(r[0], r[1]): r[2:] for r in con.execute(
        "select experience, value, purchasers, customers, repeaters, rest_customers, "
        "rest_repeaters from repeat_by_experience where horizon_days = ?", [horizon]
    ).fetchall()}


def test_first_journey_experiences_count_eligible_customers_and_repeaters(con, jmap):
    jmap = dataclasses.replace(jmap, repeat_horizons=(30,))
    _build(con, jmap)
    got = _rows(con)
    # Observed 30 days: A, B, C, D (E is not). Repeated within 30 days: A (10 d), D (17 d);
    # C's second purchase is 38 days after its first. (purchasers, customers, repeaters,
    # rest customers, rest repeaters)
    assert got[("failed_payment", "yes")] == (1, 1, 1, 3, 1)  # A
    assert got[("failed_payment", "no")] == (4, 3, 1, 1, 1)   # B C D (+ E not observed)
    assert got[("skipped_stage", "yes")] == (1, 1, 0, 3, 2)   # B
    assert got[("skipped_stage", "no")] == (4, 3, 2, 1, 0)    # A C D (+ E)
    assert got[("first_rating", "low (<=2)")] == (1, 1, 1, 3, 1)   # A rated 1
    assert got[("first_rating", "high (>=3)")] == (2, 2, 1, 2, 1)  # B 5, D 4
    assert got[("first_rating", "no rating")] == (2, 1, 0, 3, 2)   # C (+ E)
    # the path stops at the first purchase: A's and D's later bookings are not in it
    assert got[("first_path", PATH_FULL)] == (4, 3, 2, 1, 0)  # A C D (+ E)
    assert got[("first_path", PATH_SKIP)] == (1, 1, 0, 3, 2)  # B
    assert got[("platform", "android")] == (3, 2, 1, 2, 1)   # A C (+ E)
    assert got[("platform", "ios")] == (2, 2, 1, 2, 1)       # B D
    types = dict(con.execute("select distinct experience, experience_type "
                             "from repeat_by_experience").fetchall())
    assert types["failed_payment"] == "journey" and types["platform"] == "segment"


def test_same_customers_and_repeats_as_repeat_purchase(con, jmap):
    jmap = dataclasses.replace(jmap, repeat_horizons=(7, 30))
    _build(con, jmap)
    build_repeat_purchase(con, jmap)
    overall = dict((h, (e, r)) for h, e, r in con.execute(
        "select horizon_days, eligible, repeated_within from repeat_purchase "
        "where group_name = 'all'").fetchall())
    # 7 days: observed A B C D and E (45 + 7 <= 60) = 5; bought again within 7 days: only E
    # (after 5 days; A after 10, D after 17, C after 38) = 1. 30 days: A B C D; A and D = 2.
    assert overall == {7: (5, 1), 30: (4, 2)}
    totals = con.execute("select experience, horizon_days, sum(customers), sum(repeaters) "
                         "from repeat_by_experience group by all").fetchall()
    for experience, h, customers, repeaters in totals:
        assert (customers, repeaters) == overall[h], experience


def test_small_groups_use_fishers_exact_test(con, jmap):
    jmap = dataclasses.replace(jmap, repeat_horizons=(30,))
    _build(con, jmap)
    p, test, significant = con.execute(
        "select p_value, test, significant from repeat_by_experience "
        "where experience = 'failed_payment' and value = 'yes'").fetchone()
    # 1 of 1 against 1 of 3; 2 repeaters among 4: P(X = 1) = C(2,1) C(2,0) / C(4,1) = 1/2,
    # P(X = 0) = 1/2, both as likely as the table seen -> two-sided p = 1
    assert test == "fisher exact" and p == pytest.approx(1.0) and not significant


def test_two_proportion_z_test_worked_by_hand():
    # 10 / 50 against 30 / 60: pooled share 40 / 110
    pooled = 40 / 110
    se = math.sqrt(pooled * (1 - pooled) * (1 / 50 + 1 / 60))
    z = (10 / 50 - 30 / 60) / se
    p = math.erfc(abs(z) / math.sqrt(2))
    assert two_proportion_test(10, 50, 30, 60) == (pytest.approx(z), pytest.approx(p))
    got_z, got_p, test = compare_with_rest(10, 50, 30, 60)
    assert test == "z-test" and got_p == pytest.approx(p) and got_z == pytest.approx(z)
    assert got_p < SIGNIFICANCE_LEVEL
    # no variance or an empty group: no test
    assert two_proportion_test(0, 10, 0, 20) == (None, None)
    assert two_proportion_test(3, 3, 5, 5) == (None, None)
    assert compare_with_rest(1, 0, 2, 5) == (None, None, None)


def test_fisher_exact_worked_by_hand():
    # 1 repeater of 35 against 52 of 227: 53 repeaters among 262. Two-sided p = the sum of the
    # hypergeometric probabilities of every split no more likely than the one seen.
    def prob(k):
        return math.comb(53, k) * math.comb(209, 35 - k) / math.comb(262, 35)

    seen = prob(1)
    expected = sum(prob(k) for k in range(0, 36) if prob(k) <= seen * (1 + 1e-7))
    z, p, test = compare_with_rest(1, 35, 52, 227)
    assert test == "fisher exact" and p == pytest.approx(expected) and z < 0
    assert p < SIGNIFICANCE_LEVEL


def test_experiences_the_data_cannot_tell_are_left_out(con, jmap):
    # no ratings rule, no payment_failed role, and no failed payment / rating events anyway
    jmap = dataclasses.replace(jmap, repeat_horizons=(30,), low_rating_max=None,
                               metric_events={k: v for k, v in jmap.metric_events.items()
                                              if k != "payment_failed"})
    _build(con, jmap)
    experiences = {r[0] for r in con.execute(
        "select distinct experience from repeat_by_experience").fetchall()}
    assert "first_rating" not in experiences and "failed_payment" not in experiences
    assert {"skipped_stage", "first_path", "platform", "channel"} <= experiences


def test_without_journeys_the_table_is_skipped(con, jmap):
    make_events_table(con, _events())
    build_purchases(con, jmap)
    assert build_repeat_by_experience(con, jmap) == 0
    reason = con.execute("select reason from skipped_tables "
                         "where table_name = 'repeat_by_experience'").fetchone()
    assert reason is not None and "journeys" in reason[0]
    assert not con.execute("select count(*) from information_schema.tables "
                           "where table_name = 'repeat_by_experience'").fetchone()[0]
