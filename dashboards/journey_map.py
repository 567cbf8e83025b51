"""Journey map page: the customer journey map as a wall chart, measured, one per persona.

Stages run across, one row per measure below; every row says what its numbers are a share of
and draws them (bars in HTML/CSS, no figure). Everything comes from tables: `funnel_steps` /
`funnel_segments` (reach, drop-off, time), and the per-persona journey map tables of
transforms/journey_map_tables.py — `stage_exit_events` (what the leavers did last),
`stage_pain_segments`, `stage_touchpoint_segments`, `stage_metric_segments` (each with the
all-customer rows under segment 'all').
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from dashboards import fmt
from dashboards.context import Context
from dashboards.layout import (
    Page,
    Safe,
    esc,
    join,
    not_available,
    paragraph,
    picker_script,
    section,
)

SLUG = "journey_map"
MAX_VALUES_PER_SEGMENT = 8
TOP_TOUCHPOINTS = 3
TOP_PAINS = 3
TOP_EXITS = 3
# the stages losing the most journeys, marked on the map
WORST_STAGES = 2

ALL = ("all", "all")


# The page's own look (the site's style sheet is shared): a fixed-layout table that fits its
# card from 1024 px up, bars drawn with divs.
STYLE = """
<style>
table.jm { table-layout:fixed; width:100%; font-size:.8rem; }
table.jm th, table.jm td { padding:.35rem .4rem; overflow-wrap:break-word; }
table.jm thead th { font-size:.9rem; }
table.jm th.rowhead { width:9.5rem; background:#f0f3f5; font-weight:600; }
table.jm th.rowhead small { display:block; font-weight:400; color:var(--muted); }
table.jm tr.group th { background:#1d2b36; color:#fff; font-size:.75rem; letter-spacing:.03em;
  text-transform:uppercase; padding:.2rem .4rem; }
table.jm .worst { background:#fdf1e6; }
table.jm thead th.worst { background:#f9dcc4; }
.jm-badge { display:block; width:max-content; max-width:100%; margin-top:.15rem;
  font-size:.7rem; font-weight:600; color:#fff; background:#D55E00; border-radius:3px;
  padding:0 .3rem; }
.jm-big { font-size:1.15rem; font-weight:600; font-variant-numeric:tabular-nums; }
.jm-item { margin:0 0 .3rem; }
.jm-item:last-child { margin-bottom:0; }
.jm-lbl { display:flex; flex-wrap:wrap; justify-content:space-between; column-gap:.3rem;
  line-height:1.25; }
.jm-lbl .v { font-variant-numeric:tabular-nums; white-space:nowrap; }
.jm-track { height:.5rem; background:#e8ecef; border-radius:2px; margin-top:.1rem; }
.jm-fill { height:100%; min-width:1px; background:#0072B2; border-radius:2px; }
.jm-fill.loss { background:#D55E00; }
.jm-fill.exit { background:#E69F00; }
.jm-fill.pain { background:#CC79A7; }
.jm-fill.time { background:#999; }
.jm-fill.touch { background:#56B4E9; }
.jm-dim { color:var(--muted); font-size:.72rem; margin:.2rem 0 .1rem; }
.jm-metrics { list-style:none; margin:0; padding:0; }
.jm-metrics li { margin:0 0 .2rem; line-height:1.25; }
.jm-metrics .k { color:var(--muted); }
p.jm-headline { font-size:1rem; margin:.3rem 0 .6rem; }
</style>
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
    data = _Tables.read(ctx)
    maps = []
    options = []
    for key, (segment, value) in enumerate(personas):
        label = "All customers" if (segment, value) == ALL else f"{segment} = {value}"
        options.append(f'<option value="p{key}">{esc(label)}</option>')
        maps.append(Safe(f'<div class="persona" data-persona="p{key}">'
                         f"{_map(ctx, data, segment, value)}</div>"))
    picker = Safe(
        '<p><label for="persona"><strong>Persona (segment): </strong></label>'
        f'<select id="persona">{"".join(options)}</select></p>'
    )
    legend = paragraph(
        "Columns are the stages of the journey map in order; each row says what its "
        "percentages are a share of. Reach, loss, time and the last steps of those lost count "
        "complete journeys (their conversion window fully observed); touchpoints, pains and "
        "metrics count every journey of the persona. A customer is lost at a stage when it is "
        "the furthest stage their journey reached. The shaded columns lose the most customers.",
        cls="muted")
    missing = wh.missing("stage_exit_events", "stage_pain_segments",
                         "stage_touchpoint_segments", "stage_metric_segments")
    parts: list[object] = [Safe(STYLE), picker, *maps, legend]
    if missing:
        parts.append(not_available("Parts of the journey map", missing))
    parts.append(picker_script("persona"))
    page.add(section(title, *parts,
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


class _Tables:
    """The per-persona tables, read once for every persona (empty when missing)."""

    def __init__(self, exits: pd.DataFrame, pains: pd.DataFrame, touch: pd.DataFrame,
                 metrics: pd.DataFrame) -> None:
        self.exits = _by_persona(exits)
        self.pains = _by_persona(pains)
        self.touch = _by_persona(touch)
        self.metrics = _by_persona(metrics)

    @classmethod
    def read(cls, ctx: Context) -> _Tables:
        wh = ctx.wh

        def df(table: str, sql: str, params: list[object]) -> pd.DataFrame:
            return wh.df(sql, params) if wh.has(table) else pd.DataFrame()

        return cls(
            df("stage_exit_events",
               "select segment, segment_value, stage, dimension, value, journeys, leavers, "
               "share, rank, stage_rank from stage_exit_events where rank <= ? "
               "order by stage_index, dimension, rank", [TOP_EXITS]),
            df("stage_pain_segments",
               "select segment, segment_value, stage, pain, reason, customers, share, rank "
               "from stage_pain_segments where pain <> 'dropped_out' "
               "order by stage_index, rank", []),
            df("stage_touchpoint_segments",
               "select segment, segment_value, stage, stage_index, dimension, value, share, "
               "rank from stage_touchpoint_segments where rank <= ? "
               "order by stage_index, dimension, rank", [TOP_TOUCHPOINTS]),
            df("stage_metric_segments",
               "select segment, segment_value, stage, metric, value, unit, metric_order "
               "from stage_metric_segments order by metric_order", []),
        )


def _by_persona(df: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    if df.empty:
        return {}
    return {(str(s), str(v)): part for (s, v), part in df.groupby(["segment", "segment_value"],
                                                                  sort=False)}


def _funnel(ctx: Context, segment: str, value: str) -> pd.DataFrame:
    if (segment, value) == ALL:
        return ctx.wh.df("select * from funnel_steps order by stage_index")
    if not ctx.wh.has("funnel_segments"):
        return pd.DataFrame()
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


def _missing(x: object) -> bool:
    return x is None or bool(pd.isna(x))


def _width(share: object) -> str:
    """A bar's CSS width from a share 0..1 (a number we format: never data text)."""
    if _missing(share):
        return "0%"
    return f"{max(0.0, min(1.0, float(share))) * 100:.1f}%"


def _bar(share: object, cls: str = "") -> Safe:
    kind = f" {esc(cls)}" if cls else ""
    return Safe(f'<div class="jm-track"><div class="jm-fill{kind}" '
                f'style="width:{_width(share)}"></div></div>')


def _item(name: object, value: object, share: object, cls: str = "",
          title: object = "") -> Safe:
    """One labelled bar: name and value on a line, the bar below."""
    tip = f' title="{esc(title)}"' if title else ""
    # long event and screen names may break after an underscore, not inside a word
    shown = esc(name).replace("_", "_<wbr>")
    return Safe(f'<div class="jm-item"{tip}><div class="jm-lbl"><span class="n">{shown}'
                f'</span><span class="v">{esc(value)}</span></div>{_bar(share, cls)}</div>')


def _none() -> Safe:
    return Safe('<span class="muted">–</span>')


def _map(ctx: Context, data: _Tables, segment: str, value: str) -> Safe:
    stages = ctx.stages
    funnel = _funnel(ctx, segment, value)
    by_stage = {str(r.stage): r for r in funnel.itertuples(index=False)}
    exits = data.exits.get((segment, value), pd.DataFrame())
    rank = ({str(r.stage): int(r.stage_rank) for r in exits.itertuples(index=False)
             if pd.notna(r.stage_rank)} if not exits.empty else {})
    worst = {s for s, k in rank.items() if k <= WORST_STAGES}

    def next_row(i: int) -> object | None:
        return by_stage.get(stages[i + 1]) if i + 1 < len(stages) else None

    # --- what happens to the journeys
    reach, lost, time = [], [], []
    times = [float(getattr(next_row(i), "median_seconds", float("nan")) or float("nan"))
             for i in range(len(stages))]
    longest = max((t for t in times if not pd.isna(t)), default=0.0)
    for i, s in enumerate(stages):
        r = by_stage.get(s)
        reach.append(_none() if r is None else Safe(
            f'<div class="jm-big">{esc(fmt.count(r.entered))}</div>'
            f"{_item('', fmt.pct(r.overall_conversion), r.overall_conversion)}"))
        nxt = next_row(i)
        if nxt is None or r is None:
            lost.append(_none())
            time.append(_none())
            continue
        lost.append(Safe(
            f'<div class="jm-big">{esc(fmt.count(nxt.dropoff_count))}</div>'
            f"{_item('', fmt.pct(nxt.dropout_rate), nxt.dropout_rate, 'loss')}"))
        t = times[i]
        time.append(_item(fmt.duration(None if pd.isna(t) else t), "",
                          t / longest if longest and not pd.isna(t) else None, "time"))

    rows: list[tuple[str, str, list[Safe]] | str] = ["Where customers are lost"]
    rows.append(("Reached the stage", "count; % of all journeys", reach))
    rows.append(("Lost before the next stage",
                 "count; % of those reaching the stage", lost))
    rows.append(("Their last event", "% of those lost at the stage",
                 _exit_cells(stages, exits, "event_name")))
    if not exits.empty and (exits["dimension"] == "screen").any():
        rows.append(("Their last screen", "% of those lost at the stage",
                     _exit_cells(stages, exits, "screen")))
    rows.append(("Median time to the next stage",
                 "journeys reaching both; bar: the longest = full", time))
    rows.append("Why they struggle")
    rows.append(("Pains", "customers with the pain; % of customers reaching the stage",
                 _pain_cells(stages, data.pains.get((segment, value), pd.DataFrame()))))
    rows.append("Where they meet us")
    rows.extend(_touch_rows(stages, data.touch.get((segment, value), pd.DataFrame())))
    rows.append("Stage metrics")
    rows.append(("Measured at the stage", "each in its own unit; rates with a bar",
                 _metric_cells(ctx, stages, data.metrics.get((segment, value),
                                                             pd.DataFrame()))))

    def col(s: str) -> str:
        return ' class="worst"' if s in worst else ""

    def badge(s: str) -> str:
        if s not in worst:
            return ""
        text = "Most customers lost here" if rank[s] == 1 else "2nd most lost here"
        return f'<span class="jm-badge">{esc(text)}</span>'

    head = "".join(f"<th{col(s)}>{esc(s)}{badge(s)}</th>" for s in stages)
    body = []
    for row in rows:
        if isinstance(row, str):
            body.append(f'<tr class="group"><th colspan="{len(stages) + 1}">{esc(row)}</th></tr>')
            continue
        name, denominator, cells = row
        tds = join(Safe(f"<td{col(s)}>{c}</td>") for s, c in zip(stages, cells, strict=True))
        body.append(f'<tr><th class="rowhead">{esc(name)}<small>{esc(denominator)}</small>'
                    f"</th>{tds}</tr>")
    note = Safe("")
    if funnel.empty:
        note = paragraph(
            "No journey of this persona has its conversion window fully observed yet, so "
            "reach, losses and times are not shown; they appear once the data covers a full "
            "window after the first entries.", cls="note")
    return Safe(f"{note}{_headline(stages, by_stage, exits)}"
                f'<table class="data jm"><thead><tr><th class="rowhead"></th>{head}</tr>'
                f"</thead><tbody>{''.join(body)}</tbody></table>")


def _headline(stages: list[str], by_stage: dict[str, object], exits: pd.DataFrame) -> Safe:
    """One sentence: the stage losing the most journeys, and what those lost did last."""
    if exits.empty:
        return Safe("")
    first = exits[(exits["stage_rank"] == 1) & (exits["dimension"] == "event_name")]
    if first.empty:
        return Safe("")
    top = first.iloc[0]
    stage = str(top["stage"])
    i = stages.index(stage) if stage in stages else -1
    nxt = by_stage.get(stages[i + 1]) if 0 <= i < len(stages) - 1 else None
    reached = by_stage.get(stage)
    text = f"Most customers are lost at {stage}: {fmt.count(top['leavers'])}"
    if reached is not None and nxt is not None:
        text += (f" of the {fmt.count(reached.entered)} who reached it "
                 f"({fmt.pct(nxt.dropout_rate)}) never reached {stages[i + 1]}")
    else:
        text += " journeys ended there"
    text += (f"; the last thing {fmt.pct(top['share'])} of them did was {top['value']}.")
    return paragraph(text, cls="jm-headline")


def _exit_cells(stages: list[str], exits: pd.DataFrame, dimension: str) -> list[Safe]:
    out: dict[str, list[Safe]] = defaultdict(list)
    if not exits.empty:
        for r in exits[exits["dimension"] == dimension].itertuples(index=False):
            out[str(r.stage)].append(_item(
                r.value, fmt.pct(r.share), r.share, "exit",
                f"{r.value}: {fmt.count(r.journeys)} of the {fmt.count(r.leavers)} lost "
                f"({fmt.pct(r.share)})"))
    return [join(out[s]) if out.get(s) else _none() for s in stages]


def _pain_cells(stages: list[str], pains: pd.DataFrame) -> list[Safe]:
    out: dict[str, list[Safe]] = defaultdict(list)
    if not pains.empty:
        for r in pains.itertuples(index=False):
            if len(out[str(r.stage)]) >= TOP_PAINS:
                continue
            what = str(r.pain).replace("_", " ")
            if r.reason is not None and str(r.reason) != "(none)":
                what += f": {r.reason}"
            out[str(r.stage)].append(_item(
                what, f"{fmt.count(r.customers)} · {fmt.pct(r.share)}", r.share, "pain",
                f"{what} — {fmt.count(r.customers)} customers ({fmt.pct(r.share)})"))
    return [join(out[s]) if out.get(s) else _none() for s in stages]


def _touch_rows(stages: list[str], touch: pd.DataFrame) -> list[tuple[str, str, list[Safe]]]:
    """One row per touchpoint dimension (in the order the stages first list them)."""
    if touch.empty:
        return [("Touchpoints", "% of the stage's events", [_none() for _ in stages])]
    rows = []
    for dimension in dict.fromkeys(touch["dimension"]):
        part = touch[touch["dimension"] == dimension]
        cells = []
        for s in stages:
            mine = part[part["stage"] == s]
            if mine.empty:
                cells.append(_none())
                continue
            summary = ", ".join(f"{v} ({fmt.pct(x)})" for v, x in zip(mine["value"],
                                                                      mine["share"],
                                                                      strict=True))
            items = join(_item(v, fmt.pct(x), x, "touch")
                         for v, x in zip(mine["value"], mine["share"], strict=True))
            cells.append(Safe(f'<div title="{esc(f"{dimension}: {summary}")}">{items}</div>'))
        rows.append((str(dimension).replace("_", " ").capitalize(),
                     "top values; % of the stage's events", cells))
    return rows


def _metric_cells(ctx: Context, stages: list[str], metrics: pd.DataFrame) -> list[Safe]:
    out: dict[str, list[str]] = defaultdict(list)
    if not metrics.empty:
        for r in metrics.itertuples(index=False):
            label = str(r.metric)
            for suffix in ("_minutes", "_days"):  # the formatted value carries the unit
                label = label.removesuffix(suffix)
            label = label.replace("_", " ")
            text = _metric_text(r.value, str(r.unit), ctx.currency)
            bar = _bar(r.value, "") if str(r.unit) == "rate" and not _missing(r.value) else ""
            out[str(r.stage)].append(
                f'<li><span class="k">{esc(label)}:</span> <b>{esc(text)}</b>{bar}</li>')
    return [Safe(f'<ul class="jm-metrics">{"".join(out[s])}</ul>') if out.get(s) else _none()
            for s in stages]
