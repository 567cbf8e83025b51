"""The funnel engine: who reached each step, in order, within a window (DuckDB or Spark, NumPy).

Semantics (terms as in shared/reference/funnel-semantics.md)
------------------------------------------------------------
Input. One row per event with an actor column (the counting unit: customer, session, booking
id, any column), an event column and a time column. Timestamps are converted to UTC instants
first: ISO 8601 text with an offset (`+02:00`, `Z`) is honoured, naive text means UTC,
TIMESTAMPTZ columns are converted to UTC, TIMESTAMP/DATE columns are taken as UTC. A non-empty
time value that does not parse raises `UserError`. Rows whose actor or time is NULL are ignored.

Steps. A step is a condition on one event: `event` (the event column equals it; None = any event)
and `filters` (column == value, NULL meaning IS NULL). An event may match several steps. A step
after the first may carry its own window (`window_seconds`, see "Per-step windows").

Event order. Events of an actor are sorted by (UTC time, lowest step the event matches,
step-match bitmask, breakdown value); events matching no step come last within their instant.
So events of different steps at the same instant count in step order (`signup@t, pay@t`
converts), and rows that still tie are interchangeable for every output: shuffling input rows
changes nothing.

Attempt and window. Every step-1 event whose time lies in [start, end) is an *entry* and starts
its own attempt (re-entry restarts the clock). The window is absolute seconds from the entry
time, boundary inclusive: an event at entry + window counts, one microsecond later does not
(daylight-saving changes do not move it, because times are UTC instants). Window text such as
``14d`` is read by `transforms.durations.parse_duration`.

Order modes.
- ``ordered`` (default): step k of an attempt is filled by the first event (in the event order
  above) after the event that filled step k-1 that matches step k and lies within the window.
  One event fills at most one step, so a repeated step (view -> view) needs two events.
- ``strict``: step k must be filled by the very next event of the actor after the step k-1 event
  (within the window). Any other event of the actor in between breaks the attempt, *including
  events that match none of the steps and exclusion events*; every input row of the actor counts.
- ``any``: every event matching any step is an entry. From the entry, events within the window
  are taken in event order and each one fills the lowest-numbered unfilled step it matches (one
  event fills at most one step). Reaching "step k" means k distinct steps are filled;
  step_k_ts is the time the k-th one was filled, and "step N" in attribution and exclusions
  means the N-th filled step.

Per-step windows. `Step(..., window_seconds=w)` on step k (k >= 2) is the time allowed from
the event that filled step k-1 to the event that fills step k, boundary inclusive like the
conversion window (absolute seconds); the conversion window from the entry still applies too. So
in ``ordered`` mode step k is filled by the first event matching step k after the step k-1 event
that lies at or before min(entry + window, step_{k-1}_ts + w); ``strict`` the same with "the very
next event". The choice stays greedy: step k-1 is filled by its *first* matching event, and a
later step k-1 event does not reopen the per-step window (only a re-entry, a new step-1 event,
starts a new attempt). Re-entry, tie and exclusion rules are unchanged, except that an attempt
that never filled step j stops waiting at its *deadline*: min(entry + window, step_m_ts +
w_(m+1)) where m is the furthest step it reached (entry + window when step m+1 has no window of
its own), so exclusion events after the deadline do not spoil it. A window on step 1 (no previous
step) and per-step windows in ``any`` mode (no step order) are a UserError. Completeness still
uses entry + window.

Hold. ``hold`` names a column whose value every step event of an attempt must share with the
entry event (e.g. a booking id: "hold the booking constant"). The funnel then runs per (actor,
held value): events whose hold column is NULL take no part (they fill no step, spoil nothing and,
in ``strict`` mode, break nothing); in ``strict`` mode only events carrying the same value are
"in between"; exclusion events spoil only attempts on their own value; ``reentry='first'`` keeps
the first entry of each value. The actor still counts once, at its counted attempt over all
values (furthest step, then earliest entry time; attempts entering at the same instant on
different values are ordered by the value), and step times, time to convert, breakdown and
``held_value`` come from that attempt.

Re-entry. ``latest`` (default, as PostHog): all entries are attempts and the actor counts at the
furthest step reached by any attempt; ``first`` (as Mixpanel): only the actor's first entry in
the date range is an attempt. Counts are cumulative (step k = reached at least k).

Exclusions. Exclusion(event X, from_step i, to_step j), 1-based, i < j <= n (else UserError).
An attempt that filled step i is *spoiled* by an X event strictly after the step-i event's time
and strictly before the step-j event's time, or, if the attempt never filled step j, strictly
after step i and at or before entry + window. X at the very instant of step i or step j does not
spoil. An event that is both X and a step event still fills the step.

Counted attempt. The actor's counted attempt is the *best clean attempt*: among the attempts
spoiled by no exclusion, the one that reached the furthest step; on a tie, the earliest entry.
Spoiled attempts are ignored entirely, so an actor whose every attempt is spoiled is removed from
the whole funnel (including step 1), and a clean attempt (later or earlier) heals an actor whose
furthest attempt was spoiled, counting them at that clean attempt's step. Without exclusions this
is "the furthest attempt, first on a tie". step_k_ts and time to convert come from it.

Date range. ``start``/``end`` bound the entry only: conversions may complete after ``end``, up to
the window. A ``date`` bound means whole days (``end`` includes that whole day); a ``datetime``
``end`` is exclusive.

Completeness. ``complete`` is true when entry + window <= the latest event time in the input
(the end of the data): that actor's window has fully elapsed. Incomplete actors are counted like
the others (every tool does) but flagged; ``funnel(..., complete_only=True)`` keeps them out of
all counts, conversions and averages, and `entry_day_completeness` marks incomplete entry days.

Breakdown. ``breakdown`` names a column; its value (as text) is taken from one event of the
counted attempt: ``first`` (default) the entry event, ``last`` the event that filled the
furthest step reached, ``step:N`` the event that filled step N. With step:N, actors whose counted
attempt did not reach step N are *not attributed* (``attributed`` false, ``breakdown_value``
NULL) and appear in no breakdown row; every attributed actor counts in exactly one row.

Reporting. `funnel` returns a FunnelResult whose per-step figures (count, conversion, step
conversion, drop-off, dropout rate, time to convert) are computed by
`transforms.funnel_report.step_stats` from the definition macros; see that module.

Execution. Every function takes an engine (transforms/engine.py: a DuckDB connection or
`DuckDBEngine`, or `transforms.spark_engine.SparkEngine`); the engine's ``name`` picks the path.

On DuckDB, ``ordered`` and ``strict``: DuckDB keeps the relevant events (only the funnel's and
the exclusions' event names unless a step matches any event; every event in strict mode) in one
narrow temp table and sorts it once on integer keys (a 64-bit hash of the actor, and of the held
value; time and lowest step as one BIGINT); NumPy then finds step k of every attempt at once
(`searchsorted` over the step-k rows, or the next row in strict mode), applies the windows,
exclusions and the counted-attempt rule, and the actors' names and breakdown values are joined
back by row id. The hash must tell the actors apart: when the number of partitions in the sort
differs from the number of distinct actors (a collision: odds about 3 in 10^8 at 1M actors),
the sort is redone on exact dense ranks. ``any``: set-based SQL (window functions, ASOF joins and a
list_reduce over each attempt's window). Results are DuckDB relations, as ever.

On any other engine (Spark), every order takes the engine-neutral path, SQL both engines run
(tests/transforms/test_funnel_portable.py runs it on DuckDB against the path above, row for
row): the narrow table is built with exact dense ranks of the actor (and held value) as
partition keys and an explicit row id, ``row_number()`` over the event order, so row identities
are the same on both engines; its integer columns come to the driver as Arrow (compact inputs:
row id, keys, time in microseconds, step and exclusion bitmasks) and NumPy finds the attempts
as above, ``any`` included (one vectorised pass per event offset from the entry, each event
filling the lowest unfilled step it matches); the counted attempts go back as an Arrow table
(times as naive UTC timestamps) joined to the narrow table by row id. No ASOF join, list_reduce,
relation or DuckDB setting is used there: the session time zone must be UTC (checked, UserError
otherwise), ISO text is read as `timestamp_ltz` in it. `funnel_actors`, `dropped_actors` and
`entry_day_completeness` return a `TableResult` there (`sql_query()`, `columns`, `fetchall()`,
`to_arrow_table()`): what callers use of a relation.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import duckdb

from transforms.errors import UserError
from transforms.funnel_report import render_result, step_stats, step_stats_by_breakdown
from transforms.sqlutil import ident, literal

ORDERS = ("ordered", "strict", "any")
REENTRIES = ("latest", "first")
MAX_STEPS = 60  # step-match bitmasks are BIGINTs
DEFAULT_WINDOW_SECONDS = 14 * 86400

Order = Literal["ordered", "strict", "any"]
Reentry = Literal["latest", "first"]
Bound = dt.date | dt.datetime | str | None

_counter = itertools.count()


@dataclass(frozen=True)
class Step:
    """A condition on one event: the event column equals `event` (None = any event) and each
    `filters` column equals its value (passed as a parameter; None means IS NULL).
    `window_seconds` (steps 2.. only) is the time allowed from the previous step's event, on top
    of the funnel's window from the entry (module docstring, "Per-step windows")."""

    name: str
    event: str | None = None
    filters: Mapping[str, object] = field(default_factory=dict)
    # seconds allowed from the previous step's event (steps 2.. only; None = only the funnel's
    # window from the entry applies); boundary inclusive
    window_seconds: int | float | None = None


@dataclass(frozen=True)
class Exclusion:
    """Event `event` between step `from_step` and step `to_step` (1-based) spoils an attempt."""

    event: str
    from_step: int
    to_step: int


@dataclass
class FunnelResult:
    """What `funnel` returns: per-step figures (transforms/funnel_report.py), optionally per
    breakdown value, with the actor totals and the options used."""

    steps: list[dict[str, Any]]
    breakdown: list[dict[str, Any]] | None = None
    actors: int = 0
    incomplete_actors: int = 0
    unattributed_actors: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"steps": self.steps}
        if self.breakdown is not None:
            out["breakdown"] = self.breakdown
            out["unattributed_actors"] = self.unattributed_actors
        out["actors"] = self.actors
        out["incomplete_actors"] = self.incomplete_actors
        out["options"] = self.options
        return out

    def to_json(self) -> str:
        """One JSON object: {"steps": [...], "breakdown": [...]?, ...}."""
        return json.dumps(self.to_dict(), default=str)

    def to_table(self) -> str:
        """A plain-text table per funnel (and per breakdown value) for the terminal."""
        return render_result(self)


# --------------------------------------------------------------------------------------------
# public API


def funnel_actors(
    con: duckdb.DuckDBPyConnection,
    events: str | duckdb.DuckDBPyRelation,
    steps: Sequence[Step | str],
    *,
    window_seconds: int | float = DEFAULT_WINDOW_SECONDS,
    order: Order = "ordered",
    reentry: Reentry = "latest",
    exclusions: Sequence[Exclusion] = (),
    actor_col: str = "actor",
    event_col: str = "event",
    time_col: str = "timestamp",
    breakdown: str | None = None,
    attribution: str = "first",
    hold: str | None = None,
    start: Bound = None,
    end: Bound = None,
) -> duckdb.DuckDBPyRelation:
    """One row per actor that entered (and has a clean attempt): actor, entry_ts, furthest_step
    (1..n), step_1_ts..step_n_ts (NULL beyond furthest), complete, with a breakdown
    breakdown_value (text) and attributed, and with a hold held_value. Times are naive UTC
    TIMESTAMPs.

    `con` is a DuckDB connection or an engine (transforms/engine.py, transforms/spark_engine.py).
    `events` is a table or view name of `con`, or (on DuckDB) a relation; `steps` are event
    names or Steps,
    in funnel order (1 to 60). Options (the rules are in the module docstring):

    - window_seconds: time allowed from the entry to each later step, in seconds (> 0,
      boundary inclusive); default 14 days. Text such as '14d' goes through
      `transforms.durations.parse_duration` first.
    - order: 'ordered' (default), 'strict' (nothing else in between) or 'any'.
    - reentry: 'latest' (default: every entry is an attempt, the best clean one counts) or
      'first' (only the first entry in the date range).
    - exclusions: Exclusion(event, from_step, to_step) spoiling attempts (1-based steps).
    - actor_col, event_col, time_col: the counting unit, event name and time columns
      (defaults 'actor', 'event', 'timestamp').
    - breakdown: a column whose value (as text) each actor is attributed to; default none.
    - attribution: where the breakdown value comes from: 'first' (default, the entry event),
      'last' (the event of the furthest step reached) or 'step:N'.
    - hold: a column every step event of an attempt must share with the entry event (e.g.
      'booking_id'); events where it is NULL take no part; default none. The result then has
      `held_value`, the value of the counted attempt.
    - start, end: bounds on the entry time (date, datetime or ISO text; a date `end` includes
      its whole day, a datetime `end` is exclusive); default unbounded.

    Per-step windows are `Step.window_seconds` (ordered and strict orders only).

    Raises UserError for an invalid option, a missing column or an unparseable time. The result
    lives in a temporary table of `con` (dropped with the connection): a DuckDB relation over
    it on DuckDB, a `TableResult` (`sql_query()`, `columns`) on another engine.
    """
    table = _Plan.build(con, events, steps, window_seconds=window_seconds, order=order,
                        reentry=reentry, exclusions=exclusions, actor_col=actor_col,
                        event_col=event_col, time_col=time_col, breakdown=breakdown,
                        attribution=attribution, hold=hold, start=start, end=end).run()
    return _result(con, f"select * from {table}")


def funnel(
    con: duckdb.DuckDBPyConnection,
    events: str | duckdb.DuckDBPyRelation,
    steps: Sequence[Step | str],
    *,
    window_seconds: int | float = DEFAULT_WINDOW_SECONDS,
    order: Order = "ordered",
    reentry: Reentry = "latest",
    exclusions: Sequence[Exclusion] = (),
    actor_col: str = "actor",
    event_col: str = "event",
    time_col: str = "timestamp",
    breakdown: str | None = None,
    attribution: str = "first",
    hold: str | None = None,
    start: Bound = None,
    end: Bound = None,
    complete_only: bool = False,
) -> FunnelResult:
    """Count actors per step (cumulative) with conversions, drop-off and time to convert.

    Options, as in `funnel_actors` (same meaning and defaults):

    - window_seconds: seconds allowed from the entry to each later step (default 14 days).
    - order: 'ordered' (default), 'strict' or 'any'.
    - reentry: 'latest' (default) or 'first'.
    - exclusions: Exclusion(event, from_step, to_step) spoiling attempts.
    - actor_col, event_col, time_col: columns (defaults 'actor', 'event', 'timestamp').
    - breakdown: a column to break the funnel down by (default none): the result then has a
      `breakdown` row per value and `unattributed_actors`.
    - attribution: 'first' (default), 'last' or 'step:N'.
    - hold: a column every step of an attempt must share with the entry (default none).
    - start, end: bounds on the entry time (default unbounded).

    and one of its own:

    - complete_only: leave actors whose window has not fully elapsed by the end of the data out
      of every figure (default False: they are counted, and `incomplete_actors` says how many).

    The per-step figures are those of `transforms.funnel_report.step_stats`; breakdown rows are
    sorted by step-1 count (largest first), then by value.
    """
    norm_steps = _normalise_steps(steps)
    names = [s.name for s in norm_steps]
    table = _Plan.build(con, events, norm_steps, window_seconds=window_seconds, order=order,
                        reentry=reentry, exclusions=exclusions, actor_col=actor_col,
                        event_col=event_col, time_col=time_col, breakdown=breakdown,
                        attribution=attribution, hold=hold, start=start, end=end).run()
    try:
        total, incomplete = con.execute(
            f"select count(*), count(*) filter (where not complete) from {table}").fetchall()[0]
        steps_out = step_stats(con, table, names, complete_only=complete_only)
        breakdown_rows = None
        unattributed = 0
        if breakdown is not None:
            per_value = step_stats_by_breakdown(con, table, names, complete_only=complete_only)
            breakdown_rows = [{"value": value, "steps": s} for value, s in per_value.items()]
            breakdown_rows.sort(key=lambda r: (-r["steps"][0]["count"], r["value"] is None,
                                               str(r["value"])))
            unattributed = con.execute(
                f"select count(*) from {table} where not attributed "
                + ("and complete" if complete_only else "")).fetchall()[0][0]
    finally:
        con.execute(f"drop table if exists {table}")
    opts: dict[str, Any] = {
        "window_seconds": window_seconds, "order": order, "reentry": reentry,
        "actor_col": actor_col, "event_col": event_col, "time_col": time_col,
        "breakdown": breakdown, "attribution": attribution, "hold": hold,
        "step_windows_seconds": [s.window_seconds for s in norm_steps],
        "start": None if start is None else str(start),
        "end": None if end is None else str(end),
        "exclusions": [{"event": x.event, "from_step": x.from_step, "to_step": x.to_step}
                       for x in exclusions],
        "complete_only": complete_only,
        "steps": names,
    }
    return FunnelResult(steps=steps_out, breakdown=breakdown_rows, actors=int(total),
                        incomplete_actors=int(incomplete), unattributed_actors=int(unattributed),
                        options=opts)


def dropped_actors(
    con: duckdb.DuckDBPyConnection,
    events: str | duckdb.DuckDBPyRelation,
    steps: Sequence[Step | str],
    step: int,
    *,
    window_seconds: int | float = DEFAULT_WINDOW_SECONDS,
    order: Order = "ordered",
    reentry: Reentry = "latest",
    exclusions: Sequence[Exclusion] = (),
    actor_col: str = "actor",
    event_col: str = "event",
    time_col: str = "timestamp",
    breakdown: str | None = None,
    attribution: str = "first",
    hold: str | None = None,
    start: Bound = None,
    end: Bound = None,
) -> duckdb.DuckDBPyRelation:
    """Actors who reached step `step` (1-based) but not step `step`+1, sorted by actor: the
    drop-off segment after step `step`. Columns: actor, entry_ts, step_<step>_ts, complete (and
    breakdown_value with a breakdown, held_value with a hold). The options are those of
    `funnel_actors`, with the same meaning and defaults."""
    norm_steps = _normalise_steps(steps)
    if not isinstance(step, int) or not 1 <= step < len(norm_steps):
        raise UserError(f"drop-off step {step!r} is out of range: give a step number from 1 to "
                        f"{len(norm_steps) - 1} (nobody drops off after the last step)")
    table = _Plan.build(con, events, norm_steps, window_seconds=window_seconds, order=order,
                        reentry=reentry, exclusions=exclusions, actor_col=actor_col,
                        event_col=event_col, time_col=time_col, breakdown=breakdown,
                        attribution=attribution, hold=hold, start=start, end=end).run()
    extra = (", breakdown_value" if breakdown is not None else "") \
        + (", held_value" if hold is not None else "")
    return _result(
        con,
        f"select actor, entry_ts, step_{step}_ts, complete{extra} from {table} "
        f"where furthest_step = {step} order by actor"
    )


def entry_day_completeness(
    con: duckdb.DuckDBPyConnection, actors: duckdb.DuckDBPyRelation
) -> duckdb.DuckDBPyRelation:
    """One row per UTC entry day of a `funnel_actors` result: actors, incomplete_actors and
    complete (every actor entering that day had their whole window inside the data)."""
    return _result(
        con,
        f"select cast(entry_ts as date) as entry_day, count(*) as actors, "
        f"count(*) filter (where not complete) as incomplete_actors, "
        f"bool_and(complete) as complete "
        f"from ({actors.sql_query()}) a group by all order by entry_day"
    )


class TableResult:
    """A query's rows on an engine other than DuckDB, with the two members callers use of the
    DuckDB relation `funnel_actors` returns there: `sql_query()` (the SELECT, to nest in another
    statement) and `columns`; plus `fetchall()` and `to_arrow_table()` to read the rows."""

    def __init__(self, engine: Any, sql: str) -> None:
        self.engine = engine
        self._sql = sql
        self._columns: list[str] | None = None

    def sql_query(self) -> str:
        return self._sql

    @property
    def columns(self) -> list[str]:
        if self._columns is None:
            self._columns = list(self.engine.query(
                f"select * from ({self._sql}) q limit 0").column_names)
        return self._columns

    def to_arrow_table(self) -> Any:
        return self.engine.query(self._sql)

    def fetchall(self) -> list[tuple]:
        table = self.to_arrow_table()
        return list(zip(*[c.to_pylist() for c in table.columns], strict=True))

    def __repr__(self) -> str:
        return f"TableResult({self._sql!r})"


def _engine_name(con: Any) -> str:
    """The engine of `con`: its `name` ("duckdb", "spark"); a bare DuckDB connection is DuckDB."""
    if isinstance(con, duckdb.DuckDBPyConnection):
        return "duckdb"
    return getattr(con, "name", "duckdb")


def _result(con: Any, sql: str) -> duckdb.DuckDBPyRelation | TableResult:
    """The rows of `sql`: a DuckDB relation on DuckDB (as ever), a TableResult elsewhere."""
    return con.sql(sql) if _engine_name(con) == "duckdb" else TableResult(con, sql)


# --------------------------------------------------------------------------------------------
# the plan: validation and SQL


def _normalise_steps(steps: Sequence[Step | str]) -> list[Step]:
    if isinstance(steps, str | Step):
        steps = [steps]
    out: list[Step] = []
    for s in steps:
        if isinstance(s, str):
            if not s:
                raise UserError("empty step name: give each step an event name")
            out.append(Step(name=s, event=s))
        elif isinstance(s, Step):
            out.append(s)
        else:
            raise UserError(f"invalid step {s!r}: give an event name or a Step")
    if not out:
        raise UserError("no steps given: a funnel needs at least one step")
    if len(out) > MAX_STEPS:
        raise UserError(f"{len(out)} steps given: a funnel has at most {MAX_STEPS} steps")
    return out


def _as_bound(value: dt.date | dt.datetime | str | None, *, is_end: bool) -> dt.datetime | None:
    """A date bound is whole days; end dates include their whole day; datetimes are UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = (dt.date.fromisoformat(text) if len(text) == 10
                     else dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError:
            raise UserError(f"invalid date {value!r}: use YYYY-MM-DD or an ISO 8601 time") from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    if isinstance(value, dt.date):
        day = dt.datetime(value.year, value.month, value.day)
        return day + dt.timedelta(days=1) if is_end else day
    raise UserError(f"invalid date {value!r}: use a date, a datetime or YYYY-MM-DD")




@dataclass
class _Plan:
    con: duckdb.DuckDBPyConnection
    source: str
    steps: list[Step]
    window_us: int
    order: str
    reentry: str
    exclusions: list[Exclusion]
    actor_col: str
    event_col: str
    time_col: str
    breakdown: str | None
    attr_kind: str
    attr_step: int
    hold: str | None
    step_window_us: list[int | None]  # per step; index 0 (the entry) is always None
    start: dt.datetime | None
    end: dt.datetime | None
    ts_expr: str
    time_is_text: bool
    temp_view: str | None
    prefix: str
    data_end: dt.datetime | None = None
    data_end_us: int | None = None
    data_start_us: int | None = None  # the earliest event time, epoch microseconds
    engine_name: str = "duckdb"
    portable: bool = False  # the engine-neutral path (module docstring, Execution)

    # run the engine-neutral path on DuckDB too (the tests compare it with the DuckDB path)
    _FORCE_PORTABLE = False

    @classmethod
    def build(cls, con: duckdb.DuckDBPyConnection, events: str | duckdb.DuckDBPyRelation,
              steps: Sequence[Step | str], *, window_seconds: float, order: str, reentry: str,
              exclusions: Sequence[Exclusion], actor_col: str, event_col: str, time_col: str,
              breakdown: str | None, attribution: str, hold: str | None, start: Any,
              end: Any) -> _Plan:
        norm = _normalise_steps(steps)
        n = len(norm)
        if order not in ORDERS:
            raise UserError(f"invalid order {order!r}: use one of {', '.join(ORDERS)}")
        if reentry not in REENTRIES:
            raise UserError(f"invalid reentry {reentry!r}: use one of {', '.join(REENTRIES)}")
        if isinstance(window_seconds, bool) or not isinstance(window_seconds, int | float) \
                or not math.isfinite(window_seconds) or window_seconds <= 0:
            raise UserError(f"invalid window {window_seconds!r}: give a positive number of seconds")
        window_us = round(window_seconds * 1_000_000)
        step_window_us: list[int | None] = []
        for k, s in enumerate(norm, start=1):
            w = s.window_seconds
            if w is None:
                step_window_us.append(None)
                continue
            if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) \
                    or w <= 0:
                raise UserError(f"invalid window {w!r} on step {k} ({s.name!r}): give a "
                                "positive number of seconds")
            if k == 1:
                raise UserError(f"step 1 ({s.name!r}) has a window of its own, but a step "
                                "window is the time from the previous step and the first step "
                                "has none: remove it (the funnel's window counts from step 1)")
            if order == "any":
                raise UserError("per-step windows need an ordered funnel: use order 'ordered' "
                                "or 'strict', or drop the step windows")
            step_window_us.append(round(w * 1_000_000))
        if hold is not None and (not isinstance(hold, str) or not hold):
            raise UserError(f"invalid hold {hold!r}: give the name of the column to hold "
                            "constant, e.g. booking_id")
        excl = list(exclusions)
        for x in excl:
            if not isinstance(x, Exclusion):
                raise UserError(f"invalid exclusion {x!r}: give Exclusion(event, from, to)")
            if not (isinstance(x.from_step, int) and isinstance(x.to_step, int)) \
                    or not 1 <= x.from_step < x.to_step <= n:
                raise UserError(
                    f"invalid exclusion {x.event}:{x.from_step}:{x.to_step}: steps are 1-based "
                    f"and need 1 <= from < to <= {n}"
                )
            if not x.event:
                raise UserError("invalid exclusion: give the excluded event's name")
        attr_kind, attr_step = _parse_attribution(attribution, n)
        start_b = _as_bound(start, is_end=False)
        end_b = _as_bound(end, is_end=True)
        if start_b is not None and end_b is not None and end_b <= start_b:
            raise UserError(f"empty date range {start} .. {end}: the end must not be before "
                            "the start")

        prefix = f"__funnel_{next(_counter)}"
        temp_view = None
        engine_name = _engine_name(con)
        if engine_name != "duckdb":
            if not isinstance(events, str):
                raise UserError(f"on the {engine_name} engine give the events as a table name")
            source = ident(events)
            try:
                spark_cols = con.columns(events)
            except Exception:  # noqa: BLE001 - the engine's own error for a missing table
                raise UserError(f"no table or view named {events!r}: load the events first"
                                ) from None
            cols = [c for c, _ in spark_cols]
            types = [_ENGINE_TYPES.get(t.lower(), t) for _, t in spark_cols]
        elif isinstance(events, str):
            source = ident(events)
            try:
                rel = con.sql(f"select * from {source}")
                cols, types = rel.columns, rel.types
            except duckdb.Error:
                raise UserError(f"no table or view named {events!r}: load the events first "
                                "or pass a relation") from None
        else:
            temp_view = f"{prefix}_src"
            try:
                events.create_view(temp_view, replace=True)
            except duckdb.Error as exc:
                raise UserError(f"cannot read the events relation: {_first_line(exc)}") from None
            source = ident(temp_view)
            cols, types = events.columns, events.types
        col_types = {c: str(t).upper() for c, t in zip(cols, types, strict=True)}

        needed = [("actor", actor_col), ("event", event_col), ("time", time_col)]
        if breakdown is not None:
            needed.append(("breakdown", breakdown))
        if hold is not None:
            needed.append(("hold", hold))
        for s in norm:
            needed.extend(("filter", c) for c in s.filters)
        for role, col in needed:
            if col not in col_types:
                raise UserError(f"missing {role} column {col!r} in the events; columns are: "
                                f"{', '.join(cols)} (choose another with the {role} option)")
        ts_expr = _utc_expr(ident(time_col), col_types[time_col], time_col, engine_name)
        time_is_text = _is_text(col_types[time_col])
        return cls(con=con, source=source, steps=norm, window_us=window_us, order=order,
                   reentry=reentry, exclusions=excl, actor_col=actor_col, event_col=event_col,
                   time_col=time_col, breakdown=breakdown, attr_kind=attr_kind,
                   attr_step=attr_step, hold=hold, step_window_us=step_window_us,
                   start=start_b, end=end_b, ts_expr=ts_expr, time_is_text=time_is_text,
                   temp_view=temp_view,
                   prefix=prefix, engine_name=engine_name,
                   portable=engine_name != "duckdb" or cls._FORCE_PORTABLE)

    # ---- SQL pieces ------------------------------------------------------------------------

    def _mask_sql(self) -> tuple[str, list[Any]]:
        parts, params = [], []
        for k, s in enumerate(self.steps):
            conds = []
            if s.event is not None:
                conds.append(f"{ident(self.event_col)} = ?")
                params.append(s.event)
            for col, value in s.filters.items():
                if value is None:
                    conds.append(f"{ident(col)} is null")
                else:
                    conds.append(f"{ident(col)} = ?")
                    params.append(value)
            cond = " and ".join(conds) if conds else "true"
            parts.append(f"(case when {cond} then {1 << k} else 0 end)")
        return "cast(" + " | ".join(parts) + " as bigint)", params

    def _xmask_sql(self) -> tuple[str, list[Any]]:
        if not self.exclusions:
            return "cast(0 as bigint)", []
        parts, params = [], []
        for m, x in enumerate(self.exclusions):
            parts.append(f"(case when {ident(self.event_col)} = ? then {1 << m} else 0 end)")
            params.append(x.event)
        return "cast(" + " | ".join(parts) + " as bigint)", params

    def _tmp(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    @property
    def _keys(self) -> str:
        """The partition the attempts run in: the actor, or (actor, held value) with a hold."""
        return "actor, hv" if self.hold else "actor"

    def _same(self, a: str, b: str) -> str:
        """`a` and `b` rows are in the same partition (actor, and held value with a hold)."""
        return " and ".join(f"{a}.{c} = {b}.{c}" for c in self._keys.split(", "))

    def run(self) -> str:
        con = self.con
        on_duckdb = self.engine_name == "duckdb"
        if on_duckdb:
            saved_tz = con.execute("select current_setting('TimeZone')").fetchall()[0][0]
        else:
            _check_session_utc(con)
        try:
            if on_duckdb:
                con.execute("SET TimeZone = 'UTC'")
            self._check_times()
            if self.portable:
                out = self._portable_counted()
            elif self.order == "any":
                self._load_events()
                self._attempts_any()
                out = self._pick_counted()
            else:
                out = self._chain_counted()
        except duckdb.Error as exc:
            raise UserError(f"funnel query failed: {_first_line(exc)}") from None
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - another engine's errors, as one line
            if on_duckdb:
                raise
            raise UserError(f"funnel query failed on {self.engine_name}: "
                            f"{_first_line(exc)}") from None
        finally:
            for t in ("ev", "att"):
                con.execute(f"drop table if exists {self._tmp(t)}")
            if self.temp_view:
                con.execute(f"drop view if exists {ident(self.temp_view)}")
            if on_duckdb:  # restore the caller's setting
                con.execute(f"SET TimeZone = {literal(saved_tz)}")
        return out

    def _check_times(self) -> None:
        """Raise UserError for time text that does not parse; sets data_end (the latest event
        time of the input, all rows), data_end_us and data_start_us (the latest and earliest in
        epoch microseconds)."""
        raw = ident(self.time_col)
        if not self.time_is_text:  # a typed column always converts: only the end of the data
            self.data_end, self.data_end_us, self.data_start_us = self.con.execute(
                f"select max(ts), epoch_us(max(ts)), epoch_us(min(ts)) "
                f"from (select {self.ts_expr} as ts from {self.source}) t").fetchall()[0]
            return
        row = self.con.execute(
            f"select count(*) filter (where {raw} is not null and ts is null), "
            f"min(cast({raw} as varchar)) filter (where {raw} is not null and ts is null), "
            f"max(ts), epoch_us(max(ts)), epoch_us(min(ts)) "
            f"from (select {raw}, {self.ts_expr} as ts from {self.source}) t"
        ).fetchall()[0]
        bad, example, data_end, data_end_us, data_start_us = row
        if bad:
            raise UserError(f"{bad} value(s) in time column {self.time_col!r} are not ISO 8601 "
                            f"timestamps (for example {example!r}): fix them or choose another "
                            "column with the time option")
        self.data_end, self.data_end_us, self.data_start_us = data_end, data_end_us, data_start_us

    def _load_events(self) -> None:
        """ev: one row per relevant event with a global position in the event order."""
        mask, mparams = self._mask_sql()
        xmask, xparams = self._xmask_sql()
        bd = (f"cast({ident(self.breakdown)} as varchar)" if self.breakdown
              else "cast(null as varchar)")
        keep = "" if self.order == "strict" else "where mask <> 0 or xmask <> 0"
        # with a hold, events are ordered within (actor, held value), so that in strict mode
        # "the next event" is the next one carrying the same value; NULL-held events take no part
        hv = f", {ident(self.hold)} as hv" if self.hold else ""
        hv_cond = f" and {ident(self.hold)} is not null" if self.hold else ""
        self.con.execute(
            f"""
            create or replace temp table {self._tmp('ev')} as
            with typed as (
                select {ident(self.actor_col)} as actor,
                       {self.ts_expr} as ts,
                       {mask} as mask,
                       {xmask} as xmask,
                       {bd} as bd
                       {hv}
                from {self.source}
                where {ident(self.actor_col)} is not null and {ident(self.time_col)} is not null
                      {hv_cond}
            ),
            relevant as (select * from typed {keep})
            select *,
                   row_number() over (
                       order by {self._keys}, ts,
                                case when mask = 0 then 9223372036854775807 else mask & -mask end,
                                mask, bd nulls last, xmask
                   ) as pos
            from relevant
            """,
            mparams + xparams,
        )

    def _entry_filter(self) -> tuple[str, list[Any]]:
        conds, params = [], []
        if self.start is not None:
            conds.append("ts >= ?")
            params.append(self.start)
        if self.end is not None:
            conds.append("ts < ?")
            params.append(self.end)
        return (" and " + " and ".join(conds)) if conds else "", params

    # ---- ordered and strict: one narrow sort, the attempts in NumPy ---------------------------

    # the partition key of an event in the sorted scan: a 64-bit hash of the actor (and of the
    # held value); `_chain_counted` checks it told every actor apart and otherwise redoes the
    # scan with exact dense ranks (a class attribute, so a test can force collisions)
    _KEY_HASH = "hash({})"

    def _chain_counted(self) -> str:
        """Ordered/strict: the counted attempt of every actor, as a temp table of `funnel_actors`
        columns.

        One narrow table of the relevant events (`ev`: actor, breakdown and held value kept
        there, unsorted), one sort of integer columns (key hash, time in microseconds, step
        bitmask) fetched as NumPy arrays, then per step one vectorised lookup for all attempts
        at once: step k of an attempt is the first step-k row after its step k-1 row (ordered)
        or the very next row (strict), in the same partition, within the windows. Exclusions,
        the counted attempt and attribution are array operations too; the actor names, times
        and breakdown values are joined back by row id."""
        import numpy as np

        self._load_narrow()
        arrays = self._sorted_arrays(np)
        keys = self._partitions(np, arrays)
        if not self._keys_exact(keys):  # a hash collision: rank the keys exactly instead
            ev = self._tmp("ev")
            dense = "dense_rank() over (order by actor)"
            hv_dense = ", dense_rank() over (order by hv) as hh" if self.hold else ""
            self.con.execute(f"create or replace temp table {ev} as "
                             f"select * replace ({dense} as ha{hv_dense}) from {ev}")
            arrays = self._sorted_arrays(np)
            keys = self._partitions(np, arrays)
        return self._write_counted(np, arrays, self._counted(np, arrays, keys))

    def _load_narrow(self) -> None:
        """ev: one row per relevant event (every event in strict mode): actor, ha (key hash),
        ts (epoch microseconds), mask, and xmask / bd / hv, hh with exclusions / a breakdown /
        a hold."""
        mask, mparams = self._mask_sql()
        xmask, xparams = self._xmask_sql()
        actor = ident(self.actor_col)
        cols = [f"{actor} as actor", f"{self._KEY_HASH.format(actor)} as ha",
                f"epoch_us({self.ts_expr}) as ts", f"{mask} as mask"]
        if self.exclusions:
            cols.append(f"{xmask} as xmask")
        if self.breakdown:
            cols.append(f"cast({ident(self.breakdown)} as varchar) as bd")
        where = [f"{actor} is not null", f"{ident(self.time_col)} is not null"]
        if self.hold:
            hv = ident(self.hold)
            cols += [f"{hv} as hv", f"{self._KEY_HASH.format(hv)} as hh"]
            where.append(f"{hv} is not null")
        params = mparams + xparams
        keep = ""
        if self.order != "strict":
            keep = "where mask <> 0 or xmask <> 0" if self.exclusions else "where mask <> 0"
            names = [s.event for s in self.steps]
            if None not in names:  # only the funnel's events: a filter the scan can push down
                names = list(dict.fromkeys(names + [x.event for x in self.exclusions]))
                where.append(f"{ident(self.event_col)} in ({', '.join('?' * len(names))})")
                params += names
        self.con.execute(
            f"create or replace temp table {self._tmp('ev')} as "
            f"select * from (select {', '.join(cols)} from {self.source} "
            f"where {' and '.join(where)}) t {keep}",
            params,
        )

    def _sorted_arrays(self, np: Any) -> dict[str, Any]:
        """The rows of ev in the event order (partition, time, lowest step, bitmask, breakdown)
        as NumPy arrays rid (ev row id), ha (and hh), ts, and either mask or, when every event
        matches at most one step, low (the step's bit number, 64 for none), with xmask when
        there are exclusions.

        Time and lowest step are sorted as one BIGINT, (ts - first time) * 128 + the lowest
        step's bit number, which DuckDB sorts far faster than two columns and an expression
        (and ts and low come back out of it); a history longer than 2,000 years (a typo such as
        year 0026) sorts by the two columns instead. The bitmask is a sort key only when the
        lowest step does not determine it (steps with filters or matching any event); the
        exclusion bitmask never is: rows equal in all other keys are interchangeable."""
        lowest = "bit_count((mask & -mask) - 1)"  # 0..59; 64 when mask = 0
        first, last = self.data_start_us, self.data_end_us
        combined = first is not None and last - first < (1 << 63) // 128 - (1 << 20)
        plain = [s.event for s in self.steps]
        one_step = (None not in plain and not any(s.filters for s in self.steps)
                    and len(set(plain)) == len(plain))  # an event matches at most one step
        cols = ["rowid as rid", "ha"] + (["hh"] if self.hold else [])
        if combined:
            by = [f"(ts - {int(first)}) * 128 + {lowest}"]
            cols += [f"{by[0]} as k"] if one_step else ["ts", "mask"]
        else:
            by = ["ts", lowest]
            cols += ["ts", f"{lowest} as low" if one_step else "mask"]
        if any(s.filters or s.event is None for s in self.steps):
            by.append("mask")
        by = ["ha"] + (["hv"] if self.hold else []) + by
        if self.breakdown:
            by.append("bd nulls last")
        if self.exclusions:
            cols.append("xmask")
        # fetchnumpy, not Arrow: Arrow saves a copy (0.2 s at 7M rows) but its first use
        # imports pandas (0.2 s)
        fetched = self.con.execute(f"select {', '.join(cols)} from {self._tmp('ev')} "
                                   f"order by {', '.join(by)}").fetchnumpy()
        out = {name: np.asarray(col) for name, col in fetched.items()}
        if "k" in out:
            k = out.pop("k")
            out["ts"] = (k >> 7) + int(first)
            out["low"] = (k & 127).astype(np.int8)
        elif "low" in out:
            out["low"] = out["low"].astype(np.int8)
        return out

    def _step_rows(self, np: Any, a: dict[str, Any], k: int) -> Any:
        """The sorted rows that match step k (1-based), in row order."""
        if "low" in a:
            return np.flatnonzero(a["low"] == k - 1)
        return np.flatnonzero(a["mask"] & (1 << (k - 1)))

    def _matches(self, np: Any, a: dict[str, Any], rows: Any, k: int) -> Any:
        """Whether each of the sorted rows `rows` matches step k (1-based)."""
        if "low" in a:
            return a["low"][rows] == k - 1
        return (a["mask"][rows] & (1 << (k - 1))) != 0

    def _partitions(self, np: Any, a: dict[str, Any]) -> dict[str, Any]:
        """How the sorted rows split: nseg partitions (actor, or actor and held value) and
        ngroups actors. Rows of a partition are contiguous, so two rows are in the same one
        exactly when their key hashes are equal (`_same_rows`)."""
        ha = a["ha"]
        if not len(ha):
            return {"nseg": 0, "ngroups": 0}
        new_actor = ha[1:] != ha[:-1]
        ngroups = 1 + int(np.count_nonzero(new_actor))
        nseg = ngroups
        if self.hold:
            nseg = 1 + int(np.count_nonzero(new_actor | (a["hh"][1:] != a["hh"][:-1])))
        return {"nseg": nseg, "ngroups": ngroups}

    def _same_rows(self, np: Any, a: dict[str, Any], x: Any, y: Any) -> Any:
        """Per pair, whether sorted rows x and y (index arrays; y may be len(rows), none) are
        in the same partition."""
        n_rows = len(a["ts"])
        inside = y < n_rows
        y = np.minimum(y, n_rows - 1)
        same = inside & (a["ha"][x] == a["ha"][y])
        if self.hold:
            same &= a["hh"][x] == a["hh"][y]
        return same

    def _keys_exact(self, keys: dict[str, Any]) -> bool:
        """Whether the key hashes told every actor (and held value) apart: as many partitions
        in the sorted rows as distinct keys in ev."""
        ev = self._tmp("ev")
        if self.hold:
            actors, pairs = self.con.execute(
                f"select count(distinct actor), (select count(*) from "
                f"(select distinct actor, hv from {ev})) from {ev}").fetchall()[0]
            return actors == keys["ngroups"] and pairs == keys["nseg"]
        actors = self.con.execute(f"select count(distinct actor) from {ev}").fetchall()[0][0]
        return actors == keys["nseg"]

    def _us(self, value: dt.datetime) -> int:
        return (value - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)

    def _counted(self, np: Any, a: dict[str, Any], keys: dict[str, Any]) -> dict[str, Any]:
        """The counted attempt of every actor, as arrays over those attempts: P (steps x
        attempts: the sorted row that filled each step, -1 unfilled), T (its time) and reach."""
        ts = a["ts"]
        n_rows, n = len(ts), len(self.steps)
        # any order: every event matching a step is an entry
        entry = self._step_rows(np, a, 1) if self.order != "any" \
            else np.flatnonzero(a["mask"] != 0)
        if self.start is not None:
            entry = entry[ts[entry] >= self._us(self.start)]
        if self.end is not None:
            entry = entry[ts[entry] < self._us(self.end)]
        if self.reentry == "first" and len(entry):  # the first entry of each partition
            entry = entry[np.append(True, ~self._same_rows(np, a, entry[1:], entry[:-1]))]
        m = len(entry)
        P = np.full((n, m), -1, dtype=np.int64)
        T = np.zeros((n, m), dtype=np.int64)
        P[0], T[0] = entry, ts[entry]
        lim = T[0] + self.window_us
        reach = np.ones(m, dtype=np.int32)
        alive = np.arange(m)  # attempts that filled every step so far
        if self.order == "any":
            self._fill_any(np, a, P, T, reach, lim)
            alive = alive[:0]
        for k in range(2, n + 1):
            if not len(alive):
                break
            cur = P[k - 2, alive]
            if self.order == "ordered":  # the first step-k row after the step k-1 row
                rows_k = np.append(self._step_rows(np, a, k), n_rows)  # n_rows: none
                nxt = rows_k[np.searchsorted(rows_k, cur, side="right")]
                ok = self._same_rows(np, a, cur, nxt)
            else:  # strict: the very next row of the partition, if it matches step k
                nxt = cur + 1
                ok = self._same_rows(np, a, cur, nxt)
                ok[ok] = self._matches(np, a, nxt[ok], k)
            alive, nxt = alive[ok], nxt[ok]
            t = ts[nxt]
            ok = t <= lim[alive]
            w = self.step_window_us[k - 1]
            if w is not None:  # inclusive, from the event that filled step k-1
                ok &= t <= T[k - 2, alive] + w
            alive, nxt, t = alive[ok], nxt[ok], t[ok]
            P[k - 1, alive], T[k - 1, alive], reach[alive] = nxt, t, k
        clean = np.ones(m, dtype=bool)
        if self.exclusions and m:
            clean = ~self._spoiled(np, a, P, T, reach, lim)
        c = np.flatnonzero(clean)
        # the best clean attempt per actor: furthest, then earliest entry (with a hold: then
        # the held value, which orders an actor's rows, then the row)
        e = P[0, c]
        new_actor = np.append(True, a["ha"][e[1:]] != a["ha"][e[:-1]]) if len(c) \
            else np.zeros(0, dtype=bool)
        w = c[self._best(np, np.cumsum(new_actor), reach[c], T[0, c])]
        return {"P": P[:, w], "T": T[:, w], "reach": reach[w]}

    def _best(self, np: Any, group: Any, reach: Any, t1: Any) -> Any:
        """Indexes of the first attempt per group with the highest reach and, among those, the
        earliest t1 (attempts come in row order, so grouped)."""
        def firsts(g: Any) -> Any:
            return np.append(True, g[1:] != g[:-1]) if len(g) else np.zeros(0, dtype=bool)

        def top(idx: Any, value: Any, reduce: Any) -> Any:
            g = group[idx]
            starts = np.flatnonzero(firsts(g))
            if not len(starts):
                return idx
            per_group = reduce.reduceat(value[idx], starts)
            counts = np.diff(np.append(starts, len(idx)))
            return idx[value[idx] == np.repeat(per_group, counts)]

        idx = top(np.arange(len(group)), reach, np.maximum)
        if self.hold:  # an actor's partitions do not run in time order
            idx = top(idx, t1, np.minimum)
        return idx[firsts(group[idx])]

    def _spoiled(self, np: Any, a: dict[str, Any], P: Any, T: Any, reach: Any,
                 lim: Any) -> Any:
        """Per attempt, whether an exclusion event spoils it (module docstring, Exclusions)."""
        ts, xmask = a["ts"], a["xmask"]
        m = len(reach)
        # the last instant an attempt's next step could still have come
        deadline = lim.copy()
        for k, w in enumerate(self.step_window_us, start=1):
            if w is not None:
                at = reach == k - 1
                deadline[at] = np.minimum(lim[at], T[k - 2, at] + w)
        # the rows that end a run of equal times in their partition
        run_last = np.ones(len(ts), dtype=bool)
        run_last[:-1] = (ts[1:] != ts[:-1]) | ~self._same_rows(
            np, a, np.arange(len(ts) - 1), np.arange(1, len(ts)))
        run_last_rows = np.flatnonzero(run_last)
        spoiled = np.zeros(m, dtype=bool)
        for x_no, x in enumerate(self.exclusions):
            i, j = x.from_step, x.to_step
            x_rows = np.flatnonzero(xmask & (1 << x_no))
            att = np.flatnonzero(reach >= i)
            if not len(x_rows) or not len(att):
                continue
            # the first X row of the partition strictly later than step i: the first after the
            # last row of step i's instant
            p_i = P[i - 1, att]
            after = run_last_rows[np.searchsorted(run_last_rows, p_i)]
            x_rows = np.append(x_rows, len(ts))
            xr = x_rows[np.searchsorted(x_rows, after, side="right")]
            has = self._same_rows(np, a, p_i, xr)
            xt = ts[np.minimum(xr, len(ts) - 1)]
            reached_j = reach[att] >= j
            hit = has & np.where(reached_j, xt < T[j - 1, att], xt <= deadline[att])
            spoiled[att[hit]] = True
        return spoiled

    def _write_counted(self, np: Any, a: dict[str, Any], c: dict[str, Any]) -> str:
        """The temp table of `funnel_actors` columns from the counted attempts: actor, held
        value and breakdown value joined back from ev by row id."""
        n = len(self.steps)
        rid = a["rid"]
        P, T, reach = c["P"], c["T"], c["reach"]
        cols: dict[str, Any] = {"rid_e": rid[P[0]], "reach": reach}
        for k in range(1, n + 1):
            cols[f"t{k}"] = T[k - 1]
        data_end = self.data_end_us
        cols["complete"] = (T[0] + self.window_us <= data_end) if data_end is not None \
            else np.zeros(len(reach), dtype=bool)
        bd_cols, bd_join = "", ""
        if self.breakdown is not None:
            if self.attr_kind == "first":
                row, attributed = P[0], np.ones(len(reach), dtype=bool)
            elif self.attr_kind == "last":
                row = P[reach - 1, np.arange(len(reach))]
                attributed = np.ones(len(reach), dtype=bool)
            else:
                attributed = reach >= self.attr_step
                row = np.where(attributed, P[self.attr_step - 1], -1)
            cols["rid_b"] = np.where(row >= 0, rid[np.maximum(row, 0)], -1)
            cols["attributed"] = attributed
            bd_cols = ", b.bd as breakdown_value, c.attributed"
            bd_join = f"left join {self._tmp('ev')} b on b.rowid = c.rid_b"
        if self.hold is not None:
            bd_cols += ", e.hv as held_value"
        step_cols = ", ".join(
            f"case when c.reach >= {k} then make_timestamp(c.t{k}) end as step_{k}_ts"
            for k in range(1, n + 1))
        view, out = self._tmp("counted"), self._tmp("actors")
        self.con.register(view, cols)
        try:
            self.con.execute(
                f"create or replace temp table {out} as "
                f"select e.actor, make_timestamp(c.t1) as entry_ts, c.reach as furthest_step, "
                f"{step_cols}, c.complete{bd_cols} "
                f"from {view} c join {self._tmp('ev')} e on e.rowid = c.rid_e {bd_join}")
        finally:
            self.con.unregister(view)
        return out

    # ---- the engine-neutral path (any engine; DuckDB with _FORCE_PORTABLE) -------------------

    def _portable_counted(self) -> str:
        """Every order on any engine: the narrow table built with SQL both engines run (exact
        dense ranks as partition keys, an explicit row number in the event order as row id),
        its integer columns fetched as Arrow, the attempts in NumPy (`_counted`, the any order
        in `_fill_any`), the counted attempts written back as Arrow and joined to the narrow
        table by row id."""
        import numpy as np

        self._load_narrow_portable()
        arrays = self._fetch_portable(np)
        keys = self._partitions(np, arrays)
        return self._write_portable(np, self._counted(np, arrays, keys))

    def _load_narrow_portable(self) -> None:
        """ev: one row per relevant event (every event in strict mode): actor, ts (epoch
        microseconds), mask, xmask, and bd / hv with a breakdown / a hold; ha (and hh) the
        dense rank of the actor (and of the held value), rid the row number in the event order
        (partition, time, lowest step, bitmask, breakdown, exclusion bitmask: rows tying on all
        of them are alike in every column the funnel reads)."""
        mask, mparams = self._mask_sql()
        xmask, xparams = self._xmask_sql()
        actor = ident(self.actor_col)
        cols = [f"{actor} as actor", f"epoch_us({self.ts_expr}) as ts", f"{mask} as mask",
                f"{xmask} as xmask"]
        if self.breakdown:
            cols.append(f"cast({ident(self.breakdown)} as varchar) as bd")
        where = [f"{actor} is not null", f"{ident(self.time_col)} is not null"]
        ranks = ["dense_rank() over (order by actor) as ha"]
        if self.hold:
            hv = ident(self.hold)
            cols.append(f"{hv} as hv")
            where.append(f"{hv} is not null")
            ranks.append("dense_rank() over (order by hv) as hh")
        params = mparams + xparams
        keep = ""
        if self.order != "strict":
            keep = "where mask <> 0 or xmask <> 0"
            names = [s.event for s in self.steps]
            if None not in names:
                names = list(dict.fromkeys(names + [x.event for x in self.exclusions]))
                where.append(f"{ident(self.event_col)} in ({', '.join('?' * len(names))})")
                params += names
        order = ["ha"] + (["hh"] if self.hold else []) + [
            "ts", "bit_count((mask & -mask) - 1)", "mask"]
        if self.breakdown:
            order.append("bd nulls last")
        order.append("xmask")
        self.con.execute(
            f"create or replace temp table {self._tmp('ev')} as "
            f"select *, row_number() over (order by {', '.join(order)}) as rid "
            f"from (select *, {', '.join(ranks)} from "
            f"(select {', '.join(cols)} from {self.source} where {' and '.join(where)}) t "
            f"{keep}) r",
            params,
        )

    def _fetch_portable(self, np: Any) -> dict[str, Any]:
        """The integer columns of ev in the event order (row i is rid i + 1), as NumPy arrays
        ha (and hh), ts, mask and xmask: fetched unsorted as Arrow and placed by rid."""
        cols = ["rid", "ha"] + (["hh"] if self.hold else []) + ["ts", "mask", "xmask"]
        sql = f"select {', '.join(cols)} from {self._tmp('ev')}"
        if self.engine_name == "duckdb":
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
                table = self.con.execute(sql).to_arrow_table()
        else:
            table = self.con.query(sql)
        at = table.column("rid").to_numpy().astype(np.int64) - 1
        out: dict[str, Any] = {}
        for name in cols[1:]:
            values = table.column(name).to_numpy()
            col = np.empty(len(values), dtype=np.int64)
            col[at] = values
            out[name] = col
        out["rid"] = np.arange(1, len(at) + 1, dtype=np.int64)
        return out

    def _fill_any(self, np: Any, a: dict[str, Any], P: Any, T: Any, reach: Any,
                  lim: Any) -> None:
        """Any order: from each entry (P[0]), the partition's rows up to entry + window are
        taken in event order, each filling the lowest-numbered unfilled step it matches; P, T
        (the k-th filled step's row and time) and reach are filled in place. One pass per row
        offset from the entry, over every attempt still open at once."""
        ts, mask = a["ts"], a["mask"]
        full = (1 << len(self.steps)) - 1
        m = P.shape[1]
        state = np.zeros(m, dtype=np.int64)
        count = np.zeros(m, dtype=np.int32)
        att = np.arange(m)
        row = P[0].copy()
        while len(att):
            ok = self._same_rows(np, a, P[0, att], row)
            ok[ok] = ts[row[ok]] <= lim[att[ok]]
            att, row = att[ok], row[ok]
            new = mask[row] & ~state[att]
            hit = new != 0
            h, r, bits = att[hit], row[hit], new[hit]
            state[h] |= bits & -bits
            P[count[h], h], T[count[h], h] = r, ts[r]
            count[h] += 1
            open_ = state[att] != full
            att, row = att[open_], row[open_] + 1
        reach[:] = count

    def _write_portable(self, np: Any, c: dict[str, Any]) -> str:
        """The temp table of `funnel_actors` columns from the counted attempts (handed to the
        engine as Arrow, times as naive UTC timestamps): actor, held value and breakdown value
        joined back from ev by row id."""
        import pyarrow as pa

        n = len(self.steps)
        P, T, reach = c["P"], c["T"], c["reach"]
        m = len(reach)

        def times(values: Any, missing: Any = None) -> Any:
            return pa.array(values.astype("datetime64[us]"), pa.timestamp("us"), mask=missing)

        data_end = self.data_end_us
        cols: dict[str, Any] = {
            "rid_e": pa.array(P[0] + 1, pa.int64()),
            "entry_ts": times(T[0]),
            # the DuckDB path types it INTEGER (ordered, strict) or BIGINT (any: a list length)
            "furthest_step": pa.array(reach, pa.int64() if self.order == "any" else pa.int32()),
        }
        for k in range(1, n + 1):
            cols[f"step_{k}_ts"] = times(T[k - 1], reach < k)
        cols["complete"] = pa.array((T[0] + self.window_us <= data_end) if data_end is not None
                                    else np.zeros(m, dtype=bool), pa.bool_())
        bd_cols, bd_join = "", ""
        if self.breakdown is not None:
            if self.attr_kind == "first":
                row, attributed = P[0], np.ones(m, dtype=bool)
            elif self.attr_kind == "last":
                row, attributed = P[reach - 1, np.arange(m)], np.ones(m, dtype=bool)
            else:
                attributed = reach >= self.attr_step
                row = np.where(attributed, P[self.attr_step - 1], -1)
            cols["rid_b"] = pa.array(row + 1, pa.int64(), mask=row < 0)
            cols["attributed"] = pa.array(attributed, pa.bool_())
            bd_cols = ", b.bd as breakdown_value, c.attributed"
            bd_join = f"left join {self._tmp('ev')} b on b.rid = c.rid_b"
        if self.hold is not None:
            bd_cols += ", e.hv as held_value"
        step_cols = ", ".join(f"c.step_{k}_ts" for k in range(1, n + 1))
        view, out = self._tmp("counted"), self._tmp("actors")
        table = pa.table(cols)
        on_duckdb = self.engine_name == "duckdb"
        if on_duckdb:
            self.con.register(view, table)
        else:
            self.con.register_arrow(view, table)
        try:
            self.con.execute(
                f"create or replace temp table {out} as "
                f"select e.actor, c.entry_ts, c.furthest_step, {step_cols}, c.complete{bd_cols} "
                f"from {view} c join {self._tmp('ev')} e on e.rid = c.rid_e {bd_join}")
        finally:
            if on_duckdb:
                self.con.unregister(view)
            else:
                self.con.execute(f"drop view if exists {view}")
        return out

    def _attempts_any(self) -> None:
        """Any order: per attempt, fill steps greedily with a list_reduce over its window."""
        n = len(self.steps)
        ev = self._tmp("ev")
        date_cond, params = self._entry_filter()
        keys = self._keys
        first = (f"qualify row_number() over (partition by {keys} order by idx) = 1"
                 if self.reentry == "first" else "")
        fills = ", ".join(
            f"a.f.t[{k}] as t{k}, a.f.b[{k}] as b{k}" for k in range(1, n + 1)
        )
        self.con.execute(
            f"""
            create or replace temp table {self._tmp('att')} as
            with matched as (
                select {keys}, pos, ts, mask, bd,
                       row_number() over (partition by {keys} order by pos) as idx
                from {ev} where mask <> 0
            ),
            lists as (
                select {keys}, list(struct_pack(t := ts, m := mask, b := bd) order by pos)
                       as evs
                from matched group by {keys}
            ),
            last_at as (
                select {keys}, ts, max(idx) as j from matched group by {keys}, ts
            ),
            entries as (
                select {keys}, pos as p1, idx as i1,
                       ts + to_microseconds({self.window_us}) as lim
                from matched where true {date_cond} {first}
            ),
            bounded as (
                select {', '.join('e.' + c for c in keys.split(', '))}, e.p1, e.i1, e.lim, l.j
                from entries e asof join last_at l on {self._same('l', 'e')} and l.ts <= e.lim
            ),
            per_actor as (
                select {', '.join('b.' + c for c in keys.split(', '))}, l.evs,
                       list(struct_pack(p1 := b.p1, i1 := b.i1, j := b.j, lim := b.lim)) as atts
                from bounded b join lists l using ({keys})
                group by all
            ),
            filled as (
                select {keys}, unnest(list_transform(atts, lambda a: struct_pack(
                    p1 := a.p1, lim := a.lim,
                    f := list_reduce(
                        list_slice(evs, a.i1, a.j),
                        lambda s, x: case when (x.m & ~s.m) <> 0 then struct_pack(
                                m := s.m | ((x.m & ~s.m) & -(x.m & ~s.m)),
                                t := list_append(s.t, x.t),
                                b := list_append(s.b, x.b))
                            else s end,
                        struct_pack(m := cast(0 as bigint), t := cast([] as timestamp[]),
                                    b := cast([] as varchar[]))
                    )
                ))) as a
                from per_actor
            )
            select {keys}, a.p1 as p1, a.lim as lim, {fills},
                   len(a.f.t) as reach
            from filled
            """,
            params,
        )

    def _pick_counted(self) -> str:
        n = len(self.steps)
        att, ev = self._tmp("att"), self._tmp("ev")
        spoil_terms, joins = [], []
        # the attempt's deadline: the last instant its next step could still have come
        waits = [f"when {k - 1} then least(lim, t{k - 1} + to_microseconds({w}))"
                 for k, w in enumerate(self.step_window_us, start=1) if w is not None]
        deadline = f"(case reach {' '.join(waits)} else lim end)" if waits else "lim"
        for m, x in enumerate(self.exclusions):
            i, j = x.from_step, x.to_step
            joins.append(
                f"asof left join (select {self._keys}, ts as xt{m} from {ev} "
                f"where xmask & {1 << m} <> 0) x{m} "
                f"on {self._same(f'x{m}', 'a')} and x{m}.xt{m} > a.t{i}"
            )
            spoil_terms.append(
                f"(xt{m} is not null and case when t{j} is not null then xt{m} < t{j} "
                f"else xt{m} <= {deadline} end)"
            )
        spoiled = " or ".join(spoil_terms) if spoil_terms else "false"
        step_cols = ", ".join(
            f"case when reach >= {k} then t{k} end as step_{k}_ts" for k in range(1, n + 1)
        )
        if self.breakdown is None:
            bd_cols = ""
        elif self.attr_kind == "first":
            bd_cols = ", b1 as breakdown_value, true as attributed"
        elif self.attr_kind == "last":
            last = "case reach " + " ".join(f"when {k} then b{k}" for k in range(1, n + 1)) + " end"
            bd_cols = f", {last} as breakdown_value, true as attributed"
        else:
            s = self.attr_step
            bd_cols = (f", case when reach >= {s} then b{s} end as breakdown_value, "
                       f"reach >= {s} as attributed")
        if self.hold is not None:
            bd_cols += ", hv as held_value"
        # best clean attempt: furthest, then earliest entry (with a hold, attempts on different
        # values are compared by entry time, then by value: pos runs within (actor, value))
        tie = "t1, p1" if self.hold else "p1"
        out = self._tmp("actors")
        data_end = self.data_end
        self.con.execute(
            f"""
            create or replace temp table {out} as
            with scored as (
                select a.*, {spoiled} as spoiled
                from {att} a {' '.join(joins)}
            ),
            counted as (
                select * from scored where not spoiled
                qualify row_number() over (partition by actor order by reach desc, {tie}) = 1
            )
            select actor, t1 as entry_ts, reach as furthest_step, {step_cols},
                   coalesce(t1 + to_microseconds({self.window_us}) <= ?, false) as complete
                   {bd_cols}
            from counted
            """,
            [data_end],
        )
        return out


def _parse_attribution(attribution: str, n: int) -> tuple[str, int]:
    if attribution in ("first", "last"):
        return attribution, 0
    m = re.fullmatch(r"step:(\d+)", str(attribution))
    if not m:
        raise UserError(f"invalid attribution {attribution!r}: use first, last or step:N")
    k = int(m.group(1))
    if not 1 <= k <= n:
        raise UserError(f"invalid attribution {attribution!r}: step numbers are 1-based, "
                        f"from 1 to {n}")
    return "step", k


def _is_text(type_name: str) -> bool:
    t = type_name.upper()
    return t in ("VARCHAR", "TEXT", "STRING") or t.startswith("VARCHAR")


# column types as another engine's catalog spells them (Spark's simpleString), in DuckDB's words
_ENGINE_TYPES = {"string": "VARCHAR", "timestamp_ntz": "TIMESTAMP",
                 "timestamp": "TIMESTAMP WITH TIME ZONE", "date": "DATE"}

# session time zone names that are UTC
_UTC_NAMES = ("UTC", "ETC/UTC", "Z", "+00:00", "GMT", "ETC/GMT", "UCT", "ZULU")


def _check_session_utc(engine: Any) -> None:
    """The funnel reads naive times as UTC: on Spark the session time zone must be UTC (it
    decides how text and TIMESTAMP WITH TIME ZONE values become naive UTC times)."""
    spark = getattr(engine, "spark", None)
    if spark is None:
        return
    tz = spark.conf.get("spark.sql.session.timeZone")
    if str(tz).strip().upper() not in _UTC_NAMES:
        raise UserError(f"the Spark session time zone is {tz!r}, but the funnel needs UTC: "
                        "set spark.sql.session.timeZone to UTC")


def _utc_expr(col: str, type_name: str, name: str, engine_name: str = "duckdb") -> str:
    """SQL turning the time column into a naive UTC TIMESTAMP (NULL when text does not parse)."""
    t = type_name.upper()
    if engine_name != "duckdb" and (_is_text(t) or t in ("TIMESTAMP WITH TIME ZONE",
                                                          "TIMESTAMPTZ")):
        # the session time zone is UTC (`_check_session_utc`): an instant (text with an offset,
        # a zoned timestamp) as a naive time is its UTC time, naive text is UTC already
        return (f"cast(try_cast(trim({col}) as timestamp_ltz) as timestamp)" if _is_text(t)
                else f"cast({col} as timestamp)")
    if _is_text(t):
        # Text with an offset is an instant; naive text is read in the session TimeZone, which
        # `_Plan.run` pins to UTC for the duration of the query (one cast, no regex: 2x faster).
        return f"timezone('UTC', try_cast(trim({col}) as timestamptz))"
    if t in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
        return f"timezone('UTC', {col})"
    if t.startswith("TIMESTAMP") or t == "DATE" or t == "DATETIME":
        return f"cast({col} as timestamp)"
    raise UserError(f"time column {name!r} has type {type_name}: give ISO 8601 text or a "
                    "timestamp column")




def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

