"""The journey map per persona (transforms/journey_map_tables.py): `stage_touchpoint_segments`,
`stage_pain_segments`, `stage_metric_segments` and `stage_exit_events`, on a hand-built
`events` table with the sample's journey map. Expected values are worked out by hand below.

The customers (T0 = Fri 1 Mar 2024; a late unmapped event of `x` makes every journey complete):

- c1 ios: installs (screen Store), views a service, books b1 (40), a card payment fails
  (card_declined), the retry succeeds -> furthest Purchase, last event payment_succeeded.
- c2 android: installs (Store), books b2 (20), pays by paypal, served -> furthest Service, last
  event booking_completed.
- c3 android: opens the app (Home) -> furthest Discovery (returning: no install).
- c4 ios: installs (Store), books b4 (60), never pays -> furthest Decision, last event
  booking_created, last screen Store (the booking has no screen).
- c5 android: installs (Store), views a service (Svc) -> furthest Consideration.

Every journey enters on 1–4 Mar and the data ends on 30 Apr, so every period (7, 28 and the
whole 61 days, up to the latest complete cohort, 4 Mar) holds all five: the per-period rows
are the same in each; `ALL_DAYS` is read below. tests/transforms/test_journey_map_periods.py
has periods that differ.
"""

from __future__ import annotations

import pytest

from tests.events import DAY, HOUR, T0, E, make_events_table
from tests.transforms.test_metrics import _build_stage_metric_inputs
from transforms.journey_map_tables import (
    build_stage_metrics,
    build_stage_pains,
    build_stage_touchpoints,
)


def _rows():
    def pay(c, name, ts, booking, payment, **cols):
        return E(c, name, ts, booking_id=booking, payment_id=payment, **cols)

    return [
        E("c1", "app_installed", T0, platform="ios", screen="Store"),
        E("c1", "service_viewed", T0 + HOUR, platform="ios", screen="Svc"),
        E("c1", "booking_created", T0 + 2 * HOUR, booking_id="b1", amount=40, platform="ios"),
        pay("c1", "payment_failed", T0 + 3 * HOUR, "b1", "p1", method="card", platform="ios",
            failure_reason="card_declined"),
        pay("c1", "payment_succeeded", T0 + 4 * HOUR, "b1", "p2", method="card",
            platform="ios"),
        E("c2", "app_installed", T0 + DAY, platform="android", screen="Store"),
        E("c2", "booking_created", T0 + DAY + HOUR, booking_id="b2", amount=20,
          platform="android"),
        pay("c2", "payment_succeeded", T0 + DAY + 2 * HOUR, "b2", "p3", method="paypal",
            platform="android"),
        E("c2", "booking_completed", T0 + 3 * DAY, booking_id="b2"),
        E("c3", "app_opened", T0 + 2 * DAY, platform="android", screen="Home"),
        E("c4", "app_installed", T0 + 2 * DAY, platform="ios", screen="Store"),
        E("c4", "booking_created", T0 + 2 * DAY + HOUR, booking_id="b4", amount=60,
          platform="ios"),
        E("c5", "app_installed", T0 + 3 * DAY, platform="android", screen="Store"),
        E("c5", "service_viewed", T0 + 3 * DAY + HOUR, platform="android", screen="Svc"),
        E("x", "favourite_removed", T0 + 60 * DAY),
    ]


@pytest.fixture
def built(con, jmap):
    make_events_table(con, _rows())
    _build_stage_metric_inputs(con, jmap)
    build_stage_touchpoints(con, jmap)
    build_stage_pains(con, jmap)
    build_stage_metrics(con, jmap, currency="EUR")
    return con


# the whole data: 1 Mar – 30 Apr
ALL_DAYS = 61


def test_every_period_holds_the_same_rows_here(built):
    con = built
    for table in ("journey_map_funnel", "stage_touchpoint_segments", "stage_pain_segments",
                  "stage_metric_segments", "stage_exit_events"):
        days = [r[0] for r in con.execute(
            f"select distinct period_days from {table} order by 1").fetchall()]
        assert days == [7, 28, ALL_DAYS], table
        # the funnel also states the period's first entry day, which differs
        drop = "period_days, period_start" if table == "journey_map_funnel" else "period_days"
        for d in (7, 28):
            _same_rows(con, f"select * exclude ({drop}) from {table} where period_days = {d}",
                       f"select * exclude ({drop}) from {table} "
                       f"where period_days = {ALL_DAYS}")


def _same_rows(con, a: str, b: str) -> None:
    """Query a and query b hold the same rows (as multisets)."""
    assert con.execute(f"select count(*) from ({a} except all {b})").fetchone()[0] == 0
    assert con.execute(f"select count(*) from ({b} except all {a})").fetchone()[0] == 0


def test_all_customer_rows_equal_the_all_customer_tables(built):
    con = built
    _same_rows(con, "select * from stage_touchpoints",
               "select * exclude (period_days, segment, segment_value) "
               "from stage_touchpoint_segments "
               f"where period_days = {ALL_DAYS} and segment = 'all' and segment_value = 'all'")
    _same_rows(con, "select * from stage_pains",
               "select * exclude (period_days, segment, segment_value) from stage_pain_segments "
               f"where period_days = {ALL_DAYS} and segment = 'all' and segment_value = 'all'")
    # every all-customer metric of stage_metrics, same value; the segments table adds only
    # the all-channel value of the metrics stage_metrics has by channel only
    _same_rows(con, "select stage, stage_index, metric, value, unit from stage_metrics "
                    "where segment = 'all'",
               "select stage, stage_index, metric, value, unit from stage_metric_segments "
               f"where period_days = {ALL_DAYS} and segment = 'all' and metric not in "
               "('campaign_clicks', 'campaign_ctr', 'campaign_click_to_decision')")


def test_touchpoints_are_per_persona(built):
    con = built

    def shares(segment, value, stage, dimension):
        return con.execute(
            "select value, events, share from stage_touchpoint_segments where segment = ? "
            "and segment_value = ? and stage = ? and dimension = ? and period_days = ? "
            "order by rank", [segment, value, stage, dimension, ALL_DAYS]).fetchall()

    # Discovery screens: android c2, c5 Store, c3 Home; ios c1, c4 Store
    assert shares("platform", "android", "Discovery", "screen") == [
        ("Store", 2, pytest.approx(2 / 3)), ("Home", 1, pytest.approx(1 / 3))]
    assert shares("platform", "ios", "Discovery", "screen") == [("Store", 2, 1.0)]
    # Purchase methods: only the succeeded payments map to Purchase
    assert shares("platform", "ios", "Purchase", "method") == [("card", 1, 1.0)]
    assert shares("platform", "android", "Purchase", "method") == [("paypal", 1, 1.0)]
    assert shares("all", "all", "Purchase", "method") == [("card", 1, 0.5), ("paypal", 1, 0.5)]
    # customer_type: c3 is the only returning customer (no install)
    assert shares("customer_type", "returning", "Discovery", "screen") == [("Home", 1, 1.0)]


def test_pains_are_per_persona_with_the_persona_as_denominator(built):
    con = built
    rows = con.execute(
        "select segment, segment_value, customers, share from stage_pain_segments "
        "where pain = 'payment_failed' and reason = 'card_declined' and period_days = ? "
        "order by segment, segment_value", [ALL_DAYS]).fetchall()
    # c1's failed payment: 1 of the 2 journeys reaching Purchase (c1, c2) overall, 1 of 1 (c1)
    # among ios; channel organic is everybody's (the clickstream default)
    assert ("all", "all", 1, 0.5) in rows
    assert ("platform", "ios", 1, 1.0) in rows
    assert ("channel", "organic", 1, 0.5) in rows
    assert not [r for r in rows if r[1] == "android"]
    dropped = dict(((r[0], r[1]), r[2]) for r in con.execute(
        "select segment_value, stage, customers from stage_pain_segments "
        "where pain = 'dropped_out' and segment = 'platform' and period_days = ?",
        [ALL_DAYS]).fetchall())
    # android ends at Discovery (c3), Consideration (c5), Service (c2); ios at Decision (c4),
    # Purchase (c1)
    assert dropped == {("android", "Discovery"): 1, ("android", "Consideration"): 1,
                       ("android", "Service"): 1, ("ios", "Decision"): 1,
                       ("ios", "Purchase"): 1}


def test_metrics_are_per_persona_in_a_fixed_order(built):
    con = built
    m = {(r[0], r[1], r[2]): r[3] for r in con.execute(
        "select segment, segment_value, metric, value from stage_metric_segments "
        "where period_days = ?", [ALL_DAYS]).fetchall()}
    # average basket: all (40 + 20 + 60) / 3, ios (40 + 60) / 2, android 20
    assert m[("all", "all", "average_basket")] == pytest.approx(40.0)
    assert m[("platform", "ios", "average_basket")] == pytest.approx(50.0)
    assert m[("platform", "android", "average_basket")] == pytest.approx(20.0)
    # Decision -> Purchase: ios c1 of c1, c4; android c2 of c2; all 2 of 3
    assert m[("platform", "ios", "conversion_to_purchase")] == pytest.approx(0.5)
    assert m[("platform", "android", "conversion_to_purchase")] == pytest.approx(1.0)
    assert m[("all", "all", "conversion_to_purchase")] == pytest.approx(2 / 3)
    # payment attempts: ios p1 failed, p2 succeeded; android p3 succeeded
    assert m[("platform", "ios", "payment_failure_rate")] == pytest.approx(0.5)
    assert m[("platform", "android", "payment_failure_rate")] == 0.0
    assert m[("all", "all", "payment_failure_rate")] == pytest.approx(1 / 3)
    # new customers (an install, no earlier purchase): c2, c5 of android (c3 returning)
    assert m[("platform", "android", "new_customers")] == 2
    assert m[("platform", "ios", "new_customers")] == 2
    assert m[("all", "all", "new_customers")] == 4
    assert m[("customer_type", "returning", "new_customers")] == 0

    order = [r[0] for r in con.execute(
        "select metric from stage_metric_segments where segment = 'all' and period_days = ? "
        "order by metric_order", [ALL_DAYS]).fetchall()]
    assert order.index("repeat_rate_7d") < order.index("repeat_rate_14d") \
        < order.index("repeat_rate_30d")
    assert order.index("new_customers") < order.index("average_basket") \
        < order.index("payment_failure_rate") < order.index("repeat_rate_7d")
    # one order for every persona: a metric has the same position everywhere
    assert con.execute("select count(*) from (select metric from stage_metric_segments "
                       "group by metric having count(distinct metric_order) > 1)"
                       ).fetchone()[0] == 0


def test_exit_events_say_what_the_lost_did_last(built):
    con = built
    rows = con.execute(
        "select stage, value, journeys, leavers, share, stage_rank from stage_exit_events "
        "where segment = 'all' and dimension = 'event_name' and period_days = ? "
        "order by stage_index", [ALL_DAYS]).fetchall()
    assert [r[:5] for r in rows] == [
        ("Discovery", "app_opened", 1, 1, 1.0),  # c3
        ("Consideration", "service_viewed", 1, 1, 1.0),  # c5
        ("Decision", "booking_created", 1, 1, 1.0),  # c4
        ("Purchase", "payment_succeeded", 1, 1, 1.0),  # c1
        ("Service", "booking_completed", 1, 1, 1.0),  # c2
    ]
    # one leaver each: ranked by stage order, up to the conversion stage (Purchase) only
    assert [r[5] for r in rows] == [1, 2, 3, None, None]
    screens = con.execute(
        "select stage, value from stage_exit_events where segment = 'platform' "
        "and segment_value = 'ios' and dimension = 'screen' and period_days = ? "
        "order by stage_index", [ALL_DAYS]).fetchall()
    # c4's booking has no screen: its install's; c1 last saw the service (Svc)
    assert screens == [("Decision", "Store"), ("Purchase", "Svc")]
    # the leavers of a period's persona at a stage are the drop-off into the next stage of its
    # funnel; with every journey in the period, that funnel is funnel_segments'
    mismatch = con.execute("""
        with lost as (
            select period_days, segment, segment_value, stage_index, max(leavers) as leavers
            from stage_exit_events where dimension = 'event_name'
            group by all
        )
        select count(*) from journey_map_funnel f
        left join lost l on l.period_days = f.period_days and l.segment = f.segment
                        and l.segment_value = f.segment_value
                        and l.stage_index = f.stage_index - 1
        where f.stage_index > 1 and coalesce(l.leavers, 0) <> f.dropoff_count
    """).fetchone()[0]
    assert mismatch == 0
    # the personas are the known values (no '(unknown)' persona: transforms.periods'
    # build_segment_members); each one's funnel is funnel_segments' row for it
    _same_rows(con, "select * exclude (period_days, period_start, period_end) "
                    f"from journey_map_funnel where period_days = {ALL_DAYS} "
                    "and segment <> 'all'",
               "select * from funnel_segments where segment_value <> '(unknown)'")



def test_personas_are_the_offered_values_capped_per_segment(con):
    # 12 known cities (city k on k journeys), 5 journeys without a city, 3 '(unknown)': the
    # ten cities with the most journeys are offered (12 down to 3), ties by value; NULL and
    # '(unknown)' never (transforms.periods.build_segment_members, which the Overview's
    # picker and the journey map's personas both read)
    from transforms.periods import MAX_SEGMENT_VALUES, build_segment_members

    rows = [(f"c{k}-{i}", f"city{k:02d}") for k in range(1, 13) for i in range(k)]
    rows += [(f"n{i}", None) for i in range(5)] + [(f"u{i}", "(unknown)") for i in range(3)]
    con.execute("create table journeys (customer_id varchar, city varchar)")
    con.executemany("insert into journeys values (?, ?)", rows)
    build_segment_members(con, ["city"], 1, "_members")
    got = con.execute("select segment_value, count(*) from _members group by all "
                      "order by 2 desc").fetchall()
    assert MAX_SEGMENT_VALUES == 10
    assert got == [(f"city{k:02d}", k) for k in range(12, 2, -1)]
    # with a minimum of 11 journeys only cities 11 and 12
    build_segment_members(con, ["city"], 11, "_members")
    assert con.execute("select distinct segment_value from _members order by 1").fetchall() \
        == [("city11",), ("city12",)]
