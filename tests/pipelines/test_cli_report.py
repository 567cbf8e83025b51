"""`journeys report` on a tiny hand-built warehouse: the table, the JSON, a missing warehouse."""

from __future__ import annotations

import json

import pytest

from pipelines.cli import main
from tests.conftest import TinyProject
from transforms.warehouse import connect


def build(tiny: TinyProject) -> None:
    with connect(tiny.warehouse) as con:
        con.execute("""
            create table ingest_reconciliation (source varchar, partition_date date,
                rows_read bigint, rows_loaded bigint, rows_quarantined bigint,
                rows_duplicate bigint, clock_skew_corrected bigint)""")
        con.execute("insert into ingest_reconciliation values "
                    "('bookings', '2026-10-01', 3, 2, 1, 0, 0)")
        con.execute("create table events (event_id varchar, customer_id varchar, "
                    "event_date date)")
        con.execute("insert into events values ('b1', 'c1', '2026-10-01'), "
                    "('b2', 'c2', '2026-10-01'), ('b3', 'c1', '2026-10-02')")


def report(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(["report", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json(tiny: TinyProject, capsys) -> None:
    build(tiny)
    code, out, err = report(capsys, "--config", str(tiny.config), "--format", "json")
    assert (code, err) == (0, "")
    figures = json.loads(out)
    assert figures["sources"] == {"bookings": {"read": 3, "loaded": 2, "quarantined": 1,
                                               "duplicates": 0, "rejected": 0}}
    assert (figures["events"], figures["customers"]) == (3, 2)
    assert (figures["data_start"], figures["data_end"]) == ("2026-10-01", "2026-10-02")
    # no journeys or purchases were built: null, not an error
    for key in ("stages", "purchasers", "repeat_purchasers", "revenue"):
        assert figures[key] is None


def test_table(tiny: TinyProject, capsys) -> None:
    build(tiny)
    code, out, err = report(capsys, "--config", str(tiny.config))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"warehouse: {tiny.warehouse}"
    assert "bookings             3             2             1             0             0" \
        in lines
    assert "purchasers         not available" in lines
    assert "stages: not available" in lines


def test_missing_warehouse_is_one_line(tiny: TinyProject, capsys) -> None:
    code, out, err = report(capsys, "--config", str(tiny.config))
    assert (code, out) == (2, "")
    assert err.strip() == (f"journeys report: error: no warehouse at {tiny.warehouse}: "
                           "run `journeys run` first")
    assert not tiny.warehouse.exists()


def test_bad_format_is_refused(tiny: TinyProject, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["report", "--config", str(tiny.config), "--format", "xml"])
    assert exc.value.code == 2
    assert "invalid choice: 'xml'" in capsys.readouterr().err
