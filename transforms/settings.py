"""The run's settings: what the pages need to know about how the numbers were made.

`run_settings` has one row per setting (grain: `key`), written by `build_run_settings` from a
plain dict (`settings_from_journey_map` builds it from the journey map); `read_settings` gives
the dict back. Columns:

- `key` VARCHAR: the setting's name (the keys below).
- `value` JSON: the value, JSON-encoded (text, number, list of text or numbers, or JSON null).
- `value_type` VARCHAR: `text`, `integer`, `number`, `boolean`, `list`, `date` (stored as an
  ISO `YYYY-MM-DD` text) or `null`; `read_settings` turns `date` values back into dates.

Settings:

- `stages`: the stage names in journey order; `conversion_stage`: the stage whose reaching
  counts as converted; `conversion_window_seconds`.
- `currency`: the currency of every amount (NULL when the project does not say).
- `significance_level`, `min_group_outcomes`: the two-proportion z-test's p-value cut-off and
  the conversions and drop-offs both groups need (transforms/stage_funnels.py).
- `small_n`: a rate over fewer actors is shown as small n (greyed, not ranked) on the pages.
- `low_rating_max`: the highest rating that counts as low (NULL when no definition names it).
- `repeat_horizons`: the repeat-rate horizons in days.
- `min_attempts_to_rank`: payment attempts a platform x method cell needs to be named the
  worst (transforms/dashboard_tables.py).
- `period_days`: the length of the headline period (transforms/periods.py).
- `data_start`, `data_end`: the first and last UTC day of `events`; `build_run_settings` reads
  them from `events` unless the dict gives them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping

import duckdb

from transforms.dashboard_tables import MIN_ATTEMPTS_TO_RANK
from transforms.journey_map import JourneyMap
from transforms.stage_funnels import MIN_GROUP_OUTCOMES, SIGNIFICANCE_LEVEL, SMALL_N

DEFAULT_PERIOD_DAYS = 7
KEYS = (
    "stages", "conversion_stage", "conversion_window_seconds", "currency",
    "significance_level", "small_n", "min_group_outcomes", "low_rating_max",
    "repeat_horizons", "min_attempts_to_rank", "period_days", "data_start", "data_end",
    "new_customer_segment",
)


def settings_from_journey_map(jmap: JourneyMap, *, currency: str | None,
                              period_days: int = DEFAULT_PERIOD_DAYS) -> dict[str, object]:
    """The run's settings from the journey map, the project's currency and the period length.
    `data_start` and `data_end` are left to `build_run_settings` (they come from the data)."""
    if period_days < 1:
        raise ValueError(f"period_days must be at least 1, got {period_days}")
    return {
        "stages": list(jmap.stage_names),
        "conversion_stage": jmap.conversion_stage,
        "conversion_window_seconds": int(jmap.window_seconds),
        "currency": currency,
        "significance_level": SIGNIFICANCE_LEVEL,
        "min_group_outcomes": MIN_GROUP_OUTCOMES,
        "small_n": SMALL_N,
        "low_rating_max": jmap.low_rating_max,
        "repeat_horizons": [int(h) for h in jmap.repeat_horizons],
        "min_attempts_to_rank": MIN_ATTEMPTS_TO_RANK,
        "period_days": int(period_days),
        # the derived new vs returning segment, whose value 'new' makes a new customer
        "new_customer_segment": next((s.name for s in jmap.segments
                                      if s.derived == "new_vs_returning"), None),
    }


def _value_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return "date"
    if isinstance(value, (list, tuple)):
        return "list"
    raise TypeError(f"setting value {value!r} is not text, a number, a date or a list")


def _encode(value: object) -> str:
    if isinstance(value, dt.date):
        return json.dumps(value.isoformat())
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def build_run_settings(con: duckdb.DuckDBPyConnection, settings: Mapping[str, object]) -> int:
    """(Re)build `run_settings` from `settings` (one row per key, sorted by key); adds
    `data_start` / `data_end` from `events` when the dict has no such key. Returns the rows."""
    values = dict(settings)
    for key, agg in (("data_start", "min"), ("data_end", "max")):
        if key not in values:
            row = con.execute(f"select {agg}(event_date) from events").fetchone()
            values[key] = row[0] if row else None
    rows = [(key, _encode(value), _value_type(value)) for key, value in sorted(values.items())]
    con.execute("create or replace table run_settings "
                "(key varchar not null primary key, value json, value_type varchar not null)")
    con.executemany("insert into run_settings values (?, ?, ?)", rows)
    return len(rows)


def read_settings(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    """The settings of `run_settings` as a dict (dates as `datetime.date`, lists as lists)."""
    out: dict[str, object] = {}
    for key, value, value_type in con.execute(
            "select key, cast(value as varchar), value_type from run_settings order by key"
    ).fetchall():
        decoded = json.loads(value) if value is not None else None
        if value_type == "date" and decoded is not None:
            decoded = dt.date.fromisoformat(decoded)
        out[key] = decoded
    return out
