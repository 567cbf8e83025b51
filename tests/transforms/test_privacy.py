"""Pseudonymised ids and withheld free text (issue 12, item 12): the SQL keyed hash equals
Python's `hmac`, every config mistake is one line naming file, key and fix, and `events` built
with a privacy block holds pseudonyms only, with the same stitching, lookups and counts."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from pathlib import Path

import duckdb
import pytest

from tests.conftest import TinyProject, click
from transforms import ingest
from transforms.errors import ConfigError
from transforms.events import build_events
from transforms.privacy import (
    FREE_TEXT_REMOVED,
    hmac_pads,
    hmac_sql,
    parse_privacy,
)
from transforms.project import load_project

D1 = dt.date(2026, 10, 1)
SALT = "s3cret-salt-for-tests-0123456789"


def python_pseudonym(salt: str, value: str) -> str:
    """The pseudonym computed independently: `ps_` + the first 20 hex digits of
    HMAC-SHA256(salt, value) from Python's hmac module."""
    return "ps_" + hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()[:20]


@pytest.mark.parametrize("salt", [b"0123456789abcdef", b"k" * 64, b"long-" * 40,
                                  "Schlüssel-ß-0123456789".encode()])
def test_sql_hash_equals_python_hmac(salt: bytes) -> None:
    values = ["cus_79e1d4b748", "", "anon-1", "bk_bf9f4b4c1f", "Grüße 🙂", "x" * 500]
    inner, outer = hmac_pads(salt)
    con = duckdb.connect()
    con.execute("create table ids (v varchar)")
    con.executemany("insert into ids values (?)", [[v] for v in values] + [[None]])
    got = con.execute(f"select v, {hmac_sql('v', '$i', '$o')} from ids order by v nulls last",
                      {"i": inner, "o": outer}).fetchall()
    expected = sorted((v, "ps_" + hmac.new(salt, v.encode(), hashlib.sha256).hexdigest()[:20])
                      for v in values)
    assert got == [*expected, (None, None)]


# --- config mistakes: one line each, naming the file, the key and the fix --------------------


def _error(raw: object, path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_privacy(raw, path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: key ")
    assert "Fix: " in message
    return info.value


def test_missing_salt_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_SALT_VAR", raising=False)
    err = _error({"pseudonymise": True, "salt_env": "NO_SUCH_SALT_VAR"}, tmp_path / "s.yaml")
    assert err.key == "privacy.salt_env" and "NO_SUCH_SALT_VAR is not set" in err.problem
    assert "export NO_SUCH_SALT_VAR=" in err.fix


def test_salt_too_short_says_length_never_the_salt(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHORT_SALT", "tiny-secret")  # 11 bytes
    err = _error({"pseudonymise": True, "salt_env": "SHORT_SALT"}, tmp_path / "s.yaml")
    assert err.key == "privacy.salt_env" and "11 bytes, too short" in err.problem
    assert "at least 16 bytes" in err.fix and "tiny-secret" not in str(err)


def test_unreadable_and_short_salt_files(tmp_path_factory: pytest.TempPathFactory) -> None:
    project = tmp_path_factory.mktemp("project")
    secrets = tmp_path_factory.mktemp("secrets")
    err = _error({"pseudonymise": True, "salt_file": str(secrets / "missing")},
                 project / "s.yaml")
    assert err.key == "privacy.salt_file" and "cannot be read" in err.problem
    (secrets / "short").write_text("abc\n")
    err = _error({"pseudonymise": True, "salt_file": str(secrets / "short")}, project / "s.yaml")
    assert "3 bytes, too short" in err.problem
    (secrets / "good").write_text(SALT + "\n")
    privacy = parse_privacy({"pseudonymise": True, "salt_file": str(secrets / "good")},
                            project / "s.yaml")
    assert privacy.salt() == SALT.encode()  # the trailing newline is not part of it
    assert SALT not in repr(privacy)


def test_salt_file_inside_the_project_or_a_repository_is_refused(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    project = tmp_path_factory.mktemp("project")
    (project / "salt").write_text(SALT)
    err = _error({"pseudonymise": True, "salt_file": "salt"}, project / "sources.yaml")
    assert err.key == "privacy.salt_file" and f"lies inside {project}" in err.problem
    repo = tmp_path_factory.mktemp("repo")
    (repo / ".git").mkdir()
    (repo / "secrets").mkdir()
    (repo / "secrets" / "salt").write_text(SALT)
    other = tmp_path_factory.mktemp("config")
    err = _error({"pseudonymise": True, "salt_file": str(repo / "secrets" / "salt")},
                 other / "sources.yaml")
    assert f"lies inside {repo}" in err.problem and "outside" in err.fix


@pytest.mark.parametrize(("raw", "key", "problem"), [
    ({"pseudonymize": True}, "privacy.pseudonymize", "unknown key"),
    ({"pseudonymise": "yes", "salt_env": "X"}, "privacy.pseudonymise", "not true or false"),
    ({"pseudonymise": True}, "privacy.salt_env", "no salt is named"),
    ({"salt_env": "A", "salt_file": "/b"}, "privacy.salt_file", "both salt_env and salt_file"),
    ({"salt_env": "A=secretvalue"}, "privacy.salt_env", "not an environment variable name"),
    ({"free_text": "hide"}, "privacy.free_text", "'hide' is not a free-text rule"),
    ({"free_text": "drop"}, "privacy.free_text_columns", "no column is listed"),
    ({"free_text": "truncate", "free_text_columns": ["complaint"], "free_text_length": 0},
     "privacy.free_text_length", "not a positive whole number"),
    ({"identifiers": "booking_id"}, "privacy.identifiers", "expected a list"),
    (["pseudonymise"], "privacy", "expected a mapping"),
])
def test_block_mistakes(tmp_path: Path, raw: object, key: str, problem: str) -> None:
    err = _error(raw, tmp_path / "sources.yaml")
    assert err.key == key and problem in err.problem


def _with_privacy(tiny: TinyProject, block: str) -> Path:
    tiny.config.write_text(tiny.config.read_text() + "\nprivacy:\n" + block)
    return tiny.config


@pytest.mark.parametrize(("block", "key", "problem"), [
    ("  identifiers: [booking]\n", "privacy.identifiers", "'booking' is not an events column"),
    ("  identifiers: [amount]\n", "privacy.identifiers", "'amount' is a decimal column"),
    ("  identifiers: [customer_id]\n", "privacy.identifiers", "'customer_id' is a core column"),
    ("  identifiers: [city.code]\n", "privacy.identifiers", "'city' is a string column, not json"),
    ("  free_text: drop\n  free_text_columns: [complaints]\n", "privacy.free_text_columns",
     "'complaints' is not an events column"),
    ("  free_text: drop\n  identifiers: [payment_id]\n  free_text_columns: [payment_id]\n",
     "privacy.free_text_columns", "an identifier too"),
])
def test_column_mistakes_stop_the_project_load(tiny: TinyProject, monkeypatch: pytest.MonkeyPatch,
                                               block: str, key: str, problem: str) -> None:
    monkeypatch.setenv("JOURNEYS_TEST_SALT", SALT)
    config = _with_privacy(tiny, "  pseudonymise: true\n  salt_env: JOURNEYS_TEST_SALT\n" + block)
    with pytest.raises(ConfigError) as info:
        load_project(config)
    assert (info.value.key, info.value.path) == (key, str(config))
    assert problem in info.value.problem and "\n" not in str(info.value)


def test_default_identifiers_are_the_lookup_and_purchase_keys(
        tiny: TinyProject, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_TEST_SALT", SALT)
    config = _with_privacy(tiny, "  pseudonymise: true\n  salt_env: JOURNEYS_TEST_SALT\n")
    plan = load_project(config).privacy
    # payments look bookings up by booking_id, which is also the purchase key; clickstream
    # maps properties.booking_id into it
    assert plan.identifiers == ("booking_id", "properties.booking_id")
    assert "JOURNEYS_TEST_SALT" in plan.describe() and SALT not in plan.describe()


# --- events built with a privacy block --------------------------------------------------------


def _tiny_events(tiny: TinyProject) -> None:
    tiny.clicks("2026-10-01",
                click("m1", "anon-1", "app_opened", "2026-10-01T08:00:00Z", medium="paid_social"),
                click("m2", "anon-1", "checkout_started", "2026-10-01T08:02:00Z",
                      booking_id="b1", search_term="Blow dry near Alexanderplatz please"),
                click("m3", "anon-1", "logged_in", "2026-10-01T08:05:00Z", user="cust-9"),
                click("m4", "anon-2", "app_opened", "2026-10-01T09:00:00Z", platform="ios"))
    tiny.bookings("2026-10-01", "b1,cust-9,s1,Berlin,hair,2026-10-05 10:00:00,45.00,EUR,"
                  "reviewed,,2,Stylist was late and rude to me,2026-10-01 10:06:00")
    tiny.payments("2026-10-01", "p1,b1,45.00,EUR,card,succeeded,,2026-10-01T08:07:00Z",
                  "p9,b404,45.00,EUR,card,failed,card_declined,2026-10-01T08:07:00Z")


def _build(tiny: TinyProject) -> duckdb.DuckDBPyConnection:
    cfg = load_project(tiny.config).config
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    for name in ("clickstream", "bookings", "payments"):
        ingest.load_range(con, cfg.sources[name], D1, D1)
    build_events(con, cfg)
    return con


def test_events_hold_pseudonyms_with_the_same_stitching_and_lookups(
        tiny: TinyProject, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_TEST_SALT", SALT)
    _tiny_events(tiny)
    _with_privacy(tiny, "  pseudonymise: true\n  salt_env: JOURNEYS_TEST_SALT\n"
                  "  identifiers: [booking_id, payment_id]\n")
    con = _build(tiny)

    def ps(value: str) -> str:
        return python_pseudonym(SALT, value)

    rows = con.execute("select event_id, customer_id, is_identified, anonymous_id, booking_id, "
                       "payment_id, properties->>'booking_id' from events "
                       "order by event_ts, source, event_name").fetchall()
    assert rows == [
        (f"clickstream:{ps('m1')}", ps("cust-9"), True, ps("anon-1"), None, None, None),
        (f"clickstream:{ps('m2')}", ps("cust-9"), True, ps("anon-1"), ps("b1"), None, ps("b1")),
        (f"clickstream:{ps('m3')}", ps("cust-9"), True, ps("anon-1"), None, None, None),
        (f"bookings:{ps('b1:reviewed')}", ps("cust-9"), True, None, ps("b1"), None, None),
        # payments take their booking's customer through the pseudonymised booking id
        (f"payments:{ps('p9:failed')}", None, False, None, ps("b404"), ps("p9"), None),
        (f"payments:{ps('p1:succeeded')}", ps("cust-9"), True, None, ps("b1"), ps("p1"), None),
        (f"clickstream:{ps('m4')}", f"anon:{ps('anon-2')}", False, ps("anon-2"), None, None,
         None),
    ]
    assert con.execute("select anonymous_id, customer_id from identity_map").fetchall() == [
        (ps("anon-1"), ps("cust-9"))]
    # other properties are untouched
    assert con.execute("select properties->>'search_term' from events "
                       "where properties->>'search_term' is not null").fetchall() == [
        ("Blow dry near Alexanderplatz please",)]
    # no raw id and no salt in any table
    text = " ".join(str(v) for t in ("events", "identity_map")
                    for r in con.execute(f"select * from {t}").fetchall() for v in r)
    for raw in ("cust-9", "anon-1", "anon-2", "b1", "p1", "p9", "b404", "m1"):
        assert f"'{raw}'" not in text and f'"{raw}"' not in text
        assert not any(str(v) == raw for t in ("events", "identity_map")
                       for r in con.execute(f"select * from {t}").fetchall() for v in r)
    assert SALT not in text


@pytest.mark.parametrize(("mode", "complaint", "search"), [
    ("drop", FREE_TEXT_REMOVED, FREE_TEXT_REMOVED),
    ("truncate", "Stylist wa…", "Blow dry n…"),  # 10 characters, then …
])
def test_free_text_dropped_or_truncated(tiny: TinyProject, mode: str, complaint: str,
                                        search: str) -> None:
    _tiny_events(tiny)
    _with_privacy(tiny, f"  free_text: {mode}\n  free_text_length: 10\n"
                  "  free_text_columns: [complaint, properties.search_term]\n")
    con = _build(tiny)
    assert con.execute("select complaint from events where complaint is not null"
                       ).fetchall() == [(complaint,)]
    assert con.execute("select properties->>'search_term' from events where "
                       "properties->>'search_term' is not null").fetchall() == [(search,)]
    # ids and typed reasons are kept when only free text is withheld
    assert con.execute("select count(*) from events where customer_id = 'cust-9'"
                       ).fetchone() == (5,)
    assert con.execute("select failure_reason from events where failure_reason is not null"
                       ).fetchall() == [("card_declined",)]


def test_without_a_privacy_block_nothing_changes(tiny: TinyProject) -> None:
    _tiny_events(tiny)
    con = _build(tiny)
    assert con.execute("select customer_id, booking_id, complaint from events "
                       "where source = 'bookings'").fetchall() == [
        ("cust-9", "b1", "Stylist was late and rude to me")]


def test_run_stops_before_any_work_on_a_privacy_mistake(
        tiny: TinyProject, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from pipelines.cli import main

    monkeypatch.delenv("JOURNEYS_MISSING_SALT", raising=False)
    _tiny_events(tiny)
    _with_privacy(tiny, "  pseudonymise: true\n  salt_env: JOURNEYS_MISSING_SALT\n")
    assert main(["run", "--config", str(tiny.config)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"journeys run: error: {tiny.config}: key 'privacy.salt_env': environment variable "
        "JOURNEYS_MISSING_SALT is not set. Fix: export JOURNEYS_MISSING_SALT=<a secret of at "
        "least 16 characters>, e.g. from `openssl rand -hex 32`, before the run")
    assert not tiny.warehouse.exists()


def test_resolved_paths_are_printed(tiny: TinyProject, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture) -> None:
    from pipelines.cli.run import print_resolved

    monkeypatch.setenv("JOURNEYS_TEST_SALT", SALT)
    _tiny_events(tiny)
    tiny.clicks("2026-10-02", click("m9", "anon-9", "app_opened", "2026-10-02T08:00:00Z"))
    _with_privacy(tiny, "  pseudonymise: true\n  salt_env: JOURNEYS_TEST_SALT\n"
                  "  free_text: drop\n  free_text_columns: [complaint]\n")
    print_resolved(load_project(tiny.config))
    out = capsys.readouterr().out
    root = tiny.root.resolve()
    assert out.splitlines() == [
        f"journeys run: warehouse {root / 'warehouse' / 'journeys.duckdb'}",
        f"journeys run: output    {root / 'output'}",
        f"journeys run: source clickstream: {root / 'raw' / 'clickstream' / '*.jsonl'} (2 files)",
        f"journeys run: source bookings: {root / 'raw' / 'bookings' / '*.csv'} (1 file)",
        f"journeys run: source payments: {root / 'raw' / 'payments' / '*.csv'} (1 file)",
        "journeys run: privacy: ids pseudonymised (customer_id, anonymous_id, event_id, "
        "booking_id, properties.booking_id; salt from environment variable JOURNEYS_TEST_SALT); "
        "free text dropped (complaint)",
    ]
    assert SALT not in out


@pytest.mark.parametrize(("where", "block", "key", "column"), [
    ("{booking_id: {ne: bk_1}}", "  pseudonymise: true\n  salt_env: JOURNEYS_TEST_SALT\n",
     "privacy.identifiers", "booking_id"),
    ("{customer_id: {in: [cus_1, cus_2]}}",
     "  pseudonymise: true\n  salt_env: JOURNEYS_TEST_SALT\n", "privacy.pseudonymise",
     "customer_id"),
    ("{complaint: {eq: rude}}", "  free_text: drop\n  free_text_columns: [complaint]\n",
     "privacy.free_text_columns", "complaint"),
])
def test_a_journey_map_rule_on_a_hidden_value_is_refused(
        tiny: TinyProject, monkeypatch: pytest.MonkeyPatch, where: str, block: str, key: str,
        column: str) -> None:
    monkeypatch.setenv("JOURNEYS_TEST_SALT", SALT)
    jm = tiny.root / "journey_map.yaml"
    text = jm.read_text()
    assert "where: {rating: {lte: 2}}" in text
    jm.write_text(text.replace("where: {rating: {lte: 2}}", f"where: {where}"))
    load_project(tiny.config)  # without privacy the rule is fine
    _with_privacy(tiny, block)
    with pytest.raises(ConfigError) as info:
        load_project(tiny.config)
    assert info.value.key == key and f"compares {column} to a value" in info.value.problem
    assert "is_null" in info.value.fix


def test_is_null_rules_keep_working_when_free_text_is_dropped(tiny: TinyProject) -> None:
    # the sample's `complaint` pain is `{complaint: {is_null: false}}`: a dropped complaint is
    # still there (FREE_TEXT_REMOVED), so the pain counts the same events
    _with_privacy(tiny, "  free_text: drop\n  free_text_columns: [complaint]\n")
    assert load_project(tiny.config).privacy.free_text == ("complaint",)
