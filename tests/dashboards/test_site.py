"""The dashboard site on a small hand-built warehouse.

The fixture writes every table the dashboard reads (schemas of docs/CONTRACTS.md and
docs/TABLES.md) with a few rows whose headline numbers are worked out by hand below, plus a
hostile value (`<script>alert(1)</script>`) in every free-text field that reaches a page.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pytest

from dashboards import fmt
from dashboards.layout import PAGES
from dashboards.site import PLOTLY_JS, build_site, site_size
from transforms.errors import UserError

EVIL = "<script>alert(1)</script>"
EVIL_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
STAGES = ["Discovery", "Consideration", "Decision", "Purchase", "Service", "Repeat"]
NOW = dt.datetime(2024, 5, 1, 8, 0)
D = dt.date
T = dt.datetime

# Figures per page with the full fixture (each is a Plotly div the browser must render).
EXPECTED_FIGURES = {"index": 3, "journey_map": 0, "bottlenecks": 8, "paths": 5, "repeat": 7,
                    "quality": 2}


def _table(con: duckdb.DuckDBPyConnection, name: str, schema: str,
           rows: Sequence[Sequence[object]]) -> None:
    con.execute(f"create table {name} ({schema})")
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        con.executemany(f"insert into {name} values ({marks})", [list(r) for r in rows])


def _days(start: dt.date, n: int) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(n)]


def build_sample_warehouse(con: duckdb.DuckDBPyConnection, *, mining: bool = True) -> None:
    """Every table the dashboard reads, a few rows each. Data runs 1 Feb – 30 Apr 2024."""
    # --- ingestion ---------------------------------------------------------------------------
    # Payment events (the heatmap reads `payment_attempts` below, not these).
    payments = [(f"payments:pa{i}:{st}", "payments", "c08", f"payment_{st}", T(2024, 4, 29, 10),
                 D(2024, 4, 29), "android", "card", st)
                for i, st in enumerate(["failed"] * 6 + ["succeeded"] * 14 + ["initiated"] * 9)]
    payments += [(f"payments:pi{i}:succeeded", "payments", "c04", "payment_succeeded",
                  T(2024, 4, 28, 10), D(2024, 4, 28), "ios", "paypal", "succeeded")
                 for i in range(25)]
    _table(con, "events", "event_id VARCHAR, source VARCHAR, customer_id VARCHAR, "
           "event_name VARCHAR, event_ts TIMESTAMP, event_date DATE, platform VARCHAR, "
           "method VARCHAR, status VARCHAR", [
               ("clickstream:1", "clickstream", "c01", "app_installed", T(2024, 2, 1, 9),
                D(2024, 2, 1), "ios", None, None),
               ("clickstream:2", "clickstream", "c10", EVIL, T(2024, 4, 30, 18), D(2024, 4, 30),
                "web", None, None),
               ("bookings:b8:created", "bookings", "c08", "booking_created", T(2024, 4, 30, 12),
                D(2024, 4, 30), "android", None, "created"),
           ] + payments)
    for source, ext in (("clickstream", "jsonl"), ("bookings", "csv"), ("payments", "csv")):
        _table(con, f"raw_{source}", "partition_date DATE, source_file VARCHAR, "
               "source_line BIGINT, currency VARCHAR",
               [(D(2024, 4, 29), f"raw/{source}/2024-04-29.{ext}", 1, "EUR"),
                (D(2024, 4, 30), f"raw/{source}/2024-04-30.{ext}", 1, "EUR")])
    _table(con, "ingest_reconciliation", "source VARCHAR, partition_date DATE, rows_read BIGINT, "
           "rows_loaded BIGINT, rows_quarantined BIGINT, rows_duplicate BIGINT, "
           "clock_skew_corrected BIGINT, loaded_at TIMESTAMP",
           [(s, d, 1000, 990 - i, 7 + i, 3, 1, T(2024, 5, 1, 2))
            for s in ("clickstream", "bookings", "payments")
            for i, d in enumerate(_days(D(2024, 4, 26), 5))])
    _table(con, "quarantine", "source VARCHAR, partition_date DATE, source_file VARCHAR, "
           "source_line BIGINT, raw_record VARCHAR, reason VARCHAR, kind VARCHAR", [
               ("clickstream", D(2024, 4, 28), "f", 3, "{}", "missing required anonymous_id",
                "rejected"),
               ("clickstream", D(2024, 4, 28), "f", 4, "{}", f"event_name not allowed: {EVIL}",
                "rejected"),
               ("bookings", D(2024, 4, 29), "f", 5, "x", "duplicate of line 4", "duplicate"),
           ])

    # --- journeys ----------------------------------------------------------------------------
    # (customer, entry day, customer_type, converted, complete): conversion window 30 days,
    # data end 30 Apr, so entries up to 31 Mar are complete.
    journeys = [
        ("c01", D(2024, 2, 10), "new", True, True),
        ("c02", D(2024, 2, 12), "new", False, True),
        ("c03", D(2024, 3, 5), "new", True, True),
        ("c04", D(2024, 3, 10), "new", True, True),
        ("c05", D(2024, 3, 20), "new", False, True),
        ("c06", D(2024, 3, 31), "returning", True, True),
        ("c07", D(2024, 4, 5), "new", False, False),
        ("c08", D(2024, 4, 10), "new", True, False),
        ("c09", D(2024, 4, 20), "new", False, False),
        ("c10", D(2024, 4, 29), "returning", False, False),
    ]
    _table(con, "journeys", "customer_id VARCHAR, entry_ts TIMESTAMP, entry_date DATE, "
           "channel VARCHAR, platform VARCHAR, customer_type VARCHAR, furthest_stage VARCHAR, "
           "furthest_stage_index INTEGER, converted BOOLEAN, complete BOOLEAN",
           [(c, T(d.year, d.month, d.day, 10), d, "organic", "ios", kind,
             "Purchase" if conv else "Decision", 4 if conv else 3, conv, done)
            for c, d, kind, conv, done in journeys])
    # (booking, customer, paid day, purchase): purchase = paid and not refunded
    bookings = [
        ("b1", "c01", D(2024, 2, 11), True),
        ("b2", "c03", D(2024, 3, 6), True),
        ("b3", "c01", D(2024, 3, 20), True),
        ("b4", "c04", D(2024, 4, 5), True),
        ("b5", "c06", D(2024, 4, 10), True),
        ("b6", "c01", D(2024, 4, 12), True),
        ("b7", "c03", D(2024, 4, 15), False),
        ("b8", "c08", D(2024, 4, 20), True),
    ]
    _table(con, "booking_outcomes", "booking_id VARCHAR, customer_id VARCHAR, paid_ts TIMESTAMP, "
           "paid BOOLEAN, refunded BOOLEAN, purchase BOOLEAN",
           [(b, c, T(d.year, d.month, d.day, 12), True, not p, p) for b, c, d, p in bookings])

    funnel_cols = ("stage_index INTEGER, stage VARCHAR, optional BOOLEAN, entered BIGINT, "
                   "observed BIGINT, overall_conversion DOUBLE, step_conversion DOUBLE, "
                   "dropoff_count BIGINT, dropout_rate DOUBLE, median_seconds DOUBLE, "
                   "p75_seconds DOUBLE, p90_seconds DOUBLE, mean_seconds DOUBLE")

    def funnel(entered: list[int]) -> list[tuple]:
        rows = []
        for i, (stage, n) in enumerate(zip(STAGES, entered, strict=True)):
            prev = entered[i - 1] if i else None
            rows.append((i + 1, stage, stage == "Consideration", n, n, n / entered[0],
                         None if prev is None else n / prev,
                         None if prev is None else prev - n,
                         None if prev is None else 1 - n / prev,
                         None if i == 0 else 3600.0 * i, None if i == 0 else 7200.0 * i,
                         None if i == 0 else 36000.0 * i, None if i == 0 else 5000.0 * i))
        return rows

    total = [12345, 8000, 6000, 3000, 2500, 500]
    _table(con, "funnel_steps", funnel_cols + ", incomplete_journeys BIGINT",
           [r + (17,) for r in funnel(total)])
    _table(con, "funnel_cohorts", "cohort_date DATE, complete BOOLEAN, " + funnel_cols,
           [(D(2024, 2, 10), True) + r for r in funnel([100, 80, 60, 50, 40, 10])]
           + [(D(2024, 3, 10), True) + r for r in funnel([10000, 6000, 5000, 2000, 1500, 300])]
           + [(D(2024, 3, 20), True) + r for r in funnel([2345, 2000, 1000, 1000, 1000, 200])]
           + [(D(2024, 4, 20), False) + r for r in funnel([50, 40, 30, 10, 5, 1])])
    segments = [("channel", "paid_social", [4000, 3000, 2500, 600, 500, 90]),
                ("channel", EVIL, [100, 90, 80, 40, 30, 5]),
                ("platform", "android", [5000, 3500, 2800, 1000, 900, 150])]
    _table(con, "funnel_segments", "segment VARCHAR, segment_value VARCHAR, " + funnel_cols,
           [(s, v) + r for s, v, e in segments for r in funnel(e)])

    transition_cols = (
        "from_index INTEGER, from_stage VARCHAR, to_index INTEGER, to_stage VARCHAR, "
        "entered_from BIGINT, reached_to BIGINT, dropoff_count BIGINT, dropout_rate DOUBLE, "
        "timed BIGINT, median_seconds DOUBLE, p75_seconds DOUBLE, p90_seconds DOUBLE, "
        "mean_seconds DOUBLE, rank_dropout INTEGER, rank_dropoff INTEGER, rank_time INTEGER, "
        "is_bottleneck BOOLEAN")

    def transitions(entered: list[int]) -> list[tuple]:
        """Ranked and flagged only up to Purchase (stage 4), as transforms/journeys.py does."""
        rates = [1 - b / a for a, b in zip(entered, entered[1:], strict=False)]
        order = sorted((i for i in range(len(rates)) if i + 2 <= 4), key=lambda i: -rates[i])
        rank = {i: order.index(i) + 1 for i in order}
        return [(i + 1, STAGES[i], i + 2, STAGES[i + 1], a, b, a - b, rates[i], b,
                 600.0 * (i + 1) ** 3, 1200.0 * (i + 1) ** 3, 2400.0 * (i + 1) ** 3,
                 900.0 * (i + 1) ** 3, rank.get(i), rank.get(i), 3 - i if i in rank else None,
                 rank.get(i) == 1)
                for i, (a, b) in enumerate(zip(entered, entered[1:], strict=False))]

    _table(con, "stage_transitions", transition_cols, transitions(total))
    seg_rows = []
    for s, v, e in segments:
        for r in transitions(e):
            rest_rate = r[7] - (0.2 if v == "paid_social" and r[3] == "Purchase" else 0.01)
            seg_rows.append((s, v) + r + (9000, 6000, rest_rate, r[7] - rest_rate,
                                          -6.1 if v == "paid_social" else -0.2,
                                          1e-6 if v == "paid_social" else 0.8,
                                          v == "paid_social" and r[3] == "Purchase"))
    _table(con, "stage_transition_segments", "segment VARCHAR, segment_value VARCHAR, "
           + transition_cols + ", rest_entered_from BIGINT, rest_reached_to BIGINT, "
           "rest_dropout_rate DOUBLE, dropout_diff DOUBLE, z_score DOUBLE, p_value DOUBLE, "
           "significant BOOLEAN", seg_rows)
    _table(con, "journey_stages", "customer_id VARCHAR, stage VARCHAR, stage_index INTEGER, "
           "seconds_from_previous DOUBLE, complete BOOLEAN",
           [(f"c{i:02d}", stage, k + 1, float(300 * (i + 1) * 4 ** k), True)
            for i in range(10) for k, stage in enumerate(STAGES) if k > 0])

    # --- bookings and payments ---------------------------------------------------------------
    bf_cols = ("segment VARCHAR, segment_value VARCHAR, step_index INTEGER, step VARCHAR, "
               "entered BIGINT, overall_conversion DOUBLE, step_conversion DOUBLE, "
               "dropoff_count BIGINT, dropout_rate DOUBLE, median_seconds DOUBLE, "
               "p75_seconds DOUBLE, p90_seconds DOUBLE, mean_seconds DOUBLE, "
               "payment_started BIGINT, payment_not_paid BIGINT, payment_dropout_rate DOUBLE")
    bf = []
    for seg, val, n, started, not_paid in (("all", "all", 1000, 900, 180),
                                           ("platform", "android", 400, 380, 130),
                                           ("platform", "ios", 600, 520, 50)):
        paid = started - not_paid
        served = int(paid * 0.8)
        for i, (step, e) in enumerate((("Decision", n), ("Purchase", paid),
                                       ("Service", served))):
            prev = [n, paid][i - 1] if i else None
            bf.append((seg, val, i + 1, step, e, e / n, None if prev is None else e / prev,
                       None if prev is None else prev - e,
                       None if prev is None else 1 - e / prev, 600.0 * i, 900.0 * i,
                       1800.0 * i, 700.0 * i, started, not_paid, not_paid / started))
    _table(con, "booking_funnel", bf_cols, bf)
    # Payment attempts: android + card 0 of 8 on 28 Apr and 6 of 12 on 29 Apr = 6 of 20
    # (30.0%), ios + paypal 0 of 25.
    _table(con, "payment_attempts", "event_date DATE, platform VARCHAR, method VARCHAR, "
           "attempts BIGINT, failures BIGINT, failure_rate DOUBLE", [
               (D(2024, 4, 28), "android", "card", 8, 0, 0.0),
               (D(2024, 4, 28), "ios", "paypal", 25, 0, 0.0),
               (D(2024, 4, 29), "android", "card", 12, 6, 0.5),
           ])
    _table(con, "payment_failures", "event_date DATE, platform VARCHAR, method VARCHAR, "
           "failure_reason VARCHAR, failures BIGINT, attempts BIGINT, failure_rate DOUBLE, "
           "total_failure_rate DOUBLE", [
               (D(2024, 4, 29), "android", "card", "card_declined_3ds", 30, 100, 0.3, 0.35),
               (D(2024, 4, 29), "android", "card", EVIL, 5, 100, 0.05, 0.35),
               (D(2024, 4, 29), "ios", "paypal", "insufficient_funds", 2, 80, 0.025, 0.025),
           ])
    dsr = []
    for d in _days(D(2024, 4, 1), 30):
        outage = d == D(2024, 4, 15)
        for i, stage in enumerate(STAGES):
            entered = 100
            converted = None if i == 5 else (10 if outage and stage == "Decision" else 60)
            attempts = 50 if stage == "Purchase" else None
            failures = 5 if stage == "Purchase" else None
            dsr.append((d, i + 1, stage, entered, converted,
                        None if converted is None else 1 - converted / entered,
                        attempts, failures, None if attempts is None else failures / attempts,
                        d <= D(2024, 3, 31) or d < D(2024, 4, 20),
                        5.2 if outage and stage == "Decision" else 0.1, None,
                        outage and stage == "Decision",
                        "dropout_rate high" if outage and stage == "Decision" else None))
    _table(con, "daily_stage_rates", "event_date DATE, stage_index INTEGER, stage VARCHAR, "
           "entered BIGINT, converted BIGINT, dropout_rate DOUBLE, payment_attempts BIGINT, "
           "payment_failures BIGINT, payment_failure_rate DOUBLE, complete BOOLEAN, "
           "dropout_z DOUBLE, failure_z DOUBLE, anomaly BOOLEAN, anomaly_reason VARCHAR", dsr)

    # --- repeat purchase ---------------------------------------------------------------------
    rp = []
    for group, value, rates in (("all", "all", (0.2, 0.3, 0.35)),
                                ("first_rating", "low (<=2)", (0.05, 0.08, 0.1)),
                                ("first_rating", "high (>=3)", (0.25, 0.33, 0.4))):
        for h, r in zip((30, 60, 90), rates, strict=True):
            rp.append((group, value, h, 1000, 300, 800, int(800 * r), r, 21.0, 40.0, 70.0, 1.4))
    _table(con, "repeat_purchase", "group_name VARCHAR, group_value VARCHAR, horizon_days "
           "INTEGER, purchasers BIGINT, repeat_purchasers BIGINT, eligible BIGINT, "
           "repeated_within BIGINT, repeat_rate DOUBLE, median_days_to_second DOUBLE, "
           "p75_days_to_second DOUBLE, p90_days_to_second DOUBLE, mean_purchases DOUBLE", rp)
    _table(con, "purchase_frequency", "purchases INTEGER, customers BIGINT, share DOUBLE",
           [(1, 700, 0.7), (2, 200, 0.2), (3, 100, 0.1)])
    rc = []
    weeks = _days(D(2024, 2, 5), 12)[::7] + [D(2024, 2, 5) + dt.timedelta(weeks=k)
                                            for k in range(2, 12)]
    weeks = sorted(set(weeks))
    for ci, cohort in enumerate(weeks):
        for p in range(len(weeks) - ci):
            start = cohort + dt.timedelta(weeks=p)
            on = 1.0 if p == 0 else 0.1 / p
            rc.append(("week", cohort, p, start, 100, int(100 * on), int(100 * min(1, on * 2)),
                       on, min(1.0, on * 2), start + dt.timedelta(days=6) <= D(2024, 4, 30)))
    _table(con, "retention_cohorts", "period_type VARCHAR, cohort_start DATE, period_number "
           "INTEGER, period_start DATE, cohort_size BIGINT, customers_on BIGINT, "
           "customers_on_or_after BIGINT, share_on DOUBLE, share_on_or_after DOUBLE, "
           "complete BOOLEAN", rc)
    _table(con, "lifecycle", "period_type VARCHAR, period_start DATE, status VARCHAR, "
           "customers BIGINT, complete BOOLEAN",
           [("week", w, s, n + k, w != weeks[-1])
            for k, w in enumerate(weeks)
            for s, n in (("new", 50), ("returning", 10), ("resurrecting", 5), ("dormant", 8))])

    # --- journey map -------------------------------------------------------------------------
    _table(con, "stage_touchpoints", "stage VARCHAR, stage_index INTEGER, dimension VARCHAR, "
           "value VARCHAR, events BIGINT, customers BIGINT, share DOUBLE, rank INTEGER", [
               ("Discovery", 1, "channel", "paid_social", 500, 300, 0.5, 1),
               ("Discovery", 1, "screen", EVIL, 100, 90, 0.1, 1),
               ("Purchase", 4, "method", "card", 800, 600, 0.8, 1),
           ])
    _table(con, "stage_pains", "stage VARCHAR, stage_index INTEGER, pain VARCHAR, "
           "reason VARCHAR, events BIGINT, customers BIGINT, share DOUBLE, rank INTEGER", [
               ("Purchase", 4, "payment_failed", "card_declined_3ds", 300, 250, 0.083, 1),
               ("Service", 5, "complaint", EVIL, 20, 20, 0.008, 1),
               ("Service", 5, "no_show", "(none)", 40, 40, 0.016, 2),
           ])
    _table(con, "stage_metrics", "stage VARCHAR, stage_index INTEGER, metric VARCHAR, "
           "segment VARCHAR, segment_value VARCHAR, value DOUBLE, unit VARCHAR", [
               ("Discovery", 1, "new_customers", "all", "all", 12345, "customers"),
               ("Discovery", 1, "new_customers", "channel", "paid_social", 4000, "customers"),
               ("Consideration", 2, "time_in_app_minutes", "all", "all", 12.5, "minutes"),
               ("Decision", 3, "average_basket", "all", "all", 45.5, "EUR"),
               ("Purchase", 4, "payment_dropout_rate", "all", "all", 0.2, "rate"),
               ("Purchase", 4, "failure_reason_share", "failure_reason", "card_declined_3ds",
                0.6, "rate"),
               ("Service", 5, "average_rating", "all", "all", 4.25, "stars"),
               ("Repeat", 6, "median_days_to_repeat", "all", "all", 21, "days"),
           ])

    if not mining:
        return
    # --- mining ------------------------------------------------------------------------------
    variants = [(["Discovery"], 5000, 0.0), (["Discovery", "Consideration", "Decision"], 3000, 0.0),
                (["Discovery", "Consideration", "Decision", "Purchase", "Service"], 2500, 1.0),
                (["Discovery", "Decision", "Purchase", "Service", "Repeat"], 500, 1.0),
                (["Discovery", "Consideration", "Consideration", "Decision"], 345, 0.0)]
    total_v = sum(v[1] for v in variants)
    _table(con, "variants", "variant_id INTEGER, stages VARCHAR[], path VARCHAR, journeys BIGINT, "
           "share DOUBLE, median_duration_s DOUBLE, converted_share DOUBLE",
           [(i, s, " → ".join(s), n, n / total_v, 3600.0 * len(s), c)
            for i, (s, n, c) in enumerate(variants)])
    _table(con, "dfg_edges", "source VARCHAR, target VARCHAR, count BIGINT, mean_s DOUBLE, "
           "median_s DOUBLE, p90_s DOUBLE", [
               ("Discovery", "Consideration", 5845, 7200, 3600, 36000),
               ("Consideration", "Decision", 5845, 90000, 86400, 400000),
               ("Consideration", "Consideration", 345, 600, 300, 1200),
               ("Discovery", "Decision", 500, 4000, 1800, 9000),
               ("Decision", "Purchase", 3000, 700, 300, 3000),
               ("Purchase", "Service", 3000, 600000, 500000, 1200000),
               ("Service", "Repeat", 500, 3000000, 2500000, 5000000),
           ])
    _table(con, "dfg_endpoints", "activity VARCHAR, kind VARCHAR, count BIGINT", [
        ("Discovery", "start", 11345), ("Discovery", "end", 5000),
        ("Decision", "end", 3345), ("Service", "end", 2500), ("Repeat", "end", 500)])
    _table(con, "dropoff_points", "stage VARCHAR, journeys BIGINT, share DOUBLE",
           [("Discovery", 5000, 0.6), ("Decision", 3345, 0.4)])
    _table(con, "conformance_overall", "journeys BIGINT, fitness DOUBLE, fitting_share DOUBLE",
           [(11345, 0.9612, 0.93)])
    _table(con, "conformance_deviations", "stage VARCHAR, deviation VARCHAR, segment VARCHAR, "
           "segment_value VARCHAR, journeys BIGINT", [
               ("Consideration", "skipped", "all", "all", 500),
               ("Consideration", "repeated", "all", "all", 345),
               ("Consideration", "repeated", "platform", "ios", 100)])


@pytest.fixture(scope="module")
def warehouse() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    build_sample_warehouse(con)
    yield con
    con.close()


@pytest.fixture(scope="module")
def site(warehouse: duckdb.DuckDBPyConnection, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_site(warehouse, tmp_path_factory.mktemp("site"), period_days=28, now=NOW)


def _pages(site: Path) -> dict[str, str]:
    return {p.slug: (site.parent / f"{p.slug}.html").read_text(encoding="utf-8") for p in PAGES}


def _text(page: str) -> str:
    """Visible-ish text of a page: tags dropped, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def test_every_page_is_written_with_its_figures(site: Path) -> None:
    pages = _pages(site)
    assert site.name == "index.html"
    assert set(pages) == {"index", "journey_map", "bottlenecks", "paths", "repeat", "quality"}
    for slug, page in pages.items():
        divs = len(re.findall(r'class="plotly-graph-div"', page))
        assert divs == EXPECTED_FIGURES[slug], slug
        assert f'data-figures="{divs}"' in page
        for other in PAGES:  # the nav bar links every page
            assert f'href="{other.slug}.html"' in page


def test_plotly_js_is_shipped_once_and_nothing_is_fetched(site: Path) -> None:
    folder = site.parent
    js = [p.name for p in folder.iterdir() if p.suffix == ".js"]
    assert js == [PLOTLY_JS]
    assert (folder / PLOTLY_JS).stat().st_size > 1_000_000  # the real library, not a stub
    for slug, page in _pages(site).items():
        srcs = re.findall(r'<script[^>]*\ssrc="([^"]*)"', page)
        assert srcs == [PLOTLY_JS], slug
        assert not re.search(r'(src|href)="(https?:)?//', page), slug
        assert "cdn.plot.ly" not in page
        assert len(page) < 400_000, slug  # plotly.js is not inlined


def test_event_values_are_escaped_never_raw(site: Path) -> None:
    pages = _pages(site)
    for slug, page in pages.items():
        assert EVIL not in page, slug
    assert EVIL_ESCAPED in pages["journey_map"]  # touchpoint, pain, persona option
    assert EVIL_ESCAPED in pages["quality"]  # quarantine reason in the table
    # Inside figures the value travels as JSON with < escaped, so it cannot end the script.
    assert "\\u003cscript\\u003ealert(1)" in pages["bottlenecks"]


def test_headline_numbers_worked_out_by_hand(site: Path) -> None:
    text = _text(_pages(site)["index"])
    # Period 3–30 Apr vs 6 Mar – 2 Apr. New customers: c07, c08, c09 vs c04, c05.
    assert "New customers 3 +50.0% vs previous period (2)" in text
    # Purchases: b4, b5, b6, b8 vs b2, b3 (b7 refunded).
    assert "Purchases 4 +100.0% vs previous period (2)" in text
    # Conversion over the 28 entry days up to the last complete cohort (20 Mar): cohorts 10 and
    # 20 Mar, (2,000 + 1,000) / (10,000 + 2,345); before: cohort 10 Feb, 50 / 100.
    assert ("Overall conversion 24.3% -25.7 pp vs previous period (50.0%) 12,345 journeys "
            "entering 22 Feb – 20 Mar 2024") in text
    # The bottleneck named is before Purchase (Repeat's 80.0% is after conversion).
    assert "The largest dropout before Purchase is into Purchase (50.0% of those who reached "\
           "Decision)" in text
    # Repeat: of the buyers c04 c06 c01 c08 only c01 (3rd purchase) had bought before; previous
    # period c03 (1st) and c01 (2nd).
    assert "Repeat rate 25.0% -25.0 pp vs previous period (50.0%)" in text


def test_numbers_are_formatted_for_reading(site: Path) -> None:
    pages = _pages(site)
    index = _text(pages["index"])
    assert "12,345" in index and "12345" not in index.replace("12,345", "")
    assert "64.8%" in index  # 8,000 / 12,345 step conversion
    assert "80.0%" in index  # dropout into Repeat
    jmap = _text(pages["journey_map"])
    assert "average basket: 45.50 EUR" in jmap
    assert "time in app: 12 min" in jmap
    assert "new customers: 4,000" in jmap  # the paid_social persona's own value
    assert "median days to repeat: 21.0 d" in jmap
    assert "card_declined_3ds" in _text(pages["bottlenecks"])
    # Attempts summed over the days of `payment_attempts`, the day without failures too.
    assert "30.0%<br>n=20" in pages["bottlenecks"].replace("\\u003c", "<").replace(
        "\\u003e", ">")
    assert "Highest failure rate: android with card — 30.0% of 20 attempts failed" in _text(
        pages["bottlenecks"])


def test_bottleneck_is_the_flagged_transition_before_conversion(site: Path) -> None:
    text = _text(_pages(site)["bottlenecks"])
    # Dropout: Discovery 35.2%, Consideration 25.0%, Decision 50.0%; Service -> Repeat's
    # 80.0% comes after Purchase and is not ranked.
    assert ("The bottleneck on the way to Purchase is Decision → Purchase: 50.0% of customers "
            "who reach Decision do not go on (3,000 customers). Steps after conversion are not "
            "ranked (Purchase → Service, Service → Repeat)") in text
    assert "leakiest" not in text


def test_payment_heatmap_needs_payment_attempts(tmp_path: Path) -> None:
    con = duckdb.connect()
    build_sample_warehouse(con)
    con.execute("drop table payment_attempts")  # `events` is still there: no fallback to it
    index = build_site(con, tmp_path / "site", now=NOW)
    page = (index.parent / "bottlenecks.html").read_text(encoding="utf-8")
    assert "Not available:" in page and "payment_attempts" in page
    assert "fig-bottlenecks-failure-matrix" not in page
    assert 'data-figures="6"' in page  # 8 less the heatmap and the reasons chart


@pytest.mark.parametrize("value, expected", [
    (fmt.count(1234567), "1,234,567"), (fmt.count(None), "–"), (fmt.pct(0.1234), "12.3%"),
    (fmt.pct(float("nan")), "–"), (fmt.pp(0.0123), "+1.2 pp"), (fmt.pp(-0.25), "-25.0 pp"),
    (fmt.duration(42), "42 s"), (fmt.duration(600), "10 min"), (fmt.duration(5400), "1.5 h"),
    (fmt.duration(3 * 86400), "3.0 d"), (fmt.money(1234.5), "1,234.50 EUR"),
    (fmt.p_value(0.0001), "<0.001"), (fmt.p_value(0.04321), "0.043"),
])
def test_formats(value: str, expected: str) -> None:
    assert value == expected


def test_story_cues_are_on_the_pages(site: Path) -> None:
    pages = {k: _text(v) for k, v in _pages(site).items()}
    assert "paid_social" in pages["bottlenecks"] and "two-proportion z-test" in pages[
        "bottlenecks"]
    assert "Mon 15 Apr 2024 Decision dropout_rate high" in pages["bottlenecks"]
    assert ("Within 90 days, 10.0% of customers who rated their first visit low bought again, "
            "against 40.0% of those who rated it high.") in pages["repeat"]
    assert "Fitness 96.1%" in pages["paths"]


def test_missing_mining_tables_say_how_to_get_them(tmp_path: Path) -> None:
    con = duckdb.connect()
    build_sample_warehouse(con, mining=False)
    index = build_site(con, tmp_path / "site", now=NOW)
    paths = (index.parent / "paths.html").read_text(encoding="utf-8")
    assert "Not available:" in paths and "journeys mine" in paths
    assert 'data-figures="0"' in paths
    assert 'data-figures="3"' in index.read_text(encoding="utf-8")


@pytest.mark.parametrize("keep", [[], ["events"]])
def test_empty_warehouse_gives_notes_not_a_crash(tmp_path: Path, keep: list[str]) -> None:
    con = duckdb.connect()
    build_sample_warehouse(con)
    tables = [r[0] for r in con.execute("show tables").fetchall()]
    for t in tables:
        if t not in keep:
            con.execute(f"drop table {t}")
    index = build_site(con, tmp_path / "site", now=NOW)
    for p in PAGES:
        page = (index.parent / f"{p.slug}.html").read_text(encoding="utf-8")
        command = "journeys mine" if p.slug == "paths" else "journeys run"
        assert "Not available:" in page and command in page, p.slug


def test_rebuild_is_identical(warehouse: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    a = build_site(warehouse, tmp_path / "a", now=NOW).parent
    b = build_site(warehouse, tmp_path / "b", now=NOW).parent
    for f in a.iterdir():
        assert f.read_bytes() == (b / f.name).read_bytes(), f.name
    assert site_size(a) < 5_000_000 + (a / PLOTLY_JS).stat().st_size


def test_period_must_be_positive(warehouse: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="period_days"):
        build_site(warehouse, tmp_path, period_days=0)




def _project(tmp_path: Path, *, with_warehouse: bool = True) -> Path:
    """A project config like the sample's, whose warehouse holds the hand-built tables."""
    sample = Path(__file__).resolve().parents[2] / "data" / "sample"
    text = (sample / "sources.yaml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^warehouse: .*$", "warehouse: wh/journeys.duckdb", text)
    text = re.sub(r"(?m)^output_dir: .*$", "output_dir: out", text)
    text = re.sub(r"(?m)^journey_map: .*$", f"journey_map: {sample / 'journey_map.yaml'}", text)
    config = tmp_path / "sources.yaml"
    config.write_text(text, encoding="utf-8")
    if with_warehouse:
        (tmp_path / "wh").mkdir()
        con = duckdb.connect(str(tmp_path / "wh" / "journeys.duckdb"))
        build_sample_warehouse(con)
        con.close()
    return config


def test_cli_rebuilds_the_site_from_the_warehouse(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from pipelines.cli import main

    config = _project(tmp_path)
    assert main(["dashboard", "--config", str(config)]) == 0
    index = tmp_path / "out" / "dashboard" / "index.html"
    assert capsys.readouterr().out.splitlines()[0] == str(index.resolve())
    assert index.exists() and (index.parent / PLOTLY_JS).exists()
    assert main(["dashboard", "--config", str(config), "--out", str(tmp_path / "elsewhere"),
                 "--period-days", "28"]) == 0
    assert "Period: 03 Apr 2024 – 30 Apr 2024" in (tmp_path / "elsewhere" / "index.html").read_text(
        encoding="utf-8")


def test_cli_without_a_warehouse_says_to_run_first(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from pipelines.cli import main

    config = _project(tmp_path, with_warehouse=False)
    assert main(["dashboard", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("journeys dashboard: error: no warehouse at ")
    assert "journeys run" in err and "Traceback" not in err


def test_dagster_asset_writes_the_site_with_its_path(tmp_path: Path) -> None:
    import dagster as dg

    from pipelines.defs.dashboards.assets import dashboard_asset
    from pipelines.resources import ProjectResource

    config = _project(tmp_path)
    dashboard = dashboard_asset(["raw_clickstream"])
    result = dg.materialize([dashboard],
                            resources={"project": ProjectResource(config_path=str(config))})
    assert result.success
    meta = result.asset_materializations_for_node("dashboard")[0].metadata
    index = tmp_path / "out" / "dashboard" / "index.html"
    assert meta["path"].value == str(index.resolve())
    assert meta["size_bytes"].value == site_size(index.parent)
    assert dashboard.group_names_by_key[dg.AssetKey("dashboard")] == "dashboards"
    assert dg.AssetKey("stage_transition_segments") in dashboard.asset_deps[
        dg.AssetKey("dashboard")]


def test_repeat_before_any_horizon_is_observed_shows_repeat_so_far(tmp_path: Path) -> None:
    con = duckdb.connect()
    build_sample_warehouse(con)
    con.execute("update repeat_purchase set eligible = 0, repeated_within = 0, repeat_rate = null")
    con.execute("update repeat_purchase set repeat_purchasers = 20 "
                "where group_value = 'low (<=2)'")
    index = build_site(con, tmp_path / "site", now=NOW)
    page = _text((index.parent / "repeat.html").read_text(encoding="utf-8"))
    assert "No buyer has been observed for 30 days after the first purchase yet" in page
    # repeat purchasers / purchasers: 20 / 1,000 low, 300 / 1,000 high
    assert ("So far 2.0% of customers who rated their first visit low bought again, against "
            "30.0% of those who rated it high.") in page
