"""docs/TABLES.md documents every table of a sample run: its grain and each of its columns."""

from __future__ import annotations

import re

import duckdb
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

DOC = REPO / "docs" / "TABLES.md"


def _documented() -> dict[str, str]:
    """{table: its section} for every `### \\`table\\` — one row per ...` heading."""
    text = DOC.read_text(encoding="utf-8")
    parts = re.split(r"(?m)^### ", text)[1:]
    out = {}
    for part in parts:
        m = re.match(r"`([a-z_<>]+)`[^\n]*", part)
        if m:
            out[m.group(1)] = part
    return out


def test_every_table_and_column_of_a_sample_run_is_documented(sample_run) -> None:  # noqa: ANN001
    assert sample_run.returncode == 0, sample_run.stderr
    docs = _documented()
    con = duckdb.connect(str(sample_run.warehouse), read_only=True)
    tables = [r[0] for r in con.execute(
        "select table_name from information_schema.tables where table_schema = 'main'"
    ).fetchall()]
    problems = []
    for table in sorted(tables):
        key = "raw_<source>" if table.startswith("raw_") else table
        section = docs.get(key)
        if section is None:
            problems.append(f"{table}: no `### `{key}` — one row per ...` section")
            continue
        if "one row per" not in section.splitlines()[0]:
            problems.append(f"{table}: its heading does not state the grain ('one row per')")
        if key == "raw_<source>":
            continue  # columns come from each source's mapping
        cols = [r[0] for r in con.execute(
            "select column_name from information_schema.columns where table_name = ? "
            "and table_schema = 'main'", [table]).fetchall()]
        for col in cols:
            if not re.search(rf"(?<![A-Za-z0-9_]){re.escape(col)}(?![A-Za-z0-9_])", section):
                problems.append(f"{table}.{col}: not in its section")
    con.close()
    assert not problems, "\n".join(problems)
