"""The input corpus (issue 12): one export file per kind of input, run through `journeys run`.

tests/corpus/raw holds one file per kind (valid, malformed, mis-encoded, duplicated, implausible,
hostile, ...); tests/corpus/manifest.yaml says, worked out by hand from each file's content, how
many physical records it holds and where each must end: loaded, quarantined with a reason, or in
a rejected file with its reason. The kinds that cannot be committed (a directory and a broken
link named like an export) are made here. One run loads them all side by side, so the test also
shows that no bad file takes down another file or source, and that the pages escape hostile text.
"""

from __future__ import annotations

import shutil

import duckdb
import pytest
import yaml

from tests.conftest import REPO, SAMPLE_CONFIG
from tests.e2e.conftest import journeys

pytestmark = pytest.mark.slow

CORPUS = REPO / "tests" / "corpus"
NOW = "2026-10-10T00:00:00Z"

# made at run time (git keeps neither an empty directory nor, portably, a dangling link)
MADE_HERE = {
    "clickstream": {
        "2026-10-02-d01-directory.jsonl": {"records": 0, "file_rejected": True,
                                           "reason": "directory"},
    },
    "bookings": {
        "2026-10-02-d02-broken-link.csv": {"records": 0, "file_rejected": True,
                                           "reason": "link"},
    },
}


def _expected() -> dict[str, dict[str, dict]]:
    manifest = yaml.safe_load((CORPUS / "manifest.yaml").read_text(encoding="utf-8"))
    for source, files in MADE_HERE.items():
        manifest[source].update(files)
    return manifest


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("corpus")
    shutil.copytree(CORPUS / "raw", root / "raw")
    (root / "raw" / "clickstream" / "2026-10-02-d01-directory.jsonl").mkdir()
    (root / "raw" / "clickstream" / "2026-10-02-d01-directory.jsonl" / "inner.txt").write_text(
        "not an export\n")
    (root / "raw" / "bookings" / "2026-10-02-d02-broken-link.csv").symlink_to(
        root / "raw" / "bookings" / "no-such-target.csv")
    text = SAMPLE_CONFIG.read_text()
    text = text.replace("warehouse: ../../warehouse/journeys.duckdb",
                        "warehouse: warehouse/journeys.duckdb")
    text = text.replace("output_dir: ../../output", "output_dir: output")
    text = text.replace("journey_map: journey_map.yaml",
                        f"journey_map: {SAMPLE_CONFIG.parent / 'journey_map.yaml'}")
    config = root / "sources.yaml"
    config.write_text(text)
    proc = journeys("run", "--config", str(config),
                    env={"JOURNEYS_NOW": NOW, "DAGSTER_HOME": str(root / "dagster_home")})
    return root, proc


def _counts(con: duckdb.DuckDBPyConnection, source: str, path: str) -> dict:
    loaded = con.execute(f"select count(*) from raw_{source} where source_file = ?",
                         [path]).fetchone()[0]
    q = dict(con.execute("select kind, count(*) from quarantine where source = ? and "
                         "source_file = ? group by kind", [source, path]).fetchall())
    rf = con.execute("select rows_read, reason from rejected_files where source = ? and "
                     "source_file = ?", [source, path]).fetchall()
    reasons = [r[0] for r in con.execute("select reason from quarantine where source = ? and "
                                         "source_file = ?", [source, path]).fetchall()]
    return {"loaded": loaded, "rejected": q.get("rejected", 0),
            "duplicate": q.get("duplicate", 0), "file_rejected": bool(rf),
            "file_rows": sum(r[0] for r in rf), "reasons": reasons + [r[1] for r in rf]}


def test_the_run_succeeds_on_the_whole_corpus(corpus_run) -> None:
    root, proc = corpus_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (root / "output" / "dashboard" / "index.html").exists()


def test_every_record_of_every_file_is_loaded_quarantined_or_in_a_rejected_file(
        corpus_run) -> None:
    root, proc = corpus_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    con = duckdb.connect(str(root / "warehouse" / "journeys.duckdb"), read_only=True)
    wrong = []
    for source, files in _expected().items():
        for name, want in files.items():
            path = str(root / "raw" / source / name)
            got = _counts(con, source, path)
            expect = {"loaded": want.get("loaded", 0), "rejected": want.get("rejected", 0),
                      "duplicate": want.get("duplicate", 0),
                      "file_rejected": bool(want.get("file_rejected", False))}
            seen = {k: got[k] for k in expect}
            accounted = got["loaded"] + got["rejected"] + got["duplicate"] + got["file_rows"]
            if seen != expect or accounted != want["records"]:
                wrong.append(f"{source}/{name}: expected {expect} of {want['records']} records,"
                             f" got {seen} accounting for {accounted} ({got['reasons'][:3]})")
            elif any(want.get("reason", "") not in r for r in got["reasons"]):
                wrong.append(f"{source}/{name}: reasons {got['reasons']} lack "
                             f"{want.get('reason')!r}")
            elif any(not r for r in got["reasons"]):
                wrong.append(f"{source}/{name}: an empty reason")
    assert not wrong, "\n".join(wrong)


def test_no_row_comes_from_outside_the_corpus_and_the_totals_reconcile(corpus_run) -> None:
    root, proc = corpus_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    con = duckdb.connect(str(root / "warehouse" / "journeys.duckdb"), read_only=True)
    for source, files in _expected().items():
        want = sum(f.get("loaded", 0) for f in files.values())
        assert con.execute(f"select count(*) from raw_{source}").fetchone()[0] == want, source
        want_q = sum(f.get("rejected", 0) + f.get("duplicate", 0) for f in files.values())
        assert con.execute("select count(*) from quarantine where source = ?",
                           [source]).fetchone()[0] == want_q, source
    # the reconciliation table's own sums agree with the rows the tables hold
    read, loaded, quarantined, dups = con.execute(
        "select sum(rows_read), sum(rows_loaded), sum(rows_quarantined), sum(rows_duplicate) "
        "from ingest_reconciliation").fetchone()
    assert read == loaded + quarantined + dups
    assert loaded == sum(con.execute(f"select count(*) from raw_{s}").fetchone()[0]
                         for s in _expected())


def test_the_clock_skewed_event_takes_its_received_time(corpus_run) -> None:
    root, proc = corpus_run
    con = duckdb.connect(str(root / "warehouse" / "journeys.duckdb"), read_only=True)
    assert con.execute("select event_ts, clock_skew_corrected from raw_clickstream "
                       "where event_id = 'c26-1'").fetchall() == [
        (__import__("datetime").datetime(2026, 10, 2, 10, 0), True)]


def test_hostile_text_reaches_the_pages_only_escaped(corpus_run) -> None:
    root, proc = corpus_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    pages = list((root / "output" / "dashboard").glob("*.html"))
    assert pages
    for page in pages:
        html = page.read_text(encoding="utf-8")
        for payload in ("<script>alert(1)", "<img src=x onerror", "<svg onload",
                        '<a href="https://evil.example"'):
            assert payload not in html, f"{page.name} holds {payload!r} unescaped"
    con = duckdb.connect(str(root / "warehouse" / "journeys.duckdb"), read_only=True)
    # the SQL payloads are data: the tables they name are all there
    tables = {r[0] for r in con.execute(
        "select table_name from information_schema.tables").fetchall()}
    assert {"raw_clickstream", "events"} <= tables
    assert con.execute("select count(*) from raw_clickstream where anonymous_id = "
                       "'''; drop table events; --'").fetchone()[0] == 1
