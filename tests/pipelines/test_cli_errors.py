"""Issue 12, items 8-10: mistakes stop with one plain line (file or option, what is wrong, the
fix) and exit 2, never a traceback; a range without data stops before any work; stopping
`journeys ui` by its PID stops every process it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.cli.run import plain_message
from tests.conftest import REPO, TinyProject, click


def one_line(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "Error:" not in err.split(": error: ", 1)[0]
    return code, lines[0]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


# ------------------------------------------------------------------ item 8: config files

def test_config_that_is_a_folder(tiny: TinyProject, capsys) -> None:
    code, err = one_line(capsys, "run", "--config", str(tiny.root))
    assert (code, err) == (2, f"journeys run: error: {tiny.root}: key '(file)': is a folder, "
                              f"not a config file. Fix: pass --config {tiny.config}")


def test_config_that_is_not_utf8(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "sources.yaml"
    bad.write_bytes(b"warehouse: caf\xe9.duckdb\n")
    code, err = one_line(capsys, "run", "--config", str(bad))
    assert (code, err) == (2, f"journeys run: error: {bad}: key '(file)': is not UTF-8 text "
                              "(byte 0xe9 at line 1). Fix: save sources.yaml as UTF-8, or pass "
                              "--config with the path of your sources.yaml")


def test_journey_map_that_is_a_folder(tiny: TinyProject, capsys) -> None:
    (tiny.root / "maps").mkdir()
    _edit(tiny.config, "journey_map: journey_map.yaml", "journey_map: maps")
    code, err = one_line(capsys, "run", "--config", str(tiny.config))
    assert (code, err) == (2, f"journeys run: error: {tiny.config}: key 'journey_map': "
                              f"{tiny.root / 'maps'} is a folder, not a journey map file. Fix: "
                              "name the YAML file, e.g. `journey_map: journey_map.yaml`")


def test_warehouse_that_is_a_folder(tiny: TinyProject, capsys) -> None:
    tiny.warehouse.mkdir(parents=True)
    code, err = one_line(capsys, "dashboard", "--config", str(tiny.config))
    assert (code, err) == (2, f"journeys dashboard: error: {tiny.config}: key 'warehouse': "
                              f"{tiny.warehouse} is a folder, not a DuckDB file. Fix: name the "
                              "database file, e.g. `warehouse: warehouse/journeys.duckdb`")


def test_warehouse_that_is_not_a_duckdb_file(tiny: TinyProject, capsys) -> None:
    tiny.warehouse.parent.mkdir(parents=True)
    tiny.warehouse.write_text("not a database\n")
    tiny.clicks("2026-10-01", click("m1", "a1", "app_opened", "2026-10-01T10:00:00Z"))
    for command in ("run", "dashboard"):
        code, err = one_line(capsys, command, "--config", str(tiny.config))
        assert code == 2
        assert err == (f"journeys {command}: error: {tiny.config}: key 'warehouse': "
                       f"{tiny.warehouse} exists but is not a DuckDB database. Fix: point "
                       "warehouse at a new file name (it is created) or at the project's "
                       "existing .duckdb file; move the other file away")


def test_dashboard_out_that_is_a_file(tiny: TinyProject, capsys, tmp_path: Path) -> None:
    import duckdb

    tiny.warehouse.parent.mkdir(parents=True)
    duckdb.connect(str(tiny.warehouse)).close()
    out = tmp_path / "site.html"
    out.write_text("x")
    code, err = one_line(capsys, "dashboard", "--config", str(tiny.config), "--out", str(out))
    assert (code, err) == (2, f"journeys dashboard: error: --out {out} is a file, not a folder: "
                              "pass a folder for the site (it is created if missing)")


def test_ui_port_that_is_not_a_number_fails_at_once(capsys, monkeypatch) -> None:
    import subprocess as sp

    monkeypatch.setattr(sp, "Popen", lambda *a, **k: pytest.fail("started the UI"))
    started = time.monotonic()
    code, err = one_line(capsys, "ui", "--port", "abc")
    assert time.monotonic() - started < 5
    assert (code, err) == (2, "journeys ui: error: --port 'abc' is not a port number: pass a "
                              "whole number from 1 to 65535, e.g. --port 3000")


# ------------------------------------------------------------------ item 8: failed steps

def test_a_user_error_quoting_duckdb_loses_the_caret_line() -> None:
    message = ("transforms.errors.UserError: cannot read raw/x.csv: Parser Error: syntax error "
               'at or near "from"\n\nLINE 1: select from\n               ^\n')
    assert plain_message("UserError", message) == ('cannot read raw/x.csv: Parser Error: '
                                                   'syntax error at or near "from"')
    assert plain_message("UserError", "transforms.errors.UserError: \n   ^\n") == "UserError"


# ------------------------------------------------------------------ item 8: validation

def test_stage_name_with_a_single_quote_is_rejected_at_load(tiny: TinyProject, capsys) -> None:
    _edit(tiny.root / "journey_map.yaml", "- name: Discovery", "- name: Kunde's Discovery")
    code, err = one_line(capsys, "run", "--config", str(tiny.config))
    assert (code, err) == (2, f"journeys run: error: {tiny.root / 'journey_map.yaml'}: key "
                              "'stages[0].name': stage name \"Kunde's Discovery\" contains a "
                              "single quote ('), which the process model written by mining "
                              "cannot hold. Fix: rename the stage without it, e.g. write ’ (a "
                              "typographic apostrophe) instead")


def test_stage_named_like_a_journeys_column_is_rejected(tiny: TinyProject, capsys) -> None:
    jm = tiny.root / "journey_map.yaml"
    jm.write_text(jm.read_text().replace("- name: Service\n", "- name: Converted\n")
                  .replace(": Service\n", ": Converted\n"))
    code, err = one_line(capsys, "run", "--config", str(tiny.config))
    assert (code, err) == (2, f"journeys run: error: {jm}: key 'stages[4].name': stage name "
                              "'Converted' is also the name of the journeys column 'converted' "
                              "(names are compared ignoring case), so its journeys_wide column "
                              "would be renamed. Fix: rename the stage, e.g. add a word to it")


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_ranges_must_be_finite(tiny: TinyProject, capsys, value: str) -> None:
    _edit(tiny.config, "rating: {min: 1, max: 5}", f"rating: {{min: 1, max: {value}}}")
    code, err = one_line(capsys, "run", "--config", str(tiny.config))
    shown = {".nan": "nan", ".inf": "inf", "-.inf": "-inf"}[value]
    assert (code, err) == (2, f"journeys run: error: {tiny.config}: key "
                              f"'sources.bookings.ranges.rating.max': {shown} is not a finite "
                              "number. Fix: write a number, or leave max out for no bound")


def test_json_path_ending_in_a_backslash(tiny: TinyProject, capsys) -> None:
    _edit(tiny.config, "anonymous_id: anonymousId", "anonymous_id: anonymousId\\")
    code, err = one_line(capsys, "run", "--config", str(tiny.config))
    assert (code, err) == (2, f"journeys run: error: {tiny.config}: key "
                              "'sources.clickstream.columns.anonymous_id': the JSON path "
                              "'anonymousId\\\\' contains a backslash, which JSON paths read as "
                              "an escape. Fix: remove the backslash (keys with one cannot be "
                              "read)")


# ------------------------------------------------------------------ item 9: no data in range

def test_a_range_without_data_stops_before_any_work(tiny: TinyProject, capsys,
                                                    monkeypatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tiny.root / "dagster_home"))
    tiny.clicks("2026-10-01", click("m1", "a1", "app_opened", "2026-10-01T10:00:00Z"))
    code, err = one_line(capsys, "run", "--config", str(tiny.config), "--start", "2027-01-01",
                         "--end", "2027-01-02")
    assert (code, err) == (2, "journeys run: error: no data in 2027-01-01 … 2027-01-02: the "
                              "exports cover 2026-09-30 … 2026-10-02; pass --start and --end "
                              "within that range (or leave them out)")
    assert not tiny.warehouse.exists()
    assert not (tiny.root / "dagster_home").exists()


# ------------------------------------------------------------------ item 10: stopping the UI

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_ui_by_pid_stops_its_process_group(tiny: TinyProject, sig) -> None:
    tiny.clicks("2026-10-01", click("m1", "a1", "app_opened", "2026-10-01T10:00:00Z"))
    env = dict(os.environ, DAGSTER_HOME=str(tiny.root / "dagster_home"))
    ui = subprocess.Popen([sys.executable, "-m", "pipelines.cli.__init__", "ui", "--config",
                           str(tiny.config), "--port", str(_free_port())],
                          cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        pgid = None
        deadline = time.monotonic() + 60
        while pgid is None and time.monotonic() < deadline:  # the Dagster child's group
            kids = subprocess.run(["pgrep", "-P", str(ui.pid)], capture_output=True,
                                  text=True).stdout.split()
            pgid = os.getpgid(int(kids[0])) if kids else None
            time.sleep(0.5)
        assert pgid is not None and pgid != os.getpgid(ui.pid)
        time.sleep(8)  # let dagster dev start its webserver, daemon and code server
        ui.send_signal(sig)
        ui.wait(timeout=60)
        deadline = time.monotonic() + 5
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _group_alive(pgid)
    finally:
        if ui.poll() is None:
            ui.kill()
