"""Shared look of every figure: Okabe-Ito colours, a small template, and the HTML embed.

The template is deliberately tiny: Plotly's default template is ~8 KB of JSON repeated in every
figure, which would dominate the site's size.
"""

from __future__ import annotations

import json
import re

import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import get_colorscale

from dashboards.layout import Safe

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision
# deficiency. Ordered so the first colours contrast most.
OKABE_ITO = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "vermillion": "#D55E00",
    "sky": "#56B4E9",
    "purple": "#CC79A7",
    "yellow": "#F0E442",
    "black": "#000000",
}
COLORWAY = list(OKABE_ITO.values())
GREY = "#999999"
LIGHT_GREY = "#DDDDDD"
# Perceptually uniform and readable with colour-vision deficiencies; as its colour stops (what
# Plotly writes for the name), so figures need no Plotly object to resolve it
SEQUENTIAL = get_colorscale("Cividis")

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"

TEMPLATE = go.layout.Template(
    layout=go.Layout(
        colorway=COLORWAY,
        font=dict(family=FONT, size=13, color="#222222"),
        paper_bgcolor="white",
        plot_bgcolor="white",
        title=dict(x=0.0, xanchor="left", font=dict(size=15)),
        xaxis=dict(showgrid=False, linecolor="#444444", ticks="outside", automargin=True),
        yaxis=dict(gridcolor="#E5E5E5", linecolor="#444444", automargin=True, zeroline=False),
        hoverlabel=dict(font=dict(family=FONT)),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0.0),
        margin=dict(l=60, r=20, t=105, b=60),
    )
)

# No modebar: a reader reads the chart, the numbers are on it; hover still works.
PLOT_CONFIG = {"displayModeBar": False, "displaylogo": False, "responsive": True}


def title_layout(title: str) -> dict:
    """'Question? What is drawn' -> the question as title, the rest as its subtitle."""
    question, sep, rest = title.partition("? ")
    text = question + "?" if sep else title
    out: dict = dict(text=text, x=0.01, xanchor="left", xref="container", yref="container",
                     y=0.97, yanchor="top")
    if sep and rest:
        out["subtitle"] = dict(text=rest, font=dict(size=12, color="#555555"))
    return out


# The template as JSON, put into each figure's layout when it is written (`_spec`): assigning
# the Template object to every figure made Plotly validate it again each time (about 10 ms a
# figure, seconds per dashboard). A figure is built on an empty template instead (which also
# keeps Plotly from validating its own default template into it).
TEMPLATE_JSON = TEMPLATE.to_plotly_json()
_EMPTY_TEMPLATE = go.layout.Template()


def figure(title: str, *, height: int = 420, **layout: object) -> Figure:
    """An empty figure with a question as its title; it is written with the house template."""
    fig = Figure()
    fig.update_layout(title=title_layout(title), height=height, **layout)
    return fig


# --- figures as plain JSON ---------------------------------------------------------------------
# A page builds a figure per (period, persona) combination, dozens per page: Plotly's figure
# objects spent most of the dashboard's time checking and walking their property trees. A
# `Figure` is the same JSON (Plotly's figure schema) built as dicts, with the few methods the
# pages use; Plotly itself only serialises it (`to_div`). Property names take Plotly's "magic
# underscores" (`title_text` = title.text); a text `title` is its `text`.

# property names that hold an underscore themselves
_UNDERSCORED = frozenset({"error_x", "error_y", "error_z"})


def _path(key: str) -> list[str]:
    parts = key.split("_")
    out: list[str] = []
    i = 0
    while i < len(parts):
        if i + 1 < len(parts) and f"{parts[i]}_{parts[i + 1]}" in _UNDERSCORED:
            out.append(f"{parts[i]}_{parts[i + 1]}")
            i += 2
        else:
            out.append(parts[i])
            i += 1
    return out


def _plain(value: object) -> object:
    """Array-likes (NumPy, pandas) as lists, so text in them is escaped like any list."""
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        return value.tolist()
    return value


def _merge(into: dict, props: dict) -> dict:
    """Plotly's update: `props` (magic underscores allowed) merged into `into`, nested dicts
    merged, any other value replacing; a text title is the title's text."""
    for key, value in props.items():
        path = _path(key) if "_" in key and key not in _UNDERSCORED else [key]
        node = into
        for part in path[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {} if not isinstance(nxt, str) or part != "title" \
                    else {"text": nxt}
            node = nxt
        last = path[-1]
        if last == "title" and isinstance(value, str):
            value = {"text": value}
        if isinstance(value, dict):
            target = node.get(last)
            if not isinstance(target, dict):
                target = node[last] = {} if not (last == "title" and isinstance(target, str)) \
                    else {"text": target}
            _merge(target, value)
        else:
            node[last] = _plain(value)
    return into


def trace(kind: str, **props: object) -> dict:
    """A trace of Plotly type `kind` ('bar', 'scatter', 'heatmap', 'box', ...)."""
    return _merge({"type": kind}, props)


class Figure:
    """A Plotly figure as plain JSON: `data` (traces) and `layout` (see above)."""

    def __init__(self) -> None:
        self.data: list[dict] = []
        self.layout: dict = {}

    def add_trace(self, t: dict) -> Figure:
        self.data.append(t if isinstance(t, dict) else t.to_plotly_json())
        return self

    def update_layout(self, **props: object) -> Figure:
        _merge(self.layout, props)
        return self

    def update_xaxes(self, **props: object) -> Figure:
        return self.update_layout(xaxis=props)

    def update_yaxes(self, **props: object) -> Figure:
        return self.update_layout(yaxis=props)

    def add_annotation(self, **props: object) -> Figure:
        self.layout.setdefault("annotations", []).append(_merge({}, props))
        return self

    def add_shape(self, **props: object) -> Figure:
        self.layout.setdefault("shapes", []).append(_merge({}, props))
        return self

    def add_hline(self, y: float, *, annotation_text: str | None = None,
                  annotation_position: str = "top right", **props: object) -> Figure:
        """A line across the plot at `y`, optionally labelled at one end (as Plotly's)."""
        self.add_shape(type="line", xref="x domain", x0=0, x1=1, yref="y", y0=y, y1=y, **props)
        if annotation_text is not None:
            left = "left" in annotation_position
            below = "bottom" in annotation_position
            self.add_annotation(text=annotation_text, showarrow=False, xref="x domain",
                                yref="y", x=0 if left else 1, y=y,
                                xanchor="left" if left else "right",
                                yanchor="top" if below else "bottom")
        return self

    def add_vline(self, x: float, *, annotation_text: str | None = None,
                  annotation_position: str = "top right", **props: object) -> Figure:
        """A line over the whole plot height at `x`, optionally labelled at one end."""
        self.add_shape(type="line", xref="x", x0=x, x1=x, yref="y domain", y0=0, y1=1, **props)
        if annotation_text is not None:
            left = "left" in annotation_position
            below = "bottom" in annotation_position
            self.add_annotation(text=annotation_text, showarrow=False, xref="x",
                                yref="y domain", x=x, y=0 if below else 1,
                                xanchor="right" if left else "left",
                                yanchor="bottom" if below else "top")
        return self

    def add_vrect(self, x0: object, x1: object, *, annotation_text: str | None = None,
                  annotation_position: str = "top right", **props: object) -> Figure:
        """A band over the whole plot height from `x0` to `x1`, optionally labelled."""
        self.add_shape(type="rect", xref="x", x0=x0, x1=x1, yref="y domain", y0=0, y1=1,
                       **props)
        if annotation_text is not None:
            left = "left" in annotation_position
            below = "bottom" in annotation_position
            self.add_annotation(text=annotation_text, showarrow=False, xref="x",
                                yref="y domain", x=x0 if left else x1, y=0 if below else 1,
                                xanchor="left" if left else "right",
                                yanchor="bottom" if below else "top")
        return self

    def to_plotly_json(self) -> dict:
        return {"data": self.data, "layout": self.layout}


# Plotly renders a subset of HTML in every label, hover and annotation (<a href>, <span style>,
# ...). The pages' own markup uses only these tags; any other '<' in a figure's text is data and
# is shown as the character, never as a tag (an <a href="https://..."> in a failure reason must
# not become a live link).
_OWN_TAGS = re.compile(r"<(?!(?:br|/?b|/?i|/?sup|/?sub|/?extra)\s*/?>)", re.IGNORECASE)
_TEXT_KEYS = ("x", "y", "z", "text", "hovertext", "customdata", "labels", "ids", "ticktext",
              "label", "values", "name", "title", "parents")


def _escape_text(value: object) -> object:
    value = _plain(value)
    if isinstance(value, str):
        return _OWN_TAGS.sub("&lt;", value)
    if isinstance(value, (list, tuple)):
        return [_escape_text(v) for v in value]
    if isinstance(value, dict):
        return {k: (_escape_text(v) if k in _TEXT_KEYS or isinstance(v, (dict, list))
                    else v) for k, v in value.items()}
    return value


def _spec(fig: go.Figure | Figure) -> dict:
    """`fig` as the plain JSON figure the pages write: its text escaped (`escape_figure_text`)
    and the house template in its layout."""
    spec = fig.to_plotly_json()
    data = [_escape_text(trace) for trace in spec.get("data", [])]
    layout = {k: _escape_text(v) for k, v in spec.get("layout", {}).items() if k != "template"}
    layout["template"] = TEMPLATE_JSON
    return {"data": data, "layout": layout}


def escape_figure_text(fig: go.Figure) -> go.Figure:
    """A copy of `fig` whose text can hold no tag but the pages' own (`_OWN_TAGS`): every
    trace's labels, hover texts, custom data and category values, the axis tick texts, titles
    and annotations. Templates (the `%{...}` hovertemplate) are the pages' and stay. The copy
    carries the house template, as the pages write it."""
    return go.Figure(_spec(fig), skip_invalid=True)


def to_div(fig: go.Figure | Figure, div_id: str, *, numbers: bool = False) -> Safe:
    """The figure as an HTML fragment that uses the page's shared plotly.min.js.

    `numbers`: the design puts numbers on the chart itself (bar labels, cell labels), so it
    reads without hovering; the browser test checks they are visible (`data-numbers`).

    Plotly's JSON encoder escapes '<', '>' and '&' as \\u003c etc., so data values inside the
    figure cannot close the script tag; `escape_figure_text` keeps them from being read as
    Plotly's HTML-like label markup.
    """
    spec = _spec(fig)
    body = pio.to_html(spec, full_html=False, include_plotlyjs=False, div_id=div_id,
                       config=PLOT_CONFIG, default_width="100%",
                       default_height=f"{spec['layout'].get('height') or 420}px",
                       validate=False)
    mark = ' data-numbers="1"' if numbers else ""
    return Safe(f'<div class="figure"{mark}>{body}</div>')


def cell_labels(fig: go.Figure | Figure, x: list, y: list, text: list[list[str]],
                dark: list[list[bool]]) -> None:
    """Write heatmap cell labels as a text layer: white on dark cells, near-black on light ones
    (a heatmap's own text has one colour, unreadable on half of a sequential scale)."""
    xs, ys, labels, colors = [], [], [], []
    for yi, row_text, row_dark in zip(y, text, dark, strict=True):
        for xi, label, is_dark in zip(x, row_text, row_dark, strict=True):
            if label:
                xs.append(xi)
                ys.append(yi)
                labels.append(label)
                colors.append("white" if is_dark else "#1a1a1a")
    fig.add_trace(trace("scatter", x=xs, y=ys, text=labels, mode="text", hoverinfo="skip",
                             textfont=dict(color=colors, size=11), showlegend=False))


def figure_data(fig: go.Figure | Figure) -> list:
    """The traces of `fig` as plain JSON values (text escaped as in `to_div`), for a page that
    swaps a figure's data in the browser (dashboards/scope.py) while keeping its layout."""
    return json.loads(pio.to_json(_spec(fig), validate=False))["data"]
