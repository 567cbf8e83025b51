"""Mining assets: stage paths, the process map and conformance to the designed journey.

Thin wiring over transforms/journey_mining.py (definitions and grains are in its docstring)."""

import time
from collections.abc import Iterator

import dagster as dg

from pipelines.resources import ProjectResource
from transforms.journey_mining import build_mining_tables

GROUP = "mining"
TABLES = {
    "mining_log": "One row per stage visit of a customer (consecutive repeats collapsed).",
    "variants": "One row per distinct stage path: journeys, share, median duration, "
                "conversion, replay fitness and deviations.",
    "journey_variants": "One row per customer journey: its variant and replay fitness.",
    "dfg_edges": "One row per directly-follows pair of stages: count, mean/median/p90 time.",
    "dfg_endpoints": "One row per (stage, start|end): journeys starting or ending there.",
    "dropoff_points": "One row per stage where non-converting journeys end.",
    "conformance_overall": "One row: token-replay fitness against the designed journey.",
    "conformance_deviations": "One row per (stage, deviation, segment, value): journeys "
                              "that skipped, repeated or reordered the stage.",
    "stage_event_variants": "One row per (stage, event sequence inside one visit): the top "
                            "paths within each stage.",
    "stage_returns": "One row per stage: customers coming back to it after reaching a later "
                     "stage, and after how long.",
}


@dg.multi_asset(
    specs=[dg.AssetSpec(name, description=text, group_name=GROUP, kinds={"duckdb", "pm4py"},
                        deps=[dg.AssetKey("stage_events"), dg.AssetKey("journeys")])
           for name, text in TABLES.items()],
)
def mining_tables(project: ProjectResource) -> Iterator[dg.MaterializeResult]:
    """Mine the stage paths in DuckDB, discover and export the model, replay against the map."""
    started = time.monotonic()
    jmap = project.journey_map
    models = project.config.output_dir / "models"
    with project.connect() as con:
        stats = build_mining_tables(con, jmap, models)
        rows = {t: con.execute(f"select count(*) from {t}").fetchall()[0][0] for t in TABLES}
    for name in TABLES:
        meta = {"dagster/row_count": rows[name]}
        if name == "mining_log":
            meta |= {"journeys": stats.journeys, "variants": stats.variants,
                     "seconds": round(time.monotonic() - started, 2)}
        if name == "conformance_overall":
            meta |= {"fitness": round(stats.log_fitness, 4),
                     "fitting_share": round(stats.fitting_share, 4)}
        if name == "variants":
            meta |= {"bpmn": dg.MetadataValue.path(str(stats.model_files[0])),
                     "pnml": dg.MetadataValue.path(str(stats.model_files[1]))}
        yield dg.MaterializeResult(asset_key=name, metadata=meta)
