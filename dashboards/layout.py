"""HTML building blocks: the page shell with its nav bar, sections, tables, cards and notes.

Escaping rule: every `str` handed to these helpers is text and is escaped here; only values
wrapped in `Safe` (HTML built by these helpers) pass through unchanged. Data values from events
(names, properties, reasons, complaints) therefore can never become markup.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from dashboards.data import how_to_build


class Safe(str):
    """HTML that was built (and escaped) by this module; passed through unchanged."""


def esc(value: object) -> Safe:
    """Escape text for HTML; `Safe` values pass through."""
    if isinstance(value, Safe):
        return value
    return Safe(html.escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[object]) -> Safe:
    return Safe("".join(esc(p) for p in parts))


@dataclass(frozen=True)
class PageSpec:
    """A page of the site: its file name (`slug`.html), its title in the nav bar, every table
    it reads (the dashboard asset depends on exactly these; a page whose tables are missing
    shows a "not available" note), and the module whose `render(ctx) -> Page` builds it (named,
    not imported, so the page modules can use this one)."""

    slug: str
    title: str
    reads: tuple[str, ...] = ()
    module: str = ""


# The registry of pages, in nav order. A new page: its module (with `render`), and a line here.
PAGES: tuple[PageSpec, ...] = (
    PageSpec("index", "Overview", (
        "run_settings", "source_summary", "period_figures", "period_funnel", "funnel_steps",
        "funnel_cohorts", "stage_transitions", "daily_stage_rates"), "dashboards.overview"),
    PageSpec("journey_map", "Journey map", (
        "run_settings", "journey_map_funnel", "stage_exit_events", "stage_pain_segments",
        "stage_touchpoint_segments", "stage_metric_segments"),
             "dashboards.journey_map"),
    PageSpec("bottlenecks", "Bottlenecks", (
        "run_settings", "period_figures", "period_funnel", "findings", "finding_days",
        "stage_transitions", "stage_time_distribution",
        "stage_transition_segments", "booking_funnel", "payment_failure_matrix",
        "payment_failures"), "dashboards.bottlenecks"),
    PageSpec("paths", "Paths", (
        "run_settings", "dfg_edges", "dfg_endpoints", "variants", "conformance_overall",
        "conformance_deviations", "dropoff_points"), "dashboards.paths"),
    PageSpec("repeat", "Repeat purchase", (
        "run_settings", "repeat_purchase", "repeat_so_far", "repeat_gaps", "purchase_frequency",
        "retention_cohorts", "lifecycle", "repeat_by_experience"), "dashboards.repeat"),
    PageSpec("quality", "Data quality", (
        "run_settings", "source_summary", "ingest_reconciliation",
        "ingest_reconciliation_periods", "quarantine", "rejected_files"),
             "dashboards.quality"),
)


def tables_read() -> tuple[str, ...]:
    """Every table some page reads, each once, in page order."""
    return tuple(dict.fromkeys(t for page in PAGES for t in page.reads))


@dataclass
class Page:
    """A rendered page body and how many Plotly figures it holds."""

    slug: str
    title: str
    body: list[Safe] = field(default_factory=list)
    figures: int = 0

    def add(self, *parts: object) -> None:
        self.body.extend(esc(p) for p in parts)


CSS = """
:root { --ink:#222; --muted:#666; --line:#ddd; --accent:#0072B2; --bg:#f7f7f5; }
* { box-sizing: border-box; }
body { margin:0; font-family: system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;
  color:var(--ink); background:var(--bg); line-height:1.45; }
nav { background:#1d2b36; padding:0 1.5rem; display:flex; flex-wrap:wrap; align-items:center;
  gap:.25rem; position:sticky; top:0; z-index:10; }
nav .brand { color:#fff; font-weight:600; margin-right:1.5rem; padding:.8rem 0; }
nav a { color:#cfe3f1; text-decoration:none; padding:.8rem .8rem;
  border-bottom:3px solid transparent; }
nav a:hover { color:#fff; }
nav a.active { color:#fff; border-bottom-color:#E69F00; }
main { max-width:1280px; margin:0 auto; padding:1rem 1.5rem 3rem; }
header.page h1 { margin:.6rem 0 .2rem; font-size:1.6rem; }
header.page p { margin:.1rem 0; color:var(--muted); }
section { background:#fff; border:1px solid var(--line); border-radius:6px; padding:1rem 1.25rem;
  margin:1rem 0; }
section h2 { margin:.1rem 0 .4rem; font-size:1.2rem; }
section p.lead { margin:.1rem 0 .6rem; color:var(--muted); }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(200px,1fr)); gap:.75rem; }
.card { border:1px solid var(--line); border-radius:6px; padding:.75rem 1rem; background:#fff; }
.card .label { color:var(--muted); font-size:.9rem; }
.card .value { font-size:1.9rem; font-weight:600; font-variant-numeric:tabular-nums; }
.card .delta { font-size:.9rem; font-variant-numeric:tabular-nums; }
.card.small .value { color:var(--muted); }
.card .flag { color:#8a4b00; font-size:.85rem; }
p.picker { margin:.75rem 0 .25rem; }
p.picker select { margin-right:.75rem; }
.delta.up { color:#009E73; } .delta.down { color:#D55E00; } .delta.flat { color:var(--muted); }
table.data { border-collapse:collapse; width:100%; font-size:.9rem; margin:.4rem 0; }
table.data th, table.data td { border-bottom:1px solid var(--line); padding:.35rem .5rem;
  text-align:left; vertical-align:top; }
table.data th { background:#f0f3f5; font-weight:600; }
table.data td.num, table.data th.num { text-align:right; font-variant-numeric:tabular-nums; }
table.data tr.flag td { background:#fdf1e6; }
table.jmap th.rowhead { background:#f0f3f5; width:11rem; }
table.jmap td { min-width:9rem; }
table.jmap ul { margin:0; padding-left:1rem; }
.note { border-left:4px solid #E69F00; background:#fff8e6; padding:.5rem .75rem; margin:.5rem 0; }
.note.missing { border-left-color:#999; background:#f3f3f3; }
p.note { margin:.5rem 0; }
.muted { color:var(--muted); }
.figure { margin:.25rem 0 .75rem; }
.grid2 { display:grid; grid-template-columns:repeat(auto-fit,minmax(520px,1fr)); gap:1rem; }
.grid2 > * { min-width:0; }
.sig { font-weight:600; }
footer { color:var(--muted); font-size:.85rem; margin-top:2rem; }
select { font-size:1rem; padding:.2rem .4rem; }
"""


def _cls(name: str, on: bool) -> str:
    return f' class="{name}"' if on else ""


def nav(active: str) -> Safe:
    links = "".join(
        f'<a href="{p.slug}.html"{_cls("active", p.slug == active)}>{esc(p.title)}</a>'
        for p in PAGES
    )
    return Safe(f'<nav><span class="brand">Observed Journeys</span>{links}</nav>')


def document(page: Page, *, subtitle: str, footer: str) -> str:
    """The complete HTML document of a page; plotly.min.js and style.css sit next to it."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(page.title)} · Observed Journeys</title>"
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="style.css">'
        '<script src="plotly.min.js"></script>'
        f'</head><body data-page="{esc(page.slug)}" data-figures="{page.figures}">'
        f"{nav(page.slug)}<main>"
        f'<header class="page"><h1>{esc(page.title)}</h1><p>{esc(subtitle)}</p></header>'
        f"{''.join(page.body)}"
        f"<footer>{esc(footer)}</footer></main>"
        # a figure drawn while the page was still arriving (e.g. the first of a two-column
        # row, drawn before its neighbour existed) takes its final width once all is laid out
        "<script>window.addEventListener('load', () => { for (const p of "
        "document.querySelectorAll('.js-plotly-plot')) Plotly.Plots.resize(p); });</script>"
        "</body></html>\n"
    )


def picker_script(name: str) -> Safe:
    """The script of a picker: `<select id="{name}">` shows the one `.{name}` block whose
    `data-{name}` is the selected value and hides the others; figures in the shown block take
    their width (a hidden figure was drawn at none)."""
    return Safe(f"""
<script>
(function () {{
  var select = document.getElementById('{name}');
  function show() {{
    document.querySelectorAll('.{name}').forEach(function (el) {{
      el.hidden = el.getAttribute('data-{name}') !== select.value;
      if (!el.hidden && window.Plotly) {{
        el.querySelectorAll('.js-plotly-plot').forEach(function (p) {{ Plotly.Plots.resize(p); }});
      }}
    }});
  }}
  select.addEventListener('change', show);
  show();
}})();
</script>
""")


def section(title: str, *content: object, lead: str | None = None, anchor: str = "") -> Safe:
    head = f"<h2>{esc(title)}</h2>"
    if lead:
        head += f'<p class="lead">{esc(lead)}</p>'
    id_attr = f' id="{esc(anchor)}"' if anchor else ""
    return Safe(f"<section{id_attr}>{head}{join(content)}</section>")


def note(text: object) -> Safe:
    return Safe(f'<div class="note">{esc(text)}</div>')


def not_available(what: str, tables: Sequence[str]) -> Safe:
    """A clear note that a part of the page needs tables that are not in the warehouse: a
    sentence saying why when the run left them out (the data cannot give them), else which
    command builds them."""
    reasons = getattr(tables, "reasons", {})
    if tables and all(t in reasons for t in tables):
        why = "; ".join(dict.fromkeys(reasons[t] for t in tables))
        return Safe(f'<div class="note missing"><strong>Not measured:</strong> {esc(what)} '
                    f"needs what this data does not have ({esc(why)}).</div>")
    commands = sorted({how_to_build(t) for t in tables})
    return Safe(
        f'<div class="note missing"><strong>Not available:</strong> {esc(what)} needs '
        f"table{'s' if len(tables) > 1 else ''} {esc(', '.join(tables))}, which "
        f"{'are' if len(tables) > 1 else 'is'} not in the warehouse yet. Run "
        f"<code>{esc('` and `'.join(commands))}</code> first.</div>"
    )


def paragraph(text: object, cls: str = "") -> Safe:
    cls_attr = f' class="{esc(cls)}"' if cls else ""
    return Safe(f"<p{cls_attr}>{esc(text)}</p>")


def card(label: str, value: str, delta: str = "", direction: str = "flat",
         detail: str = "", flag: str = "") -> Safe:
    """A headline card; `flag` (e.g. a small-n warning) greys the value and says why."""
    cls = "card small" if flag else "card"
    parts = [f'<div class="{cls}"><div class="label">{esc(label)}</div>',
             f'<div class="value">{esc(value)}</div>']
    if delta:
        parts.append(f'<div class="delta {esc(direction)}">{esc(delta)}</div>')
    if detail:
        parts.append(f'<div class="muted">{esc(detail)}</div>')
    if flag:
        parts.append(f'<div class="flag">{esc(flag)}</div>')
    parts.append("</div>")
    return Safe("".join(parts))


def cards(items: Iterable[Safe]) -> Safe:
    return Safe(f'<div class="cards">{join(items)}</div>')


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *,
          numeric: Iterable[int] = (), flag_rows: Iterable[int] = (), cls: str = "data",
          caption: str = "") -> Safe:
    """A table; cells are escaped text (or Safe); `numeric` columns are right-aligned."""
    num = set(numeric)
    flags = set(flag_rows)
    head = "".join(
        f"<th{_cls('num', i in num)}>{esc(h)}</th>" for i, h in enumerate(headers)
    )
    body = []
    for r, row in enumerate(rows):
        cells = "".join(
            f"<td{_cls('num', i in num)}>{esc(v)}</td>" for i, v in enumerate(row)
        )
        body.append(f"<tr{_cls('flag', r in flags)}>{cells}</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return Safe(f'<table class="{esc(cls)}">{cap}<thead><tr>{head}</tr></thead>'
                f"<tbody>{''.join(body)}</tbody></table>")


def bullet_list(items: Iterable[object]) -> Safe:
    lis = "".join(f"<li>{esc(i)}</li>" for i in items)
    return Safe(f"<ul>{lis}</ul>") if lis else Safe('<span class="muted">–</span>')
