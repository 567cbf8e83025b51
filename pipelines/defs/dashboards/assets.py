"""The dashboard asset: the offline HTML site built from the warehouse tables."""

from __future__ import annotations

import dagster as dg

from dashboards.site import build_site, site_size
from pipelines.resources import ProjectResource

# Every table a page reads (docs/CONTRACTS.md, docs/TABLES.md). Pages whose tables are missing
# show a "not available" note, so the mining tables are read when present but not required.
READS = [
    # ingest (plus the raw table of every source, for the data-quality page)
    "events",
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


def dashboard_asset(raw_tables: list[str]) -> dg.AssetsDefinition:
    """The dashboard asset, reading the pages' tables and the raw table of every source."""

    @dg.asset(
        group_name="dashboards",
        kinds={"plotly", "html"},
        deps=[dg.AssetKey(t) for t in [*raw_tables, *READS]],
    )
    def dashboard(project: ProjectResource) -> dg.MaterializeResult:
        """The dashboard: one self-contained HTML site (six pages and one shared plotly.min.js)
        in `<output_dir>/dashboard/`, built from the journey, metric, mining and ingest tables.
        Open index.html in a browser; it needs no network."""
        out = project.config.output_dir / "dashboard"
        with project.connect(read_only=True) as con:
            index = build_site(con, out)
        size = site_size(out)
        return dg.MaterializeResult(metadata={
            "path": dg.MetadataValue.path(str(index.resolve())),
            "size_bytes": size,
            "size": f"{size / 1e6:.1f} MB",
            "pages": len(list(out.glob("*.html"))),
        })

    return dashboard
