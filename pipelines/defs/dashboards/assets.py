"""The dashboard asset: the offline HTML site built from the warehouse tables."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from dashboards.site import build_site, site_size
from pipelines.resources import Warehouse

# Every table a page reads (docs/CONTRACTS.md, docs/TABLES.md). Pages whose tables are missing
# show a "not available" note, so the mining tables are read when present but not required.
READS = [
    # ingest
    "raw_clickstream", "raw_bookings", "raw_payments", "events",
    # journeys and metrics
    "journeys", "journey_stages", "funnel_steps", "funnel_cohorts", "funnel_segments",
    "stage_transitions", "stage_transition_segments", "booking_outcomes", "booking_funnel",
    "payment_attempts", "payment_failures", "daily_stage_rates", "repeat_purchase",
    "purchase_frequency", "retention_cohorts", "lifecycle", "stage_touchpoints", "stage_pains",
    "stage_metrics",
    # mining
    "variants", "dfg_edges", "dfg_endpoints", "dropoff_points", "conformance_overall",
    "conformance_deviations",
]


@dg.asset(
    group_name="dashboards",
    kinds={"plotly", "html"},
    deps=[dg.AssetKey(t) for t in READS],
)
def dashboard(warehouse: Warehouse) -> dg.MaterializeResult:
    """The dashboard: one self-contained HTML site (six pages and one shared plotly.min.js)
    in `<output_dir>/dashboard/`, built from the journey, metric, mining and ingest tables.
    Open index.html in a browser; it needs no network."""
    out = Path(warehouse.output_dir) / "dashboard"
    with warehouse.connect(read_only=True) as con:
        index = build_site(con, out)
    size = site_size(out)
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(index.resolve())),
        "size_bytes": size,
        "size": f"{size / 1e6:.1f} MB",
        "pages": len(list(out.glob("*.html"))),
    })
