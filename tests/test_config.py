"""dolab.config: reading wrangler.toml / wrangler.jsonc, migrations → backends, error texts."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from dolab.config import (
    DEFAULT_COMPATIBILITY_DATE,
    Binding,
    ConfigError,
    Migration,
    WranglerConfig,
    binding_snippet,
    check_module_exports,
    default_binding_name,
    load,
    parse_jsonc,
    parse_toml,
    to_toml,
)

WRANGLER_TOML = """\
name = "chat"
main = "src/entry.py"
compatibility_date = "2026-04-10"
compatibility_flags = ["python_workers"]

[[durable_objects.bindings]]
name = "ROOMS"
class_name = "ChatRoom"

[[durable_objects.bindings]]
name = "LIMITER"
class_name = "RateLimiter"

[[migrations]]
tag = "v1"
new_classes = ["Room"]
new_sqlite_classes = ["RateLimiter"]

[[migrations]]
tag = "v2"
renamed_classes = [{ from = "Room", to = "ChatRoom" }]
"""

WRANGLER_JSONC = """\
// wrangler.jsonc
{
  "name": "chat", /* the Worker */
  "compatibility_date": "2026-04-10",
  "durable_objects": {
    "bindings": [
      { "name": "ROOMS", "class_name": "ChatRoom" }, // trailing comma next
    ],
  },
  "migrations": [
    { "tag": "v1", "new_sqlite_classes": ["ChatRoom",], },
  ],
  "vars": { "URL": "http://example.com/*not-a-comment*/" }, // strings keep // and /*
}
"""


def error_of(text: str, path: str | None = "wrangler.toml") -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_toml(text, path)
    return caught.value


def jsonc_error_of(text: str, path: str | None = "wrangler.jsonc") -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_jsonc(text, path)
    return caught.value


# ---- reading -------------------------------------------------------------------------------------


def test_toml_reads_worker_bindings_and_migrations() -> None:
    config = parse_toml(WRANGLER_TOML)
    assert (config.name, config.main, config.compatibility_date) == (
        "chat",
        "src/entry.py",
        "2026-04-10",
    )
    assert config.compatibility_flags == ("python_workers",)
    assert config.bindings == (Binding("ROOMS", "ChatRoom"), Binding("LIMITER", "RateLimiter"))
    assert config.migrations == (
        Migration("v1", new_classes=("Room",), new_sqlite_classes=("RateLimiter",)),
        Migration("v2", renamed_classes=(("Room", "ChatRoom"),)),
    )
    assert config.exports is None


def test_backends_follow_migrations_and_a_rename_keeps_the_backend() -> None:
    config = parse_toml(WRANGLER_TOML)
    assert config.backends() == {"RateLimiter": "sqlite", "ChatRoom": "kv"}
    assert config.storage_of("ChatRoom") == "kv"
    assert config.storage_of("RateLimiter") == "sqlite"


def test_deleted_class_has_no_backend_and_can_be_recreated() -> None:
    config = parse_toml(
        '[[migrations]]\ntag = "v1"\nnew_classes = ["A", "B"]\n'
        '[[migrations]]\ntag = "v2"\ndeleted_classes = ["A"]\n'
        '[[migrations]]\ntag = "v3"\ndeleted_classes = ["B"]\nnew_sqlite_classes = ["B"]\n'
    )
    assert config.backends() == {"B": "sqlite"}


def test_transferred_class_exists_here() -> None:
    config = parse_toml(
        '[[migrations]]\ntag = "v1"\n'
        'transferred_classes = [{ from = "X", from_script = "w", to = "Y" }]\n'
    )
    assert config.migrations[0].transferred_classes == (("X", "w", "Y"),)
    assert config.backends() == {"Y": "sqlite"}


def test_cross_script_binding_needs_no_migration() -> None:
    config = parse_toml(
        '[[durable_objects.bindings]]\nname = "R"\nclass_name = "Room"\n'
        'script_name = "other"\nenvironment = "staging"\n'
    )
    assert config.bindings == (Binding("R", "Room", "other", "staging"),)
    assert config.backends() == {}


def test_jsonc_reads_with_comments_and_trailing_commas() -> None:
    config = parse_jsonc(WRANGLER_JSONC)
    assert config.name == "chat"
    assert config.bindings == (Binding("ROOMS", "ChatRoom"),)
    assert config.migrations == (Migration("v1", new_sqlite_classes=("ChatRoom",)),)
    assert config.backends() == {"ChatRoom": "sqlite"}


def test_load_chooses_the_reader_by_extension(tmp_path: Path) -> None:
    (tmp_path / "wrangler.toml").write_text(WRANGLER_TOML)
    (tmp_path / "wrangler.jsonc").write_text(WRANGLER_JSONC)
    (tmp_path / "wrangler.json").write_text('{"name": "plain"}')
    assert load(tmp_path / "wrangler.toml").path == str(tmp_path / "wrangler.toml")
    assert load(tmp_path / "wrangler.toml").backends()["ChatRoom"] == "kv"
    assert load(str(tmp_path / "wrangler.jsonc")).name == "chat"
    assert load(tmp_path / "wrangler.json").name == "plain"


def test_load_refuses_other_extensions(tmp_path: Path) -> None:
    (tmp_path / "wrangler.yaml").write_text("name: x\n")
    with pytest.raises(ConfigError, match=r"wrangler\.yaml"):
        load(tmp_path / "wrangler.yaml")


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "wrangler.toml"
    path.write_text('[[durable_objects.bindings]]\nname = "A"\n')
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}:1: durable_objects.bindings[0].class_name: ")


def test_other_wrangler_keys_are_ignored() -> None:
    config = parse_toml(
        'name = "w"\nroutes = ["a/*"]\n[vars]\nX = "1"\n[env.staging]\nname = "s"\n'
    )
    assert config == WranglerConfig(name="w")


# ---- declarative exports -------------------------------------------------------------------------


def test_exports_give_backends_default_sqlite() -> None:
    config = parse_jsonc(
        """{
          "durable_objects": {"bindings": [{"name": "A", "class_name": "A"},
                                           {"name": "B", "class_name": "B"}]},
          "exports": {
            "A": {"type": "durable-object"},
            "B": {"type": "durable-object", "storage": "legacy-kv"},
            "C": {"type": "durable-object", "storage": "kv"},
            "Old": {"type": "durable-object", "state": "renamed", "renamed_to": "A"},
            "Gone": {"type": "durable-object", "state": "deleted"},
            "Api": {"type": "worker"},
          },
        }"""
    )
    assert config.backends() == {"A": "sqlite", "B": "kv", "C": "kv"}


def test_exports_bound_class_missing_says_how_to_declare_it() -> None:
    config = parse_toml(
        '[[durable_objects.bindings]]\nname = "X"\nclass_name = "X"\n'
        '[exports.Y]\ntype = "durable-object"\n'
    )
    with pytest.raises(ConfigError, match=r"\[exports\.X\]\ntype = \"durable-object\""):
        config.backends()


def test_exports_renamed_to_must_be_live() -> None:
    error = error_of(
        '[exports.Old]\ntype = "durable-object"\nstate = "renamed"\nrenamed_to = "New"\n'
    )
    assert error.key == "exports.Old.renamed_to"
    assert error.line == 4


def test_exports_storage_must_be_known() -> None:
    error = error_of('[exports.A]\ntype = "durable-object"\nstorage = "disk"\n')
    assert "wrangler.toml:3: exports.A.storage: must be one of" in str(error)


# ---- errors: bindings ----------------------------------------------------------------------------


def test_binding_missing_class_name_names_key_and_line() -> None:
    error = error_of(
        '[[durable_objects.bindings]]\nname = "A"\nclass_name = "A"\n\n'
        '[[durable_objects.bindings]]\nname = "B"\n'
    )
    assert str(error) == (
        "wrangler.toml:5: durable_objects.bindings[1].class_name: "
        'missing required field "class_name"'
    )
    assert (error.file, error.line, error.key) == (
        "wrangler.toml",
        5,
        "durable_objects.bindings[1].class_name",
    )


def test_binding_missing_name() -> None:
    error = error_of('[[durable_objects.bindings]]\nclass_name = "A"\n')
    assert 'durable_objects.bindings[0].name: missing required field "name"' in str(error)


def test_binding_value_must_be_a_string() -> None:
    error = error_of('[[durable_objects.bindings]]\nname = "A"\nclass_name = 3\n')
    assert str(error) == (
        "wrangler.toml:3: durable_objects.bindings[0].class_name: expected a string, got integer 3"
    )


def test_binding_unknown_key_lists_the_allowed_ones() -> None:
    error = error_of('[[durable_objects.bindings]]\nname = "A"\nclass_name = "A"\nclass = "A"\n')
    assert str(error) == (
        'wrangler.toml:4: durable_objects.bindings[0].class: unknown key "class" '
        "(allowed keys: name, class_name, script_name, environment)"
    )


def test_duplicate_binding_names() -> None:
    error = error_of(
        '[[durable_objects.bindings]]\nname = "A"\nclass_name = "A"\n'
        '[[durable_objects.bindings]]\nname = "A"\nclass_name = "B"\n'
    )
    assert str(error) == (
        'wrangler.toml:5: durable_objects.bindings[1].name: duplicate binding name "A" '
        "(already used by durable_objects.bindings[0])"
    )


def test_bindings_must_be_an_array_of_tables() -> None:
    error = error_of('durable_objects = { bindings = "A" }\n')
    assert error.key == "durable_objects.bindings"
    assert "expected an array" in str(error)


def test_bound_class_without_migration_says_which_migration_to_add() -> None:
    config = parse_toml(
        '[[durable_objects.bindings]]\nname = "COUNTER"\nclass_name = "Counter"\n'
        '[[migrations]]\ntag = "v1"\nnew_sqlite_classes = ["Other"]\n',
        "wrangler.toml",
    )
    with pytest.raises(ConfigError) as caught:
        config.backends()
    message = str(caught.value)
    assert message.startswith("wrangler.toml: durable_objects.bindings[0].class_name: ")
    assert "Counter" in message
    assert '[[migrations]]\ntag = "v2"\nnew_sqlite_classes = ["Counter"]' in message
    with pytest.raises(ConfigError, match="Counter"):
        config.storage_of("Counter")


def test_bound_class_renamed_away_says_to_bind_the_new_name() -> None:
    config = parse_toml(
        '[[durable_objects.bindings]]\nname = "R"\nclass_name = "Room"\n'
        '[[migrations]]\ntag = "v1"\nnew_classes = ["Room"]\n'
        '[[migrations]]\ntag = "v2"\nrenamed_classes = [{from = "Room", to = "ChatRoom"}]\n'
    )
    with pytest.raises(ConfigError, match='renamed to ChatRoom by migration "v2"'):
        config.backends()


# ---- errors: migrations --------------------------------------------------------------------------


def test_migration_without_tag() -> None:
    error = error_of('[[migrations]]\ntag = "v1"\n\n[[migrations]]\nnew_classes = ["A"]\n')
    assert str(error) == 'wrangler.toml:4: migrations[1].tag: missing required field "tag"'


def test_migration_unknown_key() -> None:
    error = error_of('[[migrations]]\ntag = "v1"\nnew_sqlite_class = ["A"]\n')
    assert str(error) == (
        'wrangler.toml:3: migrations[0].new_sqlite_class: unknown key "new_sqlite_class" '
        "(allowed keys: tag, new_classes, new_sqlite_classes, renamed_classes, deleted_classes, "
        "transferred_classes)"
    )


def test_renamed_entry_needs_from_and_to() -> None:
    error = error_of(
        '[[migrations]]\ntag = "v1"\nnew_classes = ["A"]\n'
        '[[migrations]]\ntag = "v2"\nrenamed_classes = [{ from = "A" }]\n'
    )
    assert str(error) == (
        'wrangler.toml:6: migrations[1].renamed_classes[0].to: missing required field "to"'
    )


def test_renamed_entry_rejects_other_keys() -> None:
    error = error_of('[[migrations]]\ntag = "v1"\nrenamed_classes = [{ from = "A", into = "B" }]\n')
    assert 'unknown key "into" (allowed keys: from, to)' in str(error)
    assert error.key == "migrations[0].renamed_classes[0].into"


def test_class_lists_must_hold_strings() -> None:
    error = error_of('[[migrations]]\ntag = "v1"\nnew_classes = ["A", 2]\n')
    assert str(error) == (
        "wrangler.toml:3: migrations[0].new_classes[1]: expected a string, got integer 2"
    )


def test_duplicate_tags() -> None:
    error = error_of('[[migrations]]\ntag = "v1"\n[[migrations]]\ntag = "v1"\n')
    assert str(error) == (
        'wrangler.toml:4: migrations[1].tag: duplicate migration tag "v1" '
        "(already used by migrations[0])"
    )


def test_migrations_and_exports_are_mutually_exclusive_spec_text() -> None:
    error = error_of('[[migrations]]\ntag = "v1"\n[exports.A]\ntype = "durable-object"\n')
    assert error.reason == (
        "`migrations` and `exports` are mutually exclusive. Choose one or the other to declare "
        "your Durable Object lifecycle, but not both."
    )


def test_new_sqlite_class_on_existing_class_spec_text() -> None:
    error = error_of(
        '[[migrations]]\ntag = "v1"\nnew_classes = ["Room"]\n\n'
        '[[migrations]]\ntag = "v2"\nnew_sqlite_classes = ["Room"]\n'
    )
    assert error.reason == "Cannot apply new_sqlite_classes migration to existing class Room"
    assert error.key == "migrations[1].new_sqlite_classes"
    assert error.line == 7


def test_new_class_twice_wrangler_text() -> None:
    error = error_of('[[migrations]]\ntag = "v1"\nnew_classes = ["A", "A"]\n')
    assert error.reason == "Cannot apply new_classes migration to existing class A"


def test_renaming_or_deleting_a_missing_class_wrangler_texts() -> None:
    renamed = error_of('[[migrations]]\ntag = "v1"\nrenamed_classes = [{from = "A", to = "B"}]\n')
    assert renamed.reason == "Cannot apply renamed_classes migration to non-existent class A"
    deleted = error_of('[[migrations]]\ntag = "v1"\ndeleted_classes = ["A"]\n')
    assert deleted.reason == "Cannot apply deleted_classes migration to non-existent class A"


def test_deleting_a_bound_class_spec_text() -> None:
    error = error_of(
        '[[durable_objects.bindings]]\nname = "OLD"\nclass_name = "Old"\n\n'
        '[[migrations]]\ntag = "v1"\nnew_classes = ["Old"]\n\n'
        '[[migrations]]\ntag = "v2"\ndeleted_classes = ["Old"]\n'
    )
    assert error.reason == (
        "Cannot apply --delete-class migration to class Old without also removing the binding "
        "that references it"
    )
    assert str(error).startswith("wrangler.toml:11: migrations[1].deleted_classes: ")


def test_deleting_a_bound_class_through_exports() -> None:
    error = error_of(
        '[[durable_objects.bindings]]\nname = "OLD"\nclass_name = "Old"\n'
        '[exports.Old]\ntype = "durable-object"\nstate = "deleted"\n'
    )
    assert "Cannot apply --delete-class migration to class Old" in str(error)
    assert error.key == "exports.Old.state"


# ---- errors: compatibility date and syntax -------------------------------------------------------


@pytest.mark.parametrize("value", ['"2026-4-10"', '"2026-02-30"', '"yesterday"', "20260410"])
def test_compatibility_date_must_be_yyyy_mm_dd(value: str) -> None:
    error = error_of(f'name = "w"\ncompatibility_date = {value}\n')
    assert str(error).startswith("wrangler.toml:2: compatibility_date: must be a date written")


def test_unquoted_toml_date_is_refused_with_a_hint() -> None:
    error = error_of("compatibility_date = 2026-04-10\n")
    assert "unquoted TOML date 2026-04-10 (write it in quotes)" in str(error)


def test_toml_syntax_error_names_file_and_line() -> None:
    error = error_of('name = "w"\n\n[[durable_objects.bindings]]\nname = \n')
    assert (error.file, error.line) == ("wrangler.toml", 4)
    assert str(error).startswith("wrangler.toml:4:")
    assert "invalid TOML" in str(error)


def test_toml_syntax_error_without_file_names_the_line() -> None:
    error = error_of('name = "w"\nmain = src\n', path=None)
    assert str(error).startswith("line 2:")


def test_jsonc_syntax_error_maps_to_the_original_line_and_column() -> None:
    text = (
        '{\n  // a comment, with a comma,\n  /* and a\n     block */ "name": "w",\n'
        '  "main" "x"\n}\n'
    )
    error = jsonc_error_of(text)
    assert (error.line, error.column) == (5, 10)
    assert str(error) == "wrangler.jsonc:5:10: invalid JSON: Expecting ':' delimiter"


def test_jsonc_unterminated_comment() -> None:
    error = jsonc_error_of('{"name": "w"\n/* open\n')
    assert (error.line, error.column) == (2, 1)
    assert "Unterminated /* comment" in str(error)


def test_jsonc_semantic_error_names_key_path() -> None:
    error = jsonc_error_of('{"durable_objects": {"bindings": [{"name": "A", "class_name": 1},]}}')
    assert str(error) == (
        "wrangler.jsonc: durable_objects.bindings[0].class_name: expected a string, got integer 1"
    )


def test_jsonc_top_level_must_be_an_object() -> None:
    assert "at top level" in str(jsonc_error_of("[1, 2]"))


# ---- compatibility date --------------------------------------------------------------------------


def test_compat_at_least_compares_dates() -> None:
    config = WranglerConfig(compatibility_date="2026-02-24")
    assert config.compat_at_least("2026-02-24")
    assert config.compat_at_least("2024-04-03")
    assert not config.compat_at_least("2026-03-03")


def test_missing_compatibility_date_uses_the_default() -> None:
    assert DEFAULT_COMPATIBILITY_DATE == "2026-04-10"
    config = WranglerConfig()
    assert config.compat_at_least("2026-04-10")
    assert not config.compat_at_least("2026-10-01")


def test_compat_at_least_refuses_a_malformed_date() -> None:
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        WranglerConfig().compat_at_least("April")


# ---- module exports ------------------------------------------------------------------------------


def test_check_module_exports_wrangler_text() -> None:
    config = parse_toml(WRANGLER_TOML)
    with pytest.raises(ConfigError) as caught:
        check_module_exports(config, ["RateLimiter", "Default"], "src/entry.py")
    assert str(caught.value) == (
        "Your Worker depends on the following Durable Objects, which are not exported in your "
        "entrypoint file: ChatRoom.\nYou should export these objects from your entrypoint, "
        "src/entry.py."
    )


def test_check_module_exports_lists_every_missing_class_and_skips_other_workers() -> None:
    config = WranglerConfig(
        bindings=(Binding("A", "A"), Binding("B", "B"), Binding("C", "C", script_name="other"))
    )
    with pytest.raises(ConfigError, match=r"entrypoint file: A, B\.\n"):
        check_module_exports(config, [], "entry.py")
    check_module_exports(config, ["A", "B"], "entry.py")


# ---- snippets, names, writing --------------------------------------------------------------------


def test_binding_snippet_text_and_it_parses() -> None:
    snippet = binding_snippet("CHAT_ROOM", "ChatRoom")
    assert snippet == '[[durable_objects.bindings]]\nname = "CHAT_ROOM"\nclass_name = "ChatRoom"'
    assert tomllib.loads(snippet) == {
        "durable_objects": {"bindings": [{"name": "CHAT_ROOM", "class_name": "ChatRoom"}]}
    }
    assert parse_toml(snippet).bindings == (Binding("CHAT_ROOM", "ChatRoom"),)


@pytest.mark.parametrize(
    ("class_name", "binding"),
    [
        ("ChatRoom", "CHAT_ROOM"),
        ("Counter", "COUNTER"),
        ("HTTPProxy", "HTTP_PROXY"),
        ("RateLimiter2", "RATE_LIMITER2"),
        ("MyDOClass", "MY_DO_CLASS"),
        ("already_snake", "ALREADY_SNAKE"),
    ],
)
def test_default_binding_name(class_name: str, binding: str) -> None:
    assert default_binding_name(class_name) == binding


def test_to_toml_round_trips() -> None:
    config = parse_toml(WRANGLER_TOML)
    assert parse_toml(to_toml(config)) == config


def test_to_toml_round_trips_every_field() -> None:
    config = WranglerConfig(
        name='odd "name"\\ with ünïcode \x7f',
        main="src/entry.py",
        compatibility_date="2026-04-10",
        compatibility_flags=("python_workers", "nodejs_compat"),
        bindings=(Binding("A", "A"), Binding("B", "Remote", "other-worker", "staging")),
        migrations=(
            Migration("v1", new_classes=("A", "Old"), new_sqlite_classes=("S",)),
            Migration(
                "v2",
                renamed_classes=(("S", "S2"),),
                deleted_classes=("Old",),
                transferred_classes=(("X", "w", "Y"),),
            ),
        ),
    )
    text = to_toml(config)
    assert parse_toml(text) == config
    assert text.startswith(
        'name = "odd \\"name\\"\\\\ with ünïcode \\u007f"\nmain = "src/entry.py"\n'
    )


def test_to_toml_writes_what_export_needs() -> None:
    config = WranglerConfig(
        name="my-worker",
        main="src/entry.py",
        compatibility_date="2026-04-10",
        compatibility_flags=("python_workers",),
        bindings=(Binding("COUNTER", "Counter"),),
        migrations=(Migration("v1", new_sqlite_classes=("Counter",)),),
    )
    assert to_toml(config) == (
        'name = "my-worker"\n'
        'main = "src/entry.py"\n'
        'compatibility_date = "2026-04-10"\n'
        'compatibility_flags = ["python_workers"]\n'
        "\n"
        "[[durable_objects.bindings]]\n"
        'name = "COUNTER"\n'
        'class_name = "Counter"\n'
        "\n"
        "[[migrations]]\n"
        'tag = "v1"\n'
        'new_sqlite_classes = ["Counter"]\n'
    )


def test_to_toml_round_trips_exports() -> None:
    config = WranglerConfig(
        bindings=(Binding("ROOM", "Chat Room"),),
        exports={
            "Chat Room": {"type": "durable-object", "storage": "sqlite"},
            "Old": {"type": "durable-object", "state": "renamed", "renamed_to": "Chat Room"},
        },
    )
    again = parse_toml(to_toml(config))
    assert again == config
    assert again.backends() == {"Chat Room": "sqlite"}
    assert parse_toml(to_toml(WranglerConfig(exports={}))).exports == {}


def test_config_is_hashable_and_frozen() -> None:
    config = parse_toml(WRANGLER_TOML)
    assert hash(config) == hash(parse_toml(WRANGLER_TOML))
    with pytest.raises(AttributeError):
        config.name = "x"  # type: ignore[misc]


def test_exports_bound_class_renamed_away() -> None:
    config = parse_toml(
        '[[durable_objects.bindings]]\nname = "R"\nclass_name = "Old"\n'
        '[exports.Old]\ntype = "durable-object"\nstate = "renamed"\nrenamed_to = "New"\n'
        '[exports.New]\ntype = "durable-object"\n'
    )
    with pytest.raises(ConfigError, match=r"renamed to New by exports\.Old; bind"):
        config.backends()


def test_mutually_exclusive_error_points_at_the_exports_table() -> None:
    error = error_of('[[migrations]]\ntag = "v1"\n\n[exports.A]\ntype = "durable-object"\n')
    assert (error.key, error.line) == ("exports", 4)


def test_exports_tombstone_needs_its_target() -> None:
    error = error_of('[exports.Old]\ntype = "durable-object"\nstate = "transferred"\n')
    assert str(error) == (
        'wrangler.toml:1: exports.Old.transferred_to: missing required field "transferred_to"'
    )
