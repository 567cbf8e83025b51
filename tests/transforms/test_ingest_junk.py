"""Random junk lines among valid records (issue 12): ingestion never crashes, and every physical
record is loaded or quarantined with a reason — counted independently from the file's bytes."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import BOOKING_HEADER, TinyProject, click
from transforms import ingest
from transforms.sources import load_config

DAY = dt.date(2026, 10, 2)
# no control characters, no line or paragraph separators, no surrogates (not encodable)
TEXT = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))
JUNK_LINE = st.text(TEXT, min_size=1, max_size=120)
CSV_JUNK_LINE = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"),
                                      blacklist_characters='"'), min_size=1, max_size=120)
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def _records(lines: list[str]) -> int:
    """Physical records: lines holding anything but ASCII spaces and tabs."""
    return sum(1 for line in lines if line.strip(" \t"))


def _load(root: Path, source: str) -> duckdb.DuckDBPyConnection:
    cfg = load_config(root / "sources.yaml")
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    ingest.load_range(con, cfg.sources[source], DAY - dt.timedelta(days=1),
                      DAY + dt.timedelta(days=1))
    return con


def _accounted(con: duckdb.DuckDBPyConnection, source: str) -> tuple[int, int, int]:
    loaded = con.execute(f"select count(*) from raw_{source}").fetchone()[0]
    quarantined, empty_reason = con.execute(
        "select count(*), count(*) filter (where coalesce(reason, '') = '') from quarantine "
        "where source = ?", [source]).fetchone()
    return loaded, quarantined, empty_reason


@SETTINGS
@given(junk=st.lists(JUNK_LINE, min_size=1, max_size=8), at=st.integers(0, 3))
def test_junk_json_lines_are_quarantined_and_the_rest_loads(junk: list[str], at: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tiny = TinyProject(root)
        valid = [json.dumps(click(f"m{i}", "a1", "app_opened", "2026-10-02T10:00:00Z"))
                 for i in range(3)]
        lines = valid[:at] + junk + valid[at:]
        (root / "raw" / "clickstream" / "2026-10-02.jsonl").write_bytes(
            "".join(line + "\n" for line in lines).encode("utf-8"))
        con = _load(tiny.root, "clickstream")
        loaded, quarantined, empty_reason = _accounted(con, "clickstream")
        assert loaded + quarantined == _records(lines)
        assert loaded >= 3  # every valid record (junk may itself be a valid JSON object)
        assert empty_reason == 0


@SETTINGS
@given(junk=st.lists(CSV_JUNK_LINE, min_size=1, max_size=8), at=st.integers(0, 2))
def test_junk_csv_lines_are_quarantined_and_the_rest_loads(junk: list[str], at: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tiny = TinyProject(root)
        valid = [f"b{i},c1,s1,Berlin,hair,2026-10-05T10:00:00,10,EUR,created,,,,"
                 f"2026-10-02T10:0{i}:00" for i in range(2)]
        lines = valid[:at] + junk + valid[at:]
        (root / "raw" / "bookings" / "2026-10-02.csv").write_bytes(
            (BOOKING_HEADER + "\n" + "".join(line + "\n" for line in lines)).encode("utf-8"))
        con = _load(tiny.root, "bookings")
        loaded, quarantined, empty_reason = _accounted(con, "bookings")
        assert loaded + quarantined == _records(lines)
        assert loaded >= 2
        assert empty_reason == 0
