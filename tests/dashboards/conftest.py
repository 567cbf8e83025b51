"""A tiny warehouse built by the real transforms, for the dashboard tests.

`write_exports` writes hand-made export files (clickstream, bookings, payments) for 14
customers into a `TinyProject`; `build_warehouse` runs ingest -> events -> journeys -> metrics
-> run settings -> period figures -> dashboard tables -> mining on them, in the order the
assets run. A hostile value (`EVIL`) sits in every free-text field that reaches a page.

The stories (2024, UTC; conversion window 14 days; data end Tue 30 Apr 12:00; the journey map
is the sample's):

- c01 (android, city EVIL): clicks a paid_social campaign Mon 4 Mar, installs, views a service
  (screen EVIL), books b01 and pays (card); served 6 Mar, rates 5. Books and pays b02 on 10 Mar
  (the Repeat stage, in its window), b03 on Thu 25 Apr (3rd purchase).
- c02 (ios): installs 5 Mar, books b04, pays (paypal); served 7 Mar, rates 1, complaint EVIL.
- c03 (android, existing user: app_opened): 6 Mar books b05, a card payment fails
  (card_declined), the next succeeds; served 8 Mar, rates 4. Pays b06 on 25 Mar (day 19).
- c04 installs 7 Mar, books b07, pays; served 9 Mar. c05 installs 8 Mar, books b08, pays;
  pays b13 on Mon 22 Apr (2nd purchase).
- c06 opens the app Mon 15 Apr and books b09, never pays (the only Decision day with dropout).
- c07 installs 10 Apr, books b10, pays. c10 installs 5 Apr, books b11, an apple_pay payment
  fails (insufficient_funds), a card payment succeeds.
- c08 opens the app 3 Apr, views a service, opens the app again 4 Apr (Discovery repeated).
  c09 clicks a paid_social campaign 4 Apr, installs, views a service; never books.
- c13 installs Thu 18 Apr, books b14, pays (klarna). c14 installs Sat 20 Apr, books b15 and
  pays; books b16 on 21 Apr and pays, refunded 22 Apr (not a purchase).
- c11 installs Fri 26 Apr, books b12, pays. c12 opens the app Tue 30 Apr 12:00 (the data end).
- one clickstream line with event name EVIL (quarantined).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from tests.conftest import TinyProject
from transforms import (
    bookings,
    daily_rates,
    dashboard_tables,
    ingest,
    ingest_periods,
    journey_map_tables,
    journeys,
    periods,
    purchases,
    repeat,
    stage_funnels,
    stages,
)
from transforms.definitions import create_macros
from transforms.events import build_events
from transforms.journey_findings import build_findings
from transforms.journey_mining import build_mining_tables
from transforms.project import load_project
from transforms.repeat_experience import build_repeat_by_experience
from transforms.settings import build_run_settings, read_settings, settings_from_journey_map

EVIL = "<script>alert(1)</script>"
# the build time the pages show
NOW = dt.datetime(2024, 5, 1, 8, 0)
# Figures per page with the full warehouse (each is a Plotly div the browser must render).
# Bottlenecks: 7, with no finding on the tiny data (test_site: a chart per finding). Index:
# the stage funnel (one div; the period and segment pickers swap its data, dashboards/scope.py)
# and two daily charts. Quality: one chart per grain (day, week, month) and the reasons.
# Paths: the process map is an SVG drawn by Graphviz, not a Plotly figure.
EXPECTED_FIGURES = {"index": 3, "journey_map": 0, "bottlenecks": 7, "paths": 4, "repeat": 7,
                    "quality": 4}


def _ts(month: int, day: int, hour: int, minute: int = 0) -> str:
    return dt.datetime(2024, month, day, hour, minute).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _click(n: int, user: str, event: str, month: int, day: int, hour: int, minute: int = 0, *,
           platform: str = "android", medium: str | None = None, screen: str = "Home",
           city: str = "Berlin") -> dict:
    ts = _ts(month, day, hour, minute)
    ctx: dict = {"platform": platform, "app": {"version": "5.2.0"}, "screen": {"name": screen},
                 "location": {"city": city}}
    if medium:
        ctx["campaign"] = {"source": "instagram", "medium": medium, "name": "spring"}
    return {"messageId": f"m{n:03d}", "anonymousId": f"a-{user}", "userId": user,
            "event": event, "timestamp": ts, "receivedAt": ts, "context": ctx,
            "properties": {}}


# (user, event, month, day, hour, minute, extra context)
CLICKS = [
    ("c01", "campaign_clicked", 3, 4, 9, 0, {"medium": "paid_social", "city": EVIL}),
    ("c01", "app_installed", 3, 4, 9, 1, {"city": EVIL}),
    ("c01", "service_viewed", 3, 4, 9, 10, {"city": EVIL, "screen": EVIL}),
    ("c02", "app_installed", 3, 5, 9, 0, {"platform": "ios"}),
    ("c03", "app_opened", 3, 6, 9, 0, {}),
    ("c04", "app_installed", 3, 7, 9, 0, {}),
    ("c05", "app_installed", 3, 8, 9, 0, {}),
    ("c08", "app_opened", 4, 3, 9, 0, {}),
    ("c08", "service_viewed", 4, 3, 9, 10, {}),
    ("c08", "app_opened", 4, 4, 9, 0, {}),
    ("c09", "campaign_clicked", 4, 4, 9, 0, {"medium": "paid_social"}),
    ("c09", "app_installed", 4, 4, 9, 1, {}),
    ("c09", "service_viewed", 4, 4, 9, 10, {}),
    ("c10", "app_installed", 4, 5, 9, 0, {}),
    ("c07", "app_installed", 4, 10, 9, 0, {}),
    ("c06", "app_opened", 4, 15, 9, 0, {}),
    ("c13", "app_installed", 4, 18, 9, 0, {}),
    ("c14", "app_installed", 4, 20, 9, 0, {}),
    ("c11", "app_installed", 4, 26, 9, 0, {}),
    ("c12", "app_opened", 4, 30, 12, 0, {}),
]
# booking -> (customer, price, [(status, month, day, hour, minute, rating, complaint)])
BOOKINGS = {
    "b01": ("c01", 48, [("created", 3, 4, 9, 30, None, None),
                        ("completed", 3, 6, 15, 0, None, None),
                        ("reviewed", 3, 6, 16, 0, 5, None)]),
    "b02": ("c01", 40, [("created", 3, 10, 10, 0, None, None),
                        ("completed", 3, 12, 10, 0, None, None)]),
    "b03": ("c01", 40, [("created", 4, 25, 10, 0, None, None)]),
    "b04": ("c02", 40, [("created", 3, 5, 10, 0, None, None),
                        ("completed", 3, 7, 10, 0, None, None),
                        ("reviewed", 3, 7, 11, 0, 1, EVIL)]),
    "b05": ("c03", 40, [("created", 3, 6, 10, 0, None, None),
                        ("completed", 3, 8, 10, 0, None, None),
                        ("reviewed", 3, 8, 11, 0, 4, None)]),
    "b06": ("c03", 40, [("created", 3, 25, 10, 0, None, None)]),
    "b07": ("c04", 40, [("created", 3, 7, 10, 0, None, None),
                        ("completed", 3, 9, 10, 0, None, None)]),
    "b08": ("c05", 40, [("created", 3, 8, 10, 0, None, None)]),
    "b13": ("c05", 40, [("created", 4, 22, 10, 0, None, None)]),
    "b09": ("c06", 40, [("created", 4, 15, 10, 0, None, None)]),
    "b10": ("c07", 40, [("created", 4, 10, 10, 0, None, None)]),
    "b11": ("c10", 40, [("created", 4, 5, 10, 0, None, None)]),
    "b12": ("c11", 40, [("created", 4, 26, 10, 0, None, None)]),
    "b14": ("c13", 40, [("created", 4, 18, 10, 0, None, None)]),
    "b15": ("c14", 40, [("created", 4, 20, 10, 0, None, None)]),
    "b16": ("c14", 40, [("created", 4, 21, 10, 0, None, None)]),
}
# (payment, booking, method, status, failure reason, month, day, hour, minute)
PAYMENTS = [
    ("p01", "b01", "card", "succeeded", "", 3, 4, 9, 35),
    ("p02", "b02", "card", "succeeded", "", 3, 10, 10, 5),
    ("p03", "b03", "card", "succeeded", "", 4, 25, 10, 5),
    ("p04", "b04", "paypal", "succeeded", "", 3, 5, 10, 5),
    ("p05", "b05", "card", "failed", "card_declined", 3, 6, 10, 5),
    ("p06", "b05", "card", "succeeded", "", 3, 6, 10, 6),
    ("p07", "b06", "card", "succeeded", "", 3, 25, 10, 5),
    ("p08", "b07", "card", "succeeded", "", 3, 7, 10, 5),
    ("p09", "b08", "card", "succeeded", "", 3, 8, 10, 5),
    ("p13", "b13", "card", "succeeded", "", 4, 22, 10, 5),
    ("p10", "b10", "card", "succeeded", "", 4, 10, 10, 5),
    ("p17", "b11", "apple_pay", "failed", "insufficient_funds", 4, 5, 10, 4),
    ("p11", "b11", "card", "succeeded", "", 4, 5, 10, 5),
    ("p12", "b12", "card", "succeeded", "", 4, 26, 10, 5),
    ("p14", "b14", "klarna", "succeeded", "", 4, 18, 10, 5),
    ("p15", "b15", "card", "succeeded", "", 4, 20, 10, 5),
    ("p16", "b16", "card", "succeeded", "", 4, 21, 10, 5),
    ("p16", "b16", "card", "refunded", "", 4, 22, 10, 0),
]


def _day(month: int, day: int) -> str:
    return f"2024-{month:02d}-{day:02d}"


def write_exports(tiny: TinyProject) -> None:
    """The export files of the stories above, one file per source and UTC day."""
    for n, (user, event, month, day, hour, minute, extra) in enumerate(CLICKS):
        tiny.clicks(_day(month, day), _click(n, user, event, month, day, hour, minute, **extra))
    tiny.clicks(_day(4, 30), _click(999, "c12", EVIL, 4, 30, 11))
    for booking, (customer, price, changes) in BOOKINGS.items():
        for status, month, day, hour, minute, rating, complaint in changes:
            tiny.bookings(_day(month, day), ",".join([
                booking, customer, "s1", "Berlin", "hair", _ts(month, day, hour, minute),
                str(price), "EUR", status, "", "" if rating is None else str(rating),
                complaint or "", _ts(month, day, hour, minute)]))
    for payment, booking, method, status, reason, month, day, hour, minute in PAYMENTS:
        price = BOOKINGS[booking][1]
        tiny.payments(_day(month, day), ",".join([
            payment, booking, str(price), "EUR", method, status, reason,
            _ts(month, day, hour, minute)]))


def build_warehouse(con: duckdb.DuckDBPyConnection, config: Path, *,
                    mining: bool = True) -> None:
    """Every table the dashboard reads, built by the real transforms in asset order."""
    project = load_project(config)
    cfg, jmap = project.config, project.journey_map
    con.execute("SET TimeZone = 'UTC'")
    create_macros(con)
    first, last = cfg.data_range()
    for source in cfg.sources.values():
        ingest.load_range(con, source, first, last)
    ingest_periods.build_ingest_reconciliation_periods(con)
    build_events(con, cfg)
    stages.build_stage_events(con, jmap)
    purchases.build_purchases(con, jmap)
    journeys.build_journeys(con, jmap)
    stage_funnels.build_funnels(con, jmap)
    stage_funnels.build_transitions(con, jmap)
    bookings.build_booking_outcomes(con, jmap)
    bookings.build_booking_funnel(con, jmap)
    bookings.build_payment_failures(con, jmap)
    build_findings(con, jmap)
    daily_rates.build_daily_stage_rates(con, jmap)
    repeat.build_repeat_purchase(con, jmap)
    repeat.build_retention(con, jmap)
    build_repeat_by_experience(con, jmap)
    journey_map_tables.build_stage_touchpoints(con, jmap)
    journey_map_tables.build_stage_pains(con, jmap)
    journey_map_tables.build_stage_metrics(con, jmap, currency=cfg.currency)
    build_run_settings(con, settings_from_journey_map(jmap, currency=cfg.currency))
    settings = read_settings(con)
    periods.build_period_figures(con, settings)
    periods.build_period_funnel(con, settings)
    dashboard_tables.build_dashboard_tables(con, settings)
    if mining:
        build_mining_tables(con, jmap, config.parent / "output" / "models")


def tiny_warehouse(root: Path, *, mining: bool = True,
                   database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A TinyProject at `root` with the stories' exports and its warehouse built."""
    root.mkdir(parents=True, exist_ok=True)
    tiny = TinyProject(root)
    write_exports(tiny)
    con = duckdb.connect(database)
    build_warehouse(con, tiny.config, mining=mining)
    return con


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    """The tiny warehouse, built once per test module."""
    con = tiny_warehouse(tmp_path_factory.mktemp("project"))
    yield con
    con.close()
