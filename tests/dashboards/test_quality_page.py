"""The Quality page's day / week / month switch on the tiny warehouse (tests/dashboards/
conftest.py) with `ingest_reconciliation_periods` built on it: one figure per grain, the grain
chosen from the span shown first, partial periods drawn apart. By hand: the partition days run
Sun 3 Mar – Wed 1 May 2024 (60 days: shown by day first); the first ISO week (Mon 26 Feb –
Sun 3 Mar) holds 1 day of data, the last (Mon 29 Apr – Sun 5 May) 3; March holds 29 days of
data (from the 3rd), April all 30, May 1.

Below, a small project of its own with files rejected as a whole and rows waiting for a day not
run: the partial-data banner (here and on the Overview), the "Files not read" table, and waiting
rows kept out of the rejection reasons."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb
import pytest

from dashboards import overview, quality
from dashboards.context import Context
from dashboards.data import Warehouse
from tests.conftest import TinyProject, click
from tests.dashboards.conftest import EVIL, NOW, tiny_warehouse
from transforms import ingest
from transforms.dashboard_tables import build_dashboard_tables, build_source_summary
from transforms.definitions import create_macros
from transforms.events import build_events
from transforms.ingest_periods import build_ingest_reconciliation_periods
from transforms.sources import load_config


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    c = tiny_warehouse(tmp_path_factory.mktemp("quality"), mining=False)
    build_ingest_reconciliation_periods(c)
    yield c
    c.close()


@pytest.fixture(scope="module")
def rendered(con: duckdb.DuckDBPyConnection) -> tuple[str, int]:
    page = quality.render(Context.read(Warehouse(con), period_days=None, built_at=NOW))
    return "".join(page.body), page.figures


def _block(page: str, grain: str) -> str:
    """The block of one grain: from its div to the next grain's (or the picker's script)."""
    start = page.index(f'<div class="grain" data-grain="{grain}">')
    ends = [i for i in (page.find('<div class="grain"', start + 1),
                        page.find("getElementById('grain')", start)) if i > 0]
    return page[start:min(ends)].replace("\\u2013", "–")  # figure JSON escapes the dash


def test_a_figure_per_grain_and_the_span_chooses_the_first(rendered) -> None:
    page, figures = rendered
    assert figures == 4  # day, week, month and the quarantine reasons
    options = re.findall(r'<option value="(\w+)"( selected)?>([^<]*)</option>', page)
    assert options == [("day", " selected", "By day"),
                       ("week", "", "By week (Monday to Sunday)"), ("month", "", "By month")]
    assert "getElementById('grain')" in page
    # the shown grain keeps the page's figure id
    assert 'id="fig-quality-loads"' in _block(page, "day")
    assert 'id="fig-quality-loads-week"' in _block(page, "week")


def test_partial_weeks_and_months_are_drawn_apart(rendered) -> None:
    page, _ = rendered
    week = _block(page, "week")
    assert "Week 26 Feb 2024 – 03 Mar 2024 (partial week: data on 1 of its 7 days)" in week
    assert "Week 29 Apr 2024 – 05 May 2024 (partial week: data on 3 of its 7 days)" in week
    assert "Week 04 Mar 2024 – 10 Mar 2024 (partial" not in week
    assert '"name":"loaded, partial week"' in week and '"shape":"\\u002f"' in week  # "/"
    month = _block(page, "month")
    assert "Mar 2024 (partial month: data on 29 of its 31 days)" in month
    assert "May 2024 (partial month: data on 1 of its 31 days)" in month
    assert "Apr 2024 (partial" not in month
    # a day in the data is never partial
    assert "partial" not in _block(page, "day")


def test_weekly_sums_equal_the_daily_rows(con) -> None:
    # an independent sum over ingest_reconciliation: Mon 4 – Sun 10 Mar, every source
    expected = con.execute("""
        select source, sum(rows_read), sum(rows_loaded), sum(rows_quarantined)
        from ingest_reconciliation
        where partition_date between date '2024-03-04' and date '2024-03-10'
        group by all order by 1""").fetchall()
    got = con.execute("""
        select source, rows_read, rows_loaded, rows_quarantined
        from ingest_reconciliation_periods
        where grain = 'week' and period_start = date '2024-03-04' order by 1""").fetchall()
    assert got == expected and len(got) == 3


# --------------------------------------------------------------------------- partial data
# A small project of its own (issue 12, item 7), run for Fri 2 Oct 2026 only:
# - clickstream: file 1 Oct holds e1 (1 Oct); file 2 Oct holds e2 (1 Oct 23:00, a day late), e3
#   (2 Oct) and a broken line; "2026-10-03.jsonl" is a directory. Read: e3 loaded, the broken
#   line rejected; e1 and e2 wait for 1 Oct (not run): 2 rows, not rejected. The directory is
#   a rejected file with 0 rows.
# - bookings: file 2 Oct holds b1 (loaded); "2026-10-03.csv" is a broken link (0 rows); a file
#   without a date, named with markup, holds 3 rows whose timestamps are EVIL: no valid record,
#   so it is rejected as a whole with its 3 rows.
# - payments: no file.
# By hand: 3 files rejected (directory, link, undated file) holding 0 + 0 + 3 = 3 records.

MARKUP_FILE = "<img src=x onerror=alert(1)>.csv"
BANNER = "Built on partial data: 3 files rejected (3 records) — see Files not read below"


def _click(mid: str, ts: str) -> dict:
    return click(mid, "a1", "app_opened", ts, received=ts)


def partial_warehouse(root: Path) -> duckdb.DuckDBPyConnection:
    tiny = TinyProject(root)
    tiny.clicks("2026-10-01", _click("e1", "2026-10-01T10:00:00Z"))
    tiny.clicks("2026-10-02", _click("e2", "2026-10-01T23:00:00Z"),
                _click("e3", "2026-10-02T08:00:00Z"), "{broken")
    (root / "raw" / "clickstream" / "2026-10-03.jsonl").mkdir()
    tiny.bookings("2026-10-02", "b1,c1,s1,Berlin,hair,2026-10-05T10:00:00,10,EUR,created,,,,"
                                "2026-10-02T10:00:00")
    (root / "raw" / "bookings" / "2026-10-03.csv").symlink_to(root / "gone.csv")
    undated = tiny.bookings("undated", *[f"b{i},c1,s1,Berlin,hair,{EVIL},10,EUR,created,,,,"
                                         f"{EVIL}" for i in (7, 8, 9)])
    undated.rename(root / "raw" / "bookings" / MARKUP_FILE)
    cfg = load_config(tiny.config)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    create_macros(con)
    day = dt.date(2026, 10, 2)
    for source in cfg.sources.values():
        ingest.load_range(con, source, day, day)
    build_events(con, cfg)
    assert set(build_dashboard_tables(con, {})) == {"source_summary"}
    return con


@pytest.fixture()
def partial(tmp_path: Path) -> tuple[duckdb.DuckDBPyConnection, Path]:
    c = partial_warehouse(tmp_path)
    yield c, tmp_path
    c.close()


def _render(con: duckdb.DuckDBPyConnection, module=quality) -> str:
    return "".join(module.render(Context.read(Warehouse(con), period_days=None,
                                              built_at=NOW)).body)


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def _section(page: str, title: str) -> str:
    head = page.index(f"<h2>{title}</h2>")
    return page[page.rindex("<section", 0, head):page.index("</section>", head)]


def _rows(block: str) -> list[list[str]]:
    body = block[block.index("<tbody>"):block.index("</tbody>")]
    return [re.findall(r"<td[^>]*>(.*?)</td>", tr) for tr in re.findall(r"<tr>(.*?)</tr>", body)]


def test_source_summary_counts_rejected_files_and_not_waiting_rows(partial) -> None:
    con, _ = partial
    got = con.execute("select source, files_rejected, rows_in_rejected_files, rows_quarantined "
                      "from source_summary order by source").fetchall()
    # clickstream: the directory (0 rows), 1 rejected row (the broken line; e1 and e2 wait,
    # not rejected); bookings: the link (0) and the undated file (3); payments: nothing
    assert got == [("bookings", 2, 3, 0), ("clickstream", 1, 0, 1), ("payments", 0, 0, 0)]


def test_source_summary_without_rejected_files_table_has_zeros(partial) -> None:
    con, _ = partial
    con.execute("drop table rejected_files")
    build_source_summary(con)
    assert con.execute("select sum(files_rejected), sum(rows_in_rejected_files) "
                       "from source_summary").fetchone() == (0, 0)


def test_the_banner_says_the_tables_are_built_on_partial_data(partial) -> None:
    con, _ = partial
    page = _render(con)
    # first on the page, before any section, with a link to the list below
    assert page.startswith('<div class="note partial-data" role="alert">')
    banner = page[:page.index("</div>") + len("</div>")]
    assert _text(banner) == BANNER
    assert '<a href="#files-not-read">see Files not read below</a>' in banner
    assert '<section id="files-not-read"><h2>Files not read</h2>' in page


def test_the_files_not_read_table(partial) -> None:
    con, root = partial
    page = _render(con)
    rows = _rows(_section(page, "Files not read"))
    books, clicks = root / "raw" / "bookings", root / "raw" / "clickstream"
    # by source, then path ("2" sorts before "<")
    assert [r[:3] for r in rows] == [
        ["bookings", f'<span title="{books}/2026-10-03.csv">2026-10-03.csv</span>', "0"],
        ["bookings", f'<span title="{books}/&lt;img src=x onerror=alert(1)&gt;.csv">'
                     "&lt;img src=x onerror=alert(1)&gt;.csv</span>", "3"],
        ["clickstream", f'<span title="{clicks}/2026-10-03.jsonl">2026-10-03.jsonl</span>', "0"],
    ]
    assert rows[0][3] == f"a broken link to {root}/gone.csv"
    assert rows[1][3].startswith("no valid record; first problem: ")
    assert rows[1][3].endswith("&lt;script&gt;alert(1)&lt;/script&gt;")
    assert rows[2][3] == "a directory, not a file"
    assert all(re.fullmatch(r"\d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d", r[4]) for r in rows)
    # every data text escaped: the markup of the file name and the reason never is markup
    assert EVIL not in page and "<img" not in page


def test_waiting_rows_are_not_rejection_reasons(partial) -> None:
    con, _ = partial
    page = _render(con)
    reasons = _section(page, "Why were rows rejected?")
    assert _rows(reasons) == [["clickstream", "rejected", "malformed JSON line", "1"]]
    assert "belongs to day" not in reasons and "outside_range" not in reasons
    waiting = _section(page, "Rows waiting for a day not yet loaded")
    # e1 and e2 (1 Oct), read from the files of 1 and 2 Oct when only 2 Oct was run
    assert _rows(waiting) == [["clickstream", "01 Oct 2026", "2",
                               "run that day to load it (journeys run --start 2026-10-01 "
                               "--end 2026-10-01)"]]


def test_the_overview_shows_the_banner_linking_to_the_quality_page(partial) -> None:
    con, _ = partial
    page = _render(con, overview)
    assert page.startswith('<div class="note partial-data" role="alert">')
    banner = page[:page.index("</div>") + len("</div>")]
    assert _text(banner) == ("Built on partial data: 3 files rejected (3 records) — see Files "
                             "not read on the Data quality page")
    assert '<a href="quality.html#files-not-read">' in banner


def test_one_file_is_said_in_the_singular_and_none_gives_no_banner(partial) -> None:
    con, _ = partial
    con.execute("delete from rejected_files where rows_read = 0")
    build_source_summary(con)
    assert _text(_render(con)).startswith(
        "Built on partial data: 1 file rejected (3 records) — see Files not read below")
    con.execute("delete from rejected_files")
    build_source_summary(con)
    page = _render(con)
    assert "Built on partial data" not in page and "partial-data" not in page
    assert "Every file the sources&#x27; paths match was read." in _section(page, "Files not read")


def test_no_banner_on_the_tiny_warehouse(rendered) -> None:
    page, _ = rendered
    assert "Built on partial data" not in page
    # its one rejected row (the EVIL event name) is a reason; nothing waits
    assert "No row is waiting" in _section(page, "Rows waiting for a day not yet loaded")
