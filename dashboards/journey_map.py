"""Journey map page: the customer journey map as a wall chart, measured, one per period and
persona.

Stages run across, one row per measure below; every row says what its numbers are a share of
and draws them (bars in HTML/CSS, no figure). A period picker (the lengths of
`transforms.periods.period_lengths`; lengths covering the same entry days share one option)
and a persona picker choose the map; every (period x persona) map is pre-rendered HTML, shown
by the pickers (one script for both). Everything comes from the per-period, per-persona tables of
transforms/journey_map_tables.py: `journey_map_funnel` (reach, drop-off, time),
`stage_exit_events` (what the leavers did last), `stage_pain_segments`,
`stage_touchpoint_segments`, `stage_metric_segments` (each with the all-customer rows under
segment 'all').
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
/* one labelled bar: name and value on a line, the bar (one element, filled to --w) below */
.ji { display:flex; flex-wrap:wrap; justify-content:space-between; column-gap:.3rem;
  line-height:1.25; margin:0 0 .3rem; }
.ji:last-child { margin-bottom:0; }
.ji > b { font-weight:400; font-variant-numeric:tabular-nums; white-space:nowrap; }
.jb { display:block; flex-basis:100%; height:.5rem; margin-top:.1rem; border-radius:2px;
  background:linear-gradient(90deg, var(--c) var(--w), #e8ecef 0); --c:#0072B2; }
.jb.loss { --c:#D55E00; } .jb.exit { --c:#E69F00; } .jb.pain { --c:#CC79A7; }
.jb.time { --c:#999; } .jb.touch { --c:#56B4E9; }
p.jm-scope { margin:.2rem 0 .4rem; }
.jm-dim { color:var(--muted); font-size:.72rem; margin:.2rem 0 .1rem; }
.jm-metrics { list-style:none; margin:0; padding:0; }
.jm-metrics li { margin:0 0 .2rem; line-height:1.25; }
.jm-metrics .k { color:var(--muted); }
p.jm-headline { font-size:1rem; margin:.3rem 0 .6rem; }
</style>
"""


# Two pickers over one set of blocks (layout.picker_script serves one): a block is shown when
# both its period and its persona are the selected ones.
PICKER_SCRIPT = Safe("""
<script>
(function () {
  var period = document.getElementById('period'), persona = document.getElementById('persona');
  function show() {
    document.querySelectorAll('.persona').forEach(function (el) {
      el.hidden = el.getAttribute('data-period') !== period.value
                  || el.getAttribute('data-persona') !== persona.value;
    });
  }
  period.addEventListener('change', show);
  persona.addEventListener('change', show);
  show();
})();
</script>
""")


def render(ctx: Context) -> Page:
    page = Page(SLUG, "Journey map")
    wh = ctx.wh
    title = "What happens to customers at each stage of the journey?"
    if not wh.has("journey_map_funnel", "run_settings") or not ctx.stages:
        page.add(section(title, not_available("The journey map",
                                              wh.missing("journey_map_funnel", "run_settings")
                                              or ["run_settings"])))
        return page

    data = _Tables.read(ctx)
    periods = _periods(ctx, data)
    if not periods:
        page.add(section(title, paragraph(
            "No journey has its conversion window fully observed yet, so there is no period "
            "to map; the map appears once the data covers a full window after the first "
            "entries.", cls="note")))
        return page
    personas = _personas(ctx, data, periods[-1].days[0])
    labels = ["All customers" if (s, v) == ALL else f"{s} = {v}" for s, v in personas]
    default = next((i for i, w in enumerate(periods) if ctx.period_days in w.days), 0)
    period_options = "".join(
        f'<option value="d{w.days[0]}"{" selected" if i == default else ""}>'
        f"{esc(w.label(ctx))}</option>" for i, w in enumerate(periods))
    persona_options = "".join(f'<option value="p{k}">{esc(label)}</option>'
                              for k, label in enumerate(labels))
    picker = Safe(
        '<p class="picker"><label for="period"><strong>Period: </strong></label>'
        f'<select id="period">{period_options}</select> '
        '<label for="persona"><strong>Persona (segment): </strong></label>'
        f'<select id="persona">{persona_options}</select></p>')
    # one block per period x persona; the script shows the one both pickers select
    maps = [Safe(f'<div class="persona" data-period="d{w.days[0]}" data-persona="p{k}">'
                 f"{_map(ctx, data, w, segment, value, labels[k])}</div>")
            for w in periods for k, (segment, value) in enumerate(personas)]
    window = ctx.setting("conversion_window_seconds")
    legend = paragraph(
        "Columns are the stages of the journey map in order; each row says what its "
        "percentages are a share of. A map counts the journeys entering in the period: on its "
        "last entry days whose conversion window"
        + (f" ({fmt.duration(window)})" if window else "")
        + " is fully observed, as the Overview's conversion and funnel do; journeys whose "
          "window is still open are in no period, so every row of a map counts the same "
          "journeys. A customer is lost at a stage when it is the furthest stage their journey "
          "reached. The shaded columns lose the most customers.",
        cls="muted")
    missing = wh.missing("stage_exit_events", "stage_pain_segments",
                         "stage_touchpoint_segments", "stage_metric_segments")
    parts: list[object] = [Safe(STYLE), picker, *maps, legend]
    if missing:
        parts.append(not_available("Parts of the journey map", missing))
    parts.append(PICKER_SCRIPT)
    page.add(section(title, *parts,
                     lead="Measured from the events, not drawn in a workshop: pick a period "
                          "and a persona to see its own map."))
    return page


class _Period:
    """One option of the period picker: the lengths (days) whose maps cover the same entry
    days, the first and last of those days."""

    def __init__(self, days: list[int], start: object, end: object) -> None:
        self.days, self.start, self.end = days, start, end

    def label(self, ctx: Context) -> str:
        names = " = ".join(ctx.period_name(d) for d in self.days)
        return f"{names}: entering {fmt.day(self.start)} – {fmt.day(self.end)}"


def _periods(ctx: Context, data: _Tables) -> list[_Period]:
    """The periods of `journey_map_funnel`, shortest first; lengths whose entry days hold the
    same journeys (the window reaching before the data's first day) share one option."""
    if data.funnel.empty:
        return []
    rows = (data.funnel[data.funnel["segment"] == "all"]
            .drop_duplicates("period_days").sort_values("period_days"))
    out: list[_Period] = []
    first = ctx.data_start
    for r in rows.itertuples(index=False):
        start = pd.Timestamp(r.period_start).date()
        if first is not None and start < first:
            start = first
        if out and (out[-1].start, out[-1].end) == (start, pd.Timestamp(r.period_end).date()):
            out[-1].days.append(int(r.period_days))
        else:
            out.append(_Period([int(r.period_days)], start, pd.Timestamp(r.period_end).date()))
    return out


def _personas(ctx: Context, data: _Tables, days: int) -> list[tuple[str, str]]:
    """'all', then per segment its values with the most journeys in the longest period
    (`MAX_VALUES_PER_SEGMENT`)."""
    personas = [ALL]
    f = data.funnel
    if f.empty:
        return personas
    first = f[(f["period_days"] == days) & (f["stage"] == ctx.stages[0])
              & (f["segment"] != "all")].sort_values(
        ["segment", "entered", "segment_value"], ascending=[True, False, True])
    for segment, part in first.groupby("segment", sort=True):
        for value in part["segment_value"].head(MAX_VALUES_PER_SEGMENT):
            personas.append((str(segment), str(value)))
    return personas


class _Tables:
    """The per-persona tables, read once for every persona (empty when missing)."""

    def __init__(self, funnel: pd.DataFrame, exits: pd.DataFrame, pains: pd.DataFrame,
                 touch: pd.DataFrame, metrics: pd.DataFrame) -> None:
        self.funnel = funnel
        self.funnels = _by_persona(funnel)
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
            df("journey_map_funnel",
               "select * from journey_map_funnel order by period_days, segment, "
               "segment_value, stage_index", []),
            df("stage_exit_events",
               "select period_days, segment, segment_value, stage, dimension, value, journeys, "
               "leavers, "
               "share, rank, stage_rank from stage_exit_events where rank <= ? "
               "order by stage_index, dimension, rank", [TOP_EXITS]),
            df("stage_pain_segments",
               "select period_days, segment, segment_value, stage, pain, reason, customers, "
               "share, rank "
               "from stage_pain_segments where pain <> 'dropped_out' "
               "order by stage_index, rank", []),
            df("stage_touchpoint_segments",
               "select period_days, segment, segment_value, stage, stage_index, dimension, "
               "value, share, rank from stage_touchpoint_segments where rank <= ? "
               "order by stage_index, dimension, rank", [TOP_TOUCHPOINTS]),
            df("stage_metric_segments",
               "select period_days, segment, segment_value, stage, metric, value, unit, "
               "metric_order "
               "from stage_metric_segments order by metric_order", []),
        )


def _by_persona(df: pd.DataFrame) -> dict[tuple[int, str, str], pd.DataFrame]:
    """{(period_days, segment, value): its rows}."""
    if df.empty:
        return {}
    return {(int(d), str(s), str(v)): part for (d, s, v), part in df.groupby(
        ["period_days", "segment", "segment_value"], sort=False)}


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
    """A bar filled to `share` of its width: one element (the page holds many maps)."""
    kind = f" {esc(cls)}" if cls else ""
    return Safe(f'<i class="jb{kind}" style="--w:{_width(share)}"></i>')


def _item(name: object, value: object, share: object, cls: str = "",
          title: object = "") -> Safe:
    """One labelled bar: name and value on a line, the bar below."""
    tip = f' title="{esc(title)}"' if title else ""
    # long event and screen names may break after an underscore, not inside a word
    shown = esc(name).replace("_", "_<wbr>")
    return Safe(f'<div class="ji"{tip}><span>{shown}</span><b>{esc(value)}</b>'
                f"{_bar(share, cls)}</div>")


def _none() -> Safe:
    return Safe('<span class="muted">–</span>')


def _map(ctx: Context, data: _Tables, period: _Period, segment: str, value: str,
         label: str) -> Safe:
    stages = ctx.stages
    key = (period.days[0], segment, value)
    funnel = data.funnels.get(key, pd.DataFrame())
    by_stage = {str(r.stage): r for r in funnel.itertuples(index=False)}
    exits = data.exits.get(key, pd.DataFrame())
    rank = ({str(r.stage): int(r.stage_rank) for r in exits.itertuples(index=False)
             if pd.notna(r.stage_rank)} if not exits.empty else {})
    worst = {s for s, k in rank.items() if k <= WORST_STAGES}

    def next_row(i: int) -> object | None:
        return by_stage.get(stages[i + 1]) if i + 1 < len(stages) else None

    # --- what happens to the journeys
    reach, lost, time = [], [], []
    # a median of 0 s is a time (the next stage reached at once), not a missing one
    times = [float("nan") if _missing(t := getattr(next_row(i), "median_seconds", None))
             else float(t) for i in range(len(stages))]
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
    n = by_stage[stages[0]].entered if stages and stages[0] in by_stage else 0
    rows.append(("Reached the stage", f"count; % of the period's {fmt.count(n)} journeys",
                 reach))
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
                 _pain_cells(stages, data.pains.get(key, pd.DataFrame()))))
    rows.append("Where they meet us")
    rows.extend(_touch_rows(stages, data.touch.get(key, pd.DataFrame())))
    rows.append("Stage metrics")
    rows.append(("Measured at the stage",
                 "the period's journeys, their events and purchases; each in its own unit; "
                 "rates with a bar",
                 _metric_cells(ctx, stages, data.metrics.get(key, pd.DataFrame()))))

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
    scope = paragraph(
        f"{label}, journeys entering {fmt.day(period.start)} – {fmt.day(period.end)}: "
        f"{fmt.count(n)} journeys.", cls="jm-scope muted")
    if funnel.empty:
        return Safe(f"{scope}" + str(paragraph(
            "No journey of this persona enters in this period; pick a longer period.",
            cls="note")))
    return Safe(f"{scope}{_headline(stages, by_stage, exits)}"
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
    # one pass over the rows, bucketed by (dimension, stage) in their order (a boolean mask per
    # dimension and stage was most of the journey map page's time)
    cells_of: dict[object, dict[object, list[tuple[object, object]]]] = {}
    for dimension, stage, value, share in zip(touch["dimension"], touch["stage"],
                                              touch["value"], touch["share"], strict=True):
        cells_of.setdefault(dimension, {}).setdefault(stage, []).append((value, share))
    rows = []
    for dimension, by_stage in cells_of.items():
        cells = []
        for s in stages:
            mine = by_stage.get(s)
            if not mine:
                cells.append(_none())
                continue
            summary = ", ".join(f"{v} ({fmt.pct(x)})" for v, x in mine)
            items = join(_item(v, fmt.pct(x), x, "touch") for v, x in mine)
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
