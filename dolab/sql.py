"""The SQLite-only storage APIs: ``ctx.storage.sql``, ``transactionSync`` and ``ctx.storage.kv``
(spec §5.4).

Three layers, told apart by who calls them::

    SqlDatabase          the runtime's handle on one object's in-memory sqlite3 database: turns
                         (implicit transactions), transactionSync savepoints, the image stored in
                         ZODB, the authorizer that enforces Cloudflare's rules, error translation
    SqlStorage           ``ctx.storage.sql`` as user code sees it: ``exec(query, *bindings)``,
     └── SqlStorageCursor  ``databaseSize``; JavaScript's value conversions in both directions
    SyncKV               ``ctx.storage.kv`` over a ``KVBackend`` the runtime provides;
                         ``list_range`` is shared with the asynchronous ``storage.list()``

Errors are ``RuntimeError`` (JavaScript ``Error``) with Cloudflare's texts. An SQLite error reads
as workerd writes it: SQLite's message, `` at offset N`` when the error points at a token, then the
primary result code (``UNIQUE constraint failed: t.id: SQLITE_CONSTRAINT``).

Fidelity notes (each belongs in the README's "Differences from Cloudflare"):

- ``rowsRead`` counts the rows the cursor has fetched (always one ahead of what it returned, as
  workerd's cursor is); workerd counts every row SQLite visits, so aggregates and scans read more
  there. ``rowsWritten`` counts SQLite's changes (``total_changes``), which include trigger writes
  but not index entries or schema rows.
- The syntax-error offset is found by re-parsing prefixes of the statement (Python's sqlite3 does
  not expose ``sqlite3_error_offset``); it is exact for ``near "…": syntax error`` and
  ``unrecognized token`` errors. Other errors that workerd locates (``no such column``…) carry no
  offset here.
- ``databaseSize`` is 0 for a new object (workerd's starts at 40960: its hidden ``_cf_`` tables);
  ``_cf_KV`` and ``_cf_METADATA`` do not exist, because dolab keeps KV data in ZODB.
- Every user statement runs inside the object's implicit transaction (a "turn"), so
  ``PRAGMA foreign_keys = OFF`` is a no-op, as inside any SQLite transaction.
- The authorizer follows workerd's rules; where workerd allowlists SQL functions, dolab refuses
  only the ``sqlite_*()`` ones that reveal build details. As in workerd, ``_cf_`` is checked on the
  names of tables, indexes, triggers and views, not of columns.
- Rows are dicts whose fields also read as attributes (``row.name``, ``row.to_py()``); on
  Cloudflare they are JavaScript objects, where ``row["name"]`` does not work.
"""

from __future__ import annotations

import inspect
import re
import sqlite3
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from . import errors

T = TypeVar("T")

# ---- texts (Cloudflare's verbatim, spec §5.4 and workerd; dolab's own marked) ----------------------

NO_STATEMENT = "SQL code did not contain a statement."
WRONG_BINDINGS = "Wrong number of parameter bindings for SQL query."
PARAMS_NOT_LAST = (
    "When executing multiple SQL statements in a single call, only the last statement can have "
    "parameters."
)
ONE_NO_RESULTS = "Expected exactly one result from SQL query, but got no results."
ONE_MULTIPLE = "Expected exactly one result from SQL query, but got multiple results."
USE_TRANSACTION_API = (
    "To execute a transaction, please use the state.storage.transaction() or "
    "state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT "
    "statements. The JavaScript API is safer because it will automatically roll back on "
    "exceptions, and because it interacts correctly with Durable Objects' automatic atomic write "
    "coalescing."
)
NOT_AUTHORIZED = "not authorized: SQLITE_AUTH"
STATEMENT_TOO_LONG = "statement too long: SQLITE_TOOBIG"
TOO_MANY_VARIABLES = "too many SQL variables: SQLITE_ERROR"
CONSTRAINTS_AT_COMMIT = (
    "Durable Object was reset and rolled back to its last known good state because the "
    "application left the database in a state where constraints were violated: {message}"
)
KV_LIST_INVALIDATED = (
    "kv.list() iterator was invalidated because a new call to kv.list() was started. Only one "
    "kv.list() iterator can exist at a time."
)
# dolab's own (Cloudflare rejects these through JavaScript's type conversions):
BINDING_TYPE = "SQL bindings must be None, bool, int, float, str or bytes, not {type}."
BINDING_BIGINT = (
    "SQL binds numbers as JavaScript numbers; the integer {value} is beyond ±2**53 "
    "(bind it as a string)."
)
SYNC_CALLBACK_ASYNC = (
    "transactionSync() takes a synchronous callback, but {name} is async; use "
    "storage.transaction() for a closure that awaits."
)
SAVEPOINT_OPEN = "{op}() expected no open transactionSync() savepoint, got {depth}."
TURN_OPEN = "image() expected a committed turn, got an open one: call commit_turn() first."

# ---- limits (spec §12, production; decimal units as workerd's own limits) --------------------------

SQL_LENGTH_LIMIT = 100_000
JS_SAFE_INTEGER = 2**53
_LIMITS = {
    sqlite3.SQLITE_LIMIT_SQL_LENGTH: SQL_LENGTH_LIMIT,
    sqlite3.SQLITE_LIMIT_LENGTH: 2_000_000,
    sqlite3.SQLITE_LIMIT_COLUMN: 100,
    sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER: 100,
    sqlite3.SQLITE_LIMIT_FUNCTION_ARG: 32,
    sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH: 50,
    sqlite3.SQLITE_LIMIT_COMPOUND_SELECT: 5,
}

# ---- reading SQL text ------------------------------------------------------------------------------

_SPACE = " \t\n\r\f\v"
_QUOTES = {"'": "'", '"': '"', "`": "`", "[": "]"}


def _skip_to(sql: str, closer: str, start: int) -> int:
    """The index just past ``closer`` at or after ``start`` (the end of ``sql`` if it never comes)."""
    found = sql.find(closer, start)
    return len(sql) if found < 0 else found + len(closer)


def _code_positions(sql: str, start: int = 0) -> Iterator[int]:
    """Indices of ``sql[start:]`` that are SQL code: not in a comment, nor inside a string or a
    quoted name (a quoted token yields only its opening quote)."""
    i, end = start, len(sql)
    while i < end:
        if sql.startswith("--", i):
            i = _skip_to(sql, "\n", i + 2)
        elif sql.startswith("/*", i):
            i = _skip_to(sql, "*/", i + 2)
        else:
            yield i
            closer = _QUOTES.get(sql[i])
            i = _skip_to(sql, closer, i + 1) if closer else i + 1


def _statement_end(sql: str, start: int) -> int | None:
    """Where the first statement of ``sql[start:]`` ends, as ``sqlite3_prepare``'s tail: just past
    its ``;`` (or the end of ``sql``). None when there is no statement: only spaces, comments, ``;``.
    ``complete_statement`` keeps a trigger's ``BEGIN … END`` body, ``;``s and all, in one piece."""
    has_code = False
    for i in _code_positions(sql, start):
        char = sql[i]
        if char == ";":
            if has_code and sqlite3.complete_statement(sql[start : i + 1]):
                return i + 1
        elif char not in _SPACE:
            has_code = True
    return len(sql) if has_code else None


def _skip_space(sql: str, start: int) -> int:
    while start < len(sql) and sql[start] in _SPACE:
        start += 1
    return start


def split_statements(query: str) -> Iterator[tuple[str, bool]]:
    """Each statement of ``query`` with whether it is the last, as workerd's ``exec`` walks them.
    A statement's text starts where SQLite is handed the rest of the query (after the spaces that
    follow the previous ``;``), so error offsets count from there. Raises NO_STATEMENT lazily, when
    what remains holds no statement (``""``, ``";"``, or a trailing comment)."""
    start = 0
    while True:
        end = _statement_end(query, start)
        if end is None:
            raise RuntimeError(NO_STATEMENT)
        after = _skip_space(query, end)
        yield query[start:end], after == len(query)
        if after == len(query):
            return
        start = after


# ---- errors ----------------------------------------------------------------------------------------

_TOKEN_ERROR = re.compile(r'near "(.*)": syntax error\Z|unrecognized token: "(.*)"\Z', re.DOTALL)


def _is_word(char: str) -> bool:
    return char.isalnum() or char in "_$" or ord(char) > 127


def _token_starts(sql: str, token: str) -> list[int]:
    """Where ``token`` could start a token of ``sql``: in code, not inside a longer word."""
    spots = []
    for i in _code_positions(sql):
        stop = i + len(token)
        if not sql.startswith(token, i):
            continue
        glued_before = i > 0 and _is_word(sql[i - 1]) and _is_word(token[0])
        glued_after = stop < len(sql) and _is_word(sql[stop]) and _is_word(token[-1])
        if not (glued_before or glued_after):
            spots.append(i)
    return spots


def _parses(prefix: str) -> bool:
    """Whether SQLite's parser reads ``prefix`` without a syntax error (an incomplete statement,
    or one that fails later for other reasons, parses). Nothing of it runs: it is compiled on a
    throwaway database whose authorizer makes every action a no-op (so ATTACH opens no file), in a
    transaction (so VACUUM INTO, which no authorizer sees, fails), and interrupted at once."""
    probe = sqlite3.connect(":memory:", isolation_level=None)
    probe.execute("BEGIN")
    probe.set_authorizer(lambda *_: sqlite3.SQLITE_IGNORE)
    probe.set_progress_handler(lambda: 1, 1)
    try:
        probe.execute(prefix)
    except sqlite3.Error as error:
        return _TOKEN_ERROR.match(str(error)) is None
    finally:
        probe.close()
    return True


def _error_offset(sql: str, message: str) -> int | None:
    """The byte offset of the token a syntax error names, as ``sqlite3_error_offset`` gives it.
    The parser accepts every prefix of ``sql`` that ends before the failing token and none that
    includes it, so a binary search over the token's occurrences finds the one it failed at."""
    match = _TOKEN_ERROR.match(message)
    if match is None:
        return None
    token = match.group(1) if match.group(1) is not None else match.group(2)
    spots = _token_starts(sql, token) if token else []
    low, high, found = 0, len(spots) - 1, None
    while low <= high:
        middle = (low + high) // 2
        if _parses(sql[: spots[middle]]):
            found, low = spots[middle], middle + 1
        else:
            high = middle - 1
    return None if found is None else len(sql[:found].encode("utf-8", "surrogatepass"))


def _primary_code(name: str) -> str:
    """``SQLITE_CONSTRAINT_UNIQUE`` → ``SQLITE_CONSTRAINT`` (workerd names the primary code)."""
    return "_".join(name.split("_", 2)[:2])


def _translate(error: sqlite3.Error, sql: str, last: bool = True) -> RuntimeError:
    """An sqlite3 error as workerd reports it (see the module docstring)."""
    message = str(error)
    if message.startswith("Incorrect number of bindings"):
        return RuntimeError(WRONG_BINDINGS if last else PARAMS_NOT_LAST)
    if message == "query string is too large":
        return RuntimeError(STATEMENT_TOO_LONG)
    name = getattr(error, "sqlite_errorname", None)
    if not name:
        return RuntimeError(message)
    offset = _error_offset(sql, message)
    where = "" if offset is None else f" at offset {offset}"
    return RuntimeError(f"{message}{where}: {_primary_code(name)}")


# ---- the authorizer: what user SQL may do (workerd's rules) ----------------------------------------

_WRITES = frozenset({
    sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_TRIGGER,
    sqlite3.SQLITE_CREATE_VIEW, sqlite3.SQLITE_CREATE_VTABLE, sqlite3.SQLITE_DELETE,
    sqlite3.SQLITE_DROP_INDEX, sqlite3.SQLITE_DROP_TABLE, sqlite3.SQLITE_DROP_TRIGGER,
    sqlite3.SQLITE_DROP_VIEW, sqlite3.SQLITE_DROP_VTABLE, sqlite3.SQLITE_INSERT,
    sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_ALTER_TABLE, sqlite3.SQLITE_REINDEX,
    sqlite3.SQLITE_ANALYZE,
})
_TRANSACTION_ACTIONS = frozenset({sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT})
_FLAG_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "1", "0"})
# SQLite's own ALTER TABLE helpers; the other sqlite_*() functions reveal build details.
_INTERNAL_FUNCTIONS = frozenset({
    "sqlite_rename_column", "sqlite_rename_table", "sqlite_rename_test", "sqlite_drop_column",
    "sqlite_rename_quotefix",
})
_VTABLE_MODULES = frozenset({"fts5", "fts5vocab"})


def allowed_name(name: str | None) -> bool:
    """Names starting with ``_cf_`` (any case) are Cloudflare's own and off limits."""
    return name is None or name[:4].lower() != "_cf_"


def _unquote(argument: str) -> str:
    argument = argument.strip()
    if len(argument) >= 2 and argument[0] in "'\"" and argument[-1] == argument[0]:
        argument = argument[1:-1].strip()
    return argument


def _is_integer(text: str) -> bool:
    try:
        int(text, 0)
    except ValueError:
        return False
    return True


def _pragma_allowed(pragma: str | None, argument: str | None) -> bool:
    """workerd's pragma allowlist: a few read-only ones, on/off flags, and per-table queries."""
    value = None if argument is None else _unquote(argument)
    pragma = (pragma or "").lower()
    if pragma == "data_version":
        return value is None
    if pragma in ("case_sensitive_like", "foreign_keys", "defer_foreign_keys",
                  "ignore_check_constraints", "recursive_triggers", "reverse_unordered_selects"):
        return value is None or value.lower() in _FLAG_WORDS
    if pragma in ("foreign_key_check", "foreign_key_list", "index_info", "index_list",
                  "index_xinfo", "table_info", "table_xinfo", "table_list"):
        return allowed_name(value)
    if pragma == "quick_check":
        return value is None or _is_integer(value) or allowed_name(value)
    if pragma == "optimize":
        return value is None or _is_integer(value)
    return False


def _names_allowed(action: int, first: str | None, second: str | None) -> bool | None:
    """The rule for actions that name tables, indexes, triggers or views; None for other actions."""
    if action in (sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_DROP_INDEX,
                  sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_DROP_TRIGGER):
        return allowed_name(first) and allowed_name(second)
    if action == sqlite3.SQLITE_ALTER_TABLE:
        return allowed_name(second)
    if action in (sqlite3.SQLITE_CREATE_VTABLE, sqlite3.SQLITE_DROP_VTABLE):
        return allowed_name(first) and (second or "").lower() in _VTABLE_MODULES
    if action in _WRITES or action == sqlite3.SQLITE_READ:
        return allowed_name(first)
    return None


def user_may(action: int, first: str | None, second: str | None, database: str | None) -> bool:
    """Whether user SQL may perform one authorizer action. Everything not listed is refused:
    ATTACH/DETACH, temporary tables, triggers and views, transactions, most pragmas."""
    if database == "temp":  # only SQLite's own bookkeeping reads and updates of sqlite_temp_master
        return action in (sqlite3.SQLITE_READ, sqlite3.SQLITE_UPDATE) and allowed_name(first)
    if database not in (None, "main"):
        return False
    if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
        return True
    if action == sqlite3.SQLITE_PRAGMA:
        return _pragma_allowed(first, second)
    if action == sqlite3.SQLITE_FUNCTION:
        name = (second or "").lower()
        return not name.startswith("sqlite_") or name in _INTERNAL_FUNCTIONS
    return bool(_names_allowed(action, first, second))


# ---- the database ----------------------------------------------------------------------------------


class _Statement:
    """One executed statement: its sqlite3 cursor, column names and row counters. A statement that
    wrote is read to the end at once, so no write is left in progress when the turn commits."""

    def __init__(self, cursor: sqlite3.Cursor, changes_before: int, wrote: bool) -> None:
        self._cursor: sqlite3.Cursor | None = cursor
        self.columns = [column[0] for column in cursor.description or ()]
        self.wrote = wrote
        self.rows_read = 0
        self.rows_written = cursor.connection.total_changes - changes_before
        self._buffer = deque(self._drain()) if wrote else None

    def fetch(self) -> tuple[Any, ...] | None:
        """The next row as SQLite gives it, or None when the statement is done."""
        if self._buffer is not None:
            return self._buffer.popleft() if self._buffer else None
        return self._step()

    def close(self) -> None:
        cursor, self._cursor = self._cursor, None
        if cursor is not None:
            try:
                cursor.close()
            except sqlite3.ProgrammingError:  # its database was closed (restored) under it
                pass

    def _step(self) -> tuple[Any, ...] | None:
        if self._cursor is None:
            return None
        try:
            before = self._cursor.connection.total_changes
            row = self._cursor.fetchone()
            self.rows_written += self._cursor.connection.total_changes - before
        except sqlite3.Error as error:
            self.close()
            raise _translate(error, "") from None
        if row is None:
            self.close()
            return None
        self.rows_read += 1
        return row  # type: ignore[no-any-return]

    def _drain(self) -> Iterator[tuple[Any, ...]]:
        while (row := self._step()) is not None:
            yield row


def _decode_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")  # as JavaScript decodes invalid UTF-8


class SqlDatabase:
    """One object's SQL database, for the runtime (user code sees ``SqlStorage``).

    Writes accumulate in a *turn*, an implicit transaction the first statement opens. The runtime
    commits it when it flushes (``commit_turn``, then ``image``, ``clear_dirty``), or drops it when
    the object resets (``rollback_turn``). Committing a turn does not make it durable: if storing
    the image then fails, reload the last stored one with ``restore``.
    """

    def __init__(self, image: bytes | None = None) -> None:
        self._trusted = False  # True while dolab runs its own statements: the authorizer allows all
        self._denied_transaction = False
        self._writes = False
        self._depth = 0
        self._dirty = self._dirty_at_turn_start = False
        self._conn = self._connect(image)

    # -- state

    @property
    def dirty(self) -> bool:
        """True once a statement wrote, until ``clear_dirty`` (after the image was stored)."""
        return self._dirty

    def clear_dirty(self) -> None:
        self._dirty = self._dirty_at_turn_start = False

    @property
    def in_turn(self) -> bool:
        return self._conn.in_transaction

    def restore(self, image: bytes | None) -> None:
        """Replace the database with ``image`` (None or empty: a new, empty database). Open
        cursors of the old database stop working."""
        self._conn.close()
        self._conn = self._connect(image)
        self._depth = 0
        self._dirty = self._dirty_at_turn_start = False

    def close(self) -> None:
        """Release the connection (the object is gone for good)."""
        self._conn.close()

    def image(self) -> bytes:
        """The committed database as bytes (``b""`` while it has no page). Commit the turn first."""
        if self._conn.in_transaction:
            raise RuntimeError(TURN_OPEN)
        with self._trusting():
            if self._pragma("page_count") == 0:
                return b""
            return self._conn.serialize()

    def database_size(self) -> int:
        """``databaseSize``: the bytes of the pages in use (free pages excluded, as in workerd)."""
        with self._trusting():
            pages = self._pragma("page_count") - self._pragma("freelist_count")
            return pages * self._pragma("page_size")

    def table_names(self) -> list[str]:
        """The user's tables, by name (SQLite's own ``sqlite_…`` tables left out)."""
        with self._trusting():
            rows = self._conn.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name").fetchall()
        return [row[0] for row in rows]

    # -- turns

    def begin_turn(self) -> None:
        """Open the implicit transaction unless one is open (statements call this themselves)."""
        if not self._conn.in_transaction:
            self._dirty_at_turn_start = self._dirty
            self._run_trusted("BEGIN")

    def commit_turn(self) -> None:
        """Commit the open turn. Deferred constraints left violated fail the commit: the turn is
        rolled back and the error says the object was reset (spec §5.4)."""
        if self._depth:
            raise RuntimeError(SAVEPOINT_OPEN.format(op="commit_turn", depth=self._depth))
        if not self._conn.in_transaction:
            return
        try:
            self._run_trusted("COMMIT")
        except sqlite3.IntegrityError as error:
            self.rollback_turn()
            message = str(_translate(error, ""))
            raise RuntimeError(CONSTRAINTS_AT_COMMIT.format(message=message)) from None

    def rollback_turn(self) -> None:
        """Discard every write since the turn began (savepoints included)."""
        self._depth = 0
        if self._conn.in_transaction:
            self._run_trusted("ROLLBACK")
        self._dirty = self._dirty_at_turn_start

    def transaction_sync(self, fn: Callable[[], T]) -> T:
        """``storage.transactionSync(fn)``: run ``fn()`` in a savepoint, released when it returns
        and rolled back when it raises (the error propagates). Nests."""
        if inspect.iscoroutinefunction(fn):
            raise TypeError(SYNC_CALLBACK_ASYNC.format(name=getattr(fn, "__name__", repr(fn))))
        self.begin_turn()
        savepoint = f"_cf_sync_savepoint_{self._depth}"
        self._run_trusted(f"SAVEPOINT {savepoint}")
        self._depth += 1
        try:
            result = _synchronous_result(fn)
        except BaseException:
            self._depth -= 1
            self._undo_savepoint(savepoint)
            raise
        self._depth -= 1
        self._run_trusted(f"RELEASE {savepoint}")
        return result

    def clear_all(self) -> None:
        """``deleteAll()``: drop every table, view, index and trigger, inside the turn."""
        self.begin_turn()
        with self._trusting():
            self._conn.execute("PRAGMA defer_foreign_keys = ON")  # checked at commit: all gone
            for kind, name in self._schema_objects():
                quoted = name.replace('"', '""')
                self._conn.execute(f'DROP {kind} IF EXISTS "{quoted}"')
            if self._conn.execute(
                    "SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_sequence'").fetchone():
                self._conn.execute("DELETE FROM sqlite_sequence")
        self._dirty = True

    # -- statements

    def execute(self, query: str, params: Sequence[Any],
                on_write: Callable[[], None] | None = None) -> _Statement:
        """Run every statement of ``query`` (``params`` bind the last one) and return the last,
        ready to be fetched. ``on_write`` is called after each statement that wrote."""
        if len(query.encode("utf-8", "surrogatepass")) > SQL_LENGTH_LIMIT:
            raise RuntimeError(STATEMENT_TOO_LONG)
        self.begin_turn()
        for text, last in split_statements(query):
            statement = self._run(text, params if last else (), last)
            if statement.wrote:
                self._dirty = True
                if on_write is not None:
                    on_write()
            if last:
                return statement
            statement.close()
        raise AssertionError("unreachable: split_statements ends with the last statement")

    def _run(self, text: str, params: Sequence[Any], last: bool) -> _Statement:
        self._denied_transaction = self._writes = False
        before = self._conn.total_changes
        try:
            with warnings.catch_warnings():  # Python 3.12+ warns on named placeholders bound by
                warnings.simplefilter("ignore", DeprecationWarning)  # position, as workerd binds
                cursor = self._conn.execute(text, params)
        except sqlite3.Error as error:
            if self._denied_transaction:
                raise RuntimeError(USE_TRANSACTION_API) from None
            raise _translate(error, text, last) from None
        return _Statement(cursor, before, self._writes)

    # -- internals

    def _connect(self, image: bytes | None) -> sqlite3.Connection:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False,
                               cached_statements=0)  # every prepare meets the authorizer
        conn.text_factory = _decode_text
        for limit, value in _LIMITS.items():
            conn.setlimit(limit, value)
        conn.set_authorizer(self._authorize)
        with self._trusting():  # deserialize runs ATTACH, which user SQL may not
            if image:
                conn.deserialize(image)
            conn.execute("PRAGMA foreign_keys = ON")  # workerd's SQLITE_DEFAULT_FOREIGN_KEYS=1
        return conn

    def _authorize(self, action: int, first: str | None, second: str | None,
                   database: str | None, source: str | None) -> int:
        if self._trusted:
            return sqlite3.SQLITE_OK
        if action in _TRANSACTION_ACTIONS:
            self._denied_transaction = True
            return sqlite3.SQLITE_DENY
        if not user_may(action, first, second, database):
            return sqlite3.SQLITE_DENY
        self._writes = self._writes or action in _WRITES
        return sqlite3.SQLITE_OK

    @contextmanager
    def _trusting(self) -> Iterator[None]:
        self._trusted = True
        try:
            yield
        finally:
            self._trusted = False

    def _run_trusted(self, sql: str) -> None:
        with self._trusting():
            self._conn.execute(sql)

    def _pragma(self, name: str) -> int:
        return int(self._conn.execute(f"PRAGMA {name}").fetchone()[0])

    def _undo_savepoint(self, savepoint: str) -> None:
        if self._conn.in_transaction:  # "INSERT OR ROLLBACK" may have ended it already
            self._run_trusted(f"ROLLBACK TO {savepoint}")
            self._run_trusted(f"RELEASE {savepoint}")

    def _schema_objects(self) -> list[tuple[str, str]]:
        """Tables and views to drop, virtual tables first (they drop their shadow tables)."""
        rows = self._conn.execute(
            "SELECT type, name FROM sqlite_schema WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
            "ORDER BY sql LIKE 'CREATE VIRTUAL%' DESC, type = 'view' DESC").fetchall()
        names = [(kind.upper(), name) for kind, name in rows]
        return names + [("TABLE", "sqlite_stat1"), ("TABLE", "sqlite_stat4")]


def _synchronous_result(fn: Callable[[], T]) -> T:
    result = fn()
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()  # an un-run coroutine would warn "never awaited"
        raise TypeError(SYNC_CALLBACK_ASYNC.format(name=getattr(fn, "__name__", repr(fn))))
    return result


def table_names(image: bytes) -> list[str]:
    """The user tables of a stored image (``lab.history`` reads old versions with it)."""
    database = SqlDatabase(image)
    try:
        return database.table_names()
    finally:
        database.close()


# ---- JavaScript's conversions ----------------------------------------------------------------------


def to_binding(value: object) -> object:
    """A Python value as workerd binds it: numbers are JavaScript numbers (REAL; column affinity
    may store them as INTEGER), booleans become the text ``"true"``/``"false"`` (spec §5.4)."""
    if value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if abs(value) > JS_SAFE_INTEGER:  # Python Workers passes it as a BigInt, which fails
            raise TypeError(BINDING_BIGINT.format(value=value))
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(BINDING_TYPE.format(type=type(value).__name__))


def js_number(number: float) -> int | float:
    """A number as Python Workers receives a JavaScript number: a double, which Pyodide turns into
    an ``int`` when it is integral and within ±2**53, else a ``float``. So the INTEGER
    9007199254740993 reads back as 9007199254740992, and the REAL 2.0 as 2."""
    as_double = float(number)
    if as_double.is_integer() and abs(as_double) <= JS_SAFE_INTEGER:
        return int(as_double)
    return as_double


def _from_sqlite(value: Any) -> Any:
    return js_number(value) if isinstance(value, (int, float)) else value


class JsObject(dict[str, Any]):
    """A row as Python Workers hands over a JavaScript object: its fields read as attributes
    (``row.name``) and ``to_py()`` gives a plain dict, so either style ports to Cloudflare. Keys
    that are also dict methods (``row.items``) need ``row["items"]``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_py(self) -> dict[str, Any]:
        return dict(self)


# ---- ctx.storage.sql -------------------------------------------------------------------------------


class SqlStorageCursor:
    """What ``sql.exec()`` returns: a lazy iterator over the last statement's rows, as dicts
    (a repeated column name keeps its last value; ``raw()`` keeps them all). Like workerd's cursor
    it has always fetched one row ahead of what it returned."""

    def __init__(self, statement: _Statement) -> None:
        self._statement = statement
        self._ahead = statement.fetch()

    @property
    def columnNames(self) -> list[str]:
        return list(self._statement.columns)

    @property
    def rowsRead(self) -> int:
        return self._statement.rows_read

    @property
    def rowsWritten(self) -> int:
        return self._statement.rows_written

    def __iter__(self) -> SqlStorageCursor:
        return self

    def __next__(self) -> JsObject:
        values = self._take()
        if values is None:
            raise StopIteration
        return JsObject(zip(self._statement.columns, values))

    def next(self) -> JsObject:
        """JavaScript's iterator step: ``{"done": False, "value": row}``, then ``{"done": True}``."""
        row = next(self, None)
        return JsObject(done=True) if row is None else JsObject(done=False, value=row)

    def toArray(self) -> list[JsObject]:
        return list(self)

    def one(self) -> JsObject:
        row = next(self, None)
        if row is None:
            raise RuntimeError(ONE_NO_RESULTS)
        if self._ahead is not None:
            self._ahead = None
            self._statement.close()
            raise RuntimeError(ONE_MULTIPLE)
        return row

    def raw(self) -> SqlStorageRawIterator:
        """The remaining rows as lists of values; it moves this cursor along as it goes."""
        return SqlStorageRawIterator(self)

    def _take(self) -> list[Any] | None:
        """The next row's values (converted as JavaScript does), or None when done."""
        row, self._ahead = self._ahead, None
        if row is None:
            return None
        self._ahead = self._statement.fetch()  # stepping ahead may fail: the row is lost, as in workerd
        return [_from_sqlite(value) for value in row]


class SqlStorageRawIterator:
    """``cursor.raw()``: rows as lists, sharing the cursor's position."""

    def __init__(self, cursor: SqlStorageCursor) -> None:
        self._cursor = cursor

    def __iter__(self) -> SqlStorageRawIterator:
        return self

    def __next__(self) -> list[Any]:
        values = self._cursor._take()
        if values is None:
            raise StopIteration
        return values

    def next(self) -> JsObject:
        values = next(self, None)
        return JsObject(done=True) if values is None else JsObject(done=False, value=values)

    def toArray(self) -> list[list[Any]]:
        return list(self)


class SqlStorage:
    """``ctx.storage.sql``. On a KV-backed object reading ``.sql`` works, but ``exec`` and
    ``databaseSize`` raise ``kv_backed_error`` (spec §5.1, B52)."""

    def __init__(self, db: SqlDatabase | None, on_write: Callable[[], None],
                 kv_backed_error: str | None = None) -> None:
        if db is None and kv_backed_error is None:
            raise TypeError("SqlStorage needs a SqlDatabase, or the error a KV-backed object raises")
        self._db = db
        self._on_write = on_write
        self._kv_backed_error = kv_backed_error

    def exec(self, query: str, *bindings: Any) -> SqlStorageCursor:
        """Run ``query`` (one or more ``;``-separated statements); ``bindings`` fill the last
        statement's ``?`` placeholders; the cursor reads the last statement's rows."""
        db = self._database()
        if not isinstance(query, str):
            raise TypeError(f"exec() takes the SQL query as a str, not {type(query).__name__}.")
        params = [to_binding(value) for value in bindings]
        return SqlStorageCursor(db.execute(query, params, self._on_write))

    @property
    def databaseSize(self) -> int:
        return self._database().database_size()

    def _database(self) -> SqlDatabase:
        if self._db is None or self._kv_backed_error is not None:
            raise RuntimeError(self._kv_backed_error)
        return self._db


# ---- ctx.storage.kv --------------------------------------------------------------------------------

MISSING: Any = object()


def is_missing(value: object) -> bool:
    """Whether a backend's ``get`` reported no value: its sentinel is a bare ``object()`` (such as
    ``MISSING``), which no stored value can be (the value codec refuses plain objects)."""
    return type(value) is object


class KVBackend(Protocol):
    """The object's KV data as the runtime gives it to ``SyncKV`` (values already decoded)."""

    def get(self, key: str) -> Any:
        """The value, or a sentinel ``object()`` such as ``MISSING`` when the key is absent."""

    def put(self, key: str, value: Any) -> None:
        """Store (limits and encoding are the backend's)."""

    def delete(self, key: str) -> bool:
        """Remove; True if the key existed."""

    def items(self, start: str | None, end: str | None, reverse: bool) -> Iterator[tuple[str, Any]]:
        """Pairs with ``start <= key < end`` (None: unbounded), ascending or descending; nothing
        when ``start >= end``. It must tolerate writes made while it is being iterated."""


def validate_list_options(start: str | None = None, startAfter: str | None = None,
                          limit: int | None = None) -> None:
    """The checks ``list()`` makes before reading (spec §5.2, B36)."""
    if start is not None and startAfter is not None:
        raise TypeError(errors.LIST_START_AND_AFTER)
    if limit is not None and limit <= 0:
        raise TypeError(errors.LIST_LIMIT)


def _prefix_end(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None: there is none)."""
    stripped = prefix.rstrip(chr(0x10FFFF))
    if not stripped:
        return None
    following = ord(stripped[-1]) + 1
    if following == 0xD800:  # no key holds a lone surrogate
        following = 0xE000
    return stripped[:-1] + chr(following)


def list_range(start: str | None, startAfter: str | None, end: str | None, prefix: str | None,
               limit: int | None = None) -> tuple[str | None, str | None]:
    """The keys ``list()`` visits, as ``[low, high)`` (None: unbounded), after validating the
    options. ``startAfter`` is ``start = startAfter + "\\0"`` (as workerd does); ``prefix`` narrows
    the range. The range is empty when ``low >= high`` (``range_is_empty``): not an error."""
    validate_list_options(start, startAfter, limit)
    low = startAfter + "\0" if startAfter is not None else start
    high = end
    if prefix:
        low = prefix if low is None else max(low, prefix)
        prefix_end = _prefix_end(prefix)
        if prefix_end is not None:
            high = prefix_end if high is None else min(high, prefix_end)
    return low, high


def range_is_empty(low: str | None, high: str | None) -> bool:
    return low is not None and high is not None and low >= high


class _ListSlot:
    """Which ``kv.list()`` iterator is the live one (only one may be, spec §5.4)."""

    def __init__(self) -> None:
        self.live: object = None


class SyncKVListIterator:
    """What ``kv.list()`` returns: ``(key, value)`` pairs, read lazily. Starting another
    ``kv.list()`` invalidates it."""

    def __init__(self, slot: _ListSlot, items: Iterator[tuple[str, Any]], limit: int | None) -> None:
        self._slot = slot
        slot.live = self
        self._items = items
        self._remaining = limit

    def __iter__(self) -> SyncKVListIterator:
        return self

    def __next__(self) -> tuple[str, Any]:
        if self._remaining == 0:
            raise StopIteration
        if self._slot.live is not self:
            raise RuntimeError(KV_LIST_INVALIDATED)
        pair = next(self._items, None)
        if pair is None:
            self._remaining = 0
            raise StopIteration
        if self._remaining is not None:
            self._remaining -= 1
        return pair


class SyncKV:
    """``ctx.storage.kv``: synchronous ``get``/``put``/``delete``/``list`` over the same data as the
    asynchronous KV API. On a KV-backed object every method raises ``kv_backed_error``."""

    def __init__(self, kv: KVBackend | None, kv_backed_error: str | None = None) -> None:
        if kv is None and kv_backed_error is None:
            raise TypeError("SyncKV needs a KVBackend, or the error a KV-backed object raises")
        self._kv = kv
        self._kv_backed_error = kv_backed_error
        self._slot = _ListSlot()

    def get(self, key: str) -> Any:
        value = self._backend().get(key)
        return None if is_missing(value) else value

    def put(self, key: str, value: Any) -> None:
        self._backend().put(key, value)

    def delete(self, key: str) -> bool:
        return self._backend().delete(key)

    def list(self, *, start: str | None = None, startAfter: str | None = None,
             end: str | None = None, prefix: str | None = None, reverse: bool = False,
             limit: int | None = None) -> SyncKVListIterator:
        kv = self._backend()
        low, high = list_range(start, startAfter, end, prefix, limit)
        items = iter(()) if range_is_empty(low, high) else kv.items(low, high, reverse)
        return SyncKVListIterator(self._slot, items, limit)

    def _backend(self) -> KVBackend:
        if self._kv is None or self._kv_backed_error is not None:
            raise RuntimeError(self._kv_backed_error)
        return self._kv
