"""Every table of a sample run equals the reference recorded before the redesign (issue 8).

The reference (`sample_table_checksums.json`) was recorded from the tables of commit 7a06e57 with
`python -m tests.e2e.table_checksums WAREHOUSE`. A change that means to change numbers records it
again and says why in its commit; tables added since are not compared. Recorded again since:
- `ingest_reconciliation`: its `files` column now lists, per day, the files that may hold rows
  of that day (before: the files of the 3-day chunk the day was loaded in); every count equal.
- `purchases`: its `booking_id` column is `order_id` (the journey map's purchase key, any
  business's order); every row equal.
- `daily_stage_rates` (issue 10): the robust-z columns (dropout_z, failure_z, anomaly,
  anomaly_reason) are gone; dropout_finding and failure_finding point at the findings whose
  window holds the day. Same rows; the counts and rates come from the same SQL, unchanged.
- `stage_transition_segments` (issue 11): `z_score` is the z-test on dropout, so its sign is
  `dropout_diff`'s; every other value equal (checked row by row), p-values unchanged.
- the mining tables (`mining_log`, `variants`, `journey_variants`, `dfg_edges`,
  `dfg_endpoints`, `dropoff_points`, `conformance_overall`, `conformance_deviations`; issue 11):
  the sample's Discovery has `occurrence: first`, so an app open in a later session is a
  return (`stage_returns`), not a step back to Discovery: 81 paths become 15.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import journeys, sample_config
from tests.e2e.table_checksums import table_checksums

REFERENCE = Path(__file__).with_name("sample_table_checksums.json")

pytestmark = pytest.mark.slow


def test_every_reference_table_is_unchanged(tmp_path: Path) -> None:
    # a run of its own: the shared sample run is re-run partly by other tests
    config = sample_config(tmp_path)
    proc = journeys("run", "--config", str(config),
                    env={"DAGSTER_HOME": str(tmp_path / "dagster_home")})
    assert proc.returncode == 0, proc.stderr
    reference = json.loads(REFERENCE.read_text())
    now = table_checksums(tmp_path / "warehouse" / "journeys.duckdb")
    missing = sorted(set(reference) - set(now))
    assert not missing, f"tables gone: {missing}"
    changed = {t: (reference[t], now[t]) for t in reference if reference[t] != now[t]}
    assert not changed, "tables changed:\n" + "\n".join(
        f"{t}: columns {a['columns'] == b['columns']}, rows {a['rows']} -> {b['rows']}"
        for t, (a, b) in changed.items())
