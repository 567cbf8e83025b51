"""The dashboard asset: the offline HTML site built from the warehouse tables."""

from __future__ import annotations

import dagster as dg

from dashboards.layout import tables_read
from dashboards.site import build_site, site_size
from pipelines.resources import ProjectResource
from transforms import ingest

# Tables the ingest assets write beside their raw tables: read by the data-quality page, but
# not assets of their own (the raw assets are the dependency).
INGEST_SIDE_TABLES = (ingest.RECON_TABLE, ingest.QUARANTINE_TABLE, ingest.REJECTED_FILES_TABLE)


def dashboard_asset(raw_tables: list[str]) -> dg.AssetsDefinition:
    """The dashboard asset: it depends on every table a page reads (the page registry in
    dashboards/layout.py) and on the raw table of every source."""
    reads = [t for t in tables_read() if t not in INGEST_SIDE_TABLES]

    @dg.asset(
        group_name="dashboards",
        kinds={"plotly", "html"},
        deps=[dg.AssetKey(t) for t in [*raw_tables, *reads]],
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
