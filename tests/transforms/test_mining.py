"""The mining engine against pm4py on the full log, and deviations on hand-built journeys.

Identity tests: DuckDB results (variants, DFG, performance DFG, start/end activities) and the
per-variant pm4py work (inductive miner, token replay) must equal what pm4py computes on the
whole event log. The generated log has equal timestamps within a case and is written out of time
order, so ordering and tie-breaking are exercised.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from datetime import datetime, timedelta

import pandas as pd
import pytest

os.environ.setdefault("PM4PY_SHOW_PROGRESS_BAR", "False")
pm4py = pytest.importorskip("pm4py")

from transforms import mining  # noqa: E402
from transforms.errors import UserError  # noqa: E402
from transforms.eventlog import read_event_log  # noqa: E402

STAGES = ["Discovery", "Consideration", "Decision", "Purchase", "Service", "Repeat"]
# next stage -> probability, per stage; "end" stops the journey. Loops, skips and returns.
FLOW = {
    None: [("Discovery", 0.9), ("Consideration", 0.1)],
    "Discovery": [("Consideration", 0.6), ("Decision", 0.1), ("end", 0.3)],
    "Consideration": [("Decision", 0.45), ("Consideration", 0.15), ("Discovery", 0.05),
                      ("end", 0.35)],
    "Decision": [("Purchase", 0.6), ("Consideration", 0.15), ("end", 0.25)],
    "Purchase": [("Service", 0.8), ("Decision", 0.05), ("end", 0.15)],
    "Service": [("Repeat", 0.3), ("end", 0.7)],
    "Repeat": [("Purchase", 0.2), ("end", 0.8)],
}


def generated_events(cases: int = 1500, seed: int = 7) -> list[tuple[str, str, datetime]]:
    """Stage-level journeys; steps of 0–3 minutes (so ties happen); rows shuffled."""
    rng = random.Random(seed)
    rows = []
    for c in range(cases):
        t = datetime(2024, 3, 1) + timedelta(minutes=rng.randrange(60 * 24 * 30))
        stage = None
        for _ in range(30):
            options, weights = zip(*FLOW[stage], strict=True)
            stage = rng.choices(options, weights)[0]
            if stage == "end":
                break
            rows.append((f"c{c:05d}", stage, t))
            t += timedelta(minutes=rng.choice([0, 0, 1, 2, 3]))
    rng.shuffle(rows)
    return rows


@pytest.fixture(scope="module")
def con(module_con):
    return module_con  # the log below lives on it


@pytest.fixture(scope="module")
def log(con, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("mining") / "journeys.csv"
    frame = pd.DataFrame(generated_events(), columns=["case", "activity", "timestamp"])
    frame.to_csv(path, index=False)
    read_event_log(con, path, table="gen_log")
    return "gen_log"


@pytest.fixture(scope="module")
def pm_frame() -> pd.DataFrame:
    """The same log as pm4py wants it: file order, object dtypes, UTC, stably sorted."""
    frame = pd.DataFrame(generated_events(), columns=["case:concept:name", "concept:name",
                                                      "time:timestamp"])
    frame = frame.astype({"case:concept:name": object, "concept:name": object})
    frame["time:timestamp"] = pd.to_datetime(frame["time:timestamp"], utc=True)
    return frame.sort_values(["case:concept:name", "time:timestamp"], kind="stable")


def test_generated_log_has_ties_and_is_out_of_order(pm_frame):
    dup = pm_frame.duplicated(["case:concept:name", "time:timestamp"]).sum()
    assert dup > 100
    assert not pm_frame.index.is_monotonic_increasing


def test_variants_equal_pm4py(con, log, pm_frame):
    expected = pm4py.get_variants(pm_frame)
    assert dict(mining.variant_counts(con, log)) == dict(expected)
    rows = mining.variants(con, log).fetchall()
    assert {tuple(r[0]): r[1] for r in rows} == dict(expected)
    assert sum(r[2] for r in rows) == pytest.approx(1.0)
    counts = [r[1] for r in rows]
    assert counts == sorted(counts, reverse=True)


def test_variant_median_duration_is_per_case_duration(con, log, pm_frame):
    spans = pm_frame.groupby("case:concept:name", sort=False).agg(
        acts=("concept:name", tuple), first=("time:timestamp", "min"),
        last=("time:timestamp", "max"))
    spans["seconds"] = (spans["last"] - spans["first"]).dt.total_seconds()
    expected = spans.groupby("acts")["seconds"].median().to_dict()
    for acts, _, _, median, *_ in mining.variants(con, log).fetchall():
        assert median == pytest.approx(expected[tuple(acts)])


def test_dfg_and_endpoints_equal_pm4py(con, log, pm_frame):
    dfg, starts, ends = pm4py.discover_dfg(pm_frame)
    ours = {(f, t): n for f, t, n, *_ in mining.dfg(con, log).fetchall()}
    assert ours == dict(dfg)
    assert mining.start_activities(con, log) == dict(starts)
    assert mining.end_activities(con, log) == dict(ends)
    assert mining.start_activities(con, log) == dict(pm4py.get_start_activities(pm_frame))
    assert mining.end_activities(con, log) == dict(pm4py.get_end_activities(pm_frame))


def test_performance_dfg_equals_pm4py(con, log, pm_frame):
    perf, _, _ = pm4py.discover_performance_dfg(pm_frame)
    rows = mining.dfg(con, log).fetchall()
    assert {(f, t) for f, t, *_ in rows} == set(perf)
    for f, t, _, mean, median, p90 in rows:
        assert mean == pytest.approx(perf[(f, t)]["mean"], abs=1e-6)
        assert median == pytest.approx(perf[(f, t)]["median"], abs=1e-6)
        assert perf[(f, t)]["min"] <= p90 <= perf[(f, t)]["max"]


def test_dfg_p90_is_linear_interpolation(con):
    con.execute("""create or replace temp table p90_log as
        select * from (values
          ('a', 'X', 0, 0), ('a', 'Y', 10, 1),
          ('b', 'X', 0, 2), ('b', 'Y', 20, 3),
          ('c', 'X', 0, 4), ('c', 'Y', 40, 5)
        ) t("case", activity, s, event_index)""")
    con.execute("create or replace temp table p90_log as select * exclude (s), "
                "timestamp '2024-01-01' + to_seconds(s) as ts from p90_log")
    [(f, t, n, mean, median, p90)] = mining.dfg(con, "p90_log").fetchall()
    # durations 10, 20, 40 s: mean 70/3, median 20, p90 = 20 + 0.8 * (40 - 20) = 36
    assert (f, t, n) == ("X", "Y", 3)
    assert (mean, median, p90) == (pytest.approx(70 / 3), 20.0, pytest.approx(36.0))


def test_tie_break_is_event_index(con):
    con.execute("""create or replace temp table tie_log as
        select * from (values
          ('a', 'B', timestamp '2024-01-01 10:00:00', 0),
          ('a', 'A', timestamp '2024-01-01 10:00:00', 1),
          ('a', 'Z', timestamp '2024-01-01 09:00:00', 2)
        ) t("case", activity, ts, event_index)""")
    assert dict(mining.variant_counts(con, "tie_log")) == {("Z", "B", "A"): 1}
    without_index = con.sql('select "case", activity, ts from tie_log')
    # without event_index the tie-break is the activity name
    assert dict(mining.variant_counts(con, without_index)) == {("Z", "A", "B"): 1}


def test_converted_flag_gives_conversion_per_variant(con):
    con.execute("""create or replace temp table conv_log as
        select * from (values
          ('a', 'X', timestamp '2024-01-01 10:00:00', 0, true),
          ('b', 'X', timestamp '2024-01-01 10:00:00', 1, false),
          ('c', 'X', timestamp '2024-01-01 10:00:00', 2, true),
          ('d', 'Y', timestamp '2024-01-01 10:00:00', 3, false)
        ) t("case", activity, ts, event_index, converted)""")
    rows = {tuple(r[0]): r for r in mining.variants(con, "conv_log").fetchall()}
    assert rows[("X",)][4:] == (2, pytest.approx(2 / 3))
    assert rows[("Y",)][4:] == (0, 0.0)


def test_summary_shape(con, log, pm_frame):
    s = mining.summary(con, log, top=3)
    assert s["cases"] == pm_frame["case:concept:name"].nunique()
    assert s["events"] == len(pm_frame)
    assert s["activities"] == pm_frame["concept:name"].nunique()
    assert s["variants"] == len(pm4py.get_variants(pm_frame))
    assert len(s["top_variants"]) == 3
    top = Counter(pm4py.get_variants(pm_frame)).most_common(1)[0]
    assert s["top_variants"][0] == {"activities": list(top[0]), "count": top[1]}
    assert {"from", "to", "count", "median_seconds"} <= set(s["dfg"][0])


def test_missing_column_is_user_error(con):
    con.execute('create or replace temp table bad_log as select 1 as "case", 2 as activity')
    with pytest.raises(UserError, match="ts"):
        mining.variants(con, "bad_log")


@pytest.mark.parametrize("noise", [0.0, 0.2])
def test_model_from_variants_equals_pm4py_on_full_log(con, log, pm_frame, noise):
    ours = mining.discover_model(mining.variant_counts(con, log), noise_threshold=noise)
    theirs = pm4py.discover_process_tree_inductive(pm_frame, noise_threshold=noise)
    assert str(ours) == str(theirs)


def test_weighted_variant_replay_equals_pm4py_on_full_log(con, log, pm_frame):
    designed = mining.DesignedJourney(tuple(STAGES[:5]), frozenset({"Consideration"}))
    ours = mining.conformance(mining.variant_counts(con, log), designed)
    net, im, fm = pm4py.convert_to_petri_net(pm4py.parse_process_tree(designed.tree()))
    theirs = pm4py.fitness_token_based_replay(pm_frame, net, im, fm)
    assert 0.5 < ours.log_fitness < 1.0
    assert ours.log_fitness == pytest.approx(theirs["log_fitness"], abs=1e-12)
    assert 100 * ours.fitting_cases_share == pytest.approx(theirs["perc_fit_traces"])
    assert ours.average_case_fitness == pytest.approx(theirs["average_trace_fitness"])


def test_discovered_model_fits_its_log_and_exports(con, log, tmp_path):
    vc = mining.variant_counts(con, log)
    tree = mining.discover_model(vc)
    assert mining.conformance(vc, tree).log_fitness == pytest.approx(1.0)
    bpmn = mining.export_bpmn(tree, tmp_path / "model.bpmn")
    pnml = mining.export_pnml(tree, tmp_path / "model.pnml")
    assert "definitions" in bpmn.read_text() and "<pnml" in pnml.read_text()


# --- designed journey and deviations -------------------------------------------------------

DESIGNED = mining.DesignedJourney(("Discovery", "Consideration", "Decision", "Purchase"),
                                  frozenset({"Consideration"}))


def test_designed_tree_is_prefix_closed():
    assert mining.designed_journey_tree(["A", "B", "C"], {"B"}) == (
        "X( tau, ->( 'A', ->( X( tau, 'B' ), X( tau, 'C' ) ) ) )")
    # every prefix of a designed path replays perfectly
    vc = Counter({("Discovery",): 1, ("Discovery", "Consideration"): 1,
                  ("Discovery", "Decision"): 1, ("Discovery", "Consideration", "Decision"): 1,
                  ("Discovery", "Decision", "Purchase"): 1,
                  ("Discovery", "Consideration", "Decision", "Purchase"): 1})
    result = mining.conformance(vc, DESIGNED)
    assert all(v.is_fit and v.fitness == 1.0 for v in result.variants)
    assert all(not v.deviations.any for v in result.variants)
    assert result.log_fitness == 1.0


def test_single_quote_in_stage_is_user_error():
    with pytest.raises(UserError, match="single quote"):
        mining.designed_journey_tree(["Don't"], set())


@pytest.mark.parametrize(
    "journey, expected",
    [
        # stops early: drop-off, not a deviation
        (["Discovery", "Consideration"], {}),
        (["Discovery"], {}),
        # optional stage left out
        (["Discovery", "Decision", "Purchase"], {}),
        # required stage skipped (Decision), with a later stage reached
        (["Discovery", "Consideration", "Purchase"], {"skipped": ["Decision"]}),
        # journey starting late skips the required first stage
        (["Decision"], {"skipped": ["Discovery"]}),
        # repeated stage, consecutively and after a return
        (["Discovery", "Consideration", "Consideration", "Decision"],
         {"repeated": ["Consideration"]}),
        (["Discovery", "Decision", "Discovery", "Decision"],
         {"repeated": ["Discovery", "Decision"]}),
        # out of order: Consideration first occurs after Decision
        (["Discovery", "Decision", "Consideration", "Purchase"],
         {"out_of_order": ["Consideration"]}),
        # out of order, and the required stage it jumped over is not skipped (it happened late)
        (["Discovery", "Purchase", "Decision"], {"out_of_order": ["Decision"]}),
        # activities outside the journey map
        (["Discovery", "Refund", "Decision"], {"unexpected": ["Refund"]}),
    ],
)
def test_deviations(journey, expected):
    got = mining.deviations(journey, DESIGNED).as_dict()
    want = {"skipped": [], "repeated": [], "out_of_order": [], "unexpected": []} | expected
    assert got == want


@pytest.mark.parametrize("journey", [
    ("Discovery", "Consideration", "Purchase"),
    ("Discovery", "Decision", "Decision"),
    ("Discovery", "Decision", "Consideration"),
])
def test_a_deviation_lowers_replay_fitness(journey):
    result = mining.conformance(Counter({journey: 3}), DESIGNED)
    [v] = result.variants
    assert v.deviations.any and not v.is_fit and v.fitness < 1.0 and v.count == 3


def test_designed_journey_validates():
    with pytest.raises(UserError):
        mining.DesignedJourney(("A", "A"))
    with pytest.raises(UserError):
        mining.DesignedJourney(("A",), frozenset({"B"}))
