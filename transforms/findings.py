"""The findings engine: windows of days where a transition's rate departs from its baseline.

Input: an *attempts* table (DuckDB), one row per attempt at a transition:

- ``from_step``, ``to_step`` (any type, kept as text): the transition;
- ``day DATE``: the entry day, or the day the earlier stage was reached;
- ``success BOOLEAN``: the attempt reached the later stage within its window (the *good*
  outcome: a rate where lower is better, e.g. payment failure, is passed as its complement);
- ``complete BOOLEAN``: the attempt's window has closed by the end of the data;
- one VARCHAR column per segment named in ``segments`` (e.g. platform, channel).

`transition_attempts` / `funnel_attempts` build it from `transforms.funnel.funnel_actors`.

Method (`find_changes`)
-----------------------
1. **Series.** Per transition, overall and per segment value, the daily binomial series
   (attempts n_d, successes x_d) with *every* day present from the transition's first day to its
   last complete day (a day without attempts is n = 0, not missing). A day is complete when every
   attempt of the transition on it is complete; the series ends the day before the first
   incomplete day, so days whose windows have not closed are never tested. Segment values NULL
   and '(unknown)' are never tested (they still count in the overall series). When the table
   has a ``ts`` TIMESTAMP column, each series is also scanned hour by hour (kind ``hours``,
   windows of 1 to ``MAX_WINDOW_HOURS`` (12) hours): an outage of an afternoon.
2. **Scan.** Every contiguous window [s, e] of 1 to ``max_window_days`` days (default
   min(60, half the series)) is compared with the days *outside* it (the baseline excludes the
   window tested) by the binomial log-likelihood ratio
   LLR = ll(X_w, N_w) + ll(X_o, N_o) - ll(X, N), ll(x, n) = x log(x/n) + (n-x) log(1-x/n).
   Only *eligible* windows are scanned: N_w and N_o >= max(``min_attempts`` (20),
   ``min_share`` (0.5 %) of the series' attempts), and expected counts under the pooled rate
   >= ``min_expected`` (1) for both outcomes in both groups. Daily series also scan *changes
   of level* (kind ``step``): every split of the days into those before a change point and
   those from it on, i.e. the windows longer than ``max_window_days`` that end on the last day
   or start on the first (a window from the first day of at least ``MIN_STEP_DAYS`` (7) days
   is such a split too). The window with the largest LLR is taken. A split is reported as the
   days from the change point to the last day against the days before ("fell from 100% to
   89% from 06 Jul 2011 on"): a lasting shift is one finding told from its own side, not a row
   of windows before it that "rose". After a step the shorter side is set aside and the scan
   goes on in the longer one, where an incident after the step can still be found.
3. **Significance.** That window against the outside days by Fisher's exact test
   (``scipy.stats.fisher_exact``, two-sided). The window was chosen as the best of M eligible
   windows, so its p-value is corrected for the scan: p_scan = min(1, 2 * min(M * p_fisher,
   p_mc)), where p_mc is a Monte Carlo p-value of the largest LLR (the successes redrawn over the
   attempts with the margins fixed, multivariate hypergeometric; sequential, Besag & Clifford,
   up to 2,000 draws; run only when it can matter). Both are valid; the factor 2 pays for taking
   the smaller. If p_scan < alpha, the window's days are removed (from later windows and from
   the baseline) and the scan repeats, up to ``max_windows`` (3) windows per series.
4. **Segments against the rest** (kind ``segment``). Per transition, each known value of each
   column of ``compare`` against the attempts with another known value of that column, over the
   transition's tested days (Fisher). A value that is significantly worse (step 5's adjusted p)
   is drilled into: each pair of it with a value of another ``compare`` column is tested the
   same way (android + card against every other platform x method). Only drops are findings (a
   better segment is the rest's loss), and only when the difference is at least a small effect,
   Cohen's h >= ``MIN_SEGMENT_EFFECT`` (0.2): on much data every segment differs a little.
5. **FDR.** Benjamini-Hochberg (``statsmodels...multipletests(method="fdr_bh")``) over every
   p-value computed (every window tested, every segment comparison, all transitions); a test
   is a finding when its adjusted p < alpha (0.05).
6. **Explained findings** (``explain=True``). An incident shows in several series at once (an
   all-platform outage overall and in each platform; android + card in android and in card).
   In rank order, a finding B is compared with each finding A kept so far (same transition and
   direction, overlapping days): B is *explained by* A when B recomputed without A's attempts
   (A's group in A's window) is no longer significant (its p-value times the scan correction B
   received, or: what is left of B is too small to test and under half of B). B is dropped when
   explained by A and A is not explained by B. When each explains the other, the one with fewer
   attempts (the more specific) is kept if its rate differs significantly from the rest of the
   other's attempts, else the broader one. A kept ``step`` A explains any later B of its
   transition (either direction, any days) whose rate does not differ significantly from the
   rest of A's group on B's side of the change point (`_level_explains`): the step seen again
   in a segment, or in part of a side, goes; an outage after the step stays.
7. **Ranking.** lost = n * (baseline_rate - rate): customers lost in the window (negative for an
   improvement). Drops come first, by lost descending, then improvements by |lost| descending.

The result (`Finding`s) is written by `findings_table` (table ``findings``, one row per finding)
and `finding_days_table` (the daily series behind each, for its chart).

Cost (issue 13: it must not grow much with the history): every series is read by one query per
segment column and unit (`_series_list`), the observed scan scores all its windows in one pass,
and a Monte Carlo replicate is decided without logarithms: per window, the LLR is convex in the
window's successes, so two cutoffs found once per test (`_exceeding`) say which sums reach the
observed LLR. Draws, seeds and decisions are those of scoring every window of every replicate
(tests/transforms/test_findings_scan.py), so the p-values are the same to the last bit.
The draws stop once the scan-corrected p-value is settled (`_monte_carlo_p`'s `enough`: it is
then 2 x the Bonferroni one, or not significant), each replicate decided on a sixth of the
windows first: after a year of history most series' best window is far from significant and
its Monte Carlo ends in the first batch. Findings and their adjusted p-values are the same.
No Dagster import; the rates are plain shares (successes / attempts), as ``step_conversion`` of
transforms/sql/definitions.sql.
"""

from __future__ import annotations

import datetime as dt
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from transforms.errors import UserError
from transforms.sqlutil import ident, literal
from transforms.tables import engine_of, table_columns

UNKNOWN = "(unknown)"
ALPHA = 0.05
MAX_WINDOW_DAYS = 60
MAX_WINDOW_HOURS = 12
MIN_ATTEMPTS = 20
MIN_SHARE = 0.005
MIN_EXPECTED = 1.0
MAX_WINDOWS = 3
MIN_SEGMENT_EFFECT = 0.2  # Cohen's h
MIN_STEP_DAYS = 7  # a window this long from the first day on is a change of level after it
MC_BATCH = 100
MC_MAX_REPLICATES = 2000
MC_EXCEEDANCES = 20
_ATTEMPT_COLUMNS = ("from_step", "to_step", "day", "ts", "success", "complete")


Group = tuple[tuple[str, str], ...]  # ((column, value), ...); () = every attempt


@dataclass(frozen=True)
class Finding:
    """A group of attempts whose rate differs from its baseline: a window of days [start, end]
    against the group's other days (kind 'window'), or a segment value (or a pair of values)
    against the attempts with other values of the same columns over the same days (kind
    'segment'; start and end are then the days compared)."""

    from_step: str
    to_step: str
    group: Group  # () = everyone
    kind: str  # 'window' | 'hours' | 'step' | 'segment'
    start: dt.date
    end: dt.date
    rate: float  # successes / attempts of the group in [start, end]
    baseline_rate: float  # successes / attempts of the baseline
    n: int  # attempts in the group and window
    successes: int
    baseline_n: int
    lost: float  # n * (baseline_rate - rate); negative for an improvement
    p_value: float  # Fisher's exact test, group vs baseline
    p_scan: float  # Bonferroni-corrected for the windows scanned (= p_value for 'segment')
    p_adjusted: float  # Benjamini-Hochberg over everything tested
    start_ts: dt.datetime | None = None  # kind 'hours': the window's first hour
    end_ts: dt.datetime | None = None  # kind 'hours': the end of its last hour (exclusive)

    @property
    def hours(self) -> int | None:
        if self.start_ts is None or self.end_ts is None:
            return None
        return round((self.end_ts - self.start_ts).total_seconds() / 3600)

    @property
    def segment_column(self) -> str | None:
        return " + ".join(c for c, _ in self.group) if self.group else None

    @property
    def segment_value(self) -> str | None:
        return " + ".join(v for _, v in self.group) if self.group else None

    @property
    def segment(self) -> dict[str, str] | None:
        if not self.group:
            return None
        return {"column": self.segment_column, "value": self.segment_value}

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def baseline(self) -> str:
        """Who the rate is compared with, in words."""
        if self.kind == "window":
            return "the other days"
        if self.kind == "step":
            return "the days before"
        if self.kind == "hours":
            return "the other hours"
        cols = [c for c, _ in self.group]
        return (f"the other values of {cols[0]}" if len(cols) == 1
                else "the other combinations of " + " and ".join(cols))

    def to_dict(self) -> dict[str, object]:
        return {"from_step": self.from_step, "to_step": self.to_step, "segment": self.segment,
                "kind": self.kind, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "rate": self.rate,
                "baseline_rate": self.baseline_rate, "n": self.n, "lost": self.lost,
                "p_adjusted": self.p_adjusted}

    def sentence(self) -> str:
        where = (f" for {self.segment_column} = {self.segment_value}" if self.group else "")
        lost = (f"{self.lost:.0f} customers lost" if self.lost > 0
                else f"{-self.lost:.0f} customers gained")
        tail = f"; {lost} (adjusted p = {self.p_adjusted:.2g})"
        if self.kind == "segment":
            return (f"{self.from_step} → {self.to_step}{where}: conversion {self.rate:.1%} "
                    f"from {self.start:%d %b %Y} to {self.end:%d %b %Y} (n = {self.n}) "
                    f"against {self.baseline_rate:.1%} for {self.baseline}{tail}")
        verb = "fell" if self.lost > 0 else "rose"
        if self.kind == "step":
            return (f"{self.from_step} → {self.to_step}{where}: conversion {verb} from "
                    f"{self.baseline_rate:.1%} to {self.rate:.1%} from {self.start:%d %b %Y} on "
                    f"({self.days} days to {self.end:%d %b %Y}, n = {self.n}){tail}")
        if self.kind == "hours" and self.start_ts is not None and self.end_ts is not None:
            last = self.end_ts - dt.timedelta(hours=1)
            when = (f"on {self.start_ts:%d %b %Y} from {self.start_ts:%H:00} to "
                    f"{self.end_ts:%H:00}" if last.date() == self.start_ts.date()
                    else f"from {self.start_ts:%d %b %Y %H:00} to {self.end_ts:%d %b %Y %H:00}")
            when += f" ({self.hours} hour{'s' if self.hours != 1 else ''}, n = {self.n})"
        elif self.days == 1:
            when = f"on {self.start:%d %b %Y} (n = {self.n})"
        else:
            when = (f"from {self.start:%d %b} to {self.end:%d %b %Y} ({self.days} days, "
                    f"n = {self.n})")
        return (f"{self.from_step} → {self.to_step}{where}: conversion {verb} to "
                f"{self.rate:.1%} {when} against {self.baseline_rate:.1%} on "
                f"{self.baseline}{tail}")


# --------------------------------------------------------------------------- attempts builders


def transition_attempts(
    actors: duckdb.DuckDBPyRelation,
    step_names: Sequence[str],
    from_step: int,
    *,
    breakdown_as: str | None = None,
    segments: Sequence[str] = (),
    day: str = "from_step",
) -> str:
    """SQL (a SELECT) of the attempts at step `from_step` -> `from_step` + 1 (1-based) from a
    `funnel_actors` relation: one row per actor that reached step `from_step`, with from_step /
    to_step (the step names), day (the day of step_k_ts, or of entry_ts with day='entry'),
    success (furthest_step > from_step), complete (the actor's window has closed), the breakdown
    value as column `breakdown_as` (NULL when not attributed) and the `segments` columns of the
    relation as text."""
    k = int(from_step)
    if not 1 <= k < len(step_names):
        raise ValueError(f"from_step must be 1..{len(step_names) - 1}, got {from_step}")
    if day not in ("from_step", "entry"):
        raise ValueError("day must be 'from_step' or 'entry'")
    taken = [c for c in [breakdown_as, *segments] if c in _ATTEMPT_COLUMNS]
    if taken:
        raise UserError(f"cannot use {taken[0]!r} as a segment: the attempts already have a "
                        f"column of that name ({', '.join(_ATTEMPT_COLUMNS)}); rename it")
    day_col = f"step_{k}_ts" if day == "from_step" else "entry_ts"
    cols = [f"{literal(str(step_names[k - 1]))} as from_step",
            f"{literal(str(step_names[k]))} as to_step",
            f"cast({ident(day_col)} as date) as day",
            f"cast({ident(day_col)} as timestamp) as ts",
            f"furthest_step > {k} as success", "coalesce(complete, false) as complete"]
    if breakdown_as is not None:
        attributed = "attributed" if "attributed" in actors.columns else "true"
        cols.append(f"case when {attributed} then cast(breakdown_value as varchar) end "
                    f"as {ident(breakdown_as)}")
    cols += [f"cast({ident(c)} as varchar) as {ident(c)}" for c in segments]
    return (f"select {', '.join(cols)} from ({actors.sql_query()}) "
            f"where furthest_step >= {k}")


def funnel_attempts(
    con: duckdb.DuckDBPyConnection,
    actors: duckdb.DuckDBPyRelation,
    step_names: Sequence[str],
    *,
    table: str = "attempts",
    breakdown_as: str | None = None,
    segments: Sequence[str] = (),
    day: str = "from_step",
) -> str:
    """(Re)create temp table `table` with the attempts of every consecutive pair of steps
    (`transition_attempts` for k = 1..n-1); returns its name."""
    parts = [transition_attempts(actors, step_names, k, breakdown_as=breakdown_as,
                                 segments=segments, day=day)
             for k in range(1, len(step_names))]
    con.execute(f"create or replace temp table {ident(table)} as "
                + " union all ".join(f"({p})" for p in parts))
    return table


# --------------------------------------------------------------------------- the scan


@dataclass
class _Series:
    from_step: str
    to_step: str
    group: Group
    days: list  # the bins' starts: dates (unit 'day') or datetimes (unit 'hour')
    n: np.ndarray
    x: np.ndarray
    unit: str = "day"


@dataclass
class _Test:
    """One comparison: the group's attempts in [start, end] (nw, xw) against its baseline
    (no, xo)."""

    from_step: str
    to_step: str
    group: Group
    kind: str
    start: dt.date | dt.datetime  # kind 'hours': first hour; end: the end of the last hour
    end: dt.date | dt.datetime
    nw: int
    xw: int
    no: int
    xo: int
    p_value: float
    p_scan: float


def _ll(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    from scipy.special import xlogy

    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, x / np.where(n > 0, n, 1), 0.0)
        return xlogy(x, p) + xlogy(n - x, 1 - p)


def _eligible(n: np.ndarray, blocked: np.ndarray, pooled: float, *, max_len: int,
              min_attempts: int, min_expected: float, steps: bool = False) -> list[tuple]:
    """The eligible windows (step 2 of the module docstring), per length:
    (starts, ends (exclusive), attempts inside, attempts outside). With `steps`, also the
    windows longer than `max_len` that start on the first day or end on the last (a lasting
    change of level: the days before a change point against the days from it on)."""
    total_n = float(n.sum())
    cn = np.concatenate([[0.0], np.cumsum(n)])
    cb = np.concatenate([[0], np.cumsum(blocked.astype(int))])
    t = len(n)
    bounds = [(np.arange(0, t - length + 1), np.arange(0, t - length + 1) + length)
              for length in range(1, min(max_len, t) + 1)]
    if steps and t - 1 > max_len:
        # suffixes first: of two windows splitting the days alike, the later part is the one
        # reported (the change point's side: "from day s on")
        s = np.arange(1, t - max_len)
        bounds.append((s, np.full(len(s), t)))
        e = np.arange(max_len + 1, t)
        bounds.append((np.zeros(len(e), dtype=int), e))
    out = []
    for s, e in bounds:
        nw = cn[e] - cn[s]
        no = total_n - nw
        ok = ((cb[e] - cb[s]) == 0) & (nw >= min_attempts) & (no >= min_attempts)
        for group in (nw, no):
            ok &= (group * pooled >= min_expected) & (group * (1 - pooled) >= min_expected)
        if ok.any():
            out.append((s[ok], e[ok], nw[ok], no[ok]))
    return out


def _max_llr(x: np.ndarray, total_n: float, windows: list[tuple]) -> tuple[np.ndarray, list]:
    """Per row of `x` (replicates x days): the largest LLR over `windows`, and (first row
    only) the (start, end inclusive) of the window that has it (of equal ones, the first in
    the order of `windows`)."""
    x = np.atleast_2d(x).astype(float)
    total_x = x.sum(axis=1, keepdims=True)
    cx = np.concatenate([np.zeros((len(x), 1)), np.cumsum(x, axis=1)], axis=1)
    ll_all = _ll(total_x[:, 0], np.full(len(x), total_n))
    if len(x) == 1:  # every window at once (the same values, element by element)
        s, e, nw, no = (np.concatenate([w[k] for w in windows]) for k in range(4))
        xw = cx[0, e] - cx[0, s]
        llr = _ll(xw, nw) + _ll(total_x[0] - xw, no) - ll_all[0]
        best, where, start = -math.inf, None, 0
        for w in windows:
            part = llr[start:start + len(w[0])]
            i = int(np.argmax(part))
            if part[i] > best + 1e-12:
                where = (int(w[0][i]), int(w[1][i]) - 1)
            best = max(best, float(part[i]))
            start += len(w[0])
        return np.array([best]), [where]
    best = np.full(len(x), -math.inf)
    where: list = [None]
    for s, e, nw, no in windows:
        xw = cx[:, e] - cx[:, s]
        llr = _ll(xw, nw) + _ll(total_x - xw, no) - ll_all[:, None]
        i = int(np.argmax(llr[0]))
        if llr[0, i] > best[0] + 1e-12:
            where[0] = (int(s[i]), int(e[i]) - 1)
        best = np.maximum(best, llr.max(axis=1))
    return best, where


def _monte_carlo_p(n: np.ndarray, x: np.ndarray, observed: float, windows: list[tuple],
                   seed: int, *, enough: float = 0.0) -> float:
    """P(max LLR >= observed) under no change, by Monte Carlo: the day's successes are
    redrawn as a random split of all successes over the attempts (multivariate hypergeometric,
    margins fixed), up to MC_MAX_REPLICATES, stopping after MC_EXCEEDANCES exceedances
    (Besag & Clifford's sequential p-value). A replicate exceeds when one of its windows has an
    LLR >= observed - 1e-9 (`_exceeding`: the same decision as `_max_llr`'s largest LLR).

    `enough` (0: never): a p-value from which on the caller no longer needs the exact value
    (`_scan_series`: the window's scan-corrected p-value is then settled). The draws stop as
    soon as the p-value is known to be at least `enough`, and that lower bound is returned;
    below `enough` the value is the exact sequential p-value of the same draws. A replicate is
    first decided on a coarse part of the windows (`_coarse_windows`), and on the others only
    when the batch's count could still matter: on a long history most scans are far from
    significant and 20 exceedances show among the coarse windows of the first batch, so the
    cutoffs of the other windows are never computed."""
    rng = np.random.default_rng(seed)
    colors, total_x = n.astype(np.int64), int(x.sum())
    threshold = observed - 1e-9
    parts = [p for p in _coarse_windows(windows) if p]
    deciders: list = [None] * len(parts)
    done = over = 0
    while done < MC_MAX_REPLICATES:
        draws = rng.multivariate_hypergeometric(colors, total_x, size=MC_BATCH,
                                                method="marginals")
        done += MC_BATCH
        hit = np.zeros(len(draws), dtype=bool)
        for k, part in enumerate(parts):
            known = over + int(hit.sum())
            # the batch ends the draws (>= 20 exceedances) at a p-value of at least `enough`
            if enough and known >= MC_EXCEEDANCES and known / done >= enough:
                return known / done
            todo = np.flatnonzero(~hit)
            if not len(todo):
                break
            if deciders[k] is None:
                deciders[k] = _exceeding(n, total_x, threshold, part)
            hit[todo] = deciders[k](draws[todo])
        over += int(hit.sum())
        if over >= MC_EXCEEDANCES:
            return over / done
        # the least p-value still possible: more exceedances to come, or none
        least = min((over + 1) / (MC_MAX_REPLICATES + 1), MC_EXCEEDANCES / MC_MAX_REPLICATES)
        if enough and least >= enough:
            return least
    return (over + 1) / (done + 1)


COARSE_LENGTHS = frozenset({1, 2, 3, 5, 8, 13, 21, 34, 55})


def _coarse_windows(windows: list[tuple]) -> tuple[list[tuple], list[tuple]]:
    """`windows` (as `_eligible` gives them, one tuple per length, then the change-of-level
    splits) in two parts: the lengths of COARSE_LENGTHS and the splits, then the other lengths.
    Overlapping windows of near lengths score alike, so a replicate that exceeds mostly shows
    it among the coarse ones, about a sixth of the windows of a long history."""
    coarse, rest = [], []
    for w in windows:
        lengths = w[1] - w[0]
        fixed = len(lengths) and lengths.min() == lengths.max()
        (coarse if not fixed or int(lengths[0]) in COARSE_LENGTHS else rest).append(w)
    return coarse, rest


def _exceeding(n: np.ndarray, total_x: int, threshold: float, windows: list[tuple]):
    """A function of replicates (rows of successes per day, each summing to `total_x`, as the
    Monte Carlo draws them): per row, whether its largest LLR over `windows` is >= `threshold`,
    the LLR computed exactly as `_max_llr` does, so the decision is the same.

    With the margins fixed, a window's LLR depends on its successes xw alone and is strictly
    convex in xw, least where the window's rate equals the rest's (xw = nw X / N). So per
    window two whole numbers bound the xw that reach the threshold: lo (the largest below that
    point whose LLR is >= threshold) and hi (the smallest above it). They are found once per
    call (`_last_true`, evaluating the same LLR formula, starting from the normal
    approximation), and a replicate then needs only its windows' sums, compared with them:
    integer work instead of logarithms. Windows no possible xw brings to the threshold are
    dropped. Below a threshold of 1e-6 (rounding could then blur the convex shape near its
    least point) every replicate is scored in full by `_max_llr`."""
    total_n = float(n.sum())
    if threshold < 1e-6:
        return lambda draws: _max_llr(draws, total_n, windows)[0] >= threshold
    s = np.concatenate([w[0] for w in windows])
    e = np.concatenate([w[1] for w in windows])
    nw = np.concatenate([w[2] for w in windows]).astype(float)
    no = np.concatenate([w[3] for w in windows]).astype(float)
    big_x = float(total_x)
    ll_all = _ll(np.array([big_x]), np.array([total_n]))[0]

    def reaches(xw: np.ndarray, i: np.ndarray) -> np.ndarray:  # windows i with successes xw
        xw = xw.astype(float)
        return _ll(xw, nw[i]) + _ll(big_x - xw, no[i]) - ll_all >= threshold

    lowest = np.maximum(0, total_x - no.astype(np.int64))  # the xw a replicate can have
    highest = np.minimum(nw.astype(np.int64), total_x)
    centre = nw * big_x / total_n
    below = np.clip(np.floor(centre).astype(np.int64), lowest, highest)
    above = np.clip(np.ceil(centre).astype(np.int64), lowest, highest)
    # where to start looking: LLR ~ z^2 / 2, z the window's successes in standard deviations
    # of the hypergeometric (a guess only; the cutoffs are searched on the LLR itself)
    reach = np.sqrt(2 * threshold * nw * no * big_x * (total_n - big_x)) / total_n ** 1.5
    # lo: the largest xw in [lowest, below] reaching the threshold (the LLR falls there), or
    # lowest - 1 when none does (searched from lowest - 1, which stands for "reaches")
    lo = _last_true(lambda x, i: (x < lowest[i]) | reaches(np.maximum(x, lowest[i]), i),
                    lowest - 1, below, np.floor(centre - reach).astype(np.int64))
    # hi: the smallest xw in [above, highest] reaching it (the LLR rises there), or
    # highest + 1 when none does: the same search on -xw
    hi = -_last_true(lambda x, i: (x < -highest[i]) | reaches(np.minimum(-x, highest[i]), i),
                     -highest - 1, -above, -np.ceil(centre + reach).astype(np.int64))
    has_lo, has_hi = lo >= lowest, hi <= highest
    # the windows of one length are scored as one slice of the cumulative sums (a position
    # with no window there, or none able to reach the threshold, can never exceed); the rest
    # (the change-of-level splits) one by one
    t = len(n)
    dtype = np.int32 if total_x < 2**31 - 1 else np.int64
    never_lo, never_hi = -1, np.iinfo(dtype).max
    by_length: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    length = e - s
    fixed = np.zeros(len(s), dtype=bool)
    start = 0
    for w in windows:
        stop = start + len(w[0])
        fixed[start:stop] = length[start] == length[start:stop].max() == length[start:stop].min()
        start = stop
    keep = has_lo | has_hi
    for size in np.unique(length[fixed & keep]):
        i = np.flatnonzero(fixed & keep & (length == size))
        lo_at = np.full(t - size + 1, never_lo, dtype=dtype)
        hi_at = np.full(t - size + 1, never_hi, dtype=dtype)
        lo_at[s[i]], hi_at[s[i]] = lo[i], hi[i]
        by_length[int(size)] = (lo_at, hi_at)
    rest = ~fixed & keep
    s, e, lo, hi = s[rest], e[rest], lo[rest].astype(dtype), hi[rest].astype(dtype)

    def exceeds(draws: np.ndarray) -> np.ndarray:
        cx = np.zeros((len(draws), draws.shape[1] + 1), dtype=dtype)
        np.cumsum(draws, axis=1, out=cx[:, 1:])
        hit = np.zeros(len(draws), dtype=bool)
        for size, (lo_at, hi_at) in by_length.items():
            xw = cx[:, size:] - cx[:, :-size]
            hit |= ((xw <= lo_at) | (xw >= hi_at)).any(axis=1)
        if len(s):
            xw = cx[:, e] - cx[:, s]
            hit |= ((xw <= lo) | (xw >= hi)).any(axis=1)
        return hit

    return exceeds


def _last_true(pred, first: np.ndarray, last: np.ndarray, guess: np.ndarray) -> np.ndarray:
    """Per element i: the largest whole x in [first[i], last[i]] with pred(x, i) true, where
    pred(first[i], i) is true and pred, along x, is true up to a point and false after it.
    `pred(xs, idx)` evaluates the elements idx at xs. The search starts at `guess` (clipped),
    gallops (steps 1, 2, 4, ...) to bracket the point, then bisects: a good guess costs a
    few evaluations."""
    every = np.arange(len(first))
    g = np.clip(guess, first, last)
    ok = pred(g, every)
    # invariant: pred(left) is true and the answer lies in [left, right]
    left, right = np.where(ok, g, first), np.where(ok, last, g - 1)
    up, step = ok.copy(), np.ones(len(first), dtype=np.int64)
    galloping = np.ones(len(first), dtype=bool)
    while (open_ := galloping & (left < right)).any():
        i = np.flatnonzero(open_)
        x = np.where(up[i], np.minimum(left[i] + step[i], right[i]),
                     np.maximum(right[i] - step[i], left[i]))
        res = pred(x, i)
        left[i] = np.where(res, x, left[i])
        right[i] = np.where(res, right[i], x - 1)
        # going up, a false ends the gallop; going down, a true does
        galloping[i] = np.where(up[i], res, ~res)
        step[i] *= 2
    while (open_ := left < right).any():
        i = np.flatnonzero(open_)
        mid = (left[i] + right[i] + 1) // 2
        res = pred(mid, i)
        left[i] = np.where(res, mid, left[i])
        right[i] = np.where(res, right[i], mid - 1)
    return left


def _fisher(xw: float, nw: float, xo: float, no: float) -> float:
    from scipy.stats import fisher_exact

    table = [[int(xw), int(nw - xw)], [int(xo), int(no - xo)]]
    return float(fisher_exact(table, alternative="two-sided").pvalue)


def _scan_series(series: _Series, *, alpha: float, max_window_days: int, min_attempts: int,
                 min_share: float, min_expected: float, max_windows: int) -> list[_Test]:
    """The windows tested on one series (steps 2-3)."""
    t = len(series.days)
    total = int(series.n.sum())
    if t < 2 or total == 0:
        return []
    hourly = series.unit == "hour"
    max_len = max(1, min(MAX_WINDOW_HOURS if hourly else max_window_days, t // 2))
    min_n = max(min_attempts, math.ceil(min_share * total))
    blocked = np.zeros(t, dtype=bool)
    tested: list[_Test] = []
    for k in range(max_windows):
        n = np.where(blocked, 0, series.n)
        x = np.where(blocked, 0, series.x)
        if n.sum() == 0:
            break
        windows = _eligible(n, blocked, x.sum() / n.sum(), max_len=max_len,
                            min_attempts=min_n, min_expected=min_expected, steps=not hourly)
        if not windows:
            break
        stat, (where,) = _max_llr(x, float(n.sum()), windows)
        s, e = where
        kind = "hours" if hourly else "window"
        block = (s, e)
        if not hourly and (e - s + 1 > max_len or (s == 0 and e - s + 1 >= MIN_STEP_DAYS
                                                    and e < t - 1)):
            # a change of level: reported as the days from the change point on (a window
            # starting on the first day becomes the days after it); the shorter side is
            # set aside for the next scan, so the longer one can still show an incident
            kind = "step"
            if s == 0:
                s, e = e + 1, int(np.flatnonzero(~blocked)[-1])
            before = np.flatnonzero(~blocked[:s])
            after = (s, e)
            block = ((int(before[0]), int(before[-1])) if len(before) and
                     len(before) < e - s + 1 else after)
        nw, xw = int(n[s:e + 1].sum()), int(x[s:e + 1].sum())
        no, xo = int(n.sum()) - nw, int(x.sum()) - xw
        p = _fisher(xw, nw, xo, no)
        p_bonferroni = min(1.0, p * sum(len(w[0]) for w in windows))
        p_scan = p_bonferroni
        if p < alpha and p_bonferroni > 1 / (MC_MAX_REPLICATES + 1):
            seed = zlib.crc32(repr((series.from_step, series.to_step, series.group,
                                    series.unit, k)).encode())
            # p_scan is settled once p_mc >= min(p_bonferroni, alpha / 2): it is then
            # 2 p_bonferroni, or at least alpha (not significant; its value changes no
            # finding and no adjusted p-value of one)
            p_mc = _monte_carlo_p(n, x, float(stat[0]), windows, seed,
                                  enough=min(p_bonferroni, alpha / 2))
            p_scan = min(1.0, 2 * min(p_bonferroni, p_mc))
        if hourly:
            start, end = series.days[s], series.days[e] + dt.timedelta(hours=1)
        else:
            start, end = series.days[s], series.days[e]
        tested.append(_Test(series.from_step, series.to_step, series.group, kind, start, end,
                            nw, xw, no, xo, p, p_scan))
        if p_scan >= alpha:
            break
        blocked[block[0]:block[1] + 1] = True
    return tested


# --------------------------------------------------------------------------- reading the table


def _group_sql(group: Group) -> str:
    """SQL: the attempt is in `group` (NULL-safe: false when a value is NULL)."""
    if not group:
        return "true"
    return "(" + " and ".join(f"coalesce({ident(c)} = {literal(v)}, false)"
                              for c, v in group) + ")"


def _known_sql(columns: Sequence[str]) -> str:
    """SQL: every column of `columns` has a value (not NULL, not '(unknown)')."""
    return "(" + " and ".join(f"coalesce({ident(c)} <> {literal(UNKNOWN)}, false)"
                              for c in columns) + ")" if columns else "true"


def _transition_sql(f: str, t: str) -> str:
    return (f"cast(from_step as varchar) = {literal(f)} and "
            f"cast(to_step as varchar) = {literal(t)}")


def _days_sql(start: dt.date, end: dt.date) -> str:
    return f"day between date {literal(start.isoformat())} and date {literal(end.isoformat())}"


def _spans(con: duckdb.DuckDBPyConnection, src: str) -> dict[tuple[str, str], tuple]:
    """Per transition: (first day, last complete day); transitions without a complete day are
    left out."""
    rows = con.execute(f"""
        with per_day as (
            select cast(from_step as varchar) as f, cast(to_step as varchar) as t, day,
                   bool_and(coalesce(complete, false)) as day_complete
            from {src} where day is not null group by all)
        select f, t, min(day),
               coalesce(min(day) filter (where not day_complete) - 1, max(day))
        from per_day group by f, t order by f, t""").fetchall()
    return {(f, t): (first, last) for f, t, first, last in rows
            if last is not None and last >= first}


def _day_list(span: tuple) -> list[dt.date]:
    first, last = span
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _series_list(con: duckdb.DuckDBPyConnection, src: str, spans: dict,
                 segments: Sequence[str], hourly: bool = False) -> list[_Series]:
    """Every series to scan: per transition, everyone and each known value of each segment;
    daily, and hourly too when `hourly`. A value without attempts in the transition's span
    has no series (it would have nothing to scan). One query per segment column (and one for
    everyone), per unit, reads every transition's series at once."""
    if not spans:
        return []
    first_day = min(first for first, _ in spans.values())
    # per transition: its days as offsets from first_day (both ends included)
    offsets = {k: ((first - first_day).days, (last - first_day).days)
               for k, (first, last) in spans.items()}
    series: dict[tuple, _Series] = {}
    columns: list[str | None] = [None, *segments]
    for unit in ("day", "hour") if hourly else ("day",):
        for pos, col in enumerate(columns):
            value = "''" if col is None else f"cast({ident(col)} as varchar)"
            known = "true" if col is None else f"{value} is not null and {value} <> ?"
            bin_sql = ("day - ?" if unit == "day" else
                       "(epoch_us(date_trunc('hour', ts)) - epoch_us(cast(? as timestamp)))"
                       " // 3600000000")
            got = engine_of(con).query(f"""
                select cast(from_step as varchar) as f, cast(to_step as varchar) as t,
                       {value} as v, day - ? as d, {bin_sql} as b, count(*) as n,
                       count(*) filter (where success) as x
                from {src}
                where day is not null and from_step is not null and to_step is not null
                  and {known}{' and ts is not null' * (unit == 'hour')}
                group by all order by f, t, v""",
                [first_day, first_day, *([UNKNOWN] if col else [])])
            f_, t_, v_ = (np.asarray(got.column(c).to_pylist(), dtype=object)
                          for c in ("f", "t", "v"))
            d, b, cnt, ok = (got.column(c).to_numpy().astype(np.int64)
                             for c in ("d", "b", "n", "x"))
            if not len(d):
                continue
            new_key = np.ones(len(d), dtype=bool)
            new_key[1:] = (f_[1:] != f_[:-1]) | (t_[1:] != t_[:-1]) | (v_[1:] != v_[:-1])
            starts = np.flatnonzero(new_key)
            for lo, hi in zip(starts, [*starts[1:], len(d)], strict=True):
                f, t, v = f_[lo], t_[lo], v_[lo]
                span = offsets.get((f, t))
                if span is None:
                    continue
                rows = slice(lo, hi)
                inside = (d[rows] >= span[0]) & (d[rows] <= span[1])
                if not inside.any():
                    continue
                days = _day_list(spans[(f, t)])
                group: Group = () if col is None else ((col, v),)
                if unit == "day":
                    i, size = b[rows] - span[0], len(days)
                    bins: Sequence = days
                else:
                    i, size = b[rows] - 24 * span[0], 24 * len(days)
                    bins = _Hours(dt.datetime.combine(days[0], dt.time()), size)
                keep = inside & (i >= 0) & (i < size)
                n = np.zeros(size, dtype=np.int64)
                x = np.zeros(size, dtype=np.int64)
                np.add.at(n, i[keep], cnt[rows][keep])
                np.add.at(x, i[keep], ok[rows][keep])
                series[(f, t, pos, v, unit)] = _Series(f, t, group, bins, n, x, unit=unit)
    # in the order of a scan: per transition, everyone then each column's values in order;
    # daily before hourly
    out = []
    for f, t in spans:
        keys = sorted((k for k in series if k[:2] == (f, t)),
                      key=lambda k: (k[2], k[3] or "", k[4] == "hour"))
        out += [series[k] for k in keys]
    return out


class _Hours(Sequence):
    """The starts of `count` consecutive hours from `start`: an hourly series' bins."""

    def __init__(self, start: dt.datetime, count: int) -> None:
        self.start, self.count = start, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.count))]
        if i < 0:
            i += self.count
        if not 0 <= i < self.count:
            raise IndexError(i)
        return self.start + dt.timedelta(hours=i)


def _daily(con: duckdb.DuckDBPyConnection, src: str, f: str, t: str, group: Group,
           days: list[dt.date], where: str | None = None) -> _Series:
    """The daily (n, x) series of the transition's attempts in `group` (or matching `where`)
    over `days`, every day present."""
    rows = con.execute(f"""
        select day, count(*), count(*) filter (where success)
        from {src}
        where {_transition_sql(f, t)} and {_days_sql(days[0], days[-1])}
          and {where or _group_sql(group)}
        group by day""").fetchall()
    index = {d: i for i, d in enumerate(days)}
    n = np.zeros(len(days), dtype=np.int64)
    x = np.zeros(len(days), dtype=np.int64)
    for d, cnt, ok in rows:
        n[index[d]], x[index[d]] = cnt, ok
    return _Series(f, t, group, days, n, x)


def _counts(con: duckdb.DuckDBPyConnection, src: str, f: str, t: str, inside: str,
            baseline: str) -> tuple[int, int, int, int]:
    """(n, successes) of the attempts matching `inside`, then of those matching `baseline`."""
    nw, xw, no, xo = con.execute(f"""
        select count(*) filter (where {inside}),
               count(*) filter (where {inside} and success),
               count(*) filter (where {baseline}),
               count(*) filter (where {baseline} and success)
        from {src} where {_transition_sql(f, t)}""").fetchone()
    return int(nw), int(xw), int(no), int(xo)


def _testable(nw: int, xw: int, no: int, xo: int, *, min_n: int, min_expected: float) -> bool:
    """Both groups have at least `min_n` attempts and, under the pooled rate, at least
    `min_expected` expected successes and failures."""
    if min(nw, no) < min_n:
        return False
    pooled = (xw + xo) / (nw + no)
    return min(nw, no) * min(pooled, 1 - pooled) >= min_expected


# --------------------------------------------------------------------------- segment vs the rest


class _ByTransition:
    """Per transition, its attempts in a temp table of their own, made on first use: the many
    counts of the segment tests and of the explained findings (a few hundred queries on a
    large log) each read one transition's rows instead of filtering the whole table."""

    def __init__(self, con: duckdb.DuckDBPyConnection, src: str) -> None:
        self.con, self.src, self.tables = con, src, {}

    def __call__(self, f: str, t: str) -> str:
        if (f, t) not in self.tables:
            name = ident(f"_findings_attempts_{len(self.tables)}")
            self.con.execute(f"create or replace temp table {name} as "
                             f"select * from {self.src} where {_transition_sql(f, t)}")
            self.tables[(f, t)] = name
        return self.tables[(f, t)]

    def drop(self) -> None:
        for name in self.tables.values():
            self.con.execute(f"drop table if exists {name}")
        self.tables.clear()


def _segment_tests(con: duckdb.DuckDBPyConnection, parts: _ByTransition, spans: dict,
                   columns: Sequence[Sequence[str]], *, only: dict | None = None,
                   min_attempts: int, min_share: float, min_expected: float) -> list[_Test]:
    """Each value (or pair of values) of `columns` (each item: one column, or two) against the
    attempts with other known values of the same columns, per transition, over its span.
    `only` (pairs): {(from_step, to_step): {(column, value), ...}}: a pair is tested only
    when one of its two values is in the transition's set."""
    out: list[_Test] = []
    for (f, t), (first, last) in spans.items():
        src = parts(f, t)
        total = con.execute(f"select count(*) from {src} where {_transition_sql(f, t)} "
                            f"and {_days_sql(first, last)}").fetchone()[0]
        min_n = max(min_attempts, math.ceil(min_share * total))
        for cols in columns:
            if only is not None and not any(c == p[0] for p in only.get((f, t), ())
                                            for c in cols):
                continue
            vals = ", ".join(f"cast({ident(c)} as varchar)" for c in cols)
            rows = con.execute(f"""
                select {vals}, count(*), count(*) filter (where success)
                from {src}
                where {_transition_sql(f, t)} and {_days_sql(first, last)}
                  and {_known_sql(cols)}
                group by all order by all""").fetchall()
            n_all = sum(r[-2] for r in rows)
            x_all = sum(r[-1] for r in rows)
            for r in rows:
                group = tuple(zip(cols, r[:-2], strict=True))
                if only is not None and not any(g in only.get((f, t), ()) for g in group):
                    continue
                nw, xw = int(r[-2]), int(r[-1])
                no, xo = n_all - nw, x_all - xw
                if not _testable(nw, xw, no, xo, min_n=min_n, min_expected=min_expected):
                    continue
                p = _fisher(xw, nw, xo, no)
                out.append(_Test(f, t, group, "segment", first, last, nw, xw, no, xo, p, p))
    return out


# --------------------------------------------------------------------------- explained findings


def _sets(f: Finding, span: tuple) -> tuple[str, str]:
    """SQL predicates of a finding's attempts: (in the group and window, its baseline)."""
    win = _days_sql(f.start, f.end)
    if f.kind == "hours":
        win = (f"ts >= timestamp {literal(f.start_ts.isoformat(sep=' '))} and "
               f"ts < timestamp {literal(f.end_ts.isoformat(sep=' '))}")
        grp = _group_sql(f.group)
        return f"{grp} and {win}", f"{grp} and {_days_sql(*span)} and not coalesce({win}, false)"
    if f.kind in ("window", "step"):
        grp = _group_sql(f.group)
        return f"{grp} and {win}", f"{grp} and {_days_sql(*span)} and not ({win})"
    cols = [c for c, _ in f.group]
    return (f"{_group_sql(f.group)} and {win}",
            f"{_known_sql(cols)} and not {_group_sql(f.group)} and {win}")


def _explained(con: duckdb.DuckDBPyConnection, src: str, b: Finding, a: Finding, span: tuple,
               *, alpha: float, min_attempts: int, min_expected: float) -> bool:
    """True when b, recomputed without a's attempts (a's group in a's window), shows no
    significant difference (module docstring, step 6)."""
    b_in, b_base = _sets(b, span)
    a_in, _ = _sets(a, span)
    nw, xw, no, xo = _counts(con, src, b.from_step, b.to_step, f"{b_in} and not ({a_in})",
                             f"{b_base} and not ({a_in})")
    if not _testable(nw, xw, no, xo, min_n=min_attempts, min_expected=min_expected):
        return nw < b.n / 2  # too little of b is left to test: explained if a took most of it
    # a window was chosen as the best of many: the rest of b is held to the same bar, its
    # p-value scaled by the correction b's own received for the scan
    factor = b.p_scan / b.p_value if b.p_value > 0 else 1.0
    return _fisher(xw, nw, xo, no) * max(1.0, factor) >= alpha


def _stands_out(con: duckdb.DuckDBPyConnection, src: str, narrow: Finding, broad: Finding,
                span: tuple, *, alpha: float, min_attempts: int, min_expected: float) -> bool:
    """True when `narrow`'s attempts differ significantly from the rest of `broad`'s (its
    group and window without `narrow`'s), or when that rest is too small to tell them apart."""
    n_in, _ = _sets(narrow, span)
    b_in, _ = _sets(broad, span)
    nw, xw, no, xo = _counts(con, src, narrow.from_step, narrow.to_step, n_in,
                             f"{b_in} and not ({n_in})")
    if not _testable(nw, xw, no, xo, min_n=min_attempts, min_expected=min_expected):
        return True
    return _fisher(xw, nw, xo, no) < alpha


def _level_explains(con: duckdb.DuckDBPyConnection, src: str, b: Finding, a: Finding,
                    span: tuple, *, alpha: float, min_attempts: int,
                    min_expected: float) -> bool:
    """True when b is a change of level a seen again: b's rate does not differ significantly
    from the rest of a's group on b's side of a's change point (the days before a.start, or
    a's days from it on; the side holding most of b's days). So a segment's share of a step,
    or a part of a side, is explained; an outage after the step, which stands out from the new
    level, is not (module docstring, step 6)."""
    first, last = span
    b_first, b_last = (b.start, b.end) if b.kind != "hours" else (b.start_ts.date(),
                                                                   b.end_ts.date())
    before = max(0, (min(b_last, a.start - dt.timedelta(days=1)) - b_first).days + 1)
    after = max(0, (b_last - max(b_first, a.start)).days + 1)
    side = (_days_sql(first, a.start - dt.timedelta(days=1)) if before > after
            else _days_sql(a.start, a.end))
    b_in, _ = _sets(b, span)
    nw, xw, no, xo = _counts(con, src, b.from_step, b.to_step, b_in,
                             f"{_group_sql(a.group)} and {side} and not ({b_in})")
    if not _testable(nw, xw, no, xo, min_n=min_attempts, min_expected=min_expected):
        return False
    factor = b.p_scan / b.p_value if b.p_value > 0 else 1.0
    return _fisher(xw, nw, xo, no) * max(1.0, factor) >= alpha


def _drop_explained(con: duckdb.DuckDBPyConnection, parts: _ByTransition,
                    findings: list[Finding], spans: dict, **kw: float) -> list[Finding]:
    """The findings, in rank order, without those another kept finding explains (module
    docstring, step 6)."""
    kept: list[Finding] = []
    for b in findings:
        span = spans[(b.from_step, b.to_step)]
        src = parts(b.from_step, b.to_step)
        keep = True
        for a in list(kept):
            if (a.from_step, a.to_step) != (b.from_step, b.to_step):
                continue
            if a.kind == "step":
                if _level_explains(con, src, b, a, span, **kw):
                    keep = False
                    break
                continue
            if ((a.lost > 0) != (b.lost > 0) or a.end < b.start or b.end < a.start
                    or not _explained(con, src, b, a, span, **kw)):
                continue
            if not _explained(con, src, a, b, span, **kw):
                keep = False
                break
            # each explains the other: the more specific one (fewer attempts) replaces the
            # broader one when its rate differs from the rest of the broader one
            if (b.n, b.kind == "segment") < (a.n, a.kind == "segment"):
                if not _stands_out(con, src, b, a, span, **kw):
                    keep = False
                    break
                kept.remove(a)
            elif _stands_out(con, src, a, b, span, **kw):
                keep = False
                break
            else:
                kept.remove(a)
        if keep:
            kept.append(b)
    return sorted(kept, key=_rank_key)


# --------------------------------------------------------------------------- the engine


def find_changes(
    con: duckdb.DuckDBPyConnection,
    attempts_table: str,
    *,
    segments: Sequence[str] = (),
    compare: Sequence[str] | None = None,
    alpha: float = ALPHA,
    max_window_days: int = MAX_WINDOW_DAYS,
    min_attempts: int = MIN_ATTEMPTS,
    min_share: float = MIN_SHARE,
    min_expected: float = MIN_EXPECTED,
    max_windows: int = MAX_WINDOWS,
    explain: bool = True,
) -> list[Finding]:
    """The findings over `attempts_table` (module docstring): windows of change overall and per
    value of each column in `segments`; segment values (and pairs) of the columns in `compare`
    (default: `segments`) worse than the rest. Ranked: drops by customers lost (descending),
    then improvements by customers gained."""
    src = ident(attempts_table)
    spans = _spans(con, src)
    compare = list(segments if compare is None else compare)
    hourly = "ts" in table_columns(con, attempts_table)
    tested: list[_Test] = []
    for s in _series_list(con, src, spans, segments, hourly):
        tested += _scan_series(s, alpha=alpha, max_window_days=max_window_days,
                               min_attempts=min_attempts, min_share=min_share,
                               min_expected=min_expected, max_windows=max_windows)
    parts = _ByTransition(con, src)
    try:
        return _tested_findings(con, parts, spans, tested, compare, alpha=alpha,
                                explain=explain, min_attempts=min_attempts,
                                min_share=min_share, min_expected=min_expected)
    finally:
        parts.drop()


def _tested_findings(con: duckdb.DuckDBPyConnection, parts: _ByTransition, spans: dict,
                     tested: list[_Test], compare: list[str], *, alpha: float, explain: bool,
                     min_attempts: int, min_share: float, min_expected: float
                     ) -> list[Finding]:
    """Steps 4-7 of the module docstring after the scans' `tested`: the segment tests, the
    FDR, the explained findings dropped, ranked."""
    from statsmodels.stats.multitest import multipletests

    limits = dict(min_attempts=min_attempts, min_share=min_share, min_expected=min_expected)
    tested += _segment_tests(con, parts, spans, [[c] for c in compare], **limits)
    if len(compare) > 1 and tested:
        # drill down: pairs of values under a value that is significantly worse on its own
        _, p_adj, _, _ = multipletests([t.p_scan for t in tested], method="fdr_bh")
        parents: dict[tuple[str, str], set] = {}
        for t, pa in zip(tested, p_adj, strict=True):
            if t.kind == "segment" and pa < alpha and t.xw / t.nw < t.xo / t.no:
                parents.setdefault((t.from_step, t.to_step), set()).add(t.group[0])
        if parents:
            pairs = [[a, b] for i, a in enumerate(compare) for b in compare[i + 1:]]
            tested += _segment_tests(con, parts, spans, pairs, only=parents, **limits)
    if not tested:
        return []
    _, p_adj, _, _ = multipletests([t.p_scan for t in tested], method="fdr_bh")
    findings = []
    for t, pa in zip(tested, p_adj, strict=True):
        rate, base = t.xw / t.nw, t.xo / t.no
        # a segment better than the rest is the rest's loss, not a finding of its own; a
        # segment's difference from the rest must be at least a small effect (on much data
        # every segment differs a little)
        if pa >= alpha or (t.kind == "segment" and (
                rate >= base or abs(cohens_h(rate, base)) < MIN_SEGMENT_EFFECT)):
            continue
        hours = t.kind == "hours"
        start = t.start.date() if hours else t.start
        end = (t.end - dt.timedelta(microseconds=1)).date() if hours else t.end
        findings.append(Finding(
            from_step=t.from_step, to_step=t.to_step, group=t.group, kind=t.kind,
            start=start, end=end, rate=rate, baseline_rate=base, n=t.nw, successes=t.xw,
            baseline_n=t.no, lost=t.nw * (base - rate), p_value=t.p_value, p_scan=t.p_scan,
            p_adjusted=float(pa), start_ts=t.start if hours else None,
            end_ts=t.end if hours else None))
    findings.sort(key=_rank_key)
    if explain:
        findings = _drop_explained(con, parts, findings, spans, alpha=alpha,
                                   min_attempts=min_attempts, min_expected=min_expected)
    return findings


def cohens_h(p1: float, p2: float) -> float:
    """Cohen's h, the effect size of two proportions: 2 asin(sqrt p1) - 2 asin(sqrt p2)
    (0.2 small, 0.5 medium, 0.8 large)."""
    return 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p2))


def _rank_key(f: Finding) -> tuple:
    return (0 if f.lost > 0 else 1, -abs(f.lost), f.p_adjusted, f.from_step, f.to_step,
            f.group, f.kind, f.start)


FINDINGS_COLUMNS = (
    "rank INTEGER, from_step VARCHAR, to_step VARCHAR, segment_column VARCHAR, "
    "segment_value VARCHAR, kind VARCHAR, start_day DATE, end_day DATE, days INTEGER, "
    "rate DOUBLE, baseline_rate DOUBLE, baseline VARCHAR, n BIGINT, successes BIGINT, "
    "baseline_n BIGINT, lost DOUBLE, direction VARCHAR, p_value DOUBLE, p_scan DOUBLE, "
    "p_adjusted DOUBLE, start_ts TIMESTAMP, end_ts TIMESTAMP, sentence VARCHAR")
FINDING_DAYS_COLUMNS = (
    "rank INTEGER, series VARCHAR, day DATE, in_window BOOLEAN, n BIGINT, successes BIGINT, "
    "rate DOUBLE")


def findings_table(con: duckdb.DuckDBPyConnection, findings: Sequence[Finding],
                   table: str = "findings") -> str:
    """(Re)create `table` (grain: one finding, in rank order, rank 1 first); returns its name."""
    con.execute(f"create or replace table {ident(table)} ({FINDINGS_COLUMNS})")
    rows = [(rank, f.from_step, f.to_step, f.segment_column, f.segment_value, f.kind,
             f.start, f.end, f.days, f.rate, f.baseline_rate, f.baseline, f.n, f.successes,
             f.baseline_n, f.lost, "drop" if f.lost > 0 else "rise", f.p_value, f.p_scan,
             f.p_adjusted, f.start_ts, f.end_ts, f.sentence())
            for rank, f in enumerate(findings, start=1)]
    _insert_rows(con, table, FINDINGS_COLUMNS, rows)
    return table


def finding_days_table(con: duckdb.DuckDBPyConnection, attempts_table: str,
                       findings: Sequence[Finding], table: str = "finding_days") -> str:
    """(Re)create `table` (grain: finding x series x day): the daily attempts, successes and
    rate behind each finding, every day of its transition's tested span present. Series
    'group': the finding's group (in_window marks the window); for a 'segment' finding also
    series 'baseline': the attempts it is compared with."""
    src = ident(attempts_table)
    spans = _spans(con, src)
    con.execute(f"create or replace table {ident(table)} ({FINDING_DAYS_COLUMNS})")
    rows = []
    for rank, f in enumerate(findings, start=1):
        days = _day_list(spans[(f.from_step, f.to_step)])
        series = [("group", _daily(con, src, f.from_step, f.to_step, f.group, days))]
        if f.kind == "segment":
            cols = [c for c, _ in f.group]
            where = f"{_known_sql(cols)} and not {_group_sql(f.group)}"
            series.append(("baseline", _daily(con, src, f.from_step, f.to_step, (), days,
                                              where=where)))
        for name, s in series:
            for d, n, x in zip(s.days, s.n, s.x, strict=True):
                rows.append((rank, name, d, f.start <= d <= f.end, int(n), int(x),
                             float(x / n) if n else None))
    _insert_rows(con, table, FINDING_DAYS_COLUMNS, rows)
    return table


_ARROW_TYPES = {"INTEGER": "int32", "BIGINT": "int64", "DOUBLE": "float64", "VARCHAR": "string",
                "BOOLEAN": "bool", "DATE": "date32", "TIMESTAMP": "timestamp[us]"}


def _insert_rows(con: duckdb.DuckDBPyConnection, table: str, columns: str,
                 rows: Sequence[tuple]) -> None:
    """Append `rows` (tuples in the order of `columns`, a table's "name TYPE, ..." list) to
    `table` in one statement: the rows go to the engine as one Arrow table (a statement per
    row costs milliseconds each)."""
    if not rows:
        return
    names, types = zip(*(c.split()[:2] for c in columns.split(", ")), strict=True)
    schema = pa.schema([(n, pa.type_for_alias(_ARROW_TYPES[t])) for n, t in zip(names, types,
                                                                                  strict=True)])
    arrow = pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows], schema=schema)
    view = f"_rows_{table}"
    eng = engine_of(con)
    eng.register_arrow(view, arrow)
    try:
        eng.execute(f"insert into {ident(table)} select {', '.join(ident(n) for n in names)} "
                    f"from {ident(view)}")
    finally:
        unregister_arrow(eng, view)


def unregister_arrow(eng: object, view: str) -> None:
    """Drop Arrow view `view` (DuckDB: unregister; Spark: the temp view goes)."""
    if eng.name == "duckdb":
        eng.unregister(view)
    else:
        eng.execute(f"drop view if exists {ident(view)}")
