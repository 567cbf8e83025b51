"""Real event logs (../shared/datasets): published figures and identity with pm4py.

The figures come from /work/shared/datasets/README.md (the published BPIC 2012 page and the pm4py
test data); pm4py's own reader and algorithms are the independent computation for the rest.
Each log is read once per module, by pm4py and by us.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pandas as pd
import pytest

os.environ.setdefault("PM4PY_SHOW_PROGRESS_BAR", "False")
pm4py = pytest.importorskip("pm4py")

from pipelines.cli import main  # noqa: E402
from transforms import mining  # noqa: E402
from transforms.eventlog import read_event_log  # noqa: E402

DATASETS = Path(__file__).parents[2].parent / "shared" / "datasets"

# name: (file, cases, events, activities, variants)
FIGURES = {
    "bpic2012": ("bpic2012/bpic2012.xes.gz", 13_087, 262_200, 24, 4_366),
    "receipt": ("pm4py_receipt/receipt.xes.gz", 1_434, 8_577, 27, 116),
    "helpdesk": ("pm4py_helpdesk/helpdesk.xes.gz", 4_580, 21_348, 14, 226),
    "running_example": ("pm4py_running_example/running-example.xes", 6, 42, 8, 6),
}

pytestmark = pytest.mark.skipif(
    not DATASETS.is_dir(),
    reason=f"real event logs not found at {DATASETS} (shared datasets folder absent)",
)


def _path(name: str) -> Path:
    path = DATASETS / FIGURES[name][0]
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def _mine_json(capsys, *args: str) -> dict:
    assert main(["mine", *args, "--format", "json", "--top", "5"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def loaded():
    """name -> (duckdb connection, our log table, pm4py frame sorted stably by case and time)."""
    cache: dict[str, tuple] = {}

    def load(name: str):
        if name not in cache:
            path = _path(name)
            con = duckdb.connect()
            table = read_event_log(con, path, table=f"log_{name}").alias
            frame = pm4py.read_xes(str(path), return_legacy_log_object=False)
            frame = frame.astype({"case:concept:name": object, "concept:name": object})
            frame = frame.sort_values(["case:concept:name", "time:timestamp"], kind="stable")
            cache[name] = (con, table, frame)
        return cache[name]

    yield load
    for con, _, _ in cache.values():
        con.close()


@pytest.mark.parametrize("name", ["receipt", "helpdesk", "running_example",
                                  pytest.param("bpic2012", marks=pytest.mark.slow)])
def test_cli_reproduces_published_figures(name, capsys):
    _, cases, events, activities, n_variants = FIGURES[name]
    out = _mine_json(capsys, "--events", str(_path(name)))
    assert (out["cases"], out["events"], out["activities"], out["variants"]) == (
        cases, events, activities, n_variants)
    assert sum(out["start_activities"].values()) == cases
    assert sum(out["end_activities"].values()) == cases


@pytest.mark.slow
def test_bpic2012_complete_only_has_4336_variants(capsys):
    out = _mine_json(capsys, "--events", str(_path("bpic2012")), "--lifecycle", "complete")
    assert out["variants"] == 4_336
    assert out["cases"] == 13_087
    # funnel figures of the README: every case is submitted, 7,635 declined
    assert out["start_activities"] == {"A_SUBMITTED": 13_087}


@pytest.mark.parametrize("name", ["receipt", "helpdesk", "running_example",
                                  pytest.param("bpic2012", marks=pytest.mark.slow)])
def test_reader_and_engine_equal_pm4py(name, loaded):
    con, table, frame = loaded(name)
    # reader: same events, in the same order, same UTC instants
    ours = con.sql(f'select "case", activity, ts from {table} order by event_index').df()
    theirs = frame.sort_index()  # pm4py's frame in file order
    assert ours["case"].tolist() == theirs["case:concept:name"].tolist()
    assert ours["activity"].tolist() == theirs["concept:name"].tolist()
    expected_ts = theirs["time:timestamp"].dt.tz_convert("UTC").dt.tz_localize(None)
    assert (pd.to_datetime(ours["ts"]).to_numpy() == expected_ts.to_numpy()).all()
    # engine
    assert dict(mining.variant_counts(con, table)) == dict(pm4py.get_variants(frame))
    dfg, starts, ends = pm4py.discover_dfg(frame)
    assert {(f, t): n for f, t, n, *_ in mining.dfg(con, table).fetchall()} == dict(dfg)
    assert mining.start_activities(con, table) == dict(starts)
    assert mining.end_activities(con, table) == dict(ends)


@pytest.mark.parametrize("name", ["receipt", "helpdesk"])
def test_performance_dfg_equals_pm4py(name, loaded):
    con, table, frame = loaded(name)
    perf, _, _ = pm4py.discover_performance_dfg(frame)
    for f, t, _, mean, median, _ in mining.dfg(con, table).fetchall():
        assert mean == pytest.approx(perf[(f, t)]["mean"], rel=1e-9, abs=1e-6)
        assert median == pytest.approx(perf[(f, t)]["median"], rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("name", ["receipt", "helpdesk", "running_example"])
def test_model_and_fitness_from_variants_equal_pm4py(name, loaded):
    con, table, frame = loaded(name)
    vc = mining.variant_counts(con, table)
    ours = mining.discover_model(vc, noise_threshold=0.2)
    theirs = pm4py.discover_process_tree_inductive(frame, noise_threshold=0.2)
    assert str(ours) == str(theirs)
    assert str(mining.discover_model(vc)) == str(pm4py.discover_process_tree_inductive(frame))
    # IMf with noise does not fit every trace: a non-trivial fitness to compare
    net, im, fm = pm4py.convert_to_petri_net(theirs)
    expected = pm4py.fitness_token_based_replay(frame, net, im, fm)
    got = mining.conformance(vc, (net, im, fm))
    assert got.log_fitness == pytest.approx(expected["log_fitness"], abs=1e-12)
    assert 100 * got.fitting_cases_share == pytest.approx(expected["perc_fit_traces"])
