"""The Paths page on the tiny warehouse (conftest.py): the step-to-step map drawn by Graphviz as
inline SVG with every number on it, whole path labels, a coloured Sankey and plain words.

Expected numbers come from the warehouse tables through SQL here, never from the page's code.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from pathlib import Path

import duckdb
import graphviz
import pytest

from dashboards import paths
from dashboards.charts import GREY, OKABE_ITO
from dashboards.context import Context
from dashboards.data import Warehouse
from dashboards.layout import PAGES
from dashboards.site import build_site
from tests.dashboards.conftest import EVIL, NOW, tiny_warehouse

JARGON = ("fitness", "conformance", "variant", "dfg", "directly-follows", "token")


@pytest.fixture(scope="module")
def page(warehouse: duckdb.DuckDBPyConnection, tmp_path_factory: pytest.TempPathFactory) -> str:
    site = build_site(warehouse, tmp_path_factory.mktemp("site"), now=NOW)
    return (site.parent / "paths.html").read_text(encoding="utf-8")


def _svg(page: str) -> str:
    found = re.search(r'<div class="figure process-map">(<svg\b.*?</svg>)</div>', page, re.S)
    assert found, "no inline SVG process map"
    return found.group(1)


def _texts(fragment: str) -> list[str]:
    """The text elements of an SVG fragment, unescaped."""
    return [html.unescape(t) for t in re.findall(r"<text\b[^>]*>([^<]*)</text>", fragment)]


def _parts(svg: str, kind: str) -> list[str]:
    """The SVG of each node (`kind` 'node') or edge ('edge') group."""
    return re.split(rf'<g id="{kind}\d+" class="{kind}">', svg)[1:]


def _tooltip(fragment: str) -> str:
    found = re.search(r'xlink:title="([^"]*)"', fragment)
    assert found
    return html.unescape(found.group(1))


def _figure(page: str, div_id: str) -> tuple[list, dict]:
    """The data and layout of a Plotly figure on the page."""
    start = page.index(f'Plotly.newPlot(                        "{div_id}",')
    rest = page[page.index("[", start):]
    decoder = json.JSONDecoder()
    data, end = decoder.raw_decode(rest)
    layout, _ = decoder.raw_decode(rest[end:].lstrip(" ,\n"))
    return data, layout


def _visible(page: str) -> str:
    """What a reader sees without hovering: scripts, tooltips and tags dropped."""
    text = re.sub(r"<script\b.*?</script>", " ", page, flags=re.S)
    text = re.sub(r"<title>.*?</title>", " ", text, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    return re.sub(r"\s+", " ", html.unescape(text))


# --- the process map -------------------------------------------------------------------------

def test_process_map_is_inline_svg_that_scales(page: str) -> None:
    svg = _svg(page)
    tag = re.match(r"<svg\b[^>]*>", svg).group(0)
    assert 'width="100%"' in tag and "viewBox=" in tag
    assert not re.search(r'\b(width|height)="[\d.]+(pt|px)?"', tag)
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page
    # not a Plotly figure: the page counts the four Plotly charts only
    assert 'id="fig-paths-dfg"' not in page
    assert len(re.findall(r'class="plotly-graph-div"', page)) == 4
    assert 'data-figures="4"' in page


def test_every_edge_shows_its_count_and_median(page: str,
                                               warehouse: duckdb.DuckDBPyConnection) -> None:
    svg = _svg(page)
    expected = warehouse.execute(
        "select source, target, count, median_s from dfg_edges").fetchall()
    assert expected
    drawn = {}
    for part in _parts(svg, "edge"):
        tip = _tooltip(part)
        pair, _, rest = tip.partition(":")
        source, _, target = pair.partition(" → ")
        drawn[(source, target)] = (_texts(part), rest)
    assert set(drawn) == {(s, t) for s, t, _, _ in expected}
    for source, target, count, _ in expected:
        texts, tip = drawn[(source, target)]
        assert f"{count:,d}" in texts, (source, target)
        assert f" {count:,d} times" in tip
        assert any(t.startswith("median ") for t in texts)
    # Decision → Purchase: all 14 journeys pay 5 minutes after booking (conftest stories)
    texts, _ = drawn[("Decision", "Purchase")]
    assert texts == ["14", "median 5 min"]
    # every count appears as text exactly as often as an edge has it
    counts = Counter(f"{c:,d}" for _, _, c, _ in expected)
    seen = Counter(t for t in _texts(svg) if t in counts)
    assert seen == counts


def _visits(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Visits of each stage: journeys starting there plus every arrow into it."""
    return dict(con.execute("""
        with stage as (select source as s from dfg_edges union select target from dfg_edges
                       union select activity from dfg_endpoints),
             arrivals as (select target as s, sum(count) as n from dfg_edges group by 1),
             starts as (select activity as s, sum(count) as n from dfg_endpoints
                        where kind = 'start' group by 1)
        select stage.s, coalesce(arrivals.n, 0) + coalesce(starts.n, 0)
        from stage left join arrivals using (s) left join starts using (s)""").fetchall())


def test_every_node_shows_its_name_and_visits(page: str,
                                              warehouse: duckdb.DuckDBPyConnection) -> None:
    expected = _visits(warehouse)
    ends = dict(warehouse.execute(
        "select activity, count from dfg_endpoints where kind = 'end'").fetchall())
    nodes = {}
    for part in _parts(_svg(page), "node"):
        texts = _texts(part)
        nodes[texts[0]] = texts
    assert set(nodes) == set(expected)
    for stage, visits in expected.items():
        assert f"{visits:,d} visits" in nodes[stage], stage
        if stage in ends:
            assert f"{ends[stage]:,d} end here" in " ".join(nodes[stage]), stage
    # every one of the 14 journeys starts in Discovery: the first box, its name first
    assert nodes["Discovery"][:2] == ["Discovery", f"{expected['Discovery']:,d} visits"]
    assert expected["Discovery"] >= 14


def _hostile_context() -> Context:
    con = duckdb.connect()
    con.execute("create table dfg_edges (source varchar, target varchar, count bigint, "
                "mean_s double, median_s double, p90_s double)")
    con.execute("create table dfg_endpoints (activity varchar, kind varchar, count bigint)")
    img = '"><img src=x onerror=alert(2)>'
    con.executemany("insert into dfg_edges values (?, ?, ?, 60, 60, 60)", [
        (EVIL, "A & B", 7), ("A & B", "back\\N", 5), ("back\\N", img, 3), (img, EVIL, 2)])
    con.executemany("insert into dfg_endpoints values (?, ?, ?)", [
        (EVIL, "start", 7), (img, "end", 1)])
    return Context.read(Warehouse(con), period_days=None, built_at=NOW)


def test_hostile_stage_names_are_escaped_in_the_svg() -> None:
    page = paths.render(_hostile_context())
    body = "".join(page.body)
    svg = _svg(body)
    assert "<script" not in body.lower() and "<img" not in body.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    names = {_texts(part)[0] for part in _parts(svg, "node")}
    # shown as written: no HTML, and Graphviz's \N (the node's id) is not expanded
    assert names == {EVIL, "A & B", "back\\N", '"><img src=x onerror=alert(2)>'}
    assert page.figures == 0  # the map is SVG; the other tables are missing


def _plotly_texts(body: str, div_id: str) -> list[str]:
    data, _ = _figure(body, div_id)
    return [t for trace in data for t in (trace.get("text") or []) if isinstance(t, str)]


@pytest.mark.parametrize("how", ["no dot on PATH", "dot not runnable"])
def test_without_graphviz_a_plotly_map_with_numbers(
        warehouse: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    if how == "no dot on PATH":
        monkeypatch.setattr(paths.shutil, "which", lambda name: None)
    else:
        def fail(*args: object, **kwargs: object) -> str:
            raise graphviz.ExecutableNotFound(("dot",))
        monkeypatch.setattr(graphviz.Digraph, "pipe", fail)
    ctx = Context.read(Warehouse(warehouse), period_days=None, built_at=NOW)
    page = paths.render(ctx)
    body = "".join(page.body)
    assert "<svg" not in body
    assert "apt-get install graphviz" in body
    assert page.figures == 5
    texts = _plotly_texts(body, "fig-paths-dfg")
    for (count,) in warehouse.execute("select count from dfg_edges").fetchall():
        assert f"<b>{count:,d}</b>" in texts
    for stage, visits in _visits(warehouse).items():
        assert f"<b>{stage}</b><br>{visits:,d} visits" in texts


# --- paths, the Sankey, plain words ----------------------------------------------------------

def test_top_paths_chart_shows_whole_paths(page: str,
                                           warehouse: duckdb.DuckDBPyConnection) -> None:
    expected = [p for (p,) in warehouse.execute(
        "select path from variants order by journeys desc, path limit 15").fetchall()]
    _, layout = _figure(page, "fig-paths-top-paths")
    labels = layout["yaxis"]["ticktext"]
    assert len(labels) == len(expected)
    for i, (label, path) in enumerate(zip(labels, expected, strict=True)):
        whole = re.sub(r"\s+", " ", html.unescape(label.replace("<br>", " ")))
        assert whole == f"#{i + 1} {path}"
        assert "…" not in label
    longest = max(labels, key=len)  # 8 stages: wrapped onto two lines, not cut
    assert "<br>" in longest and "Repeat" in longest


def test_sankey_links_take_the_colour_of_their_source_stage(page: str) -> None:
    data, _ = _figure(page, "fig-paths-sankey")
    [sankey] = data
    palette = {tuple(int(c[i:i + 2], 16) for i in (1, 3, 5))
               for c in [*OKABE_ITO.values(), GREY]}
    colours = sankey["link"]["color"]
    rgba = [re.fullmatch(r"rgba\((\d+),(\d+),(\d+),([\d.]+)\)", c) for c in colours]
    assert all(rgba)
    assert {tuple(int(m.group(i)) for i in (1, 2, 3)) for m in rgba} <= palette
    assert all(0 < float(m.group(4)) < 1 for m in rgba)
    assert len(set(colours)) > 1
    node_colours = sankey["node"]["color"]
    for source, colour in zip(sankey["link"]["source"], colours, strict=True):
        assert colour.startswith("rgba(" + ",".join(
            str(int(node_colours[source][i:i + 2], 16)) for i in (1, 3, 5)) + ",")
    labels = [label for label in sankey["node"]["label"] if label]
    assert labels and all(re.search(r" [\d,]+$", label) for label in labels)
    assert "Discovery 14" in labels  # every journey starts in Discovery


def test_plain_words_with_the_jargon_in_tooltips(page: str,
                                                 warehouse: duckdb.DuckDBPyConnection) -> None:
    visible = _visible(page)
    for word in JARGON:
        assert word not in visible.lower(), word
    scripts = " ".join(re.findall(r"<script\b.*?</script>", page, flags=re.S)).lower()
    for word in JARGON:  # nor in the charts' titles and labels
        assert word not in scripts, word
    fitting = warehouse.execute("select fitting_share from conformance_overall").fetchone()[0]
    assert f"Journeys in the expected order {fitting * 100:.1f}%" in visible
    assert "How closely journeys follow the expected order" in visible
    assert "step-to-step map" in visible
    titles = [html.unescape(t) for t in re.findall(r'<abbr title="([^"]*)">', page)]
    assert any("fitness" in t for t in titles)
    assert any("directly-follows graph" in t for t in titles)
    assert any("variant" in t for t in titles)


def test_missing_tables_say_so_in_plain_words(tmp_path: Path) -> None:
    con = tiny_warehouse(tmp_path, mining=False)
    page = paths.render(Context.read(Warehouse(con), period_days=None, built_at=NOW))
    visible = _visible("".join(page.body))
    assert "Not available: The step-to-step map needs table dfg_edges" in visible
    words = visible.lower()
    for name in next(spec for spec in PAGES if spec.slug == "paths").reads:
        words = words.replace(name, " ")  # table names are named as they are
    for word in ("fitness", "conformance", "variant", "dfg"):
        assert word not in words, word
