"""Mining tables from hand-built stage events; expected values worked out in the comments."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from tests.conftest import SAMPLE_CONFIG
from transforms.definitions import create_macros
from transforms.journey_map import load_journey_map
from transforms.journey_mining import build_mining_log, build_mining_tables

STAGE_INDEX = {"Discovery": 1, "Consideration": 2, "Decision": 3, "Purchase": 4, "Service": 5,
               "Repeat": 6}
T0 = dt.datetime(2026, 10, 1, 9, 0)


def minutes(m: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=m)


# (customer, stage, event_name, minute); event ids are assigned in this order
EVENTS = [
    # c1: Discovery, Consideration x2 (one visit), Decision, Purchase -> converted, no deviation
    ("c1", "Discovery", "app_installed", 0),
    ("c1", "Consideration", "service_viewed", 1),
    ("c1", "Consideration", "salon_viewed", 2),
    ("c1", "Decision", "booking_created", 4),
    ("c1", "Purchase", "payment_succeeded", 5),
    # c2: Discovery, Decision (Consideration is optional: not a skip), then stops
    ("c2", "Discovery", "app_opened", 0),
    ("c2", "Decision", "slot_selected", 10),
    # c3: Discovery then Purchase without Decision -> Decision skipped; and Consideration
    # after Purchase -> out of order
    ("c3", "Discovery", "app_opened", 0),
    ("c3", "Purchase", "payment_succeeded", 3),
    ("c3", "Consideration", "service_viewed", 6),
    # c4: full path to Repeat, then more events that must be cut off after the first Repeat
    ("c4", "Discovery", "app_installed", 0),
    ("c4", "Consideration", "service_viewed", 2),
    ("c4", "Decision", "booking_created", 3),
    ("c4", "Purchase", "payment_succeeded", 4),
    ("c4", "Service", "booking_completed", 60),
    ("c4", "Decision", "booking_created", 100),
    ("c4", "Purchase", "payment_succeeded", 101),
    ("c4", "Repeat", "payment_succeeded", 101),  # the same event, also the 2nd purchase
    ("c4", "Consideration", "service_viewed", 200),  # after the first Repeat: cut
    # c5: Discovery only
    ("c5", "Discovery", "app_opened", 0),
]
CONVERTED = {"c1": True, "c2": False, "c3": True, "c4": True, "c5": False}
PLATFORM = {"c1": "ios", "c2": "android", "c3": "android", "c4": "web", "c5": "ios"}


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    create_macros(con)  # the rates' definitions, as on every warehouse connection
    con.execute("""create table stage_events (event_id varchar, customer_id varchar,
                   stage varchar, stage_index integer, event_name varchar, event_ts timestamp)""")
    rows = []
    for i, (cust, stage, name, m) in enumerate(EVENTS):
        # a repeat purchase is one event mapped to two stages: same event id
        eid = f"e{i - 1:02d}" if stage == "Repeat" else f"e{i:02d}"
        rows.append((eid, cust, stage, STAGE_INDEX[stage], name, minutes(m)))
    con.executemany("insert into stage_events values (?, ?, ?, ?, ?, ?)", rows)
    con.execute("create table journeys (customer_id varchar, converted boolean, "
                "platform varchar, channel varchar)")
    con.executemany("insert into journeys values (?, ?, ?, 'organic')",
                    [(c, CONVERTED[c], PLATFORM[c]) for c in CONVERTED])
    return con


@pytest.fixture
def jmap():
    return load_journey_map(SAMPLE_CONFIG.parent / "journey_map.yaml")


def paths(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    rows = con.execute('select "case", list(activity order by event_index) from mining_log '
                       'group by 1 order by 1').fetchall()
    return dict(rows)


def test_mining_log_collapses_repeats_and_stops_at_the_first_repeat(con, jmap) -> None:
    assert build_mining_log(con, jmap) == 4 + 2 + 3 + 8 + 1
    assert paths(con) == {
        "c1": ["Discovery", "Consideration", "Decision", "Purchase"],
        "c2": ["Discovery", "Decision"],
        "c3": ["Discovery", "Purchase", "Consideration"],
        # Service -> Decision -> Purchase -> Repeat: the second booking, then the cut
        "c4": ["Discovery", "Consideration", "Decision", "Purchase", "Service", "Decision",
               "Purchase", "Repeat"],
        "c5": ["Discovery"],
    }


def test_tables_from_hand_built_journeys(con, jmap, tmp_path: Path) -> None:
    stats = build_mining_tables(con, jmap, tmp_path / "models")
    assert (stats.journeys, stats.variants) == (5, 5)  # every path is distinct
    assert {p.suffix for p in stats.model_files} == {".bpmn", ".pnml"}
    assert all(p.stat().st_size > 0 for p in stats.model_files)

    # directly-follows counts over the five paths above, and c1's Discovery->Consideration
    # edge is 1 minute, c4's 2 minutes: mean 90 s, median 90 s
    edges = {(s, t): (n, mean) for s, t, n, mean in con.execute(
        "select source, target, count, mean_s from dfg_edges").fetchall()}
    assert edges[("Discovery", "Consideration")] == (2, 90.0)
    assert edges[("Decision", "Purchase")][0] == 3  # c1, c4 twice
    assert edges[("Purchase", "Repeat")] == (1, 0.0)
    assert edges[("Discovery", "Decision")] == (1, 600.0)
    assert sum(n for n, _ in edges.values()) == 3 + 1 + 2 + 7 + 0

    ends = dict(con.execute("select activity, count from dfg_endpoints where kind = 'end'"
                            ).fetchall())
    assert ends == {"Purchase": 1, "Decision": 1, "Consideration": 1, "Repeat": 1,
                    "Discovery": 1}
    # non-converting journeys: c2 ends at Decision, c5 at Discovery
    assert sorted(con.execute("select stage, journeys, share from dropoff_points").fetchall()
                  ) == [("Decision", 1, 0.5), ("Discovery", 1, 0.5)]


def test_conformance_names_the_deviations(con, jmap, tmp_path: Path) -> None:
    build_mining_tables(con, jmap, tmp_path / "models")
    got = sorted(con.execute("select stage, deviation, journeys from conformance_deviations "
                             "where segment = 'all'").fetchall())
    assert got == [
        ("Consideration", "out_of_order", 1),  # c3 browsed after paying
        ("Decision", "repeated", 1),           # c4's second booking
        ("Decision", "skipped", 1),            # c3 paid without a Decision
        ("Purchase", "repeated", 1),           # c4
    ]
    by_platform = sorted(con.execute(
        "select segment_value, stage, deviation from conformance_deviations "
        "where segment = 'platform'").fetchall())
    assert by_platform == [("android", "Consideration", "out_of_order"),
                           ("android", "Decision", "skipped"),
                           ("web", "Decision", "repeated"), ("web", "Purchase", "repeated")]
    fit = dict(con.execute("select customer_id, is_fit from journey_variants").fetchall())
    # prefixes of the designed journey (with Consideration optional) fit; c3 and c4 do not
    assert fit == {"c1": True, "c2": True, "c3": False, "c4": False, "c5": True}
    journeys, fitting = con.execute(
        "select journeys, fitting_share from conformance_overall").fetchall()[0]
    assert (journeys, fitting) == (5, 3 / 5)


def test_event_level_variants_inside_a_stage(con, jmap, tmp_path: Path) -> None:
    build_mining_tables(con, jmap, tmp_path / "models")
    rows = con.execute("select path, visits from stage_event_variants "
                       "where stage = 'Consideration' order by rank").fetchall()
    # visits: c1 [service_viewed, salon_viewed]; c3 [service_viewed]; c4 [service_viewed],
    # and c4's browse after the Repeat (stage events are not cut here: every visit counts)
    assert rows == [("service_viewed", 3), ("service_viewed → salon_viewed", 1)]


def _with_returns(con: duckdb.DuckDBPyConnection) -> None:
    """c6 opens the app three times around browsing and booking: Discovery at 0, 30 and 90
    minutes, Consideration at 10 and 40, Decision at 60."""
    rows = [("e90", "c6", "Discovery", 1, "app_opened", minutes(0)),
            ("e91", "c6", "Consideration", 2, "service_viewed", minutes(10)),
            ("e92", "c6", "Discovery", 1, "app_opened", minutes(30)),
            ("e93", "c6", "Consideration", 2, "service_viewed", minutes(40)),
            ("e94", "c6", "Decision", 3, "slot_selected", minutes(60)),
            ("e95", "c6", "Discovery", 1, "app_opened", minutes(90))]
    con.executemany("insert into stage_events values (?, ?, ?, ?, ?, ?)", rows)
    con.execute("insert into journeys values ('c6', false, 'ios', 'organic')")


def test_occurrence_first_keeps_returns_out_of_the_paths(con, tmp_path: Path) -> None:
    _with_returns(con)
    text = (SAMPLE_CONFIG.parent / "journey_map.yaml").read_text()
    assert "occurrence: first" in text  # the sample's Discovery
    every = tmp_path / "every.yaml"
    every.write_text(text.replace("occurrence: first", "occurrence: all"))
    build_mining_log(con, load_journey_map(every))
    # every visit a step: back to Discovery twice
    assert paths(con)["c6"] == ["Discovery", "Consideration", "Discovery", "Consideration",
                                "Decision", "Discovery"]
    build_mining_log(con, load_journey_map(SAMPLE_CONFIG.parent / "journey_map.yaml"))
    # Discovery on its first event only: the two Consideration visits become one
    assert paths(con)["c6"] == ["Discovery", "Consideration", "Decision"]
    assert paths(con)["c4"][:2] == ["Discovery", "Consideration"]  # others unchanged


def test_stage_returns_count_the_visits_back(con, jmap, tmp_path: Path) -> None:
    _with_returns(con)
    build_mining_tables(con, jmap, tmp_path / "models")
    got = {r[0]: r[1:] for r in con.execute(
        "select stage, customers_reached_later, customers_returning, return_rate, "
        "return_visits, median_seconds_to_return from stage_returns").fetchall()}
    # Discovery: customers with a later stage: c1 c2 c3 c4 c6 (c5 has Discovery only); back
    # to Discovery after their first later event: c6 only, twice (30 and 90 min), first 20
    # minutes after its first Consideration (10 min)
    assert got["Discovery"] == (5, 1, pytest.approx(1 / 5), 2, 20 * 60)
    # Consideration: later stages reached by c1 c2 c3 c4 c6; back to it afterwards: c3
    # (Purchase at 3, Consideration at 6: 3 min) and c4 (Decision at 3 ... Consideration at
    # 200: 197 min); c6's second Consideration (40) is before its Decision (60): not a return
    assert got["Consideration"] == (5, 2, pytest.approx(2 / 5), 2,
                                    pytest.approx((3 * 60 + 197 * 60) / 2))
    # the last stage has nothing after it
    assert got["Repeat"] == (0, 0, None, 0, None)


def test_journey_variants_has_one_row_per_journey(tmp_path: Path) -> None:
    """From `events` through stage_events and journeys: a customer with stage events but no
    entry (a booking and a payment, no app event of theirs: Decision and Purchase without
    Discovery) has no journey, so no variant either. Before the mining log took its cases from
    `journeys` that customer had a journey_variants row (the 10M-event run's 999,373 variant
    rows against 999,371 journeys)."""
    from tests.events import DAY, HOUR, T0, E, make_events_table
    from transforms.journeys import build_journeys
    from transforms.purchases import build_purchases
    from transforms.stages import build_stage_events

    con = duckdb.connect()
    create_macros(con)
    make_events_table(con, [
        # j1: Discovery, Consideration, Decision, Purchase
        E("j1", "app_opened", T0),
        E("j1", "service_viewed", T0 + HOUR),
        E("j1", "booking_created", T0 + 2 * HOUR, booking_id="b1", amount=20),
        E("j1", "payment_succeeded", T0 + 3 * HOUR, booking_id="b1", payment_id="p1",
          amount=20, method="card"),
        # j2: app open and booking in the same second (a tie): Discovery -> Decision
        E("j2", "app_opened", T0 + DAY),
        E("j2", "booking_created", T0 + DAY, booking_id="b2", amount=30),
        # nj: booking and payment only -> stage events at Decision and Purchase, no journey
        E("nj", "booking_created", T0 + 2 * DAY, booking_id="b3", amount=40),
        E("nj", "payment_succeeded", T0 + 2 * DAY + HOUR, booking_id="b3", payment_id="p3",
          amount=40, method="card"),
    ])
    jmap = load_journey_map(SAMPLE_CONFIG.parent / "journey_map.yaml")
    build_stage_events(con, jmap)
    build_purchases(con, jmap)
    build_journeys(con, jmap)
    assert {r[0] for r in con.execute("select distinct customer_id from stage_events"
                                      ).fetchall()} == {"j1", "j2", "nj"}
    assert sorted(r[0] for r in con.execute("select customer_id from journeys").fetchall()
                  ) == ["j1", "j2"]
    stats = build_mining_tables(con, jmap, tmp_path / "models")
    assert stats.journeys == 2
    got = dict(con.execute("select jv.customer_id, v.path from journey_variants jv "
                           "join variants v using (variant_id)").fetchall())
    assert got == {"j1": "Discovery → Consideration → Decision → Purchase",
                   "j2": "Discovery → Decision"}
    assert con.execute("""select count(*) from mining_log where "case" = 'nj'""").fetchone() \
        == (0,)
    # 2 journeys, one path each; the variants' journeys add up to them
    assert con.execute("select sum(journeys) from variants").fetchone() == (2,)
