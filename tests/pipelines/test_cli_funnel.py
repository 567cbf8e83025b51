"""`journeys funnel` end to end on small files: output shapes and one-line errors (exit 2)."""

from __future__ import annotations

import json

import pytest

from pipelines.cli import main

CSV = """actor,event,timestamp,platform
u1,signup,2026-01-01T00:00:00Z,ios
u1,pay,2026-01-01T01:00:00+01:00,ios
u1,movie,2026-01-01T02:00:00Z,ios
u2,signup,2026-01-01T00:00:00,web
u2,pay,2026-01-20T00:00:00,web
u3,signup,2026-01-02T00:00:00,web
"""


@pytest.fixture
def events(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(CSV)
    return path


def run(capsys, *argv):
    code = main(["funnel", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_output_shape(capsys, events):
    code, out, err = run(capsys, "--events", events, "--steps", "signup,pay,movie",
                         "--format", "json")
    assert code == 0 and err == ""
    doc = json.loads(out)  # exactly one JSON object
    # u1: signup, pay at the same instant (01:00+01:00 = 00:00Z), movie 2 h later -> 3 steps
    # u2: pays 19 days later (> 14 d) -> 1 step; u3: signup only -> 1 step
    assert [s["name"] for s in doc["steps"]] == ["signup", "pay", "movie"]
    assert [s["count"] for s in doc["steps"]] == [3, 1, 1]
    for key in ("conversion", "step_conversion", "dropout_rate", "median_seconds_to_convert"):
        assert key in doc["steps"][0]
    first = doc["steps"][0]
    assert (first["conversion"], first["step_conversion"], first["dropout_rate"],
            first["median_seconds_to_convert"]) == (1.0, 1.0, 0.0, None)
    assert doc["steps"][1]["median_seconds_to_convert"] == 0.0
    assert doc["steps"][2]["median_seconds_to_convert"] == 7200.0


def test_json_breakdown_and_options(capsys, events):
    code, out, _ = run(capsys, "--events", events, "--steps", "signup,pay", "--window", "30d",
                       "--by", "platform", "--format", "json")
    doc = json.loads(out)
    # 30 d window: u2 converts too. ios: u1 [1, 1]; web: u2, u3 [2, 1]
    got = {r["value"]: [s["count"] for s in r["steps"]] for r in doc["breakdown"]}
    assert code == 0 and got == {"ios": [1, 1], "web": [2, 1]}


def test_end_date_includes_the_whole_day_and_exclusions(capsys, events):
    # entries on 2026-01-01 only (u1, u2); --end is inclusive of that day
    code, out, _ = run(capsys, "--events", events, "--steps", "signup,pay", "--start",
                       "2026-01-01", "--end", "2026-01-01", "--format", "json")
    assert code == 0 and [s["count"] for s in json.loads(out)["steps"]] == [2, 1]
    # exclude pay between steps 1 and 2 of signup,movie: u1's pay (01:00+01:00 = 00:00Z) is at
    # the signup instant, so not strictly between -> u1 stays clean
    code, out, _ = run(capsys, "--events", events, "--steps", "signup,movie", "--exclude",
                       "pay:1:2", "--format", "json")
    # u1 clean (reaches movie); u2's pay comes 19 days later, outside the 14 d window -> clean;
    # u3 clean
    assert code == 0 and [s["count"] for s in json.loads(out)["steps"]] == [3, 1]


def test_window_takes_decimals_and_bare_seconds(capsys, events):
    # u2 pays exactly 19 days after signing up: inside 19.5d, outside 18.5d (u1 converts at
    # once, u3 never pays)
    code, out, _ = run(capsys, "--events", events, "--steps", "signup,pay", "--window", "19.5d",
                       "--format", "json")
    assert code == 0 and [s["count"] for s in json.loads(out)["steps"]] == [3, 2]
    code, out, _ = run(capsys, "--events", events, "--steps", "signup,pay", "--window", "18.5d",
                       "--format", "json")
    assert code == 0 and [s["count"] for s in json.loads(out)["steps"]] == [3, 1]
    # a bare number is seconds: 19 d = 19 * 86400 = 1641600 s, boundary inclusive
    code, out, _ = run(capsys, "--events", events, "--steps", "signup,pay", "--window",
                       "1641600", "--format", "json")
    assert code == 0 and [s["count"] for s in json.loads(out)["steps"]] == [3, 2]


def test_table_output(capsys, events):
    code, out, _ = run(capsys, "--events", events, "--steps", "signup,pay")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["#", "step", "count"]
    assert lines[2].split()[:3] == ["1", "signup", "3"]
    assert lines[3].split()[:3] == ["2", "pay", "1"]


def test_parquet_with_native_timestamps_and_other_columns(capsys, tmp_path):
    import duckdb

    path = tmp_path / "e.parquet"
    con = duckdb.connect()
    con.execute("create table t as select * from (values ('b1', 'created', timestamp "
                "'2026-01-01 00:00:00'), ('b1', 'paid', timestamp '2026-01-01 00:30:00')) "
                "v(booking, name, happened)")
    con.execute(f"copy t to '{path}' (format parquet)")
    code, out, _ = run(capsys, "--events", path, "--steps", "created,paid", "--actor-col",
                       "booking", "--event-col", "name", "--time-col", "happened",
                       "--format", "json")
    assert code == 0 and [s["count"] for s in json.loads(out)["steps"]] == [1, 1]


@pytest.mark.parametrize("argv,message", [
    (["--events", "{missing}", "--steps", "a,b"], "no such file"),
    (["--events", "{csv}", "--steps", "signup,pay", "--actor-col", "customer"],
     "missing actor column 'customer'"),
    (["--events", "{csv}", "--steps", "signup,pay", "--window", "2 fortnights"],
     "invalid window: unknown time unit 'fortnights'"),
    (["--events", "{csv}", "--steps", "signup,pay", "--window", "0s"],
     "less than one second"),
    (["--events", "{csv}", "--steps", "signup,pay", "--exclude", "refund:2:1"],
     "invalid exclusion"),
    (["--events", "{csv}", "--steps", "signup,pay", "--exclude", "refund"],
     "invalid --exclude"),
    (["--events", "{csv}", "--steps", "signup,pay", "--exclude", "refund:a:b"],
     "invalid --exclude"),
    (["--events", "{bad_ts}", "--steps", "signup,pay"], "not ISO 8601"),
    (["--events", "{csv}", "--steps", "signup,,pay"], "invalid --steps"),
    (["--events", "{csv}", "--steps", "signup,pay", "--start", "January"], "invalid --start"),
    (["--events", "{csv}", "--steps", "signup,pay", "--by", "platform", "--attribution",
      "step:9"], "invalid attribution"),
    (["--events", "{txt}", "--steps", "signup,pay"], "unknown file type"),
])
def test_errors_are_one_line_and_exit_2(capsys, tmp_path, events, argv, message):
    bad_ts = tmp_path / "bad.csv"
    bad_ts.write_text("actor,event,timestamp\nu1,signup,not-a-time\n")
    txt = tmp_path / "events.txt"
    txt.write_text(CSV)
    paths = {"missing": tmp_path / "nope.csv", "csv": events, "bad_ts": bad_ts, "txt": txt}
    argv = [a.format(**paths) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("journeys funnel: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
