"""The suite's Parquet input (issue 13, for 100M events): the generated exports converted to
Parquet hold the same records, and the product ingests them with the same row counts and the
same loaded rows as the text files; the floor reads them. No timing assertions.

Expected values: the generator's own count of the lines it wrote (ground_truth.json), and the
product's load of the text files (an independent reader: JSON lines and CSV, not Parquet)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from bench import suite
from sample.generator import generate
from transforms import ingest
from transforms.sources import load_config

CUSTOMERS, DAYS = 1500, 3


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("bench_parquet")
    raw = root / "raw"
    generate(CUSTOMERS, DAYS, suite.SEED, raw)
    (raw / "bench.json").write_text(json.dumps(
        {"customers": CUSTOMERS, "days": DAYS, "seed": suite.SEED, "start": None}))
    rows = suite.to_parquet(root, raw, root / "raw-parquet", drop_text=False)
    return {"root": root, "raw": raw, "parquet": root / "raw-parquet", "rows": rows,
            "lines": json.loads((raw / "ground_truth.json").read_text())["lines"]}


def _load(config: Path) -> dict[str, tuple]:
    """source -> (read, loaded, quarantined, duplicates, loaded rows without file and line)."""
    cfg = load_config(config)
    first, last = cfg.data_range()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    out = {}
    for name, source in cfg.sources.items():
        stats = ingest.load_range(con, source, first, last)
        assert not ingest.reconciliation_problems(con, source)
        assert not ingest.rejected_files(con, source)
        loaded = con.execute(f"select * exclude (source_file, source_line, loaded_at) "
                             f"from raw_{name} order by all").fetchall()
        out[name] = (sum(s.rows_read for s in stats), sum(s.rows_loaded for s in stats),
                     sum(s.rows_quarantined for s in stats),
                     sum(s.rows_duplicate for s in stats), loaded)
    con.close()
    return out


def test_parquet_files_hold_every_record(data: dict) -> None:
    # one Parquet file per export file, as many rows as the generator wrote lines (dirt too)
    assert data["rows"] == data["lines"]["total_by_source"]
    con = duckdb.connect()
    for source, by_day in data["lines"]["by_file"].items():
        for day, lines in by_day.items():
            path = data["parquet"] / source / f"{day}.parquet"
            assert con.execute("select count(*) from read_parquet(?)",
                               [str(path)]).fetchone() == (lines,)
    con.close()
    # the text files stay unless asked to go; a second call reuses the conversion
    assert (data["raw"] / "clickstream" / "2026-10-01.jsonl").exists()
    assert suite.to_parquet(data["root"], data["raw"], data["parquet"], drop_text=False) is None


def test_product_ingests_parquet_like_the_text_files(data: dict) -> None:
    text = _load(suite.write_config(data["root"], data["raw"], "text"))
    config = suite.write_config(data["root"], data["parquet"], "parquet")
    assert {s.format for s in load_config(config).sources.values()} == {"parquet"}
    parquet = _load(config)
    assert set(parquet) == {"clickstream", "bookings", "payments"}
    for name in parquet:
        read, loaded, quarantined, duplicates, rows = parquet[name]
        assert (read, loaded, quarantined, duplicates) == text[name][:4], name
        assert read == data["lines"]["total_by_source"][name]
        assert loaded > 0 and quarantined > 0 and duplicates > 0
        assert rows == text[name][4], name  # the same loaded rows, value for value


def test_floor_reads_the_parquet_files(data: dict) -> None:
    out = suite.worker_floor(data["parquet"], data["root"] / "floor.duckdb", "parquet")
    assert out["rows"] == sum(data["lines"]["total_by_source"].values())


def test_parquet_is_the_default_from_100m_events() -> None:
    assert suite.input_format(suite.parse_size("100m")) == "parquet"
    assert suite.input_format(suite.parse_size("10m")) == "text"
    assert suite.input_format(suite.parse_size("1m"), "parquet") == "parquet"
    assert suite.input_format(suite.parse_size("100m"), "text") == "text"
