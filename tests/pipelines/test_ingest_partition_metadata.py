"""A run over a range loads it in one pass and still gives each daily partition its own
counts in its materialisation (issue 13); the counts are the records `fill` writes by hand."""

from __future__ import annotations

from tests.conftest import TinyProject
from tests.pipelines.test_ingest_assets import fill, run


def test_each_partition_of_a_range_run_carries_its_own_counts(tiny: TinyProject) -> None:
    fill(tiny)
    result = run(tiny, "2026-10-01", "2026-10-02")
    assert result.success
    meta = {(m.asset_key.to_user_string(), m.partition): m.metadata
            for m in result.get_asset_materialization_events()
            for m in [m.event_specific_data.materialization]}
    day1 = meta[("raw_clickstream", "2026-10-01")]
    day2 = meta[("raw_clickstream", "2026-10-02")]
    # 1 October: m1, its copy, m2, a broken line and m3 (late, from the file of 2 October)
    assert (day1["rows_read"].value, day1["rows_loaded"].value, day1["rows_quarantined"].value,
            day1["rows_duplicate"].value) == (5, 3, 1, 1)
    assert day1["dagster/row_count"].value == 3
    assert day1["quarantine_reasons"].value == "malformed JSON line (1)"
    assert (day2["rows_read"].value, day2["rows_loaded"].value) == (0, 0)
    assert day2["quarantine_reasons"].value == "none"
    # the range's totals and the file figures are on every partition's event
    assert day2["range_rows_read"].value == 5 and day2["range_rows_loaded"].value == 3
    assert day1["files_rejected"].value == 0
    bookings = meta[("raw_bookings", "2026-10-02")]
    assert (bookings["rows_read"].value, bookings["rows_loaded"].value) == (1, 1)
    assert meta[("raw_bookings", "2026-10-01")]["rows_read"].value == 0
