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
   and '(unknown)' are never tested (they still count in the overall series).
2. **Scan.** Every contiguous window [s, e] of 1 to ``max_window_days`` days (default
   min(60, half the series)) is compared with the days *outside* it (the baseline excludes the
   window tested) by the binomial log-likelihood ratio
   LLR = ll(X_w, N_w) + ll(X_o, N_o) - ll(X, N), ll(x, n) = x log(x/n) + (n-x) log(1-x/n).
   Only *eligible* windows are scanned: N_w and N_o >= max(``min_attempts`` (20),
   ``min_share`` (0.5 %) of the series' attempts), and expected counts under the pooled rate
   >= ``min_expected`` (5) for both outcomes in both groups. The window with the largest LLR is
   taken.
3. **Significance.** That window against the outside days by Fisher's exact test
   (``scipy.stats.fisher_exact``, two-sided). Because the window was chosen as the best of M
   eligible windows, the p-value is Bonferroni-corrected for M: p_scan = min(1, M * p_fisher)
   (conservative, valid by the union bound; no simulation). If p_scan < alpha, the window's days
   are removed (from later windows and from the baseline) and the scan repeats, up to
   ``max_windows`` (3) windows per series.
4. **FDR.** Benjamini-Hochberg (``statsmodels...multipletests(method="fdr_bh")``) over every
   p_scan computed (every window tested, all series, all transitions); a window is a finding
   when its adjusted p < alpha (0.05).
5. **Explained findings** (``explain=True``). An incident shows in several series at once (an
   all-platform outage in the overall series and in each platform; a drop on android in the
   overall series and, diluted, in each channel). Of two overlapping findings of one transition
   in the same direction, with groups A and B (overall = everyone), B is *explained by* A when
   the attempts in B but not in A show no significant change over B's window (Fisher, p >=
   alpha, or too few attempts to test). B is dropped when explained by A and A is not explained
   by B; when each explains the other, the smaller group (the more specific finding) is kept.
6. **Ranking.** lost = n * (baseline_rate - rate): customers lost in the window (negative for an
   improvement). Both directions are reported; drops come first, by lost descending, then
   improvements by |lost| descending.

The result (`Finding`s) is written by `findings_table` (table ``findings``, one row per finding).
No Dagster import; the rates are plain shares (successes / attempts), as ``step_conversion`` of
transforms/sql/definitions.sql.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import duckdb
import numpy as np

from transforms.errors import UserError
from transforms.sqlutil import ident, literal

UNKNOWN = "(unknown)"
ALPHA = 0.05
MAX_WINDOW_DAYS = 60
MIN_ATTEMPTS = 20
MIN_SHARE = 0.005
MIN_EXPECTED = 5.0
MAX_WINDOWS = 3
_ATTEMPT_COLUMNS = ("from_step", "to_step", "day", "success", "complete")


@dataclass(frozen=True)
class Finding:
    """A window of days [start, end] where the transition's rate differs from its baseline."""

    from_step: str
    to_step: str
    segment_column: str | None
    segment_value: str | None
    start: dt.date
    end: dt.date
    rate: float  # successes / attempts in the window
    baseline_rate: float  # successes / attempts on the series' other (unflagged) days
    n: int  # attempts in the window
    successes: int
    baseline_n: int
    lost: float  # n * (baseline_rate - rate); negative for an improvement
    p_value: float  # Fisher's exact test, window vs outside
    p_scan: float  # Bonferroni-corrected for the windows scanned
    p_adjusted: float  # Benjamini-Hochberg over everything tested

    @property
    def segment(self) -> dict[str, str] | None:
        if self.segment_column is None:
            return None
        return {"column": self.segment_column, "value": self.segment_value}

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def to_dict(self) -> dict[str, object]:
        return {"from_step": self.from_step, "to_step": self.to_step, "segment": self.segment,
                "start": self.start.isoformat(), "end": self.end.isoformat(),
                "rate": self.rate, "baseline_rate": self.baseline_rate, "n": self.n,
                "lost": self.lost, "p_adjusted": self.p_adjusted}

    def sentence(self) -> str:
        where = (f" for {self.segment_column} = {self.segment_value}"
                 if self.segment_column is not None else "")
        verb = "fell" if self.lost > 0 else "rose"
        lost = (f"{self.lost:.0f} customers lost" if self.lost > 0
                else f"{-self.lost:.0f} customers gained")
        when = (f"on {self.start}" if self.days == 1
                else f"from {self.start} to {self.end} ({self.days} days")
        when += f"{' (' if self.days == 1 else ', '}n = {self.n})"
        return (f"{self.from_step} -> {self.to_step}{where}: conversion {verb} to "
                f"{self.rate:.1%} {when} against {self.baseline_rate:.1%} on the other days; "
                f"{lost} (adjusted p = {self.p_adjusted:.2g})")


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
    column: str | None
    value: str | None
    days: list[dt.date]
    n: np.ndarray
    x: np.ndarray


@dataclass
class _Tested:
    series: _Series
    s: int
    e: int
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


def _best_window(n: np.ndarray, x: np.ndarray, blocked: np.ndarray, *, max_len: int,
                 min_attempts: int, min_expected: float) -> tuple[int, int, int] | None:
    """(s, e, M): the eligible window with the largest LLR against the unblocked outside days,
    and the number M of eligible windows; None when no window is eligible."""
    n = np.where(blocked, 0, n).astype(float)
    x = np.where(blocked, 0, x).astype(float)
    total_n, total_x = n.sum(), x.sum()
    if total_n <= 0:
        return None
    pooled = total_x / total_n
    cn = np.concatenate([[0.0], np.cumsum(n)])
    cx = np.concatenate([[0.0], np.cumsum(x)])
    cb = np.concatenate([[0], np.cumsum(blocked.astype(int))])
    ll_all = float(_ll(np.array([total_x]), np.array([total_n]))[0])
    best, best_llr, count = None, -math.inf, 0
    t = len(n)
    for length in range(1, min(max_len, t) + 1):
        s = np.arange(0, t - length + 1)
        e = s + length
        nw, xw = cn[e] - cn[s], cx[e] - cx[s]
        no, xo = total_n - nw, total_x - xw
        ok = ((cb[e] - cb[s]) == 0) & (nw >= min_attempts) & (no >= min_attempts)
        for group in (nw, no):
            ok &= (group * pooled >= min_expected) & (group * (1 - pooled) >= min_expected)
        if not ok.any():
            continue
        count += int(ok.sum())
        llr = np.where(ok, _ll(xw, nw) + _ll(xo, no) - ll_all, -math.inf)
        i = int(np.argmax(llr))
        if llr[i] > best_llr + 1e-12:
            best_llr, best = float(llr[i]), (int(s[i]), int(e[i]) - 1)
    if best is None:
        return None
    return best[0], best[1], count


def _fisher(xw: float, nw: float, xo: float, no: float) -> float:
    from scipy.stats import fisher_exact

    table = [[int(xw), int(nw - xw)], [int(xo), int(no - xo)]]
    return float(fisher_exact(table, alternative="two-sided").pvalue)


def _scan_series(series: _Series, *, alpha: float, max_window_days: int, min_attempts: int,
                 min_share: float, min_expected: float, max_windows: int) -> list[_Tested]:
    t = len(series.days)
    total = int(series.n.sum())
    if t < 2 or total == 0:
        return []
    max_len = max(1, min(max_window_days, t // 2))
    min_n = max(min_attempts, math.ceil(min_share * total))
    blocked = np.zeros(t, dtype=bool)
    tested: list[_Tested] = []
    for _ in range(max_windows):
        found = _best_window(series.n, series.x, blocked, max_len=max_len,
                             min_attempts=min_n, min_expected=min_expected)
        if found is None:
            break
        s, e, m = found
        free = ~blocked
        nw, xw = int(series.n[s:e + 1].sum()), int(series.x[s:e + 1].sum())
        no = int(series.n[free].sum()) - nw
        xo = int(series.x[free].sum()) - xw
        p = _fisher(xw, nw, xo, no)
        tested.append(_Tested(series, s, e, nw, xw, no, xo, p, min(1.0, p * m)))
        if tested[-1].p_scan >= alpha:
            break
        blocked[s:e + 1] = True
    return tested


# --------------------------------------------------------------------------- reading the table


def _group_sql(column: str | None, value: str | None) -> str:
    if column is None:
        return "true"
    return f"({ident(column)} = {literal(value)})"


def _series_list(con: duckdb.DuckDBPyConnection, table: str,
                 segments: Sequence[str]) -> tuple[list[_Series], dict[tuple[str, str], tuple]]:
    """Every series to scan, and per transition its (first day, last complete day)."""
    src = ident(table)
    ranges = con.execute(f"""
        with per_day as (
            select cast(from_step as varchar) as f, cast(to_step as varchar) as t, day,
                   bool_and(coalesce(complete, false)) as day_complete
            from {src} where day is not null group by all)
        select f, t, min(day),
               coalesce(min(day) filter (where not day_complete) - 1, max(day))
        from per_day group by f, t order by f, t""").fetchall()
    spans: dict[tuple[str, str], tuple] = {}
    out: list[_Series] = []
    for f, t, first, last in ranges:
        if last is None or last < first:
            continue
        spans[(f, t)] = (first, last)
        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        groups: list[tuple[str | None, str | None]] = [(None, None)]
        for col in segments:
            values = con.execute(
                f"select distinct cast({ident(col)} as varchar) as v from {src} "
                f"where cast(from_step as varchar) = ? and cast(to_step as varchar) = ? "
                f"and v is not null and v <> ? order by v", [f, t, UNKNOWN]).fetchall()
            groups += [(col, v) for (v,) in values]
        for col, value in groups:
            out.append(_daily(con, src, f, t, col, value, days))
    return out, spans


def _daily(con: duckdb.DuckDBPyConnection, src: str, f: str, t: str, column: str | None,
           value: str | None, days: list[dt.date], extra: str = "true") -> _Series:
    rows = con.execute(f"""
        select day, count(*), count(*) filter (where success)
        from {src}
        where cast(from_step as varchar) = ? and cast(to_step as varchar) = ?
          and day between ? and ? and {_group_sql(column, value)} and {extra}
        group by day""", [f, t, days[0], days[-1]]).fetchall()
    index = {d: i for i, d in enumerate(days)}
    n = np.zeros(len(days), dtype=np.int64)
    x = np.zeros(len(days), dtype=np.int64)
    for d, cnt, ok in rows:
        n[index[d]], x[index[d]] = cnt, ok
    return _Series(f, t, column, value, days, n, x)


# --------------------------------------------------------------------------- explained findings


def _explained(con: duckdb.DuckDBPyConnection, src: str, b: Finding, a: Finding,
               days: list[dt.date], *, alpha: float, min_attempts: int,
               min_expected: float) -> bool:
    """True when the attempts in b's group but not in a's show no significant change over b's
    window (module docstring, step 5)."""
    not_a = f"not coalesce({_group_sql(a.segment_column, a.segment_value)}, false)"
    rest = _daily(con, src, b.from_step, b.to_step, b.segment_column, b.segment_value, days,
                  extra=not_a)
    inside = np.array([b.start <= d <= b.end for d in days])
    nw, xw = int(rest.n[inside].sum()), int(rest.x[inside].sum())
    no, xo = int(rest.n[~inside].sum()), int(rest.x[~inside].sum())
    if min(nw, no) < min_attempts:
        return True
    pooled = (xw + xo) / (nw + no)
    if min(nw, no) * min(pooled, 1 - pooled) < min_expected:
        return True
    return _fisher(xw, nw, xo, no) >= alpha


def _drop_explained(con: duckdb.DuckDBPyConnection, src: str, findings: list[Finding],
                    spans: dict, **kw: float) -> list[Finding]:
    dropped: set[int] = set()
    for i, b in enumerate(findings):
        first, last = spans[(b.from_step, b.to_step)]
        days = [first + dt.timedelta(days=j) for j in range((last - first).days + 1)]
        for j, a in enumerate(findings):
            if (i == j or (a.from_step, a.to_step) != (b.from_step, b.to_step)
                    or (a.segment_column, a.segment_value) == (b.segment_column,
                                                               b.segment_value)
                    or (a.lost > 0) != (b.lost > 0) or a.end < b.start or b.end < a.start):
                continue
            if not _explained(con, src, b, a, days, **kw):
                continue
            if not _explained(con, src, a, b, days, **kw):
                dropped.add(i)
                break
            # each explains the other: keep the smaller group (the more specific finding)
            size_a, size_b = a.n + a.baseline_n, b.n + b.baseline_n
            if size_b > size_a or (size_b == size_a and j < i):
                dropped.add(i)
                break
    return [f for i, f in enumerate(findings) if i not in dropped]


# --------------------------------------------------------------------------- the engine


def find_changes(
    con: duckdb.DuckDBPyConnection,
    attempts_table: str,
    *,
    segments: Sequence[str] = (),
    alpha: float = ALPHA,
    max_window_days: int = MAX_WINDOW_DAYS,
    min_attempts: int = MIN_ATTEMPTS,
    min_share: float = MIN_SHARE,
    min_expected: float = MIN_EXPECTED,
    max_windows: int = MAX_WINDOWS,
    explain: bool = True,
) -> list[Finding]:
    """The findings over `attempts_table` (module docstring), overall and per value of each
    column in `segments`, ranked: drops by customers lost (descending), then improvements by
    customers gained."""
    from statsmodels.stats.multitest import multipletests

    series, spans = _series_list(con, attempts_table, segments)
    tested: list[_Tested] = []
    for s in series:
        tested += _scan_series(s, alpha=alpha, max_window_days=max_window_days,
                               min_attempts=min_attempts, min_share=min_share,
                               min_expected=min_expected, max_windows=max_windows)
    if not tested:
        return []
    reject, p_adj, _, _ = multipletests([t.p_scan for t in tested], alpha=alpha,
                                        method="fdr_bh")
    findings = []
    for t, keep, pa in zip(tested, reject, p_adj, strict=True):
        if not keep or pa >= alpha:
            continue
        rate, base = t.xw / t.nw, t.xo / t.no
        findings.append(Finding(
            from_step=t.series.from_step, to_step=t.series.to_step,
            segment_column=t.series.column, segment_value=t.series.value,
            start=t.series.days[t.s], end=t.series.days[t.e], rate=rate, baseline_rate=base,
            n=t.nw, successes=t.xw, baseline_n=t.no, lost=t.nw * (base - rate),
            p_value=t.p_value, p_scan=t.p_scan, p_adjusted=float(pa)))
    findings.sort(key=_rank_key)
    if explain:
        findings = _drop_explained(con, ident(attempts_table), findings, spans, alpha=alpha,
                                   min_attempts=min_attempts, min_expected=min_expected)
    return findings


def _rank_key(f: Finding) -> tuple:
    return (0 if f.lost > 0 else 1, -abs(f.lost), f.p_adjusted, f.from_step, f.to_step,
            f.segment_column or "", f.segment_value or "", f.start)


FINDINGS_COLUMNS = (
    "rank INTEGER, from_step VARCHAR, to_step VARCHAR, segment_column VARCHAR, "
    "segment_value VARCHAR, start_day DATE, end_day DATE, days INTEGER, rate DOUBLE, "
    "baseline_rate DOUBLE, n BIGINT, successes BIGINT, baseline_n BIGINT, lost DOUBLE, "
    "direction VARCHAR, p_value DOUBLE, p_scan DOUBLE, p_adjusted DOUBLE")


def findings_table(con: duckdb.DuckDBPyConnection, findings: Sequence[Finding],
                   table: str = "findings") -> str:
    """(Re)create `table` (grain: one finding, in rank order, rank 1 first); returns its name."""
    con.execute(f"create or replace table {ident(table)} ({FINDINGS_COLUMNS})")
    rows = []
    for rank, f in enumerate(findings, start=1):
        d = asdict(f)
        rows.append((rank, d["from_step"], d["to_step"], d["segment_column"],
                     d["segment_value"], f.start, f.end, f.days, f.rate, f.baseline_rate, f.n,
                     f.successes, f.baseline_n, f.lost, "drop" if f.lost > 0 else "rise",
                     f.p_value, f.p_scan, f.p_adjusted))
    if rows:
        con.executemany(f"insert into {ident(table)} values ({', '.join(['?'] * 18)})", rows)
    return table
