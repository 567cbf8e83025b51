"""What every page needs to know: the warehouse, the period shown and the stage order."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from dashboards.data import Warehouse


@dataclass
class Context:
    """The selected period is the last `period_days` days of data; the previous period is the
    `period_days` days before it."""

    wh: Warehouse
    period_days: int
    data_start: dt.date | None
    data_end: dt.date | None
    built_at: dt.datetime
    stages: list[str]
    conversion_stage: str | None = None
    currency: str = "EUR"

    @property
    def period_start(self) -> dt.date | None:
        if self.data_end is None:
            return None
        return self.data_end - dt.timedelta(days=self.period_days - 1)

    @property
    def previous_start(self) -> dt.date | None:
        start = self.period_start
        return None if start is None else start - dt.timedelta(days=self.period_days)

    @property
    def previous_end(self) -> dt.date | None:
        start = self.period_start
        return None if start is None else start - dt.timedelta(days=1)

    def period_label(self) -> str:
        if self.data_end is None:
            return "no data loaded"
        return (f"{self.period_start:%d %b %Y} – {self.data_end:%d %b %Y} "
                f"({self.period_days} days; previous period {self.previous_start:%d %b} – "
                f"{self.previous_end:%d %b %Y})")

    def div_id(self, page: str, name: str) -> str:
        """A stable, unique id for a figure's div (stable so rebuilds give identical files)."""
        return f"fig-{page}-{name}"


def stage_index(stages: list[str], stage: str) -> int:
    """Position of a stage in the journey order; unknown stages sort last."""
    try:
        return stages.index(stage)
    except ValueError:
        return len(stages)
