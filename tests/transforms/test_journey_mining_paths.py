"""The mining tables read from one sort: stage event variants with several visits of a stage,
and the path tables against the mining log itself. Expected values worked out in comments."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.transforms.test_journey_mining import _with_returns, con, jmap  # noqa: F401
from transforms.journey_mining import build_mining_tables


def test_stage_event_variants_count_every_visit(con, jmap, tmp_path: Path) -> None:  # noqa: F811
    _with_returns(con)
    build_mining_tables(con, jmap, tmp_path / "models")
    got = {(s, p): (n, share) for s, p, n, share in con.execute(
        "select stage, path, visits, share from stage_event_variants").fetchall()}
    # Discovery visits: c1 and c4 app_installed; c2, c3, c5 app_opened; c6 opens the app at
    # 0, 30 and 90 minutes with other stages in between: three visits -> 6 of 8
    assert got[("Discovery", "app_opened")] == (6, pytest.approx(6 / 8))
    assert got[("Discovery", "app_installed")] == (2, pytest.approx(2 / 8))
    # Consideration: c1 one visit of two events; c3 one; c4 two (before and after its
    # Repeat); c6 two (a Discovery between them)
    assert got[("Consideration", "service_viewed")] == (5, pytest.approx(5 / 6))
    assert got[("Consideration", "service_viewed → salon_viewed")] == (1, pytest.approx(1 / 6))
    ranks = con.execute("select stage, rank, path from stage_event_variants "
                        "where stage = 'Discovery' order by rank").fetchall()
    assert ranks == [("Discovery", 1, "app_opened"), ("Discovery", 2, "app_installed")]


def test_path_tables_agree_with_the_mining_log(con, jmap, tmp_path: Path) -> None:  # noqa: F811
    _with_returns(con)
    build_mining_tables(con, jmap, tmp_path / "models")
    # every journey's variant is its mining-log path; ends and drop-off are its last visit
    mismatched = con.execute("""
        with p as (select "case", list(activity order by event_index) as stages
                   from mining_log group by 1)
        select count(*) from p join journey_variants jv on jv.customer_id = p."case"
        join variants v using (variant_id) where v.stages <> p.stages
    """).fetchone()[0]
    assert mismatched == 0
    assert con.execute("select count(*) from journey_variants").fetchone()[0] == 6
    ends = dict(con.execute("select activity, count from dfg_endpoints where kind = 'end'"
                            ).fetchall())
    # c6: Discovery, Consideration, Decision -> ends at Decision, like c2
    assert ends == {"Purchase": 1, "Decision": 2, "Consideration": 1, "Repeat": 1,
                    "Discovery": 1}
    # not converting: c2 and c6 end at Decision, c5 at Discovery
    assert sorted(con.execute("select stage, journeys from dropoff_points").fetchall()
                  ) == [("Decision", 2), ("Discovery", 1)]
