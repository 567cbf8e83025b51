"""The dashboard of a real `journeys run` on the sample shows the planted stories where a reader
would look (read from the pages' text, as a person reads it, not from the tables)."""

from __future__ import annotations

import html
import re

import pytest

from tests.e2e.conftest import SampleRun

pytestmark = pytest.mark.slow


def page_text(run: SampleRun, page: str) -> str:
    raw = (run.output_dir / "dashboard" / page).read_text()
    raw = re.sub(r"<script.*?</script>", " ", raw, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", raw)))


@pytest.fixture(scope="module")
def run(sample_run: SampleRun) -> SampleRun:
    assert sample_run.returncode == 0, sample_run.stderr[-2000:]
    assert sample_run.stdout.rstrip().splitlines()[-1] == (
        f"dashboard:  {sample_run.output_dir / 'dashboard' / 'index.html'}")
    return sample_run


def test_android_card_payment_failures_are_named(run: SampleRun) -> None:
    text = page_text(run, "bottlenecks.html")
    m = re.search(r"Highest failure rate: (\w+) with (\w+) — ([\d.]+)% of ([\d,]+) attempts", text)
    assert m and m.group(1, 2) == ("android", "card")
    assert 18 <= float(m.group(3)) <= 40  # planted 25%; 109 attempts on the sample


def test_the_outage_hours_are_a_finding(run: SampleRun) -> None:
    # the planted outage (2026-10-12 13:00-19:00 UTC), found by the hour: the day's first
    # failed attempt falls in the hour before
    text = page_text(run, "bottlenecks.html")
    day = run.ground_truth["parameters"]["outage"]["date"]
    assert day == "2026-10-12"
    assert re.search(r"payment attempt → payment succeeded: conversion fell to [\d.]+% on 12 Oct "
                     r"2026 from 1[23]:00 to 19:00", text), text[:2000]


def test_paid_social_loses_more_at_decision_significantly(run: SampleRun) -> None:
    text = page_text(run, "bottlenecks.html")
    m = re.search(r"channel paid_social Consideration → Decision [\d,]+ [\d.]+% [\d.]+% "
                  r"[\d.]+% \+([\d.]+) pp (-?[\d.]+) (<0\.001|[\d.]+)", text)
    assert m, "paid_social's Consideration → Decision row is missing from the segment table"
    assert float(m.group(1)) > 10 and float(m.group(2)) > 3  # more dropout, z > 3 (same sign)


def test_low_ratings_rarely_come_back(run: SampleRun) -> None:
    text = page_text(run, "repeat.html")
    m = re.search(r"([\d.]+)% of customers who rated their first visit low bought again, "
                  r"against ([\d.]+)% of those who rated it high", text)
    assert m and float(m.group(1)) * 3 < float(m.group(2))


def test_every_page_is_there_and_small(run: SampleRun) -> None:
    site = run.output_dir / "dashboard"
    pages = sorted(p.name for p in site.glob("*.html"))
    assert pages == ["bottlenecks.html", "index.html", "journey_map.html", "paths.html",
                     "quality.html", "repeat.html"]
    assert sum(p.stat().st_size for p in site.glob("*.html")) < 2_000_000
