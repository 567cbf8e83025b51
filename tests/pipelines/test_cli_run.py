"""`journeys run` refuses bad options and bad configs with one line, before any work; a step that
fails is reported in one plain line; progress is plain text when output is not a terminal."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from pipelines.cli import main
from pipelines.cli.run import MAX_MESSAGE, _failures, plain_message
from tests.conftest import SAMPLE_CONFIG, TinyProject, click


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    code = main(["run", *args])
    return code, capsys.readouterr().err.strip()


def test_broken_journey_map_stops_before_the_run(tiny: TinyProject, capsys) -> None:
    text = (SAMPLE_CONFIG.parent / "journey_map.yaml").read_text()
    (tiny.root / "journey_map.yaml").write_text(
        text.replace("conversion_window: 14d", "conversion_window: 14 days"))
    tiny.clicks("2026-10-01", "{}")
    code, err = run(capsys, "--config", str(tiny.config))
    assert code == 2
    assert err == (f"journeys run: error: {tiny.root / 'journey_map.yaml'}: key "
                   "'conversion_window': unknown time unit 'days' in '14 days'. Fix: use a "
                   "number (decimals allowed) with a unit s, m, h, d or w, e.g. 30s, 90m, "
                   "1.5h, 30d or 2w; a bare number means seconds (calendar months and years "
                   "are not allowed because their length varies)")
    assert not tiny.warehouse.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--start", "2026-13-01"], "--start '2026-13-01' is not a date; write it as YYYY-MM-DD"),
    (["--start", "2026-10-05", "--end", "2026-10-01"],
     "--start 2026-10-05 is after --end 2026-10-01"),
])
def test_bad_dates(tiny: TinyProject, capsys, args: list[str], message: str) -> None:
    tiny.clicks("2026-10-01", "{}")
    code, err = run(capsys, "--config", str(tiny.config), *args)
    assert (code, err) == (2, f"journeys run: error: {message}")


def test_no_export_files(tiny: TinyProject, capsys) -> None:
    code, err = run(capsys, "--config", str(tiny.config))
    assert code == 2 and err.startswith("journeys run: error: no export files found")


# ---------------------------------------------------------------- a failed step, in plain words

def _failure(step: str, cls_name: str, message: str, wrapped: bool = True) -> SimpleNamespace:
    """A STEP_FAILURE event as `result.all_events` holds it: Dagster's wrapper error, caused by
    the step's own exception (messages as Dagster serialises them: `module.Class: text`)."""
    error = SimpleNamespace(cls_name=cls_name, message=message, cause=None)
    if wrapped:
        error = SimpleNamespace(
            cls_name="DagsterExecutionStepExecutionError", cause=error,
            message="dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred "
                    f'while executing op "{step}":\n')
    return SimpleNamespace(event_type_value="STEP_FAILURE", step_key=step,
                           step_failure_data=SimpleNamespace(error=error))


def _failed_check() -> SimpleNamespace:
    data = SimpleNamespace(passed=False, check_name="reconciles",
                           asset_key=SimpleNamespace(to_user_string=lambda: "raw_bookings"))
    return SimpleNamespace(event_type_value="ASSET_CHECK_EVALUATION", event_specific_data=data)


BINDER = ('_duckdb.BinderException: Binder Error: Referenced column "stage" not found in FROM '
          'clause!\nCandidate bindings: "stage_index", "source"\n\nLINE 3:     select stage '
          "from events\n                   ^^^^^\n")


def test_failures_are_plain_lines() -> None:
    long = "_duckdb.ConversionException: Conversion Error: " + "x" * 400 + "\nLINE 1: s\n ^\n"
    result = SimpleNamespace(all_events=[
        _failure("funnels", "BinderException", BINDER),
        _failure("events", "ConfigError", "transforms.errors.ConfigError: sources.yaml: key "
                 "'sources.x.path': no such folder. Fix: point it at your exports\n"),
        _failure("purchases", "KeyError", "KeyError: 'amount'\n"),
        _failure("journeys", "InternalException", "_duckdb.InternalException: INTERNAL Error: "
                 "oops\n\nStack Trace:\n  0  duckdb::Exception\n  1  main\n"),
        _failure("mining_tables", "ConversionException", long),
        _failure("dashboard", "DagsterInvariantViolationError",
                 "dagster._core.errors.DagsterInvariantViolationError: no output\n", False),
        _failed_check(),
        SimpleNamespace(event_type_value="STEP_SUCCESS"),
    ])
    lines = _failures(result)
    assert lines[:4] == [
        'funnels failed: Binder Error: Referenced column "stage" not found in FROM clause! '
        'Candidate bindings: "stage_index", "source"',
        "events failed: sources.yaml: key 'sources.x.path': no such folder. Fix: point it at "
        "your exports",
        "purchases failed: KeyError: 'amount'",
        "journeys failed: INTERNAL Error: oops",
    ]
    assert lines[4].startswith("mining_tables failed: Conversion Error: xxx")
    assert len(lines[4]) == len("mining_tables failed: ") + MAX_MESSAGE
    assert lines[4].endswith("…")
    assert lines[5:] == ["dashboard failed: no output", "check raw_bookings:reconciles failed"]


def test_plain_message_keeps_a_whole_user_error() -> None:
    message = "transforms.errors.UserError: " + "a long sentence that must stay whole " * 12
    assert plain_message("UserError", message) == message.split(": ", 1)[1].strip()
    assert plain_message("BinderException", "") == "BinderException"


def test_a_failed_step_is_reported_in_plain_words(tiny: TinyProject, capsys,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole run in this process, with the funnels step broken to run SQL DuckDB rejects."""
    from pipelines.defs.journeys import assets as journey_assets

    def broken_funnels(con, jmap):
        con.execute("select stage, count(*)\nfrom events\ngroup by stage")

    monkeypatch.setattr(journey_assets, "build_funnels", broken_funnels)
    monkeypatch.setenv("DAGSTER_HOME", str(tiny.root / "dagster_home"))
    tiny.clicks("2026-10-01", click("m1", "a1", "app_opened", "2026-10-01T10:00:00Z"),
                click("m2", "a1", "service_viewed", "2026-10-01T10:01:00Z", user="c1"))
    tiny.bookings("2026-10-01", "bk1,c1,s1,Berlin,hair,2026-10-03T10:00:00Z,25.00,EUR,created,"
                  ",,,2026-10-01T10:05:00Z")
    code = main(["run", "--config", str(tiny.config)])
    out, err = capsys.readouterr()
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0] == ('journeys run: error: funnels failed: Binder Error: Referenced column '
                        '"stage" not found in FROM clause! Candidate bindings: "status", '
                        '"customer_id", "rating", "screen", "source"')
    assert lines[-1].startswith("journeys run: the whole error and its stack trace are in the "
                                "log of run ")
    assert not any(re.fullmatch(r"\s*\^+\s*", line) for line in err.splitlines())
    assert "Exception" not in err and "LINE " not in err and "Traceback" not in out + err
    # the progress lines stay plain text when output is not a terminal; per-day lines only
    # with --verbose
    assert "\x1b[" not in out
    assert re.search(r"^  funnels +FAILED +took +\d+\.\d s +\d+\.\d s elapsed$", out, re.M)
    assert re.search(r"^  events +\d+ rows +took +\d+\.\d s +\d+\.\d s elapsed$", out, re.M)
    assert re.search(r"^  raw_bookings     2026-10-01 … 2026-10-01: read 1, loaded 1, "
                     r"quarantined 0, duplicates 0 \(3 partitions, 2 without rows\)$", out, re.M)
    assert "raw_bookings     2026-10-01  read" not in out


def test_verbose_prints_a_line_per_day(tiny: TinyProject, capsys,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tiny.root / "dagster_home"))
    tiny.clicks("2026-10-01", click("m1", "a1", "app_opened", "2026-10-01T10:00:00Z"))
    tiny.clicks("2026-10-02", click("m2", "a1", "app_opened", "2026-10-02T10:00:00Z"))
    code = main(["run", "--config", str(tiny.config), "--verbose"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert re.search(r"^  raw_clickstream  2026-10-01  read +1  loaded +1", out, re.M)
    assert re.search(r"^  raw_clickstream  2026-10-02  read +1  loaded +1", out, re.M)


def test_a_mapped_field_missing_from_the_files_stops_before_any_work(tiny, capsys) -> None:
    tiny.bookings("2026-10-01", "b1,c1,s1,Berlin,hair,2026-10-05 10:00:00,45.00,EUR,created,,,,"
                  "2026-10-01 10:00:00")
    # the bookings mapping names a field the export does not have
    tiny.config.write_text(tiny.config.read_text().replace("salon_id: salon_id",
                                                           "salon_id: salon", 1))
    code, err = run(capsys, "--config", str(tiny.config))
    assert code == 2
    assert err.startswith(f"journeys run: error: {tiny.config}: key "
                          "'sources.bookings.columns.salon_id': 2026-10-01.csv has no field "
                          "'salon' (it has: booking_id, customer_id, salon_id, ")
    assert "Fix: map the column to one of those fields" in err
    assert not tiny.warehouse.exists()


def test_a_long_stretch_without_exports_is_pointed_out(tiny: TinyProject) -> None:
    # one stray clickstream file seven years before the rest: the run would cover every day
    # since; the warning names the file and the start that leaves it out (the first export
    # after the gap, 2026-10-01, moved back by the largest late_days of the sample, 1 day)
    import datetime as dt

    from pipelines.cli.run import gap_warnings
    from transforms.sources import load_config

    tiny.clicks("2019-03-04", click("m0", "a0", "app_opened", "2019-03-04T08:00:00Z"))
    tiny.clicks("2026-10-01", click("m1", "a1", "app_opened", "2026-10-01T08:00:00Z"))
    tiny.clicks("2026-10-02", click("m2", "a1", "app_opened", "2026-10-02T08:00:00Z"))
    cfg = load_config(tiny.config)
    first, last = dt.date(2019, 3, 3), dt.date(2026, 10, 3)
    assert gap_warnings(cfg, first, last) == [
        f"no export file for 2,767 days between 2019-03-04 and 2026-10-01, so the run covers "
        f"2,772 daily partitions; 1 file before that (2019-03-04.jsonl): if it is a stray, set "
        f"start_date: 2026-09-30 in {tiny.config} or pass --start 2026-09-30"]
    # a range that leaves the stray out, or a gap of 180 days or less, says nothing
    assert gap_warnings(cfg, dt.date(2026, 9, 30), last) == []
    tiny.clicks("2026-06-01", click("m3", "a3", "app_opened", "2026-06-01T08:00:00Z"))
    # 2019-03-04 .. 2026-06-01 is 2,645 days without a file; 2026-06-01 .. 10-01 only 121
    assert [w.split(", so")[0] for w in gap_warnings(cfg, first, last)] == [
        "no export file for 2,645 days between 2019-03-04 and 2026-06-01"]
