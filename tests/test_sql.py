"""dolab.sql: ctx.storage.sql, transactionSync and ctx.storage.kv (spec §5.4, B45–B52)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dolab import errors
from dolab.sql import (
    KV_LIST_INVALIDATED,
    MISSING,
    NO_STATEMENT,
    NOT_AUTHORIZED,
    ONE_MULTIPLE,
    ONE_NO_RESULTS,
    PARAMS_NOT_LAST,
    STATEMENT_TOO_LONG,
    TOO_MANY_VARIABLES,
    USE_TRANSACTION_API,
    WRONG_BINDINGS,
    SqlDatabase,
    SqlStorage,
    SyncKV,
    list_range,
    range_is_empty,
    table_names,
    validate_list_options,
)


class Storage:
    """A SqlStorage over a fresh database, recording the runtime's on_write calls."""

    def __init__(self) -> None:
        self.db = SqlDatabase()
        self.writes = 0
        self.sql = SqlStorage(self.db, self.wrote)

    def wrote(self) -> None:
        self.writes += 1


@pytest.fixture
def storage() -> Storage:
    return Storage()


@pytest.fixture
def sql(storage: Storage) -> SqlStorage:
    return storage.sql


def fails(text: str) -> Any:
    return pytest.raises(RuntimeError, match=f"^{re.escape(text)}$")


# ---- exec: statements and bindings ----------------------------------------------------------------


def test_B45_exec_returns_the_rows_of_the_last_statement(sql: SqlStorage) -> None:
    assert sql.exec("SELECT 1 AS a; SELECT 2 AS b").toArray() == [{"b": 2}]


def test_exec_runs_every_statement_in_order(sql: SqlStorage) -> None:
    sql.exec("CREATE TABLE t(a); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)")
    assert sql.exec("SELECT a FROM t ORDER BY a").toArray() == [{"a": 1}, {"a": 2}]


def test_bindings_fill_the_last_statement(sql: SqlStorage) -> None:
    assert sql.exec("SELECT 1 AS a; SELECT ? AS b", "x").toArray() == [{"b": "x"}]


def test_parameters_in_an_earlier_statement_are_refused(sql: SqlStorage) -> None:
    with fails(PARAMS_NOT_LAST):
        sql.exec("SELECT ?; SELECT 1", 1)


def test_semicolons_in_strings_and_comments_do_not_split(sql: SqlStorage) -> None:
    cursor = sql.exec("SELECT 'a;b' AS s /* ; */ -- ;\n, \"x;y\" AS [q;r]")
    assert cursor.toArray() == [{"s": "a;b", "q;r": "x;y"}]


def test_a_trigger_body_is_one_statement(sql: SqlStorage) -> None:
    sql.exec("CREATE TABLE t(a); CREATE TABLE log(a);"
             "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.a); END;"
             "INSERT INTO t VALUES (7)")
    assert sql.exec("SELECT a FROM log").toArray() == [{"a": 7}]


def test_empty_statements_before_a_statement_are_skipped(sql: SqlStorage) -> None:
    assert sql.exec("; ;SELECT 2 AS b").toArray() == [{"b": 2}]


def test_trailing_spaces_after_the_last_semicolon_are_fine(sql: SqlStorage) -> None:
    assert sql.exec("SELECT 1 AS a;  \n\t").toArray() == [{"a": 1}]


@pytest.mark.parametrize("query", ["", "   ", ";", "-- only a comment", "SELECT 1;;",
                                   "SELECT 1; -- trailing comment"])
def test_B47_code_without_a_statement_is_refused(sql: SqlStorage, query: str) -> None:
    with fails(NO_STATEMENT):
        sql.exec(query)


def test_B47_wrong_number_of_bindings_is_refused(sql: SqlStorage) -> None:
    with fails(WRONG_BINDINGS):
        sql.exec("SELECT ?")
    with fails(WRONG_BINDINGS):
        sql.exec("SELECT ?", 1, 2)


@pytest.mark.parametrize("statement", ["BEGIN TRANSACTION", "BEGIN", "SAVEPOINT foo", "COMMIT",
                                       "END TRANSACTION", "ROLLBACK", "RELEASE foo"])
def test_B47_transaction_statements_point_to_the_transaction_apis(
        sql: SqlStorage, statement: str) -> None:
    with fails(USE_TRANSACTION_API):
        sql.exec(statement)


def test_a_statement_over_100_kb_is_too_long(sql: SqlStorage) -> None:
    with fails(STATEMENT_TOO_LONG):
        sql.exec("SELECT '" + "x" * 100_000 + "'")


def test_more_than_100_bound_parameters_are_too_many(sql: SqlStorage) -> None:
    with fails(TOO_MANY_VARIABLES):
        sql.exec("SELECT " + ", ".join(["?"] * 101), *range(101))
    assert len(sql.exec("SELECT " + ", ".join(["?"] * 100), *range(100)).raw().toArray()[0]) == 100


def test_a_compound_select_has_at_most_five_terms(sql: SqlStorage) -> None:
    five = " UNION ALL ".join(f"SELECT {n}" for n in range(5))
    assert len(sql.exec(five).toArray()) == 5
    with fails("too many terms in compound SELECT: SQLITE_ERROR"):
        sql.exec(five + " UNION ALL SELECT 5")


# ---- the authorizer ---------------------------------------------------------------------------------


@pytest.mark.parametrize("statement", [
    "CREATE TABLE _cf_x(a)", "CREATE TABLE _CF_Y(a)", "PRAGMA user_version",
    "PRAGMA user_version = 3", "ATTACH ':memory:' AS other", "CREATE TEMP TABLE tmp(a)",
    "PRAGMA page_size = 8192", "PRAGMA data_version = 5", "PRAGMA defer_foreign_keys = maybe",
])
def test_B48_forbidden_statements_are_not_authorized(sql: SqlStorage, statement: str) -> None:
    with fails(NOT_AUTHORIZED):
        sql.exec(statement)


def test_B48_temporary_triggers_and_views_are_not_authorized(sql: SqlStorage) -> None:
    sql.exec("CREATE TABLE t(a)")
    with fails(NOT_AUTHORIZED):
        sql.exec("CREATE TEMP VIEW v AS SELECT a FROM t")
    with fails(NOT_AUTHORIZED):
        sql.exec("CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END")


def test_B48_indexes_and_triggers_named_cf_are_not_authorized(sql: SqlStorage) -> None:
    sql.exec("CREATE TABLE t(a)")
    with fails(NOT_AUTHORIZED):
        sql.exec("CREATE INDEX _cf_i ON t(a)")
    with fails(NOT_AUTHORIZED):
        sql.exec("CREATE TRIGGER _cf_tr AFTER INSERT ON t BEGIN SELECT 1; END")


def test_B48_foreign_keys_are_on(sql: SqlStorage) -> None:
    assert sql.exec("PRAGMA foreign_keys").one() == {"foreign_keys": 1}
    sql.exec("CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(p REFERENCES p(id))")
    with fails("FOREIGN KEY constraint failed: SQLITE_CONSTRAINT"):
        sql.exec("INSERT INTO c VALUES (1)")


def test_allowed_pragmas_work(sql: SqlStorage) -> None:
    sql.exec("CREATE TABLE t(a TEXT)")
    assert [row["name"] for row in sql.exec("PRAGMA table_info(t)")] == ["a"]
    assert sql.exec("PRAGMA quick_check").toArray() == [{"quick_check": "ok"}]
    sql.exec("PRAGMA defer_foreign_keys = 'yes'")
    assert sql.exec("PRAGMA defer_foreign_keys").one() == {"defer_foreign_keys": 1}


def test_sqlite_build_functions_are_not_authorized(sql: SqlStorage) -> None:
    with fails("not authorized to use function: sqlite_version: SQLITE_ERROR"):
        sql.exec("SELECT sqlite_version()")
    assert sql.exec("SELECT abs(-3) AS x").one() == {"x": 3}


def test_full_text_search_is_allowed(sql: SqlStorage) -> None:
    sql.exec("CREATE VIRTUAL TABLE docs USING fts5(body)")
    sql.exec("INSERT INTO docs VALUES ('hello world'), ('goodbye')")
    assert sql.exec("SELECT body FROM docs WHERE docs MATCH 'hello'").toArray() == [
        {"body": "hello world"}]


# ---- error texts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("query, message", [
    ("SELECT ;", 'near ";": syntax error at offset 7: SQLITE_ERROR'),
    ("SELECT -;", 'near ";": syntax error at offset 8: SQLITE_ERROR'),
    ("SELECT * FROM t WHERE a = = 1", 'near "=": syntax error at offset 26: SQLITE_ERROR'),
    ("INSER INTO t VALUES (1)", 'near "INSER": syntax error at offset 0: SQLITE_ERROR'),
    ("SELECT 'é' AS e, FROM t", 'near "FROM": syntax error at offset 18: SQLITE_ERROR'),
    ("SELECT 1;\n  SELECT * bunk", 'near "bunk": syntax error at offset 9: SQLITE_ERROR'),
    ("SELECT 'abc", "unrecognized token: \"'abc\" at offset 7: SQLITE_ERROR"),
])
def test_syntax_errors_give_the_byte_offset_in_their_statement(
        sql: SqlStorage, query: str, message: str) -> None:
    with fails(message):
        sql.exec(query)


def test_constraint_failures_name_the_constraint(sql: SqlStorage) -> None:
    sql.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v NOT NULL)")
    sql.exec("INSERT INTO t VALUES (1, 'a')")
    with fails("UNIQUE constraint failed: t.id: SQLITE_CONSTRAINT"):
        sql.exec("INSERT INTO t VALUES (1, 'b')")
    with fails("NOT NULL constraint failed: t.v: SQLITE_CONSTRAINT"):
        sql.exec("INSERT INTO t VALUES (2, NULL)")


def test_datatype_mismatch(sql: SqlStorage) -> None:
    sql.exec("CREATE TABLE t(name TEXT)")
    with fails("datatype mismatch: SQLITE_MISMATCH"):
        sql.exec("INSERT INTO t(rowid, name) VALUES ('yeah', 'nah')")


def test_other_errors_carry_their_result_code(sql: SqlStorage) -> None:
    with fails("no such table: nope: SQLITE_ERROR"):
        sql.exec("SELECT * FROM nope")


def test_a_failed_statement_keeps_the_earlier_statements_writes(sql: SqlStorage) -> None:
    sql.exec("CREATE TABLE t(a)")
    with fails("no such table: nope: SQLITE_ERROR"):
        sql.exec("INSERT INTO t VALUES (1); SELECT * FROM nope")
    assert sql.exec("SELECT a FROM t").toArray() == [{"a": 1}]


# ---- the cursor ---------------------------------------------------------------------------------------


def test_B46_one_returns_the_only_row(sql: SqlStorage) -> None:
    assert sql.exec("SELECT 123 AS foo, 'abc' AS bar").one() == {"foo": 123, "bar": "abc"}


def test_B46_one_with_no_rows(sql: SqlStorage) -> None:
    sql.exec("CREATE TABLE empty(x)")
    with fails(ONE_NO_RESULTS):
        sql.exec("SELECT * FROM empty").one()


def test_B46_one_with_several_rows(sql: SqlStorage) -> None:
    with fails(ONE_MULTIPLE):
        sql.exec("SELECT 1 AS v UNION ALL SELECT 2").one()


def test_B49_column_names_and_raw_rows(sql: SqlStorage) -> None:
    cursor = sql.exec("SELECT 1 AS a, 2 AS b")
    assert cursor.columnNames == ["a", "b"]
    assert cursor.raw().toArray() == [[1, 2]]
    assert cursor.columnNames == ["a", "b"]


def test_B49_rows_written_and_rows_read(sql: SqlStorage) -> None:
    sql.exec("CREATE TABLE t(a)")
    assert sql.exec("INSERT INTO t VALUES (1), (2), (3)").rowsWritten == 3
    cursor = sql.exec("SELECT * FROM t")
    cursor.toArray()
    assert (cursor.rowsRead, cursor.rowsWritten) == (3, 0)


def test_B49_blobs_read_back_as_bytes(sql: SqlStorage) -> None:
    sql.exec("CREATE TABLE t(b BLOB)")
    sql.exec("INSERT INTO t VALUES (?), (?), (?)", b"\x00\xff", bytearray(b"ab"), memoryview(b"cd"))
    assert sql.exec("SELECT b FROM t").raw().toArray() == [[b"\x00\xff"], [b"ab"], [b"cd"]]
    assert sql.exec("SELECT x'ff' AS blob").one() == {"blob": b"\xff"}


def test_B49_a_bound_boolean_is_the_text_true(sql: SqlStorage) -> None:
    row = sql.exec("SELECT ? AS t, typeof(?) AS type, ? AS f", True, True, False).one()
    assert row == {"t": "true", "type": "text", "f": "false"}


def test_rows_read_grows_one_row_ahead_as_the_cursor_is_read(sql: SqlStorage) -> None:
    sql.exec("CREATE TABLE t(a); INSERT INTO t VALUES (1), (2), (3)")
    cursor = sql.exec("SELECT a FROM t")
    seen = [cursor.rowsRead]
    for _ in cursor:
        seen.append(cursor.rowsRead)
    assert seen == [1, 2, 3, 3]


def test_raw_shares_its_position_with_the_row_iterator(sql: SqlStorage) -> None:
    cursor = sql.exec("SELECT 1 AS v UNION ALL SELECT 2 UNION ALL SELECT 3")
    assert next(cursor) == {"v": 1}
    assert next(cursor.raw()) == [2]
    assert cursor.toArray() == [{"v": 3}]


def test_next_steps_like_a_javascript_iterator(sql: SqlStorage) -> None:
    cursor = sql.exec("SELECT 1 AS col UNION ALL SELECT 'foo'")
    assert [cursor.next(), cursor.next(), cursor.next()] == [
        {"done": False, "value": {"col": 1}}, {"done": False, "value": {"col": "foo"}},
        {"done": True}]


def test_a_repeated_column_name_keeps_its_last_value(sql: SqlStorage) -> None:
    cursor = sql.exec("SELECT 1 AS c, 2 AS c")
    assert cursor.columnNames == ["c", "c"]
    assert cursor.raw().toArray() == [[1, 2]]
    assert sql.exec("SELECT 1 AS c, 2 AS c").one() == {"c": 2}


def test_rows_read_as_attributes_and_convert_to_plain_dicts(sql: SqlStorage) -> None:
    row = sql.exec("SELECT 1 AS count").one()
    assert row.count == 1
    assert type(row.to_py()) is dict
    with pytest.raises(AttributeError):
        _ = row.missing


def test_a_statement_without_columns_has_no_column_names(sql: SqlStorage) -> None:
    cursor = sql.exec("CREATE TABLE t(a)")
    assert (cursor.columnNames, cursor.toArray()) == ([], [])


def test_insert_returning_rows_are_read_before_the_turn_commits(storage: Storage) -> None:
    storage.sql.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
    cursor = storage.sql.exec("INSERT INTO t(v) VALUES ('a'), ('b') RETURNING id")
    storage.db.commit_turn()  # would fail with a write still in progress
    assert cursor.toArray() == [{"id": 1}, {"id": 2}]
    assert cursor.rowsWritten == 2


# ---- values --------------------------------------------------------------------------------------------


def test_integers_beyond_2_53_round_like_javascript_numbers(sql: SqlStorage) -> None:
    row = sql.exec("SELECT 9007199254740993 AS big, -9007199254740993 AS low, "
                   "2305843009213693952 AS huge").one()
    assert row == {"big": 9007199254740992, "low": -9007199254740992, "huge": 2.305843009213694e18}
    assert type(row["big"]) is int and type(row["huge"]) is float


def test_an_integral_real_reads_back_as_int(sql: SqlStorage) -> None:
    row = sql.exec("SELECT 2.0 AS two, 2.5 AS half, -0.0 AS zero").one()
    assert row == {"two": 2, "half": 2.5, "zero": 0}
    assert type(row["two"]) is int and type(row["zero"]) is int


def test_numbers_bind_as_javascript_numbers(sql: SqlStorage) -> None:
    assert sql.exec("SELECT typeof(?) AS type, ? / 2 AS half", 5, 5).one() == {
        "type": "real", "half": 2.5}
    sql.exec("CREATE TABLE t(id INTEGER)")
    sql.exec("INSERT INTO t VALUES (?)", 5)
    assert sql.exec("SELECT typeof(id) AS type FROM t").one() == {"type": "integer"}


def test_null_and_text_bindings(sql: SqlStorage) -> None:
    assert sql.exec("SELECT ? AS n, ? AS s", None, "é").one() == {"n": None, "s": "é"}


def test_unsupported_bindings_are_type_errors(sql: SqlStorage) -> None:
    with pytest.raises(TypeError, match="not dict"):
        sql.exec("SELECT ?", {"a": 1})
    with pytest.raises(TypeError, match=r"beyond ±2\*\*53"):
        sql.exec("SELECT ?", 2**53 + 1)


# ---- turns, dirtiness, images ------------------------------------------------------------------------


def test_a_select_does_not_dirty_the_database(storage: Storage) -> None:
    storage.sql.exec("SELECT 1").toArray()
    assert (storage.db.dirty, storage.writes) == (False, 0)


def test_create_and_insert_dirty_the_database(storage: Storage) -> None:
    storage.sql.exec("CREATE TABLE t(a)")
    assert (storage.db.dirty, storage.writes) == (True, 1)
    storage.db.commit_turn()
    storage.db.clear_dirty()
    storage.sql.exec("INSERT INTO t VALUES (1)")
    assert (storage.db.dirty, storage.writes) == (True, 2)


def test_on_write_is_called_for_each_writing_statement(storage: Storage) -> None:
    storage.sql.exec("CREATE TABLE t(a); SELECT 1; INSERT INTO t VALUES (1)")
    assert storage.writes == 2


def test_rolling_back_a_turn_discards_its_writes(storage: Storage) -> None:
    storage.sql.exec("CREATE TABLE t(a); INSERT INTO t VALUES (1)")
    storage.db.commit_turn()
    storage.sql.exec("INSERT INTO t VALUES (2); CREATE TABLE u(b)")
    storage.db.rollback_turn()
    assert storage.sql.exec("SELECT a FROM t").toArray() == [{"a": 1}]
    assert storage.db.table_names() == ["t"]


def test_rolling_back_a_turn_restores_the_dirty_flag(storage: Storage) -> None:
    storage.sql.exec("SELECT 1")
    storage.db.commit_turn()
    storage.sql.exec("CREATE TABLE t(a)")
    storage.db.rollback_turn()
    assert storage.db.dirty is False


def test_an_image_restores_tables_and_rows(storage: Storage) -> None:
    storage.sql.exec("CREATE TABLE t(a, b BLOB); INSERT INTO t VALUES ('x', x'00ff')")
    storage.db.commit_turn()
    copy = SqlDatabase()
    copy.restore(storage.db.image())
    rows = SqlStorage(copy, lambda: None).exec("SELECT * FROM t").toArray()
    assert (copy.table_names(), rows, copy.dirty) == (["t"], [{"a": "x", "b": b"\x00\xff"}], False)


def test_a_new_database_has_an_empty_image(storage: Storage) -> None:
    assert storage.db.image() == b""
    storage.db.restore(b"")
    assert (storage.db.table_names(), storage.db.database_size()) == ([], 0)


def test_the_image_is_taken_after_the_turn_commits(storage: Storage) -> None:
    storage.sql.exec("CREATE TABLE t(a)")
    with pytest.raises(RuntimeError, match="call commit_turn"):
        storage.db.image()


def test_restore_none_empties_the_database(storage: Storage) -> None:
    storage.sql.exec("CREATE TABLE t(a)")
    storage.db.restore(None)
    assert (storage.db.table_names(), storage.db.dirty) == ([], False)


def test_table_names_of_an_image(storage: Storage) -> None:
    storage.sql.exec("CREATE TABLE b(x); CREATE TABLE a(y); CREATE INDEX i ON a(y)")
    storage.db.commit_turn()
    assert table_names(storage.db.image()) == ["a", "b"]


def test_deferred_constraints_violated_at_commit_reset_the_turn(storage: Storage) -> None:
    storage.sql.exec("CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(p REFERENCES p(id))")
    storage.db.commit_turn()
    storage.sql.exec("PRAGMA defer_foreign_keys = ON; INSERT INTO c VALUES (1)")
    with fails(
        "Durable Object was reset and rolled back to its last known good state because the "
        "application left the database in a state where constraints were violated: "
        "FOREIGN KEY constraint failed: SQLITE_CONSTRAINT"
    ):
        storage.db.commit_turn()
    assert storage.sql.exec("SELECT count(*) AS n FROM c").one() == {"n": 0}


def test_database_size_counts_the_pages_in_use(storage: Storage) -> None:
    storage.sql.exec("CREATE TABLE t(a)")
    size = storage.sql.databaseSize
    storage.sql.exec("CREATE TABLE u(a)")
    assert size > 0 and storage.sql.databaseSize == size + 4096


def test_clear_all_drops_every_table_in_the_turn(storage: Storage) -> None:
    storage.sql.exec("CREATE TABLE p(id INTEGER PRIMARY KEY AUTOINCREMENT);"
                     "CREATE TABLE c(p REFERENCES p(id)); INSERT INTO p DEFAULT VALUES;"
                     "INSERT INTO c VALUES (1); CREATE VIEW v AS SELECT * FROM p;"
                     "CREATE VIRTUAL TABLE docs USING fts5(body)")
    storage.db.commit_turn()
    storage.db.clear_dirty()
    storage.db.clear_all()
    storage.db.commit_turn()
    assert (storage.db.table_names(), storage.db.dirty) == ([], True)
    storage.sql.exec("CREATE TABLE p(id INTEGER PRIMARY KEY AUTOINCREMENT)")
    assert storage.sql.exec("INSERT INTO p DEFAULT VALUES RETURNING id").one() == {"id": 1}


# ---- transactionSync -----------------------------------------------------------------------------------


def test_B50_transaction_sync_commits_and_returns_the_value(storage: Storage) -> None:
    storage.sql.exec("CREATE TABLE t(a)")
    result = storage.db.transaction_sync(lambda: storage.sql.exec("INSERT INTO t VALUES (1)") and 7)
    assert result == 7
    assert storage.sql.exec("SELECT a FROM t").toArray() == [{"a": 1}]


def test_B50_transaction_sync_rolls_back_and_reraises(storage: Storage) -> None:
    storage.sql.exec("CREATE TABLE t(a)")

    def fn() -> None:
        storage.sql.exec("INSERT INTO t VALUES (1); CREATE TABLE u(b)")
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        storage.db.transaction_sync(fn)
    assert storage.sql.exec("SELECT count(*) AS n FROM t").one() == {"n": 0}
    assert storage.db.table_names() == ["t"]


def test_B50_transaction_sync_nests(storage: Storage) -> None:
    sql, db = storage.sql, storage.db
    sql.exec("CREATE TABLE t(i); INSERT INTO t VALUES (1)")

    def inner() -> None:
        sql.exec("UPDATE t SET i = 3")
        raise RuntimeError("foo")

    def outer() -> None:
        sql.exec("UPDATE t SET i = 2")
        with pytest.raises(RuntimeError, match="foo"):
            db.transaction_sync(inner)
        assert sql.exec("SELECT i FROM t").one() == {"i": 2}

    db.transaction_sync(outer)
    assert sql.exec("SELECT i FROM t").one() == {"i": 2}
    db.commit_turn()  # no savepoint was left open


def test_B50_transaction_sync_refuses_an_async_callback(storage: Storage) -> None:
    async def work() -> None:
        storage.sql.exec("CREATE TABLE t(a)")

    with pytest.raises(TypeError, match="synchronous callback, but work is async"):
        _ = storage.db.transaction_sync(work)
    with pytest.raises(TypeError, match="synchronous callback"):
        _ = storage.db.transaction_sync(lambda: work())
    assert storage.db.table_names() == []


def test_committing_inside_transaction_sync_is_refused(storage: Storage) -> None:
    with pytest.raises(RuntimeError, match="expected no open transactionSync"):
        storage.db.transaction_sync(storage.db.commit_turn)


# ---- KV-backed objects ---------------------------------------------------------------------------------


def test_B52_sql_on_a_kv_backed_object_fails_at_exec_and_database_size() -> None:
    sql = SqlStorage(None, lambda: None, errors.NOT_SQLITE)
    with fails(errors.NOT_SQLITE):
        sql.exec("SELECT 1")
    with fails(errors.NOT_SQLITE):
        _ = sql.databaseSize


def test_sync_kv_on_a_kv_backed_object_fails_at_every_method() -> None:
    kv = SyncKV(None, errors.SYNC_KV_NOT_SQLITE)
    calls: list[Callable[[], object]] = [
        lambda: kv.get("a"), lambda: kv.put("a", 1), lambda: kv.delete("a"), kv.list]
    for call in calls:
        with fails(errors.SYNC_KV_NOT_SQLITE):
            call()


# ---- ctx.storage.kv --------------------------------------------------------------------------------------


class DictKV:
    """A KVBackend over a dict."""

    def __init__(self, missing: object = MISSING) -> None:
        self.data: dict[str, Any] = {}
        self.missing = missing

    def get(self, key: str) -> Any:
        return self.data.get(key, self.missing)

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value

    def delete(self, key: str) -> bool:
        return self.data.pop(key, self.missing) is not self.missing

    def items(self, start: str | None, end: str | None, reverse: bool) -> Iterator[tuple[str, Any]]:
        keys = sorted(k for k in self.data
                      if (start is None or k >= start) and (end is None or k < end))
        for key in reversed(keys) if reverse else keys:
            yield key, self.data[key]


KEYS = ["B", "a", "a\0", "ab", "abc", "b", "ä", "\uffff", "😀"]


@pytest.fixture
def kv() -> SyncKV:
    backend = DictKV()
    for number, key in enumerate(KEYS):
        backend.put(key, number)
    return SyncKV(backend)


def keys(pairs: Iterator[tuple[str, Any]]) -> list[str]:
    return [key for key, _ in pairs]


def test_B51_sync_kv_get_put_delete() -> None:
    kv = SyncKV(DictKV())
    kv.put("k", {"v": 1})
    kv.put("n", None)
    assert (kv.get("k"), kv.get("n"), kv.get("missing")) == ({"v": 1}, None, None)
    assert (kv.delete("k"), kv.delete("k")) == (True, False)


def test_sync_kv_reads_any_bare_sentinel_as_absent() -> None:
    assert SyncKV(DictKV(missing=object())).get("nothing") is None


def test_B51_sync_kv_lists_in_code_point_order(kv: SyncKV) -> None:
    assert list(kv.list()) == [(key, number) for number, key in enumerate(KEYS)]


@pytest.mark.parametrize("options, expected", [
    ({"startAfter": "a", "limit": 3}, ["a\0", "ab", "abc"]),
    ({"prefix": "a"}, ["a", "a\0", "ab", "abc"]),
    ({"start": "a", "end": "b"}, ["a", "a\0", "ab", "abc"]),
    ({"reverse": True, "limit": 2}, ["😀", "\uffff"]),
    ({"prefix": "a", "start": "ab"}, ["ab", "abc"]),
    ({"start": "b", "end": "a"}, []),
])
def test_sync_kv_list_options(kv: SyncKV, options: dict[str, Any], expected: list[str]) -> None:
    assert keys(kv.list(**options)) == expected


def test_sync_kv_list_validates_its_options(kv: SyncKV) -> None:
    with pytest.raises(TypeError, match=f"^{re.escape(errors.LIST_START_AND_AFTER)}$"):
        kv.list(start="a", startAfter="b")
    with pytest.raises(TypeError, match=f"^{re.escape(errors.LIST_LIMIT)}$"):
        kv.list(limit=0)


def test_only_one_sync_kv_list_iterator_is_live(kv: SyncKV) -> None:
    first = kv.list()
    assert next(first) == ("B", 0)
    second = kv.list(prefix="a")
    with fails(KV_LIST_INVALIDATED):
        next(first)
    assert keys(second) == ["a", "a\0", "ab", "abc"]


def test_a_finished_sync_kv_list_iterator_stays_finished(kv: SyncKV) -> None:
    first = kv.list(limit=1)
    assert keys(first) == ["B"]
    kv.list()
    assert list(first) == []


# ---- list_range -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arguments, expected", [
    ((None, None, None, None), (None, None)),
    (("a", None, "c", None), ("a", "c")),
    ((None, "a", None, None), ("a\0", None)),
    ((None, None, None, "ab"), ("ab", "ac")),
    ((None, None, None, ""), (None, None)),
    (("a", None, None, "ab"), ("ab", "ac")),
    (("abc", None, None, "ab"), ("abc", "ac")),
    ((None, "ab", "abz", "ab"), ("ab\0", "abz")),
    ((None, None, "b", "ab"), ("ab", "ac")),
    ((None, None, None, "a\U0010ffff"), ("a\U0010ffff", "b")),
    ((None, None, None, "\U0010ffff"), ("\U0010ffff", None)),
    ((None, None, None, "\ud7ff"), ("\ud7ff", "\ue000")),
])
def test_list_range(arguments: tuple[Any, ...], expected: tuple[Any, Any]) -> None:
    assert list_range(*arguments) == expected


@pytest.mark.parametrize("arguments", [
    ("b", None, "a", None),
    ("b", None, "b", None),
    ("b", None, None, "a"),
    (None, None, "a", "ab"),
    (None, "az", None, "aa"),
])
def test_list_range_can_be_empty(arguments: tuple[Any, ...]) -> None:
    assert range_is_empty(*list_range(*arguments))


def test_list_range_validates_the_options() -> None:
    with pytest.raises(TypeError, match=re.escape(errors.LIST_START_AND_AFTER)):
        list_range("a", "b", None, None)
    with pytest.raises(TypeError, match=re.escape(errors.LIST_LIMIT)):
        list_range(None, None, None, None, -1)
    validate_list_options(start="a", limit=1)


def test_a_cursor_of_a_replaced_database_fails_with_a_runtime_error(storage: Storage) -> None:
    storage.sql.exec("CREATE TABLE t(a); INSERT INTO t VALUES (1), (2), (3)")
    cursor = storage.sql.exec("SELECT a FROM t")
    storage.db.restore(None)
    with fails("Cannot operate on a closed database."):
        cursor.toArray()
    assert cursor.toArray() == []
