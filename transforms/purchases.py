"""Purchases: the one numbering of every customer's purchases, which repeat, retention and the
stage metrics read.

`build_purchases` takes a DuckDB connection holding the `events` table (docs/CONTRACTS.md) and
the loaded journey map, and (re)creates `purchases` (one row per purchase) with CREATE OR
REPLACE. Grain and columns are in docs/TABLES.md. The rules:

- **Purchase** (funnel-semantics.md): a booking with a payment success and no refund, distinct
  booking ids, at its first success; its customer and amount are those of that first success.
  Payment successes without a customer (orphan payments) do not count.
- **Purchase number**: per customer, 1, 2, ... in order of purchase time, then booking id.

Which events are a payment success and a refund is the journey map's (`metric_events`
`payment_succeeded`, `payment_refunded`), so the statement is assembled here.
"""

from __future__ import annotations

import duckdb

from transforms.journey_map import JourneyMap
from transforms.sqlutil import Params
from transforms.tables import count_rows, role_sql


def build_purchases(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `purchases`: one row per purchase = booking with a payment success and no
    refund (distinct booking ids), at its first payment success, numbered per customer."""
    p = Params()
    paid_where = role_sql(jmap, "payment_succeeded", p)
    refund_where = role_sql(jmap, "payment_refunded", p)
    con.execute(
        f"""
        create or replace table purchases as
        with paid as (
            select booking_id,
                   arg_min(customer_id, event_ts) as customer_id,
                   min(event_ts) as purchase_ts,
                   arg_min(amount, event_ts) as amount
            from events e
            where {paid_where} and booking_id is not null and customer_id is not null
            group by booking_id
        ),
        refunded as (
            select distinct booking_id from events e
            where {refund_where} and booking_id is not null
        ),
        final as (
            select p.customer_id, p.booking_id, p.purchase_ts,
                   cast(p.purchase_ts as date) as purchase_date, p.amount,
                   row_number() over (partition by p.customer_id
                                      order by p.purchase_ts, p.booking_id) as purchase_number
            from paid p
            where p.booking_id not in (select booking_id from refunded)
        )
        select * from final
        """,
        p.values,
    )
    return count_rows(con, "purchases")
