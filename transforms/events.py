"""Unified events: identity stitching and one `events` table across sources.

`identity_map`: one row per anonymous id linked to a customer. `events`: one row per loaded
source event (all sources) on one stitched `customer_id`. The rules are in the SQL files'
headers: transforms/sql/identity_map.sql and transforms/sql/events.sql.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

SQL_DIR = Path(__file__).parent / "sql"


def sql_file(name: str) -> str:
    """The text of transforms/sql/<name>.sql."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


@dataclass(frozen=True)
class EventsStats:
    events: int
    customers: int
    identified_customers: int
    anonymous_ids_linked: int
    shared_devices: int
    orphan_payments: int
    by_source: dict[str, int]


def build_events(con: duckdb.DuckDBPyConnection) -> EventsStats:
    """(Re)build `identity_map` and `events` from the raw tables."""
    con.execute(sql_file("identity_map"))
    con.execute(sql_file("events"))
    events, customers, identified = con.execute("""
        select count(*), count(distinct customer_id),
               count(distinct customer_id) filter (where is_identified)
        from events""").fetchone()
    linked, shared = con.execute(
        "select count(*), count(*) filter (where other_customers > 0) from identity_map"
    ).fetchone()
    orphans = con.execute(
        "select count(*) from events where source = 'payments' and customer_id is null"
    ).fetchone()[0]
    by_source = dict(con.execute(
        "select source, count(*) from events group by source order by source").fetchall())
    return EventsStats(events, customers, identified, linked, shared, orphans, by_source)
