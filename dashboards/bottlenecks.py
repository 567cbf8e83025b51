"""Bottlenecks page: what changed (the findings), leakiest and slowest transitions, segment
differences, payments."""

from __future__ import annotations

import math

import pandas as pd

from dashboards import fmt, scope
from dashboards.charts import (
    COLORWAY,
    GREY,
    LIGHT_GREY,
    OKABE_ITO,
    Figure,
    cell_labels,
    figure,
    to_div,
    trace,
)
from dashboards.context import ALL_CUSTOMERS, Context
from dashboards.layout import Page, Safe, not_available, paragraph, section, table

SLUG = "bottlenecks"
# Diverging, colour-blind safe: blue = drops out less than the rest, vermillion = more.
DIVERGING = [[0.0, OKABE_ITO["blue"]], [0.5, "#F7F7F7"], [1.0, OKABE_ITO["vermillion"]]]
MAX_SEGMENT_ROWS = 30
MAX_FINDING_CHARTS = 8
# Light to dark vermillion: a high failure rate is the darkest cell; no grey middle that reads
# as "no data".
SEQUENTIAL_RATE = [[0.0, "#FFF5EB"], [0.5, "#F4A261"], [1.0, OKABE_ITO["vermillion"]]]


ALL_DAYS = "All days, all customers: "


def render(ctx: Context) -> Page:
    page = Page(SLUG, "Bottlenecks")
    # first the page's question, for the pickers' period and segment value (period_funnel,
    # every combination precomputed; dashboards/scope.py); the parts below cover all days
    scoped = scope.render(ctx, page, _bottleneck,
                          what="the bottleneck steps just below; the other parts of this page "
                               "cover all days and all customers")
    page.add(scoped if scoped is not None else _bottleneck_all_days(ctx, page))
    page.add(_what_changed(ctx, page))
    page.add(_transitions(ctx, page))
    page.add(_time_distribution(ctx, page))
    page.add(_segments(ctx, page))
    page.add(_payments(ctx, page))
    return page


def _what_changed(ctx: Context, page: Page) -> Safe:
    """The findings, one sentence each (the table's), with a small chart of the rate over the
    days tested and the window shaded (from `finding_days`)."""
    title = "What changed?"
    if not ctx.wh.has("findings"):
        return section(title, not_available("What changed", ctx.wh.missing("findings")))
    df = ctx.wh.df("select * from findings order by rank")
    if df.empty:
        return section(title, paragraph(
            "Nothing: no window of days or hours where a transition's or the payments' rate "
            "departed from the rest of the days, and no segment clearly worse than the rest "
            f"(Benjamini–Hochberg adjusted p < {ctx.setting('significance_level')}; days "
            "whose conversion window is still open are not tested)."))
    days = (ctx.wh.df("select * from finding_days order by rank, series, day")
            if ctx.wh.has("finding_days") else pd.DataFrame())
    parts = []
    for r in df.itertuples():
        parts.append(paragraph(f"{r.rank}. {r.sentence}."))
        mine = days[days["rank"] == r.rank] if not days.empty else days
        if r.rank <= MAX_FINDING_CHARTS and not mine.empty:
            parts.append(to_div(_finding_chart(r, mine), ctx.div_id(SLUG, f"finding-{r.rank}")))
            page.figures += 1
    if len(df) > MAX_FINDING_CHARTS:
        parts.append(paragraph(f"Charts for the first {MAX_FINDING_CHARTS} findings only.",
                               cls="muted"))
    return section(title, *parts,
                   lead="Every day tested, all customers (not the pickers' period): where "
                        "journeys changed or are worse, ranked by customers lost: windows "
                        "of days (or hours) where a rate departed from its other days, and "
                        "segments whose rate is below the rest's on every day tested. "
                        "Each chart shows the daily rate over the days tested; the shaded "
                        "band is the window.")


def _finding_chart(r: object, days: pd.DataFrame) -> Figure:
    where = f" · {r.segment_column} = {r.segment_value}" if isinstance(
        r.segment_column, str) else ""
    fig = figure(f"{r.from_step} → {r.to_step}{where}: daily rate", height=240,
                 margin=dict(t=50, b=40, l=60, r=20), showlegend=True,
                 legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"))
    group = days[days["series"] == "group"]
    fig.add_trace(trace("scatter", 
        x=group["day"], y=group["rate"], mode="lines+markers", name="rate" if not where
        else f"{r.segment_value}", line=dict(color=OKABE_ITO["vermillion"], width=1.5),
        marker=dict(size=4), customdata=group["n"],
        hovertemplate="%{x|%d %b %Y}: %{y:.1%} of %{customdata:,d}<extra></extra>"))
    base = days[days["series"] == "baseline"]
    if not base.empty:
        fig.add_trace(trace("scatter", 
            x=base["day"], y=base["rate"], mode="lines", name="the rest",
            line=dict(color=GREY, width=1.5), customdata=base["n"],
            hovertemplate="%{x|%d %b %Y}: %{y:.1%} of %{customdata:,d}<extra></extra>"))
    else:
        fig.add_hline(y=r.baseline_rate, line=dict(color=GREY, dash="dash", width=1),
                      annotation_text=f"other days {fmt.pct(r.baseline_rate)}",
                      annotation_position="top left")
        start = pd.Timestamp(r.start_day) - pd.Timedelta(hours=12)
        end = pd.Timestamp(r.end_day) + pd.Timedelta(hours=12)
        fig.add_vrect(x0=start, x1=end, fillcolor=OKABE_ITO["vermillion"], opacity=0.12,
                      line_width=0)
    fig.update_yaxes(tickformat=".0%", title_text="rate", rangemode="tozero")
    fig.update_xaxes(tickformat=fmt.AXIS_DAY)
    return fig


def _label(df: pd.DataFrame) -> list[str]:
    return [f"{a} → {b}" for a, b in zip(df["from_stage"], df["to_stage"], strict=True)]


# --- transitions ranked ----------------------------------------------------------------------

BOTTLENECK_TITLE = "Where is the bottleneck?"


def _steps_chart(steps: pd.DataFrame, *, title: str) -> Figure:
    """Dropout per step, in journey order: `steps` has label, dropout_rate, dropoff_count,
    entered_from, reached_to, flagged (the bottleneck) and small (small n)."""
    fig = figure(title, height=120 + 46 * max(len(steps), 1))
    fig.add_trace(trace("bar", 
        x=steps["dropout_rate"], y=steps["label"], orientation="h",
        marker_color=[OKABE_ITO["vermillion"] if b else GREY if sm else OKABE_ITO["blue"]
                      for b, sm in zip(steps["flagged"], steps["small"], strict=True)],
        text=[f"{fmt.pct(r)} · {fmt.count(n)} of {fmt.count(e)} lost"
              + (" · small n" if sm else "") for r, n, e, sm in
              zip(steps["dropout_rate"], steps["dropoff_count"], steps["entered_from"],
                  steps["small"], strict=True)],
        # short bars (a 0 % step too) carry their number beside them
        textposition=["inside" if r >= 0.45 else "outside"
                      for r in steps["dropout_rate"].fillna(0)],
        insidetextanchor="end", cliponaxis=False,
        customdata=list(zip(steps["entered_from"], steps["reached_to"],
                            steps["dropoff_count"], strict=True)),
        hovertemplate="<b>%{y}</b><br>dropout: %{x:.1%}<br>reached first stage: "
                      "%{customdata[0]:,d}<br>went on: %{customdata[1]:,d}<br>lost: "
                      "%{customdata[2]:,d}<extra></extra>",
        showlegend=False))
    fig.update_xaxes(title_text="dropout rate (%)", tickformat=".0%", range=[0, 1])
    fig.update_yaxes(title_text="step", autorange="reversed")
    return fig


def _bottleneck(ctx: Context, combo: scope.Combination) -> Safe:
    """The dropout of each step up to the conversion stage for the pickers' period and
    segment value: the complete cohorts of `period_funnel` (the step into stage k is its row
    k: entered = went on, the row before = reached first)."""
    div_id = ctx.div_id(SLUG, "dropout")
    who = "" if ctx.segment == ALL_CUSTOMERS else f" of {ctx.segment_name()}"
    df = (ctx.wh.scope_rows("period_funnel", ctx.period_days, ctx.segment, "stage_index")
          if ctx.wh.has("period_funnel") and "segment" in ctx.wh.columns("period_funnel")
          else pd.DataFrame())
    if df.empty:
        text = (f"No journeys{who} entered in the period's entry days whose conversion window "
                "is fully observed.")
        return section(BOTTLENECK_TITLE, combo.slot("bottleneck-lead", paragraph(text)),
                       combo.figure(div_id, None))
    stages = list(df["stage"])
    last = (stages.index(ctx.conversion_stage) if ctx.conversion_stage in stages
            else len(stages) - 1)
    steps = pd.DataFrame({
        "label": [f"{a} → {b}" for a, b in zip(stages[:-1], stages[1:], strict=True)],
        "from_stage": stages[:-1], "to_stage": stages[1:],
        "entered_from": list(df["entered"].iloc[:-1]),
        "reached_to": list(df["entered"].iloc[1:]),
        "dropoff_count": list(df["dropoff_count"].iloc[1:]),
        "dropout_rate": list(df["dropout_rate"].iloc[1:]),
        "flagged": list(df["largest_dropout"].iloc[1:].fillna(False).astype(bool)),
        "small": list(df["small_n"].iloc[1:].fillna(False).astype(bool)),
    }).iloc[:last]
    conv = f" on the way to {ctx.conversion_stage}" if ctx.conversion_stage else ""
    fig = _steps_chart(steps, title=f"Where is the bottleneck? Dropout rate per step{conv}, "
                                    "in journey order")
    first, last_day = pd.Timestamp(df["first_cohort"].iloc[0]), pd.Timestamp(
        df["last_cohort"].iloc[0])
    lead = (f"{ctx.period_name(ctx.period_days)}, {ctx.segment_name()}: journeys entering "
            f"{first:%d %b} – {last_day:%d %b %Y} whose conversion window is fully observed "
            f"(n = {fmt.count(df['entered'].iloc[0])}). ")
    flagged = steps[steps["flagged"]]
    if not flagged.empty:
        row = flagged.iloc[0]
        lead += (f"The bottleneck{conv} is {row['label']}: {fmt.pct(row['dropout_rate'])} of "
                 f"customers who reach {row['from_stage']} do not go on "
                 f"({fmt.count(row['dropoff_count'])} of {fmt.count(row['entered_from'])}).")
    elif steps["small"].any():
        lead += f"Too few customers at the steps{conv} to name a bottleneck."
    else:
        lead += f"No step{conv} loses customers."
    if steps["small"].any():
        lead += (f" Grey, small n: fewer than {ctx.setting('small_n')} customers reached the "
                 "step's first stage; not ranked.")
    return section(BOTTLENECK_TITLE, combo.slot("bottleneck-lead", paragraph(lead, cls="lead")),
                   combo.figure(div_id, fig, numbers=True))


def _bottleneck_all_days(ctx: Context, page: Page) -> Safe:
    """Without period tables: the dropout per step of all complete journeys
    (`stage_transitions`)."""
    if not ctx.wh.has("stage_transitions"):
        return section(BOTTLENECK_TITLE, not_available(
            "The transition ranking", ctx.wh.missing("stage_transitions")))
    df = ctx.wh.df("select * from stage_transitions order by from_index")
    if df.empty:
        return section(BOTTLENECK_TITLE, paragraph("No complete journeys yet."))
    # Ranked steps only (up to the conversion stage), in journey order: after conversion,
    # "dropout" is customers not (yet) buying again, the repeat page's story.
    steps = df.assign(label=_label(df), flagged=df["is_bottleneck"].fillna(False).astype(bool),
                      small=False)
    steps = steps[steps["rank_dropout"].notna()].sort_values("from_index")
    conv = f" on the way to {ctx.conversion_stage}" if ctx.conversion_stage else ""
    fig = _steps_chart(steps, title=f"Where is the bottleneck? Dropout rate per step{conv}, "
                                    "in journey order")
    page.figures += 1
    return section(BOTTLENECK_TITLE, to_div(fig, ctx.div_id(SLUG, "dropout"), numbers=True),
                   lead=ALL_DAYS + "complete journeys. " + _bottleneck_sentence(
                       ctx, df.assign(label=_label(df))))


def _transitions(ctx: Context, page: Page) -> Safe:
    title = "Which step between stages loses the most customers, and which is slowest?"
    if not ctx.wh.has("stage_transitions"):
        return section(title, not_available(
            "The transition ranking", ctx.wh.missing("stage_transitions")))
    df = ctx.wh.df("select * from stage_transitions order by from_index")
    if df.empty:
        return section(title, paragraph("No complete journeys yet."))
    labels = _label(df)

    timed = df.assign(label=labels)
    timed = timed[timed["median_seconds"].notna()].sort_values("median_seconds")
    fig2 = figure("Which step takes longest? Median (●) and 90th percentile (◆) time between "
                  "stages, log scale", height=120 + 46 * max(len(timed), 1))
    minutes = 60.0
    med = timed["median_seconds"].clip(lower=minutes) / 3600
    p90 = timed["p90_seconds"].clip(lower=minutes) / 3600
    for label, a, b in zip(timed["label"], med, p90, strict=True):  # median-to-p90 whisker
        if pd.notna(b):
            fig2.add_trace(trace("scatter", x=[a, b], y=[label, label], mode="lines",
                                      line=dict(color=LIGHT_GREY, width=4), hoverinfo="skip",
                                      showlegend=False))
    fig2.add_trace(trace("scatter", 
        x=med, y=timed["label"], mode="markers+text", name="median",
        marker=dict(color=OKABE_ITO["blue"], size=11),
        text=[fmt.duration(v) for v in timed["median_seconds"]], textposition="top center",
        customdata=list(zip([fmt.duration(v) for v in timed["median_seconds"]],
                            [fmt.duration(v) for v in timed["p75_seconds"]],
                            [fmt.duration(v) for v in timed["p90_seconds"]], timed["timed"],
                            strict=True)),
        hovertemplate="<b>%{y}</b><br>median %{customdata[0]}, 75th pct %{customdata[1]}, "
                      "90th pct %{customdata[2]}<br>journeys timed: %{customdata[3]:,d}"
                      "<extra></extra>"))
    fig2.add_trace(trace("scatter", 
        x=p90, y=timed["label"], mode="markers", name="90th percentile",
        marker=dict(symbol="diamond", size=10, color=OKABE_ITO["orange"]), hoverinfo="skip"))
    ticks = [1 / 60, 0.25, 1, 6, 24, 72, 168, 720]
    fig2.update_xaxes(type="log", title_text="time from one stage to the next (log scale)",
                      tickvals=ticks, ticktext=["1 min", "15 min", "1 h", "6 h", "1 d", "3 d",
                                                "7 d", "30 d"])
    # room above the top row for its median label
    fig2.update_yaxes(title_text="step", range=[-0.6, len(timed) - 0.15])
    fig2.update_layout(legend=dict(y=1.0, yanchor="bottom"))
    page.figures += 1

    # Unranked transitions (after the conversion stage) go last, in journey order.
    ranked = df.assign(label=labels).sort_values(["rank_dropout", "from_index"],
                                                 na_position="last")
    rows = [[lab, fmt.count(a), fmt.count(b), fmt.count(c), fmt.pct(d), _rank(rd), _rank(rf),
             fmt.duration(m), fmt.duration(p9), _rank(rt)]
            for lab, a, b, c, d, rd, rf, m, p9, rt in zip(
                ranked["label"], ranked["entered_from"], ranked["reached_to"],
                ranked["dropoff_count"], ranked["dropout_rate"], ranked["rank_dropout"],
                ranked["rank_dropoff"], ranked["median_seconds"], ranked["p90_seconds"],
                ranked["rank_time"], strict=True)]
    lead = (ALL_DAYS + "complete journeys whose conversion window is fully observed. "
            + _bottleneck_sentence(ctx, ranked))
    return section(
        title,
        to_div(fig2, ctx.div_id(SLUG, "time"), numbers=True),
        table(["transition", "reached first", "went on", "lost", "dropout", "rank by dropout",
               "rank by lost", "median time", "90th pct time", "rank by time"], rows,
              numeric=range(1, 10),
              flag_rows=[i for i, b in enumerate(ranked["is_bottleneck"].fillna(False)) if b]),
        lead=lead)


def _rank(value: object) -> int | str:
    return "" if pd.isna(value) else int(value)


def _bottleneck_sentence(ctx: Context, ranked: pd.DataFrame) -> str:
    """Name the bottleneck the table flags (ranked only up to the conversion stage) and say
    which transitions come after it, unranked."""
    conv = f" on the way to {ctx.conversion_stage}" if ctx.conversion_stage else ""
    flagged = ranked[ranked["is_bottleneck"].fillna(False).astype(bool)]
    if flagged.empty:
        text = f"No step{conv} loses customers."
    else:
        row = flagged.iloc[0]
        text = (f"The bottleneck{conv} is {row['from_stage']} → {row['to_stage']}: "
                f"{fmt.pct(row['dropout_rate'])} of customers who reach {row['from_stage']} do "
                f"not go on ({fmt.count(row['dropoff_count'])} customers).")
    later = ranked[ranked["rank_dropout"].isna()]
    if not later.empty:
        text += (f" Steps after conversion are not ranked ({', '.join(later['label'])}): "
                 "customers lost there have already bought; buying again is on the repeat "
                 "page.")
    return text


# --- time-to-convert distributions -----------------------------------------------------------

def _time_distribution(ctx: Context, page: Page) -> Safe:
    title = "How long do customers take from one stage to the next?"
    if not ctx.wh.has("stage_time_distribution"):
        return section(title, not_available("Time-to-convert distributions",
                                            ["stage_time_distribution"]))
    df = ctx.wh.df("select * from stage_time_distribution where timed > 0 order by stage_index")
    if df.empty:
        return section(title, paragraph("No timed transitions yet."))
    order = ctx.stages
    labels = []
    for stage in df["stage"]:
        i = order.index(stage) if stage in order else -1
        labels.append(f"{order[i - 1]} → {stage}" if i > 0 else str(stage))
    q = df[["p5_seconds", "p25_seconds", "median_seconds", "p75_seconds", "p95_seconds"]]
    q.columns = ["p5", "p25", "p50", "p75", "p95"]
    # Log axis in hours: same-instant steps (0 s) are drawn at one minute.
    hours = (q / 3600.0).clip(lower=1 / 60)
    fig = figure("How long does each step take? Time between stages (log scale)", height=420)
    fig.add_trace(trace("box", 
        y=labels, q1=hours["p25"], median=hours["p50"], q3=hours["p75"],
        lowerfence=hours["p5"], upperfence=hours["p95"], orientation="h",
        marker_color=OKABE_ITO["blue"], name="time between stages", showlegend=False,
        hoverinfo="y+x"))
    for i, label in enumerate(labels):
        fig.add_annotation(
            x=math.log10(float(hours["p95"].iloc[i])), y=label, xanchor="left",
            text=f"  median {fmt.duration(q['p50'].iloc[i])} · n={fmt.count(df['timed'][i])}",
            showarrow=False, font=dict(size=11, color="#444"))
    ticks = [1 / 60, 0.25, 1, 6, 24, 72, 168, 720, 2160]
    fig.update_xaxes(type="log", title_text="time from the previous stage (log scale)",
                     tickvals=ticks, ticktext=["1 min", "15 min", "1 h", "6 h", "1 d", "3 d",
                                               "7 d", "30 d", "90 d"])
    fig.update_yaxes(title_text="transition", autorange="reversed")
    page.figures += 1
    return section(title, to_div(fig, ctx.div_id(SLUG, "time-dist")),
                   lead=ALL_DAYS + "complete journeys with both stages observed (skipped "
                        "stages left out). Box: middle half of journeys (25th–75th "
                        "percentile), line: median, whiskers: 5th–95th percentile.")


# --- segment comparison ----------------------------------------------------------------------

def _segments(ctx: Context, page: Page) -> Safe:
    title = "Which customers drop out more than the rest, and at which step?"
    if not ctx.wh.has("stage_transition_segments"):
        return section(title, not_available("The segment comparison",
                                            ["stage_transition_segments"]))
    df = ctx.wh.df("select * from stage_transition_segments order by segment, segment_value, "
                   "from_index")
    if df.empty:
        return section(title, paragraph("No segment breakdown yet."))
    overall = (ctx.wh.df("select from_stage, to_stage, dropout_rate as overall_rate "
                         "from stage_transitions") if ctx.wh.has("stage_transitions")
               else pd.DataFrame(columns=["from_stage", "to_stage", "overall_rate"]))
    df = df.merge(overall, on=["from_stage", "to_stage"], how="left")
    df["transition"] = _label(df)
    df["row"] = df["segment"].astype(str) + " = " + df["segment_value"].astype(str)
    transitions = list(dict.fromkeys(df.sort_values("from_index")["transition"]))

    # '(unknown)' is no segment: left out of the heatmap and the ranking.
    df = df[~df["segment_value"].astype(str).map(_unknown)]
    # Keep the rows with the largest differences so the heatmap stays readable.
    strength = df.groupby("row")["dropout_diff"].apply(lambda s: s.abs().max()).fillna(0)
    rows = list(strength.sort_values(ascending=False).index[:MAX_SEGMENT_ROWS])
    rows = sorted(rows, key=lambda r: (r.split(" = ")[0], r))
    grid = df[df["row"].isin(rows)]
    small_n = ctx.setting("small_n")
    z, z_sig, text, hover = [], [], [], []
    for r in rows:
        zr, sr, tr, hr = [], [], [], []
        for t in transitions:
            cell = grid[(grid["row"] == r) & (grid["transition"] == t)]
            if cell.empty or pd.isna(cell["dropout_diff"].iloc[0]):
                zr.append(None)
                sr.append(None)
                tr.append("")
                hr.append("")
                continue
            c = cell.iloc[0]
            if small_n is not None and c["entered_from"] < small_n:  # too few to colour
                zr.append(None)
                sr.append(None)
                tr.append(f"n={fmt.count(c['entered_from'])}")
                hr.append(f"only {fmt.count(c['entered_from'])} reached the step: fewer than "
                          f"{small_n}, too few for a rate")
                continue
            zr.append(float(c["dropout_diff"]) * 100)
            sr.append(zr[-1] if bool(c["significant"]) else None)
            tr.append(fmt.pp(c["dropout_diff"]).replace(" pp", "") +
                      ("*" if bool(c["significant"]) else "") +
                      f"<br>n={fmt.count(c['entered_from'])}")
            hr.append(f"dropout {fmt.pct(c['dropout_rate'])} vs rest "
                      f"{fmt.pct(c['rest_dropout_rate'])} (overall {fmt.pct(c['overall_rate'])})"
                      f"<br>reached: {fmt.count(c['entered_from'])}, p = "
                      f"{fmt.p_value(c['p_value'])}"
                      f"{' — significant' if bool(c['significant']) else ''}")
        z.append(zr)
        z_sig.append(sr)
        text.append(tr)
        hover.append(hr)
    finite = [abs(v) for zr in z for v in zr if v is not None]
    zmax = max(finite) if finite else 1.0
    fig = figure("Who drops out more? Dropout difference vs the rest of the segment, "
                 "percentage points (* and full colour = significant)",
                 height=max(360, 110 + 36 * len(rows)))
    # Not significant: washed out; significant: full colour (drawn on top).
    common = dict(x=transitions, y=rows, customdata=hover, colorscale=DIVERGING, zmin=-zmax,
                  zmax=zmax, xgap=2, ygap=2,
                  hovertemplate="<b>%{y}</b> at %{x}<br>%{customdata}<extra></extra>")
    fig.add_trace(trace("heatmap", z=z, opacity=0.3, showscale=False, **common))
    fig.add_trace(trace("heatmap", z=z_sig, colorbar=dict(title=dict(text="pp vs rest"),
                                                    ticksuffix=" pp"), **common))
    cell_labels(fig, transitions, rows, text,
                [[v is not None and abs(v) / zmax > 0.6 for v in zr] for zr in z_sig])
    fig.update_xaxes(title_text="transition", showgrid=False)
    fig.update_yaxes(title_text="segment = value", autorange="reversed", showgrid=False)
    page.figures += 1

    sig = df[df["significant"].fillna(False).astype(bool)].copy()
    # A two-valued segment (new / returning) tests the same split twice with opposite signs:
    # list only the side that drops out more.
    values = df.groupby(["segment", "transition"])["segment_value"].transform("nunique")
    mirrored = (values.loc[sig.index] == 2) & (sig["dropout_diff"] < 0)
    sig = sig[~mirrored].copy()
    sig["abs_diff"] = sig["dropout_diff"].abs()
    sig = sig.sort_values("abs_diff", ascending=False).head(15)
    table_rows = [[r.segment, r.segment_value, r.transition, fmt.count(r.entered_from),
                   fmt.pct(r.dropout_rate), fmt.pct(r.rest_dropout_rate), fmt.pct(r.overall_rate),
                   fmt.pp(r.dropout_diff), fmt.number(r.z_score, 2), fmt.p_value(r.p_value)]
                  for r in sig.itertuples(index=False)]
    parts: list[Safe] = [to_div(fig, ctx.div_id(SLUG, "segments"), numbers=True)]
    if table_rows:
        parts.append(table(["segment", "value", "step", "reached", "dropout", "rest",
                            "overall", "difference vs rest", "z (dropout)", "p"], table_rows,
                           numeric=range(3, 10)))
    else:
        parts.append(paragraph("No segment differs significantly from the rest."))
    return section(title, *parts, lead=ALL_DAYS + "complete journeys, by their segment "
                                                  "value at entry ('(unknown)' left out). "
                                                  + _test_sentence(ctx))


def _test_sentence(ctx: Context) -> str:
    alpha, n = ctx.setting("significance_level"), ctx.setting("min_group_outcomes")
    test = ("Test: two-proportion z-test (pooled, two-sided) of each segment value against all "
            "other values of the same segment")
    if alpha is None or n is None:
        return (f"{test}; the significance level is not available (no run_settings). "
                "Positive = drops out more.")
    small = ctx.setting("small_n")
    small_text = (f" Cells with fewer than {small} customers show only their n." if small
                  else "")
    return (f"{test}; significant when p < {alpha} and both groups have at least {n} "
            f"conversions and {n} drop-offs. Not corrected for multiple comparisons: expect "
            f"about {fmt.pct(alpha, 0)} of cells to look significant by chance. Positive = drops "
            f"out more.{small_text}")


def _unknown(value: str) -> bool:
    return value.endswith("(unknown)")


# --- payments --------------------------------------------------------------------------------

def _payments(ctx: Context, page: Page) -> Safe:
    title = "Do bookings get paid? The booking-level payment funnel and why payments fail"
    wh = ctx.wh
    parts: list[Safe] = []
    if wh.has("booking_funnel"):
        bf = wh.df("select * from booking_funnel where segment = 'all' order by step_index")
        if not bf.empty:
            first = bf.iloc[0]
            parts.append(paragraph(
                f"Of {fmt.count(first['payment_started'])} bookings with a payment attempt, "
                f"{fmt.count(first['payment_not_paid'])} were never paid: payment dropout "
                f"{fmt.pct(first['payment_dropout_rate'])}."))
            parts.append(table(
                ["booking step", "bookings", "step conversion", "lost", "dropout",
                 "median time from previous"],
                [[r.step, fmt.count(r.entered), fmt.pct(r.step_conversion),
                  fmt.count(r.dropoff_count), fmt.pct(r.dropout_rate),
                  fmt.duration(r.median_seconds)] for r in bf.itertuples(index=False)],
                numeric=range(1, 6)))
        by_platform = wh.df(
            "select segment_value as platform, max(payment_started) as started, "
            "max(payment_not_paid) as not_paid, max(payment_dropout_rate) as rate "
            "from booking_funnel where segment = 'platform' group by segment_value "
            "order by rate desc")
        if not by_platform.empty:
            overall = bf["payment_dropout_rate"].iloc[0] if not bf.empty else None
            fig = figure("On which platform do bookings go unpaid? Payment dropout by platform",
                         height=340)
            fig.add_trace(trace("bar", 
                x=by_platform["platform"], y=by_platform["rate"],
                marker_color=[COLORWAY[i % len(COLORWAY)] for i in range(len(by_platform))],
                text=[fmt.pct(v) for v in by_platform["rate"]], textposition="outside",
                customdata=list(zip(by_platform["started"], by_platform["not_paid"],
                                    strict=True)),
                hovertemplate="<b>%{x}</b><br>payment dropout: %{y:.1%}<br>bookings with a "
                              "payment attempt: %{customdata[0]:,d}<br>never paid: "
                              "%{customdata[1]:,d}<extra></extra>", showlegend=False))
            if overall is not None and pd.notna(overall):
                fig.add_hline(y=float(overall), line_dash="dash", line_color=GREY,
                              annotation_text=f"all platforms {fmt.pct(overall)}",
                              annotation_position="top right")
            fig.update_yaxes(title_text="bookings started, never paid (%)", tickformat=".0%",
                             rangemode="tozero")
            fig.update_xaxes(title_text="platform")
            parts.append(to_div(fig, ctx.div_id(SLUG, "payment-platform"), numbers=True))
            page.figures += 1
    else:
        parts.append(not_available("The booking payment funnel", ctx.wh.missing("booking_funnel")))

    if wh.has("payment_failure_matrix", "payment_failures"):
        parts.extend(_failure_figures(ctx, page))
    else:
        parts.append(not_available("Payment failure rates and reasons",
                                   wh.missing("payment_failure_matrix", "payment_failures")))
    return section(title, *parts, lead=ALL_DAYS + "every booking and payment attempt.")


def _failure_figures(ctx: Context, page: Page) -> list[Safe]:
    wh = ctx.wh
    combos = wh.df("select platform, method, attempts, failures, failure_rate as rate, "
                   "rank_failure_rate from payment_failure_matrix order by platform, method")
    if combos.empty:
        return [paragraph("No payment attempts recorded.")]
    platforms = sorted(combos["platform"].astype(str).unique())
    methods = sorted(combos["method"].astype(str).unique())
    z, custom, text = [], [], []
    for p in platforms:
        zr, cr, tr = [], [], []
        for m in methods:
            c = combos[(combos["platform"].astype(str) == p) & (combos["method"].astype(str) == m)]
            if c.empty:
                zr.append(None)
                cr.append([0, 0])
                tr.append("")
            else:
                zr.append(float(c["rate"].iloc[0]))
                cr.append([int(c["failures"].iloc[0]), int(c["attempts"].iloc[0])])
                tr.append(f"{fmt.pct(c['rate'].iloc[0])}<br>n={fmt.count(c['attempts'].iloc[0])}")
        z.append(zr)
        custom.append(cr)
        text.append(tr)
    fig = figure("Which platform and payment method fail? Failure rate of payment attempts",
                 height=340)
    fig.add_trace(trace("heatmap", 
        z=z, x=methods, y=platforms, customdata=custom, colorscale=SEQUENTIAL_RATE,
        xgap=2, ygap=2, zmin=0,
        colorbar=dict(title=dict(text="failure rate"), tickformat=".0%"),
        hovertemplate="<b>%{y} · %{x}</b><br>failure rate: %{z:.1%}<br>failed: "
                      "%{customdata[0]:,d} of %{customdata[1]:,d} attempts<extra></extra>"))
    top = max((v for zr in z for v in zr if v is not None), default=0.0) or 1.0
    cell_labels(fig, methods, platforms, text,
                [[v is not None and v / top > 0.5 for v in zr] for zr in z])
    fig.update_xaxes(title_text="payment method", showgrid=False)
    fig.update_yaxes(title_text="platform", showgrid=False)
    page.figures += 1

    reasons = wh.df(
        "select failure_reason, platform, method, sum(failures) as failures "
        "from payment_failures group by failure_reason, platform, method")
    reasons["who"] = reasons["platform"].astype(str) + " · " + reasons["method"].astype(str)
    top_who = (reasons.groupby("who")["failures"].sum().sort_values(ascending=False)
               .index[:5].tolist())
    reasons["who"] = reasons["who"].where(reasons["who"].isin(top_who), "other")
    reasons = reasons.groupby(["failure_reason", "who"], as_index=False)["failures"].sum()
    order = (reasons.groupby("failure_reason")["failures"].sum().sort_values().index.tolist())
    fig2 = figure("Why do payments fail? Failed attempts by reason", height=360)
    for i, who in enumerate(top_who + (["other"] if (reasons["who"] == "other").any() else [])):
        part = reasons[reasons["who"] == who].set_index("failure_reason").reindex(order)
        fig2.add_trace(trace("bar", 
            y=order, x=part["failures"].fillna(0), orientation="h", name=who,
            marker_color=GREY if who == "other" else COLORWAY[i % len(COLORWAY)],
            hovertemplate="<b>%{y}</b><br>%{fullData.name}: %{x:,d} failed attempts"
                          "<extra></extra>"))
    fig2.update_layout(barmode="stack")
    fig2.update_xaxes(title_text="failed payment attempts", tickformat=",~f")
    fig2.update_yaxes(title_text="failure reason")
    page.figures += 1
    # Small cells are noisy: the table ranks only those with enough attempts to mean something.
    ranked = combos[combos["rank_failure_rate"] == 1]
    worst = [] if ranked.empty else [paragraph(
        f"Highest failure rate: {ranked['platform'].iloc[0]} with {ranked['method'].iloc[0]} — "
        f"{fmt.pct(ranked['rate'].iloc[0])} of {fmt.count(ranked['attempts'].iloc[0])} attempts "
        f"failed (cells with at least {ctx.setting('min_attempts_to_rank') or '–'} attempts "
        "ranked).")]
    return [
        *worst,
        Safe('<div class="grid2">'),
        to_div(fig, ctx.div_id(SLUG, "failure-matrix"), numbers=True),
        to_div(fig2, ctx.div_id(SLUG, "failure-reasons")),
        Safe("</div>"),
        paragraph("Failure rate = failed / (succeeded + failed) payment attempts, all days.",
                  cls="muted"),
    ]
