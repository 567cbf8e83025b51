"""Plotly dashboards built from the warehouse tables (no Dagster import).

`build_site(con, out_dir)` writes the offline HTML site; see dashboards/site.py.
"""

from dashboards.site import build_site

__all__ = ["build_site"]
