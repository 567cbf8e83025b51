"""Purchases: the one numbering of every customer's purchases, which repeat, retention and the
stage metrics read.

`build_purchases` takes a DuckDB connection holding the `events` table (docs/CONTRACTS.md) and
the loaded journey map, and (re)creates `purchases` (one row per purchase) with CREATE OR
REPLACE. Grain and columns are in docs/TABLES.md. The rules:

- **Purchase** (funnel-semantics.md): an order — a distinct value of the journey map's purchase
  key (`purchase.key`; the sample: booking_id) — with a purchase event (`purchase.event`; by
  default the `payment_succeeded` metric event) and no cancelling event (`purchase.cancelled_by`;
  by default `payment_refunded`), at its first purchase event; its customer and amount are those
  of that event. Purchase events without a customer (orphan payments) do not count.
- **Purchase number**: per customer, 1, 2, ... in order of purchase time, then order id.

Which events are a purchase is the journey map's, so the statement is assembled here. Without a
purchase definition or its key column the table is skipped (tables.skip).
"""

from __future__ import annotations

import duckdb

from transforms.journey_map import JourneyMap, rule_sql
from transforms.sqlutil import Params, ident
from transforms.tables import built, count_rows, missing_inputs, skip, table_columns


def build_purchases(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `purchases`: one row per purchase = order (distinct value of the purchase key)
    with a purchase event and no cancelling event, at its first purchase event, numbered per
    customer. Without a purchase definition, or without its key column, it is skipped."""
    rule = jmap.purchase
    if rule is None or rule.event is None:
        skip(con, ["purchases"], "the journey map defines no purchase (purchase.event, or "
             "metric_events.payment_succeeded)")
        return 0
    why = missing_inputs(con, columns=(rule.key,))
    if why:
        skip(con, ["purchases"], f"{why} (the purchase key)")
        return 0
    p = Params()
    key = "e." + ident(rule.key)
    paid_where = rule_sql(rule.event, p, "e")
    refund_where = rule_sql(rule.cancelled_by, p, "e") if rule.cancelled_by else "false"
    amount = "e.amount" if "amount" in table_columns(con, "events") else "cast(null as double)"
    con.execute(
        f"""
        create or replace table purchases as
        with paid as (
            select cast({key} as varchar) as order_id,
                   arg_min(e.customer_id, e.event_ts) as customer_id,
                   min(e.event_ts) as purchase_ts,
                   arg_min({amount}, e.event_ts) as amount
            from events e
            where {paid_where} and {key} is not null and e.customer_id is not null
            group by all
        ),
        refunded as (
            select distinct cast({key} as varchar) as order_id from events e
            where {refund_where} and {key} is not null
        ),
        final as (
            select p.customer_id, p.order_id, p.purchase_ts,
                   cast(p.purchase_ts as date) as purchase_date, p.amount,
                   row_number() over (partition by p.customer_id
                                      order by p.purchase_ts, p.order_id) as purchase_number
            from paid p
            where p.order_id not in (select order_id from refunded)
        )
        select * from final
        """,
        p.values,
    )
    built(con, ["purchases"])
    return count_rows(con, "purchases")
