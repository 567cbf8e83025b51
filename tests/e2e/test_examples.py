"""The examples in examples/ reproduce the figures of ../shared/datasets/README.md through
`journeys run` and `journeys report`, as a new user would run them.

The logs are not in the repository; the tests skip with a message when ../shared/datasets is
absent. Expected figures are the datasets' published ones (README of the datasets folder).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED
from tests.e2e.conftest import journeys

pytestmark = pytest.mark.slow

DATASETS = SHARED / "datasets"


def _example(name: str, tmp_path: Path, dataset: str) -> dict:
    log = DATASETS / dataset
    if not log.exists():
        pytest.skip(f"{log} is absent: the real event logs live in ../shared/datasets")
    # a copy of the example whose warehouse and outputs go to tmp, reading the same log
    folder = tmp_path / name
    shutil.copytree(REPO / "examples" / name, folder)
    config = folder / "sources.yaml"
    text = config.read_text()
    text = text.replace(f"../../warehouse/{name}/", "warehouse/").replace(
        f"../../output/{name}", "output").replace("../../../shared/datasets/", f"{DATASETS}/")
    config.write_text(text)
    env = {"DAGSTER_HOME": str(tmp_path / "dagster_home")}
    run = journeys("run", "--config", str(config), env=env, timeout=1500)
    assert run.returncode == 0, run.stderr[-3000:]
    report = journeys("report", "--config", str(config), "--format", "json", env=env)
    assert report.returncode == 0, report.stderr
    return json.loads(report.stdout)


def test_bpic2012_application_funnel(tmp_path: Path) -> None:
    r = _example("bpic2012", tmp_path, "bpic2012/bpic2012.xes.gz")
    assert (r["events"], r["customers"]) == (262_200, 13_087)
    assert r["sources"]["bpic"] == {"read": 262_200, "loaded": 262_200, "quarantined": 0,
                                    "duplicates": 0, "rejected": 0}
    # the published funnel on COMPLETE A_ events
    assert [s["customers"] for s in r["stages"]] == [13_087, 7_367, 5_113, 5_015, 2_246]
    assert r["purchasers"] is None  # a loan log has no purchases


def test_helpdesk_tickets(tmp_path: Path) -> None:
    r = _example("helpdesk", tmp_path, "pm4py_helpdesk/helpdesk.xes.gz")
    assert (r["events"], r["customers"]) == (21_348, 4_580)
    assert r["sources"]["tickets"]["loaded"] == 21_348
    # Opened = the cases with an "Assign seriousness" or "Insert ticket" event, counted here
    # from the log itself by pm4py
    import pm4py

    log = pm4py.read_xes(str(DATASETS / "pm4py_helpdesk/helpdesk.xes.gz"),
                         return_legacy_log_object=False)
    opened = log[log["concept:name"].isin(["Assign seriousness", "Insert ticket"])]
    assert r["stages"][0] == {"name": "Opened",
                              "customers": opened["case:concept:name"].nunique()}
    assert [s["name"] for s in r["stages"]] == ["Opened", "Taken in charge", "Resolved",
                                                "Closed"]
