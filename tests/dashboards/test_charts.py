"""Data text in a figure is shown as text, never as Plotly's HTML-like label markup."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

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
