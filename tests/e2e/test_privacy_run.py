"""The sample run twice, plain and with `privacy: {pseudonymise: true}` (issue 12, item 12): every
derived table equals the plain run's once its ids are mapped to their pseudonyms (computed
here with Python's hmac), no raw id is left in a derived table or an output file, and the salt
is nowhere: not in the warehouse file, the outputs, the Dagster home or what the run printed."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from pathlib import Path

import duckdb
import pytest

from tests.e2e.conftest import journeys, sample_config
from transforms.privacy import FREE_TEXT_REMOVED

pytestmark = pytest.mark.slow

SALT = "e2e-salt-9f8e7d6c5b4a39281706"
BLOCK = ("\nprivacy:\n  pseudonymise: true\n  salt_env: JOURNEYS_E2E_SALT\n"
         "  identifiers: [booking_id, payment_id]\n")
FREE_TEXT = ("\nprivacy:\n  free_text: drop\n"
             "  free_text_columns: [complaint, properties.search_term]\n")
# tables loaded as exported (the copy the rest is rebuilt from): not pseudonymised
AS_EXPORTED = re.compile(r"^(raw_.*|quarantine|rejected_files)$")
# columns holding ids, and how a plain value maps to its pseudonym
ID_COLUMNS = {"customer_id", "anonymous_id", "booking_id", "payment_id", "order_id", "case",
              "event_id", "entry_event_id"}
# stamped with the time of the load: differ between any two runs
RUN_TIME = {"loaded_at", "last_loaded_at", "quarantined_at"}
# an order over ids (by customer, then time): compared as ranks within the customer
ORDINALS = {("mining_log", "event_index")}


def ps(value: str) -> str:
    return "ps_" + hmac.new(SALT.encode(), value.encode(), hashlib.sha256).hexdigest()[:20]


def mapped(column: str, value: object) -> object:
    if not isinstance(value, str):
        return value
    if column in ("event_id", "entry_event_id"):
        source, _, rest = value.partition(":")
        return f"{source}:{ps(rest)}"
    if column in ("customer_id", "case") and value.startswith("anon:"):
        return "anon:" + ps(value[len("anon:"):])
    return ps(value)


def norm(value: object) -> object:
    if isinstance(value, float):
        return None if math.isnan(value) else float(f"{value:.9g}")  # sums in another order
    if isinstance(value, list | tuple):
        return tuple(norm(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, norm(v)) for k, v in value.items()))
    return value


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = {}
    for name, block in (("plain", ""), ("pseudonymised", BLOCK), ("free_text", FREE_TEXT)):
        root = tmp_path_factory.mktemp(name)
        config = sample_config(root)
        config.write_text(config.read_text() + block)
        proc = journeys("run", "--config", str(config),
                        env={"DAGSTER_HOME": str(root / "dagster_home"),
                             "JOURNEYS_E2E_SALT": SALT})
        assert proc.returncode == 0, proc.stderr
        out[name] = (root, proc)
    return out


def _tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [t for (t,) in con.execute("select table_name from information_schema.tables "
                                      "order by 1").fetchall()]


def _rows(con: duckdb.DuckDBPyConnection, table: str, pseudonymise: bool) -> list[str]:
    cols = [c for (c,) in con.execute(
        "select column_name from information_schema.columns where table_name = ? "
        "order by ordinal_position", [table]).fetchall() if c not in RUN_TIME]
    rows = con.execute(f'select {", ".join(chr(34) + c + chr(34) for c in cols)} '
                       f'from "{table}"').fetchall()
    if (table, "event_index") in ORDINALS:  # rank of the visit within its case
        i, case = cols.index("event_index"), cols.index("case")
        ranked = sorted(rows, key=lambda r: r[i])
        seen: dict = {}
        rows = []
        for r in ranked:
            seen[r[case]] = seen.get(r[case], 0) + 1
            rows.append((*r[:i], seen[r[case]], *r[i + 1:]))
    out = []
    for r in rows:
        values = []
        for c, v in zip(cols, r, strict=True):
            if pseudonymise and c in ID_COLUMNS:
                v = mapped(c, v)
            elif c == "properties" and isinstance(v, str):  # JSON: keys in any order
                v = json.loads(v)
                if pseudonymise and isinstance(v, dict) and isinstance(v.get("booking_id"), str):
                    v["booking_id"] = ps(v["booking_id"])
            values.append(norm(v))
        out.append(repr(tuple(values)))
    return sorted(out)


def test_every_derived_table_equals_the_plain_run_with_ids_mapped(runs: dict) -> None:
    plain = duckdb.connect(str(runs["plain"][0] / "warehouse" / "journeys.duckdb"), read_only=True)
    pseudo = duckdb.connect(str(runs["pseudonymised"][0] / "warehouse" / "journeys.duckdb"),
                            read_only=True)
    tables = _tables(plain)
    assert tables == _tables(pseudo)
    derived = [t for t in tables if not AS_EXPORTED.match(t)]
    assert {"events", "identity_map", "purchases", "journeys", "repeat_purchase",
            "funnel_steps", "mining_log", "booking_outcomes"} <= set(derived)
    different = [t for t in derived
                 if _rows(plain, t, True) != _rows(pseudo, t, False)]
    assert different == []


ID_LIKE = re.compile(r"(?:bk|cus|pay)_[0-9a-f]{10}|[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}")


def _raw_ids_found(root: Path) -> dict[str, int]:
    """Per derived table and output file, how many of the raw tables' ids (customer, booking,
    payment, anonymous and message ids) it holds."""
    con = duckdb.connect(str(root / "warehouse" / "journeys.duckdb"), read_only=True)
    raw_ids = {v for (v,) in con.execute("""
        select customer_id from raw_bookings union select booking_id from raw_bookings
        union select payment_id from raw_payments union select booking_id from raw_payments
        union select anonymous_id from raw_clickstream union select user_id from raw_clickstream
        union select event_id from raw_clickstream""").fetchall() if v}
    assert len(raw_ids) > 5_000
    found = {}
    for table in _tables(con):
        if not AS_EXPORTED.match(table):
            text = " ".join(str(v) for r in con.execute(f'select * from "{table}"').fetchall()
                            for v in r)
            found[table] = len(set(ID_LIKE.findall(text)) & raw_ids)
    files = [p for p in (root / "output").rglob("*") if p.is_file() and p.suffix != ".js"]
    assert any(p.name == "index.html" for p in files)
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        found[str(path.relative_to(root))] = len(set(ID_LIKE.findall(text)) & raw_ids)
    return found


def test_no_raw_id_in_derived_tables_or_outputs(runs: dict) -> None:
    found = _raw_ids_found(runs["pseudonymised"][0])
    assert {k: n for k, n in found.items() if n} == {}
    # the same search finds them all over the plain run
    plain = _raw_ids_found(runs["plain"][0])
    assert plain["events"] > 5_000 and plain["identity_map"] > 500 and plain["purchases"] > 500


def test_the_salt_is_stored_nowhere(runs: dict) -> None:
    root, proc = runs["pseudonymised"]
    assert "journeys run: privacy: ids pseudonymised" in proc.stdout
    assert SALT not in proc.stdout + proc.stderr
    for path in root.rglob("*"):
        if path.is_file():
            assert SALT.encode() not in path.read_bytes(), path


def _complaint_heads(root: Path) -> set[str]:
    """The exported complaints' leading words (letters, digits, spaces: no markup to escape)."""
    con = duckdb.connect(str(root / "warehouse" / "journeys.duckdb"), read_only=True)
    texts = {t for (t,) in con.execute("select distinct complaint from raw_bookings "
                                       "where complaint is not null").fetchall()}
    return {h for t in texts if len(h := re.match(r"[A-Za-z0-9 ]*", t)[0].strip()) >= 8}


def _text_of(root: Path) -> dict[str, str]:
    con = duckdb.connect(str(root / "warehouse" / "journeys.duckdb"), read_only=True)
    out = {t: " ".join(str(v) for r in con.execute(f'select * from "{t}"').fetchall()
                       for v in r)
           for t in _tables(con) if not AS_EXPORTED.match(t)}
    for path in (root / "output").rglob("*.html"):
        out[str(path.relative_to(root))] = path.read_text(encoding="utf-8")
    return out


def test_dropped_free_text_reaches_no_table_or_page_and_still_counts(runs: dict) -> None:
    plain_root, free_root = runs["plain"][0], runs["free_text"][0]
    heads = _complaint_heads(free_root)
    assert len(heads) >= 5
    plain = _text_of(plain_root)
    # the plain run shows complaints in its tables and on the journey map page
    assert any(h in plain["events"] for h in heads)
    assert any(h in plain["output/dashboard/journey_map.html"] for h in heads)
    dropped = _text_of(free_root)
    assert {k: [h for h in heads if h in v] for k, v in dropped.items()
            if any(h in v for h in heads)} == {}
    # a dropped complaint is still a complaint: the counts are the plain run's
    query = ("select count(complaint), count(*) filter (where complaint = ?) from events")
    p = duckdb.connect(str(plain_root / "warehouse" / "journeys.duckdb"), read_only=True)
    f = duckdb.connect(str(free_root / "warehouse" / "journeys.duckdb"), read_only=True)
    n_plain = p.execute(query, [FREE_TEXT_REMOVED]).fetchone()
    n_free = f.execute(query, [FREE_TEXT_REMOVED]).fetchone()
    assert n_plain[0] > 50 and n_free == (n_plain[0], n_plain[0])
    metric = ("select segment, segment_value, value from stage_metric_segments "
              "where metric = 'complaints' order by all")
    assert f.execute(metric).fetchall() == p.execute(metric).fetchall()
    assert f.execute(metric).fetchall() != []
