"""Privacy: pseudonymised identifiers and withheld free text, from the config's `privacy:` block.

    privacy:
      pseudonymise: true              # ids in `events` and all built from it: keyed hashes
      salt_env: JOURNEYS_SALT         # the secret key: an environment variable ...
      # salt_file: /etc/journeys/salt # ... or a file outside the project (never both)
      identifiers: [booking_id, payment_id]   # events columns holding ids (besides the core ones)
      free_text: truncate             # keep (default) | drop | truncate
      free_text_length: 40            # characters kept by truncate (default 40)
      free_text_columns: [complaint, properties.search_term]

**Pseudonyms.** With `pseudonymise: true` every identifier is replaced, as `events` is built
(and `identity_map`, which is built on the same records), by `ps_` and the first
`PSEUDONYM_HEX` hex digits of HMAC-SHA256(salt, id as UTF-8 text): 80 bits, so even 10^8
distinct ids collide with a chance below 10^-8. The hash is computed in DuckDB SQL
(`hmac_sql`: sha256 over the HMAC pads, which are bound as parameters, never written into SQL
text or a table), vectorised over any number of rows. The same id and salt give the same
pseudonym in every column, table and run, so every join, count and rate is that of the plain
run (tests/e2e/test_privacy_run.py compares every derived table of the sample); what can differ
is an order over ids: a tie of two events at the same instant broken by event id may fall the
other way, and a patched JSON object lists the pseudonymised key last. The identifiers are:
- `customer_id` and `anonymous_id` (an unlinked device stays `anon:<pseudonym>`);
- `event_id`: `<source>:<pseudonym of the record's id columns joined by ':'>` (a source
  without id columns: of its file name and line);
- the events columns in `identifiers` (string columns, or `json_column.key`); without the
  key: the columns other sources look records up by (`event.lookup.by`), the journey map's
  purchase key (the order id) and its repeat stage's `distinct_by`;
- inside an events JSON column (`properties`), every key a source maps into one of the above
  (the sample's clickstream `properties.booking_id`).
The raw tables (`raw_<source>`), `quarantine` and `rejected_files` keep the records as
exported: they are the loaded copy of the exports the rest is rebuilt from.

**Free text.** Values of `free_text_columns` (events string columns, or `json_column.key`
inside an events JSON column) are replaced by `FREE_TEXT_REMOVED` (`drop`: presence still
counts, e.g. complaints, but no text reaches a table or page) or cut to `free_text_length`
characters followed by `…` (`truncate`). Which columns are free text is said here, in the
list: the sources' types do not tell a typed reason code from a sentence.

**The salt** is read when `events` is built and when the config is validated (its length
checked), never stored: not in the warehouse, the run settings, a log line or an error message.
It must be at least `MIN_SALT_BYTES` bytes; a salt file must not lie inside the config's folder
or a git work tree (where it would be committed). Losing or changing the salt changes every
pseudonym (journeys stay right within a run, but no longer match earlier exports).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from transforms.errors import ConfigError

KEYS = ("pseudonymise", "salt_env", "salt_file", "identifiers", "free_text",
        "free_text_length", "free_text_columns")
FREE_TEXT_MODES = ("keep", "drop", "truncate")
MIN_SALT_BYTES = 16
PSEUDONYM_PREFIX = "ps_"
PSEUDONYM_HEX = 20
DEFAULT_FREE_TEXT_LENGTH = 40
FREE_TEXT_REMOVED = "(text removed)"
HMAC_BLOCK = 64  # SHA-256 block size in bytes
ALWAYS_PSEUDONYMISED = ("customer_id", "anonymous_id", "event_id")


@dataclass(frozen=True)
class Privacy:
    """The validated `privacy:` block (no salt in it: `salt()` reads it when needed)."""

    path: Path | None = None  # the config file
    pseudonymise: bool = False
    salt_env: str | None = None
    salt_file: Path | None = None
    identifiers: tuple[str, ...] | None = None  # None: the default (see module docstring)
    free_text: str = "keep"
    free_text_length: int = DEFAULT_FREE_TEXT_LENGTH
    free_text_columns: tuple[str, ...] = field(default_factory=tuple)

    @property
    def salt_origin(self) -> str:
        """Where the salt comes from, for messages (never the salt itself)."""
        if self.salt_env:
            return f"environment variable {self.salt_env}"
        return f"file {self.salt_file}"

    def salt(self) -> bytes:
        """The salt, read now from its environment variable or file and checked."""
        key = "privacy.salt_env" if self.salt_env else "privacy.salt_file"
        if self.salt_env:
            value = os.environ.get(self.salt_env)
            if value is None or not value.strip():
                raise ConfigError(self.path, key, f"environment variable {self.salt_env} is "
                                  "not set", f"export {self.salt_env}=<a secret of at least "
                                  f"{MIN_SALT_BYTES} characters>, e.g. from `openssl rand -hex "
                                  "32`, before the run")
            salt = value.strip().encode("utf-8")
        else:
            try:
                salt = self.salt_file.read_bytes().strip()
            except OSError as exc:
                raise ConfigError(self.path, key, f"{self.salt_file} cannot be read "
                                  f"({exc.strerror or exc})", "create it (e.g. `openssl rand "
                                  "-hex 32 > FILE`) or fix its permissions for the user that "
                                  "runs journeys") from None
        if len(salt) < MIN_SALT_BYTES:
            raise ConfigError(self.path, key, f"the salt from {self.salt_origin} is "
                              f"{len(salt)} bytes, too short", f"use at least {MIN_SALT_BYTES} "
                              "bytes of secret, e.g. `openssl rand -hex 32`")
        return salt


def hmac_pads(salt: bytes) -> tuple[bytes, bytes]:
    """The inner and outer HMAC-SHA256 pads of `salt` (RFC 2104): a key longer than the block
    is hashed first, then zero-padded to the block and xored with 0x36 and 0x5c."""
    key = hashlib.sha256(salt).digest() if len(salt) > HMAC_BLOCK else salt
    key = key.ljust(HMAC_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def hmac_sql(value_sql: str, inner: str, outer: str) -> str:
    """SQL for the pseudonym of VARCHAR `value_sql` (NULL stays NULL): `ps_` and the first
    PSEUDONYM_HEX hex digits of HMAC-SHA256(salt, value), where `inner` and `outer` are the
    placeholders of the bound `hmac_pads`: sha256(outer || sha256(inner || value))."""
    digest = f"sha256({outer} || unhex(sha256({inner} || encode({value_sql}))))"
    return f"({PSEUDONYM_PREFIX!r} || left({digest}, {PSEUDONYM_HEX}))"


def pseudonym(salt: bytes, value: str) -> str:
    """The pseudonym of one id, computed in Python (the same as `hmac_sql`)."""
    import hmac

    digest = hmac.new(salt, value.encode("utf-8"), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:PSEUDONYM_HEX]


def _fail(path: Path, key: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(path, f"privacy.{key}" if key else "privacy", problem, fix)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def _git_work_tree(path: Path) -> Path | None:
    for folder in path.parents:
        if (folder / ".git").exists():
            return folder
    return None


def parse_privacy(raw: Any, path: Path) -> Privacy:
    """Validate the `privacy:` block of config `path` (None: no block, nothing changes). The
    salt is read to check it exists and is long enough, then dropped."""
    if raw is None:
        return Privacy(path=path)
    if not isinstance(raw, dict):
        raise _fail(path, "", f"expected a mapping, got {type(raw).__name__}",
                    "write it as e.g. `privacy: {pseudonymise: true, salt_env: JOURNEYS_SALT}`")
    unknown = sorted(set(raw) - set(KEYS), key=str)
    if unknown:
        raise _fail(path, str(unknown[0]), "unknown key", f"use only {', '.join(KEYS)}")
    on = raw.get("pseudonymise", False)
    if not isinstance(on, bool):
        raise _fail(path, "pseudonymise", f"{on!r} is not true or false",
                    "write `pseudonymise: true` (or false)")
    salt_env, salt_file = raw.get("salt_env"), raw.get("salt_file")
    if salt_env is not None and salt_file is not None:
        raise _fail(path, "salt_file", "both salt_env and salt_file are set",
                    "keep one of them")
    if salt_env is not None and (not isinstance(salt_env, str) or not salt_env.strip()
                                 or "=" in salt_env):
        raise _fail(path, "salt_env", f"{salt_env!r} is not an environment variable name",
                    "write e.g. `salt_env: JOURNEYS_SALT` (the name, never the salt itself)")
    file = None
    if salt_file is not None:
        if not isinstance(salt_file, str) or not salt_file.strip():
            raise _fail(path, "salt_file", f"{salt_file!r} is not a path",
                        "write e.g. `salt_file: ~/.config/journeys/salt`")
        file = (path.parent / Path(salt_file.strip()).expanduser()).resolve()
        repo = _git_work_tree(file)
        if _inside(file, path.parent) or repo is not None:
            where = path.parent if _inside(file, path.parent) else repo
            raise _fail(path, "salt_file", f"{file} lies inside {where}, where it can be "
                        "committed or shipped with the project", "move the salt file outside "
                        "the project and any git repository, e.g. to ~/.config/journeys/salt, "
                        "or use salt_env")
    if on and salt_env is None and file is None:
        raise _fail(path, "salt_env", "pseudonymise is true but no salt is named",
                    "add `salt_env: JOURNEYS_SALT` (an environment variable holding the "
                    "secret) or `salt_file: /path/outside/the/project`")
    identifiers = raw.get("identifiers")
    if identifiers is not None:
        if not isinstance(identifiers, list) or not all(
                isinstance(x, str) and x for x in identifiers):
            raise _fail(path, "identifiers", "expected a list of events column names",
                        "write it as e.g. [booking_id, payment_id]")
        identifiers = tuple(identifiers)
    mode = raw.get("free_text", "keep")
    if mode not in FREE_TEXT_MODES:
        raise _fail(path, "free_text", f"{mode!r} is not a free-text rule",
                    f"use one of {', '.join(FREE_TEXT_MODES)}")
    length = raw.get("free_text_length", DEFAULT_FREE_TEXT_LENGTH)
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        raise _fail(path, "free_text_length", f"{length!r} is not a positive whole number",
                    f"write the characters to keep, e.g. {DEFAULT_FREE_TEXT_LENGTH}")
    columns = raw.get("free_text_columns", [])
    if not isinstance(columns, list) or not all(isinstance(x, str) and x for x in columns):
        raise _fail(path, "free_text_columns", "expected a list of events columns",
                    "write it as e.g. [complaint, properties.search_term]")
    if mode != "keep" and not columns:
        raise _fail(path, "free_text_columns", f"free_text is {mode} but no column is listed",
                    "list the free-text columns, e.g. [complaint], or set free_text: keep")
    privacy = Privacy(path=path, pseudonymise=on, salt_env=salt_env.strip() if salt_env else None,
                      salt_file=file, identifiers=identifiers, free_text=mode,
                      free_text_length=length, free_text_columns=tuple(columns))
    if on:
        privacy.salt()  # fails now, before any work, when it is missing or short
    return privacy


def read_privacy(config_path: Path) -> Privacy:
    """The `privacy:` block of the config file (already read and checked by `load_config`)."""
    path = Path(config_path).expanduser().resolve()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(path, "(file)", f"cannot be read again for its privacy block ({exc})",
                          "keep the config file in place while journeys runs") from None
    return parse_privacy(raw.get("privacy") if isinstance(raw, dict) else None, path)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


# config path -> (mtime, privacy)
_CACHE: dict[str, tuple[float, Privacy]] = {}


def privacy_of(config_path: Path) -> Privacy:
    """The project's privacy settings (cached while the config file does not change)."""
    path = Path(config_path).expanduser().resolve()
    hit = _CACHE.get(str(path))
    mtime = _mtime(path)
    if hit and hit[0] == mtime:
        return hit[1]
    privacy = read_privacy(path)
    _CACHE[str(path)] = (mtime, privacy)
    return privacy


@dataclass(frozen=True)
class PrivacyPlan:
    """What the events build changes, resolved against the config and the journey map:
    `identifiers` and `free_text` name events attribute columns (`column`) or keys inside an
    events JSON column (`column.key.path`)."""

    privacy: Privacy
    identifiers: tuple[str, ...] = ()
    free_text: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.privacy.pseudonymise or (self.privacy.free_text != "keep"
                                             and bool(self.free_text))

    def describe(self) -> str:
        """One line for the run's start: what is pseudonymised or withheld (no salt)."""
        parts = []
        if self.privacy.pseudonymise:
            parts.append("ids pseudonymised (customer_id, anonymous_id, event_id"
                         f"{''.join(', ' + c for c in self.identifiers)}; salt from "
                         f"{self.privacy.salt_origin})")
        if self.privacy.free_text != "keep" and self.free_text:
            how = ("dropped" if self.privacy.free_text == "drop" else
                   f"truncated to {self.privacy.free_text_length} characters")
            parts.append(f"free text {how} ({', '.join(self.free_text)})")
        return "; ".join(parts) or "off (ids and free text as exported)"


def _column_of(name: str, columns: dict[str, str], path: Path, key: str,
               what: str) -> None:
    """`name` is an events string column, or `json_column.key` in an events JSON column."""
    head, _, rest = name.partition(".")
    typ = columns.get(head)
    if name in ALWAYS_PSEUDONYMISED:
        raise _fail(path, key, f"{name!r} is a core column", f"leave it out: {name} is "
                    "always pseudonymised with pseudonymise: true" if what == "identifiers"
                    else f"leave it out: {name} is an id, not free text")
    if typ is None:
        raise _fail(path, key, f"{head!r} is not an events column", f"name {what} from "
                    f"events.columns ({', '.join(columns) or 'none defined'}), or a key inside "
                    "a json one as column.key")
    if rest and typ != "json":
        raise _fail(path, key, f"{name!r}: {head!r} is a {typ} column, not json",
                    f"name the column itself ({head}) or a key of a json column")
    if not rest and typ != "string":
        raise _fail(path, key, f"{head!r} is a {typ} column", f"{what} must be string "
                    "columns (or keys inside a json column); declare it `string` in "
                    "events.columns")
    if rest and (rest.startswith(".") or rest.endswith(".") or ".." in rest):
        raise _fail(path, key, f"{name!r} is not a key path", "write it as column.key or "
                    "column.key.subkey")


def plan_privacy(privacy: Privacy, cfg: Any, journey_map: Any) -> PrivacyPlan:
    """Resolve `privacy` against the config (`ProjectConfig`) and its journey map: check every
    named column, take the default identifiers, and add the JSON keys sources map into an
    identifier. Raises ConfigError naming the key."""
    path = privacy.path or cfg.path
    columns = dict(cfg.events.columns)
    if privacy.identifiers is not None:
        identifiers = list(privacy.identifiers)
        for name in identifiers:
            _column_of(name, columns, path, "identifiers", "identifiers")
    else:  # the lookup keys and the purchase (order) key
        identifiers = []
        for src in cfg.sources.values():
            lk = src.event.lookup if src.event else None
            if lk is not None and lk.by not in identifiers:
                identifiers.append(lk.by)
        purchase = getattr(journey_map, "purchase", None)
        keys = [purchase.key] if purchase is not None else []
        keys += [s.repeat.distinct_by for s in getattr(journey_map, "stages", ())
                 if s.repeat is not None]
        identifiers += [k for k in keys if k not in identifiers]
        identifiers = [c for c in identifiers if columns.get(c) == "string"]
    # keys inside an events JSON column that a source maps into an identifier
    for src in cfg.sources.values():
        ev = src.event
        if ev is None:
            continue
        refs = [ev.customer, ev.anonymous_id,
                *(ev.columns.get(c) for c in identifiers if "." not in c)]
        for ref in refs:
            for col in (ref.columns if ref else ()):
                head, _, rest = col.partition(".")
                if not rest or src.type_of(head) != "json":
                    continue
                for target, target_ref in ev.columns.items():
                    name = f"{target}.{rest}"
                    if (columns.get(target) == "json" and head in target_ref.columns
                            and name not in identifiers):
                        identifiers.append(name)
    free_text = list(privacy.free_text_columns)
    for name in free_text:
        _column_of(name, columns, path, "free_text_columns", "free-text columns")
        if name in identifiers:
            raise _fail(path, "free_text_columns", f"{name!r} is an identifier too",
                        "list it in one of identifiers and free_text_columns")
    if not privacy.pseudonymise:
        identifiers = []
    _check_rules(journey_map, path, identifiers, privacy, free_text)
    return PrivacyPlan(privacy, tuple(identifiers), tuple(free_text))


def _rules(journey_map: Any) -> list[Any]:
    """Every rule of the journey map: stages, pains, repeats, metric events, purchase,
    segments."""
    rules = []
    for stage in getattr(journey_map, "stages", ()):
        rules += list(stage.rules) + [p.rule for p in stage.pains]
        if stage.repeat is not None:
            rules.append(stage.repeat.cancelled_by)
    rules += list(getattr(journey_map, "metric_events", {}).values())
    purchase = getattr(journey_map, "purchase", None)
    if purchase is not None:
        rules += [purchase.event, purchase.cancelled_by]
    rules += [s.new_when for s in getattr(journey_map, "segments", ())]
    return [r for r in rules if r is not None]


def _check_rules(journey_map: Any, path: Path, identifiers: list[str], privacy: Privacy,
                 free_text: list[str]) -> None:
    """A journey-map rule comparing a pseudonymised or withheld column to a value would
    silently match nothing: refuse it (`is_null` conditions still work)."""
    hashed = set(identifiers) | (set(ALWAYS_PSEUDONYMISED) if privacy.pseudonymise else set())
    withheld = set(free_text) if privacy.free_text != "keep" else set()
    for rule in _rules(journey_map):
        for cond in rule.conditions:
            if cond.op == "is_null":
                continue
            name = f"properties.{cond.column}" if cond.is_property else cond.column
            if name in hashed:
                key = "identifiers" if name in identifiers else "pseudonymise"
                raise _fail(path, key, f"the journey map ({journey_map.path}) compares {name} "
                            "to a value, which no pseudonym equals", "condition on it with "
                            f"is_null only, or leave {name} out of the pseudonymised ids")
            if name in withheld:
                raise _fail(path, "free_text_columns", f"the journey map "
                            f"({journey_map.path}) compares {name} to a value, which the "
                            f"{privacy.free_text} rule changes", f"condition on it with is_null "
                            f"only, or leave {name} out of free_text_columns")


def _json_path(path: str) -> str:
    return "$." + ".".join('"' + part.replace('"', '\\"') + '"' for part in path.split("."))


def _json_patch(parts: list[str], value_sql: str, p: Any) -> str:
    """A JSON merge patch setting key path `parts` to `value_sql`."""
    patch = value_sql
    for part in reversed(parts):
        patch = f"json_object({p.add(part)}, {patch})"
    return patch


PSEUDONYMS = "_pseudonyms"  # temp table: distinct raw id -> pseudonym, dropped after use


def apply_privacy(con: Any, table: str, plan: PrivacyPlan) -> None:
    """Rewrite the event records in temp table `table` (columns event_id, source,
    own_customer_id, anonymous_id and the events attribute columns) as `plan` says:
    identifiers to pseudonyms (event_id keeps its `<source>:` prefix), free text dropped or
    cut. Each distinct id is hashed once (temp table `_pseudonyms`, joined back, then dropped:
    ids repeat over a customer's events); event ids, unique anyway, are hashed row by row. One
    vectorised statement for the columns, then one per JSON key."""
    from transforms.sqlutil import Params, ident

    if not plan.active:
        return
    t = ident(table)
    mode, length = plan.privacy.free_text, plan.privacy.free_text_length

    def withheld(sql: str, q: Any) -> str:
        if mode == "drop":
            return (f"case when {sql} is null or {sql} = '' then {sql} "
                    f"else {q.add(FREE_TEXT_REMOVED)} end")
        return (f"case when length({sql}) > {int(length)} "
                f"then left({sql}, {int(length)}) || '…' else {sql} end")

    p = Params()
    values: dict[str, str] = {}
    joins: list[str] = []
    plain = [n for n in plan.identifiers if "." not in n]
    json_ids = [n for n in plan.identifiers if "." in n]
    pads = None

    def value_of(name: str, q: Any, alias: str = "r") -> str:
        column, _, rest = name.partition(".")
        if not rest:
            return f"{alias}.{ident(column)}"
        return f"json_extract_string({alias}.{ident(column)}, {q.add(_json_path(rest))})"

    if plan.privacy.pseudonymise:
        pads = hmac_pads(plan.privacy.salt())
        inner, outer = p.add(pads[0]), p.add(pads[1])
        ids = ["own_customer_id", "anonymous_id", *plain, *json_ids]
        distinct = " union ".join(f"select {value_of(n, p)} as v from {t} r" for n in ids)
        con.execute(f"create or replace temp table {PSEUDONYMS} as "
                    f"select v, {hmac_sql('v', inner, outer)} as h "
                    f"from ({distinct}) where v is not null", p.values)
        p = Params()
        inner, outer = p.add(pads[0]), p.add(pads[1])
        record_id = "substr(r.event_id, length(r.source) + 2)"  # after `<source>:`
        values["event_id"] = f"r.source || ':' || {hmac_sql(record_id, inner, outer)}"
        for k, name in enumerate(["own_customer_id", "anonymous_id", *plain]):
            joins.append(f"left join {PSEUDONYMS} m{k} on m{k}.v = r.{ident(name)}")
            values[name] = f"m{k}.h"
    if mode != "keep":
        for name in plan.free_text:
            if "." not in name:
                values[name] = withheld(f"r.{ident(name)}", p)
    if values:
        replaced = ", ".join(f"{v} as {ident(c)}" for c, v in values.items())
        con.execute(f"create or replace temp table {t} as select r.* replace ({replaced}) "
                    f"from {t} r {' '.join(joins)}", p.values)
    keys = [(n, "id") for n in json_ids]
    if mode != "keep":
        keys += [(n, "text") for n in plan.free_text if "." in n]
    for name, kind in keys:
        column, _, rest = name.partition(".")
        q = Params()
        current = value_of(name, q)
        join = ""
        if kind == "id":
            new, join = "m.h", f"left join {PSEUDONYMS} m on m.v = {current}"
        else:
            new = withheld(current, q)
        patch = _json_patch(rest.split("."), new, q)
        col = f"r.{ident(column)}"
        con.execute(f"create or replace temp table {t} as select r.* replace ("
                    f"case when {current} is null then {col} "
                    f"else json_merge_patch({col}, {patch}) end as {ident(column)}) "
                    f"from {t} r {join}", q.values)
    con.execute(f"drop table if exists {PSEUDONYMS}")


def privacy_plan(cfg: Any) -> PrivacyPlan:
    """The privacy plan of the project whose config is `cfg` (cached with the project)."""
    privacy = privacy_of(cfg.path)
    if not privacy.pseudonymise and privacy.free_text == "keep":
        return PrivacyPlan(privacy)
    from transforms.project import load_project

    return load_project(cfg.path).privacy
