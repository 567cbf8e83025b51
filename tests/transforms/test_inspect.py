"""`transforms.inspect`: formats, dialects, encodings, time formats, roles and stages guessed
from files the tests write themselves; every proposal validates with `load_project`."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
from pathlib import Path

import duckdb
import pytest
import yaml

from transforms.inspect import (
    detect_encoding,
    detect_format,
    inspect_file,
    propose,
    snake,
    source_name,
    write_proposal,
    yv,
)
from transforms.project import load_project

# --------------------------------------------------------------------------- the files


def orders_csv(path: Path, *, customers: int = 40, days: int = 400, seed: int = 3) -> Path:
    """An orders export: customer, date as YYYYMMDD, amount; semicolons, Latin-1 text."""
    rng = random.Random(seed)
    rows = ["kunde;datum;betrag;stadt"]
    start = dt.date(2023, 1, 2)
    for c in range(customers):
        for _ in range(rng.choice([1, 1, 2, 3])):
            day = start + dt.timedelta(days=rng.randint(0, days))
            rows.append(f"Kunde-{c:03d};{day:%Y%m%d};{rng.randint(500, 9000) / 100:.2f};"
                        f"{rng.choice(['Köln', 'München', 'Zürich'])}")
    path.write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    return path


def segment_jsonl(path: Path) -> Path:
    """A Segment-spec export: track calls with anonymousId, identify calls tying it to a user."""
    rng = random.Random(5)
    lines, n = [], 0
    t0 = dt.datetime(2024, 3, 1, 9)
    for u in range(25):
        t = t0 + dt.timedelta(hours=rng.randint(0, 500))
        events = ["Application Opened", "Product Viewed"]
        events += ["Product Added"] if rng.random() < 0.7 else []
        events += ["Order Completed"] if u % 2 == 0 else []
        for i, name in enumerate(events):
            n += 1
            t += dt.timedelta(minutes=rng.randint(1, 40))
            props = ({"order_id": f"o{n}", "revenue": 19.9} if name == "Order Completed"
                     else {"sku": f"p{rng.randint(1, 9)}"})
            lines.append({"messageId": f"m{n}", "type": "track", "event": name,
                          "anonymousId": f"anon-{u}", "userId": f"user-{u}" if i >= 2 else None,
                          "timestamp": t.isoformat() + "Z",
                          "context": {"os": {"name": "iOS" if u % 3 else "Android"}},
                          "properties": props})
            if i == 1:  # signs up: identify ties the anonymous id to the user
                n += 1
                lines.append({"messageId": f"m{n}", "type": "identify",
                              "anonymousId": f"anon-{u}", "userId": f"user-{u}",
                              "timestamp": t.isoformat() + "Z", "traits": {"plan": "free"}})
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def process_txt(path: Path) -> Path:
    """A process log separated by runs of spaces, no header: case, activity, YYYYMMDD date."""
    rng = random.Random(7)
    out = []
    for c in range(30):
        day = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randint(0, 90))
        steps = ["register", "check", "decide"] + (["pay"] if c % 3 else ["reject"])
        for step in steps:
            day += dt.timedelta(days=rng.randint(0, 3))
            out.append(f"case{c:03d}    {step:<10} {day:%Y%m%d}")
    path.write_text("\n".join(out) + "\n")
    return path


def parquet_file(path: Path) -> Path:
    """Typed Parquet: user, event, TIMESTAMP, price, platform."""
    con = duckdb.connect()
    con.execute("""
        CREATE TABLE p AS SELECT 'u' || ((i // 3) % 20) AS customer_id,
               ['visit', 'cart', 'purchase'][1 + (i % 3)] AS event_name,
               TIMESTAMP '2024-01-01' + INTERVAL (i) HOUR AS created_at,
               CAST(10 + i % 7 AS DOUBLE) AS price,
               ['ios', 'web'][1 + (i % 2)] AS platform
        FROM range(300) t(i)""")
    con.execute(f"COPY p TO '{path}' (FORMAT parquet)")
    con.close()
    return path


XES = """<?xml version="1.0" encoding="UTF-8"?>
<log xes.version="1.0" xmlns="http://www.xes-standard.org/">
{traces}
</log>
"""


def xes_file(path: Path) -> Path:
    traces = []
    for c in range(8):
        day = 1 + c
        events = [("submit", 9), ("review", 11), ("approve" if c % 4 else "decline", 15)]
        body = "\n".join(
            f'    <event><string key="concept:name" value="{a}"/>'
            f'<string key="org:resource" value="r{c % 2}"/>'
            f'<date key="time:timestamp" value="2024-02-{day:02d}T{h:02d}:00:00.000+01:00"/>'
            "</event>" for a, h in events)
        traces.append(f'  <trace><string key="concept:name" value="case{c}"/>\n{body}\n'
                      "  </trace>")
    path.write_text(XES.format(traces="\n".join(traces)))
    return path


def clickstream_tsv(path: Path) -> Path:
    """A clickstream: session, device id, event, epoch milliseconds, page, device."""
    rng = random.Random(11)
    rows = ["session_id\tdevice_id\tevent\tevent_time\tpage\tdevice"]
    t0 = 1_714_550_400_000  # 2024-05-01 in epoch ms
    for s in range(40):
        t = t0 + rng.randint(0, 20) * 86_400_000
        steps = ["land", "search", "view"] + (["signup"] if s % 2 else [])
        for step in steps:
            t += rng.randint(5, 300) * 1000
            rows.append(f"s{s}\td{s % 15}\t{step}\t{t}\t/{step}\t"
                        f"{'mobile' if s % 3 else 'desktop'}")
    path.write_text("\n".join(rows) + "\n")
    return path


def roles(guess) -> dict[str, str]:
    return {role: col.field for role, col in guess.roles.items()}


def validates(files: list[Path], out: Path):
    proposal = propose(files, out)
    write_proposal(proposal)
    # the texts are YAML as written
    assert isinstance(yaml.safe_load(proposal.sources_yaml), dict)
    assert isinstance(yaml.safe_load(proposal.journey_map_yaml), dict)
    return proposal, load_project(out / "sources.yaml")


# --------------------------------------------------------------------------- per format


def test_orders_csv_semicolon_latin1(tmp_path) -> None:
    path = orders_csv(tmp_path / "orders.csv")
    g = inspect_file(path)
    assert (g.file.format, g.file.delimiter, g.file.header) == ("csv", ";", True)
    assert g.file.encoding == "latin-1"
    assert g.kind == "orders"
    assert roles(g) == {"customer": "kunde", "time": "datum", "amount": "betrag"}
    assert g.roles["time"].time_format == "%Y%m%d"
    assert [c.field for c in g.segments] == ["stadt"]
    proposal, project = validates([path], tmp_path)
    assert [s.name for s in project.journey_map.stages] == ["Purchase", "Repeat"]
    assert project.journey_map.conversion_stage == "Purchase"
    repeat = project.journey_map.stages[1].repeat
    assert repeat.repeat_of == "Purchase" and repeat.distinct_by == "event_id"
    assert project.journey_map.metric_events["payment_succeeded"].source == "orders"
    src = project.config.sources["orders"]
    assert (src.delimiter, src.encoding, src.time_format("datum")) == (";", "latin-1",
                                                                        "%Y%m%d")
    assert src.event.customer.columns == ("kunde",)
    # no id column and times are days: a record is its file and line (two orders a day count)
    assert g.id_columns == [] and src.id_columns == ()
    assert project.config.events.columns["amount"] == "decimal"
    # a year of data: long horizons; paths relative to the project folder
    assert project.journey_map.repeat_horizons == (30, 90, 180)
    assert "path: orders.csv" in proposal.sources_yaml
    assert project.config.warehouse == tmp_path / "warehouse" / "journeys.duckdb"
    assert project.config.output_dir == tmp_path / "output"
    assert "# guessed: customer — its name; 40 distinct values" in proposal.sources_yaml
    assert project.journey_map.segments[0].column == "stadt"


def test_segment_export_with_identify_calls(tmp_path) -> None:
    path = segment_jsonl(tmp_path / "tracks.jsonl")
    g = inspect_file(path)
    assert g.file.segment and g.kind == "segment"
    r = roles(g)
    assert r["event_id"] == "messageId" and r["customer"] == "userId"
    assert r["anonymous_id"] == "anonymousId" and r["event_name"] == "event"
    assert r["time"] == "timestamp" and r["properties"] == "properties"
    assert r["amount"] == "properties.revenue" and r["order_id"] == "properties.order_id"
    assert g.roles["time"].has_offset
    proposal, project = validates([path], tmp_path)
    names = [s.name for s in project.journey_map.stages]
    assert names == ["Application Opened", "Product Viewed", "Product Added",
                     "Order Completed", "Repeat"]
    assert "identify" not in str(proposal.journey_map_yaml)
    src = project.config.sources["tracks"]
    assert src.event.event_name.columns == ("event", "type")  # identify calls: their type
    assert src.event.anonymous_id.columns == ("anonymous_id",)
    assert src.event.customer.columns == ("user_id",)
    assert project.journey_map.conversion_stage == "Order Completed"
    assert project.journey_map.stages[-1].repeat.distinct_by == "order_id"
    assert project.journey_map.metric_events["payment_succeeded"].event_names == (
        "Order Completed",)
    assert [s.name for s in project.journey_map.segments] == ["os_name"]
    assert project.journey_map.repeat_horizons == (1, 3, 7)  # under three weeks of data


def test_whitespace_process_log_without_header(tmp_path) -> None:
    path = process_txt(tmp_path / "log.txt")
    g = inspect_file(path)
    assert (g.file.delimiter, g.file.header) == ("whitespace", False)
    assert g.kind == "process"
    assert roles(g) == {"case": "column0", "event_name": "column1", "time": "column2"}
    assert g.roles["time"].time_format == "%Y%m%d"
    assert g.id_columns == []  # dates only: a case may do one step twice a day
    proposal, project = validates([path], tmp_path)
    stages = project.journey_map.stages
    assert [s.name for s in stages] == ["register", "check", "decide", "pay", "reject"]
    assert [s.optional for s in stages] == [False, False, False, False, True]
    assert project.journey_map.conversion_stage == "pay"  # most cases end there
    assert project.journey_map.purchase is None
    assert "purchase" not in project.journey_map.metric_stages


def test_parquet(tmp_path) -> None:
    path = parquet_file(tmp_path / "events.parquet")
    g = inspect_file(path)
    assert g.file.format == "parquet" and g.kind == "events"
    assert roles(g) == {"customer": "customer_id", "event_name": "event_name",
                        "time": "created_at", "amount": "price"}
    assert g.roles["time"].time_format == "iso"
    assert [c.field for c in g.segments] == ["platform"]
    _, project = validates([path], tmp_path)
    assert project.journey_map.conversion_stage == "purchase"
    assert [s.name for s in project.journey_map.stages] == ["visit", "cart", "purchase",
                                                            "Repeat"]


def test_xes(tmp_path) -> None:
    path = xes_file(tmp_path / "loans.xes")
    g = inspect_file(path)
    assert g.file.format == "xes" and g.kind == "process"
    assert roles(g) == {"case": "case:concept:name", "event_name": "concept:name",
                        "time": "time:timestamp"}
    proposal, project = validates([path], tmp_path)
    src = project.config.sources["loans"]
    assert src.columns["case_id"] == "case:concept:name"
    assert [s.name for s in project.journey_map.stages] == ["submit", "review", "approve",
                                                            "decline"]
    assert project.journey_map.conversion_stage == "approve"


def test_tsv_clickstream_epoch_ms(tmp_path) -> None:
    path = clickstream_tsv(tmp_path / "clicks.tsv")
    g = inspect_file(path)
    assert (g.file.format, g.file.delimiter) == ("tsv", "\t")
    assert g.kind == "clickstream"
    assert roles(g) == {"time": "event_time", "event_name": "event", "anonymous_id": "device_id",
                        "session": "session_id"}
    assert g.roles["time"].time_format == "epoch_ms"
    assert [c.field for c in g.segments][0] == "device"
    _, project = validates([path], tmp_path)
    src = project.config.sources["clicks"]
    assert src.format == "tsv" and src.time_format("event_time") == "epoch_ms"
    assert project.journey_map.stages[0].name == "land"
    assert project.journey_map.metric_events["app_activity"].source == "clicks"


def test_two_sources_one_project(tmp_path) -> None:
    files = [orders_csv(tmp_path / "orders.csv"), clickstream_tsv(tmp_path / "clicks.tsv")]
    proposal, project = validates(files, tmp_path)
    assert set(project.config.sources) == {"orders", "clicks"}
    names = [s.name for s in project.journey_map.stages]
    assert names[-2:] == ["Purchase", "Repeat"] and names[0] == "land"
    assert project.journey_map.conversion_stage == "Purchase"


def test_file_outside_the_project_folder_gets_an_absolute_path(tmp_path) -> None:
    path = orders_csv(tmp_path / "data" / "orders.csv") if (tmp_path / "data").mkdir() is None \
        else None
    proposal, project = validates([path], tmp_path / "project")
    assert f"path: {path}" in proposal.sources_yaml.replace('"', "")
    assert project.config.sources["orders"].files() == [path]


# --------------------------------------------------------------------------- details


def test_encodings(tmp_path) -> None:
    text = "name,city\nA,Köln\nB,Zürich\n"
    cases = {"utf8.csv": (text.encode(), "utf-8"),
             "bom.csv": (b"\xef\xbb\xbf" + text.encode(), "utf-8"),
             "utf16.csv": (text.encode("utf-16"), "utf-16"),
             "latin.csv": (text.encode("latin-1"), "latin-1"),
             "win.csv": ("name,q\nA,“quoted” €5\n".encode("cp1252"), "cp1252")}
    for name, (data, expected) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert detect_encoding(tmp_path / name)[0] == expected, name


@pytest.mark.parametrize(("values", "fmt"), [
    (["2024-01-05T10:00:00Z", "2024-01-06T11:00:00+02:00"], "iso"),
    (["2024-01-05 10:00:00", "2024-01-06 11:30:00"], "iso"),
    (["20240105", "20240131"], "%Y%m%d"),
    (["25/01/2024", "05/02/2024"], "%d/%m/%Y"),
    (["1704448800", "1704535200"], "epoch_s"),
    (["1704448800000", "1704535200123"], "epoch_ms"),
    (["1704448800000000", "1704535200000000"], "epoch_us"),
])
def test_time_formats(tmp_path, values, fmt) -> None:
    path = tmp_path / "t.csv"
    path.write_text("user_id,event,ts\n" + "".join(f"u{i},e,{v}\n" for i, v in enumerate(values)))
    g = inspect_file(path)
    assert g.roles["time"].field == "ts" and g.roles["time"].time_format == fmt


@pytest.mark.parametrize(("delim", "name"), [(",", "comma"), (";", "semicolon"),
                                             ("\t", "tab"), ("|", "pipe")])
def test_delimiters_and_gzip(tmp_path, delim, name) -> None:
    rows = ["customer_id", "activity", "timestamp"]
    body = [delim.join(rows)] + [delim.join([f"c{i % 4}", f"a{i % 3}",
                                             f"2024-01-{1 + i:02d}T00:00:00"])
                                 for i in range(20)]
    path = tmp_path / "log.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(body) + "\n").encode()))
    g = inspect_file(path)
    assert (g.file.format, g.file.compression, g.file.delimiter) == ("csv", "gzip", delim)
    assert roles(g)["event_name"] == "activity"
    validates([path], tmp_path)


def test_format_from_content(tmp_path) -> None:
    (tmp_path / "export").write_text('{"a": 1}\n')
    (tmp_path / "log").write_text('<?xml version="1.0"?>\n<log></log>\n')
    assert detect_format(tmp_path / "export") == ("jsonl", None)
    assert detect_format(tmp_path / "log") == ("xes", None)
    assert detect_format(tmp_path / "x.xes.gz") == ("xes", "gzip")


def test_names_and_yaml_values() -> None:
    assert snake("anonymousId") == "anonymous_id"
    assert snake("case:concept:name") == "case_concept_name"
    assert snake("Order Date") == "order_date"
    assert snake("2nd") == "c_2nd"
    assert source_name(Path("Orders 2024.csv.gz")) == "orders_2024"
    assert source_name(Path("running-example.xes")) == "running_example"
    for value in ["yes", "no", "on", "null", "1.5", "2024-01-01", "%Y%m%d", "a: b", "#x",
                  "Order Completed", "14d", "case:concept:name", "it's", ""]:
        assert yaml.safe_load(f"k: {yv(value)}") == {"k": value}, value
    assert yaml.safe_load(yv({"source": "x", "event_name": ["a b", "c"]})) == {
        "source": "x", "event_name": ["a b", "c"]}


def test_no_time_column_is_a_user_error(tmp_path) -> None:
    from transforms.errors import UserError

    path = tmp_path / "x.csv"
    path.write_text("user_id,event\nu1,a\nu2,b\n")
    with pytest.raises(UserError, match="no time column"):
        propose([path], tmp_path)
