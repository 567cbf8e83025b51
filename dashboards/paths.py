"""Paths page: the step-to-step map of stages (process mining's directly-follows graph), the
most common paths (variants), how paths branch step by step, and whether journeys follow the
expected order (conformance).

The page reads tables only. The process map is drawn by Graphviz (`dot`) as inline SVG, every
box and arrow with its number; without the `dot` program it falls back to a simpler Plotly map
that still shows the numbers. Visible text uses plain words; the process-mining terms sit in
tooltips (`<abbr title>`).
"""

from __future__ import annotations

import html
import math
import re
import shutil

import numpy as np
import pandas as pd
from plotly.colors import sample_colorscale

from dashboards import fmt
from dashboards.charts import COLORWAY, FONT, GREY, OKABE_ITO, SEQUENTIAL, figure, to_div, trace
from dashboards.context import Context
from dashboards.layout import (
    Page,
    Safe,
    card,
    cards,
    esc,
    not_available,
    note,
    paragraph,
    section,
    table,
)

try:  # the Python package comes with pm4py; the `dot` program is a system package
    import graphviz
except ImportError:  # pragma: no cover - pm4py depends on it
    graphviz = None

SLUG = "paths"
TOP_VARIANTS = 15
SANKEY_VARIANTS = 60
SANKEY_DEPTH = 7
# A path label wraps after this many characters (at a " → ").
PATH_WRAP = 60
# Sankey nodes smaller than this share of the journeys shown carry no label (hover shows it).
SANKEY_LABEL_MIN = 0.02
GRAPHVIZ_FONT = "Helvetica,Arial,sans-serif"
# Arrows of the step-to-step map: light (rare) to dark blue (frequent).
EDGE_LIGHT, EDGE_DARK = "#A9C4D8", "#08426B"


def render(ctx: Context) -> Page:
    page = Page(SLUG, "Paths")
    page.add(_process_map(ctx, page))
    page.add(_variants(ctx, page))
    page.add(_sankey(ctx, page))
    page.add(_conformance(ctx, page))
    return page


def _term(plain: str, technical: str) -> Safe:
    """Plain words on the page with the process-mining term as their tooltip."""
    return Safe(f'<abbr title="{esc(technical)}">{esc(plain)}</abbr>')


def _stage_color(stage: str, order: list[str]) -> str:
    """A stage's colour, the same on every chart of the page (journey-map order)."""
    i = order.index(stage) if stage in order else len(order)
    return COLORWAY[i % len(COLORWAY)]


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


# --- process map -----------------------------------------------------------------------------

MAP_TITLE = "How do customers actually move between stages?"
MAP_TERM = "directly-follows graph (DFG) of stages"


def _process_map(ctx: Context, page: Page) -> Safe:
    if not ctx.wh.has("dfg_edges"):
        return section(MAP_TITLE, not_available(_term("The step-to-step map", MAP_TERM),
                                                ctx.wh.missing("dfg_edges")))
    edges = ctx.wh.df("select * from dfg_edges order by count desc, source, target")
    if edges.empty:
        return section(MAP_TITLE, paragraph("No stage-to-stage steps mined yet."))
    endpoints = (ctx.wh.df("select activity, kind, count from dfg_endpoints")
                 if ctx.wh.has("dfg_endpoints") else pd.DataFrame(
                     columns=["activity", "kind", "count"]))
    seen = [str(a) for a in [*edges["source"], *edges["target"], *endpoints["activity"]]]
    nodes = [s for s in ctx.stages if s in seen]
    nodes += [a for a in dict.fromkeys(seen) if a not in nodes]
    stats = _stage_stats(nodes, edges, endpoints)
    lead = Safe(
        "Each box is a stage with how many times journeys were in it; each arrow is one stage "
        "followed directly by another, with how many times that happened and the median time "
        "between the two. Thicker, darker arrows carry more journeys; dashed arrows go back to "
        f"an earlier stage. This is the {_term('step-to-step map', MAP_TERM)} of all journeys, "
        "stages in journey-map order; hover a box or an arrow for more.")
    svg, problem = _dfg_svg(nodes, stats, edges, list(ctx.stages))
    if svg is not None:
        return section(MAP_TITLE, Safe(f'<div class="figure process-map">{svg}</div>'),
                       lead=lead)
    page.figures += 1
    lead = Safe(
        "Stages left to right in journey-map order, each with how many times journeys were in "
        "it. The number on a line: how many times one stage directly followed the other; line "
        "width: how often, colour: the median time between them. Arcs above skip stages, arcs "
        f"below go back. This is the {_term('step-to-step map', MAP_TERM)} of all journeys; "
        "hover a stage or a number for more.")
    return section(MAP_TITLE, note(problem), _dfg_plotly(ctx, nodes, stats, edges), lead=lead)


def _stage_stats(nodes: list[str], edges: pd.DataFrame,
                 endpoints: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per stage, the table's numbers added up for its box: journeys starting and ending there,
    arrivals (every arrow into it, repeats included) and visits (starts + arrivals)."""
    starts = endpoints[endpoints["kind"] == "start"].groupby("activity")["count"].sum()
    ends = endpoints[endpoints["kind"] == "end"].groupby("activity")["count"].sum()
    incoming = edges.groupby("target")["count"].sum()
    out: dict[str, dict[str, int]] = {}
    for n in nodes:
        s, e, i = int(starts.get(n, 0)), int(ends.get(n, 0)), int(incoming.get(n, 0))
        out[n] = {"starts": s, "ends": e, "arrivals": i, "visits": s + i}
    return out


def _dot_text(value: object) -> str:
    """Text for a Graphviz HTML-like label: escaped for HTML, backslashes doubled (Graphviz
    would read `\\N`, `\\G` ... as the node's or graph's name)."""
    return html.escape(str(value), quote=True).replace("\\", "\\\\")


def _dot_tooltip(value: str) -> str:
    """Text for a Graphviz tooltip (a quoted string; its escapes cannot be turned off, so a
    backslash is shown as a look-alike)."""
    return value.replace("\\", "\u29f5")


def _mix(light: str, dark: str, t: float) -> str:
    a = [int(light[i:i + 2], 16) for i in (1, 3, 5)]
    b = [int(dark[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b, strict=True))


def _dfg_svg(nodes: list[str], stats: dict[str, dict[str, int]], edges: pd.DataFrame,
             order: list[str]) -> tuple[Safe | None, str]:
    """The map drawn by Graphviz as an inline SVG that scales to its container; (None, why)
    when Graphviz cannot draw it."""
    missing = ("The simple map below shows the numbers; Graphviz (apt-get install graphviz) "
               "draws the full step-to-step map.")
    if graphviz is None or shutil.which("dot") is None:
        return None, missing
    ids = {n: f"s{i}" for i, n in enumerate(nodes)}
    rank = {n: i for i, n in enumerate(nodes)}
    g = graphviz.Digraph("stage_map", graph_attr=dict(
        rankdir="LR", bgcolor="transparent", nodesep="0.55", ranksep="0.4", pad="0.1",
        fontname=GRAPHVIZ_FONT, tooltip="Step-to-step map of stages"))
    g.attr("node", shape="box", style="rounded,filled", fontname=GRAPHVIZ_FONT,
           fontcolor="#222222", margin="0.12,0.06", penwidth="2")
    g.attr("edge", fontname=GRAPHVIZ_FONT, fontcolor="#222222", arrowsize="0.8")
    for n in nodes:
        st = stats[n]
        ends = [f"{fmt.count(st['starts'])} start" if st["starts"] else "",
                f"{fmt.count(st['ends'])} end here" if st["ends"] else ""]
        extra = " · ".join(p for p in ends if p)
        label = (f'<<FONT POINT-SIZE="15"><B>{_dot_text(n)}</B></FONT><BR/>'
                 f'<FONT POINT-SIZE="14">{fmt.count(st["visits"])} visits</FONT>'
                 + (f'<BR/><FONT POINT-SIZE="12" COLOR="#444444">{_dot_text(extra)}</FONT>'
                    if extra else "") + ">")
        color = _stage_color(n, order)
        g.node(ids[n], label=label, color=color, fillcolor=color + "22",
               tooltip=_dot_tooltip(
                   f"{n}: {fmt.count(st['visits'])} visits — {fmt.count(st['starts'])} "
                   f"journeys start here, {fmt.count(st['arrivals'])} arrivals from a step "
                   f"before, {fmt.count(st['ends'])} journeys end here"))
    max_count = float(edges["count"].max()) or 1.0
    for e in edges.itertuples(index=False):
        source, target = str(e.source), str(e.target)
        t = math.sqrt(float(e.count) / max_count)
        color = _mix(EDGE_LIGHT, EDGE_DARK, t)
        median = getattr(e, "median_s", None)
        label = f'<<B>{fmt.count(e.count)}</B>'
        if median is not None:
            label += f'<BR/><FONT POINT-SIZE="12" COLOR="#444444">median ' \
                     f"{_dot_text(fmt.duration(median))}</FONT>"
        label += ">"
        tip = (f"{source} → {target}: {fmt.count(e.count)} times; median "
               f"{fmt.duration(median)}, mean {fmt.duration(getattr(e, 'mean_s', None))}, "
               f"90th percentile {fmt.duration(getattr(e, 'p90_s', None))}")
        back = rank[target] <= rank[source]
        g.edge(ids[source], ids[target], label=label, color=color, fontsize="14",
               penwidth=f"{1.2 + 7.0 * t:.2f}", tooltip=_dot_tooltip(tip),
               labeltooltip=_dot_tooltip(tip),
               # arrows back (or loops) do not push stages out of journey-map order
               constraint="false" if back else "true",
               style="dashed" if back else "solid")
    try:
        svg = g.pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound:
        return None, missing
    except graphviz.CalledProcessError as err:  # pragma: no cover - dot failed on the graph
        return None, f"Graphviz could not draw the step-to-step map ({err}); the simple map " \
                     "below shows the numbers."
    return _inline_svg(svg), ""


def _inline_svg(svg: str) -> Safe:
    """Graphviz's SVG document as an element of the page: no XML prolog, doctype or comments,
    and a width of 100% of its container (the viewBox keeps the proportions)."""
    svg = re.sub(r"<\?xml[^>]*\?>|<!DOCTYPE[^>]*>|<!--.*?-->", "", svg, flags=re.DOTALL)
    svg = re.sub(r'<svg width="[^"]*" height="[^"]*"',
                 '<svg width="100%" role="img" aria-label="Step-to-step map of stages" '
                 'style="height:auto;max-height:85vh;display:block"', svg, count=1)
    # the graph's own <title> would show its internal name as a tooltip
    svg = re.sub(r"<title>[^<]*</title>", "", svg)
    return Safe(svg.strip())


# The fallback without Graphviz: stages on a line, arcs above (skips) and below (back).

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


def _dfg_plotly(ctx: Context, nodes: list[str], stats: dict[str, dict[str, int]],
                edges: pd.DataFrame) -> Safe:
    xpos = {n: float(i) for i, n in enumerate(nodes)}
    median = edges["median_s"].astype(float).fillna(1.0).clip(lower=1.0)
    lo, hi = math.log10(median.min()), math.log10(median.max())
    span = hi - lo if hi > lo else 1.0
    colors = sample_colorscale(SEQUENTIAL, [(math.log10(m) - lo) / span for m in median])
    max_count = float(edges["count"].max()) or 1.0

    fig = figure("Which steps carry the customers, and how slow are they? Step-to-step map of "
                 "stages (number on an arrow: times; colour: median time)", height=560)
    mid_x, mid_y, mid_text, mid_label = [], [], [], []
    for (_, e), color in zip(edges.iterrows(), colors, strict=True):
        xs, ys = _edge_path(xpos[e["source"]], xpos[e["target"]], e["source"] == e["target"])
        width = 1.5 + 12 * math.sqrt(float(e["count"]) / max_count)
        fig.add_trace(trace("scatter", x=xs, y=ys, mode="lines",
                            line=dict(color=color, width=width), hoverinfo="skip",
                            showlegend=False))
        k = int(len(xs) * 0.72)
        fig.add_trace(trace("scatter", 
            x=[xs[k - 1], xs[k]], y=[ys[k - 1], ys[k]], mode="markers", hoverinfo="skip",
            marker=dict(symbol="arrow", angleref="previous", size=[0, 10 + width],
                        color=color, line=dict(width=0)), showlegend=False))
        m = int(len(xs) * 0.4)
        mid_x.append(xs[m])
        mid_y.append(ys[m])
        mid_label.append(f"<b>{fmt.count(e['count'])}</b>")
        mid_text.append(
            f"<b>{e['source']} → {e['target']}</b><br>{fmt.count(e['count'])} times<br>"
            f"median {fmt.duration(e['median_s'])}, mean {fmt.duration(e['mean_s'])}, "
            f"90th pct {fmt.duration(e['p90_s'])}")
    fig.add_trace(trace("scatter", 
        x=mid_x, y=mid_y, mode="markers+text", text=mid_label, textposition="top center",
        textfont=dict(size=12, color="#222222"), hovertext=mid_text, hoverinfo="text",
        marker=dict(size=14, opacity=0), showlegend=False, name="steps"))
    node_text, node_hover, sizes = [], [], []
    for n in nodes:
        st = stats[n]
        node_text.append(f"<b>{n}</b><br>{fmt.count(st['visits'])} visits")
        node_hover.append(f"<b>{n}</b><br>journeys starting here: {fmt.count(st['starts'])}"
                          f"<br>arrivals from a step before: {fmt.count(st['arrivals'])}<br>"
                          f"journeys ending here: {fmt.count(st['ends'])}")
        sizes.append(st["visits"])
    size_max = max(sizes) if sizes and max(sizes) > 0 else 1
    fig.add_trace(trace("scatter", 
        x=[xpos[n] for n in nodes], y=[0.0] * len(nodes), mode="markers+text",
        text=node_text, textposition="bottom center", hovertext=node_hover, hoverinfo="text",
        marker=dict(size=[22 + 26 * math.sqrt(v / size_max) for v in sizes],
                    color=OKABE_ITO["sky"], line=dict(color="#1d2b36", width=1.5)),
        textfont=dict(size=13, family=FONT), showlegend=False, name="stages"))
    tick_vals = [v for v in (60, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)
                 if lo <= math.log10(v) <= hi] or [10 ** lo, 10 ** hi]
    fig.add_trace(trace("scatter", 
        x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
        marker=dict(colorscale=SEQUENTIAL, cmin=lo, cmax=hi, color=[lo], showscale=True,
                    colorbar=dict(title=dict(text="median time"),
                                  tickvals=[math.log10(v) for v in tick_vals],
                                  ticktext=[fmt.duration(v) for v in tick_vals]))))
    fig.update_xaxes(visible=False, range=[-0.6, len(nodes) - 0.4])
    fig.update_yaxes(visible=False, range=[-1.4, 1.6])
    return to_div(fig, ctx.div_id(SLUG, "dfg"))


# --- variants --------------------------------------------------------------------------------

PATH_TERM = "variant: one distinct sequence of stages"


def _variants(ctx: Context, page: Page) -> Safe:
    title = "Which paths do customers take, and which of them convert?"
    if not ctx.wh.has("variants"):
        return section(title, not_available(_term("Paths", PATH_TERM),
                                            ctx.wh.missing("variants")))
    df = ctx.wh.df("select variant_id, stages, path, journeys, share, median_duration_s, "
                   "converted_share from variants order by journeys desc, path limit ?",
                   [TOP_VARIANTS])
    if df.empty:
        return section(title, paragraph("No paths mined yet."))
    shown = df["share"].sum()  # the paths' own shares of all journeys, added up
    labels = [_wrap_path(f"#{i + 1}", [str(s) for s in stages])
              for i, stages in enumerate(df["stages"])]
    # one block per path, as tall as its label's lines: long paths get more room, none is cut
    lines = [label.count("<br>") + 1 for label in labels]
    blocks = [max(2.0, n + 0.6) for n in lines]
    ends = np.cumsum(blocks)
    ys = [float(end - block / 2) for end, block in zip(ends, blocks, strict=True)]
    fig = figure(f"What are the {len(df)} most common paths? Share of journeys; colour: share "
                 "that converted", height=int(130 + 15 * float(ends[-1])))
    fig.add_trace(trace("bar", 
        x=df["share"], y=ys, orientation="h", width=1.5, hovertext=[p for p in df["path"]],
        marker=dict(color=df["converted_share"], colorscale=SEQUENTIAL, cmin=0, cmax=1,
                    colorbar=dict(title=dict(text="converted"), tickformat=".0%")),
        text=[f"{fmt.pct(s)} · {fmt.pct(c)} converted" for s, c in
              zip(df["share"], df["converted_share"], strict=True)],
        textposition="auto", insidetextanchor="start",
        customdata=list(zip(df["journeys"], df["converted_share"],
                            [fmt.duration(v) for v in df["median_duration_s"]], strict=True)),
        hovertemplate="<b>%{hovertext}</b><br>%{customdata[0]:,d} journeys (%{x:.1%})<br>"
                      "converted: "
                      "%{customdata[1]:.1%}<br>median duration: %{customdata[2]}<extra></extra>",
        showlegend=False))
    fig.update_xaxes(title_text="share of journeys (%)", tickformat=".0%", rangemode="tozero")
    fig.update_yaxes(tickvals=ys, ticktext=labels, tickfont=dict(size=11), showgrid=False,
                     zeroline=False, ticks="", range=[float(ends[-1]) + 0.2, -0.2],
                     autorange=False)
    page.figures += 1
    rows = [[f"#{i + 1}", r.path, fmt.count(r.journeys), fmt.pct(r.share),
             fmt.pct(r.converted_share), fmt.duration(r.median_duration_s)]
            for i, r in enumerate(df.itertuples(index=False))]
    lead = Safe(f"The top {len(df)} {_term('paths', PATH_TERM)} (each a distinct sequence of "
                f"stages) cover {fmt.pct(shown)} of all journeys.")
    return section(title, to_div(fig, ctx.div_id(SLUG, "top-paths")),
                   table(["", "path", "journeys", "share", "converted", "median duration"],
                         rows, numeric=range(2, 6)),
                   lead=lead)


def _wrap_path(rank: str, stages: list[str], width: int = PATH_WRAP) -> str:
    """A whole path as a chart label: stage names (escaped by to_div) joined by arrows, wrapped onto
    lines of about `width` characters after an arrow; never shortened."""
    lines: list[str] = []
    current = rank
    for i, stage in enumerate(stages):
        piece = stage if i == 0 else f" → {stage}"
        if i > 0 and len(current) + len(piece) > width:
            lines.append(current + " →")
            current = "   " + stage
        else:
            current += (" " if i == 0 else "") + piece
    lines.append(current)
    return "<br>".join(lines)


# --- how paths branch --------------------------------------------------------------------------

def _sankey(ctx: Context, page: Page) -> Safe:
    title = "How do paths branch and end, step by step?"
    if not ctx.wh.has("variants"):
        return section(title, not_available("The step-by-step flow of paths",
                                            ctx.wh.missing("variants")))
    df = ctx.wh.df("select stages, journeys, share from variants order by journeys desc, path "
                   "limit ?", [SANKEY_VARIANTS])
    if df.empty:
        return section(title, paragraph("No paths mined yet."))
    order = list(ctx.stages)
    node_index: dict[tuple[int, str], int] = {}
    keys: list[tuple[int, str]] = []
    flows: dict[tuple[int, int], float] = {}
    through: dict[int, float] = {}  # journeys at each node (the paths' journeys added up)

    def node(step: int, stage: str) -> int:
        key = (step, stage)
        if key not in node_index:
            node_index[key] = len(keys)
            keys.append(key)
        return node_index[key]

    for stages, n in zip(df["stages"], df["journeys"], strict=True):
        path = [str(s) for s in stages]
        if len(path) > SANKEY_DEPTH:
            path = path[:SANKEY_DEPTH - 1] + ["…"]
        for i, stage in enumerate(path):
            k = node(i, stage)
            through[k] = through.get(k, 0.0) + float(n)
            if i:
                pair = (node_index[(i - 1, path[i - 1])], k)
                flows[pair] = flows.get(pair, 0.0) + float(n)
    total = float(df["journeys"].sum()) or 1.0
    labels, hover, colors = [], [], []
    for k, (step, stage) in enumerate(keys):
        name = _sankey_name(stage)
        count = fmt.count(through.get(k, 0.0))
        big = through.get(k, 0.0) / total >= SANKEY_LABEL_MIN
        labels.append(f"{name} {count}" if big else "")
        hover.append(f"step {step + 1}: {name}<br>{count} journeys")
        colors.append(GREY if stage == "…" else _stage_color(stage, order))
    link_colors = [_rgba(GREY if keys[s][1] == "…" else _stage_color(keys[s][1], order), 0.38)
                   for s, _ in flows]
    steps = max(step for step, _ in keys) + 1
    fig = figure("How do journeys flow from stage to stage? Paths step by step, left to right; "
                 "a flow that stops is where journeys ended", height=700)
    fig.add_trace(trace("sankey", 
        arrangement="snap",
        textfont=dict(size=12, color="#222222", family=FONT),
        node=dict(label=labels, color=colors, pad=26, thickness=14,
                  line=dict(color="white", width=0.5), customdata=hover,
                  hovertemplate="%{customdata}<extra></extra>"),
        link=dict(source=[k[0] for k in flows], target=[k[1] for k in flows],
                  value=list(flows.values()), color=link_colors,
                  customdata=[f"step {keys[s][0] + 1} {_sankey_name(keys[s][1])} → "
                              f"step {keys[t][0] + 1} {_sankey_name(keys[t][1])}"
                              for s, t in flows],
                  hovertemplate="%{customdata}<br>%{value:,.0f} journeys<extra></extra>")))
    # a header per step over its column (Plotly spreads the columns evenly)
    for step in range(steps):
        fig.add_annotation(x=step / (steps - 1) if steps > 1 else 0.5, y=1.0, yref="paper",
                           xref="paper", yanchor="bottom", showarrow=False,
                           xanchor="left" if step == 0 else
                           ("right" if step == steps - 1 else "center"),
                           text=f"step {step + 1}", font=dict(size=12, color="#555555"))
    fig.update_layout(margin=dict(l=20, r=20, t=120, b=20))
    page.figures += 1
    shown = df["share"].sum()
    return section(title, to_div(fig, ctx.div_id(SLUG, "sankey")),
                   lead=f"The {len(df)} most common paths ({fmt.pct(shown)} of journeys). A "
                        "column is a step of the journey, a coloured block a stage with its "
                        "journeys; the flows take the colour of the stage they leave. Paths "
                        f"longer than {SANKEY_DEPTH} steps are cut at “… more steps”; blocks "
                        f"under {fmt.pct(SANKEY_LABEL_MIN)} of the journeys carry no label "
                        "(hover them).")


def _sankey_name(stage: str) -> str:
    return "… more steps" if stage == "…" else stage


# --- expected order --------------------------------------------------------------------------

def _conformance(ctx: Context, page: Page) -> Safe:
    title = "Do journeys follow the designed journey map?"
    wh = ctx.wh
    if not wh.has("conformance_overall"):
        return section(title, not_available(
            _term("The check of the expected order", "conformance checking"),
            ctx.wh.missing("conformance_overall", "conformance_deviations")))
    parts: list[Safe] = []
    overall = wh.df("select * from conformance_overall")
    if not overall.empty:
        o = overall.iloc[0]
        parts.append(cards([
            card(_term("Journeys in the expected order",
                       "fitting journeys (conformance checking by token-based replay)"),
                 fmt.pct(o["fitting_share"]),
                 detail=f"of {fmt.count(o['journeys'])} journeys follow the journey map in "
                        "order, with no stage skipped, repeated or out of order"),
            card(_term("How closely journeys follow the expected order",
                       "fitness (token-based replay)"),
                 fmt.pct(o["fitness"]),
                 detail="step by step: 100% = every step of every journey is where the "
                        "journey map expects it (weighted by journeys)"),
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
                fig.add_trace(trace("bar", 
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
            fig.add_trace(trace("bar", 
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
