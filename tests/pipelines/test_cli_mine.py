"""`journeys mine` on small hand-made logs in every supported format, and its error paths."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from pipelines.cli import main

# Two journeys. Case "b" has two events at the same instant: file order decides (Browse, Book).
# Times carry different UTC offsets; in UTC, case "a" runs 08:00 -> 08:30 -> 09:00.
ROWS = [
    ("a", "Open", "2024-05-01T10:00:00+02:00", "complete"),
    ("b", "Open", "2024-05-01T07:00:00Z", "COMPLETE"),
    ("a", "Browse", "2024-05-01T08:30:00Z", "start"),
    ("b", "Browse", "2024-05-01T07:10:00Z", "complete"),
    ("b", "Book", "2024-05-01T07:10:00Z", "Complete"),
    ("a", "Book", "2024-05-01T04:00:00-05:00", "complete"),
]


def _frame(case="case", activity="activity", time="timestamp") -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=[case, activity, time, "lifecycle:transition"])


def _write_xes(path) -> None:
    traces = {}
    for case, act, ts, lc in ROWS:
        traces.setdefault(case, []).append(
            f'<event><string key="concept:name" value="{act}"/>'
            f'<string key="lifecycle:transition" value="{lc}"/>'
            f'<date key="time:timestamp" value="{ts}"/></event>')
    body = "".join(f'<trace><string key="concept:name" value="{c}"/>{"".join(evs)}</trace>'
                   for c, evs in traces.items())
    text = f'<?xml version="1.0"?><log xmlns="http://www.xes-standard.org/">{body}</log>'
    with gzip.open(path, "wt") as fh:
        fh.write(text)


def _mine(capsys, *args: str) -> dict:
    assert main(["mine", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl", "xes.gz"])
def test_every_format_gives_the_same_journeys(fmt, tmp_path, capsys):
    path = tmp_path / f"log.{fmt}"
    frame = _frame()
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "parquet":
        frame.to_parquet(path)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        _write_xes(path)
    out = _mine(capsys, "--events", str(path))
    assert (out["cases"], out["events"], out["activities"], out["variants"]) == (2, 6, 3, 1)
    assert out["top_variants"] == [{"activities": ["Open", "Browse", "Book"], "count": 2}]
    assert out["start_activities"] == {"Open": 2}
    assert out["end_activities"] == {"Book": 2}
    pairs = {(p["from"], p["to"]): p for p in out["dfg"]}
    # Open->Browse: a 30 min, b 10 min; Browse->Book: a 30 min, b 0 s
    assert pairs[("Open", "Browse")]["count"] == 2
    assert pairs[("Open", "Browse")]["median_seconds"] == 1200.0
    assert pairs[("Browse", "Book")]["median_seconds"] == 900.0


def test_lifecycle_complete_is_case_insensitive(tmp_path, capsys):
    path = tmp_path / "log.csv"
    _frame().to_csv(path, index=False)
    out = _mine(capsys, "--events", str(path), "--lifecycle", "complete")
    assert out["events"] == 5  # only a's "start" Browse is dropped
    assert out["variants"] == 2
    assert {tuple(v["activities"]) for v in out["top_variants"]} == {
        ("Open", "Book"), ("Open", "Browse", "Book")}


def test_custom_column_names(tmp_path, capsys):
    path = tmp_path / "log.csv"
    _frame("ticket", "step", "at").to_csv(path, index=False)
    out = _mine(capsys, "--events", str(path), "--case-col", "ticket",
                "--activity-col", "step", "--time-col", "at")
    assert out["cases"] == 2 and out["variants"] == 1


def test_table_format_is_readable(tmp_path, capsys):
    path = tmp_path / "log.csv"
    _frame().to_csv(path, index=False)
    assert main(["mine", "--events", str(path), "--top", "1"]) == 0
    text = capsys.readouterr().out
    assert "cases       2" in text
    assert "Open -> Browse -> Book" in text
    assert "start activities" in text


@pytest.mark.parametrize(
    "make, args, message",
    [
        (None, ["--events", "{dir}/missing.csv"], "no such file"),
        ("csv", ["--events", "{dir}/log.txtx"], "unknown event log format"),
        ("csv", ["--events", "{dir}/log.csv", "--case-col", "customer"], "no case column"),
        ("xes", ["--events", "{dir}/log.xes.gz", "--activity-col", "nope"],
         "no activity attribute"),
        ("bad_time", ["--events", "{dir}/log.csv"], "readable timestamp"),
        ("no_case", ["--events", "{dir}/log.csv"], "without a case id"),
        ("csv", ["--events", "{dir}/log.csv", "--top", "-1"], "--top"),
    ],
)
def test_bad_input_is_one_line_error_exit_2(make, args, message, tmp_path, capsys):
    frame = _frame()
    if make == "csv":
        frame.to_csv(tmp_path / "log.csv", index=False)
        (tmp_path / "log.txtx").write_text("x")
    elif make == "xes":
        _write_xes(tmp_path / "log.xes.gz")
    elif make == "bad_time":
        frame.loc[2, "timestamp"] = "yesterday-ish"
        frame.to_csv(tmp_path / "log.csv", index=False)
    elif make == "no_case":
        frame.loc[1, "case"] = None
        frame.to_csv(tmp_path / "log.csv", index=False)
    code = main(["mine", *[a.replace("{dir}", str(tmp_path)) for a in args]])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("journeys mine: error: ") and message in err
    assert err.count("\n") == 1


def test_bad_option_value_exits_2(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["mine", "--events", str(tmp_path / "x.csv"), "--lifecycle", "started"])
    assert exc.value.code == 2


# ---- reading any export (transforms.readers)

def test_whitespace_text_with_yyyymmdd_dates(tmp_path, capsys):
    path = tmp_path / "log.txt"
    path.write_text("case  activity   timestamp\n a  Open 20240501\n a Book  20240503\n"
                    "b\tOpen\t20240502\n")
    out = _mine(capsys, "--events", str(path), "--delimiter", "whitespace", "--time-format",
                "%Y%m%d")
    assert (out["cases"], out["events"], out["variants"]) == (2, 3, 2)
    pairs = {(p["from"], p["to"]): p for p in out["dfg"]}
    assert pairs[("Open", "Book")]["median_seconds"] == 2 * 86400.0


def test_latin1_semicolon_file_without_header(tmp_path, capsys):
    path = tmp_path / "log.csv"
    path.write_bytes("a;Café;2024-05-01 10:00\na;Säule;2024-05-01 11:00\n".encode("latin-1"))
    out = _mine(capsys, "--events", str(path), "--encoding", "latin-1", "--delimiter", ";",
                "--no-header", "--case-col", "column0", "--activity-col", "column1",
                "--time-col", "column2", "--timezone", "Europe/Berlin")
    assert out["top_variants"] == [{"activities": ["Café", "Säule"], "count": 1}]


def test_epoch_ms_json_lines_and_activity_filter(tmp_path, capsys):
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps({"case": "a", "activity": act, "timestamp": ms}) + "\n"
                            for act, ms in (("Open", 1714550400000), ("Browse", 1714550460000),
                                            ("Book", 1714550520000))))
    out = _mine(capsys, "--events", str(path), "--time-format", "epoch_ms", "--activities",
                "Open,Book")
    assert out["top_variants"] == [{"activities": ["Open", "Book"], "count": 1}]
    assert out["dfg"][0]["median_seconds"] == 120.0


@pytest.mark.parametrize("args, message", [
    (["--lifecycle", "complete", "--lifecycle-col", "phase"],
     "--lifecycle complete keeps nothing: no event has lifecycle 'complete' in 'phase'; "
     "values there: begin (4), end (2); use --lifecycle all"),
    (["--lifecycle", "complete"], "needs a lifecycle column, and there is no "
     "'lifecycle:transition'"),
    (["--activities", "Open,Pay"], "activity 'Pay' never occurs in column 'activity' "
     "(--activities); values there, most frequent first: Book (2), Browse (2), Open (2)"),
    (["--time-format", "epoch_s"], "6 of 6 row(s) with a time in column 'timestamp' have no "
     "readable timestamp: values such as '2024-05-01T04:00:00-05:00' do not match "
     "--time-format 'epoch_s'"),
])
def test_reading_errors_list_what_exists(args, message, tmp_path, capsys):
    frame = _frame().drop(columns=["lifecycle:transition"])
    frame["phase"] = ["begin", "begin", "end", "begin", "end", "begin"]
    frame.to_csv(tmp_path / "log.csv", index=False)
    code = main(["mine", "--events", str(tmp_path / "log.csv"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
