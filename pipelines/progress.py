"""A Dagster logger for `journeys run`: one line per asset as it is materialised.

Partitioned ingestion assets print their own line per partition (through the Progress
resource); this logger adds a line for every other asset, with its row count, as soon as the
materialisation is recorded, and a line for each failed step or check.
"""

from __future__ import annotations

import logging
import time

import dagster as dg


class _ProgressHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None)
        event = meta.get("dagster_event") if isinstance(meta, dict) else None
        if event is None:
            return
        kind = event.event_type_value
        if kind == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            if mat.partition is not None:
                return
            rows = mat.metadata.get("dagster/row_count")
            count = f"{rows.value:>12,} rows" if rows is not None else ""
            elapsed = time.monotonic() - self.started
            print(f"  {mat.asset_key.to_user_string():<26} {count:<18} {elapsed:8.1f} s",
                  flush=True)
        elif kind == "STEP_FAILURE":
            print(f"  {event.step_key:<26} FAILED", flush=True)
        elif kind == "ASSET_CHECK_EVALUATION" and not event.event_specific_data.passed:
            data = event.event_specific_data
            print(f"  check {data.asset_key.to_user_string()}:{data.check_name} FAILED",
                  flush=True)


@dg.logger(description="one line per materialised asset, for the terminal")
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = logging.Logger("journeys_progress", level=logging.DEBUG)
    log.addHandler(_ProgressHandler())
    return log
