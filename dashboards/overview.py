"""Overview page: headline numbers of the period, the stage funnel, daily conversion, dropout."""

from __future__ import annotations

import pandas as pd

from dashboards import fmt, quality, scope
from dashboards.charts import COLORWAY, GREY, OKABE_ITO, figure, to_div, trace
from dashboards.context import ALL_CUSTOMERS, Context
from dashboards.layout import (
    Page,
    Safe,
    card,
    cards,
    join,
    not_available,
    note,
    paragraph,
    section,
    table,
)

SLUG = "index"


def render(ctx: Context) -> Page:
    page = Page(SLUG, "Overview")
    # files rejected as a whole: the quality page's banner, linking to its list
    page.add(quality.partial_data_banner(ctx, f"{quality.SLUG}.html#{quality.FILES_ANCHOR}",
                                         "see Files not read on the Data quality page"))
    # the headline numbers and the funnel follow the period and segment pickers (every
    # combination precomputed in period_figures / period_funnel, dashboards/scope.py); the
    # daily trends below cover every day and every customer
    scoped = scope.render(ctx, page, lambda c, combo: _scoped(c, combo, page),
                          what="the headline numbers and the funnel; the daily charts below "
                               "show every day and every customer")
    if scoped is not None:
        page.add(scoped)
    else:
        page.add(_headline(ctx))
        page.add(_funnel(ctx, page))
    page.add(_trends(ctx, page))
    return page


def _scoped(ctx: Context, combo: scope.Combination, page: Page) -> Safe:
    return join([_headline(ctx, combo), _funnel(ctx, page, combo)])


# --- headline numbers ------------------------------------------------------------------------

def _value(row: pd.Series | None, column: str = "current_value") -> float | None:
    if row is None or pd.isna(row[column]):
        return None
    return float(row[column])


def _change(row: pd.Series | None, *, higher_is_better: bool = True) -> tuple[str, str]:
    """The change of a `period_figures` row against the previous period, as text and a
    direction; the numbers are the table's."""
    previous, change = _value(row, "previous_value"), _value(row, "change")
    if row is None or previous is None or change is None:
        return "no previous period to compare", "flat"
    if row["kind"] == "rate":
        text = f"{fmt.pp(change)} vs previous period ({fmt.pct(previous)})"
    elif previous:
        text = (f"{fmt.signed_pct(row['relative_change'])} vs previous period "
                f"({fmt.count(previous)})")
    else:
        text = f"{fmt.count(row['current_value'])} vs none in previous period"
    if abs(change) < 1e-12:
        return text, "flat"
    return text, "up" if (change > 0) == higher_is_better else "down"


def _headline(ctx: Context, combo: scope.Combination | None = None) -> Safe:
    title = "How did the last period go?"
    needed = ("run_settings", "period_figures")
    if not ctx.wh.has(*needed):
        return section(title, not_available("The headline numbers", ctx.wh.missing(*needed)))
    if ctx.periods.empty:
        computed = ", ".join(str(d) for d in ctx.period_choices()) or "no"
        return section(title, note(
            f"The headline numbers for {ctx.period_days}-day periods are not in period_figures: "
            f"the run computed {computed}-day periods (its period_days setting, "
            "7, 28 and 90 days where the data is longer, and all the data). Rebuild the "
            "dashboard without --period-days, or with one of those."))
    if ctx.data_end is None:
        return section(title, paragraph("No events loaded yet."))
    small_n = ctx.setting("small_n")
    who = "" if ctx.segment == ALL_CUSTOMERS else f" of {ctx.segment_name()}"
    new, purchases = ctx.figure("new_customers"), ctx.figure("purchases")
    buyers_now = _value(ctx.figure("purchasers"))
    items = [
        card("New customers", fmt.count(_value(new)), *_change(new),
             detail=f"new customers{who} whose journey started in the period"),
        card("Purchases", fmt.count(_value(purchases)), *_change(purchases),
             detail=f"orders paid and not cancelled; {fmt.count(buyers_now)} customers"),
    ]
    revenue = ctx.figure("revenue")
    if revenue is not None and _value(revenue) is not None:  # only where amounts exist
        items.append(card("Revenue", fmt.money(_value(revenue), ctx.currency),
                          *_change(revenue), detail="the amounts of the period's purchases"))
    conversion, journeys = ctx.figure("conversion"), ctx.figure("conversion_journeys")
    if conversion is not None and pd.notna(conversion["current_end"]):
        c0, c1 = pd.Timestamp(conversion["current_start"]), pd.Timestamp(conversion["current_end"])
        items.append(card(
            f"Overall conversion · journeys entering {c0:%d %b} – {c1:%d %b}",
            fmt.pct(_value(conversion)), *_change(conversion),
            detail=f"n = {fmt.count(_value(journeys))} journeys{who}, the latest "
                   f"{ctx.period_days} entry days whose conversion window is fully observed",
            flag=_small_flag(conversion, small_n, "journeys")))
    else:
        items.append(card("Overall conversion", fmt.NO_VALUE,
                          detail="no journey has a fully observed conversion window yet"))
    repeat_rate = ctx.figure("repeat_rate")
    days = ctx.setting("repeat_horizons")
    horizons = f" for {', '.join(str(h) for h in days)} days" if days else ""
    items.append(card(
        "Repeat rate", fmt.pct(_value(repeat_rate)), *_change(repeat_rate),
        detail=f"n = {fmt.count(buyers_now)}: of the period's buyers, the share whose purchase "
               f"was their 2nd or later (the Repeat page follows first-time buyers{horizons} "
               "instead)",
        flag=_small_flag(repeat_rate, small_n, "buyers")))
    lead = f"{ctx.period_name(ctx.period_days)}: {ctx.period_label()}."
    if ctx.segment != ALL_CUSTOMERS:
        lead += (f" Customers: {ctx.segment_name()} (the value of their journey at entry; "
                 "purchases by those customers).")
    if combo is None:
        return section(title, cards(items), lead=lead)
    return section(title, combo.slot("headline", join([paragraph(lead, cls="lead"),
                                                       cards(items)])))


def _small_flag(row: pd.Series | None, small_n: object, actors: str) -> str:
    """The card's small-n warning when `period_figures` flags the rate (its n < small_n)."""
    if row is None or "small_n" not in row or pd.isna(row["small_n"]) or not row["small_n"]:
        return ""
    return (f"small n: fewer than {small_n} {actors}, so this rate can move a lot by chance; "
            "read it with care")


# --- funnel ----------------------------------------------------------------------------------

def _funnel_rows(ctx: Context) -> tuple[pd.DataFrame, str]:
    """Funnel of the complete cohorts of the period and segment value (`period_funnel`); for
    all customers, all complete journeys (`funnel_steps`, the bottleneck of
    `stage_transitions` flagged) if there are none; empty for a segment value without."""
    wh = ctx.wh
    who = "journeys" if ctx.segment == ALL_CUSTOMERS else f"journeys of {ctx.segment_name()}"
    if wh.has("period_funnel") and ctx.period_days:
        if "segment" in wh.columns("period_funnel"):
            df = wh.scope_rows("period_funnel", ctx.period_days, ctx.segment, "stage_index")
        else:
            df = wh.scope_rows("period_funnel", ctx.period_days, order_by="stage_index")
        if not df.empty and df["entered"].iloc[0] > 0:
            return df, (f"{who} entering {pd.Timestamp(df['first_cohort'].iloc[0]):%d %b} – "
                        f"{pd.Timestamp(df['last_cohort'].iloc[0]):%d %b %Y} whose conversion "
                        "window is fully observed")
    if ctx.segment != ALL_CUSTOMERS:
        return pd.DataFrame(), who
    flag = ("coalesce((select bool_or(t.is_bottleneck) from stage_transitions t "
            "where t.to_index = f.stage_index), false)" if wh.has("stage_transitions")
            else "false")
    df = wh.df(f"select f.*, {flag} as largest_dropout from funnel_steps f "
               "order by f.stage_index")
    return df, "all journeys whose conversion window is fully observed"


def _funnel(ctx: Context, page: Page, combo: scope.Combination | None = None) -> Safe:
    title = "The stage funnel"
    div_id = ctx.div_id(SLUG, "funnel")
    if not ctx.wh.has("funnel_steps"):
        return section(title, not_available("The stage funnel", ctx.wh.missing("funnel_steps")))
    df, scope_text = _funnel_rows(ctx)
    if df.empty:
        text = ("No journeys with a fully observed window yet." if ctx.segment == ALL_CUSTOMERS
                else f"No {scope_text} entered in the period's fully observed entry days.")
        if combo is None:
            return section(title, paragraph(text))
        return section(title, combo.slot("funnel-lead", paragraph(text, cls="lead")),
                       combo.figure(div_id, None), combo.slot("funnel-table", ""))
    # The stage to name is on the way to conversion (the table flags it); after it, "dropout"
    # is customers not (yet) buying again, which is the repeat page's story.
    flagged = df.index[df["largest_dropout"].fillna(False).astype(bool)]
    worst = flagged[0] if len(flagged) else None
    small = (df["small_n"].fillna(False).astype(bool) if "small_n" in df
             else pd.Series(False, index=df.index))
    small_n = ctx.setting("small_n")

    labels = [str(s) for s in df["stage"]]
    fig = figure("Where do customers drop out? Customers reaching each stage", height=420)
    colors = [OKABE_ITO["vermillion"] if i == worst else GREY if small[i] else OKABE_ITO["blue"]
              for i in df.index]
    fig.add_trace(trace("bar", 
        x=df["entered"], y=labels, orientation="h", marker_color=colors,
        text=[f"{fmt.count(n)} · {fmt.pct(c)} of entry" + (" · small n" if sm else "")
              for n, c, sm in zip(df["entered"], df["overall_conversion"], small, strict=True)],
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

    def rate(value: object, is_small: bool) -> str:
        return fmt.pct(value) + (" (small n)" if is_small and pd.notna(value) else "")

    rows = [[s, fmt.count(n), fmt.pct(oc), rate(sc, sm), fmt.count(dc), rate(dr, sm)]
            for s, n, oc, sc, dc, dr, sm in zip(
                df["stage"], df["entered"], df["overall_conversion"], df["step_conversion"],
                df["dropoff_count"], df["dropout_rate"], small, strict=True)]
    lead = f"Counts: {scope_text}."
    before_text = f" before {ctx.conversion_stage}" if ctx.conversion_stage else ""
    if worst is not None:
        lead += (f" The largest dropout{before_text} is into {df.loc[worst, 'stage']} "
                 f"({fmt.pct(df.loc[worst, 'dropout_rate'])} of those who reached "
                 f"{df['stage'].shift(1).loc[worst]}).")
    elif small.any():
        lead += (f" No step{before_text} has enough customers to name the largest dropout.")
    if small.any():
        lead += (f" Small n (grey): a step rate over fewer than {small_n} customers, too few "
                 "to rank.")
    tab = table(["stage", "customers", "of entry", "step conversion", "lost", "dropout rate"],
                rows, numeric=range(1, 6), flag_rows=[] if worst is None else [int(worst)])
    if combo is None:
        page.figures += 1
        return section(title, to_div(fig, div_id, numbers=True), tab, lead=lead)
    return section(title, combo.slot("funnel-lead", paragraph(lead, cls="lead")),
                   combo.figure(div_id, fig, numbers=True), combo.slot("funnel-table", tab))


# --- daily trends ----------------------------------------------------------------------------

def _trends(ctx: Context, page: Page) -> Safe:
    title = "Is conversion getting better or worse, day by day?"
    parts: list[Safe] = []
    wh = ctx.wh
    if wh.has("funnel_cohorts") and ctx.conversion_stage is not None:
        df = wh.df(
            "select cohort_date, stage, entered, overall_conversion, complete "
            "from funnel_cohorts where stage = ? order by cohort_date",
            [ctx.conversion_stage])
        parts.append(_conversion_trend(ctx, df))
        page.figures += 1
    else:
        parts.append(not_available("The daily conversion trend",
                                   wh.missing("funnel_cohorts", "run_settings")))
    if wh.has("daily_stage_rates"):
        df = wh.df(
            "select event_date, stage_index, stage, entered, converted, dropout_rate, complete "
            "from daily_stage_rates where converted is not null "
            "order by stage_index, event_date")
        if not df.empty:
            parts.append(_dropout_trend(ctx, df))
            page.figures += 1
    else:
        parts.append(not_available(
            "The daily dropout per stage", ctx.wh.missing("daily_stage_rates")))
    return section(title, *parts,
                   lead="Every day, all customers (not the pickers' period and segment). "
                        "Grey band, open grey markers: days whose conversion window is not "
                        "fully observed yet; their rates will still change, so no line is drawn "
                        "through them.")


def _conversion_trend(ctx: Context, df: pd.DataFrame) -> Safe:
    stage = str(df["stage"].iloc[0]) if not df.empty else "conversion stage"
    fig = figure(f"Which entry days converted best? Share of journeys reaching {stage}",
                 height=360)
    for complete, name, color, symbol in ((True, "fully observed", OKABE_ITO["blue"], "circle"),
                                          (False, "window still open (not yet a rate)", GREY,
                                           "circle-open")):
        part = df[df["complete"] == complete]
        if part.empty:
            continue
        if not complete:
            fig.add_vrect(
                x0=pd.Timestamp(part["cohort_date"].min()) - pd.Timedelta(hours=12),
                x1=pd.Timestamp(part["cohort_date"].max()) + pd.Timedelta(hours=12),
                fillcolor=GREY, opacity=0.12, line_width=0,
                annotation_text="windows still open", annotation_position="top left")
        fig.add_trace(trace("scatter", 
            x=part["cohort_date"], y=part["overall_conversion"],
            mode="lines+markers" if complete else "markers",
            name=name, showlegend=True,
            line=dict(color=color),
            marker=dict(symbol=symbol, color=color),
            customdata=part["entered"],
            hovertemplate="%{x|%d %b %Y}<br>conversion: %{y:.1%}<br>journeys entering: "
                          "%{customdata:,d}<extra></extra>"))
    fig.update_yaxes(title_text=f"conversion to {stage} (%)", tickformat=".0%", rangemode="tozero")
    fig.update_xaxes(title_text="journey entry day (UTC)", tickformat=fmt.AXIS_DAY)
    return to_div(fig, ctx.div_id(SLUG, "conversion-trend"))


def _dropout_trend(ctx: Context, df: pd.DataFrame) -> Safe:
    fig = figure("Which stage's dropout moved, and when? Daily dropout to the next stage",
                 height=420)
    stages = list(dict.fromkeys(df["stage"]))
    open_days = df[~df["complete"].astype(bool)]
    for i, stage in enumerate(stages):
        # the line is drawn over fully observed days only; open-window days are grey markers
        part = df[(df["stage"] == stage) & df["complete"].astype(bool)]
        color = COLORWAY[i % len(COLORWAY)]
        fig.add_trace(trace("scatter", 
            x=part["event_date"], y=part["dropout_rate"], mode="lines+markers", name=str(stage),
            line=dict(color=color, width=1.5), marker=dict(size=5, color=color),
            customdata=list(zip(part["entered"], part["converted"], strict=True)),
            hovertemplate="<b>%{fullData.name}</b> → next stage<br>%{x|%d %b %Y}"
                          "<br>dropout: %{y:.1%}<br>entered: %{customdata[0]:,d}"
                          ", went on: %{customdata[1]:,d}<extra></extra>"))
    if not open_days.empty:
        fig.add_trace(trace("scatter", 
            x=open_days["event_date"], y=open_days["dropout_rate"], mode="markers",
            name="window still open (not yet a rate)",
            marker=dict(size=6, color=GREY, symbol="circle-open"),
            customdata=list(zip(open_days["stage"], open_days["entered"], strict=True)),
            hovertemplate="<b>%{customdata[0]}</b>, %{x|%d %b %Y}: window still open<br>"
                          "dropout so far: %{y:.1%} of %{customdata[1]:,d}<extra></extra>"))
        fig.add_vrect(x0=pd.Timestamp(open_days["event_date"].min()) - pd.Timedelta(hours=12),
                      x1=pd.Timestamp(open_days["event_date"].max()) + pd.Timedelta(hours=12),
                      fillcolor=GREY, opacity=0.12, line_width=0,
                      annotation_text="windows still open", annotation_position="top left")
    fig.update_yaxes(title_text="dropout to next stage (%)", tickformat=".0%", range=[0, 1.02])
    fig.update_xaxes(title_text="day the stage was reached (UTC)", tickformat=fmt.AXIS_DAY)
    return to_div(fig, ctx.div_id(SLUG, "dropout-trend"))
