"""The definitions of the rates, once: SQL macros created on every warehouse connection.

`transforms/sql/definitions.sql` holds them (step_conversion, dropout_rate, overall_conversion,
failure_rate, repeat_rate); `transforms.warehouse.connect` creates them, so every table and every
ad-hoc query calls the same expression. Python code that needs a rate asks DuckDB for it through
`rate()` rather than writing the arithmetic again.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

SQL = Path(__file__).parent / "sql" / "definitions.sql"
MACROS = ("step_conversion", "dropout_rate", "overall_conversion", "failure_rate", "repeat_rate")


def create_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create the definition macros on `con` (temporary: nothing is written to the file)."""
    con.execute(SQL.read_text(encoding="utf-8"))


def rate(con: duckdb.DuckDBPyConnection, macro: str, numerator: float | None,
         denominator: float | None) -> float | None:
    """The value of one definition macro for two numbers (None when undefined)."""
    if macro not in MACROS:
        raise ValueError(f"unknown definition {macro!r}; known: {', '.join(MACROS)}")
    row = con.execute(f"select {macro}(?::double, ?::double)", [numerator, denominator]).fetchone()
    return None if row[0] is None else float(row[0])
