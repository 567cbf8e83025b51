"""The benchmark suite at a tiny size, end to end (no timing assertions): every row of the
table is there, in the printed table and in the JSON, and the identity checks ran and held."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SIZE = "10k"


@pytest.mark.slow
def test_suite_runs_every_part_and_checks_identity(tmp_path: Path) -> None:
    out = tmp_path / "suite.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.suite", "--size", SIZE, "--daily-days", "3,4",
         "--daily-customers-per-day", "10", "--daily-repeat", "2",
         "--workdir", str(tmp_path / "work"),
         "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    works = [r["work"] for r in report["rows"]]
    for expected in ("floor (DuckDB: read, union, sort)", "journeys run (end to end)",
                     "mining: ours", "mining: pm4py (full log)", "funnel: engine",
                     "funnel: pandas", "  outside steps (start-up, imports)"):
        assert expected in works
    # one row per Dagster step of the run, among them these
    steps = {w.split()[1] for w in works if w.startswith("  step ")}
    assert {"raw_clickstream", "raw_bookings", "raw_payments", "events", "journeys",
            "mining_log", "dashboard"} <= steps
    # the daily scenario: per history length one row of medians over the repeated runs
    # (every run's CPU in its note), then its steps; the ratio is to the shortest history
    for days in (3, 4):
        daily = [r for r in report["rows"] if r["size"] == f"daily {days}d"]
        assert daily[0]["work"].startswith(f"daily run after {days} days")
        assert "median CPU of 2 runs" in daily[0]["note"]
        assert {r["work"].split()[1] for r in daily[1:]} >= {"events", "findings", "dashboard"}
        assert all(r["work"].startswith("  step ") and r["wall_s"] >= 0 for r in daily[1:])
    ratio = float(report["rows"][[r["size"] for r in report["rows"]].index("daily 4d")]
                  ["note"].split("x")[0])
    short = next(r for r in report["rows"] if r["size"] == "daily 3d")
    longer = next(r for r in report["rows"] if r["size"] == "daily 4d")
    assert ratio == pytest.approx(longer["cpu_s"] / short["cpu_s"], abs=0.01)
    # measured rows have all three figures; the floor is the reference of its size
    for r in report["rows"]:
        if not r["work"].startswith("  "):
            assert r["cpu_s"] > 0 and r["wall_s"] > 0 and r["peak_rss_mib"] > 0, r
    floor = next(r for r in report["rows"] if r["work"].startswith("floor"))
    assert floor["cpu_x_floor"] == 1.0
    # the identity checks ran, on what they must compare, and held
    checks = {c["check"]: c for c in report["checks"]}
    assert set(checks) == {"journeys = journey_variants rows", "mining: ours = pm4py",
                           "funnel: engine = pandas"}
    assert all(c["passed"] and c["size"] == SIZE for c in checks.values())
    assert set(checks["mining: ours = pm4py"]["compared"]) == {
        "variants", "dfg", "dfg_mean", "dfg_median", "start_end", "tree", "fitness"}
    assert checks["journeys = journey_variants rows"]["journeys"] > 0
    assert report["failures"] == []
    # the printed table holds the same rows
    for w in works:
        assert w.strip() in proc.stdout
    assert f"identical  {SIZE}" in proc.stdout
