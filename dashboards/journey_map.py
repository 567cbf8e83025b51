"""Journey map page: the customer journey map as a table, measured, one per persona (segment)."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from dashboards import fmt
from dashboards.context import Context
from dashboards.layout import (
    Page,
    Safe,
    bullet_list,
    esc,
    join,
    not_available,
    paragraph,
    section,
)

SLUG = "journey_map"
MAX_VALUES_PER_SEGMENT = 8
TOP_TOUCHPOINTS = 3
TOP_PAINS = 4
# Breakdowns in stage_metrics that are not personas (shown as pains instead).
NOT_PERSONAS = {"failure_reason"}

ALL = ("all", "all")

SELECT_SCRIPT = """
<script>
(function () {
  var select = document.getElementById('persona');
  function show() {
    document.querySelectorAll('.persona').forEach(function (el) {
      el.hidden = el.getAttribute('data-persona') !== select.value;
    });
  }
  select.addEventListener('change', show);
  show();
})();
</script>
"""


def render(ctx: Context) -> Page:
    page = Page(SLUG, "Journey map")
    wh = ctx.wh
    title = "What happens to customers at each stage of the journey?"
    if not wh.has("funnel_steps", "run_settings") or not ctx.stages:
        page.add(section(title, not_available("The journey map",
                                              wh.missing("funnel_steps", "run_settings")
                                              or ["run_settings"])))
        return page

    personas = _personas(ctx)
    maps = []
    options = []
    for key, (segment, value) in enumerate(personas):
        label = "All customers" if (segment, value) == ALL else f"{segment} = {value}"
        options.append(f'<option value="p{key}">{esc(label)}</option>')
        maps.append(Safe(f'<div class="persona" data-persona="p{key}">'
                         f"{_map_table(ctx, segment, value)}</div>"))
    picker = Safe(
        '<p><label for="persona"><strong>Persona (segment): </strong></label>'
        f'<select id="persona">{"".join(options)}</select></p>'
    )
    legend = paragraph(
        "Columns are the stages of the journey map in order. Customers: journeys reaching the "
        "stage (complete journeys only). Drop-off and time are to the next stage. Values marked "
        "† are for all customers because the metric is not broken down by this segment; "
        "touchpoints and pains are always for all customers.", cls="muted")
    page.add(section(title, picker, *maps, legend, Safe(SELECT_SCRIPT),
                     lead="Measured from the events, not drawn in a workshop: pick a persona "
                          "to see its own map."))
    return page


def _personas(ctx: Context) -> list[tuple[str, str]]:
    personas = [ALL]
    if not ctx.wh.has("funnel_segments"):
        return personas
    first = ctx.stages[0]
    df = ctx.wh.df(
        "select segment, segment_value, entered from funnel_segments where stage = ? "
        "order by segment, entered desc, segment_value", [first])
    for segment, part in df.groupby("segment", sort=True):
        for value in part["segment_value"].head(MAX_VALUES_PER_SEGMENT):
            personas.append((str(segment), str(value)))
    return personas


def _funnel(ctx: Context, segment: str, value: str) -> pd.DataFrame:
    if (segment, value) == ALL:
        return ctx.wh.df("select * from funnel_steps order by stage_index")
    return ctx.wh.df("select * from funnel_segments where segment = ? and segment_value = ? "
                     "order by stage_index", [segment, value])


def _metric_text(value: object, unit: str, currency: str | None) -> str:
    if unit in ("customers", "events"):
        return fmt.count(value)
    if unit == "rate":
        return fmt.pct(value)
    if unit == "minutes":
        return fmt.duration(None if value is None or pd.isna(value) else float(value) * 60)
    if unit == "days":
        return fmt.duration(None if value is None or pd.isna(value) else float(value) * 86400)
    if unit == "per_customer":
        return f"{fmt.number(value)} per customer"
    if unit == "stars":
        return f"{fmt.number(value)} of 5"
    if currency is not None and unit == currency:
        return fmt.money(value, unit)
    return fmt.number(value, 2)


def _metrics(ctx: Context, segment: str, value: str) -> dict[str, list[str]]:
    """Metric lines per stage for the persona; the overall value (†) where not broken down."""
    out: dict[str, list[str]] = defaultdict(list)
    if not ctx.wh.has("stage_metrics"):
        return out
    df = ctx.wh.df(
        "select stage, stage_index, metric, segment, segment_value, value, unit "
        "from stage_metrics where (segment = 'all' and segment_value = 'all') "
        "or (segment = ? and segment_value = ?) order by stage_index, metric", [segment, value])
    for (stage, metric), rows in df.groupby(["stage", "metric"], sort=False):
        own = rows[(rows["segment"] == segment) & (rows["segment_value"] == value)]
        row, mark = (own.iloc[0], "") if not own.empty else (rows.iloc[0], " †")
        if row["segment"] in NOT_PERSONAS:
            continue
        label = str(metric)
        for suffix in ("_minutes", "_days"):  # the formatted value carries the unit
            label = label.removesuffix(suffix)
        label = label.replace("_", " ")
        out[str(stage)].append(
            f"{label}: {_metric_text(row['value'], str(row['unit']), ctx.currency)}{mark}")
    return out


def _touchpoints(ctx: Context) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    if not ctx.wh.has("stage_touchpoints"):
        return out
    df = ctx.wh.df("select stage, dimension, value, share, rank from stage_touchpoints "
                   "where rank <= ? order by stage_index, dimension, rank", [TOP_TOUCHPOINTS])
    for (stage, dimension), rows in df.groupby(["stage", "dimension"], sort=False):
        values = ", ".join(f"{v} ({fmt.pct(s)})" for v, s in zip(rows["value"], rows["share"],
                                                               strict=True))
        out[str(stage)].append(f"{dimension}: {values}")
    return out


def _pains(ctx: Context) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    if not ctx.wh.has("stage_pains"):
        return out
    df = ctx.wh.df("select stage, pain, reason, customers, share, rank from stage_pains "
                   "where rank <= ? order by stage_index, rank", [TOP_PAINS])
    for row in df.itertuples(index=False):
        what = str(row.pain).replace("_", " ")
        if row.reason is not None and str(row.reason) != "(none)":
            what += f": {row.reason}"
        out[str(row.stage)].append(
            f"{what} — {fmt.count(row.customers)} customers ({fmt.pct(row.share)})")
    return out


def _map_table(ctx: Context, segment: str, value: str) -> Safe:
    funnel = _funnel(ctx, segment, value)
    note = Safe("")
    if funnel.empty:
        note = paragraph(
            "No journey of this persona has its conversion window fully observed yet, so "
            "customer counts, drop-off and times are not shown; they appear once the data "
            "covers a full window after the first entries.", cls="note")
    by_stage = {str(r.stage): r for r in funnel.itertuples(index=False)}
    metrics = _metrics(ctx, segment, value)
    touchpoints = _touchpoints(ctx)
    pains = _pains(ctx)
    stages = ctx.stages

    def next_row(i: int) -> object | None:
        return by_stage.get(stages[i + 1]) if i + 1 < len(stages) else None

    rows: list[tuple[str, list[Safe]]] = []
    rows.append(("Touchpoints", [bullet_list(touchpoints.get(s, [])) for s in stages]))
    rows.append(("Stage metrics", [bullet_list(metrics.get(s, [])) for s in stages]))
    reach = []
    for s in stages:
        r = by_stage.get(s)
        if r is None:
            reach.append(esc(fmt.NO_VALUE))
        else:
            reach.append(esc(f"{fmt.count(r.entered)} ({fmt.pct(r.overall_conversion)} of "
                             "entry)"))
    rows.append(("Customers reaching", reach))
    drop, time = [], []
    for i, _ in enumerate(stages):
        nxt = next_row(i)
        if nxt is None:
            drop.append(esc(fmt.NO_VALUE))
            time.append(esc(fmt.NO_VALUE))
            continue
        drop.append(esc(f"{fmt.pct(nxt.dropout_rate)} ({fmt.count(nxt.dropoff_count)} lost)"))
        time.append(esc(fmt.duration(nxt.median_seconds)))
    rows.append(("Drop-off to next stage", drop))
    rows.append(("Median time to next stage", time))
    rows.append(("Pains (why they leave)", [bullet_list(pains.get(s, [])) for s in stages]))

    head = "".join(f"<th>{esc(s)}</th>" for s in stages)
    body = "".join(
        f'<tr><th class="rowhead">{esc(name)}</th>'
        f"{join(Safe(f'<td>{c}</td>') for c in cells)}</tr>"
        for name, cells in rows
    )
    return Safe(f'{note}<table class="data jmap"><thead><tr><th></th>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table>")
