"""Data quality page: rows loaded, quarantined and duplicated per source and day; freshness."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards import fmt
from dashboards.charts import COLORWAY, OKABE_ITO, TEMPLATE, figure, title_layout, to_div
from dashboards.context import Context
from dashboards.layout import Page, Safe, not_available, paragraph, section, table

SLUG = "quality"
TOP_REASONS = 12
DUPLICATE_REASON = "duplicate (same identity as an earlier row)"


def render(ctx: Context) -> Page:
    page = Page(SLUG, "Data quality")
    page.add(_freshness(ctx))
    page.add(_loads(ctx, page))
    page.add(_reasons(ctx, page))
    return page


def _age(then: object, now: dt.datetime | dt.date | None) -> str:
    if then is None or now is None or pd.isna(then):
        return fmt.NO_VALUE
    return fmt.duration((pd.Timestamp(now) - pd.Timestamp(then)).total_seconds())


def _freshness(ctx: Context) -> Safe:
    title = "How fresh is each source?"
    wh = ctx.wh
    if not wh.has("source_summary"):
        return section(title, not_available("Freshness", ctx.wh.missing("source_summary")))
    df = wh.df("select * from source_summary where events > 0 order by source")
    rows = []
    for r in df.itertuples(index=False):
        rows.append([
            r.source, fmt.count(r.events),
            fmt.moment(r.latest_event_ts),
            fmt.duration(r.seconds_behind_data_end), _age(r.latest_event_ts, ctx.built_at),
            "" if r.latest_file is None or pd.isna(r.latest_file)
            else str(r.latest_file).rsplit("/", 1)[-1],
            fmt.NO_VALUE if r.last_loaded_at is None or pd.isna(r.last_loaded_at)
            else fmt.moment(r.last_loaded_at),
        ])
    lagging = [r[0] for r in rows if r[3] not in (fmt.NO_VALUE, "0 s")]
    end = df["latest_event_ts"].max() if not df.empty else None
    lead = (f"End of data: {fmt.moment(end)} UTC; page built "
            f"{fmt.moment(ctx.built_at)} UTC." if end is not None and pd.notna(end)
            else "No events loaded.")
    if lagging:
        lead += f" Behind the end of data: {', '.join(lagging)}."
    return section(title, table(
        ["source", "events", "latest event (UTC)", "behind end of data", "age now",
         "latest file loaded", "last loaded at (UTC)"], rows, numeric=[1, 3, 4]), lead=lead)


def _loads(ctx: Context, page: Page) -> Safe:
    title = "Did every day load completely?"
    wh = ctx.wh
    if not wh.has("ingest_reconciliation"):
        return section(title, not_available(
            "Load reconciliation", ctx.wh.missing("ingest_reconciliation")))
    df = wh.df("select * from ingest_reconciliation order by source, partition_date")
    if df.empty:
        return section(title, paragraph("Nothing loaded yet."))
    sources = list(dict.fromkeys(df["source"].astype(str)))
    fig = make_subplots(rows=len(sources), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=sources)
    kinds = (("rows_loaded", "loaded", OKABE_ITO["blue"]),
             ("rows_quarantined", "quarantined (rejected)", OKABE_ITO["vermillion"]),
             ("rows_duplicate", "duplicates", OKABE_ITO["orange"]))
    for i, source in enumerate(sources, start=1):
        part = df[df["source"].astype(str) == source]
        for col, name, color in kinds:
            fig.add_trace(go.Bar(
                x=part["partition_date"], y=part[col], name=name, marker_color=color,
                legendgroup=name, showlegend=i == 1,
                customdata=part["rows_read"],
                hovertemplate="%{x|%d %b %Y}<br>" + name + ": %{y:,d} of %{customdata:,d} "
                              "rows read<extra></extra>"), row=i, col=1)
        fig.update_yaxes(title_text="rows", tickformat=",~f", row=i, col=1)
    fig.update_xaxes(title_text="partition day (UTC)", row=len(sources), col=1)
    fig.update_layout(template=TEMPLATE, barmode="stack", height=160 + 200 * len(sources),
                      title=title_layout("Did every day load completely? Rows per source and "
                                         "day"))
    page.figures += 1

    totals = (wh.df("select * from source_summary where rows_read is not null order by source")
              if wh.has("source_summary") else pd.DataFrame())
    rows = [[t.source, fmt.count(t.rows_read), fmt.count(t.rows_loaded),
             fmt.count(t.rows_quarantined), fmt.pct(t.quarantined_share),
             fmt.count(t.rows_duplicate), fmt.count(t.clock_skew_corrected)]
            for t in totals.itertuples(index=False)]
    summary = (table(["source", "rows read", "loaded", "quarantined", "quarantined share",
                      "duplicates", "clock skew corrected"], rows, numeric=range(1, 7))
               if wh.has("source_summary")
               else not_available("The totals per source", ctx.wh.missing("source_summary")))
    return section(title, to_div(fig, ctx.div_id(SLUG, "loads")), summary,
                   lead="Every row read is either loaded, quarantined (rejected) or set aside "
                        "as a duplicate.")


def _reasons(ctx: Context, page: Page) -> Safe:
    title = "Why were rows rejected?"
    wh = ctx.wh
    if not wh.has("quarantine"):
        return section(title, not_available("Quarantine reasons", ctx.wh.missing("quarantine")))
    # A duplicate's reason names the row it repeats; count duplicates as one reason.
    df = wh.df(
        "select source, kind, case when kind = 'duplicate' then ? else reason end as reason, "
        "count(*) as rows from quarantine group by all order by rows desc, source, reason",
        [DUPLICATE_REASON])
    if df.empty:
        return section(title, paragraph("No rows were quarantined."))
    top = (df.groupby("reason")["rows"].sum().sort_values(ascending=False)
           .index[:TOP_REASONS].tolist())
    data = df[df["reason"].isin(top)]
    order = list(reversed(top))
    fig = figure("What is wrong with the rejected rows? Top quarantine reasons",
                 height=max(320, 120 + 28 * len(top)))
    for i, source in enumerate(sorted(data["source"].astype(str).unique())):
        part = (data[data["source"].astype(str) == source].groupby("reason")["rows"].sum()
                .reindex(order))
        fig.add_trace(go.Bar(
            y=order, x=part.fillna(0), orientation="h", name=source,
            marker_color=COLORWAY[i % len(COLORWAY)],
            hovertemplate="%{y}<br>%{fullData.name}: %{x:,d} rows<extra></extra>"))
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title_text="rows quarantined", tickformat=",~f")
    fig.update_yaxes(title_text="reason", tickfont=dict(size=11))
    page.figures += 1
    rows = [[r.source, r.kind, r.reason, fmt.count(r.rows)]
            for r in df.head(TOP_REASONS).itertuples(index=False)]
    return section(title, to_div(fig, ctx.div_id(SLUG, "reasons")),
                   table(["source", "kind", "reason", "rows"], rows, numeric=[3]))
