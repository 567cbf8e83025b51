"""The journey map per period (transforms/journey_map_tables.py): `journey_map_funnel` and the
`period_days` of `stage_touchpoint_segments`, `stage_pain_segments`, `stage_metric_segments`
and `stage_exit_events`, on a hand-built `events` table with the sample's journey map (14-day
conversion window). Expected values are worked out by hand below.

T0 = Fri 1 Mar 2024; a late unmapped event of `x` on Mon 15 Apr 00:00 ends the data, so the
data spans 1 Mar – 15 Apr (46 days) and the period lengths are 7, 28 and 46 (the run's default
7, the choices shorter than the data, the whole data). A cohort is complete when its day + 1
day + 14 days <= 15 Apr 00:00, i.e. up to 31 Mar; the latest complete cohort with journeys is
25 Mar (a3). So the 7-day period is 19–25 Mar, the 28-day one 27 Feb – 25 Mar (2024 is a leap
year) and the 46-day one 9 Feb – 25 Mar (the last two hold the same journeys).

- a1 ios, 1 Mar: installs, views a service -> furthest Consideration (last: service_viewed).
- a2 android, 20 Mar: installs, views a service, books b2 (30), a card payment fails
  (card_declined), the retry succeeds -> furthest Purchase (last: payment_succeeded).
- a3 android, 25 Mar: opens the app (returning) -> furthest Discovery (last: app_opened).
- a4 ios, 10 Apr: installs -> its window (to 24 Apr) is still open: in no period.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.events import DAY, HOUR, T0, E
from tests.transforms.test_journey_map_groups import build_journey_map
from transforms.journey_map_tables import (
    period_windows,
)

MAR20 = T0 + 19 * DAY
MAR25 = T0 + 24 * DAY
APR10 = T0 + 40 * DAY


def _rows():
    return [
        E("a1", "app_installed", T0, platform="ios", screen="Store"),
        E("a1", "service_viewed", T0 + HOUR, platform="ios", screen="Svc"),
        E("a2", "app_installed", MAR20, platform="android", screen="Store"),
        E("a2", "service_viewed", MAR20 + HOUR, platform="android", screen="Svc"),
        E("a2", "booking_created", MAR20 + 2 * HOUR, booking_id="b2", amount=30,
          platform="android"),
        E("a2", "payment_failed", MAR20 + 3 * HOUR, booking_id="b2", payment_id="p1",
          method="card", platform="android", failure_reason="card_declined"),
        E("a2", "payment_succeeded", MAR20 + 4 * HOUR, booking_id="b2", payment_id="p2",
          method="card", platform="android"),
        E("a3", "app_opened", MAR25, platform="android", screen="Home"),
        E("a4", "app_installed", APR10, platform="ios", screen="Store"),
        E("x", "favourite_removed", T0 + 45 * DAY),
    ]


@pytest.fixture
def built(con, jmap):
    return build_journey_map(con, jmap, _rows())


def test_periods_end_at_the_latest_complete_cohort(built):
    assert period_windows(built) == [
        (7, dt.date(2024, 3, 19), dt.date(2024, 3, 25)),
        (28, dt.date(2024, 2, 27), dt.date(2024, 3, 25)),
        (46, dt.date(2024, 2, 9), dt.date(2024, 3, 25)),
    ]


def test_funnel_per_period_leaves_open_windows_out(built):
    con = built

    def funnel(days, segment="all", value="all"):
        return con.execute(
            "select stage, entered, dropoff_count, dropout_rate from journey_map_funnel "
            "where period_days = ? and segment = ? and segment_value = ? "
            "and stage_index <= 4 order by stage_index", [days, segment, value]).fetchall()

    # 19–25 Mar: a2, a3 enter; a3 stops at Discovery; a2 reaches Purchase
    assert funnel(7) == [("Discovery", 2, None, None), ("Consideration", 1, 1, 0.5),
                         ("Decision", 1, 0, 0.0), ("Purchase", 1, 0, 0.0)]
    # a1 too (1 Mar); never a4 (window open)
    assert funnel(28) == [("Discovery", 3, None, None),
                          ("Consideration", 2, 1, pytest.approx(1 / 3)),
                          ("Decision", 1, 1, 0.5), ("Purchase", 1, 0, 0.0)]
    assert funnel(46) == funnel(28)
    # the ios persona has no journey in the last 7 days (a4's window is open): no rows
    assert funnel(7, "platform", "ios") == []
    assert funnel(28, "platform", "ios")[:2] == [("Discovery", 1, None, None),
                                                 ("Consideration", 1, 0, 0.0)]
    starts = con.execute("select distinct period_days, period_start, period_end "
                         "from journey_map_funnel order by 1").fetchall()
    assert starts == period_windows(con)


def test_touchpoints_pains_metrics_and_exits_per_period(built):
    con = built
    # Discovery platforms: 7 days a2, a3 android; 28 days a1 ios too (a4 ios never)
    rows = con.execute(
        "select period_days, value, events, share from stage_touchpoint_segments "
        "where segment = 'all' and stage = 'Discovery' and dimension = 'platform' "
        "order by period_days, rank").fetchall()
    assert rows == [(7, "android", 2, 1.0),
                    (28, "android", 2, pytest.approx(2 / 3)), (28, "ios", 1, pytest.approx(1 / 3)),
                    (46, "android", 2, pytest.approx(2 / 3)), (46, "ios", 1, pytest.approx(1 / 3))]
    # a2's declined card: 1 of the 1 journey reaching Purchase in each period
    pains = con.execute(
        "select period_days, customers, share from stage_pain_segments "
        "where segment = 'all' and pain = 'payment_failed' and reason = 'card_declined' "
        "order by 1").fetchall()
    assert pains == [(7, 1, 1.0), (28, 1, 1.0), (46, 1, 1.0)]
    # new customers (installed): 7 days a2; 28 days a1, a2 (a4 is not counted)
    new = con.execute(
        "select period_days, value from stage_metric_segments "
        "where segment = 'all' and metric = 'new_customers' order by 1").fetchall()
    assert new == [(7, 1.0), (28, 2.0), (46, 2.0)]
    failure = con.execute(
        "select period_days, value from stage_metric_segments where segment = 'all' "
        "and metric = 'payment_failure_rate' order by 1").fetchall()
    assert failure == [(7, 0.5), (28, 0.5), (46, 0.5)]  # p1 failed, p2 succeeded
    # the ios persona: metrics in the 28-day period only (a1), none in the 7-day one
    ios = con.execute(
        "select distinct period_days from stage_metric_segments "
        "where segment = 'platform' and segment_value = 'ios' order by 1").fetchall()
    assert ios == [(28,), (46,)]
    exits = con.execute(
        "select period_days, stage, value, journeys, leavers, stage_rank "
        "from stage_exit_events where segment = 'all' and dimension = 'event_name' "
        "order by period_days, stage_index").fetchall()
    assert exits == [
        (7, "Discovery", "app_opened", 1, 1, 1),
        (7, "Purchase", "payment_succeeded", 1, 1, None),
        (28, "Discovery", "app_opened", 1, 1, 1),  # ties on leavers: the earlier stage first
        (28, "Consideration", "service_viewed", 1, 1, 2),
        (28, "Purchase", "payment_succeeded", 1, 1, None),
        (46, "Discovery", "app_opened", 1, 1, 1),
        (46, "Consideration", "service_viewed", 1, 1, 2),
        (46, "Purchase", "payment_succeeded", 1, 1, None),
    ]
