"""Small SQL helpers shared by the transforms: loading the static SQL files, named parameters,
quoting identifiers and reading event files.

Static statements live in transforms/sql/<table>.sql, one statement per file named for the table
it builds; `sql_file` loads them. Event data is untrusted: values reach SQL only as DuckDB named
parameters (`$name`, from a dict or `Params`), names only through `ident`.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from transforms.errors import UserError

SQL_DIR = Path(__file__).parent / "sql"
_COMPRESSION_SUFFIXES = (".gz", ".zst")
_READERS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
}


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


def file_kind(path: str | Path) -> str:
    """'csv', 'parquet' or 'json' from the file name (a trailing .gz/.zst is looked through)."""
    name = Path(path).name.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    kind = _READERS.get(Path(name).suffix)
    if kind is None:
        raise UserError(
            f"cannot read {path}: unknown file type; use .csv, .tsv, .parquet or "
            ".jsonl/.ndjson/.json (JSON lines), optionally .gz/.zst compressed"
        )
    return kind


def read_events_file(con: duckdb.DuckDBPyConnection, path: str | Path) -> duckdb.DuckDBPyRelation:
    """A relation over the events in `path`, read by its extension.

    CSV is read with every column as text (the sniffer can mistype ids or mixed-offset timestamps
    on a sample of rows); callers cast what they need. Parquet keeps its own types; JSON lines
    are typed by DuckDB's detection. A missing file, an unknown extension or an unreadable file
    raises `UserError`.
    """
    path = Path(path)
    kind = file_kind(path)
    if not path.is_file():
        raise UserError(f"cannot read {path}: no such file; check the path")
    src = literal(str(path))
    if kind == "csv":
        delim = "\\t" if ".tsv" in path.name.lower() else ","
        sql = f"select * from read_csv({src}, header = true, all_varchar = true, delim = '{delim}')"
    elif kind == "parquet":
        sql = f"select * from read_parquet({src})"
    else:
        sql = f"select * from read_json({src}, format = 'newline_delimited')"
    try:
        rel = con.sql(sql)
        rel.columns  # noqa: B018 - binding reads the header/metadata, so bad files fail here
    except duckdb.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot read {path} as {kind}: {first_line}") from None
    return rel
