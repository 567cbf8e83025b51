"""Repeat purchase page: repeat rate, time to the second purchase, frequency, cohorts, lifecycle."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboards import fmt
from dashboards.charts import (
    COLORWAY,
    GREY,
    OKABE_ITO,
    SEQUENTIAL,
    cell_labels,
    figure,
    to_div,
)
from dashboards.context import Context
from dashboards.layout import Page, Safe, not_available, paragraph, section

SLUG = "repeat"
MAX_COHORTS = 20
LIFECYCLE_COLORS = {"new": OKABE_ITO["blue"], "returning": OKABE_ITO["green"],
                    "resurrecting": OKABE_ITO["orange"], "dormant": OKABE_ITO["vermillion"]}


def render(ctx: Context) -> Page:
    page = Page(SLUG, "Repeat purchase")
    page.add(_repeat_rate(ctx, page))
    page.add(_timing(ctx, page))
    page.add(_cohorts(ctx, page))
    page.add(_lifecycle(ctx, page))
    return page


def _rating_color(value: object) -> str:
    text = str(value)
    if text.startswith("low"):
        return OKABE_ITO["vermillion"]
    if text.startswith("high"):
        return OKABE_ITO["blue"]
    return GREY


def _repeat_rate(ctx: Context, page: Page) -> Safe:
    title = "Do customers buy again, and does a bad first visit stop them?"
    if not ctx.wh.has("repeat_purchase"):
        return section(title, not_available("Repeat rates", ctx.wh.missing("repeat_purchase")))
    df = ctx.wh.df("select * from repeat_purchase order by group_name, group_value, horizon_days")
    if df.empty:
        return section(title, paragraph("No purchases yet."))
    observed = df[df["eligible"].fillna(0) > 0]
    if observed.empty:
        if not ctx.wh.has("repeat_so_far"):
            return section(title, not_available(
                "Repeat purchase so far", ctx.wh.missing("repeat_so_far")))
        return _repeat_so_far(ctx, page, int(df["horizon_days"].min()), title)
    parts: list[Safe] = []
    overall = observed[observed["group_name"] == "all"]
    if not overall.empty:
        fig = figure("How many buyers come back? Repeat-purchase rate by horizon", height=360)
        fig.add_trace(go.Bar(
            x=[f"{h} days" for h in overall["horizon_days"]], y=overall["repeat_rate"],
            marker_color=OKABE_ITO["blue"], text=[fmt.pct(v) for v in overall["repeat_rate"]],
            textposition="outside", showlegend=False,
            customdata=list(zip(overall["repeated_within"], overall["eligible"], strict=True)),
            hovertemplate="within %{x}: %{y:.1%}<br>%{customdata[0]:,d} of %{customdata[1]:,d} "
                          "buyers observed that long bought again<extra></extra>"))
        fig.update_yaxes(title_text="bought again within the horizon (%)", tickformat=".0%",
                         rangemode="tozero")
        fig.update_xaxes(title_text="horizon after the first purchase")
        parts.append(to_div(fig, ctx.div_id(SLUG, "repeat-rate")))
        page.figures += 1

    insight: Safe | None = None
    rating = observed[observed["group_name"] == "first_rating"]
    if not rating.empty:
        fig = figure("Does a low first rating stop repeat buying? Repeat rate by the rating "
                     "of the first purchase", height=360)
        for value in sorted(rating["group_value"].astype(str).unique()):
            part = rating[rating["group_value"].astype(str) == value]
            fig.add_trace(go.Bar(
                x=[f"{h} days" for h in part["horizon_days"]], y=part["repeat_rate"],
                name=f"first rating {value}", marker_color=_rating_color(value),
                text=[fmt.pct(v) for v in part["repeat_rate"]], textposition="outside",
                customdata=list(zip(part["repeated_within"], part["eligible"], strict=True)),
                hovertemplate="%{fullData.name}, within %{x}: %{y:.1%}<br>%{customdata[0]:,d} "
                              "of %{customdata[1]:,d} buyers<extra></extra>"))
        fig.update_layout(barmode="group")
        fig.update_yaxes(title_text="bought again within the horizon (%)", tickformat=".0%",
                         rangemode="tozero")
        fig.update_xaxes(title_text="horizon after the first purchase")
        parts.append(to_div(fig, ctx.div_id(SLUG, "repeat-by-rating")))
        page.figures += 1
        low = rating[rating["group_value"].astype(str).str.startswith("low")]
        high = rating[rating["group_value"].astype(str).str.startswith("high")]
        common = sorted(set(low["horizon_days"]) & set(high["horizon_days"]))
        if common:
            h = common[-1]  # the longest horizon observed for both groups
            lo = low[low["horizon_days"] == h]["repeat_rate"].iloc[0]
            hi = high[high["horizon_days"] == h]["repeat_rate"].iloc[0]
            insight = paragraph(
                f"Within {h} days, {fmt.pct(lo)} of customers who rated their first visit low "
                f"bought again, against {fmt.pct(hi)} of those who rated it high.")
    return section(title, insight or Safe(""), Safe('<div class="grid2">'), *parts,
                   Safe("</div>"),
                   lead="Rates count only buyers observed for the whole horizon after their "
                        "first purchase; a purchase is an order paid and not cancelled "
                        "(the journey map's purchase)."
                        + _low_rating_sentence(ctx))


def _low_rating_sentence(ctx: Context) -> str:
    low = ctx.setting("low_rating_max")
    return "" if low is None else f" A low rating is {low} or less."


def _repeat_so_far(ctx: Context, page: Page, horizon: int, title: str) -> Safe:
    """No buyer observed for a whole horizon yet: show who has bought again so far."""
    groups = ctx.wh.df("select *, repeat_share as share from repeat_so_far "
                       "where group_name in ('all', 'first_rating') "
                       "order by group_name <> 'all', group_value")
    groups["label"] = ["all buyers" if g == "all" else f"first rating {v}"
                       for g, v in zip(groups["group_name"], groups["group_value"], strict=True)]
    fig = figure("Who has bought again so far? Share of buyers with a second purchase, by the "
                 "rating of their first visit", height=360)
    fig.add_trace(go.Bar(
        x=groups["label"], y=groups["share"],
        marker_color=[OKABE_ITO["green"] if g == "all" else _rating_color(v)
                      for g, v in zip(groups["group_name"], groups["group_value"], strict=True)],
        text=[fmt.pct(v) for v in groups["share"]], textposition="outside", showlegend=False,
        customdata=list(zip(groups["repeat_purchasers"], groups["purchasers"], strict=True)),
        hovertemplate="%{x}: %{y:.1%}<br>%{customdata[0]:,d} of %{customdata[1]:,d} buyers "
                      "bought again<extra></extra>"))
    fig.update_yaxes(title_text="buyers with a 2nd purchase so far (%)", tickformat=".0%",
                     rangemode="tozero")
    fig.update_xaxes(title_text="buyers, by the rating of their first purchase")
    page.figures += 1
    parts: list[Safe] = [paragraph(
        f"No buyer has been observed for {horizon} days after the first purchase yet, so the "
        "repeat rates by horizon are not available. Below: who has bought again so far, which "
        "is not horizon-controlled (recent buyers had less time).", cls="note")]
    low = groups[groups["group_value"].astype(str).str.startswith("low")]
    high = groups[groups["group_value"].astype(str).str.startswith("high")]
    if not low.empty and not high.empty:
        parts.append(paragraph(
            f"So far {fmt.pct(low['share'].iloc[0])} of customers who rated their first visit "
            f"low bought again, against {fmt.pct(high['share'].iloc[0])} of those who rated it "
            "high."))
    parts.append(to_div(fig, ctx.div_id(SLUG, "repeat-so-far")))
    return section(title, *parts)


def _timing(ctx: Context, page: Page) -> Safe:
    title = "How soon do they come back, and how often do they buy?"
    wh = ctx.wh
    parts: list[Safe] = []
    if wh.has("repeat_gaps"):
        gaps = wh.df("select days_to_second as days from repeat_gaps")
        if not gaps.empty:
            width = 1 if gaps["days"].max() < 42 else 7
            gaps = (gaps.assign(bin=(gaps["days"] // width).astype(int))
                    .groupby("bin", as_index=False).size().rename(columns={"size": "customers"}))
            median = None
            if wh.has("repeat_purchase"):
                median = wh.scalar("select max(median_days_to_second) from repeat_purchase "
                                   "where group_name = 'all'")
            unit = "day" if width == 1 else "week"
            fig = figure(f"How long until the second purchase? Customers per {unit} between "
                         "first and second purchase", height=360)
            fig.add_trace(go.Bar(
                x=gaps["bin"] * width + width / 2, y=gaps["customers"], width=width * 0.95,
                marker_color=OKABE_ITO["blue"], showlegend=False,
                customdata=list(zip(gaps["bin"] * width, gaps["bin"] * width + width,
                                    strict=True)),
                hovertemplate="%{customdata[0]:.0f}–%{customdata[1]:.0f} days: %{y:,d} "
                              "customers<extra></extra>"))
            if median is not None and pd.notna(median):
                fig.add_vline(x=float(median), line_dash="dash", line_color=OKABE_ITO["orange"],
                              annotation_text=f"median {fmt.number(median)} days",
                              annotation_position="top right")
            fig.update_xaxes(title_text="days from first to second purchase", tickformat=",~f",
                             rangemode="tozero")
            fig.update_yaxes(title_text="customers", tickformat=",~f")
            parts.append(to_div(fig, ctx.div_id(SLUG, "time-to-second")))
            page.figures += 1
    else:
        parts.append(not_available("Time to second purchase", ctx.wh.missing("repeat_gaps")))
    if wh.has("purchase_frequency"):
        freq = wh.df("select purchases, customers, share from purchase_frequency "
                     "order by purchases")
        if not freq.empty:
            fig = figure("How many times does a customer buy? Purchases per customer",
                         height=360)
            fig.add_trace(go.Bar(
                x=freq["purchases"].astype(str), y=freq["customers"],
                marker_color=OKABE_ITO["green"], showlegend=False,
                text=[fmt.pct(v) for v in freq["share"]], textposition="outside",
                customdata=freq["share"],
                hovertemplate="%{x} purchase(s): %{y:,d} customers (%{customdata:.1%})"
                              "<extra></extra>"))
            fig.update_xaxes(title_text="purchases per customer", type="category")
            fig.update_yaxes(title_text="customers", tickformat=",~f")
            parts.append(to_div(fig, ctx.div_id(SLUG, "frequency")))
            page.figures += 1
    else:
        parts.append(not_available("Purchases per customer", ctx.wh.missing("purchase_frequency")))
    return section(title, Safe('<div class="grid2">'), *parts, Safe("</div>"),
                   lead="Recent first-time buyers have had little time to come back, so long "
                        "gaps are under-represented at the end of the data.")


def _heatmap(ctx: Context, df: pd.DataFrame, column: str, title: str, name: str) -> Safe:
    cohorts = sorted(df["cohort_start"].unique())[-MAX_COHORTS:]
    df = df[df["cohort_start"].isin(cohorts)]
    periods = sorted(df["period_number"].unique())
    ylabels = [f"{pd.Timestamp(c):%d %b %Y}" for c in cohorts]
    size = df.groupby("cohort_start")["cohort_size"].max()
    full, part, text, hover = [], [], [], []
    for c in cohorts:
        fr, pr, tr, hr = [], [], [], []
        for p in periods:
            cell = df[(df["cohort_start"] == c) & (df["period_number"] == p)]
            if cell.empty:
                fr.append(None)
                pr.append(None)
                tr.append("")
                hr.append("")
                continue
            v = float(cell[column].iloc[0])
            done = bool(cell["complete"].iloc[0])
            fr.append(v if done else None)
            pr.append(None if done else v)
            tr.append(fmt.pct(v, 0) + ("" if done else "*"))
            hr.append(f"{fmt.pct(v)} of {fmt.count(size[c])} customers"
                      f"{'' if done else ' — period not over yet (incomplete)'}")
        full.append(fr)
        part.append(pr)
        text.append(tr)
        hover.append(hr)
    # Period 0 is 100% by definition for "on"; the colour range is spent on later periods.
    later = [v for row in (full, part) for r in row for v in r[1:] if v is not None]
    zmax = min(1.0, max(later)) if later and max(later) > 0 else 1.0
    fig = figure(title, height=max(360, 120 + 24 * len(cohorts)))
    xlabels = [str(p) for p in periods]
    common = dict(x=xlabels, y=ylabels, zmin=0, zmax=zmax, xgap=1, ygap=1, customdata=hover,
                  hovertemplate="cohort %{y}, period %{x}<br>%{customdata}<extra></extra>")
    fig.add_trace(go.Heatmap(z=full, colorscale=SEQUENTIAL, name="complete",
                             colorbar=dict(title=dict(text="share"), tickformat=".0%"),
                             **common))
    # Incomplete cells: the same scale washed out, marked with *.
    fig.add_trace(go.Heatmap(z=part, colorscale=SEQUENTIAL, opacity=0.35, showscale=False,
                             name="incomplete", **common))
    dark = [[v is not None and v / zmax < 0.55 for v in row] for row in full]
    cell_labels(fig, xlabels, ylabels, text, dark)
    fig.update_xaxes(title_text="periods since the first purchase", type="category",
                     showgrid=False)
    fig.update_yaxes(title_text="cohort (period of first purchase)", autorange="reversed",
                     type="category", showgrid=False)
    return to_div(fig, ctx.div_id(SLUG, name))


def _period_type(ctx: Context, table: str, start_col: str) -> str | None:
    """Weekly periods when the table has at least four of them, monthly otherwise (None when
    the table is empty). `table` and `start_col` are names from this module, not data."""
    types = ctx.wh.df(f"select period_type, count(distinct {start_col}) as n from {table} "
                      "group by period_type")
    if types.empty:
        return None
    n = dict(zip(types["period_type"], types["n"], strict=True))
    return "week" if n.get("week", 0) >= 4 or "month" not in n else "month"


def _cohorts(ctx: Context, page: Page) -> Safe:
    title = "Do cohorts of new buyers keep buying?"
    if not ctx.wh.has("retention_cohorts"):
        return section(title, not_available(
            "Cohort retention", ctx.wh.missing("retention_cohorts")))
    period_type = _period_type(ctx, "retention_cohorts", "cohort_start")
    if period_type is None:
        return section(title, paragraph("No purchase cohorts yet."))
    df = ctx.wh.df("select * from retention_cohorts where period_type = ? "
                   "order by cohort_start, period_number", [period_type])
    on = _heatmap(ctx, df, "share_on",
                  f"Who buys in each {period_type} after their first? Share purchasing "
                  f"in that {period_type} (“on”)", "retention-on")
    after = _heatmap(ctx, df, "share_on_or_after",
                     f"Who is still buying? Share purchasing in that {period_type} or later "
                     "(“on or after”)", "retention-on-or-after")
    page.figures += 2
    return section(title, on, after,
                   lead=f"Cohort = {period_type} of first purchase (UTC, weeks start on Monday); "
                        f"period 0 is the cohort's own {period_type}. Washed-out cells marked * "
                        "belong to periods that have not ended yet: their shares will still "
                        "grow.")


def _lifecycle(ctx: Context, page: Page) -> Safe:
    title = "Is the customer base growing? New, returning, resurrecting and dormant buyers"
    if not ctx.wh.has("lifecycle"):
        return section(title, not_available("Lifecycle", ctx.wh.missing("lifecycle")))
    period_type = _period_type(ctx, "lifecycle", "period_start")
    if period_type is None:
        return section(title, paragraph("No purchases yet."))
    df = ctx.wh.df("select * from lifecycle where period_type = ? order by period_start",
                   [period_type])
    fig = figure(f"Who bought each {period_type}? Buyers by lifecycle status "
                 "(dormant drawn below zero)", height=400)
    statuses = [s for s in LIFECYCLE_COLORS if s in set(df["status"])] + sorted(
        set(df["status"]) - set(LIFECYCLE_COLORS))
    for i, status in enumerate(statuses):
        part = df[df["status"] == status]
        sign = -1 if status == "dormant" else 1
        complete = part["complete"].astype(bool)
        fig.add_trace(go.Bar(
            x=part["period_start"], y=sign * part["customers"], name=status,
            marker=dict(color=LIFECYCLE_COLORS.get(status, COLORWAY[i % len(COLORWAY)]),
                        pattern=dict(shape=["" if c else "/" for c in complete],
                                     fillmode="overlay", fgcolor="white", solidity=0.4),
                        opacity=[1.0 if c else 0.6 for c in complete]),
            customdata=list(zip(part["customers"], ["" if c else " (period not over)"
                                                    for c in complete], strict=True)),
            hovertemplate="%{x|%d %b %Y}%{customdata[1]}<br>%{fullData.name}: "
                          "%{customdata[0]:,d} customers<extra></extra>"))
    fig.update_layout(barmode="relative")
    fig.update_yaxes(title_text="customers (dormant negative)", tickformat=",~f")
    fig.update_xaxes(title_text=f"{period_type} (start date)")
    page.figures += 1
    return section(title, to_div(fig, ctx.div_id(SLUG, "lifecycle")),
                   lead="Hatched, lighter bars: the period has not ended yet.")
