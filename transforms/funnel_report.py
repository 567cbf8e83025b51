"""Reporting on a funnel: the per-step figures of a `funnel_actors` result, and their text form.

Per step k, over the actors of the result (optionally only complete ones, optionally per
breakdown value):

- ``count`` n_k: actors whose counted attempt reached at least step k (cumulative);
- ``conversion`` n_k / n_1 (the `overall_conversion` macro);
- ``step_conversion`` n_k / n_(k-1) (the `step_conversion` macro);
- ``dropout_rate`` 1 - n_k / n_(k-1) (the `dropout_rate` macro);
- ``dropoff_count`` n_(k-1) - n_k;
- seconds to convert from step k-1 to step k over the actors reaching k: ``median``, ``p75``,
  ``p90`` (interpolated quantiles, `quantile_cont`) and ``mean``.

The rates are not written here: they are the definition macros of transforms/sql/definitions.sql
(created by `transforms.definitions.create_macros`), evaluated by DuckDB. Step 1 is measured
against itself (n_0 = n_1), so it has conversion 1.0, step_conversion 1.0, dropout 0.0, dropoff 0
and null times; a rate whose denominator is 0 is null.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import duckdb

from transforms.definitions import create_macros
from transforms.sqlutil import ident

if TYPE_CHECKING:
    from transforms.funnel import FunnelResult

# the definition macros the figures need
_MACROS = ("overall_conversion", "step_conversion", "dropout_rate")


def step_stats(con: duckdb.DuckDBPyConnection, actors: str | duckdb.DuckDBPyRelation,
               steps: Sequence[str], *, complete_only: bool = False) -> list[dict[str, Any]]:
    """The per-step figures (see the module docstring) of a `funnel_actors` result: one dict per
    step, in step order, with keys step, name, count, conversion, step_conversion, dropout_rate,
    dropoff_count, median/p75/p90/mean_seconds_to_convert.

    `actors` is a table name or a relation with the columns of `funnel_actors` (furthest_step,
    step_1_ts..step_n_ts, complete); `steps` are the step names, one per step of that result.
    `complete_only` leaves out actors whose window has not fully elapsed. Creates the definition
    macros on `con` if they are missing.
    """
    return _stats(con, actors, steps, where="complete" if complete_only else None,
                  group=None).get(None, [])


def step_stats_by_breakdown(
    con: duckdb.DuckDBPyConnection, actors: str | duckdb.DuckDBPyRelation,
    steps: Sequence[str], *, complete_only: bool = False,
) -> dict[str | None, list[dict[str, Any]]]:
    """`step_stats` per breakdown value: {breakdown_value: [per-step dicts]} over the attributed
    actors of a `funnel_actors` result made with a breakdown (each attributed actor counts under
    exactly one value; unattributed actors are left out). Values with no actor are absent."""
    where = "attributed and complete" if complete_only else "attributed"
    return _stats(con, actors, steps, where=where, group="breakdown_value")


def _stats(con: duckdb.DuckDBPyConnection, actors: str | duckdb.DuckDBPyRelation,
           steps: Sequence[str], *, where: str | None,
           group: str | None) -> dict[Any, list[dict[str, Any]]]:
    _ensure_macros(con)
    names = list(steps)
    n = len(names)
    source = ident(actors) if isinstance(actors, str) else f"({actors.sql_query()}) a"
    agg = [f"count(*) filter (where furthest_step >= {k}) as n{k}" for k in range(1, n + 1)]
    for k in range(2, n + 1):
        d = f"(epoch_us(step_{k}_ts) - epoch_us(step_{k - 1}_ts)) / 1e6"
        agg.append(
            f"quantile_cont({d}, [0.5, 0.75, 0.9]) filter (where furthest_step >= {k}) as q{k}, "
            f"avg({d}) filter (where furthest_step >= {k}) as m{k}"
        )
    # per step: count, conversion, step conversion, dropout, dropoff, quantiles, mean
    figures = []
    for k in range(1, n + 1):
        prev = f"n{max(k - 1, 1)}"  # step 1 is measured against itself
        times = f"q{k}, m{k}" if k > 1 else "null, null"
        figures.append(
            f"n{k}, overall_conversion(n{k}, n1), step_conversion(n{k}, {prev}), "
            f"dropout_rate(n{k}, {prev}), {prev} - n{k}, {times}"
        )
    key = f"{ident(group)} as gkey" if group else "null as gkey"
    rows = con.execute(
        f"with agg as (select {key}, {', '.join(agg)} from {source} "
        f"{'where ' + where if where else ''} {'group by gkey' if group else ''}) "
        f"select gkey, {', '.join(figures)} from agg"
    ).fetchall()
    out: dict[Any, list[dict[str, Any]]] = {}
    width = 7
    for row in rows:
        result = []
        for k in range(1, n + 1):
            count, conv, step_conv, dropout, dropoff, q, mean = \
                row[1 + (k - 1) * width: 1 + k * width]
            q = q or [None, None, None]
            result.append({
                "step": k, "name": names[k - 1], "count": int(count),
                "conversion": conv, "step_conversion": step_conv, "dropout_rate": dropout,
                "dropoff_count": int(dropoff),
                "median_seconds_to_convert": q[0], "p75_seconds_to_convert": q[1],
                "p90_seconds_to_convert": q[2], "mean_seconds_to_convert": mean,
            })
        out[row[0]] = result
    return out


def _ensure_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create the definition macros on `con` unless they are there (a warehouse connection has
    them already; a plain `duckdb.connect()` does not). Another engine needs none: its dialect
    inlines them (transforms/spark_sql.py)."""
    if not isinstance(con, duckdb.DuckDBPyConnection) and getattr(con, "name", "duckdb") \
            != "duckdb":
        return
    have = con.execute(
        "select count(distinct function_name) from duckdb_functions() "
        "where function_type = 'macro' and function_name in (?, ?, ?)", list(_MACROS)
    ).fetchall()[0][0]
    if have < len(_MACROS):
        create_macros(con)


# --------------------------------------------------------------------------------------------
# text


def render_result(result: FunnelResult) -> str:
    """A plain-text table per funnel (and per breakdown value) for the terminal."""
    parts = [render_steps(result.steps)]
    for row in result.breakdown or []:
        parts.append(f"\n{result.options.get('breakdown')} = {row['value']}")
        parts.append(render_steps(row["steps"]))
    if result.breakdown is not None and result.unattributed_actors:
        parts.append(f"\n{result.unattributed_actors} actor(s) not attributed "
                     f"(did not reach the attribution step)")
    if result.incomplete_actors:
        parts.append(f"\n{result.incomplete_actors} of {result.actors} actor(s) entered less "
                     "than one window before the end of the data (incomplete)")
    return "\n".join(parts)


def render_steps(steps: list[dict[str, Any]]) -> str:
    """One aligned text table of per-step figures (as from `step_stats`): step, name, count,
    conversion, step conversion, dropout, dropped and median time to convert."""
    header = ["#", "step", "count", "conversion", "step conv.", "dropout", "dropped",
              "median time"]
    rows = [[str(s["step"]), str(s["name"]), str(s["count"]), _fmt_ratio(s["conversion"]),
             _fmt_ratio(s["step_conversion"]), _fmt_ratio(s["dropout_rate"]),
             str(s["dropoff_count"]), _fmt_seconds(s["median_seconds_to_convert"])]
            for s in steps]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) if i == 1 else h.rjust(w)
                       for i, (h, w) in enumerate(zip(header, widths, strict=True)))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i == 1 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return "\n".join(lines)


def _fmt_seconds(value: float | None) -> str:
    """A duration in the largest unit it reaches: '2.5d', '1.0h', '3.0m', '45s'; None is '-'."""
    if value is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}s"


def _fmt_ratio(value: float | None) -> str:
    """A ratio as a percentage with one decimal ('12.5%'); None is '-'."""
    return "-" if value is None else f"{100 * value:.1f}%"
