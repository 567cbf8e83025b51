"""Overview page: headline numbers of the period, the stage funnel, daily conversion, dropout."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import plotly.graph_objects as go

from dashboards import fmt
from dashboards.charts import COLORWAY, GREY, OKABE_ITO, figure, to_div
from dashboards.context import Context
from dashboards.layout import Page, Safe, card, cards, not_available, paragraph, section, table
from transforms.metrics import period_figures

SLUG = "index"


def render(ctx: Context) -> Page:
    page = Page(SLUG, "Overview")
    page.add(_headline(ctx))
    page.add(_funnel(ctx, page))
    page.add(_trends(ctx, page))
    return page


# --- headline numbers ------------------------------------------------------------------------

def _change(now: float | None, before: float | None, *, rate: bool,
            higher_is_better: bool = True) -> tuple[str, str]:
    if now is None or before is None or pd.isna(now) or pd.isna(before):
        return "no previous period to compare", "flat"
    diff = float(now) - float(before)
    if rate:
        text = f"{fmt.pp(diff)} vs previous period ({fmt.pct(before)})"
    elif before:
        text = f"{fmt.signed_pct(diff / float(before))} vs previous period ({fmt.count(before)})"
    else:
        text = f"{fmt.count(now)} vs none in previous period"
    if abs(diff) < 1e-12:
        return text, "flat"
    return text, "up" if (diff > 0) == higher_is_better else "down"


def _complete_periods(ctx: Context) -> tuple[dt.date, dt.date, dt.date, dt.date] | None:
    """The latest `period_days` of entry days whose cohorts are complete, and the period before.

    Conversion needs the whole conversion window observed, so it is reported for these days,
    not for the latest days of data whose windows are still open.
    """
    if ctx.wh.has("funnel_cohorts"):
        last = ctx.wh.scalar("select max(cohort_date) from funnel_cohorts where complete")
    else:
        last = ctx.wh.scalar("select max(entry_date) from journeys where complete")
    if last is None:
        return None
    c0 = last - dt.timedelta(days=ctx.period_days - 1)
    b1 = c0 - dt.timedelta(days=1)
    return c0, last, b1 - dt.timedelta(days=ctx.period_days - 1), b1


def _headline(ctx: Context) -> Safe:
    title = "How did the last period go?"
    needed = ("journeys", "booking_outcomes", "funnel_cohorts")
    if not ctx.wh.has(*needed) or ctx.data_end is None:
        return section(title, not_available("The headline numbers",
                                            ctx.wh.missing(*needed) or ["events"]))
    p0, p1 = ctx.period_start, ctx.data_end
    q0, q1 = ctx.previous_start, ctx.previous_end
    has_previous = ctx.data_start is not None and q0 >= ctx.data_start

    def figures(start: dt.date, end: dt.date) -> dict[str, int | float | None]:
        return period_figures(ctx.wh.con, start, end, ctx.conversion_stage)

    now = figures(p0, p1)
    before = figures(q0, q1) if has_previous else {}
    buyers_now = now["purchasers"]

    complete = _complete_periods(ctx)
    items = [
        card("New customers", fmt.count(now["new_customers"]),
             *_change(now["new_customers"], before.get("new_customers"), rate=False),
             detail="new customers whose journey started in the period"),
        card("Purchases", fmt.count(now["purchases"]),
             *_change(now["purchases"], before.get("purchases"), rate=False),
             detail=f"paid, not refunded bookings; {fmt.count(buyers_now)} customers"),
    ]
    if complete is not None and ctx.conversion_stage is not None:
        c0, c1, b0, b1 = complete
        conv_now = figures(c0, c1)
        conv_before = figures(b0, b1)
        items.append(card(
            "Overall conversion", fmt.pct(conv_now["conversion"]),
            *_change(conv_now["conversion"], conv_before["conversion"], rate=True),
            detail=f"{fmt.count(conv_now['conversion_journeys'])} journeys entering "
                   f"{c0:%d %b} – {c1:%d %b %Y}, the latest whose conversion window is fully "
                   "observed"))
    elif complete is not None:
        items.append(card("Overall conversion", fmt.NO_VALUE,
                          detail="no journey has reached the conversion stage yet"))
    else:
        items.append(card("Overall conversion", fmt.NO_VALUE,
                          detail="no journey has a fully observed conversion window yet"))
    items.append(card(
        "Repeat rate", fmt.pct(now["repeat_share"]),
        *_change(now["repeat_share"], before.get("repeat_share"), rate=True),
        detail=f"share of the period's {fmt.count(buyers_now)} buyers making their 2nd or "
               "later purchase"))
    return section(title, cards(items), lead=f"Period: {ctx.period_label()}.")


# --- funnel ----------------------------------------------------------------------------------

def _funnel_rows(ctx: Context) -> tuple[pd.DataFrame, str]:
    """Funnel of the complete cohorts of the period; all complete journeys if there are none."""
    wh = ctx.wh
    complete = _complete_periods(ctx) if wh.has("journeys") else None
    if wh.has("funnel_cohorts") and complete is not None:
        df = wh.df(
            """
            select stage_index, stage, sum(entered) as entered,
                   min(cohort_date) as first_cohort, max(cohort_date) as last_cohort
            from funnel_cohorts
            where complete and cohort_date between ? and ?
            group by stage_index, stage order by stage_index
            """, [complete[0], complete[1]])
        if not df.empty and df["entered"].iloc[0] > 0:
            first, last = df["first_cohort"].min(), df["last_cohort"].max()
            prev = df["entered"].shift(1)
            df["overall_conversion"] = df["entered"] / df["entered"].iloc[0]
            df["step_conversion"] = df["entered"] / prev
            df["dropoff_count"] = prev - df["entered"]
            df["dropout_rate"] = 1 - df["step_conversion"]
            return df, (f"journeys entering {pd.Timestamp(first):%d %b} – "
                        f"{pd.Timestamp(last):%d %b %Y} whose conversion window is fully observed")
    if wh.has("funnel_steps"):
        df = wh.df("select * from funnel_steps order by stage_index")
        return df, "all journeys whose conversion window is fully observed"
    return pd.DataFrame(), ""


def _funnel(ctx: Context, page: Page) -> Safe:
    title = "The stage funnel"
    if not ctx.wh.has("funnel_steps"):
        return section(title, not_available("The stage funnel", ["funnel_steps"]))
    df, scope = _funnel_rows(ctx)
    if df.empty:
        return section(title, paragraph("No journeys with a fully observed window yet."))
    # The bottleneck to name is on the way to conversion; after it, "dropout" is customers not
    # (yet) buying again, which is the repeat page's story.
    before = df
    if ctx.conversion_stage in set(df["stage"]):
        last = int(df.index[df["stage"] == ctx.conversion_stage][0])
        before = df.loc[:last]
    rates = before["dropout_rate"].astype(float)
    worst = rates.idxmax() if rates.notna().any() else None

    labels = [str(s) for s in df["stage"]]
    fig = figure("Where do customers drop out? Customers reaching each stage", height=420)
    colors = [OKABE_ITO["vermillion"] if i == worst else OKABE_ITO["blue"] for i in df.index]
    fig.add_trace(go.Bar(
        x=df["entered"], y=labels, orientation="h", marker_color=colors,
        text=[f"{fmt.count(n)} · {fmt.pct(c)} of entry" for n, c in
              zip(df["entered"], df["overall_conversion"], strict=True)],
        textposition="auto",
        customdata=list(zip(df["step_conversion"].fillna(float("nan")),
                            df["dropout_rate"].fillna(float("nan")),
                            df["dropoff_count"].fillna(float("nan")), strict=True)),
        hovertemplate="<b>%{y}</b><br>customers: %{x:,d}<br>step conversion: "
                      "%{customdata[0]:.1%}<br>dropout from previous stage: %{customdata[1]:.1%}"
                      " (%{customdata[2]:,.0f} lost)<extra></extra>",
        name="customers",
    ))
    fig.update_yaxes(autorange="reversed", title_text="stage (journey order)")
    fig.update_xaxes(title_text="customers reaching the stage", tickformat=",~f")
    page.figures += 1

    rows = [[s, fmt.count(n), fmt.pct(oc), fmt.pct(sc), fmt.count(dc), fmt.pct(dr)]
            for s, n, oc, sc, dc, dr in zip(df["stage"], df["entered"], df["overall_conversion"],
                                            df["step_conversion"], df["dropoff_count"],
                                            df["dropout_rate"], strict=True)]
    lead = f"Counts: {scope}."
    if worst is not None:
        before_text = f" before {ctx.conversion_stage}" if ctx.conversion_stage else ""
        lead += (f" The largest dropout{before_text} is into {df.loc[worst, 'stage']} "
                 f"({fmt.pct(df.loc[worst, 'dropout_rate'])} of those who reached "
                 f"{df['stage'].shift(1).loc[worst]}).")
    return section(
        title,
        to_div(fig, ctx.div_id(SLUG, "funnel")),
        table(["stage", "customers", "of entry", "step conversion", "lost", "dropout rate"],
              rows, numeric=range(1, 6), flag_rows=[] if worst is None else [int(worst)]),
        lead=lead,
    )


# --- daily trends ----------------------------------------------------------------------------

def _trends(ctx: Context, page: Page) -> Safe:
    title = "Is conversion getting better or worse, day by day?"
    parts: list[Safe] = []
    wh = ctx.wh
    if wh.has("funnel_cohorts", "journeys"):
        if ctx.conversion_stage is not None:
            df = wh.df(
                "select cohort_date, stage, entered, overall_conversion, complete "
                "from funnel_cohorts where stage = ? order by cohort_date",
                [ctx.conversion_stage])
            parts.append(_conversion_trend(ctx, df))
            page.figures += 1
    else:
        parts.append(not_available("The daily conversion trend", wh.missing("funnel_cohorts",
                                                                            "journeys")))
    if wh.has("daily_stage_rates"):
        df = wh.df(
            "select event_date, stage_index, stage, entered, converted, dropout_rate, complete "
            "from daily_stage_rates where converted is not null "
            "order by stage_index, event_date")
        if not df.empty:
            parts.append(_dropout_trend(ctx, df))
            page.figures += 1
    else:
        parts.append(not_available("The daily dropout per stage", ["daily_stage_rates"]))
    return section(title, *parts,
                   lead="Lighter, open markers: days whose conversion window is not fully "
                        "observed yet; their rates will still change.")


def _conversion_trend(ctx: Context, df: pd.DataFrame) -> Safe:
    stage = str(df["stage"].iloc[0]) if not df.empty else "conversion stage"
    fig = figure(f"Which entry days converted best? Share of journeys reaching {stage}",
                 height=360)
    for complete, name, color, symbol in ((True, "fully observed", OKABE_ITO["blue"], "circle"),
                                          (False, "window still open (incomplete)", GREY,
                                           "circle-open")):
        part = df[df["complete"] == complete]
        if part.empty:
            continue
        fig.add_trace(go.Scatter(
            x=part["cohort_date"], y=part["overall_conversion"], mode="lines+markers",
            name=name, showlegend=True,
            line=dict(color=color, dash="solid" if complete else "dot"),
            marker=dict(symbol=symbol, color=color),
            customdata=part["entered"],
            hovertemplate="%{x|%d %b %Y}<br>conversion: %{y:.1%}<br>journeys entering: "
                          "%{customdata:,d}<extra></extra>"))
    fig.update_yaxes(title_text=f"conversion to {stage} (%)", tickformat=".0%", rangemode="tozero")
    fig.update_xaxes(title_text="journey entry day (UTC)")
    return to_div(fig, ctx.div_id(SLUG, "conversion-trend"))


def _dropout_trend(ctx: Context, df: pd.DataFrame) -> Safe:
    fig = figure("Which stage's dropout moved, and when? Daily dropout to the next stage",
                 height=420)
    stages = list(dict.fromkeys(df["stage"]))
    for i, stage in enumerate(stages):
        part = df[df["stage"] == stage]
        color = COLORWAY[i % len(COLORWAY)]
        fig.add_trace(go.Scatter(
            x=part["event_date"], y=part["dropout_rate"], mode="lines+markers", name=str(stage),
            line=dict(color=color, width=1.5),
            marker=dict(size=5, color=color,
                        symbol=["circle" if c else "circle-open" for c in part["complete"]]),
            customdata=list(zip(part["entered"], part["converted"],
                                ["" if c else " (incomplete)" for c in part["complete"]],
                                strict=True)),
            hovertemplate="<b>%{fullData.name}</b> → next stage<br>%{x|%d %b %Y}"
                          "%{customdata[2]}<br>dropout: %{y:.1%}<br>entered: %{customdata[0]:,d}"
                          ", went on: %{customdata[1]:,d}<extra></extra>"))
    fig.update_yaxes(title_text="dropout to next stage (%)", tickformat=".0%", range=[0, 1.02])
    fig.update_xaxes(title_text="day the stage was reached (UTC)")
    return to_div(fig, ctx.div_id(SLUG, "dropout-trend"))
