"""The period and segment pickers of the Overview and Bottlenecks pages.

Every combination of a period length and a segment value is precomputed (`period_figures`,
`period_funnel`: transforms/periods.py). A page renders the default combination (the run's
period, all customers) as usual and embeds every other combination once, as data: the HTML of
its slots (cards, leads, tables) and the traces of its figures, in one JSON block. Picking a
combination swaps the slots' HTML and calls `Plotly.react` on the page's one div per figure,
so a page with periods x ~30 segment values still draws only its few figures on load, each at
its width. The selection is kept for the session, so the next page opens on the same scope.

`Scope.render(build)` calls `build(ctx, scope)` once per combination; `build` puts its parts
through `scope.slot(name, html)` and `scope.figure(div_id, fig)` and returns the page HTML of
the default combination (the slots' and figures' containers).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from dashboards.charts import Figure, figure_data, to_div
from dashboards.context import ALL_CUSTOMERS, Context
from dashboards.layout import Page, Safe, esc

PERIOD_ID = "scope-period"
SEGMENT_ID = "scope-segment"
DATA_ID = "scope-data"
STORAGE_KEY = "observed-journeys-scope"


class Combination:
    """What one (period, segment value) shows: its slots' HTML and its figures' traces."""

    def __init__(self, key: str, default: bool) -> None:
        self.key = key
        self.default = default
        self.html: dict[str, str] = {}
        self.figs: dict[str, list | None] = {}
        self.rendered: set[str] = set()

    def slot(self, name: str, content: object) -> Safe:
        """A part of the page that follows the pickers (escaped text or Safe HTML)."""
        html = esc(content)
        self.html[name] = str(html)
        return Safe(f'<div data-slot="{esc(name)}">{html}</div>')

    def figure(self, div_id: str, fig: Figure | None, *, numbers: bool = False) -> Safe:
        """A figure that follows the pickers: drawn for the default combination, its traces
        kept for the others (None: this combination has none, the figure is hidden)."""
        self.figs[div_id] = None if fig is None else figure_data(fig)
        if fig is None or not self.default:  # only the default combination's HTML is used
            return Safe("")
        self.rendered.add(div_id)
        return to_div(fig, div_id, numbers=numbers)


def period_key(days: int) -> str:
    return f"d{int(days)}"


def render(ctx: Context, page: Page, build: Callable[[Context, Combination], Safe],
           *, what: str) -> Safe | None:
    """The pickers and the default combination's HTML, with every combination's data; None
    when `period_figures` does not hold the context's period (the page renders unscoped).
    `what` says which parts of the page follow the pickers."""
    periods = ctx.period_choices()
    if ctx.period_days not in periods:
        return None
    segments = ctx.segment_choices()
    default = None
    combos: list[Combination] = []
    for days in periods:
        for i, seg in enumerate(segments):
            combo = Combination(f"{period_key(days)}|s{i}",
                                days == ctx.period_days and seg == ALL_CUSTOMERS)
            html = build(ctx.with_period(days, seg), combo)
            if combo.default:
                default = (combo, html)
            combos.append(combo)
    assert default is not None
    first, body = default
    # a figure that the default combination does not draw cannot be swapped in
    data = {c.key: {"html": c.html,
                    "figs": {k: v for k, v in c.figs.items() if k in first.rendered}}
            for c in combos}
    page.figures += len(first.rendered)
    period_opts = "".join(
        f'<option value="{period_key(d)}"{" selected" if d == ctx.period_days else ""}>'
        f"{esc(ctx.period_name(d))}</option>" for d in periods)
    seg_opts = "".join(
        f'<option value="s{i}"{" selected" if seg == ALL_CUSTOMERS else ""}>'
        f"{esc(ctx.segment_name(seg))}</option>" for i, seg in enumerate(segments))
    if len(segments) > 1:
        seg_select = (f'<label for="{SEGMENT_ID}"><strong>Customers: </strong></label>'
                      f'<select id="{SEGMENT_ID}">{seg_opts}</select> ')
    else:
        seg_select = (f'<select id="{SEGMENT_ID}" hidden>{seg_opts}</select>'
                      '<span class="muted">All customers (no segment value has enough '
                      "journeys to offer) </span>")
    picker = Safe(
        f'<p class="picker"><label for="{PERIOD_ID}"><strong>Period: </strong></label>'
        f'<select id="{PERIOD_ID}">{period_opts}</select> {seg_select}'
        f'<span class="muted">({esc(what)})</span></p>')
    blob = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    blob = blob.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Safe(picker + body +
                f'<script type="application/json" id="{DATA_ID}">{blob}</script>' + SCRIPT)


SCRIPT = Safe(f"""
<script>
(function () {{
  var data = JSON.parse(document.getElementById('{DATA_ID}').textContent);
  var period = document.getElementById('{PERIOD_ID}');
  var segment = document.getElementById('{SEGMENT_ID}');
  function apply(save) {{
    var scope = data[period.value + '|' + segment.value];
    if (!scope) return;
    document.querySelectorAll('[data-slot]').forEach(function (el) {{
      var html = scope.html[el.getAttribute('data-slot')];
      if (html !== undefined) el.innerHTML = html;
    }});
    Object.keys(scope.figs).forEach(function (id) {{
      var div = document.getElementById(id);
      if (!div || !window.Plotly) return;
      var box = div.closest('.figure') || div, traces = scope.figs[id];
      box.hidden = !traces;
      if (traces) Plotly.react(div, traces, div.layout).then(function () {{
        Plotly.Plots.resize(div);
      }});
    }});
    if (save) {{
      try {{
        sessionStorage.setItem('{STORAGE_KEY}', JSON.stringify(
          {{period: period.value, segment: segment.options[segment.selectedIndex].text}}));
      }} catch (e) {{ /* storage off: the choice lasts for this page */ }}
    }}
  }}
  period.addEventListener('change', function () {{ apply(true); }});
  segment.addEventListener('change', function () {{ apply(true); }});
  window.addEventListener('load', function () {{
    var saved = null;
    try {{ saved = JSON.parse(sessionStorage.getItem('{STORAGE_KEY}') || 'null'); }}
    catch (e) {{ saved = null; }}
    if (!saved) return;
    var changed = false;
    if ([].some.call(period.options, function (o) {{ return o.value === saved.period; }})) {{
      changed = period.value !== saved.period;
      period.value = saved.period;
    }}
    [].forEach.call(segment.options, function (o) {{
      if (o.text === saved.segment && segment.value !== o.value) {{
        segment.value = o.value;
        changed = true;
      }}
    }});
    if (changed) apply(false);
  }});
}})();
</script>
""")
