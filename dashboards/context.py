"""What every page needs to know: the warehouse, the run's settings and the scope shown (the
period and the segment value of the pickers).

Everything here is read: the settings from `run_settings` (transforms/settings.py), the
period's days and the offered segment values from `period_figures` (transforms/periods.py).
When a table is missing the value is None (or empty) and the page that needs it shows a "not
available" note.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

import pandas as pd

from dashboards.data import Warehouse

# The group of every customer in `period_figures` / `period_funnel` (transforms/periods.py ALL).
ALL_CUSTOMERS = ("all", "all")


@dataclass
class Context:
    """`period_days` and `segment` (segment, segment_value) select the rows of
    `period_figures` the headline shows (by default the run's `period_days` setting and all
    customers)."""

    wh: Warehouse
    period_days: int
    built_at: dt.datetime
    settings: dict[str, object] = field(default_factory=dict)
    periods: pd.DataFrame = field(default_factory=pd.DataFrame)
    segment: tuple[str, str] = ALL_CUSTOMERS
    # figure name -> its first row in `periods` (filled by `figure`, reset by `with_period`)
    _figure_rows: dict[str, pd.Series] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def read(cls, wh: Warehouse, *, period_days: int | None,
             built_at: dt.datetime) -> Context:
        settings = wh.settings()
        days = period_days if period_days is not None else settings.get("period_days")
        ctx = cls(wh=wh, period_days=int(days) if days is not None else 0, built_at=built_at,
                  settings=settings)
        return ctx.with_period(ctx.period_days) if days is not None else ctx

    # --- settings ------------------------------------------------------------------------
    def setting(self, key: str) -> object:
        """One setting of the run, None when missing."""
        return self.settings.get(key)

    @property
    def stages(self) -> list[str]:
        return [str(s) for s in self.settings.get("stages") or []]

    @property
    def conversion_stage(self) -> str | None:
        value = self.settings.get("conversion_stage")
        return None if value is None else str(value)

    @property
    def currency(self) -> str | None:
        value = self.settings.get("currency")
        return None if value is None else str(value)

    @property
    def data_start(self) -> dt.date | None:
        return self.settings.get("data_start")  # type: ignore[return-value]

    @property
    def data_end(self) -> dt.date | None:
        return self.settings.get("data_end")  # type: ignore[return-value]

    # --- the headline period -------------------------------------------------------------
    def figure(self, name: str) -> pd.Series | None:
        """The `period_figures` row of one figure for the selected period length."""
        if self.periods.empty:
            return None
        if self._figure_rows is None:  # (a page asks for each figure once per scope)
            first: dict[str, int] = {}
            for i, figure in enumerate(self.periods["figure"]):
                first.setdefault(figure, i)
            self._figure_rows = {f: self.periods.iloc[i] for f, i in first.items()}
        return self._figure_rows.get(name)

    def period_label(self) -> str:
        row = self.figure("new_customers")
        if row is None or pd.isna(row["current_end"]):
            if self.period_days and self.wh.has("period_figures"):
                return f"not available for {self.period_days}-day periods"
            return "not available (no period_figures table yet)"
        start, end = pd.Timestamp(row["current_start"]), pd.Timestamp(row["current_end"])
        q0, q1 = pd.Timestamp(row["previous_start"]), pd.Timestamp(row["previous_end"])
        days = (end - start).days + 1
        if not bool(row.get("previous_observed", True)):
            return (f"{start:%d %b %Y} – {end:%d %b %Y} ({days} days; no previous period in "
                    "the data to compare with)")
        return (f"{start:%d %b %Y} – {end:%d %b %Y} ({days} days; previous period "
                f"{q0:%d %b} – {q1:%d %b %Y})")

    def period_choices(self) -> list[int]:
        """The period lengths `period_figures` holds (the pickers' periods)."""
        if not self.wh.has("period_figures"):
            return []
        return [int(r[0]) for r in self.wh.df(
            "select distinct period_days from period_figures order by 1").itertuples(
            index=False)]

    def segment_choices(self) -> list[tuple[str, str]]:
        """All customers, then the (segment, value) groups `period_figures` holds (the
        offered segment values: transforms/periods.py), by segment and value."""
        if not self.wh.has("period_figures") or "segment" not in self.wh.columns(
                "period_figures"):
            return [ALL_CUSTOMERS]
        rows = self.wh.df("select distinct segment, segment_value from period_figures "
                          "where segment <> ? order by 1, 2", [ALL_CUSTOMERS[0]])
        return [ALL_CUSTOMERS, *((str(s), str(v)) for s, v in rows.itertuples(index=False))]

    def with_period(self, days: int, segment: tuple[str, str] | None = None) -> Context:
        """The same context for another period length (and segment value) of
        `period_figures`."""
        seg = self.segment if segment is None else segment
        periods = pd.DataFrame()
        if self.wh.has("period_figures"):
            if "segment" in self.wh.columns("period_figures"):
                periods = self.wh.scope_rows("period_figures", days, seg)
            elif seg == ALL_CUSTOMERS:  # a warehouse from before the segment breakdown
                periods = self.wh.scope_rows("period_figures", days)
        return replace(self, period_days=days, periods=periods, segment=seg, _figure_rows=None)

    def segment_name(self, segment: tuple[str, str] | None = None) -> str:
        """'All customers' or 'platform = ios'."""
        seg, value = self.segment if segment is None else segment
        return "All customers" if (seg, value) == ALL_CUSTOMERS else f"{seg} = {value}"

    def period_name(self, days: int) -> str:
        """'Last 7 days', or 'All data (30 days)' for the length that spans the data."""
        if self.data_start is not None and self.data_end is not None and days == (
                self.data_end - self.data_start).days + 1:
            return f"All data ({days} days)"
        return f"Last {days} days"

    def div_id(self, page: str, name: str) -> str:
        """A stable, unique id for a figure's div (stable so rebuilds give identical files)."""
        return f"fig-{page}-{name}"

