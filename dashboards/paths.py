"""Paths page: the process map, top variants, a Sankey of stage paths and conformance."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from dashboards import fmt
from dashboards.charts import COLORWAY, GREY, OKABE_ITO, SEQUENTIAL, figure, to_div
from dashboards.context import Context
from dashboards.layout import (
    Page,
    Safe,
    card,
    cards,
    esc,
    not_available,
    paragraph,
    section,
    table,
)

SLUG = "paths"
TOP_VARIANTS = 15
SANKEY_VARIANTS = 60
SANKEY_DEPTH = 7


def render(ctx: Context) -> Page:
    page = Page(SLUG, "Paths")
    page.add(_process_map(ctx, page))
    page.add(_variants(ctx, page))
    page.add(_sankey(ctx, page))
    page.add(_conformance(ctx, page))
    return page


# --- process map -----------------------------------------------------------------------------

def _edge_path(x0: float, x1: float, same: bool) -> tuple[np.ndarray, np.ndarray]:
    """Points of an edge: a loop above the node, an arc above (forward skip) or below (back)."""
    t = np.linspace(0.0, 1.0, 24)
    if same:
        angle = np.pi * 2 * t
        return x0 + 0.18 * np.sin(angle), 0.32 - 0.32 * np.cos(angle) * 0.55 + 0.0 * t
    distance = x1 - x0
    if distance == 1:
        height = 0.0
    elif distance > 1:
        height = 0.28 * (distance - 1) + 0.22
    else:
        height = -(0.28 * (abs(distance) - 1) + 0.3)
    xs = x0 + (x1 - x0) * t
    ys = 4 * height * t * (1 - t)
    return xs, ys


def _process_map(ctx: Context, page: Page) -> Safe:
    title = "How do customers actually move between stages?"
    if not ctx.wh.has("dfg_edges"):
        return section(title, not_available("The process map", ctx.wh.missing("dfg_edges")))
    edges = ctx.wh.df("select * from dfg_edges order by count desc")
    if edges.empty:
        return section(title, paragraph("No directly-follows pairs mined yet."))
    endpoints = (ctx.wh.df("select activity, kind, count from dfg_endpoints")
                 if ctx.wh.has("dfg_endpoints") else pd.DataFrame(
                     columns=["activity", "kind", "count"]))
    nodes = list(ctx.stages)
    for a in list(edges["source"]) + list(edges["target"]):
        if a not in nodes:
            nodes.append(str(a))
    xpos = {n: float(i) for i, n in enumerate(nodes)}

    median = edges["median_s"].astype(float).clip(lower=1.0)
    lo, hi = math.log10(median.min()), math.log10(median.max())
    span = hi - lo if hi > lo else 1.0
    colors = sample_colorscale(SEQUENTIAL, [(math.log10(m) - lo) / span for m in median])
    max_count = float(edges["count"].max())

    fig = figure("Which paths carry the customers, and how slow are they? Directly-follows "
                 "graph of stages", height=520)
    mid_x, mid_y, mid_text = [], [], []
    for (_, e), color in zip(edges.iterrows(), colors, strict=True):
        xs, ys = _edge_path(xpos[e["source"]], xpos[e["target"]], e["source"] == e["target"])
        width = 1.5 + 12 * math.sqrt(float(e["count"]) / max_count)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=color, width=width),
                                 hoverinfo="skip", showlegend=False))
        k = int(len(xs) * 0.72)
        fig.add_trace(go.Scatter(
            x=[xs[k - 1], xs[k]], y=[ys[k - 1], ys[k]], mode="markers", hoverinfo="skip",
            marker=dict(symbol="arrow", angleref="previous", size=[0, 10 + width],
                        color=color, line=dict(width=0)), showlegend=False))
        mid_x.append(xs[len(xs) // 2])
        mid_y.append(ys[len(ys) // 2])
        mid_text.append(
            f"<b>{esc(e['source'])} → {esc(e['target'])}</b><br>{fmt.count(e['count'])} times<br>"
            f"median {fmt.duration(e['median_s'])}, mean {fmt.duration(e['mean_s'])}, "
            f"90th pct {fmt.duration(e['p90_s'])}")
    fig.add_trace(go.Scatter(
        x=mid_x, y=mid_y, mode="markers", hovertext=mid_text, hoverinfo="text",
        marker=dict(size=14, opacity=0), showlegend=False, name="edges"))

    starts = endpoints[endpoints["kind"] == "start"].set_index("activity")["count"]
    ends = endpoints[endpoints["kind"] == "end"].set_index("activity")["count"]
    incoming = edges[edges["source"] != edges["target"]].groupby("target")["count"].sum()
    node_text, sizes = [], []
    for n in nodes:
        s, e_, i = (int(starts.get(n, 0)), int(ends.get(n, 0)), int(incoming.get(n, 0)))
        node_text.append(f"<b>{esc(n)}</b><br>journeys starting here: {fmt.count(s)}<br>arrivals "
                         f"from other stages: {fmt.count(i)}<br>journeys ending here: "
                         f"{fmt.count(e_)}")
        sizes.append(s + i)
    size_max = max(sizes) if sizes and max(sizes) > 0 else 1
    fig.add_trace(go.Scatter(
        x=[xpos[n] for n in nodes], y=[0.0] * len(nodes), mode="markers+text",
        text=nodes, textposition="bottom center", hovertext=node_text, hoverinfo="text",
        marker=dict(size=[22 + 26 * math.sqrt(v / size_max) for v in sizes],
                    color=OKABE_ITO["sky"], line=dict(color="#1d2b36", width=1.5)),
        textfont=dict(size=13), showlegend=False, name="stages"))
    tick_vals = [v for v in (60, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)
                 if lo <= math.log10(v) <= hi] or [10 ** lo, 10 ** hi]
    fig.add_trace(go.Scatter(
        x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
        marker=dict(colorscale=SEQUENTIAL, cmin=lo, cmax=hi, color=[lo], showscale=True,
                    colorbar=dict(title=dict(text="median time"),
                                  tickvals=[math.log10(v) for v in tick_vals],
                                  ticktext=[fmt.duration(v) for v in tick_vals]))))
    fig.update_xaxes(visible=False, range=[-0.6, len(nodes) - 0.4])
    fig.update_yaxes(visible=False, range=[-1.4, 1.6])
    page.figures += 1
    return section(title, to_div(fig, ctx.div_id(SLUG, "dfg")),
                   lead="Stages left to right in journey-map order. Line width: how often one "
                        "stage directly follows the other; colour: median time between them. "
                        "Arcs above skip stages, arcs below go back, loops repeat a stage. "
                        "Hover a node or the middle of an edge for numbers.")


# --- variants --------------------------------------------------------------------------------

def _variants(ctx: Context, page: Page) -> Safe:
    title = "Which paths do customers take, and which of them convert?"
    if not ctx.wh.has("variants"):
        return section(title, not_available("Variants", ctx.wh.missing("variants")))
    df = ctx.wh.df("select variant_id, path, journeys, share, median_duration_s, converted_share "
                   "from variants order by journeys desc, path limit ?", [TOP_VARIANTS])
    if df.empty:
        return section(title, paragraph("No variants mined yet."))
    shown = df["share"].sum()  # the variants' own shares of all journeys, added up
    df["label"] = [f"#{i + 1} {_short(p)}" for i, p in enumerate(df["path"])]
    ordered = df.iloc[::-1]
    fig = figure(f"What are the {len(df)} most common paths? Share of journeys", height=
                 max(360, 110 + 30 * len(df)))
    fig.add_trace(go.Bar(
        x=ordered["share"], y=ordered["label"], orientation="h", hovertext=ordered["path"],
        marker=dict(color=ordered["converted_share"], colorscale=SEQUENTIAL, cmin=0, cmax=1,
                    colorbar=dict(title=dict(text="converted"), tickformat=".0%")),
        text=[f"{fmt.pct(s)} · {fmt.pct(c)} converted" for s, c in
              zip(ordered["share"], ordered["converted_share"], strict=True)],
        textposition="auto",
        customdata=list(zip(ordered["journeys"], ordered["converted_share"],
                            [fmt.duration(v) for v in ordered["median_duration_s"]],
                            strict=True)),
        hovertemplate="<b>%{hovertext}</b><br>%{customdata[0]:,d} journeys (%{x:.1%})<br>"
                      "converted: "
                      "%{customdata[1]:.1%}<br>median duration: %{customdata[2]}<extra></extra>",
        showlegend=False))
    fig.update_xaxes(title_text="share of journeys (%)", tickformat=".0%")
    fig.update_yaxes(title_text="stage path", tickfont=dict(size=11))
    page.figures += 1
    rows = [[f"#{i + 1}", r.path, fmt.count(r.journeys), fmt.pct(r.share),
             fmt.pct(r.converted_share), fmt.duration(r.median_duration_s)]
            for i, r in enumerate(df.itertuples(index=False))]
    return section(title, to_div(fig, ctx.div_id(SLUG, "variants")),
                   table(["", "path", "journeys", "share", "converted", "median duration"],
                         rows, numeric=range(2, 6)),
                   lead=f"The top {len(df)} paths cover {fmt.pct(shown)} of all journeys.")


def _short(path: str, limit: int = 52) -> str:
    """A long path for an axis label: its start and end, the middle elided."""
    if len(path) <= limit:
        return path
    keep = (limit - 3) // 2
    return f"{path[:keep].rstrip()} … {path[-keep:].lstrip()}"


# --- Sankey ----------------------------------------------------------------------------------

def _sankey(ctx: Context, page: Page) -> Safe:
    title = "How do paths branch and end, step by step?"
    if not ctx.wh.has("variants"):
        return section(title, not_available("The path Sankey", ctx.wh.missing("variants")))
    df = ctx.wh.df("select stages, journeys, share from variants order by journeys desc limit ?",
                   [SANKEY_VARIANTS])
    if df.empty:
        return section(title, paragraph("No variants mined yet."))
    node_index: dict[tuple[int, str], int] = {}
    labels: list[str] = []
    node_colors: list[str] = []
    flows: dict[tuple[int, int], float] = {}
    order = list(ctx.stages)

    def node(step: int, stage: str) -> int:
        key = (step, stage)
        if key not in node_index:
            node_index[key] = len(labels)
            labels.append(f"{step + 1}. {stage}" if stage != "…" else f"{step + 1}. … more")
            i = order.index(stage) if stage in order else len(order)
            node_colors.append(GREY if stage == "…" else COLORWAY[i % len(COLORWAY)])
        return node_index[key]

    for stages, n in zip(df["stages"], df["journeys"], strict=True):
        path = [str(s) for s in stages]
        if len(path) > SANKEY_DEPTH:
            path = path[:SANKEY_DEPTH - 1] + ["…"]
        for i in range(len(path) - 1):
            key = (node(i, path[i]), node(i + 1, path[i + 1]))
            flows[key] = flows.get(key, 0.0) + float(n)
        if len(path) == 1:
            node(0, path[0])
    shown = df["share"].sum()
    fig = figure("How do journeys flow from stage to stage? Stage paths, step by step",
                 height=520)
    fig.add_trace(go.Sankey(
        arrangement="snap",
        node=dict(label=labels, color=node_colors, pad=14, thickness=16,
                  hovertemplate="%{label}<br>%{value:,.0f} journeys<extra></extra>"),
        link=dict(source=[k[0] for k in flows], target=[k[1] for k in flows],
                  value=list(flows.values()), color="rgba(120,120,120,0.25)",
                  hovertemplate="%{source.label} → %{target.label}<br>%{value:,.0f} journeys"
                                "<extra></extra>")))
    page.figures += 1
    return section(title, to_div(fig, ctx.div_id(SLUG, "sankey")),
                   lead=f"The {len(df)} most common paths ({fmt.pct(shown)} of journeys); a "
                        "node is a stage at a step number, a flow that stops is where journeys "
                        f"ended. Paths longer than {SANKEY_DEPTH} steps are cut at “… more”.")


# --- conformance -----------------------------------------------------------------------------

def _conformance(ctx: Context, page: Page) -> Safe:
    title = "Do journeys follow the designed journey map?"
    wh = ctx.wh
    if not wh.has("conformance_overall"):
        return section(title, not_available("Conformance", ctx.wh.missing("conformance_overall",
                                                             "conformance_deviations")))
    parts: list[Safe] = []
    overall = wh.df("select * from conformance_overall")
    if not overall.empty:
        o = overall.iloc[0]
        parts.append(cards([
            card("Fitness", fmt.pct(o["fitness"]),
                 detail="token-based replay against the designed map, weighted by journeys"),
            card("Fitting journeys", fmt.pct(o["fitting_share"]),
                 detail=f"of {fmt.count(o['journeys'])} journeys replay without a deviation"),
        ]))
    if wh.has("conformance_deviations"):
        dev = wh.df("select stage, deviation, journeys from conformance_deviations "
                    "where segment = 'all'")
        if not dev.empty:
            stages = [s for s in ctx.stages if s in set(dev["stage"])] + sorted(
                set(dev["stage"]) - set(ctx.stages))
            fig = figure("Where do journeys deviate from the map? Journeys per stage and kind",
                         height=380)
            kinds = {"skipped": OKABE_ITO["orange"], "repeated": OKABE_ITO["blue"],
                     "out_of_order": OKABE_ITO["vermillion"]}
            for kind in list(kinds) + sorted(set(dev["deviation"]) - set(kinds)):
                part = dev[dev["deviation"] == kind].set_index("stage").reindex(stages)
                if part["journeys"].isna().all():
                    continue
                fig.add_trace(go.Bar(
                    x=stages, y=part["journeys"].fillna(0), name=kind.replace("_", " "),
                    marker_color=kinds.get(kind, GREY),
                    hovertemplate="<b>%{x}</b><br>%{fullData.name}: %{y:,d} journeys"
                                  "<extra></extra>"))
            fig.update_layout(barmode="group")
            fig.update_yaxes(title_text="journeys with the deviation", tickformat=",~f")
            fig.update_xaxes(title_text="stage")
            parts.append(to_div(fig, ctx.div_id(SLUG, "deviations")))
            page.figures += 1
    else:
        parts.append(not_available(
            "Deviations per stage", ctx.wh.missing("conformance_deviations")))
    if wh.has("dropoff_points"):
        drop = wh.df("select stage, journeys, share from dropoff_points")
        if not drop.empty:
            drop["i"] = [ctx.stages.index(s) if s in ctx.stages else len(ctx.stages)
                         for s in drop["stage"]]
            drop = drop.sort_values("i")
            fig = figure("Where do journeys that never convert end?", height=340)
            fig.add_trace(go.Bar(
                x=drop["stage"], y=drop["share"], marker_color=OKABE_ITO["vermillion"],
                text=[fmt.pct(v) for v in drop["share"]], textposition="outside",
                customdata=drop["journeys"], showlegend=False,
                hovertemplate="<b>%{x}</b><br>%{customdata:,d} non-converting journeys end "
                              "here (%{y:.1%})<extra></extra>"))
            fig.update_yaxes(title_text="share of non-converting journeys (%)",
                             tickformat=".0%", rangemode="tozero")
            fig.update_xaxes(title_text="last stage reached")
            parts.append(to_div(fig, ctx.div_id(SLUG, "dropoff-points")))
            page.figures += 1
    return section(title, *parts,
                   lead="The designed journey allows stopping after any stage, so drop-off is "
                        "not a deviation here (see the funnel): deviations are skipped stages, "
                        "repeated stages and stages out of order.")
