"""`journeys run` on exports shaped nothing like the sample, as a new user would run it.

- an orders table only (one history file, tab-separated, YYYYMMDD dates from 1997): purchases,
  repeat purchase and revenue are computed, the booking and campaign metrics are skipped with a
  reason, and nothing fails;
- a clickstream only (Segment-style JSON lines: track calls under an anonymous id, then an
  identify call): funnels and journeys are computed, stitched to the user.
Expected figures are computed here from the files themselves, independently of the pipeline.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import random
from pathlib import Path

import duckdb
import pytest

from tests.conftest import REPO
from tests.e2e.conftest import journeys

pytestmark = pytest.mark.slow

def _example(name: str, root: Path) -> None:
    """examples/<name>'s config copied to `root`, its warehouse and outputs inside `root`."""
    for file in ("sources.yaml", "journey_map.yaml"):
        text = (REPO / "examples" / name / file).read_text()
        text = text.replace(f"../../warehouse/{name}/", "warehouse/").replace(
            f"../../output/{name}", "output")
        (root / file).write_text(text)


def _run(root: Path) -> duckdb.DuckDBPyConnection:
    proc = journeys("run", "--config", str(root / "sources.yaml"),
                    env={"DAGSTER_HOME": str(root / "dagster_home")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "FAILED" not in proc.stdout
    return duckdb.connect(str(root / "warehouse" / "journeys.duckdb"), read_only=True)


def test_an_orders_table_alone_gives_purchases_repeat_and_revenue(tmp_path: Path) -> None:
    rng = random.Random(7)
    lines = ["order_id\tcustomer\tdate\tamount"]
    orders: list[tuple[str, str, dt.date, float]] = []
    for c in range(120):
        day = dt.date(1997, 1, 1) + dt.timedelta(days=rng.randint(0, 400))
        for _ in range(rng.choice([1, 1, 2, 3])):
            cents = rng.randint(500, 20000)
            orders.append((f"o{len(orders)}", f"c{c}", day, cents / 100))
            lines.append(f"o{len(orders) - 1}\tc{c}\t{day:%Y%m%d}\t{cents / 100:.2f}")
            day += dt.timedelta(days=rng.randint(1, 90))
    lines.append("bad\tc1\t1997-13-45\t1.00")  # not a %Y%m%d date: quarantined
    (tmp_path / "history.tsv").write_text("\n".join(lines) + "\n")
    _example("orders", tmp_path)

    con = _run(tmp_path)
    per_customer: dict[str, int] = {}
    for _, cust, _, _ in orders:
        per_customer[cust] = per_customer.get(cust, 0) + 1
    n, buyers, revenue = con.execute("select count(*), count(distinct customer_id), "
                                     "sum(amount) from purchases").fetchone()
    assert (n, buyers) == (len(orders), len(per_customer))
    assert float(revenue) == pytest.approx(sum(o[3] for o in orders))
    assert con.execute("select count(distinct customer_id) from purchases "
                       "where purchase_number >= 2").fetchone()[0] == sum(
        1 for n in per_customer.values() if n >= 2)
    assert con.execute("select rows_read, rows_loaded, rows_quarantined from "
                       "(select sum(rows_read) rows_read, sum(rows_loaded) rows_loaded, "
                       "sum(rows_quarantined) rows_quarantined from ingest_reconciliation)"
                       ).fetchone() == (len(orders) + 1, len(orders), 1)
    # the partitions follow the event days of the one history file
    first, last = con.execute("select min(partition_date), max(partition_date) "
                              "from ingest_reconciliation").fetchone()
    assert (first, last) == (min(o[2] for o in orders), max(o[2] for o in orders))
    # what the data cannot give is skipped, with the reason
    skipped = dict(con.execute("select table_name, reason from skipped_tables").fetchall())
    assert "booking_outcomes" in skipped and "booking_id" in skipped["booking_outcomes"]
    assert con.execute("select count(*) from repeat_purchase where group_name = 'all'"
                       ).fetchone()[0] == 3  # one row per horizon
    index = tmp_path / "output" / "dashboard" / "index.html"
    assert index.exists()


def _segment_example(root: Path) -> list[dict]:
    """examples/segment copied to `root` with the export its script writes; its calls."""
    spec = importlib.util.spec_from_file_location(
        "make_export", REPO / "examples" / "segment" / "make_export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls = module.export_calls()
    (root / "export.jsonl").write_text("".join(json.dumps(c) + "\n" for c in calls))
    _example("segment", root)
    return calls


def test_a_clickstream_alone_gives_journeys_and_funnels(tmp_path: Path) -> None:
    calls = _segment_example(tmp_path)
    # who is who, from the export alone: an anonymous id belongs to the user id it is first
    # seen with (the identify call); otherwise the person is the anonymous id
    owner = {}
    for c in calls:
        if c.get("userId"):
            owner.setdefault(c["anonymousId"], c["userId"])
    assert any(c["type"] == "identify" for c in calls)
    people: dict[str, list[tuple[dt.datetime, str]]] = {}
    for c in calls:
        if c["type"] != "track":
            continue  # identify calls are events too, but no stage's
        who = c.get("userId") or owner.get(c["anonymousId"], "anon:" + c["anonymousId"])
        ts = dt.datetime.fromisoformat(c["timestamp"].replace("Z", ""))
        people.setdefault(who, []).append((ts, c["event"]))
    last = max(t for events in people.values() for t, _ in events)
    con = _run(tmp_path)
    # funnel_steps counts complete journeys: the 1-day window ended by the last event
    complete = {p for p, ev in people.items() if min(ev)[0] + dt.timedelta(days=1) <= last}
    assert 0 < len(complete) < len(people)
    steps = ["Product Viewed", "Product Added", "Order Completed"]
    reached = [sum(1 for p in complete if len(people[p]) >= k) for k in (1, 2, 3)]
    assert [e for _, e in sorted(people["user-2"])] == steps  # each in order, as generated
    assert [r[0] for r in con.execute(
        "select entered from funnel_steps order by stage_index").fetchall()] == reached
    assert con.execute("select count(distinct customer_id) from events").fetchone()[0] == len(
        people)
    # the anonymous views before login are the user's: stitched through the identify call
    assert con.execute("select count(*) from events where customer_id = 'user-2' and "
                       "event_name = 'Product Viewed' and anonymous_id = 'anon-2'"
                       ).fetchone()[0] == 1
    assert con.execute("select count(*) from journeys where is_identified").fetchone()[0] == sum(
        1 for p in people if not p.startswith("anon:"))
