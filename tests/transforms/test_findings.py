"""The findings engine on generated logs with planted incidents (transforms/findings.py)."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transforms.findings import (
    Finding,
    find_changes,
    findings_table,
    funnel_attempts,
    transition_attempts,
)
from transforms.funnel import funnel_actors

START = dt.date(2026, 1, 1)
DAYS = 120
STEPS = ["visit", "cart", "pay"]
PLATFORMS = ["android", "ios", "web"]


def generate(seed: int, actors: int = 4000, *, days: int = DAYS, rate=None,
             delay_hours: float = 2.0) -> pd.DataFrame:
    """visit -> cart (p 0.7) -> pay; `rate(day_index, platform)` is the cart -> pay rate
    (default 0.6). Events after the end of the data (day `days`) are cut off."""
    rng = np.random.default_rng(seed)
    rate = rate or (lambda day, platform: 0.6)
    t0 = pd.Timestamp(START)
    end = t0 + pd.Timedelta(days=days)
    rows = []
    for i in range(actors):
        day = int(rng.integers(0, days))
        platform = PLATFORMS[int(rng.integers(0, 3))]
        ts = t0 + pd.Timedelta(days=day, seconds=int(rng.integers(0, 86400 - 7200)))
        actor = f"a{i}"
        rows.append((actor, "visit", ts, platform))
        if rng.random() < 0.7:
            ts = ts + pd.Timedelta(minutes=int(rng.integers(1, 60)))
            rows.append((actor, "cart", ts, platform))
            if rng.random() < rate(day, platform):
                ts = ts + pd.Timedelta(hours=float(rng.exponential(delay_hours)))
                rows.append((actor, "pay", ts, platform))
    df = pd.DataFrame(rows, columns=["actor", "event", "timestamp", "platform"])
    return df[df.timestamp < end].reset_index(drop=True)


def generate_methods(seed: int, actors: int = 4000, *, rate=None) -> pd.DataFrame:
    """As `generate`, with a payment method per actor (card, paypal, wallet); `rate(platform,
    method)` is the cart -> pay rate on every day."""
    rng = np.random.default_rng(seed)
    methods = np.array(["card", "paypal", "wallet"])[rng.integers(0, 3, actors)]
    by_actor = dict(zip([f"a{i}" for i in range(actors)], methods, strict=True))
    df = generate(seed, actors, rate=lambda day, platform: 0.6)
    df["method"] = df.actor.map(by_actor)
    # redraw cart -> pay with the (platform, method) rate: keep a pay row with that chance
    carts = df[df.event == "cart"].set_index("actor")
    keep = {a: rng.random() < rate(r.platform, r.method) for a, r in carts.iterrows()}
    pays = df[df.event == "pay"]
    df = df[(df.event != "pay") | pays.actor.map(keep).reindex(df.index, fill_value=True)]
    missing = [a for a, k in keep.items() if k and a not in set(pays.actor)]
    extra = carts.loc[missing].reset_index().assign(
        event="pay", timestamp=lambda d: d.timestamp + pd.Timedelta(minutes=30))
    return pd.concat([df, extra[df.columns]], ignore_index=True)


def findings_of(df: pd.DataFrame, *, window: float = 86400, extra_segment: str | None = None,
                **kw) -> list[Finding]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("events_df", df)
    con.execute("create table events as select * from events_df")
    actors = funnel_actors(con, "events", STEPS, window_seconds=window, breakdown="platform")
    segments = ["platform"]
    if extra_segment:
        per_actor = df.groupby("actor", as_index=False)[extra_segment].first()
        con.register("extra_df", per_actor)
        con.execute(f"create temp table extra as select actor, {extra_segment} from extra_df")
        actors = con.sql(f"select a.*, e.{extra_segment} from ({actors.sql_query()}) a "
                         "join extra e using (actor)")
        table = funnel_attempts(con, actors, STEPS, breakdown_as="platform",
                                segments=[extra_segment])
        segments.append(extra_segment)
    else:
        table = funnel_attempts(con, actors, STEPS, breakdown_as="platform")
    return find_changes(con, table, segments=segments, **kw)


def day(i: int) -> dt.date:
    return START + dt.timedelta(days=i)


def show(findings: list[Finding]) -> str:
    return "\n".join(f.sentence() for f in findings)


def test_segment_specific_drop_for_a_month():
    # android, cart -> pay: 0.6 -> 0.2 on days 40..69
    df = generate(1, rate=lambda d, p: 0.2 if p == "android" and 40 <= d <= 69 else 0.6)
    found = findings_of(df)
    print(show(found))
    android = [f for f in found if f.segment == {"column": "platform", "value": "android"}]
    assert len(android) == 1
    f = android[0]
    assert (f.from_step, f.to_step) == ("cart", "pay")
    assert abs((f.start - day(40)).days) <= 3 and abs((f.end - day(69)).days) <= 3
    assert f.rate < 0.35 and f.baseline_rate > 0.5 and f.lost > 0
    assert f.lost == pytest.approx(f.n * (f.baseline_rate - f.rate))
    assert found[0] == f  # the top finding; the overall series' dip is explained by it
    assert all(g.segment is not None for g in found if g.to_step == "pay" and g.lost > 0)


def test_all_segment_outage_for_three_weeks():
    # every platform, cart -> pay: 0.6 -> 0.1 on days 60..80
    df = generate(2, rate=lambda d, p: 0.1 if 60 <= d <= 80 else 0.6)
    found = findings_of(df)
    print(show(found))
    assert len(found) == 1  # the per-platform dips are explained by the overall one
    f = found[0]
    assert f.segment is None and (f.from_step, f.to_step) == ("cart", "pay")
    assert abs((f.start - day(60)).days) <= 3 and abs((f.end - day(80)).days) <= 3
    assert f.p_adjusted < 0.05 and f.lost > 0


def test_one_day_spike_of_failures():
    # every payment fails on day 50 (6000 actors over 90 days: ~45 cart -> pay attempts a day)
    df = generate(3, 6000, days=90, rate=lambda d, p: 0.0 if d == 50 else 0.6)
    found = findings_of(df)
    print(show(found))
    assert len(found) == 1
    f = found[0]
    assert f.segment is None and f.start == f.end == day(50)
    assert f.rate == 0.0 and f.n >= 20


def test_a_pair_of_segment_values_worse_than_the_rest_on_every_day():
    # android + card pay at 0.3 on every day, every other combination at 0.6: no window of
    # change, one segment comparison; android alone and card alone are explained by the pair
    df = generate_methods(8, rate=lambda platform, method:
                          0.3 if (platform, method) == ("android", "card") else 0.6)
    found = findings_of(df, extra_segment="method")
    print(show(found))
    assert len(found) == 1, show(found)
    f = found[0]
    assert (f.from_step, f.to_step, f.kind) == ("cart", "pay", "segment")
    assert f.group == (("platform", "android"), ("method", "card"))
    assert f.segment == {"column": "platform + method", "value": "android + card"}
    assert 0.2 < f.rate < 0.4 and 0.55 < f.baseline_rate < 0.65
    # compared over every tested day: the first to the last whose windows have closed
    assert f.start == day(0) and day(DAYS - 3) <= f.end < day(DAYS)
    # the same log without the pair's loss: nothing
    assert findings_of(generate_methods(8, rate=lambda p, m: 0.6),
                       extra_segment="method") == []


def test_an_outage_of_hours_is_found_to_the_hour():
    # 20,000 actors over 60 days (~10 cart -> pay attempts an hour): on day 30 every attempt
    # from 09:00 to 14:00 fails; the day as a whole is only diluted
    df = generate(9, 20000, days=60)
    start = pd.Timestamp(day(30)) + pd.Timedelta(hours=9)
    carts = df[(df.event == "cart") & (df.timestamp >= start)
               & (df.timestamp < start + pd.Timedelta(hours=5))].actor
    df = df[~((df.event == "pay") & df.actor.isin(carts))].reset_index(drop=True)
    found = findings_of(df)
    print(show(found))
    assert len(found) == 1, show(found)
    f = found[0]
    assert f.kind == "hours" and f.segment is None and f.rate < 0.15
    # to the hour, give or take one
    hour = dt.timedelta(hours=1)
    assert abs(f.start_ts - start.to_pydatetime()) <= hour
    assert abs(f.end_ts - (start + pd.Timedelta(hours=5)).to_pydatetime()) <= hour
    assert f.start == f.end == day(30) and f"{f.start_ts:%H}:00 to" in f.sentence()


def test_a_lasting_change_of_level_is_one_step_from_its_day_on():
    # 300 days; cart -> pay 0.6 until day 149, 0.45 from day 150 on, for good: one finding,
    # the days from the change point to the last tested day against the days before (not
    # a row of 60-day windows on either side, nor the earlier days told as a "rise")
    df = generate(11, 12000, days=300, rate=lambda d, p: 0.45 if d >= 150 else 0.6)
    found = findings_of(df)
    print(show(found))
    pay = [f for f in found if f.to_step == "pay"]
    assert len(pay) == 1, show(found)
    f = pay[0]
    assert f.kind == "step" and f.segment is None and f.lost > 0
    assert abs((f.start - day(150)).days) <= 3 and f.end >= day(295)
    assert 0.42 < f.rate < 0.48 and 0.57 < f.baseline_rate < 0.63
    assert f.baseline == "the days before"
    assert f"fell from {f.baseline_rate:.1%} to {f.rate:.1%} from {f.start:%d %b %Y} on" \
        in f.sentence()
    # a dip that ends is still a window, not a step
    df = generate(11, 12000, days=300, rate=lambda d, p: 0.45 if 150 <= d < 170 else 0.6)
    kinds = [(f.kind, f.start, f.end) for f in findings_of(df) if f.to_step == "pay"]
    assert len(kinds) == 1 and kinds[0][0] == "window", kinds
    assert abs((kinds[0][1] - day(150)).days) <= 2 and abs((kinds[0][2] - day(169)).days) <= 2


def test_a_step_leaves_the_longer_side_open_to_an_incident():
    # level 0.6 -> 0.5 from day 60; an outage (0.05) on days 200..204 after it is found too
    def rate(d, p):
        if 200 <= d <= 204:
            return 0.05
        return 0.5 if d >= 60 else 0.6
    found = [f for f in findings_of(generate(12, 12000, days=300, rate=rate))
             if f.to_step == "pay"]
    print(show(found))
    kinds = sorted((f.kind, f.start) for f in found)
    assert [k for k, _ in kinds] == ["step", "window"], show(found)
    (_, step_start), (_, outage_start) = kinds
    assert abs((step_start - day(60)).days) <= 3
    assert abs((outage_start - day(200)).days) <= 1


@pytest.mark.parametrize("seed", [4, 5])
def test_clean_log_has_no_finding(seed):
    assert findings_of(generate(seed)) == []


def test_the_last_days_are_never_tested():
    # conversions take days (mean 2 d) within a 7 d window; the data ends on day 120, so
    # the last entries look like failures (not yet converted) and a real drop on days
    # 115..119 cannot be told apart from them: none of those days is tested
    df = generate(6, rate=lambda d, p: 0.05 if d >= 115 else 0.6, delay_hours=48)
    found = findings_of(df, window=7 * 86400)
    assert found == []
    # the same drop earlier, on closed windows, is found
    df = generate(6, rate=lambda d, p: 0.05 if 95 <= d < 100 else 0.6, delay_hours=48)
    found = findings_of(df, window=7 * 86400)
    print(show(found))
    assert [(f.segment, f.start, f.end) for f in found if f.to_step == "pay"] == [
        (None, day(95), day(99))]


def test_zero_count_days_are_zeros_and_unknown_is_never_a_finding():
    con = duckdb.connect()
    # day 10..14: attempts that all fail, on a segment value '(unknown)' and on NULL
    con.execute("""
        create table att as
        select 'a' as from_step, 'b' as to_step, date '2026-01-01' + cast(i as integer) as day,
               (hash(i * 31 + j) % 10) < 6 as success, true as complete,
               case when j % 2 = 0 then '(unknown)' else null end as seg
        from range(0, 60) t(i), range(0, 40) u(j) where i not between 10 and 14
        union all
        select 'a', 'b', date '2026-01-01' + cast(i as integer), false, true,
               case when j % 2 = 0 then '(unknown)' else null end
        from range(10, 15) t(i), range(0, 40) u(j)""")
    found = find_changes(con, "att", segments=["seg"])
    assert [(f.segment, f.start, f.end) for f in found] == [
        (None, dt.date(2026, 1, 11), dt.date(2026, 1, 15))]
    # days without any attempt in the middle count as zeros: the series spans them
    con.execute("delete from att where day between date '2026-01-31' and date '2026-02-04'")
    again = find_changes(con, "att", segments=["seg"])
    assert [(f.start, f.end) for f in again] == [(dt.date(2026, 1, 11), dt.date(2026, 1, 15))]


def test_findings_table_and_json_shape():
    df = generate(2, rate=lambda d, p: 0.1 if 60 <= d <= 80 else 0.6)
    found = findings_of(df)
    con = duckdb.connect()
    findings_table(con, found)
    rows = con.execute("select rank, from_step, to_step, segment_column, start_day, end_day, "
                       "n, direction from findings order by rank").fetchall()
    assert rows == [(1, "cart", "pay", None, found[0].start, found[0].end, found[0].n, "drop")]
    d = found[0].to_dict()
    assert set(d) == {"from_step", "to_step", "segment", "start", "end", "rate",
                      "baseline_rate", "n", "lost", "p_adjusted", "kind"}
    assert d["segment"] is None and d["start"] == found[0].start.isoformat()
    findings_table(con, [])
    assert con.execute("select count(*) from findings").fetchone() == (0,)


def test_transition_attempts_columns():
    df = generate(7, 300)
    con = duckdb.connect()
    con.register("events", df)
    actors = funnel_actors(con, "events", STEPS, breakdown="platform")
    sql = transition_attempts(actors, STEPS, 2, breakdown_as="platform", day="entry")
    rel = con.sql(sql)
    assert rel.columns == ["from_step", "to_step", "day", "ts", "success", "complete",
                           "platform"]
    [(n, ok)] = con.sql(
        f"select count(*), count(*) filter (where success) from ({sql})").fetchall()
    counts = {r[0]: r[1] for r in con.sql(
        f"select furthest_step, count(*) from ({actors.sql_query()}) group by 1").fetchall()}
    assert n == counts.get(2, 0) + counts.get(3, 0) and ok == counts.get(3, 0)
    with pytest.raises(ValueError):
        transition_attempts(actors, STEPS, 3)


def windows(findings: list[Finding]) -> list[tuple]:
    """What a finding says, without the adjusted p (which depends on how many series were
    tested: an extra segment column adds tests)."""
    return [(f.from_step, f.to_step, f.segment, f.start, f.end, f.n, f.successes, f.baseline_n,
             f.p_value, f.p_scan) for f in findings]


PLANTED = generate(1, rate=lambda d, p: 0.2 if p == "android" and 40 <= d <= 69 else 0.6)
PLANTED_FINDINGS = windows(findings_of(PLANTED))


# derandomized: the same examples on every run (an unrelated column is, by chance, worse than
# the rest in about alpha of random draws, so random examples would make the test flaky)
@settings(max_examples=3, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_shuffling_rows_or_adding_an_unrelated_segment_changes_nothing(seed):
    rng = np.random.default_rng(seed)
    shuffled = PLANTED.sample(frac=1.0, random_state=int(rng.integers(0, 2**31))).reset_index(
        drop=True)
    assert windows(findings_of(shuffled)) == PLANTED_FINDINGS
    colours = {a: ["red", "green", "blue"][int(rng.integers(0, 3))]
               for a in PLANTED.actor.unique()}
    coloured = PLANTED.assign(colour=PLANTED.actor.map(colours))
    found = findings_of(coloured, extra_segment="colour")
    assert windows(found) == PLANTED_FINDINGS  # and no finding on the colour
