"""The measured journey map: per stage, where customers met it (touchpoints), why they left
(pains) and its metrics.

Every function takes a DuckDB connection holding `events`, `stage_events` and the journey,
funnel, booking, payment and repeat tables (transforms/journeys.py, stage_funnels.py,
bookings.py, repeat.py, purchases.py) and the loaded journey map, and (re)creates its table with
CREATE OR REPLACE. Grains and columns are in docs/TABLES.md. The rules:

- **Touchpoints**: per stage, the values of its configured `touchpoints` columns on its stage
  events, ranked by events within stage x dimension.
- **Pains**: per stage, the events of journey customers matching its configured pains, with
  the pain's reason column, plus `dropped_out` = complete journeys ending at the stage; share =
  customers over the journeys reaching the stage.
- **Stage metrics** sit on the stage the journey map's `metric_stages` names for their group
  (discovery, consideration, decision, purchase, service, repeat), never on a stage found by
  position; a group the map does not place is left out. Which events play which role comes
  from the map's `metric_events`. Rates are the definitions of transforms/sql/definitions.sql;
  the payment failure rate sums the attempts of `payment_attempts` (cells without a failure
  included), never those of `payment_failures`.

All three are assembled here: their rows follow the map's stages, touchpoints, pains and
metric roles.
"""

from __future__ import annotations

import re

import duckdb

from transforms.journey_map import JourneyMap, rule_sql
from transforms.sqlutil import Params, ident
from transforms.tables import count_rows, low_rating_sql, role_sql, stage_list_sql, table_columns


def build_stage_touchpoints(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `stage_touchpoints`: one row per (stage x dimension x value) over
    `stage_events`, ranked by events within stage x dimension."""
    p = Params()
    parts = [
        f"select stage, stage_index, {p.add(dim)} as dimension, "
        f"cast({ident(dim)} as varchar) as value, customer_id "
        f"from stage_events where stage_index = {st.index} and {ident(dim)} is not null"
        for st in jmap.stages for dim in st.touchpoints
    ]
    body = " union all ".join(parts) if parts else (
        "select cast(null as varchar) as stage, 0 as stage_index, cast(null as varchar) as "
        "dimension, cast(null as varchar) as value, cast(null as varchar) as customer_id "
        "where false")
    con.execute(
        f"""
        create or replace table stage_touchpoints as
        with touches as ({body}),
        counted as (
            select stage, stage_index, dimension, value, count(*) as events,
                   count(distinct customer_id) as customers
            from touches group by all
        ),
        final as (
            select *, events / sum(events) over (partition by stage_index, dimension) as share,
                   cast(row_number() over (partition by stage_index, dimension
                                           order by events desc, value) as integer) as rank
            from counted
        )
        select * from final order by stage_index, dimension, rank
        """,
        p.values,
    )
    return count_rows(con, "stage_touchpoints")


def build_stage_pains(con: duckdb.DuckDBPyConnection, jmap: JourneyMap) -> int:
    """(Re)build `stage_pains`: one row per (stage x pain x reason): the configured pains
    (events of journey customers) plus `dropped_out` = complete journeys ending at the stage.
    Needs `journeys`, `journey_stages`."""
    p = Params()
    parts = []
    for st in jmap.stages:
        for pain in st.pains:
            reason = (f"coalesce(cast(e.{ident(pain.reason_column)} as varchar), '(unknown)')"
                      if pain.reason_column else "'(none)'")
            parts.append(
                f"select {p.add(st.name)} as stage, {st.index} as stage_index, "
                f"{p.add(pain.name)} as pain, {reason} as reason, e.customer_id "
                f"from events e where e.customer_id is not null "
                f"and {rule_sql(pain.rule, p, 'e')}"
            )
    parts.append(
        "select furthest_stage as stage, furthest_stage_index as stage_index, "
        "'dropped_out' as pain, 'stopped after this stage' as reason, customer_id "
        "from journeys "
        "where complete and not reached_last_stage"
    )
    con.execute(
        f"""
        create or replace table stage_pains as
        with pains as ({' union all '.join(parts)}),
        reached as (
            select stage_index, count(*) as journeys from journey_stages group by all
        ),
        counted as (
            select stage, stage_index, pain, reason, count(*) as events,
                   count(distinct customer_id) as customers
            from pains group by all
        ),
        final as (
            select c.*, c.customers / nullif(r.journeys, 0) as share,
                   cast(row_number() over (partition by c.stage_index
                                           order by c.events desc, c.pain, c.reason)
                        as integer) as rank
            from counted c left join reached r using (stage_index)
        )
        select * from final order by stage_index, rank
        """,
        p.values,
    )
    return count_rows(con, "stage_pains")


def build_stage_metrics(con: duckdb.DuckDBPyConnection, jmap: JourneyMap,
                        currency: str | None = None) -> int:
    """(Re)build `stage_metrics`: one row per (stage x metric x segment x value), long format.
    Needs `journeys`, `journey_stages`, `funnel_steps`, `booking_outcomes`, `payment_attempts`,
    `payment_failures`, `repeat_purchase`, `purchases`, `stage_events`."""
    # which stage each metric group sits on: named in the map's metric_stages
    idx = {st.name: st.index for st in jmap.stages}
    at = jmap.metric_stages
    p = Params()
    install = role_sql(jmap, "install", p)
    click = role_sql(jmap, "campaign_click", p)
    impression = role_sql(jmap, "campaign_impression", p)
    offer = role_sql(jmap, "offer_view", p)
    activity = role_sql(jmap, "app_activity", p)
    has_impressions = "campaign_impression" in jmap.metric_events
    gap_s = float(jmap.session_gap_minutes) * 60
    horizons = list(jmap.repeat_horizons)
    conv_idx = idx[jmap.conversion_stage]
    dec_idx = idx.get(at.get("decision"), 0)
    consider_idx = idx.get(at.get("consideration"), 0)
    money = p.add(currency or "money")
    low = low_rating_sql(jmap, "rating")

    stage_params = {group: p.add(name) for group, name in at.items()}
    new_seg = next((ident(sg.name) for sg in jmap.segments if sg.derived == "new_vs_returning"),
                   None)
    is_new = f"{new_seg} = 'new'" if new_seg else "false"
    rows = _stage_metric_rows(stage_params, money, low, horizons, has_impressions, conv_idx,
                              dec_idx, is_new)

    # each CTE with what it reads: a CTE (or a metric row) is kept only when all it reads is
    # in the warehouse, so a project without bookings, payments or campaigns gets the rest
    ctes = {
        "j": ("select * from journeys", ["journeys"]),
        "disc": (f"""
            select e.channel, e.customer_id, {install} as is_install, {click} as is_click,
                   {impression} as is_impression
            from events e where e.customer_id is not null
              and ({install} or {click} or {impression})""", ["events.channel"]),
        "by_channel": ("""
            select coalesce(channel, '(unknown)') as channel,
                   count(distinct customer_id) filter (where is_install) as installs,
                   count(*) filter (where is_click) as clicks,
                   count(*) filter (where is_impression) as impressions
            from disc group by all""", ["disc"]),
        "clickers": ("""
            select distinct coalesce(channel, '(unknown)') as channel, customer_id
            from disc where is_click""", ["disc"]),
        "click_conv": (f"""
            select c.channel, count(*) as clickers,
                   count(*) filter (where j.furthest_stage_index >= {dec_idx}) as decided
            from clickers c left join j using (customer_id) group by all""",
                       ["clickers", "j"]),
        "new_by_channel": (f"""
            select coalesce(channel, '(unknown)') as channel,
                   count(*) filter (where {is_new}) as new_customers
            from j group by all""", ["j", "journeys.channel"]),
        "offers": (f"""
            select count(*) as offer_views from events e
            where {offer} and e.customer_id in (
                select customer_id from journey_stages where stage_index = {consider_idx})""",
                   ["journey_stages"]),
        "consider": (f"""
            select count(*) as customers from journey_stages
            where stage_index = {consider_idx}""", ["journey_stages"]),
        "clicks_seq": (f"""
            select e.customer_id, e.event_ts,
                   epoch(e.event_ts - lag(e.event_ts) over (partition by e.customer_id
                                                           order by e.event_ts)) as gap
            from events e join j using (customer_id)
            where {activity} and e.event_ts between j.entry_ts and j.window_end_ts""",
                       ["j"]),
        "app_time": (f"""
            select customer_id, sum(case when gap <= {gap_s} then gap else 0 end) / 60
                       as minutes
            from clicks_seq group by all""", ["clicks_seq"]),
        "bookings": ("select * from booking_outcomes where created_ts is not null",
                     ["booking_outcomes"]),
        "funnel": ("select * from funnel_steps", ["funnel_steps"]),
        # every payment attempt outcome (succeeded + failed), from `payment_attempts`: not from
        # `payment_failures`, which leaves out the day x platform x method cells without a
        # failure and so would over-state the rate
        "pay_outcomes": ("""
            select platform, method, sum(attempts) as attempts, sum(failures) as failures
            from payment_attempts group by all""", ["payment_attempts"]),
    }
    tables = {"journeys", "journey_stages", "booking_outcomes", "funnel_steps",
              "payment_attempts", "payment_failures", "repeat_purchase", "purchases"}
    have = {t for t in tables if table_columns(con, t)}
    have |= {f"events.{c}" for c in table_columns(con, "events")}
    have |= {f"journeys.{c}" for c in table_columns(con, "journeys")}
    for name, (_, reads) in ctes.items():  # in order: a CTE reads only earlier ones
        if all(r in have for r in reads):
            have.add(name)
    names = set(ctes) | tables
    kept, used = [], set()
    for group, sql in rows:
        reads = {w for w in re.findall(r"\b[a-z_]+\b", sql) if w in names}
        if group in at and reads <= have:
            kept.append(sql)
            used |= reads
    # the CTEs the kept rows read, and the ones those read
    for name in reversed(list(ctes)):
        if name in used:
            used |= {r for r in ctes[name][1] if r in ctes}
    if not kept:
        kept = ["select cast(null as varchar), '', '', '', 0.0, '' where false"]
    with_sql = ",\n".join(f"{n} as ({sql})" for n, (sql, _) in ctes.items() if n in used)
    metrics_sql = f"""
        create or replace table stage_metrics as
        with {with_sql + "," if with_sql else ""}
        rows as (
            select * from ({' union all '.join(kept)})
                as r(stage, metric, segment, segment_value, value, unit)
        ),
        final as (
            select r.stage, sl.stage_index, r.metric, r.segment, r.segment_value,
                   cast(r.value as double) as value, r.unit
            from rows r join (select * from {stage_list_sql(jmap, p)}) sl using (stage)
        )
        select * from final order by stage_index, metric, segment <> 'all', segment,
                                  segment_value
    """
    # only the parameters the kept parts use
    values = {k: v for k, v in p.values.items() if re.search(rf"\${k}\b", metrics_sql)}
    con.execute(metrics_sql, values)
    return count_rows(con, "stage_metrics")


def _stage_metric_rows(at: dict[str, str], money: str, low: str, horizons: list[int],
                       has_impressions: bool, conv_idx: int, dec_idx: int, is_new: str
                       ) -> list[tuple[str, str]]:
    """The rows of `stage_metrics` as (metric group, SELECT of stage, metric, segment,
    segment_value, value, unit) over the CTEs of build_stage_metrics; `at[group]` is the
    parameter holding the stage of a metric group."""
    d, c, de = at.get("discovery"), at.get("consideration"), at.get("decision")
    pu, sv, rp = at.get("purchase"), at.get("service"), at.get("repeat")
    ctr = "true" if has_impressions else "false"
    hz = ", ".join(str(int(h)) for h in horizons)
    return [
        ("discovery", f"select {d}, 'new_customers', 'channel', channel, "
                      "cast(new_customers as double), 'customers' from new_by_channel"),
        ("discovery", f"select {d}, 'new_customers', 'all', 'all', "
                      f"count(*) filter (where {is_new}), 'customers' from j"),
        ("discovery", f"select {d}, 'installs', 'channel', channel, installs, 'customers' "
                      "from by_channel"),
        ("discovery", f"select {d}, 'installs', 'all', 'all', sum(installs), 'customers' "
                      "from by_channel"),
        ("discovery", f"select {d}, 'campaign_clicks', 'channel', channel, clicks, 'events' "
                      "from by_channel where clicks > 0"),
        ("discovery", f"select {d}, 'campaign_ctr', 'channel', channel, "
                      f"clicks / nullif(impressions, 0), 'rate' from by_channel where {ctr}"),
        ("discovery", f"select {d}, 'campaign_click_to_decision', 'channel', channel, "
                      "step_conversion(decided, clickers), 'rate' from click_conv"),
        ("consideration", f"select {c}, 'offers_viewed_per_customer', 'all', 'all', "
                          "o.offer_views / nullif(c.customers, 0), 'per_customer' "
                          "from offers o, consider c"),
        ("consideration", f"select {c}, 'time_in_app_minutes', 'all', 'all', median(minutes), "
                          "'minutes' from app_time"),
        ("decision", f"select {de}, 'bookings_created', 'all', 'all', count(*), 'events' "
                     "from bookings"),
        ("decision", f"select {de}, 'conversion_to_purchase', 'all', 'all', step_conversion("
                     f"max(entered) filter (where stage_index = {conv_idx}), "
                     f"max(entered) filter (where stage_index = {dec_idx})), 'rate' from funnel"),
        ("decision", f"select {de}, 'average_basket', 'all', 'all', avg(amount), {money} "
                     "from bookings"),
        ("decision", f"select {de}, 'average_basket', 'service_category', "
                     f"coalesce(service_category, '(unknown)'), avg(amount), {money} "
                     "from bookings group by all"),
        ("purchase", f"select {pu}, 'completed_transactions', 'all', 'all', "
                     "count(*) filter (where purchase), 'events' from booking_outcomes"),
        ("purchase", f"select {pu}, 'payment_dropout_rate', 'all', 'all', dropout_rate("
                     "count(*) filter (where payment_started and paid), "
                     "count(*) filter (where payment_started)), 'rate' from booking_outcomes"),
        ("purchase", f"select {pu}, 'payment_dropout_rate', 'platform', "
                     "coalesce(platform, '(unknown)'), dropout_rate("
                     "count(*) filter (where payment_started and paid), "
                     "count(*) filter (where payment_started)), 'rate' "
                     "from booking_outcomes group by all"),
        ("purchase", f"select {pu}, 'payment_failure_rate', 'all', 'all', "
                     "failure_rate(sum(failures), sum(attempts)), 'rate' from pay_outcomes"),
        ("purchase", f"select {pu}, 'payment_failure_rate', 'platform', platform, "
                     "failure_rate(sum(failures), sum(attempts)), 'rate' "
                     "from pay_outcomes group by all"),
        ("purchase", f"select {pu}, 'payment_failure_rate', 'method', method, "
                     "failure_rate(sum(failures), sum(attempts)), 'rate' "
                     "from pay_outcomes group by all"),
        ("purchase", f"select {pu}, 'failure_reason_share', 'failure_reason', failure_reason, "
                     "sum(failures) / sum(sum(failures)) over (), 'rate' "
                     "from payment_failures group by all"),
        ("service", f"select {sv}, 'average_rating', 'all', 'all', avg(rating), 'stars' "
                    "from booking_outcomes"),
        ("service", f"select {sv}, 'ratings', 'all', 'all', count(rating), 'events' "
                    "from booking_outcomes"),
        ("service", f"select {sv}, 'low_ratings', 'all', 'all', count(*) filter (where {low}), "
                    "'events' from booking_outcomes"),
        ("service", f"select {sv}, 'complaints', 'all', 'all', count(complaint), 'events' "
                    "from booking_outcomes"),
        ("service", f"select {sv}, 'cancellations', 'all', 'all', "
                    "count(*) filter (where cancelled), 'events' from booking_outcomes"),
        ("service", f"select {sv}, 'no_shows', 'all', 'all', count(*) filter (where no_show), "
                    "'events' from booking_outcomes"),
        ("service", f"select {sv}, 'cancellation_rate', 'all', 'all', "
                    "count(*) filter (where cancelled) / nullif(count(*), 0), 'rate' "
                    "from bookings"),
        ("service", f"select {sv}, 'no_show_rate', 'all', 'all', "
                    "count(*) filter (where no_show) / nullif(count(*), 0), 'rate' from bookings"),
        ("repeat", f"select {rp}, 'repeat_rate_' || horizon_days || 'd', group_name, "
                   "group_value, repeat_rate, 'rate' from repeat_purchase "
                   f"where group_name in ('all', 'first_rating') and horizon_days in ({hz})"),
        ("repeat", f"select {rp}, 'median_days_to_repeat', 'all', 'all', "
                   "median(epoch(b.purchase_ts - a.purchase_ts) / 86400), 'days' "
                   "from purchases a join purchases b "
                   "on b.customer_id = a.customer_id and b.purchase_number = 2 "
                   "where a.purchase_number = 1"),
        ("repeat", f"select {rp}, 'purchases_per_customer', 'all', 'all', "
                   "count(*) / nullif(count(distinct customer_id), 0), 'per_customer' "
                   "from purchases"),
    ]
