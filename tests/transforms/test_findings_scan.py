"""The findings engine's fast paths give what the direct computations give (issue 13).

- the Monte Carlo decision per replicate (`_exceeding`: cutoffs on each window's successes)
  against scoring every window of every replicate by its LLR (`_max_llr`);
- the Monte Carlo p-value against the sequential procedure written out with that scoring;
- the Monte Carlo cut short (`enough`) against the full one, and the scan's p-values with it;
- the series read in one query per column (`_series_list`) against counts made in pandas;
- the cutoff search (`_last_true`) against a linear search.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from transforms.findings import (
    MC_BATCH,
    MC_EXCEEDANCES,
    MC_MAX_REPLICATES,
    _eligible,
    _exceeding,
    _last_true,
    _max_llr,
    _monte_carlo_p,
    _scan_series,
    _Series,
    _series_list,
    _spans,
)


def _series(rng: np.random.Generator, days: int) -> tuple[np.ndarray, np.ndarray]:
    n = rng.poisson(rng.uniform(3, 150), days).astype(np.int64)
    rate = rng.uniform(0.03, 0.97)
    x = rng.binomial(n, rate)
    if rng.random() < 0.7:  # a window at another rate
        a = int(rng.integers(0, days - 3))
        b = a + int(rng.integers(1, 40))
        x[a:b] = rng.binomial(n[a:b], rng.uniform(0.01, 0.99))
    return n, x


@pytest.mark.parametrize("seed", range(12))
def test_exceeding_decides_as_scoring_every_window(seed):
    rng = np.random.default_rng(seed)
    days = int(rng.integers(10, 300))
    n, x = _series(rng, days)
    blocked = np.zeros(days, dtype=bool)
    if rng.random() < 0.5:  # days set aside by an earlier window
        a = int(rng.integers(0, days - 2))
        blocked[a:a + int(rng.integers(1, 20))] = True
    n, x = np.where(blocked, 0, n), np.where(blocked, 0, x)
    if n.sum() == 0 or x.sum() in (0, n.sum()):
        pytest.skip("nothing to scan")
    windows = _eligible(n, blocked, x.sum() / n.sum(), max_len=max(1, min(60, days // 2)),
                        min_attempts=20, min_expected=1.0, steps=True)
    if not windows:
        pytest.skip("no eligible window")
    draws = np.random.default_rng(100 + seed).multivariate_hypergeometric(
        n, int(x.sum()), size=300)
    scores, _ = _max_llr(draws, float(n.sum()), windows)
    # thresholds at the replicates' own largest LLRs (ties included), between them, and
    # below 1e-6 (scored in full)
    thresholds = [*np.quantile(scores, [0.0, 0.1, 0.5, 0.9, 0.99, 1.0]),
                  float(np.median(scores)) + 1e-7, 5e-7, 0.0]
    for threshold in thresholds:
        expected = scores >= threshold
        got = _exceeding(n, int(x.sum()), float(threshold), windows)(draws)
        assert np.array_equal(got, expected), (threshold, np.flatnonzero(got != expected))
    assert 0 < (scores >= np.median(scores)).sum() < len(scores) or scores.min() == scores.max()


def _sequential_p(n, x, observed, windows, seed):
    """The Besag & Clifford sequential p-value, every replicate scored by its largest LLR."""
    rng = np.random.default_rng(seed)
    done = over = 0
    while done < MC_MAX_REPLICATES:
        draws = rng.multivariate_hypergeometric(n.astype(np.int64), int(x.sum()),
                                                size=MC_BATCH, method="marginals")
        scores, _ = _max_llr(draws, float(n.sum()), windows)
        over += int((scores >= observed - 1e-9).sum())
        done += MC_BATCH
        if over >= MC_EXCEEDANCES:
            return over / done
    return (over + 1) / (done + 1)


@pytest.mark.parametrize("seed", range(8))
def test_monte_carlo_p_is_the_sequential_p_value_of_the_same_draws(seed):
    rng = np.random.default_rng(seed)
    n, x = _series(rng, int(rng.integers(30, 200)))
    windows = _eligible(n, np.zeros(len(n), dtype=bool), x.sum() / n.sum(), max_len=30,
                        min_attempts=20, min_expected=1.0, steps=True)
    if not windows:
        pytest.skip("no eligible window")
    observed = float(_max_llr(x, float(n.sum()), windows)[0][0])
    for stat in (observed, observed / 3):  # significant, and not
        p = _monte_carlo_p(n, x, stat, windows, seed)
        assert p == _sequential_p(n, x, stat, windows, seed)
        assert p == _monte_carlo_p(n, x, stat, windows, seed)  # the same seed, the same p


@pytest.mark.parametrize("seed", range(10))
def test_monte_carlo_cut_short_is_exact_below_enough_and_a_lower_bound_above(seed):
    rng = np.random.default_rng(40 + seed)
    n, x = _series(rng, int(rng.integers(60, 366)))
    windows = _eligible(n, np.zeros(len(n), dtype=bool), x.sum() / n.sum(),
                        max_len=min(60, len(n) // 2), min_attempts=20, min_expected=1.0,
                        steps=True)
    if not windows:
        pytest.skip("no eligible window")
    observed = float(_max_llr(x, float(n.sum()), windows)[0][0])
    seen = set()
    # the series' own largest LLR (mostly significant), less, and an LLR that the largest of
    # nearly every replicate reaches (far from significant: the draws are cut short)
    for stat in (observed, observed * 0.8, 2.0):
        exact = _sequential_p(n, x, stat, windows, seed)
        for enough in (0.001, 0.01, 0.025, 0.2):
            got = _monte_carlo_p(n, x, stat, windows, seed, enough=enough)
            if exact < enough:
                assert got == exact, (stat, enough)
            else:  # cut short: a bound between enough and the exact value
                assert enough <= got <= exact, (stat, enough, got, exact)
            seen.add(exact < enough)
    assert False in seen  # some were cut short


@pytest.mark.parametrize("seed", range(6))
def test_scan_p_values_with_the_cut_short_monte_carlo_settle_as_the_full_one(seed, monkeypatch):
    # what the scan reports: the same windows, p-values and Bonferroni factors; p_scan the
    # same wherever it is below alpha (the only p_scan values a finding or an adjusted
    # p-value of one depends on), and at least alpha where the full one is too
    import transforms.findings as findings_module

    rng = np.random.default_rng(70 + seed)
    days = int(rng.integers(90, 366))
    n, x = _series(rng, days)
    start = dt.date(2025, 1, 1)
    series = _Series("a", "b", (), [start + dt.timedelta(days=i) for i in range(days)], n, x)
    kw = dict(alpha=0.05, max_window_days=60, min_attempts=20, min_share=0.005,
              min_expected=1.0, max_windows=3)
    fast = _scan_series(series, **kw)
    full_mc = findings_module._monte_carlo_p
    monkeypatch.setattr(findings_module, "_monte_carlo_p",
                        lambda *a, enough=0.0: full_mc(*a))
    full = _scan_series(series, **kw)
    assert len(fast) == len(full)
    for a, b in zip(fast, full, strict=True):
        assert (a.kind, a.start, a.end, a.nw, a.xw, a.p_value) == \
               (b.kind, b.start, b.end, b.nw, b.xw, b.p_value)
        if b.p_scan < 0.05:
            assert a.p_scan == b.p_scan
        else:
            assert a.p_scan >= 0.05


def test_last_true_finds_the_last_point_of_a_monotone_predicate():
    rng = np.random.default_rng(5)
    size = 2000
    first = rng.integers(-50, 50, size)
    last = first + rng.integers(0, 400, size)
    point = first + (rng.random(size) * (last - first + 1)).astype(np.int64)  # pred true to here
    guess = point + rng.integers(-300, 300, size)
    calls = []

    def pred(xs, i):
        calls.append(len(i))
        assert np.all((first[i] <= xs) & (xs <= last[i]))
        return xs <= point[i]

    got = _last_true(pred, first, last, guess)
    # the answer by walking from the first point on
    expected = np.array([max(v for v in range(f, lst + 1) if v <= p)
                         for f, lst, p in zip(first, last, point, strict=True)])
    assert np.array_equal(got, expected)
    # an exact guess costs at most two evaluations (the guess and its neighbour)
    calls.clear()
    _last_true(pred, first, last, point)
    assert len(calls) <= 2


def test_series_list_counts_every_group_day_and_hour():
    rng = np.random.default_rng(3)
    start = dt.date(2026, 3, 1)
    rows = []
    for k in range(3000):
        day = start + dt.timedelta(days=int(rng.integers(0, 20)))
        hour = dt.datetime.combine(day, dt.time()) + dt.timedelta(
            hours=float(rng.uniform(-3, 27)))  # a few attempts timed on the day before/after
        rows.append({
            "from_step": "a" if k % 3 else "b", "to_step": "b" if k % 3 else "c", "day": day,
            "ts": None if k % 17 == 0 else hour, "success": bool(rng.random() < 0.6),
            # the last two days' windows are still open for transition a -> b
            "complete": not (k % 3 and day >= start + dt.timedelta(days=18)),
            "platform": [None, "(unknown)", "ios", "web", "android"][k % 5],
            "method": ["card", "wallet"][k % 2],
        })
    # a value seen only on days that are not tested: no series
    rows.append({**rows[1], "day": start + dt.timedelta(days=19), "platform": "tv",
                 "complete": False})
    df = pd.DataFrame(rows)
    con = duckdb.connect()
    con.execute("create table att as select from_step, to_step, day, "
                "cast(ts as timestamp) as ts, success, complete, platform, method from df")
    spans = _spans(con, "att")
    assert spans == {("a", "b"): (start, start + dt.timedelta(days=17)),
                     ("b", "c"): (start, start + dt.timedelta(days=19))}
    got = {(s.from_step, s.to_step, s.group, s.unit): s
           for s in _series_list(con, "att", spans, ["platform", "method"], hourly=True)}
    expected_keys = set()
    for (f, t), (first, last) in spans.items():
        span = df[(df.from_step == f) & (df.to_step == t) & (df.day >= first)
                  & (df.day <= last)]
        groups = [((), span)] + [
            (((c, v),), span[span[c] == v]) for c in ("platform", "method")
            for v in sorted(span[c].dropna().unique()) if v != "(unknown)"]
        days = (last - first).days + 1
        for group, sub in groups:
            expected_keys |= {(f, t, group, "day"), (f, t, group, "hour")}
            s = got[(f, t, group, "day")]
            assert s.days == [first + dt.timedelta(days=i) for i in range(days)]
            offset = sub.day.map(lambda d, first=first: (d - first).days)
            assert np.array_equal(s.n, np.bincount(offset, minlength=days))
            assert np.array_equal(s.x, np.bincount(offset, weights=sub.success,
                                                   minlength=days).astype(int))
            h = got[(f, t, group, "hour")]
            t0 = dt.datetime.combine(first, dt.time())
            timed = sub[sub.ts.notna()]
            hours = ((timed.ts - t0).dt.total_seconds() // 3600).astype(int)
            inside = (hours >= 0) & (hours < 24 * days)
            assert len(h.days) == 24 * days
            assert h.days[0] == t0 and h.days[-1] == t0 + dt.timedelta(hours=24 * days - 1)
            assert np.array_equal(h.n, np.bincount(hours[inside], minlength=24 * days))
            assert np.array_equal(h.x, np.bincount(
                hours[inside], weights=timed.success[inside], minlength=24 * days).astype(int))
    assert set(got) == expected_keys
    assert not any(g == (("platform", "tv"),) for _, _, g, _ in got)
