"""The pipeline's findings: what changed, where, since when, over the journeys of the warehouse.

`build_findings(con, jmap)` makes one attempts table (transforms/findings.py) of
- every transition between consecutive stages up to the conversion stage: one attempt per
  journey that reached the earlier stage, on the day it reached it; success = it reached the
  next stage; complete = the journey's window has closed; segments = the journey's segment
  values (the journey map's segments);
- payments (when the map has payment roles): one attempt per payment outcome event (succeeded
  or failed), on its day; success = succeeded (a rise in failures is a drop in this rate);
  segments = the payment event's own values of the map's `payment_segments` (default: the
  column segments' columns), the journey segments that are not among them NULL;
then runs the findings engine over it and writes `findings` (grain: one finding).
"""

from __future__ import annotations

import duckdb

from transforms.findings import find_changes, finding_days_table, findings_table
from transforms.journey_map import JourneyMap, rule_sql
from transforms.sqlutil import Params, ident
from transforms.stage_funnels import SIGNIFICANCE_LEVEL
from transforms.tables import count_rows, table_columns

PAYMENT_TRANSITION = ("payment attempt", "payment succeeded")


def build_findings(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `findings` from `journeys`, `journey_stages` and `events`."""
    journey_cols = table_columns(con, "journeys")
    segs = [s.name for s in jmap.segments if s.name in journey_cols]
    # a derived segment (new vs returning) is settled by events up to the window's end, so
    # its values partly record the outcome: scanned over time, never compared with the rest
    compare = [s.name for s in jmap.segments if s.name in journey_cols and s.derived is None]
    conv = jmap.stage(jmap.conversion_stage).index
    p = Params()
    seg_select = "".join(f", cast(j.{ident(s)} as varchar) as {ident(s)}" for s in segs)
    next_stage = "case f.stage_index " + " ".join(
        f"when {s.index - 1} then {p.add(s.name)}" for s in jmap.stages[1:]) + " end"
    parts = [f"""
        select f.stage as from_step, {next_stage} as to_step,
               cast(f.reached_ts as date) as day, cast(f.reached_ts as timestamp) as ts,
               t.customer_id is not null as success, j.complete{seg_select}
        from journey_stages f
        join journeys j using (customer_id)
        left join journey_stages t
          on t.customer_id = f.customer_id and t.stage_index = f.stage_index + 1
        where f.reached_ts is not null and f.stage_index < {conv}"""]
    ok, failed = jmap.metric_events.get("payment_succeeded"), jmap.metric_events.get(
        "payment_failed")
    cols = table_columns(con, "events")
    if ok is not None and failed is not None:
        pay_cols = [c for c in jmap.payment_segments if c in cols]
        pay_segs = "".join(
            f", cast(e.{ident(s)} as varchar) as {ident(s)}" if s in pay_cols
            else f", cast(null as varchar) as {ident(s)}" for s in segs)
        extra = [c for c in pay_cols if c not in segs]
        parts.append(f"""
            select {p.add(PAYMENT_TRANSITION[0])}, {p.add(PAYMENT_TRANSITION[1])}, e.event_date,
                   cast(e.event_ts as timestamp),
                   {rule_sql(ok, p, 'e')}, true{pay_segs}
                   {''.join(f', cast(e.{ident(s)} as varchar) as {ident(s)}' for s in extra)}
            from events e where {rule_sql(ok, p, 'e')} or {rule_sql(failed, p, 'e')}""")
        if extra:  # the journey attempts have no such column
            parts[0] = parts[0].replace(" from journey_stages f", "".join(
                f", cast(null as varchar) as {ident(s)}" for s in extra)
                + " from journey_stages f", 1)
        segs += extra
        compare += extra
    con.execute("create or replace temp table _attempts as " + " union all ".join(parts),
                p.values)
    # the run's one significance level (run_settings.significance_level)
    findings = find_changes(con, "_attempts", segments=segs, compare=compare,
                            alpha=SIGNIFICANCE_LEVEL)
    findings_table(con, findings)
    finding_days_table(con, "_attempts", findings)
    con.execute("drop table if exists _attempts")
    return count_rows(con, "findings")
