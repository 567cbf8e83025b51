"""`journeys init` end to end: it prints its guesses and a check list, writes commented
sources.yaml and journey_map.yaml that validate, refuses to overwrite, reports a config it wrote
that does not validate as its own bug; and (slow) `journeys run` runs what it wrote."""

from __future__ import annotations

import duckdb
import pytest
import yaml

from pipelines.cli import main
from tests.transforms.test_inspect import (
    clickstream_tsv,
    orders_csv,
    parquet_file,
    process_txt,
    segment_jsonl,
    xes_file,
)
from transforms.project import load_project


def init(capsys, *argv):
    code = main(["init", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_orders_prints_guesses_and_writes_valid_commented_files(capsys, tmp_path) -> None:
    path = orders_csv(tmp_path / "orders.csv")
    code, out, err = init(capsys, "--events", path, "--out", tmp_path)
    assert code == 0, err
    assert "delimiter semicolon" in out and "encoding latin-1" in out
    assert "customer      'kunde'" in out and "time          'datum'" in out
    assert "amount        'betrag'" in out
    assert "stages: Purchase -> Repeat" in out
    assert "\ncheck:\n" in out and "timezone" in out
    assert f"next: journeys run --config {tmp_path / 'sources.yaml'}" in out
    sources = (tmp_path / "sources.yaml").read_text()
    jmap = (tmp_path / "journey_map.yaml").read_text()
    assert "# guessed: customer" in sources and "# guessed: time" in sources
    assert "# guessed:" in jmap
    assert yaml.safe_load(sources)["sources"]["orders"]["path"] == "orders.csv"
    project = load_project(tmp_path / "sources.yaml")
    assert project.journey_map.stage_names == ["Purchase", "Repeat"]


@pytest.mark.parametrize("make", [segment_jsonl, process_txt, parquet_file, xes_file,
                                  clickstream_tsv],
                         ids=["segment", "process", "parquet", "xes", "tsv"])
def test_every_format_validates(capsys, tmp_path, make) -> None:
    suffix = {"segment_jsonl": "jsonl", "process_txt": "txt", "parquet_file": "parquet",
              "xes_file": "xes", "clickstream_tsv": "tsv"}[make.__name__]
    path = make(tmp_path / f"export.{suffix}")
    code, out, err = init(capsys, "--events", path, "--out", tmp_path / "p")
    assert code == 0, err
    assert "stages: " in out and "check:" in out
    load_project(tmp_path / "p" / "sources.yaml")


def test_several_files(capsys, tmp_path) -> None:
    a = orders_csv(tmp_path / "orders.csv")
    b = clickstream_tsv(tmp_path / "clicks.tsv")
    code, out, err = init(capsys, "--events", a, "--events", b, "--out", tmp_path)
    assert code == 0, err
    assert set(load_project(tmp_path / "sources.yaml").config.sources) == {"orders", "clicks"}


def test_refuses_to_overwrite_without_force(capsys, tmp_path) -> None:
    path = orders_csv(tmp_path / "orders.csv")
    (tmp_path / "sources.yaml").write_text("# mine\n")
    code, out, err = init(capsys, "--events", path, "--out", tmp_path)
    assert code == 2 and "exists; pass --force" in err
    assert (tmp_path / "sources.yaml").read_text() == "# mine\n"
    code, out, err = init(capsys, "--events", path, "--out", tmp_path, "--force")
    assert code == 0, err


def test_missing_file_and_no_time_are_one_line_errors(capsys, tmp_path) -> None:
    code, _, err = init(capsys, "--events", tmp_path / "nope.csv", "--out", tmp_path)
    assert code == 2 and "no such file" in err and "Traceback" not in err
    (tmp_path / "x.csv").write_text("user_id,event\nu1,a\nu2,b\n")
    code, _, err = init(capsys, "--events", tmp_path / "x.csv", "--out", tmp_path)
    assert code == 2 and "no time column" in err


def test_a_config_that_does_not_validate_is_reported_as_a_bug(capsys, tmp_path,
                                                              monkeypatch) -> None:
    import transforms.inspect as inspect

    real = inspect.render_journey_map
    monkeypatch.setattr(inspect, "render_journey_map",
                        lambda p: real(p).replace("conversion_stage: Purchase",
                                                  "conversion_stage: Nowhere"))
    path = orders_csv(tmp_path / "orders.csv")
    code, _, err = init(capsys, "--events", path, "--out", tmp_path)
    assert code == 2
    assert "bug in journeys init" in err and "conversion_stage" in err


@pytest.mark.slow
def test_journeys_run_on_the_orders_export(tmp_path) -> None:
    from tests.e2e.conftest import journeys

    path = orders_csv(tmp_path / "orders.csv", customers=60, days=500)
    proc = journeys("init", "--events", str(path), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    proc = journeys("run", "--config", str(tmp_path / "sources.yaml"),
                    env={"DAGSTER_HOME": str(tmp_path / "dagster_home")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    con = duckdb.connect(str(tmp_path / "warehouse" / "journeys.duckdb"), read_only=True)
    try:
        rows = (tmp_path / "orders.csv").read_bytes().count(b"\n") - 1
        assert con.execute("SELECT count(*) FROM raw_orders").fetchone()[0] == rows
        assert con.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
        buyers, repeaters = con.execute(
            "SELECT count(DISTINCT customer_id), "
            "count(DISTINCT customer_id) FILTER (WHERE purchase_number = 2) FROM purchases"
        ).fetchone()
        assert buyers == 60 and 0 < repeaters < 60
        revenue = con.execute("SELECT sum(amount) FROM purchases").fetchone()[0]
        assert revenue == con.execute("SELECT sum(betrag) FROM raw_orders").fetchone()[0]
    finally:
        con.close()
    assert (tmp_path / "output" / "dashboard" / "index.html").exists()
