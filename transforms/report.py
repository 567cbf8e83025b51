"""The headline figures of a warehouse (`journeys report`), read from the tables already built.

`report(con)` returns one dict; `render_table(figures)` its text form. Each figure reads one
table, and a warehouse built from a source set that lacks that table (or column) gets `None`
for the figure (the text form says "not available"), never an error:

- `sources`: per source of `ingest_reconciliation`, over all its partitions: `read`, `loaded`,
  `quarantined` (rejected rows) and `duplicates`, so read = loaded + quarantined + duplicates;
  `rejected` = rows in export files refused as a whole (`rejected_files.rows_read` summed; 0
  when that table is not there; a source with rejected files only has 0 for every other
  figure).
- `events`: rows of `events`; `customers`: distinct non-null `customer_id` of `events`
  (stitched customers, anonymous `anon:` ones included).
- `stages`: for every stage, in journey order, the customers whose journey reached it
  (distinct `customer_id` of `journey_stages`, over ALL journeys, complete or not, implied
  optional stages included). The order is the `stages` setting of `run_settings`
  (`transforms.settings.read_settings`), with 0 for a stage nobody reached; without that
  setting, the stages of `journey_stages` by `stage_index`.
- `purchasers`: distinct customers of `purchases`; `repeat_purchasers`: those with a purchase
  whose `purchase_number` >= 2; `revenue`: sum of `purchases.amount` (a float), None when no
  purchase has an amount (or there is no `amount` column); `currency` from `run_settings`.
- `data_start`, `data_end`: the first and last `event_date` of `events` (`datetime.date`).
"""

from __future__ import annotations

import datetime as dt

import duckdb

from transforms.settings import read_settings
from transforms.tables import list_tables, table_columns

NOT_AVAILABLE = "not available"
SOURCE_FIGURES = ("read", "loaded", "quarantined", "duplicates", "rejected")


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """Tables and views of the current schema, with their column names."""
    return {t: table_columns(con, t) for t in list_tables(con)}


def _sources(con: duckdb.DuckDBPyConnection, cols: dict[str, set[str]]) -> dict | None:
    if "ingest_reconciliation" not in cols:
        return None
    out: dict[str, dict[str, int]] = {}
    for name, read, loaded, quarantined, duplicates in con.execute("""
            select source, coalesce(sum(rows_read), 0), coalesce(sum(rows_loaded), 0),
                   coalesce(sum(rows_quarantined), 0), coalesce(sum(rows_duplicate), 0)
            from ingest_reconciliation group by source order by source""").fetchall():
        out[name] = {"read": int(read), "loaded": int(loaded), "quarantined": int(quarantined),
                     "duplicates": int(duplicates), "rejected": 0}
    if {"source", "rows_read"} <= cols.get("rejected_files", set()):
        for name, rows in con.execute(
                "select source, coalesce(sum(rows_read), 0) from rejected_files "
                "group by source order by source").fetchall():
            entry = out.setdefault(name, dict.fromkeys(SOURCE_FIGURES, 0))
            entry["rejected"] = int(rows)
    return out


def _stages(con: duckdb.DuckDBPyConnection, cols: dict[str, set[str]]) -> list[dict] | None:
    if not {"customer_id", "stage", "stage_index"} <= cols.get("journey_stages", set()):
        return None
    counts = con.execute("""
        select stage, min(stage_index) as stage_index, count(distinct customer_id)
        from journey_stages group by stage order by stage_index, stage""").fetchall()
    reached = {stage: int(n) for stage, _, n in counts}
    order: list[str] = []
    if {"key", "value", "value_type"} <= cols.get("run_settings", set()):
        configured = read_settings(con).get("stages")
        if isinstance(configured, list):
            order = [str(s) for s in configured]
    order += [stage for stage, _, _ in counts if stage not in order]
    return [{"name": stage, "customers": reached.get(stage, 0)} for stage in order]


def _events(con: duckdb.DuckDBPyConnection, cols: dict[str, set[str]]) -> dict:
    have = cols.get("events")
    out: dict[str, object] = dict.fromkeys(("events", "customers", "data_start", "data_end"))
    if have is None:
        return out
    out["events"] = int(con.execute("select count(*) from events").fetchone()[0])
    if "customer_id" in have:
        out["customers"] = int(con.execute(
            "select count(distinct customer_id) from events").fetchone()[0])
    if "event_date" in have:
        start, end = con.execute(
            "select min(event_date)::DATE, max(event_date)::DATE from events").fetchone()
        out["data_start"], out["data_end"] = start, end
    return out


def _purchases(con: duckdb.DuckDBPyConnection, cols: dict[str, set[str]]) -> dict:
    have = cols.get("purchases", set())
    out: dict[str, object] = dict.fromkeys(("purchasers", "repeat_purchasers", "revenue"))
    if "customer_id" not in have:
        return out
    out["purchasers"] = int(con.execute(
        "select count(distinct customer_id) from purchases").fetchone()[0])
    if "purchase_number" in have:
        out["repeat_purchasers"] = int(con.execute(
            "select count(distinct customer_id) from purchases where purchase_number >= 2"
        ).fetchone()[0])
    if "amount" in have:
        revenue = con.execute("select sum(amount) from purchases").fetchone()[0]
        out["revenue"] = None if revenue is None else float(revenue)
    return out


def report(con: duckdb.DuckDBPyConnection) -> dict:
    """The headline figures of the warehouse on `con` (see the module docstring)."""
    cols = _columns(con)
    currency = None
    if {"key", "value", "value_type"} <= cols.get("run_settings", set()):
        currency = read_settings(con).get("currency")
    return {
        "sources": _sources(con, cols),
        **_events(con, cols),
        "stages": _stages(con, cols),
        **_purchases(con, cols),
        "currency": currency,
    }


def _num(value: object) -> str:
    if value is None:
        return NOT_AVAILABLE
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}"


def _day(value: object) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def render_table(figures: dict) -> str:
    """The figures of `report` as an aligned text table ("not available" for a missing one)."""
    lines: list[str] = []
    sources = figures.get("sources")
    if sources is None:
        lines.append(f"sources: {NOT_AVAILABLE}")
    elif not sources:
        lines.append("sources: none loaded")
    else:
        width = max(len("source"), *(len(name) for name in sources))
        lines.append(f"{'source':<{width}}" + "".join(f"  {h:>12}" for h in SOURCE_FIGURES))
        for name, row in sources.items():
            lines.append(f"{name:<{width}}"
                         + "".join(f"  {row[h]:>12,}" for h in SOURCE_FIGURES))
    lines.append("")
    start, end = figures.get("data_start"), figures.get("data_end")
    currency = figures.get("currency") or ""
    # (label, number or None, text after it); numbers right-aligned in one column
    rows = [("events", figures.get("events"), ""),
            ("customers", figures.get("customers"), ""),
            ("data", None, NOT_AVAILABLE if start is None else f"{_day(start)} … {_day(end)}"),
            ("purchasers", figures.get("purchasers"), ""),
            ("repeat purchasers", figures.get("repeat_purchasers"), ""),
            ("revenue", figures.get("revenue"), currency)]
    label = max(len(k) for k, _, _ in rows)
    width = max((len(_num(n)) for _, n, _ in rows if n is not None), default=0)
    for k, n, text in rows:
        if n is None:
            value = text if k == "data" else NOT_AVAILABLE
        else:
            value = f"{_num(n):>{width}}" + (f" {text}" if text else "")
        lines.append(f"{k:<{label}}  {value}")
    lines.append("")
    stages = figures.get("stages")
    if stages is None:
        lines.append(f"stages: {NOT_AVAILABLE}")
    elif not stages:
        lines.append("stages: none")
    else:
        width = max(len("stage"), *(len(s["name"]) for s in stages))
        lines.append(f"{'stage':<{width}}  {'customers':>12}")
        lines += [f"{s['name']:<{width}}  {s['customers']:>12,}" for s in stages]
    return "\n".join(lines)
