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


def test_step_windows_name_colon_duration(capsys, events):
    # u1: signup 00:00Z, pay at the same instant, movie 2 h after pay; u2 pays 19 d after
    # signing up; u3 never pays
    code, out, _ = run(capsys, "--events", events, "--steps", "signup,pay,movie:2h",
                       "--format", "json")
    doc = json.loads(out)
    # movie exactly 7200 s after pay: inside movie's 2 h window (inclusive)
    assert code == 0 and [s["count"] for s in doc["steps"]] == [3, 1, 1]
    assert doc["options"]["step_windows_seconds"] == [None, None, 7200]
    assert doc["options"]["steps"] == ["signup", "pay", "movie"]
    code, out, _ = run(capsys, "--events", events, "--steps", "signup,pay,movie:1.5h",
                       "--format", "json")
    assert code == 0 and [s["count"] for s in json.loads(out)["steps"]] == [3, 1, 0]
    # the step window and --window both apply: pay:19d lets u2's pay (19 d after signup) in
    # only once --window is long enough too
    code, out, _ = run(capsys, "--events", events, "--window", "30d", "--steps",
                       "signup,pay:19d", "--format", "json")
    assert code == 0 and [s["count"] for s in json.loads(out)["steps"]] == [3, 2]
    code, out, _ = run(capsys, "--events", events, "--steps", "signup,pay:19d",
                       "--format", "json")  # default --window 14d
    assert code == 0 and [s["count"] for s in json.loads(out)["steps"]] == [3, 1]


def test_step_text_splits_at_the_last_colon_only_before_a_duration():
    from pipelines.cli.funnel import _parse_step
    from transforms.funnel import Step

    def parsed(text):
        st = _parse_step(text, Step)
        return st.event, st.window_seconds

    assert parsed("cart") == ("cart", None)
    assert parsed("cart:1h") == ("cart", 3600)
    assert parsed("cart : 1.5h") == ("cart", 5400)
    assert parsed("pay:30m") == ("pay", 1800)
    assert parsed("page:home") == ("page:home", None)      # not a duration: part of the name
    assert parsed("page:home:10m") == ("page:home", 600)
    assert parsed("level:2:") == ("level:2", None)         # a lone ':' keeps the name whole
    assert parsed("level:2:1h") == ("level:2", 3600)


HELD_CSV = """actor,event,timestamp,booking_id
u1,created,2026-01-01T00:00:00Z,b1
u1,created,2026-01-01T00:10:00Z,b2
u1,paid,2026-01-01T00:20:00Z,b2
u2,created,2026-01-01T00:00:00Z,b3
u2,paid,2026-01-01T00:05:00Z,b4
u3,created,2026-01-01T00:00:00Z,
u3,paid,2026-01-01T00:05:00Z,
"""


def test_hold_keeps_the_booking_constant(capsys, tmp_path):
    path = tmp_path / "held.csv"
    path.write_text(HELD_CSV)
    # held: u1's b2 is created and paid (600 s); u2 pays another booking (b4) than it created
    # (b3) -> step 1 only; u3's rows have no booking id -> takes no part
    code, out, err = run(capsys, "--events", path, "--steps", "created,paid", "--hold",
                         "booking_id", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and err == ""
    assert [s["count"] for s in doc["steps"]] == [2, 1]
    assert doc["steps"][1]["median_seconds_to_convert"] == 600.0
    assert doc["options"]["hold"] == "booking_id"
    # not held: all three enter; u1 (created 00:00 -> paid 00:20), u2 and u3 pay
    code, out, _ = run(capsys, "--events", path, "--steps", "created,paid", "--format", "json")
    assert code == 0 and [s["count"] for s in json.loads(out)["steps"]] == [3, 3]
    # a per-step window with the hold: b2's pay is 600 s after its created -> 10m in, 9m out
    code, out, _ = run(capsys, "--events", path, "--steps", "created,paid:9m", "--hold",
                       "booking_id", "--format", "json")
    assert code == 0 and [s["count"] for s in json.loads(out)["steps"]] == [2, 0]
    # a hold column the file lacks: one line naming the column and the flag, exit 2
    code, out, err = run(capsys, "--events", path, "--steps", "created,paid", "--hold",
                         "booking")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("journeys funnel: error: ") and "'booking'" in err and "hold" in err


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
    (["--events", "{xlsx}", "--steps", "signup,pay"], "unknown file type"),
    (["--events", "{csv}", "--steps", "signup,pay:2fortnights"],
     "invalid --steps 'pay:2fortnights': unknown time unit 'fortnights'"),
    (["--events", "{csv}", "--steps", "signup,pay:0s"], "less than one second"),
    (["--events", "{csv}", "--steps", "signup,:1h"], "no event name"),
    (["--events", "{csv}", "--steps", "signup:1h,pay"], "the first step has none"),
    (["--events", "{csv}", "--steps", "signup,pay:1h", "--order", "any"],
     "per-step windows need an ordered funnel"),
])
def test_errors_are_one_line_and_exit_2(capsys, tmp_path, events, argv, message):
    bad_ts = tmp_path / "bad.csv"
    bad_ts.write_text("actor,event,timestamp\nu1,signup,not-a-time\n")
    xlsx = tmp_path / "events.xlsx"
    xlsx.write_text(CSV)
    paths = {"missing": tmp_path / "nope.csv", "csv": events, "bad_ts": bad_ts, "xlsx": xlsx}
    argv = [a.format(**paths) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("journeys funnel: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


# ---- reading any export (transforms.readers): formats, time formats, errors naming what exists

def _counts(capsys, *argv):
    code, out, err = run(capsys, *argv, "--format", "json")
    assert code == 0 and err == "", err
    return [s["count"] for s in json.loads(out)["steps"]]


def test_semicolon_file_with_yyyymmdd_times_in_a_time_zone(capsys, tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("who;what;day\nu1;signup;20260101\nu1;pay;20260103\nu2;signup;20260102\n"
                    "u2;pay;20260120\n")
    argv = ["--events", path, "--steps", "signup,pay", "--actor-col", "who", "--event-col",
            "what", "--time-col", "day", "--time-format", "%Y%m%d"]
    assert _counts(capsys, *argv) == [2, 1]  # u2 pays 18 days later: outside 14d
    # midnight in Tokyo is 15:00 UTC the day before: u1 enters on 2025-12-31 (UTC)
    assert _counts(capsys, *argv, "--timezone", "Asia/Tokyo", "--start", "2025-12-31",
                   "--end", "2025-12-31") == [1, 1]
    assert _counts(capsys, *argv, "--delimiter", ";") == [2, 1]


def test_whitespace_file_without_header_and_epoch_times(capsys, tmp_path):
    path = tmp_path / "e.txt"
    path.write_text("u1  signup   1767225600\nu1\tpay  1767229200\nu2 signup 1767225600\n")
    assert _counts(capsys, "--events", path, "--steps", "signup,pay", "--delimiter",
                   "whitespace", "--no-header", "--actor-col", "column0", "--event-col",
                   "column1", "--time-col", "column2", "--time-format", "epoch_s") == [2, 1]


def test_latin1_tsv(capsys, tmp_path):
    path = tmp_path / "e.tsv"
    path.write_bytes("actor\tevent\ttimestamp\nJosé\tsignup\t2026-01-01\nJosé\tpay\t2026-01-02\n"
                     .encode("latin-1"))
    assert _counts(capsys, "--events", path, "--steps", "signup,pay", "--encoding",
                   "latin-1") == [1, 1]


def test_xes_defaults_to_case_and_activity(capsys, tmp_path):
    path = tmp_path / "log.xes"
    path.write_text(
        '<log xmlns="http://www.xes-standard.org/"><trace><string key="concept:name" '
        'value="c1"/><event><string key="concept:name" value="register"/><date '
        'key="time:timestamp" value="2026-01-01T10:00:00+01:00"/></event><event><string '
        'key="concept:name" value="pay"/><date key="time:timestamp" '
        'value="2026-01-01T09:30:00Z"/></event></trace><trace><string key="concept:name" '
        'value="c2"/><event><string key="concept:name" value="register"/><date '
        'key="time:timestamp" value="2026-01-02T00:00:00Z"/></event></trace></log>')
    assert _counts(capsys, "--events", path, "--steps", "register,pay") == [2, 1]


def test_segment_export_reads_with_the_defaults(capsys, tmp_path):
    calls = [
        {"type": "track", "event": "Viewed", "anonymousId": "a1", "messageId": "m1",
         "timestamp": "2026-01-01T10:00:00Z", "properties": {"plan": "pro"}},
        {"type": "identify", "userId": "u1", "anonymousId": "a1", "messageId": "m2",
         "timestamp": "2026-01-01T10:01:00Z"},
        {"type": "track", "event": "Paid", "userId": "u1", "anonymousId": "a1",
         "messageId": "m3", "timestamp": "2026-01-01T10:02:00Z"},
        {"type": "track", "event": "Viewed", "anonymousId": "a2", "messageId": "m4",
         "timestamp": "2026-01-01T11:00:00Z", "properties": {"plan": "free"}},
    ]
    path = tmp_path / "segment.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in calls) + "\n")
    code, out, _ = run(capsys, "--events", path, "--steps", "Viewed,Paid", "--by",
                       "properties.plan", "--format", "json")
    got = {r["value"]: [s["count"] for s in r["steps"]] for r in json.loads(out)["breakdown"]}
    assert code == 0 and got == {"pro": [1, 1], "free": [1, 0]}


@pytest.mark.parametrize("argv,message", [
    (["--steps", "signup,paid"], "step 'paid' never occurs in column 'event' (--steps); "
     "values there, most frequent first: signup (3), pay (2), movie (1)"),
    (["--steps", "signup,pay", "--time-col", "when"],
     "missing time column 'when' (--time-col); columns are: actor, event, timestamp, platform"),
    (["--steps", "signup,pay", "--by", "city"], "missing breakdown column 'city' (--by)"),
    (["--steps", "signup,pay", "--time-format", "%Y%m%d"],
     "6 of 6 row(s) with a time in column 'timestamp' have no readable timestamp"),
    (["--steps", "signup,pay", "--time-format", "yyyymmdd"], "invalid --time-format"),
    (["--steps", "signup,pay", "--timezone", "Berlin"], "unknown --timezone 'Berlin'"),
    (["--steps", "signup,pay", "--delimiter", ";;"], "invalid --delimiter"),
    (["--steps", "signup,pay", "--encoding", "klingon"], "unknown --encoding"),
])
def test_reading_errors_name_what_exists(capsys, events, argv, message):
    code, out, err = run(capsys, "--events", events, *argv)
    assert code == 2 and out == "" and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def _incident_csv(path, seed=11, actors=3000, days=90):
    """visit -> cart (p 0.7) -> pay (p 0.6, 0.15 on android on days 30..49)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t0 = 1767225600  # 2026-01-01T00:00:00Z
    lines = ["actor,event,timestamp,platform"]
    for i in range(actors):
        d = int(rng.integers(0, days))
        platform = ("android", "ios", "web")[int(rng.integers(0, 3))]
        t = t0 + d * 86400 + int(rng.integers(0, 80000))
        lines.append(f"a{i},visit,{t},{platform}")
        if rng.random() < 0.7:
            lines.append(f"a{i},cart,{t + 60},{platform}")
            p = 0.15 if platform == "android" and 30 <= d <= 49 else 0.6
            if rng.random() < p:
                lines.append(f"a{i},pay,{t + 600},{platform}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_find_changes_json_names_the_segment_and_window(capsys, tmp_path):
    import datetime as dt

    path = _incident_csv(tmp_path / "shop.csv")
    code, out, err = run(capsys, "--events", path, "--steps", "visit,cart,pay", "--window",
                         "1d", "--by", "platform", "--time-format", "epoch_s",
                         "--find-changes", "--format", "json")
    assert code == 0 and err == ""
    found = json.loads(out)["findings"]
    assert len(found) == 1, found
    f = found[0]
    assert set(f) == {"from_step", "to_step", "segment", "start", "end", "rate",
                      "baseline_rate", "n", "lost", "p_adjusted", "kind"}
    assert (f["from_step"], f["to_step"]) == ("cart", "pay")
    assert f["segment"] == {"column": "platform", "value": "android"}
    start, end = dt.date.fromisoformat(f["start"]), dt.date.fromisoformat(f["end"])
    assert abs((start - dt.date(2026, 1, 31)).days) <= 3
    assert abs((end - dt.date(2026, 2, 19)).days) <= 3
    assert f["rate"] < f["baseline_rate"] and f["lost"] > 0 and f["p_adjusted"] < 0.05
    # table format: one sentence per finding
    code, out, _ = run(capsys, "--events", path, "--steps", "visit,cart,pay", "--window", "1d",
                       "--by", "platform", "--time-format", "epoch_s", "--find-changes")
    assert code == 0 and out.count("\n") == 1 and "platform = android" in out
    assert "customers lost" in out


def test_find_changes_without_incident_prints_none(capsys, events):
    code, out, _ = run(capsys, "--events", events, "--steps", "signup,pay", "--find-changes",
                       "--format", "json")
    assert code == 0 and json.loads(out) == {"findings": []}
