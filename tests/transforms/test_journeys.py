"""Stage mapping, purchases, journeys, funnels and transitions (transforms/stages.py,
purchases.py, journeys.py, stage_funnels.py) on hand-built `events` tables.

Every expected number is worked out by hand in the comments next to it. The default journey
map (data/sample/journey_map.yaml) is used unless a test says otherwise: stages Discovery,
Consideration (optional), Decision, Purchase, Service, Repeat; window 30 days.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pytest

from tests.events import DAY, HOUR, T0, E, make_events_table
from transforms.journey_map import JourneyMap
from transforms.journeys import build_journeys
from transforms.purchases import build_purchases
from transforms.stage_funnels import build_funnels, build_transitions
from transforms.stages import build_stage_events


def _basic_rows() -> list[dict[str, Any]]:
    """Five customers, a late unrelated event (data end = T0 + 60 d) and an orphan payment."""
    return [
        # c1: installs (new), browses, books, a failed then a successful payment, is served
        E("c1", "app_installed", T0, platform="ios", channel="paid_social", city="Berlin"),
        E("c1", "logged_in", T0 + HOUR / 2, platform="ios"),  # no rule: unmapped
        E("c1", "service_viewed", T0 + HOUR, platform="ios", service_category="hair"),
        E("c1", "booking_created", T0 + 2 * HOUR, booking_id="b1", amount=50,
          service_category="hair", city="Berlin"),
        E("c1", "payment_failed", T0 + 3 * HOUR, booking_id="b1", payment_id="p1",
          method="card", failure_reason="card_declined"),  # no rule: unmapped
        E("c1", "payment_succeeded", T0 + 4 * HOUR, booking_id="b1", payment_id="p2",
          method="card", amount=50),
        E("c1", "booking_completed", T0 + 2 * DAY, booking_id="b1"),
        # c2: existing user (no install), books straight away (skips Consideration), never pays
        E("c2", "app_opened", T0, platform="android"),
        E("c2", "booking_created", T0 + 2 * HOUR, booking_id="b2", amount=30),
        # c3: opens the app and leaves
        E("c3", "app_opened", T0 + DAY, platform="android"),
        # c4: installs and browses only
        E("c4", "app_installed", T0 + DAY, platform="android"),
        E("c4", "service_viewed", T0 + DAY + HOUR, platform="android"),
        # c5: enters 50 days in: its 30-day window is not observed by the data end (incomplete)
        E("c5", "app_opened", T0 + 50 * DAY, platform="web"),
        # unrelated event that sets the data end, and an orphan payment (no customer)
        E("x", "favourite_removed", T0 + 60 * DAY),
        E(None, "payment_succeeded", T0 + 5 * DAY, booking_id="zz", payment_id="pz"),
    ]


def _build_all(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> None:
    build_stage_events(con, jmap)
    build_purchases(con, jmap)
    build_journeys(con, jmap)
    build_funnels(con, jmap)
    build_transitions(con, jmap)


def test_stage_mapping_counts_mapped_and_unmapped(con, jmap):
    make_events_table(con, _basic_rows())
    stats = build_stage_events(con, jmap)
    # 15 events. Unmapped: c1 logged_in, c1 payment_failed, x favourite_removed, and the orphan
    # payment_succeeded (it matches Purchase but has no customer) = 4; mapped 11.
    assert (stats.events, stats.mapped_events, stats.unmapped_events) == (15, 11, 4)
    assert stats.stage_events == 11  # no event matches two stages, no repeat purchase
    per_stage = dict(con.execute(
        "select stage, count(*) from stage_events group by all").fetchall())
    # Discovery: c1 install, c2/c3/c5 open, c4 install; Consideration: c1, c4 service_viewed;
    # Decision: b1, b2 created; Purchase: c1's success; Service: b1 completed
    assert per_stage == {"Discovery": 5, "Consideration": 2, "Decision": 2, "Purchase": 1,
                         "Service": 1}
    summary = {(r[0], r[1]): r[2:] for r in con.execute(
        "select source, event_name, events, mapped_events, unmapped_events, without_customer, "
        "stages from stage_mapping_summary").fetchall()}
    assert summary[("payments", "payment_succeeded")] == (2, 1, 1, 1, ["Purchase"])
    assert summary[("payments", "payment_failed")] == (1, 0, 1, 0, [])
    assert summary[("clickstream", "logged_in")] == (1, 0, 1, 0, [])


def test_journeys_columns(con, jmap):
    make_events_table(con, _basic_rows())
    _build_all(con, jmap)
    rows = {r[0]: r[1:] for r in con.execute(
        "select customer_id, entry_ts, channel, platform, city, service_category, customer_type,"
        " furthest_stage, stages_reached, converted, skipped_stages, complete from journeys"
    ).fetchall()}
    assert set(rows) == {"c1", "c2", "c3", "c4", "c5"}  # x never reaches Discovery
    # c1: segments from the install; city from it too; category from the first later event
    # that has one (service_viewed); 'new' (install at entry); reached Service (5 stages)
    assert rows["c1"] == (T0, "paid_social", "ios", "Berlin", "hair", "new", "Service", 5,
                          True, [], True)
    # c2: no install -> returning; Consideration implied by Decision, so skipped
    assert rows["c2"] == (T0, "organic", "android", None, None, "returning", "Decision", 3,
                          False, ["Consideration"], True)
    assert rows["c4"][6:8] == ("Consideration", 2)
    # c5 entered at T0+50d; T0+50d+30d > data end T0+60d -> incomplete
    assert rows["c5"][-1] is False
    wide = con.execute('select "Decision", "Purchase", "Consideration" from journeys_wide '
                       "where customer_id = 'c2'").fetchall()
    assert wide == [(T0 + 2 * HOUR, None, None)]  # implied stages carry no timestamp
    secs = dict(con.execute("select stage, seconds_from_previous from journey_stages "
                            "where customer_id = 'c1'").fetchall())
    # 1 h browse, 1 h to book, 2 h to pay (failed attempt in between), 2 d - 4 h to service
    assert secs == {"Discovery": None, "Consideration": 3600.0, "Decision": 3600.0,
                    "Purchase": 7200.0, "Service": 2 * 86400.0 - 4 * 3600.0}


def test_funnel_steps_complete_journeys_only(con, jmap):
    make_events_table(con, _basic_rows())
    _build_all(con, jmap)
    rows = con.execute(
        "select stage, entered, observed, overall_conversion, step_conversion, dropoff_count, "
        "median_seconds, incomplete_journeys from funnel_steps order by stage_index").fetchall()
    # complete journeys c1..c4 (c5 kept out): Discovery 4; Consideration c1, c4 observed + c2
    # implied = 3; Decision c1, c2 = 2; Purchase, Service c1 = 1; Repeat 0
    assert [r[1] for r in rows] == [4, 3, 2, 1, 1, 0]
    assert [r[2] for r in rows] == [4, 2, 2, 1, 1, 0]
    assert [r[3] for r in rows] == [1.0, 0.75, 0.5, 0.25, 0.25, 0.0]
    assert rows[2][4] == pytest.approx(2 / 3) and rows[2][5] == 1
    # Decision timed only where Consideration was observed (c1: 1 h); c2 skipped it
    assert rows[2][6] == 3600.0
    assert {r[7] for r in rows} == {1}  # c5


def test_funnel_cohorts_mark_incomplete_days(con, jmap):
    make_events_table(con, _basic_rows())
    _build_all(con, jmap)
    got = {(r[0], r[1]): (r[2], r[3]) for r in con.execute(
        "select cohort_date, stage, entered, complete from funnel_cohorts").fetchall()}
    d0, d1, d50 = T0.date(), (T0 + DAY).date(), (T0 + 50 * DAY).date()
    # day 0: c1, c2 (both reach Decision, c1 pays); day 1: c3, c4; day 50: c5 only
    assert got[(d0, "Decision")] == (2, True) and got[(d0, "Purchase")] == (1, True)
    assert got[(d1, "Discovery")] == (2, True) and got[(d1, "Consideration")] == (1, True)
    # a cohort is complete when day + 1 d + 30 d <= data end (T0 + 60 d): day 50 is not
    assert got[(d50, "Discovery")] == (1, False)


def test_funnel_segments(con, jmap):
    make_events_table(con, _basic_rows())
    _build_all(con, jmap)
    android = [r[0] for r in con.execute(
        "select entered from funnel_segments where segment = 'platform' and "
        "segment_value = 'android' order by stage_index").fetchall()]
    # android complete journeys: c2 (to Decision), c3 (Discovery), c4 (Consideration)
    assert android == [3, 2, 1, 0, 0, 0]
    new = [r[0] for r in con.execute(
        "select entered from funnel_segments where segment = 'customer_type' and "
        "segment_value = 'new' order by stage_index").fetchall()]
    assert new == [2, 2, 1, 1, 1, 0]  # c1 all the way to Service, c4 to Consideration


def test_transitions_ranked(con, jmap):
    make_events_table(con, _basic_rows())
    _build_all(con, jmap)
    rows = con.execute(
        "select from_stage, to_stage, entered_from, reached_to, dropout_rate, rank_dropout, "
        "rank_dropoff, is_bottleneck from stage_transitions order by from_index").fetchall()
    # 4->3 (0.25), 3->2 (1/3), 2->1 (0.5), 1->1 (0), 1->0 (1.0). Service->Repeat drops out the
    # most, but it comes after the conversion stage (Purchase): only the three transitions up
    # to Purchase are ranked, so Decision->Purchase is the bottleneck; the later two keep their
    # counts, unranked and unflagged.
    assert [(r[2], r[3]) for r in rows] == [(4, 3), (3, 2), (2, 1), (1, 1), (1, 0)]
    assert [r[5] for r in rows] == [3, 2, 1, None, None]
    assert [r[6] for r in rows] == [1, 1, 1, None, None]  # one journey lost at each
    assert [r[7] for r in rows] == [False, False, True, False, False]
    seg = con.execute(
        "select to_stage, rank_dropout, is_bottleneck from stage_transition_segments "
        "where segment = 'customer_type' and segment_value = 'new' order by from_index"
    ).fetchall()
    # new = c1 (to Service) and c4 (to Consideration), see test_funnel_segments: 2->2 (0),
    # 2->1 (0.5), 1->1 (0) ranked; 1->1, 1->0 (Service->Repeat, 1.0) after Purchase, unranked
    assert seg == [("Consideration", 2, False), ("Decision", 1, True), ("Purchase", 2, False),
                   ("Service", None, False), ("Repeat", None, False)]


def test_transition_segment_z_test(con, jmap):
    # 25 iOS and 25 Android customers open the app; 20 iOS and 10 Android go on to browse
    rows = [E("x", "favourite_removed", T0 + 60 * DAY)]
    for platform, browsers in (("ios", 20), ("android", 10)):
        for i in range(25):
            c = f"{platform}{i}"
            rows.append(E(c, "app_opened", T0, platform=platform))
            if i < browsers:
                rows.append(E(c, "service_viewed", T0 + HOUR, platform=platform))
    make_events_table(con, rows)
    _build_all(con, jmap)
    z, p, sig, rest = con.execute(
        "select z_score, p_value, significant, rest_dropout_rate from stage_transition_segments"
        " where segment = 'platform' and segment_value = 'ios' and from_index = 1").fetchone()
    # dropout d1 = 5/25 = 0.2, d2 = 15/25 = 0.6, pooled conversion 30/50 = 0.6
    # z = (0.2 - 0.6) / sqrt(0.6 * 0.4 * (1/25 + 1/25)) = -0.4 / sqrt(0.0192) = -2.88675:
    # iOS drops out less, so z < 0 like its dropout difference
    import math
    assert z == pytest.approx(-0.4 / math.sqrt(0.0192))
    assert p == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), abs=1e-6)  # ~0.0039
    assert sig is True and rest == pytest.approx(0.6)


def test_reentry_restarts_the_window(con, jmap):
    # first open at T0; the booking at T0+31d is outside its 30-day window, but a second open
    # at T0+20d starts a new attempt that reaches Decision 11 days later
    make_events_table(con, [
        E("r", "app_opened", T0), E("r", "app_opened", T0 + 20 * DAY),
        E("r", "booking_created", T0 + 31 * DAY, booking_id="rb"),
        E("x", "favourite_removed", T0 + 80 * DAY),
    ])
    _build_all(con, jmap)
    assert con.execute("select entry_ts, furthest_stage, complete from journeys").fetchall() \
        == [(T0 + 20 * DAY, "Decision", True)]


def test_window_boundary_is_inclusive(con, jmap):
    window = dt.timedelta(seconds=jmap.window_seconds)  # the default map's window
    make_events_table(con, [
        E("a", "app_opened", T0), E("a", "booking_created", T0 + window, booking_id="ab"),
        E("b", "app_opened", T0),
        E("b", "booking_created", T0 + window + dt.timedelta(seconds=1), booking_id="bb"),
    ])
    _build_all(con, jmap)
    got = dict(con.execute("select customer_id, furthest_stage from journeys").fetchall())
    assert got == {"a": "Decision", "b": "Discovery"}


def test_repeat_stage_skips_refunded_bookings(con, jmap):
    make_events_table(con, [
        E("r", "app_opened", T0),
        E("r", "payment_succeeded", T0 + DAY, booking_id="k1", payment_id="q1"),
        E("r", "payment_succeeded", T0 + 2 * DAY, booking_id="k2", payment_id="q2"),
        E("r", "payment_refunded", T0 + 3 * DAY, booking_id="k2", payment_id="q2"),
        E("r", "payment_succeeded", T0 + 4 * DAY, booking_id="k3", payment_id="q3"),
        E("r", "payment_succeeded", T0 + 4 * DAY + HOUR, booking_id="k3", payment_id="q4"),
    ])
    build_stage_events(con, jmap)
    # k2 is refunded, so the 2nd purchase is k3, reached by its first success (q3)
    assert con.execute("select booking_id, event_ts from stage_events where stage = 'Repeat'"
                       ).fetchall() == [("k3", T0 + 4 * DAY)]
    build_purchases(con, jmap)
    assert con.execute("select order_id, purchase_number from purchases order by 2"
                       ).fetchall() == [("k1", 1), ("k3", 2)]


def test_install_after_the_campaign_click_is_a_new_customer(con, jmap):
    make_events_table(con, [
        # n1: the journey opens with the campaign click; the install it leads to comes 2 min
        # later (within the window) -> new
        E("n1", "campaign_clicked", T0, platform="android", channel="paid_social"),
        E("n1", "app_installed", T0 + dt.timedelta(minutes=2), platform="android",
          channel="paid_social"),
        # n2: a click and no install or sign-up at all -> a user from before the data: returning
        E("n2", "campaign_clicked", T0, platform="android", channel="paid_social"),
        # n3: the install itself opens the journey (at entry) -> new
        E("n3", "app_installed", T0, platform="ios"),
        E("n3", "app_opened", T0 + HOUR, platform="ios"),
        E("x", "favourite_removed", T0 + 60 * DAY),
    ])
    _build_all(con, jmap)
    got = dict(con.execute("select customer_id, customer_type from journeys").fetchall())
    assert got == {"n1": "new", "n2": "returning", "n3": "new"}


def test_stage_window_counts_from_the_previous_required_stage(con, jmap, tmp_path):
    from pathlib import Path

    import yaml

    from transforms.journey_map import load_journey_map

    doc = yaml.safe_load(Path(jmap.path).read_text())  # the sample map
    assert doc["stages"][3]["name"] == "Purchase"
    doc["stages"][3]["window"] = "1h"  # pay within an hour of reaching Decision
    path = tmp_path / "map.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    windowed = load_journey_map(path)
    assert windowed.stage("Purchase").window_seconds == 3600
    assert windowed.stage("Decision").window_seconds is None

    def paid(c, ts):
        return E(c, "payment_succeeded", ts, booking_id=f"{c}b", payment_id=f"{c}p",
                 method="card", amount=50)

    second = dt.timedelta(seconds=1)
    rows = [
        # a: Decision at T0+1h, pays exactly 1 h later (inclusive) -> Purchase reached
        E("a", "app_opened", T0), E("a", "booking_created", T0 + HOUR, booking_id="ab"),
        paid("a", T0 + 2 * HOUR),
        # b: pays 1 h 1 s after Decision (well inside the 14 d conversion window) -> not reached
        E("b", "app_opened", T0), E("b", "booking_created", T0 + HOUR, booking_id="bb"),
        paid("b", T0 + 2 * HOUR + second),
        # c: an optional Consideration event between Decision and the payment does not move the
        # clock: 1 h from Decision (the previous *required* stage) -> Purchase reached
        E("c", "app_opened", T0), E("c", "booking_created", T0 + HOUR, booking_id="cb"),
        E("c", "service_viewed", T0 + 1.5 * HOUR), paid("c", T0 + 2 * HOUR),
        E("x", "favourite_removed", T0 + 60 * DAY),
    ]
    make_events_table(con, rows)
    _build_all(con, windowed)
    got = dict(con.execute("select customer_id, furthest_stage from journeys").fetchall())
    assert got == {"a": "Purchase", "b": "Decision", "c": "Purchase"}
    # without the stage window all three pay within the conversion window
    make_events_table(con, rows)
    _build_all(con, jmap)
    got = dict(con.execute("select customer_id, furthest_stage from journeys").fetchall())
    assert got == {"a": "Purchase", "b": "Purchase", "c": "Purchase"}


def test_optional_stages_in_a_row_are_observed_in_order(con, tmp_path):
    from transforms.journey_map import load_journey_map

    # Visit (required) -> Browse (optional) -> Compare (optional) -> Buy (required)
    path = tmp_path / "map.yaml"
    path.write_text("""
version: 1
conversion_window: 2d
conversion_stage: Buy
stages:
  - {name: Visit, rules: [{source: clickstream, event_name: app_opened}]}
  - {name: Browse, optional: true, rules: [{source: clickstream, event_name: service_viewed}]}
  - {name: Compare, optional: true, rules: [{source: clickstream, event_name: reviews_read}]}
  - {name: Buy, rules: [{source: clickstream, event_name: checkout_started}]}
""")
    jm = load_journey_map(path)
    rows = [
        # a: Compare at +1 h, Browse at +2 h. Browse is observed at +2 h; Compare must come at
        # or after it, and its only event is earlier: not observed, and nothing after it -> a
        # reaches Visit, Browse
        E("a", "app_opened", T0), E("a", "reviews_read", T0 + HOUR),
        E("a", "service_viewed", T0 + 2 * HOUR),
        # b: only Compare (+1 h): observed; Browse is reached as skipped (a later stage was)
        E("b", "app_opened", T0), E("b", "reviews_read", T0 + HOUR),
        # c: Browse +1 h, Compare +2 h, Buy +3 h: all observed, in order
        E("c", "app_opened", T0), E("c", "service_viewed", T0 + HOUR),
        E("c", "reviews_read", T0 + 2 * HOUR), E("c", "checkout_started", T0 + 3 * HOUR),
        E("x", "favourite_removed", T0 + 60 * DAY),  # the data end: every window closed
    ]
    make_events_table(con, rows)
    _build_all(con, jm)
    got = con.execute("select customer_id, stage, observed, seconds_from_previous "
                      "from journey_stages order by customer_id, stage_index").fetchall()
    assert got == [
        ("a", "Visit", True, None), ("a", "Browse", True, 7200.0),
        ("b", "Visit", True, None), ("b", "Browse", False, None), ("b", "Compare", True, None),
        ("c", "Visit", True, None), ("c", "Browse", True, 3600.0), ("c", "Compare", True, 3600.0),
        ("c", "Buy", True, 3600.0),
    ]
    # counts never rise along the stages: 3, 3, 2, 1
    assert [r[0] for r in con.execute(
        "select entered from funnel_steps order by stage_index").fetchall()] == [3, 3, 2, 1]
