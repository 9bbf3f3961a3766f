"""Wrangler configuration: ``wrangler.toml``, ``wrangler.jsonc`` and ``wrangler.json`` (spec §10.2).

What dolab reads from a Worker's configuration, and nothing more: the Worker's ``name``,
``main``, ``compatibility_date`` and ``compatibility_flags``, its ``[[durable_objects.bindings]]``,
and how the Durable Object classes came to exist, either as ``[[migrations]]`` or as declarative
``exports``. Other keys (routes, KV namespaces, environments…) are accepted and ignored.

Migrations are replayed as wrangler replays them (per migration: ``deleted_classes``, then
``renamed_classes``, then ``new_classes`` → ``"kv"``, then ``new_sqlite_classes`` → ``"sqlite"``,
then ``transferred_classes``), so :meth:`WranglerConfig.backends` tells which storage backend each
class has (spec §5.1).

Every problem is a :class:`ConfigError` (a ``ValueError``) whose message names the file, the line
when it can be found, and the key path (``durable_objects.bindings[1].class_name``); the
``.file``, ``.line``, ``.column``, ``.key`` and ``.reason`` attributes carry the same facts.
Wrangler's texts are used verbatim where wrangler has one.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# ---- texts ---------------------------------------------------------------------------------------
# Wrangler's (spec §10.2, workers-sdk).
MIGRATIONS_AND_EXPORTS = (
    "`migrations` and `exports` are mutually exclusive. Choose one or the other to declare your "
    "Durable Object lifecycle, but not both."
)
EXISTING_CLASS = "Cannot apply {kind} migration to existing class {cls}"
NON_EXISTENT_CLASS = "Cannot apply {kind} migration to non-existent class {cls}"
DELETE_BOUND = (
    "Cannot apply --delete-class migration to class {cls} without also removing the binding that "
    "references it"
)
NOT_EXPORTED = (
    "Your Worker depends on the following Durable Objects, which are not exported in your "
    "entrypoint file: {classes}.\nYou should export these objects from your entrypoint, {path}."
)

# dolab's own.
NO_MIGRATION = (
    "Durable Object class {cls} is not created by any migration, so `wrangler dev` would not run "
    'it. Add a migration:\n\n[[migrations]]\ntag = "{tag}"\nnew_sqlite_classes = ["{cls}"]'
)
NO_EXPORT = (
    "Durable Object class {cls} is not declared in `exports`, so `wrangler dev` would not run it. "
    'Declare it:\n\n[exports.{key}]\ntype = "durable-object"\nstorage = "sqlite"'
)
RENAMED_AWAY = (
    'Durable Object class {cls} was renamed to {to} by {by}; bind class_name = "{to}" instead'
)
TRANSFERRED_AWAY = "Durable Object class {cls} was transferred to {to} by {by}"
MISSING_FIELD = 'missing required field "{field}"'
EMPTY_STRING = "must not be empty"
EXPECTED = "expected {what}, got {got}"
UNKNOWN_KEY = 'unknown key "{key}" (allowed keys: {allowed})'
DUPLICATE_BINDING = 'duplicate binding name "{value}" (already used by {other})'
DUPLICATE_TAG = 'duplicate migration tag "{value}" (already used by {other})'
BAD_DATE = 'must be a date written as a string "YYYY-MM-DD", got {got}'
BAD_CHOICE = "must be one of {choices}, got {got}"
RENAMED_TARGET = (
    'renamed_to names "{to}", which `exports` does not declare as a live Durable Object'
)
BAD_TOML = "invalid TOML: {detail}"
BAD_JSON = "invalid JSON: {detail}"
NOT_TOP_TABLE = "the configuration must be a table (a JSON object) at top level, got {got}"
UNKNOWN_FILE_TYPE = (
    "unsupported configuration file {name!r}: expected wrangler.toml, wrangler.jsonc or "
    "wrangler.json"
)
UNTERMINATED_COMMENT = "Unterminated /* comment"

# The compatibility date assumed when a configuration names none: the date the spec's observed
# behaviour was recorded with (spec §0.1, [R]). Behaviour switches compare against it (spec §10.2).
DEFAULT_COMPATIBILITY_DATE = "2026-04-10"

BINDING_KEYS = ("name", "class_name", "script_name", "environment")
MIGRATION_KEYS = (
    "tag",
    "new_classes",
    "new_sqlite_classes",
    "renamed_classes",
    "deleted_classes",
    "transferred_classes",
)
EXPORT_KEYS = ("type", "state", "storage", "renamed_to", "transferred_to", "transfer_from")
EXPORT_STATES = ("created", "deleted", "renamed", "transferred", "expecting-transfer")
EXPORT_STATE_NEEDS = {
    "renamed": "renamed_to",
    "transferred": "transferred_to",
    "expecting-transfer": "transfer_from",
}
# Wrangler spells the legacy backend "legacy-kv"; dolab's own name for it is "kv".
EXPORT_STORAGE = {"sqlite": "sqlite", "kv": "kv", "legacy-kv": "kv"}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


# ---- the error -----------------------------------------------------------------------------------


class ConfigError(ValueError):
    """A wrangler configuration dolab (or wrangler) would refuse.

    ``reason`` is the bare text; ``str(error)`` prefixes it with where: ``file:line``, then the key
    path. Texts that wrangler itself prints are kept verbatim inside ``reason``.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        key: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.reason, self.file, self.key = reason, file, key
        self.line, self.column = line, column
        super().__init__(_where(file, line, column, key) + reason)


def _where(file: str | None, line: int | None, column: int | None, key: str | None) -> str:
    place = file or ""
    if line is not None:
        position = f"{line}" if column is None else f"{line}:{column}"
        place = f"{place}:{position}" if place else f"line {position}"
    parts = [part for part in (place, key) if part]
    return "".join(f"{part}: " for part in parts)


class _Problem(Exception):
    """Raised while validating parsed data; the parser turns it into a located ConfigError."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key, self.reason = key, reason


# ---- the data model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Binding:
    """One ``[[durable_objects.bindings]]`` entry: ``env.<name>`` is ``class_name``'s namespace.

    ``script_name`` is set when the class lives in another Worker (``environment`` is that
    Worker's service environment); such bindings need no migration here.
    """

    name: str
    class_name: str
    script_name: str | None = None
    environment: str | None = None


@dataclass(frozen=True)
class Migration:
    """One ``[[migrations]]`` entry. ``renamed_classes`` holds ``(from, to)`` pairs and
    ``transferred_classes`` holds ``(from, from_script, to)`` triples."""

    tag: str
    new_classes: tuple[str, ...] = ()
    new_sqlite_classes: tuple[str, ...] = ()
    renamed_classes: tuple[tuple[str, str], ...] = ()
    deleted_classes: tuple[str, ...] = ()
    transferred_classes: tuple[tuple[str, str, str], ...] = ()


class _Gone(NamedTuple):
    how: str  # "deleted", "renamed" or "transferred"
    by: str  # what removed the class: a key path, or 'migration "v2"' for a rename
    to: str | None = None


@dataclass
class _Lifecycle:
    """The classes that exist after replaying migrations (or reading exports), with their backend,
    and how the classes that no longer exist went away."""

    backends: dict[str, str] = field(default_factory=dict)
    gone: dict[str, _Gone] = field(default_factory=dict)


@dataclass(frozen=True)
class WranglerConfig:
    """A parsed, validated wrangler configuration (spec §10.2); ``path``: the file it came from."""

    name: str | None = None
    main: str | None = None
    compatibility_date: str | None = None
    compatibility_flags: tuple[str, ...] = ()
    bindings: tuple[Binding, ...] = ()
    migrations: tuple[Migration, ...] = ()
    exports: dict[str, Any] | None = field(default=None, hash=False)
    path: str | None = None

    def backends(self) -> dict[str, str]:
        """Class name → ``"sqlite"`` or ``"kv"`` for every class the migrations (or ``exports``)
        leave in existence. Raises :class:`ConfigError` if a bound class is not among them."""
        life = self._lifecycle()
        for index, binding in enumerate(self.bindings):
            if binding.script_name is None and binding.class_name not in life.backends:
                raise self._missing(binding.class_name, life, _binding_key(index, "class_name"))
        return dict(life.backends)

    def storage_of(self, class_name: str) -> str:
        """The backend of one class, ``"sqlite"`` or ``"kv"``; :class:`ConfigError` if no migration
        (or export) creates it."""
        life = self._lifecycle()
        if class_name in life.backends:
            return life.backends[class_name]
        index = next((i for i, b in enumerate(self.bindings) if b.class_name == class_name), None)
        key = None if index is None else _binding_key(index, "class_name")
        raise self._missing(class_name, life, key)

    def compat_at_least(self, date: str) -> bool:
        """Whether this Worker's compatibility date is ``date`` or later (a behaviour switch, spec
        §10.2). A configuration without one uses :data:`DEFAULT_COMPATIBILITY_DATE`."""
        if not _is_date(date):
            raise ValueError(f'compat_at_least() takes a date "YYYY-MM-DD", got {date!r}')
        return (self.compatibility_date or DEFAULT_COMPATIBILITY_DATE) >= date

    def _lifecycle(self) -> _Lifecycle:
        try:
            return _replay(self)
        except _Problem as problem:
            raise ConfigError(problem.reason, file=self.path, key=problem.key) from None

    def _missing(self, cls: str, life: _Lifecycle, key: str | None) -> ConfigError:
        gone = life.gone.get(cls)
        if gone is None:
            reason = self._how_to_create(cls)
        elif gone.how == "deleted":
            reason = DELETE_BOUND.format(cls=cls)
        else:
            text = RENAMED_AWAY if gone.how == "renamed" else TRANSFERRED_AWAY
            reason = text.format(cls=cls, to=gone.to, by=gone.by)
        return ConfigError(reason, file=self.path, key=key)

    def _how_to_create(self, cls: str) -> str:
        if _uses_exports(self):
            return NO_EXPORT.format(cls=cls, key=_toml_key(cls))
        return NO_MIGRATION.format(cls=cls, tag=_next_tag(self.migrations))


def _binding_key(index: int, name: str | None = None) -> str:
    key = f"durable_objects.bindings[{index}]"
    return f"{key}.{name}" if name else key


def _migration_key(index: int) -> str:
    return f"migrations[{index}]"


def _next_tag(migrations: Iterable[Migration]) -> str:
    used = {migration.tag for migration in migrations}
    number = 1
    while f"v{number}" in used:
        number += 1
    return f"v{number}"


def _is_date(text: object) -> bool:
    if not isinstance(text, str) or not _DATE.fullmatch(text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


# ---- replaying the lifecycle ---------------------------------------------------------------------


def _uses_exports(config: WranglerConfig) -> bool:
    return config.exports is not None and not config.migrations


def _replay(config: WranglerConfig) -> _Lifecycle:
    if _uses_exports(config):
        assert config.exports is not None
        return _replay_exports(config.exports)
    return _replay_migrations(config.migrations)


def _replay_migrations(migrations: Iterable[Migration]) -> _Lifecycle:
    """Apply the migrations in order, in wrangler's order within one migration."""
    life = _Lifecycle()
    for index, migration in enumerate(migrations):
        key = _migration_key(index)
        for cls in migration.deleted_classes:
            _remove(life, cls, "deleted_classes", key, _Gone("deleted", f"{key}.deleted_classes"))
        for old, new in migration.renamed_classes:
            backend = life.backends.get(old, "")
            gone = _Gone("renamed", f'migration "{migration.tag}"', new)
            _remove(life, old, "renamed_classes", key, gone)
            _create(life, new, backend, "renamed_classes", key)
        for cls in migration.new_classes:
            _create(life, cls, "kv", "new_classes", key)
        for cls in migration.new_sqlite_classes:
            _create(life, cls, "sqlite", "new_sqlite_classes", key)
        for _, _, cls in migration.transferred_classes:
            # The transferred namespace keeps its backend, which lives in the other Worker's
            # configuration; dolab assumes SQLite (README, "Differences from Cloudflare").
            _create(life, cls, "sqlite", "transferred_classes", key)
    return life


def _remove(life: _Lifecycle, cls: str, kind: str, key: str, gone: _Gone) -> None:
    if cls not in life.backends:
        raise _Problem(f"{key}.{kind}", NON_EXISTENT_CLASS.format(kind=kind, cls=cls))
    del life.backends[cls]
    life.gone[cls] = gone


def _create(life: _Lifecycle, cls: str, backend: str, kind: str, key: str) -> None:
    if cls in life.backends:
        raise _Problem(f"{key}.{kind}", EXISTING_CLASS.format(kind=kind, cls=cls))
    life.backends[cls] = backend
    life.gone.pop(cls, None)


def _replay_exports(exports: Mapping[str, Any]) -> _Lifecycle:
    """Read declarative ``exports``: live entries have a backend (default SQLite), tombstones
    record how a class went away."""
    life = _Lifecycle()
    for cls, entry in exports.items():
        if not isinstance(entry, Mapping) or entry.get("type") != "durable-object":
            continue
        state, key = entry.get("state", "created"), f"exports.{_toml_key(cls)}"
        if state in ("created", "expecting-transfer"):
            life.backends[cls] = EXPORT_STORAGE.get(entry.get("storage", "sqlite"), "sqlite")
        elif state == "renamed":
            life.gone[cls] = _Gone("renamed", key, entry.get("renamed_to"))
        else:
            life.gone[cls] = _Gone(state, f"{key}.state", entry.get("transferred_to"))
    return life


# ---- validating parsed data ----------------------------------------------------------------------


def _build(raw: object, path: str | None) -> WranglerConfig:
    """Validate parsed TOML/JSON data into a WranglerConfig (raises _Problem)."""
    if not isinstance(raw, Mapping):
        raise _Problem("", NOT_TOP_TABLE.format(got=_show(raw)))
    if "migrations" in raw and "exports" in raw:
        raise _Problem("exports", MIGRATIONS_AND_EXPORTS)
    config = WranglerConfig(
        name=_optional_str(raw.get("name"), "name"),
        main=_optional_str(raw.get("main"), "main"),
        compatibility_date=_compatibility_date(raw.get("compatibility_date")),
        compatibility_flags=_str_list(raw.get("compatibility_flags"), "compatibility_flags"),
        bindings=_bindings(raw.get("durable_objects")),
        migrations=_migrations(raw.get("migrations")),
        exports=_exports(raw.get("exports")),
        path=path,
    )
    _check_deleted_bindings(config)
    return config


def _check_deleted_bindings(config: WranglerConfig) -> None:
    """Replay the lifecycle now so its errors surface at load; refuse deleting a bound class."""
    life = _replay(config)
    for binding in config.bindings:
        gone = life.gone.get(binding.class_name)
        if binding.script_name is None and gone is not None and gone.how == "deleted":
            raise _Problem(gone.by, DELETE_BOUND.format(cls=binding.class_name))


def _bindings(raw: object) -> tuple[Binding, ...]:
    if raw is None:
        return ()
    table = _table(raw, "durable_objects")
    _only_keys(table, ("bindings",), "durable_objects")
    entries = _array(table.get("bindings", []), "durable_objects.bindings")
    bindings = tuple(_binding(entry, _binding_key(i)) for i, entry in enumerate(entries))
    _no_duplicates([b.name for b in bindings], _binding_key, "name", DUPLICATE_BINDING)
    return bindings


def _binding(raw: object, key: str) -> Binding:
    table = _table(raw, key)
    _only_keys(table, BINDING_KEYS, key)
    return Binding(
        name=_required_str(table, "name", key),
        class_name=_required_str(table, "class_name", key),
        script_name=_optional_str(table.get("script_name"), f"{key}.script_name"),
        environment=_optional_str(table.get("environment"), f"{key}.environment"),
    )


def _migrations(raw: object) -> tuple[Migration, ...]:
    if raw is None:
        return ()
    entries = _array(raw, "migrations")
    migrations = tuple(_migration(entry, _migration_key(i)) for i, entry in enumerate(entries))
    _no_duplicates([m.tag for m in migrations], _migration_key, "tag", DUPLICATE_TAG)
    return migrations


def _migration(raw: object, key: str) -> Migration:
    table = _table(raw, key)
    _only_keys(table, MIGRATION_KEYS, key)

    def records(name: str, fields: tuple[str, ...]) -> list[tuple[str, ...]]:
        entries = _array(table.get(name, []), f"{key}.{name}")
        return [_record(entry, f"{key}.{name}[{j}]", fields) for j, entry in enumerate(entries)]

    renamed = [(old, new) for old, new in records("renamed_classes", ("from", "to"))]
    transferred = records("transferred_classes", ("from", "from_script", "to"))
    return Migration(
        tag=_required_str(table, "tag", key),
        new_classes=_str_list(table.get("new_classes"), f"{key}.new_classes"),
        new_sqlite_classes=_str_list(table.get("new_sqlite_classes"), f"{key}.new_sqlite_classes"),
        renamed_classes=tuple(renamed),
        deleted_classes=_str_list(table.get("deleted_classes"), f"{key}.deleted_classes"),
        transferred_classes=tuple((a, b, c) for a, b, c in transferred),
    )


def _record(raw: object, key: str, fields: tuple[str, ...]) -> tuple[str, ...]:
    """A ``{from = "A", to = "B"}``-style entry: exactly ``fields``, each a string."""
    table = _table(raw, key)
    _only_keys(table, fields, key)
    return tuple(_required_str(table, name, key) for name in fields)


def _exports(raw: object) -> dict[str, Any] | None:
    if raw is None:
        return None
    table = _table(raw, "exports")
    for cls, entry in table.items():
        key = f"exports.{_toml_key(cls)}"
        entry_table = _table(entry, key)
        if _required_str(entry_table, "type", key) == "durable-object":
            _export_entry(entry_table, key, table)
    return dict(table)


def _export_entry(entry: Mapping[str, Any], key: str, exports: Mapping[str, Any]) -> None:
    _only_keys(entry, EXPORT_KEYS, key)
    state = _choice(entry.get("state", "created"), EXPORT_STATES, f"{key}.state")
    _choice(entry.get("storage", "sqlite"), tuple(EXPORT_STORAGE), f"{key}.storage")
    if state in EXPORT_STATE_NEEDS:
        target = _required_str(entry, EXPORT_STATE_NEEDS[state], key)
        if state == "renamed" and not _is_live_export(exports.get(target)):
            raise _Problem(f"{key}.renamed_to", RENAMED_TARGET.format(to=target))


def _is_live_export(entry: object) -> bool:
    return (
        isinstance(entry, Mapping)
        and entry.get("type") == "durable-object"
        and entry.get("state", "created") in ("created", "expecting-transfer")
    )


def _compatibility_date(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not _is_date(raw):
        raise _Problem("compatibility_date", BAD_DATE.format(got=_show(raw)))
    return raw


# ---- small validators ----------------------------------------------------------------------------


def _table(raw: object, key: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise _Problem(key, EXPECTED.format(what="a table (an object)", got=_show(raw)))
    return raw


def _array(raw: object, key: str) -> list[Any]:
    if not isinstance(raw, list):
        raise _Problem(key, EXPECTED.format(what="an array", got=_show(raw)))
    return raw


def _str_list(raw: object, key: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    items = _array(raw, key)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise _Problem(f"{key}[{index}]", EXPECTED.format(what="a string", got=_show(item)))
    return tuple(items)


def _required_str(table: Mapping[str, Any], name: str, key: str) -> str:
    if name not in table:
        raise _Problem(f"{key}.{name}", MISSING_FIELD.format(field=name))
    value = _optional_str(table[name], f"{key}.{name}")
    if not value:
        raise _Problem(f"{key}.{name}", EMPTY_STRING)
    return value


def _optional_str(raw: object, key: str) -> str | None:
    if raw is not None and not isinstance(raw, str):
        raise _Problem(key, EXPECTED.format(what="a string", got=_show(raw)))
    return raw


def _choice(raw: object, choices: tuple[str, ...], key: str) -> str:
    if not isinstance(raw, str) or raw not in choices:
        shown = ", ".join(f'"{choice}"' for choice in choices)
        raise _Problem(key, BAD_CHOICE.format(choices=shown, got=_show(raw)))
    return raw


def _only_keys(table: Mapping[str, Any], allowed: tuple[str, ...], key: str) -> None:
    for name in table:
        if name not in allowed:
            reason = UNKNOWN_KEY.format(key=name, allowed=", ".join(allowed))
            raise _Problem(f"{key}.{_toml_key(name)}", reason)


def _no_duplicates(
    values: list[str], entry_key: Callable[[int], str], name: str, text: str
) -> None:
    """Refuse a repeated ``name`` field (``text`` formats ``value`` and ``other``)."""
    first: dict[str, int] = {}
    for index, value in enumerate(values):
        if value in first:
            reason = text.format(value=value, other=entry_key(first[value]))
            raise _Problem(f"{entry_key(index)}.{name}", reason)
        first[value] = index


def _show(value: object) -> str:
    """A short description of a parsed value for error texts."""
    if isinstance(value, (datetime.date, datetime.time)):
        return f"the unquoted TOML date {value.isoformat()} (write it in quotes)"
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    kind = "table" if isinstance(value, Mapping) else kinds.get(type(value), type(value).__name__)
    text = json.dumps(value, default=str, ensure_ascii=False)
    return f"{kind} {text if len(text) <= 60 else text[:57] + '...'}"


# ---- reading files and text ----------------------------------------------------------------------


def load(path: str | os.PathLike[str]) -> WranglerConfig:
    """Read ``wrangler.toml``, ``wrangler.jsonc`` or ``wrangler.json`` (chosen by extension)."""
    name = os.fspath(path)
    with open(name, encoding="utf-8-sig") as file:
        text = file.read()
    suffix = os.path.splitext(name)[1].lower()
    if suffix == ".toml":
        return parse_toml(text, name)
    if suffix in (".json", ".jsonc"):
        return parse_jsonc(text, name)
    raise ConfigError(UNKNOWN_FILE_TYPE.format(name=os.path.basename(name)), file=name)


def parse_toml(text: str, path: str | None = None) -> WranglerConfig:
    """Parse wrangler.toml text (the ``%%wrangler`` cell passes its body here)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        detail, line, column = _toml_position(str(error))
        raise ConfigError(
            BAD_TOML.format(detail=detail), file=path, line=line, column=column
        ) from None
    try:
        return _build(raw, path)
    except _Problem as problem:
        line = _toml_line(text, problem.key)
        raise ConfigError(problem.reason, file=path, key=problem.key or None, line=line) from None


def parse_jsonc(text: str, path: str | None = None) -> WranglerConfig:
    """Parse wrangler.jsonc / wrangler.json text: JSON plus ``//`` and ``/* */`` comments and
    trailing commas."""
    try:
        raw = json.loads(_strip_jsonc(text))
    except json.JSONDecodeError as error:
        # _strip_jsonc keeps every character's position, so json's line:column is the file's.
        reason = BAD_JSON.format(detail=error.msg)
        raise ConfigError(reason, file=path, line=error.lineno, column=error.colno) from None
    try:
        return _build(raw, path)
    except _Problem as problem:
        raise ConfigError(problem.reason, file=path, key=problem.key or None) from None


def _toml_position(message: str) -> tuple[str, int | None, int | None]:
    """Split tomllib's "... (at line 3, column 7)" into the detail and the position."""
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if match is None:
        return message, None, None
    return message[: match.start()], int(match[1]), int(match[2])


def _strip_jsonc(text: str) -> str:
    """Blank out comments and trailing commas outside strings. Every other character keeps its
    position (comments become spaces, line breaks stay), so decoder positions map back 1:1."""
    out = list(text)
    index, comma = 0, -1
    while index < len(text):
        char = text[index]
        if char == '"':
            index, comma = _string_end(text, index), -1
        elif text.startswith("//", index):
            end = text.find("\n", index)
            index = _blank(out, index, len(text) if end < 0 else end)
        elif text.startswith("/*", index):
            index = _blank(out, index, _block_comment_end(text, index))
        else:
            if char in "]}" and comma >= 0:
                out[comma] = " "
            if not char.isspace():
                comma = index if char == "," else -1
            index += 1
    return "".join(out)


def _string_end(text: str, start: int) -> int:
    """The index after the JSON string that starts at ``start`` (or where it breaks off)."""
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == '"':
            return index + 1
        if char == "\n":  # unterminated: leave it to the JSON decoder to report
            return index
        index += 1
    return len(text)


def _block_comment_end(text: str, start: int) -> int:
    end = text.find("*/", start + 2)
    if end < 0:
        raise json.JSONDecodeError(UNTERMINATED_COMMENT, text, start)
    return end + 2


def _blank(out: list[str], start: int, end: int) -> int:
    for index in range(start, end):
        if out[index] not in "\r\n":
            out[index] = " "
    return end


# ---- finding a key's line in TOML text (best effort, for messages) -------------------------------

_HEADER = re.compile(r"\s*(\[\[?)\s*([\w\-\"'][^\[\]=]*?)\s*\]\]?\s*(#.*)?$")


class _Header(NamedTuple):
    line: int  # 0-based
    name: str
    array: bool


def _toml_line(text: str, key: str) -> int | None:
    """The 1-based line where ``key`` (a key path such as ``migrations[1].tag``) is written, when
    it is written in the usual ``[[table]]`` / ``key = value`` form; ``None`` otherwise."""
    lines = text.splitlines()
    headers = [
        _Header(number, re.sub(r"\s+", "", match[2]), match[1] == "[[")
        for number, line in enumerate(lines)
        if (match := _HEADER.match(line))
    ]
    array = re.match(r"([\w.\-]+?)\[(\d+)\]\.?(.*)$", key)
    found = _array_table_line(lines, headers, array) if array else None
    if found is None:
        found = _table_line(lines, headers, re.sub(r"\[\d+\]", "", key).split("."))
    return None if found is None else found + 1


def _array_table_line(lines: list[str], headers: list[_Header], match: re.Match[str]) -> int | None:
    tables = [header for header in headers if header.array and header.name == match[1]]
    index = int(match[2])
    if index >= len(tables):
        return None
    header = tables[index]
    field_name = re.split(r"[.\[]", match[3])[0]
    inside = _key_line(lines, headers, header, field_name) if field_name else None
    return header.line if inside is None else inside


def _table_line(lines: list[str], headers: list[_Header], parts: list[str]) -> int | None:
    for split in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:split])
        header = next((h for h in headers if not h.array and h.name == name), None)
        if header is not None:
            inside = _key_line(lines, headers, header, parts[split])
            return header.line if inside is None else inside
    found = _key_line(lines, headers, None, parts[0])
    if found is None:  # a table written only through sub-tables: [exports.Room]
        under = (h.line for h in headers if f"{h.name}.".startswith(f"{parts[0]}."))
        found = next(under, None)
    return found


def _key_line(
    lines: list[str], headers: list[_Header], header: _Header | None, name: str
) -> int | None:
    """The line of ``name = …`` inside ``header``'s section (``None``: the root section)."""
    start = 0 if header is None else header.line + 1
    end = next((h.line for h in headers if h.line >= start), len(lines))
    pattern = re.compile(rf"\s*(?:{re.escape(name)}|\"{re.escape(name)}\")\s*=")
    return next((n for n in range(start, end) if pattern.match(lines[n])), None)


# ---- module exports, snippets, names -------------------------------------------------------------


def check_module_exports(config: WranglerConfig, names: Iterable[str], path: str) -> None:
    """Raise wrangler's error when a bound class (of this Worker) is not defined in the entrypoint
    module ``path`` whose top-level names are ``names``."""
    defined = set(names)
    missing = [
        binding.class_name
        for binding in config.bindings
        if binding.script_name is None and binding.class_name not in defined
    ]
    if missing:
        classes = ", ".join(dict.fromkeys(missing))
        raise ConfigError(NOT_EXPORTED.format(classes=classes, path=path))


def binding_snippet(name: str, class_name: str) -> str:
    """The wrangler.toml entry that would add binding ``name`` for ``class_name``."""
    return "\n".join(_binding_lines(Binding(name, class_name)))


def default_binding_name(class_name: str) -> str:
    """A binding's default name: the class name in UPPER_SNAKE_CASE (``HTTPProxy`` → ``HTTP_PROXY``,
    as ``lab.bind`` and the ``%%durable_object`` magic name bindings)."""
    words = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", class_name)
    words = re.sub(r"([a-z\d])([A-Z])", r"\1_\2", words)
    return words.upper()


# ---- writing TOML --------------------------------------------------------------------------------


def to_toml(config: WranglerConfig) -> str:
    """A wrangler.toml for ``config`` that :func:`parse_toml` reads back equal (``path`` aside)."""
    lines = [
        f"{key} = {_toml_value(value)}"
        for key, value in (
            ("name", config.name),
            ("main", config.main),
            ("compatibility_date", config.compatibility_date),
            ("compatibility_flags", list(config.compatibility_flags) or None),
        )
        if value is not None
    ]
    for binding in config.bindings:
        lines += ["", *_binding_lines(binding)]
    for migration in config.migrations:
        lines += ["", *_migration_lines(migration)]
    if config.exports is not None:
        lines += ["", *_exports_lines(config.exports)]
    return "\n".join(lines).lstrip("\n") + "\n"


def _binding_lines(binding: Binding) -> list[str]:
    lines = ["[[durable_objects.bindings]]"]
    for key in BINDING_KEYS:
        value = getattr(binding, key)
        if value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    return lines


def _migration_lines(migration: Migration) -> list[str]:
    renamed = [{"from": old, "to": new} for old, new in migration.renamed_classes]
    transferred = [
        {"from": old, "from_script": script, "to": new}
        for old, script, new in migration.transferred_classes
    ]
    values: dict[str, object] = {
        "tag": migration.tag,
        "new_classes": list(migration.new_classes),
        "new_sqlite_classes": list(migration.new_sqlite_classes),
        "renamed_classes": renamed,
        "deleted_classes": list(migration.deleted_classes),
        "transferred_classes": transferred,
    }
    body = [f"{key} = {_toml_value(value)}" for key, value in values.items() if value]
    return ["[[migrations]]", *body]


def _exports_lines(exports: Mapping[str, Any]) -> list[str]:
    if not exports:
        return ["[exports]"]
    lines: list[str] = []
    for cls, entry in exports.items():
        lines += ["", f"[exports.{_toml_key(cls)}]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in entry.items()]
    return lines[1:]


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        pairs = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + pairs + " }" if pairs else "{}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_string(text: str) -> str:
    # JSON's escapes are a subset of TOML's basic-string escapes; DEL must be escaped in TOML only.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_\-]+", key) else _toml_string(key)
