"""Hand-built `events` tables for transform and asset tests: one row per call of `E`.

The columns are those of the sample config's unified events table (data/sample/sources.yaml);
the source of a row follows from its event name as in the sample (booking_*, payment_*, else
clickstream).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MAP = ROOT / "data" / "sample" / "journey_map.yaml"
T0 = dt.datetime(2024, 3, 1)  # a Friday, 00:00 UTC
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)

EVENTS_DDL = """
create or replace table events (
    event_id varchar, source varchar, customer_id varchar, is_identified boolean,
    anonymous_id varchar, event_name varchar, event_ts timestamp, event_date date,
    booking_id varchar, payment_id varchar, platform varchar, channel varchar, city varchar,
    service_category varchar, salon_id varchar, screen varchar, amount decimal(12, 2),
    status varchar, method varchar, failure_reason varchar, cancel_reason varchar,
    complaint varchar, rating integer, properties json
)"""
COLUMNS = ("event_id", "source", "customer_id", "is_identified", "anonymous_id", "event_name",
           "event_ts", "event_date", "booking_id", "payment_id", "platform", "channel", "city",
           "service_category", "salon_id", "screen", "amount", "status", "method",
           "failure_reason", "cancel_reason", "complaint", "rating", "properties")


def E(customer: str | None, name: str, ts: dt.datetime, **cols: Any) -> dict[str, Any]:  # noqa: N802
    """One `events` row as the contract builds it; the source follows from the event name."""
    source = ("bookings" if name.startswith("booking_")
              else "payments" if name.startswith("payment_") else "clickstream")
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row.update(source=source, customer_id=customer, event_name=name, event_ts=ts,
               event_date=ts.date(),
               is_identified=customer is not None and not customer.startswith("anon:"))
    if source == "clickstream":
        row["channel"] = "organic"
    if source != "clickstream" and name.split("_", 1)[1] not in ("", None):
        row["status"] = name.split("_", 1)[1]
    row.update(cols)
    return row


def make_events_table(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """Create `events` holding `rows` (event ids numbered in order when not given)."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute(EVENTS_DDL)
    for n, row in enumerate(rows):
        row = dict(row)
        row["event_id"] = row["event_id"] or f"{row['source']}:{n:04d}"
        con.execute(f"insert into events values ({', '.join('?' for _ in COLUMNS)})",
                    [row[c] for c in COLUMNS])


