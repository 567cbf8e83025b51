"""`journeys report` on a tiny hand-built warehouse: the table, the JSON, a missing warehouse;
and the files a real load rejects as a whole."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipelines.cli import main
from tests.conftest import TinyProject
from transforms import ingest
from transforms.sources import load_config
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


def test_rejected_files_of_a_real_load_are_counted(tiny: TinyProject, capsys) -> None:
    # bookings of 1 Oct: one valid row; a broken link (0 records) and a file without a date
    # whose 2 rows have no valid timestamp (no valid record: rejected with its 2 rows)
    tiny.bookings("2026-10-01", "b1,c1,s1,Berlin,hair,2026-10-05T10:00:00,10,EUR,created,,,,"
                                "2026-10-01T10:00:00")
    (tiny.root / "raw" / "bookings" / "2026-10-02.csv").symlink_to(tiny.root / "gone.csv")
    undated = tiny.bookings("undated", *[f"b{i},c1,s1,Berlin,hair,soon,10,EUR,created,,,,never"
                                         for i in (2, 3)])
    assert undated.name == "undated.csv"
    source = load_config(tiny.config).sources["bookings"]
    with connect(tiny.warehouse) as con:
        ingest.load_range(con, source, dt.date(2026, 10, 1), dt.date(2026, 10, 1))
    code, out, err = report(capsys, "--config", str(tiny.config), "--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out)["sources"] == {"bookings": {
        "read": 1, "loaded": 1, "quarantined": 0, "duplicates": 0, "rejected": 2}}


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
