"""The mining tables of a real `journeys run` on the sample equal pm4py on the full log.

pm4py gets the whole mining log (every stage visit of every journey), not our compact variant
input: DFG counts, variants with counts, start/end activities and token-replay fitness against
the designed journey must all be identical.
"""

from __future__ import annotations

import os

import duckdb
import pandas as pd
import pytest

from tests.conftest import SAMPLE_CONFIG
from tests.e2e.conftest import SampleRun

pytestmark = pytest.mark.slow
os.environ.setdefault("PM4PY_SHOW_PROGRESS_BAR", "False")


@pytest.fixture(scope="module")
def tables(sample_run: SampleRun) -> dict:
    assert sample_run.returncode == 0, sample_run.stderr[-2000:]
    con = duckdb.connect(str(sample_run.warehouse), read_only=True)
    out = {
        "log": con.execute('select "case", activity, ts, event_index from mining_log '
                           'order by "case", ts, event_index').df(),
        "edges": {(s, t): n for s, t, n in con.execute(
            "select source, target, count from dfg_edges").fetchall()},
        "variants": {tuple(v): n for v, n in con.execute(
            "select stages, journeys from variants").fetchall()},
        "ends": {(a, k): n for a, k, n in con.execute(
            "select activity, kind, count from dfg_endpoints").fetchall()},
        "fitness": con.execute("select fitness from conformance_overall").fetchall()[0][0],
    }
    con.close()
    return out


@pytest.fixture(scope="module")
def pm4py_log(tables: dict) -> pd.DataFrame:
    import pm4py

    df = tables["log"].rename(columns={"case": "case:concept:name", "activity": "concept:name",
                                       "ts": "time:timestamp"})
    df["case:concept:name"] = df["case:concept:name"].astype(object)
    df["concept:name"] = df["concept:name"].astype(object)
    df["time:timestamp"] = pd.to_datetime(df["time:timestamp"], utc=True)
    # stable sort by case and time in file order (event_index) is what pm4py expects
    df = df.sort_values(["case:concept:name", "time:timestamp", "event_index"], kind="stable")
    return pm4py.format_dataframe(df, case_id="case:concept:name", activity_key="concept:name",
                                  timestamp_key="time:timestamp")


def test_dfg_variants_and_endpoints_equal_pm4py_on_the_full_log(tables, pm4py_log) -> None:
    import pm4py

    dfg, starts, ends = pm4py.discover_dfg(pm4py_log)
    assert tables["edges"] == dict(dfg)
    variants = pm4py.get_variants(pm4py_log)
    assert tables["variants"] == {tuple(k): int(v) for k, v in variants.items()}
    assert {a: n for (a, k), n in tables["ends"].items() if k == "start"} == dict(starts)
    assert {a: n for (a, k), n in tables["ends"].items() if k == "end"} == dict(ends)


def test_replay_fitness_equals_pm4py_on_the_full_log(tables, pm4py_log, sample_run) -> None:
    import pm4py

    from transforms.journey_map import load_journey_map
    from transforms.mining import DesignedJourney

    jmap = load_journey_map(SAMPLE_CONFIG.parent / "journey_map.yaml")  # what the run used
    designed = DesignedJourney(tuple(jmap.stage_names),
                               frozenset(s.name for s in jmap.stages if s.optional))
    net, im, fm = pm4py.convert_to_petri_net(pm4py.parse_process_tree(designed.tree()))
    full = pm4py.fitness_token_based_replay(pm4py_log, net, im, fm)
    assert tables["fitness"] == pytest.approx(full["log_fitness"], abs=1e-12)
