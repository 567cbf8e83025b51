"""Data text in a figure is shown as text, never as Plotly's HTML-like label markup."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from dashboards import charts
from dashboards.charts import escape_figure_text, to_div

LINK = '<a href="https://evil.example">pay here</a>'


def _json(fig: go.Figure) -> dict:
    out = json.loads(pio.to_json(fig, validate=False))
    out.get("layout", {}).pop("template", None)
    return out


def test_a_link_in_the_data_is_not_a_link() -> None:
    fig = go.Figure(go.Bar(x=[LINK, "card"], y=np.array([3.0, 4.0]),
                           text=["12.0%<br>n=5", LINK], customdata=[[LINK, 1], ["x", 2]],
                           hovertemplate="<b>%{x}</b><br>%{customdata[0]}<extra></extra>"))
    fig.add_annotation(text=f"reason: {LINK}")
    fig.update_xaxes(ticktext=[LINK], tickvals=[0])
    out = escape_figure_text(fig)
    text = json.dumps(_json(out))
    assert "<a " not in text and "</a>" not in text
    assert out.data[0].x[0] == '&lt;a href="https://evil.example">pay here&lt;/a>'
    # the pages' own markup stays: line breaks, bold, the hover template
    assert out.data[0].text[0] == "12.0%<br>n=5"
    assert out.data[0].hovertemplate == "<b>%{x}</b><br>%{customdata[0]}<extra></extra>"
    assert out.layout.annotations[0].text.startswith("reason: &lt;a href")
    assert out.layout.xaxis.ticktext == ('&lt;a href="https://evil.example">pay here&lt;/a>',)
    # and the page's HTML carries no tag from the data either
    assert "pay here" in to_div(fig, "f") and "<a href" not in to_div(fig, "f")


def test_figures_without_markup_are_unchanged() -> None:
    days = [dt.date(2026, 10, 1) + dt.timedelta(days=i) for i in range(3)]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=days, y=np.array([0.1, 0.2, 0.3]), name="Discovery",
                             customdata=np.array([[1, 2], [3, 4], [5, 6]])))
    fig.add_trace(go.Heatmap(z=[[1.0, None], [0.5, 0.25]], x=["a", "b"], y=["c", "d"]))
    fig.add_trace(go.Sankey(node=dict(label=["Discovery 10", "Decision 4"]),
                            link=dict(source=[0], target=[1], value=[4])))
    fig.update_layout(title="Who? Stages by day", height=300)
    assert _json(escape_figure_text(fig)) == _json(fig)


def _plotly_json(fig) -> dict:
    """A figure's JSON as the page gets it, numbers as floats, typed arrays as lists."""
    import base64

    def norm(v):
        if isinstance(v, dict):
            if {"bdata", "dtype"} <= set(v):
                return norm(np.frombuffer(base64.b64decode(v["bdata"]), v["dtype"]).tolist())
            return {k: norm(x) for k, x in v.items() if k != "template"}
        if isinstance(v, list | tuple):
            return [norm(x) for x in v]
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
        return v
    return norm(json.loads(pio.to_json(charts._spec(fig), validate=False)))


def test_a_plain_figure_is_the_json_plotly_writes_for_the_same_calls() -> None:
    """The pages' dict-built Figure against Plotly's own Figure, call for call (Plotly is the
    independent reference): magic underscores, text titles, nested merges, lines, bands and
    their labels."""
    def build(fig, bar, scatter):
        fig.update_layout(title=charts.title_layout("Who? Them"), height=300,
                          legend_title_text="legend", margin=dict(l=10))
        fig.update_layout(margin=dict(r=5))
        fig.add_trace(bar(x=["a", "b"], y=np.array([1.0, 2.0]), marker_color="#123456",
                          text=["1", "2"], textposition="outside"))
        fig.add_trace(scatter(x=pd.to_datetime(["2026-01-01", "2026-01-02"]), y=[0.5, None],
                              mode="lines", line_width=2, line_dash="dash", name="s"))
        fig.update_xaxes(title_text="x axis", tickformat="%d %b")
        fig.update_yaxes(title="y axis", rangemode="tozero")
        fig.add_hline(y=0.25, line_dash="dash", line_color="#999999",
                      annotation_text="all 25%", annotation_position="top right")
        fig.add_hline(y=0.5, line=dict(color="#999999", width=1),
                      annotation_text="other days", annotation_position="top left")
        fig.add_vrect(x0="2026-01-01", x1="2026-01-02", fillcolor="#999999", opacity=0.12,
                      line_width=0, annotation_text="open", annotation_position="top left")
        fig.add_vline(x=1.5, line_dash="dot", annotation_text="median",
                      annotation_position="top right")
        fig.add_annotation(x=1, y="a", text="note", showarrow=False, font=dict(size=11))
        return fig

    ours = build(charts.Figure(), lambda **k: charts.trace("bar", **k),
                 lambda **k: charts.trace("scatter", **k))
    theirs = build(go.Figure(layout=dict(template=go.layout.Template())), go.Bar, go.Scatter)
    a, b = _plotly_json(ours), _plotly_json(theirs)
    assert a["data"] == b["data"]
    assert {k: v for k, v in a["layout"].items()} == b["layout"]
