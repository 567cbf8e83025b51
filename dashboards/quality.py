"""Data quality page: rows loaded, quarantined and duplicated per source and day, week or month
(a picker; `ingest_reconciliation_periods`, the grain shown first chosen from the span of the
data); periods the data covers only in part drawn hatched and pale; freshness; the files not
read (`rejected_files`), announced by a banner at the top (`partial_data_banner`, also on the
Overview) when there is any; the reasons rows were rejected; the rows waiting for a day no run
has loaded yet (`quarantine` kind 'outside_range', not rejected)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards import fmt
from dashboards.charts import COLORWAY, OKABE_ITO, TEMPLATE, figure, title_layout, to_div, trace
from dashboards.context import Context
from dashboards.layout import (
    Page,
    Safe,
    esc,
    not_available,
    paragraph,
    picker_script,
    section,
    table,
)

SLUG = "quality"
TOP_REASONS = 12
DUPLICATE_REASON = "duplicate (same identity as an earlier row)"
GRAIN_NAMES = {"day": "By day", "week": "By week (Monday to Sunday)", "month": "By month"}
PARTIAL = {"day": "partial day", "week": "partial week", "month": "partial month"}
GREY = "#BBBBBB"
# quarantine rows read but waiting for a day outside the run's range: not rejected
WAITING_KIND = "outside_range"
FILES_ANCHOR = "files-not-read"


def render(ctx: Context) -> Page:
    page = Page(SLUG, "Data quality")
    page.add(partial_data_banner(ctx, f"#{FILES_ANCHOR}", "see Files not read below"))
    page.add(_freshness(ctx))
    page.add(_loads(ctx, page))
    page.add(_files_not_read(ctx))
    page.add(_reasons(ctx, page))
    page.add(_waiting(ctx))
    return page


def _plural(n: object, one: str, many: str) -> str:
    return f"{fmt.count(n)} {one if fmt.count(n) == '1' else many}"


def partial_data_banner(ctx: Context, href: str, link_text: str) -> Safe:
    """'Built on partial data: N files rejected (R records) — <link>' when `source_summary`
    counts any file rejected as a whole; nothing otherwise (or when the table is missing or
    older than its `files_rejected` column)."""
    wh = ctx.wh
    if not wh.has_columns("source_summary", "files_rejected", "rows_in_rejected_files"):
        return Safe("")
    totals = wh.df("select sum(files_rejected) as files, "
                   "sum(rows_in_rejected_files) as rows from source_summary")
    files, rows = totals.iloc[0]["files"], totals.iloc[0]["rows"]
    if pd.isna(files) or not files:
        return Safe("")
    return Safe(
        '<div class="note partial-data" role="alert"><strong>Built on partial data:</strong> '
        f"{esc(_plural(files, 'file', 'files'))} rejected "
        f"({esc(_plural(rows, 'record', 'records'))}) — "
        f'<a href="{esc(href)}">{esc(link_text)}</a></div>')


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
    if not wh.has("ingest_reconciliation_periods"):
        return section(title, not_available(
            "Load reconciliation", ctx.wh.missing("ingest_reconciliation_periods")))
    df = wh.df("select * from ingest_reconciliation_periods order by source, period_start")
    if df.empty:
        return section(title, paragraph("Nothing loaded yet."))
    grains = [g for g in GRAIN_NAMES if (df["grain"] == g).any()]
    default = next((str(g) for g in df.loc[df["is_default"].astype(bool), "grain"]), grains[0])
    options = "".join(f'<option value="{esc(g)}"{" selected" if g == default else ""}>'
                      f"{esc(GRAIN_NAMES[g])}</option>" for g in grains)
    blocks = [Safe('<p class="picker"><label for="grain"><strong>Show: </strong></label>'
                   f'<select id="grain">{options}</select></p>')]
    for grain in grains:
        fig = _loads_figure(df[df["grain"] == grain], grain)
        page.figures += 1
        name = "loads" if grain == default else f"loads-{grain}"
        blocks.append(Safe(f'<div class="grain" data-grain="{esc(grain)}">'
                           f"{to_div(fig, ctx.div_id(SLUG, name))}</div>"))
    blocks.append(picker_script("grain"))
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
    return section(title, *blocks, summary,
                   lead="Every row read is either loaded, quarantined (rejected) or set aside "
                        "as a duplicate. Hatched, pale bars in a grey band: a week or month "
                        "the data covers only in part (its first or last), not a drop.")


def _loads_figure(df: pd.DataFrame, grain: str) -> go.Figure:
    """Stacked bars per source (one subplot each) and period of one grain; the periods the
    data covers only in part hatched and pale, in a grey band."""
    sources = list(dict.fromkeys(df["source"].astype(str)))
    fig = make_subplots(rows=len(sources), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=sources)
    kinds = (("rows_loaded", "loaded", OKABE_ITO["blue"]),
             ("rows_quarantined", "quarantined (rejected)", OKABE_ITO["vermillion"]),
             ("rows_duplicate", "duplicates", OKABE_ITO["orange"]))
    unit = grain
    for i, source in enumerate(sources, start=1):
        part = df[df["source"].astype(str) == source]
        start = pd.to_datetime(part["period_start"])
        end = pd.to_datetime(part["period_end"]) + pd.Timedelta(days=1)
        # a bar spans its period (a month is 28 to 31 days), drawn at its middle
        mid = start + (end - start) / 2
        width = ((end - start).dt.total_seconds() * 1000 * 0.85).tolist()
        complete = part["complete"].astype(bool)
        read = part["rows_read"].tolist()  # per bar below: a list, not a pandas lookup each
        days = [(pd.Timestamp(b) - pd.Timestamp(a)).days + 1
                for a, b in zip(part["period_start"], part["period_end"], strict=True)]
        label = [_period_label(grain, a, b) + ("" if c else f" ({PARTIAL[grain]}: data on {d} "
                                                               f"of its {n} days)")
                 for a, b, c, d, n in zip(part["period_start"], part["period_end"], complete,
                                          part["days_covered"], days, strict=True)]
        for whole in (True, False):  # partial periods: their own hatched, pale traces
            keep = (complete == whole).tolist()
            if not any(keep):
                continue
            pick = [k for k, on in enumerate(keep) if on]
            for col, name, color in kinds:
                fig.add_trace(trace("bar", 
                    x=mid.iloc[pick], y=part[col].iloc[pick], width=[width[k] for k in pick],
                    name=name if whole else f"{name}, {PARTIAL[grain]}", marker_color=color,
                    marker=dict(opacity=1.0 if whole else 0.45,
                                pattern=dict(shape="" if whole else "/")),
                    legendgroup=name, showlegend=i == 1 and whole,
                    customdata=[(label[k], read[k]) for k in pick],
                    hovertemplate="%{customdata[0]}<br>" + name + ": %{y:,d} of "
                                  "%{customdata[1]:,d} rows read<extra></extra>"),
                    row=i, col=1)
        fig.update_yaxes(title_text="rows", tickformat=",~f", row=i, col=1)
    periods = df.drop_duplicates("period_start").sort_values("period_start")
    if grain != "day" and len(periods) <= 16:
        starts = pd.to_datetime(periods["period_start"])
        ends = pd.to_datetime(periods["period_end"]) + pd.Timedelta(days=1)
        fig.update_xaxes(tickvals=starts + (ends - starts) / 2,
                         ticktext=[_period_label(grain, a, b, short=True) for a, b in
                                   zip(periods["period_start"], periods["period_end"],
                                       strict=True)])
    else:
        fig.update_xaxes(tickformat="%d %b %Y" if grain == "day" else "%b %Y")
    partial = df[~df["complete"].astype(bool)].drop_duplicates("period_start")
    for r in partial.itertuples(index=False):
        fig.add_vrect(x0=pd.Timestamp(r.period_start) - pd.Timedelta(hours=12),
                      x1=pd.Timestamp(r.period_end) + pd.Timedelta(hours=12),
                      fillcolor=GREY, opacity=0.18, line_width=0,
                      annotation_text=PARTIAL[grain], annotation_position="top left")
    fig.update_xaxes(title_text=f"{unit} (UTC)", row=len(sources), col=1)
    fig.update_layout(template=TEMPLATE, barmode="stack", height=160 + 200 * len(sources),
                      title=title_layout(f"Did every {unit} load completely? Rows per source "
                                         f"and {unit}"))
    return fig


def _period_label(grain: str, start: object, end: object, short: bool = False) -> str:
    """'12 Oct 2026'; 'Week 12 Oct 2026 – 18 Oct 2026' ('12 Oct 2026' short); 'Oct 2026'."""
    if grain == "day" or (grain == "week" and short):
        return fmt.day(start)
    if grain == "week":
        return f"Week {fmt.day(start)} – {fmt.day(end)}"
    return f"{pd.Timestamp(start):%b %Y}"


def _files_not_read(ctx: Context) -> Safe:
    title = "Files not read"
    wh = ctx.wh
    if not wh.has("rejected_files"):
        return section(title, not_available("The files not read", ctx.wh.missing(
            "rejected_files")), anchor=FILES_ANCHOR)
    df = wh.df("select source, source_file, rows_read, reason, rejected_at from rejected_files "
               "order by source, source_file")
    if df.empty:
        return section(title, paragraph("Every file the sources' paths match was read."),
                       anchor=FILES_ANCHOR)
    rows = [[r.source,
             Safe(f'<span title="{esc(r.source_file)}">'
                  f'{esc(str(r.source_file).rsplit("/", 1)[-1])}</span>'),
             fmt.count(r.rows_read), r.reason, fmt.moment(r.rejected_at)]
            for r in df.itertuples(index=False)]
    return section(title, table(["source", "file", "rows read", "reason", "when (UTC)"], rows,
                                numeric=[2]),
                   lead="Files rejected as a whole: none of their rows is loaded, nor counted "
                        "among the rows read above. The reason says what is wrong; once the "
                        "file is fixed or replaced, run its days again.",
                   anchor=FILES_ANCHOR)


def _reasons(ctx: Context, page: Page) -> Safe:
    title = "Why were rows rejected?"
    wh = ctx.wh
    if not wh.has("quarantine"):
        return section(title, not_available("Quarantine reasons", ctx.wh.missing("quarantine")))
    # A duplicate's reason names the row it repeats; count duplicates as one reason.
    df = wh.df(
        "select source, kind, case when kind = 'duplicate' then ? else reason end as reason, "
        "count(*) as rows from quarantine where kind is distinct from ? "
        "group by all order by rows desc, source, reason",
        [DUPLICATE_REASON, WAITING_KIND])
    if df.empty:
        return section(title, paragraph("No row was rejected or set aside as a duplicate."))
    top = (df.groupby("reason")["rows"].sum().sort_values(ascending=False)
           .index[:TOP_REASONS].tolist())
    data = df[df["reason"].isin(top)]
    order = list(reversed(top))
    fig = figure("What is wrong with the rejected rows? Top quarantine reasons",
                 height=max(320, 120 + 28 * len(top)))
    for i, source in enumerate(sorted(data["source"].astype(str).unique())):
        part = (data[data["source"].astype(str) == source].groupby("reason")["rows"].sum()
                .reindex(order))
        fig.add_trace(trace("bar", 
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


def _waiting(ctx: Context) -> Safe:
    title = "Rows waiting for a day not yet loaded"
    wh = ctx.wh
    if not wh.has("quarantine"):
        return section(title, not_available("The rows waiting", ctx.wh.missing("quarantine")))
    # the reason ends with what to do: "...; run that day to load it (journeys run ...)"
    df = wh.df(
        "select source, partition_date, "
        "coalesce(nullif(regexp_extract(reason, ';\\s*(.*)$', 1), ''), reason) as advice, "
        "count(*) as rows from quarantine where kind = ? "
        "group by all order by source, partition_date, advice", [WAITING_KIND])
    if df.empty:
        return section(title, paragraph("No row is waiting: every row read belongs to a day "
                                        "that was loaded."))
    rows = [[r.source, fmt.day(r.partition_date), fmt.count(r.rows), r.advice]
            for r in df.itertuples(index=False)]
    return section(title, table(["source", "day", "rows", "what to do"], rows, numeric=[2]),
                   lead="Rows read from the files of a run that belong to a day the run did "
                        "not load. They are not rejected: loading that day loads them.")
