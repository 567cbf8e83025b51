"""Small SQL helpers shared by the transforms: loading the static SQL files, named parameters,
quoting identifiers; `read_events_file` delegates to `transforms.readers`.

Static statements live in transforms/sql/<table>.sql, one statement per file named for the table
it builds; `sql_file` loads them. Event data is untrusted: values reach SQL only as DuckDB named
parameters (`$name`, from a dict or `Params`), names only through `ident`.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from transforms.errors import UserError

SQL_DIR = Path(__file__).parent / "sql"


def sql_file(name: str) -> str:
    """The text of transforms/sql/<name>.sql."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


class Params:
    """Named query parameters collected while a statement is assembled (`$p0`, `$p1`, ...):
    the one parameter style of the project's dynamic SQL."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def add(self, value: object) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"${name}"


def ident(name: str) -> str:
    """Return `name` as a double-quoted SQL identifier, safe to splice into a statement."""
    if not isinstance(name, str) or not name:
        raise UserError(f"invalid column or table name {name!r}: give a non-empty name")
    if "\x00" in name:
        raise UserError(f"invalid column or table name {name!r}: names cannot contain NUL")
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """Return `text` as a single-quoted SQL string literal (for table-function arguments that
    cannot be bound as parameters)."""
    if "\x00" in text:
        raise UserError(f"invalid text {text!r}: it contains a NUL character")
    return "'" + text.replace("'", "''") + "'"


def read_events_file(con: duckdb.DuckDBPyConnection, path: str | Path,
                     **options: object) -> duckdb.DuckDBPyRelation:
    """A relation over the events in `path`: `transforms.readers.read_table` (every format it
    reads; text formats give VARCHAR columns, Parquet keeps its types). `options` are
    read_table's (delimiter, header, encoding, columns). A missing file, an unknown extension
    or an unreadable file raises `UserError`."""
    from transforms.readers import read_table  # readers builds on this module

    return read_table(con, path, **options)  # type: ignore[arg-type]
