"""Checksums of every warehouse table, to prove a refactoring changed no number.

`python -m tests.e2e.table_checksums WAREHOUSE > tests/e2e/sample_table_checksums.json` records
them (run on the commit whose tables are the reference); `test_sample_tables_unchanged` compares a
fresh sample run against that file. A checksum is order-insensitive (rows sorted), ignores load
times and folder names of source files, and compares numbers to 10 significant digits, so it
changes only when a value, a row or a column name changes.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import math
import re
import sys
from pathlib import Path

import duckdb

# when a row was loaded is not part of what it says
IGNORED_COLUMNS = {"loaded_at", "quarantined_at", "last_loaded_at"}
_FOLDER = re.compile(r"/(?:[^\s:/'\"]+/)+(?=[^\s:/'\"]+\.(?:jsonl|csv)\b)")


def _norm(value: object) -> object:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | decimal.Decimal):
        x = float(value)
        if math.isnan(x) or math.isinf(x):
            return str(x)
        return float(f"{x:.10g}")
    if isinstance(value, dt.datetime | dt.date | dt.time | dt.timedelta):
        return str(value)
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _norm(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, str):
        # source files, alone or inside a reason ("duplicate of /x/y.csv:2"): where the
        # folder was is not a number
        return _FOLDER.sub("", value)
    return str(value)


def table_checksums(warehouse: Path | str) -> dict[str, dict]:
    """{table: {"columns": [...], "rows": n, "sha256": ...}} for every base table and view."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'main' "
            "order by table_name").fetchall()]
        out = {}
        for t in tables:
            cols = [r[0] for r in con.execute(
                "select column_name from information_schema.columns where table_name = ? "
                "and table_schema = 'main' order by ordinal_position", [t]).fetchall()]
            keep = [c for c in cols if c not in IGNORED_COLUMNS]
            sel = ", ".join('"' + c.replace('"', '""') + '"' for c in keep)
            rows = con.execute(f'select {sel} from "{t}"').fetchall()
            lines = sorted(json.dumps([_norm(v) for v in r], default=str) for r in rows)
            digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
            out[t] = {"columns": keep, "rows": len(rows), "sha256": digest}
        return out
    finally:
        con.close()


if __name__ == "__main__":
    json.dump(table_checksums(sys.argv[1]), sys.stdout, indent=1)
    print()
