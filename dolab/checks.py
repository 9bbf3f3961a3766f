"""The pitfall checker and the error diagnostic.

``check(source)`` finds, in Durable Object and Worker code, the mistakes the lessons teach; each
finding has a stable code and names the lesson (rules and their precise statements live in
``dolab.checks_rules``)::

    kv-for-state                  a KV namespace or a dict on the Worker used as the object's state
    new-id-per-request            newUniqueId() for an entity, in a request handler, id thrown away
    external-coordination         Redis/Postgres/locks coordinating what one object serializes
    missing-binding               env.X used but no binding declares X
    storage-read-per-request      state read from storage per request instead of loaded once
    timer-instead-of-alarm        asyncio.sleep / call_later / threading.Timer for delayed work
    oversized-value               a collection that only grows, written whole under one key
    await-between-read-and-write  a non-storage await between a read and the write that uses it

``explain(text_or_exception)`` recognizes Cloudflare's Durable Object error messages (the spec's
texts, §2–§11) and says the cause, whether a retry helps (spec §8.1: retry only ``.retryable``
errors, with a new stub; never ``.overloaded`` ones), the fix and the lesson.

``main(argv)`` implements ``dolab check PATH… [--format json] [--wrangler FILE] [--binding NAME]``
and ``dolab explain TEXT``. This module imports nothing of the runtime, so it runs standalone.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import json
import os
import re
import sys
import textwrap
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dolab import errors as E
from dolab.checks_rules import CODES, LESSONS, Finding, build_model, run_rules

__all__ = ["CODES", "LESSONS", "Explanation", "Finding", "check", "check_path",
           "declared_bindings", "explain", "known_errors", "main", "strip_jsonc",
           "template_regex", "wrangler_bindings"]

PathLike = str | os.PathLike[str]


# ---- check -------------------------------------------------------------------------------------


def check(source: str, *, bindings: Iterable[str] | None = None,
          wrangler: PathLike | None = None, filename: str = "<source>") -> list[Finding]:
    """Findings for one module or notebook cell, sorted by line.

    ``bindings`` are the binding names the code may use (the lab's); ``wrangler`` is a
    wrangler.toml/.json/.jsonc whose bindings are declared too. With neither, the
    ``missing-binding`` check is skipped. IPython magic lines are ignored and top-level ``await``
    is allowed. Raises ``SyntaxError`` for code that does not parse."""
    tree = _parse(source, filename)
    return run_rules(build_model(tree, declared_bindings(bindings, wrangler)))


def check_path(path: PathLike, *, bindings: Iterable[str] | None = None,
               wrangler: PathLike | None = None) -> list[Finding]:
    """``check`` on a file's text."""
    text = Path(path).read_text(encoding="utf-8")
    return check(text, bindings=bindings, wrangler=wrangler, filename=str(path))


def _parse(source: str, filename: str) -> ast.Module:
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    tree = compile(_strip_magics(source), filename, "exec", flags=flags, dont_inherit=True)
    assert isinstance(tree, ast.Module)
    return tree


def _strip_magics(source: str) -> str:
    """Blank out IPython magic and shell lines (``%%durable_object``, ``!pip``), keeping line
    numbers."""
    return "\n".join("" if re.match(r"\s*[%!]", line) else line for line in source.split("\n"))


def declared_bindings(bindings: Iterable[str] | None,
                      wrangler: PathLike | None) -> frozenset[str] | None:
    """The declared names, or None when nothing declares bindings (skip ``missing-binding``)."""
    if bindings is None and wrangler is None:
        return None
    names = set(bindings or ())
    if wrangler is not None:
        names |= wrangler_bindings(wrangler)
    return frozenset(names)


def wrangler_bindings(path: PathLike) -> set[str]:
    """Every binding-like name a wrangler.toml / wrangler.json(c) declares: ``binding`` values
    anywhere (``[[kv_namespaces]]``, ``[[d1_databases]]``, ``[ai]``…), ``name`` values of list
    entries (``[[durable_objects.bindings]]``), and ``[vars]`` keys; all environments count."""
    text = Path(path).read_text(encoding="utf-8")
    data = tomllib.loads(text) if str(path).endswith(".toml") else json.loads(strip_jsonc(text))
    return _binding_names(data, in_list=False)


def _binding_names(data: object, in_list: bool) -> set[str]:
    names: set[str] = set()
    if isinstance(data, dict):
        if isinstance(data.get("binding"), str):
            names.add(data["binding"])
        if in_list and isinstance(data.get("name"), str):
            names.add(data["name"])
        for key, value in data.items():
            if key == "vars" and isinstance(value, dict):
                names |= {str(k) for k in value}
            names |= _binding_names(value, in_list=False)
    elif isinstance(data, list):
        for item in data:
            names |= _binding_names(item, in_list=True)
    return names


def strip_jsonc(text: str) -> str:
    """JSON from JSONC: drop ``//`` and ``/* */`` comments and trailing commas (outside strings)."""
    out: list[str] = []
    i, n, in_string = 0, len(text), False
    while i < n:
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else n
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        elif ch == "," and re.match(r"\s*[}\]]", _skip_comments(text[i + 1:])):
            pass  # a trailing comma
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _skip_comments(rest: str) -> str:
    return re.sub(r"^(?:\s|//[^\n]*\n|/\*.*?\*/)*", "", rest, flags=re.S)


# ---- explain: the catalogue --------------------------------------------------------------------

_NO = "No: the same call fails the same way every time. Fix the code, then run it again."
_NEVER = ("No. It carries `.overloaded`, and overloaded errors must never be retried (spec §8.1): "
          "a retry only adds to the queue.")
_NEW_STUB = ("Only with a new stub: the stub that saw the reset is broken and repeats this error; "
             "`self.env.NS.getByName(name)` gives a stub that reaches a fresh instance "
             "(constructor re-run, storage intact). Retry automatically only errors that carry "
             "`.retryable`, with exponential backoff.")
_RECONNECT = "Yes: the client should reconnect (a new WebSocket reaches a fresh instance)."
_BACKOFF = "Yes, later: back off exponentially; the limit is about rate, not about this call."
_RETRYABLE = ("Yes: it carries `.retryable` (a transient error). Retry with exponential backoff "
              "and a new stub (spec §8.1).")


@dataclass(frozen=True)
class _Entry:
    """One recognizable error: ``texts`` are message templates (``{n}``/``{size}``/``{code}`` stand
    for digits, other ``{name}``s for any text); ``patterns`` are extra raw regexes. ``cause`` and
    ``fix`` may mention ``{group}`` to reuse what the message said."""

    title: str
    texts: tuple[str, ...]
    cause: str
    retry: str
    fix: str
    lesson: str
    patterns: tuple[str, ...] = ()


_OVERLOAD_CAUSE = ("More events are queued for this one object than it can take: every event for "
                   "one id runs in one instance, one at a time, so one object has a throughput "
                   "ceiling (about 1,000 simple requests/s, less with writes).")
_OVERLOAD_FIX = ("Spread the load: shard a hot entity over several objects (e.g. "
                 "`getByName(f\"{room}:{n%8}\")`), batch work into fewer calls, and make each "
                 "event cheaper (no per-request storage reads or blockConcurrencyWhile).")
_LIMIT_FIX = ("Split the value: one key per item (`put(f\"msg:{id}\", msg)`, read back with "
              "`list(prefix=\"msg:\")`) or one SQL row per item; keep big blobs in R2.")

_CATALOGUE: tuple[_Entry, ...] = (
    # -- overload and platform load (spec §8.1) --
    _Entry("Durable Object overloaded",
           (E.OVERLOADED, "Durable Object is overloaded. Too much data queued.",
            "Durable Object is overloaded. Requests queued for too long.",
            "Durable Object is overloaded. Too many requests for the same object within a 10 "
            "second window."),
           _OVERLOAD_CAUSE, _NEVER, _OVERLOAD_FIX, "12-patterns",
           (r"Durable Object is overloaded\.",)),
    _Entry("Account generating too much load",
           ("Your account is generating too much load on Durable Objects. Please back off and "
            "try again later.",),
           "Stubs are being created too fast across the account.", _BACKOFF,
           "Reuse stubs within a request, avoid creating one per item in a loop, and back off.",
           "12-patterns"),
    _Entry("Too many concurrent storage operations",
           ("Your account is doing too many concurrent storage operations. Please back off and "
            "try again later.",),
           "Too many storage operations are in flight across the account.", _BACKOFF,
           "Batch writes (several `put`s in one turn coalesce into one commit; `put(entries)`), "
           "and back off.", "12-patterns"),
    _Entry("Network connection lost",
           ("Network connection lost.",),
           "A transient disconnection between the caller and the object.", _RETRYABLE,
           "Wrap calls in a retry loop that checks `.retryable`, uses a new stub and backs off.",
           "12-patterns"),
    # -- resets and lifecycle (spec §4, §8) --
    _Entry("Reset because the code was updated",
           (E.CODE_UPDATED,),
           "A new version of the class was deployed (in dolab: its cell was re-run); live "
           "instances were reset and their in-memory fields are gone. Storage and alarms are kept.",
           _NEW_STUB,
           "Keep state in storage and reload it in the constructor with "
           "`ctx.blockConcurrencyWhile(self.load)`; after a reset error make a new stub.",
           "07-initialization"),
    _Entry("Instance no longer active",
           (E.INSTANCE_GONE,),
           "The instance this stub talked to was shut down or replaced (eviction, deploy, move); "
           "at most one instance per id exists, and this one is no longer it.",
           "Yes, with a new stub: the message says so (reconnect or retry); back off "
           "exponentially.",
           "Make a new stub and retry; keep state in storage so the new instance has it.",
           "07-initialization"),
    _Entry("WebSocket closed because the object was reset",
           (E.WS_RESET,),
           "The object that held this WebSocket was reset, which closes its sockets.", _RECONNECT,
           "Reconnect from the client; use the Hibernation API (`ctx.acceptWebSocket`) and keep "
           "per-socket state in attachments so a new instance can resume.", "10-websockets"),
    _Entry("Storage operation timed out",
           (E.STORAGE_TIMEOUT,),
           "A storage operation took longer than 30 s, so the object was reset.", _NEW_STUB,
           "Make storage operations smaller: at most 128 keys per batch, small values, "
           "`deleteAll()` or large deletes in chunks.", "06-output-gates"),
    _Entry("blockConcurrencyWhile() timed out",
           (E.BCW_TIMEOUT,),
           "A `blockConcurrencyWhile` callback ran for more than 30 s (it awaited something slow "
           "or never settled), so the object was reset; the error carries `.overloaded`.",
           "No. It carries `.overloaded`: do not retry; fix the callback. A new stub reaches a "
           "fresh instance that runs the constructor again.",
           "Keep callbacks to storage reads and migrations: no `fetch`, stub calls or waits "
           "inside, and never call it per request.", "07-initialization"),
    _Entry("blockConcurrencyWhile() nested too deeply",
           (E.BCW_NESTED,),
           "More than 64 nested `blockConcurrencyWhile` calls, usually recursion: a callback "
           "calls a method that calls `blockConcurrencyWhile` again.", _NO,
           "Call it once, from the constructor; inside a callback call plain helpers.",
           "07-initialization"),
    _Entry("Object reset by abort()",
           (E.ABORT_DEFAULT,),
           "The code called `ctx.abort()`, which resets the object: unflushed writes are "
           "dropped and in-memory state is lost.", _NEW_STUB,
           "Call `abort` only to recover from a state you cannot repair; make a new stub after.",
           "07-initialization"),
    # -- RPC (spec §3.3, §11) --
    _Entry("RPC method not implemented",
           (E.RPC_NOT_IMPLEMENTED,),
           "The stub called `{name}`, which the class does not offer over RPC: a typo, a "
           "`_private` method, an instance field, a method of another class, or an old class "
           "definition still bound.", _NO,
           "Define `async def {name}(self, ...)` on the Durable Object class (public: no leading "
           "underscore) and rebind the class; fields are read through a method.", "01-tour"),
    _Entry("Reserved method called over RPC",
           (E.RPC_RESERVED,),
           "`{name}` is a handler the runtime calls (fetch, alarm, webSocketMessage, "
           "webSocketClose, webSocketError, connect); it cannot be an RPC method.", _NO,
           "Use `stub.fetch(url)` for HTTP, `setAlarm` for alarms; give RPC methods other names.",
           "01-tour"),
    _Entry("RPC property is not a function",
           (E.RPC_NOT_FUNCTION,),
           "`{name}` is a property (a getter), not a method, but it was called.", _NO,
           "Read it without calling: `await stub.{name}`.", "01-tour"),
    _Entry("Class does not support RPC",
           ("The receiving Durable Object does not support RPC, because its class was not "
            "declared with `extends DurableObject`.",),
           "The class does not extend `DurableObject`, so only `fetch` can reach it.", _NO,
           "Subclass `DurableObject` (`class Room(DurableObject):`).", "01-tour"),
    _Entry("RPC method does not exist (Python Workers)",
           ("Method {name} does not exist",),
           "The Python Worker runtime found no method `{name}` on the class.", _NO,
           "Define the method on the class the binding names, without a leading underscore.",
           "01-tour"),
    _Entry("RPC with keyword arguments",
           (E.RPC_NO_KWARGS,),
           "RPC passes positional arguments only (as on Cloudflare).", _NO,
           "Call `stub.{name}(a, b)` positionally, or pass one dict argument.", "01-tour"),
    _Entry("RPC payload too large",
           (E.RPC_PAYLOAD_TOO_LARGE,),
           "An RPC argument or result serialized to more than 32 MiB.", _NO,
           "Send less per call: page results, or stream through `fetch`.", "09-storage-limits"),
    _Entry("Value cannot be sent over RPC",
           (E.CANNOT_SEND,),
           "Python Workers cannot convert `{cls}` (tuples, bytearrays and un-awaited coroutines) "
           "to JavaScript, neither for RPC nor for storage.", _NO,
           "Send a list instead of a tuple, `bytes` instead of a bytearray, and await coroutines "
           "before sending their result.", "09-storage-limits"),
    _Entry("DataCloneError: value could not be cloned",
           (E.CANNOT_CLONE,),
           "The value (a function, a class instance, a lock, a socket…) is not structured-"
           "cloneable, so it cannot be stored or sent.", _NO,
           "Store plain data: dicts, lists, str, int, float, bytes, datetime; convert objects "
           "with a `to_dict()` and rebuild them after `get`.", "09-storage-limits"),
    _Entry("Invalid URL for stub.fetch",
           (E.INVALID_URL, "Fetch API cannot load: {url}"),
           "`stub.fetch` needs an absolute URL (since compatibility date 2021-11-10); `{url}` is "
           "relative.", _NO,
           "Pass an absolute URL (the host need not exist): `stub.fetch(\"http://do/path\")`, or "
           "forward the incoming `request`.", "01-tour"),
    # -- ids and namespaces (spec §2) --
    _Entry("Invalid Durable Object ID",
           (E.INVALID_ID,),
           "`idFromString` was given something that is not 64 hex digits, often a name.", _NO,
           "For names use `idFromName(name)` / `getByName(name)`; pass `idFromString` only "
           "`id.toString()` output.", "03-one-instance-per-id"),
    _Entry("ID from another namespace",
           (E.ID_OTHER_NAMESPACE,),
           "The id string was made by a different namespace (another class binding).", _NO,
           "Use the namespace that created the id: `env.ROOMS.idFromString(...)` for room ids.",
           "03-one-instance-per-id"),
    _Entry("Jurisdiction mismatch",
           (E.JURISDICTION_MISMATCH,),
           "A jurisdictional sub-namespace was given an id from another jurisdiction.", _NO,
           "Create ids with the same `namespace.jurisdiction(j)` you get stubs from.",
           "03-one-instance-per-id"),
    _Entry("Jurisdictions not available locally",
           ("Jurisdiction restrictions are not implemented in workerd.",),
           "Local workerd (wrangler dev) does not implement jurisdictions.", _NO,
           "Skip `jurisdiction` in local development (make it configuration).",
           "11-workers-and-wrangler"),
    _Entry("Unknown routingMode",
           (E.UNKNOWN_ROUTING_MODE,),
           "`get(id, routingMode=...)` accepts only \"primary-only\".", _NO,
           "Drop the option or pass \"primary-only\".", "03-one-instance-per-id"),
    # -- storage API and limits (spec §5) --
    _Entry("Storage key too large",
           (E.KEY_TOO_LARGE,),
           "KV-backed storage keys are limited to 2,048 bytes (UTF-8).", _NO,
           "Use short keys: hash long identifiers (`hashlib.sha256(k.encode()).hexdigest()`).",
           "09-storage-limits"),
    _Entry("Storage value too large",
           (E.VALUE_TOO_LARGE,),
           "KV-backed storage values are limited to 131,072 bytes (128 KiB) serialized; a value "
           "that grows (a list of every message) passes it one day.", _NO, _LIMIT_FIX,
           "09-storage-limits"),
    _Entry("Too many keys in one call",
           (E.TOO_MANY_KEYS,),
           "`get`, `put` and `delete` take at most 128 keys per call.", _NO,
           "Work in chunks of 128 keys.", "09-storage-limits"),
    _Entry("Key and value over 2 MB (SQLite-backed)",
           (E.SQLITE_PAIR_TOO_LARGE,),
           "On SQLite-backed objects a key and its value together are limited to 2 MB.", _NO,
           _LIMIT_FIX, "09-storage-limits"),
    _Entry("put() with an undefined value",
           (E.PUT_UNDEFINED,),
           "`put(key, undefined)` is rejected (in JavaScript; Python's None is stored as null).",
           _NO, "Use `delete(key)` to remove a key; store null/None explicitly if you mean it.",
           "01-tour"),
    _Entry("put() called with the wrong arguments",
           (E.PUT_SIGNATURE,),
           "`put` takes `(key, value)` or `(entries)` plus keyword options.", _NO,
           "Call `put(\"k\", v)` or `put({\"a\": 1, \"b\": 2})`.", "01-tour"),
    _Entry("list() with both start and startAfter",
           (E.LIST_START_AND_AFTER,),
           "`list` takes `start` (inclusive) or `startAfter` (exclusive), not both.", _NO,
           "Pass only one of them.", "01-tour"),
    _Entry("list() limit not positive",
           (E.LIST_LIMIT,),
           "`list(limit=...)` must be at least 1.", _NO,
           "Pass a positive limit, or none for everything.", "01-tour"),
    _Entry("Synchronous kv.list() iterator invalidated",
           ("kv.list() iterator was invalidated because a new call to kv.list() was started. "
            "Only one kv.list() iterator can exist at a time.",),
           "Only one `storage.kv.list()` iterator can be live; a second call invalidated the "
           "first.",
           _NO, "Consume the first iterator (`list(...)`) before starting another.", "01-tour"),
    # -- transactions (spec §5.3, §5.4) --
    _Entry("deleteAll() inside a transaction",
           (E.TXN_DELETE_ALL,),
           "`txn.deleteAll()` is not allowed inside `transaction()`.", _NO,
           "Call `self.ctx.storage.deleteAll()` outside the transaction, or delete keys by name.",
           "05-input-gates"),
    _Entry("Transaction used after rollback",
           (E.TXN_ROLLED_BACK,),
           "After `txn.rollback()` only `rollback()` may be called on the transaction; this "
           "called `{op}()`.", _NO,
           "Return right after `txn.rollback()`.", "05-input-gates"),
    _Entry("Transaction used after it committed",
           (E.TXN_COMMITTED,),
           "`txn` was used (`{op}()`) after the closure returned, so the transaction had "
           "already committed.", _NO,
           "Use `txn` only inside the closure, and await every operation before returning.",
           "05-input-gates"),
    _Entry("SQL BEGIN TRANSACTION / SAVEPOINT",
           ("To execute a transaction, please use the state.storage.transaction() or "
            "state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or "
            "SAVEPOINT statements.",),
           "SQL transaction statements are refused: the runtime manages transactions (implicit "
           "per turn, or explicit through the API).", _NO,
           "Use `self.ctx.storage.transactionSync(lambda: ...)` (it rolls back on exceptions), "
           "or rely on automatic write coalescing.", "05-input-gates"),
    # -- SQL (spec §5.4) --
    _Entry("SQL not authorized (SQLITE_AUTH)",
           ("not authorized: SQLITE_AUTH", "access to _cf_KV.{column} is prohibited"),
           "The statement touches something reserved: a `_cf_` table, `ATTACH`, a temporary "
           "table, or `PRAGMA user_version`.", _NO,
           "Name your tables without the `_cf_` prefix, use regular tables, keep schema versions "
           "in a table of your own.", "09-storage-limits"),
    _Entry("SQL one() found no rows",
           ("Expected exactly one result from SQL query, but got no results.",),
           "`cursor.one()` needs exactly one row and the query returned none.", _NO,
           "Use `toArray()` and handle the empty case, or `next(iter(cursor), None)`.",
           "09-storage-limits"),
    _Entry("SQL one() found several rows",
           ("Expected exactly one result from SQL query, but got multiple results.",),
           "`cursor.one()` needs exactly one row and the query returned more.", _NO,
           "Add a `WHERE`/`LIMIT 1`, or use `toArray()`.", "09-storage-limits"),
    _Entry("SQL without a statement",
           ("SQL code did not contain a statement.",),
           "`exec` got an empty query (or only a comment).", _NO,
           "Pass a statement.", "09-storage-limits"),
    _Entry("SQL binding count mismatch",
           ("Wrong number of parameter bindings for SQL query.",),
           "The number of `?` placeholders differs from the values passed to `exec`.", _NO,
           "Pass one value per `?` (bindings apply to the last statement).", "09-storage-limits"),
    _Entry("SQL syntax error",
           ("near \"{token}\": syntax error at offset {n}",),
           "SQLite could not parse the statement near `{token}`.", _NO,
           "Fix the SQL; test the statement in `sqlite3` first.", "09-storage-limits"),
    _Entry("SQL datatype mismatch",
           ("datatype mismatch: SQLITE_MISMATCH",),
           "A value does not fit a column's type (e.g. text into an INTEGER PRIMARY KEY).", _NO,
           "Convert values before binding them.", "09-storage-limits"),
    _Entry("SQL cursor closed by a re-run statement",
           ("SQL cursor was closed because the same statement was executed again.",),
           "A prepared statement was run again while an older cursor of it was still open.", _NO,
           "Consume cursors (`toArray()`) before running the statement again.",
           "09-storage-limits"),
    _Entry("Reset for violated SQL constraints",
           ("Durable Object was reset and rolled back to its last known good state because the "
            "application left the database in a state where constraints were violated: {msg}",),
           "Deferred constraints were still violated at commit, so the writes were rolled back "
           "and the object reset.", _NEW_STUB,
           "Satisfy deferred foreign keys before the turn ends (insert parents first).",
           "06-output-gates"),
    _Entry("SQLite storage full",
           ("database or disk is full: SQLITE_FULL",),
           "The object's database hit its size limit (10 GB on the Paid plan); the write rolled "
           "back and the object was reset.", _NO,
           "Delete old rows, or spread the data over more objects.", "09-storage-limits"),
    _Entry("Not backed by SQLite",
           (E.NOT_SQLITE, "SQL is not enabled for this Durable Object class."),
           "The class was created with `new_classes` (KV-backed), so `storage.sql` is unavailable.",
           _NO,
           "Create classes with `new_sqlite_classes` in `[[migrations]]` (in dolab: "
           "`lab.bind(name, cls, storage=\"sqlite\")`); a deployed KV class cannot be converted.",
           "11-workers-and-wrangler"),
    _Entry("transactionSync() on a KV-backed object",
           (E.NOT_SQL_BACKED,),
           "`transactionSync` needs a SQLite-backed object.", _NO,
           "Use `await storage.transaction(...)` or move to a `new_sqlite_classes` class.",
           "11-workers-and-wrangler"),
    _Entry("Synchronous KV on a KV-backed object",
           (E.SYNC_KV_NOT_SQLITE,
            "The storage.kv (synchronous KV) API is only available for SQLite-backed Durable "
            "Objects"),
           "`storage.kv` exists only on SQLite-backed objects.", _NO,
           "Use the async `storage.get/put`, or a `new_sqlite_classes` class.",
           "11-workers-and-wrangler"),
    _Entry("New KV-backed namespaces not allowed",
           ("Creating new key-value backed Durable Object namespaces is no longer supported on "
            "this account. Please create a namespace using a `new_sqlite_classes` migration "
            "instead.",),
           "The account can only create SQLite-backed namespaces.", _NO,
           "Use `new_sqlite_classes` in the migration.", "11-workers-and-wrangler"),
    # -- alarms (spec §6) --
    _Entry("setAlarm() with a time <= 0",
           (E.ALARM_TIME,),
           "`setAlarm` takes milliseconds since the epoch; 0 or a negative number is refused "
           "(often seconds or a delay were passed instead of a timestamp).", _NO,
           "Pass an absolute time in ms: `setAlarm(Date.now() + 60_000)`.", "08-alarms-vs-timers"),
    _Entry("setAlarm() without an alarm() handler",
           (E.ALARM_NO_HANDLER,),
           "The class has no `alarm` method, so an alarm could never run.", _NO,
           "Add `async def alarm(self, alarm_info=None):` to the class.", "08-alarms-vs-timers"),
    _Entry("Alarm fired without a handler",
           (E.ALARM_MISSING_AT_FIRE,),
           "A stored alarm came due but the class (a newer version?) has no `alarm()`; it is "
           "dropped, not retried.", _NO,
           "Keep an `alarm()` handler while alarms may be pending, or `deleteAlarm()` first.",
           "08-alarms-vs-timers"),
    # -- WebSockets (spec §9) --
    _Entry("WebSocket send() before accept()",
           ("You must call one of accept() or state.acceptWebSocket() on this WebSocket before "
            "sending messages.",),
           "The server end was used before being accepted.", _NO,
           "Call `self.ctx.acceptWebSocket(server)` (hibernatable) or `server.accept()` first.",
           "10-websockets"),
    _Entry("WebSocket send() after close()",
           ("Can't call WebSocket send() after close().",),
           "The socket was already closed.", _NO,
           "Skip closed sockets: iterate `self.ctx.getWebSockets()` and catch send errors.",
           "10-websockets"),
    _Entry("Too many WebSocket tags",
           ("a Hibernatable WebSocket cannot have more than 10 tags",),
           "`acceptWebSocket(ws, tags)` allows at most 10 distinct tags.", _NO,
           "Use at most 10 tags; keep further data in the attachment.", "10-websockets"),
    _Entry("WebSocket tag too long",
           ("\"{tag}\" is longer than the max tag length (256 characters).",),
           "A tag is longer than 256 characters.", _NO, "Use short tags (ids, not payloads).",
           "10-websockets"),
    _Entry("Too many hibernatable WebSockets",
           ("only 32768 websockets can be accepted on a single Durable Object instance",),
           "One object can hold at most 32,768 hibernatable sockets.", _NO,
           "Shard connections over several objects.", "10-websockets"),
    _Entry("acceptWebSocket() after accept()",
           ("Cannot call `acceptWebSocket()` if the WebSocket was already accepted via "
            "`accept()`",),
           "The socket was accepted with the standard API, so it cannot become hibernatable.",
           _NO, "Call only `self.ctx.acceptWebSocket(ws)`.", "10-websockets"),
    _Entry("accept() after acceptWebSocket()",
           ("Can't accept() WebSocket after enabling hibernation.",),
           "The socket is hibernatable already; `accept()` is the other API.", _NO,
           "Drop the `ws.accept()` call.", "10-websockets"),
    _Entry("WebSocket attachment too large",
           ("A WebSocket 'attachment' cannot be larger than 16384 bytes.'attachment' was {n} "
            "bytes.",),
           "`serializeAttachment` values are limited to 16,384 bytes serialized.", _NO,
           "Keep only ids in the attachment; store the rest in `ctx.storage`.", "10-websockets"),
    _Entry("WebSocket auto-response too large",
           ("Request cannot be larger than 2048 bytes. A request of size {n} was provided.",),
           "Auto-response request/response strings are limited to 2,048 bytes each.", _NO,
           "Use short ping/pong strings.", "10-websockets"),
    _Entry("Hibernatable event timeout too large",
           ("Event timeout should not exceed 604800000 ms.",),
           "`setHibernatableWebSocketEventTimeout` accepts at most 604,800,000 ms (7 days).", _NO,
           "Pass a smaller timeout (or 0 to unset).", "10-websockets"),
    _Entry("Invalid WebSocket close code",
           ("Invalid WebSocket close code: {code}.",),
           "Close codes must be 1000–4999, except 1004, 1005, 1006 and 1015.", _NO,
           "Use 1000 (normal), 1001 (going away) or an application code 4000–4999.",
           "10-websockets"),
    _Entry("WebSocket close reason without a code",
           ("If you specify a WebSocket close reason, you must also specify a code.",),
           "`close(reason=...)` needs a code too.", _NO, "Call `ws.close(1000, reason)`.",
           "10-websockets"),
    _Entry("WebSocket close reason too long",
           ("WebSocket close reason must not be longer than 123 bytes when UTF-8 encoded.",),
           "Close reasons are limited to 123 UTF-8 bytes.", _NO, "Shorten the reason.",
           "10-websockets"),
    _Entry("WebSocket dropped without a Close frame (1006)",
           ("WebSocket disconnected without sending Close frame.",),
           "The peer vanished without a Close frame; `webSocketClose` gets code 1006 and "
           "`wasClean=False`.", "Yes: the client should reconnect.",
           "Treat 1006 as a disconnect: clean up the socket's state in `webSocketClose`.",
           "10-websockets"),
    _Entry("WebSocket upgrade expected",
           ("Durable Object expected Upgrade: websocket",),
           "A plain HTTP request reached a WebSocket endpoint.", _NO,
           "Connect with a WebSocket client (`Upgrade: websocket`), or route plain requests "
           "elsewhere.", "10-websockets"),
    # -- Workers, bindings, wrangler (spec §10, §11) --
    _Entry("Binding missing from env",
           (),
           "The code uses `env.{binding}`, but no binding of that name is declared, so `env` has "
           "no such attribute (JavaScript: it is undefined).", _NO,
           "Declare it: `lab.bind(\"{binding}\", YourClass)` in dolab, or in wrangler.toml "
           "`[[durable_objects.bindings]]` with `name = \"{binding}\"` and `class_name = "
           "\"YourClass\"` (and a `[[migrations]]` entry). Check the spelling.",
           "11-workers-and-wrangler",
           (r"has no attribute '(?P<binding>[A-Z][A-Z0-9_]*)'",
            r"[Nn]o binding named '(?P<binding>\w+)'",
            r"\[\[durable_objects\.bindings\]\](?:[\s\S]*?name\s*=\s*\"(?P<binding>\w+)\")?",
            r"Cannot read properties of undefined \(reading '(?P<method>getByName|idFromName|"
            r"newUniqueId|idFromString|jurisdiction|get|put|fetch|list|delete)'\)")),
    _Entry("Durable Object class not exported",
           ("Your Worker depends on the following Durable Objects, which are not exported in "
            "your entrypoint file: {classes}.",),
           "wrangler found bindings to classes the entry module does not export: {classes}.",
           _NO, "Define or import the classes in the main module (`src/entry.py`).",
           "13-export"),
    _Entry("Class not in the Python Worker's main module",
           ("There is no '{cls}' class defined in the Python Worker's main module",),
           "The binding names `{cls}`, but the Python Worker's main module does not define it.",
           _NO, "Define the class in (or import it into) the main module.", "13-export"),
    _Entry("Migration to SQLite for an existing class",
           ("Cannot apply new_sqlite_classes migration to existing class {cls}",),
           "A deployed class cannot switch from KV-backed to SQLite-backed storage.", _NO,
           "Create a new class with `new_sqlite_classes` and migrate the data.",
           "11-workers-and-wrangler"),
    _Entry("Deleting a class that is still bound",
           ("Cannot apply --delete-class migration to class {cls} without also removing the "
            "binding that references it",),
           "A `deleted_classes` migration names a class a binding still uses.", _NO,
           "Remove the `[[durable_objects.bindings]]` entry in the same deploy.",
           "11-workers-and-wrangler"),
    _Entry("Both migrations and exports",
           ("`migrations` and `exports` are mutually exclusive.",),
           "wrangler accepts either `migrations` or the declarative `exports`, not both.", _NO,
           "Keep one of the two.", "11-workers-and-wrangler"),
    _Entry("Python Worker exceeded CPU time",
           ("Python Worker exceeded CPU time limit",),
           "One event used more than its CPU budget (30 s by default).", _NO,
           "Do less per event: split work across alarms, or move heavy work elsewhere.",
           "12-patterns"),
)


# ---- explain -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Explanation:
    """What an error means: ``title``, ``cause``, ``retry`` (whether retrying helps, and how),
    ``fix``, ``lesson``; ``matched`` is False for text dolab does not recognize, and then
    ``closest`` lists the titles of the nearest known errors."""

    title: str
    cause: str
    retry: str
    fix: str
    lesson: str
    matched: bool
    closest: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.matched:
            near = "; ".join(self.closest) or "nothing close"
            return "\n".join([self.title, _wrap("cause", self.cause), _wrap("closest", near)])
        rows = [("cause", self.cause), ("retry", self.retry), ("fix", self.fix),
                ("lesson", f"notebooks/{self.lesson}.ipynb")]
        return "\n".join([self.title, *(_wrap(k, v) for k, v in rows)])


def _wrap(label: str, text: str) -> str:
    return textwrap.fill(text, width=100, initial_indent=f"  {label + ':':9}",
                         subsequent_indent=" " * 11, break_long_words=False,
                         break_on_hyphens=False)


_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_DIGITS = {"n", "size", "code"}


def template_regex(template: str) -> str:
    """A regex for a message template: literal text escaped, ``{n}``/``{size}``/``{code}`` as
    digits, any other ``{name}`` as text on one line (named groups, first occurrence)."""
    parts: list[str] = []
    used: set[str] = set()
    pos = 0
    for match in _PLACEHOLDER.finditer(template):
        parts.append(re.escape(template[pos:match.start()]))
        name = match.group(1)
        last = match.end() == len(template)
        body = r"\d+" if name in _DIGITS else (r"[^\n]+" if last else r"[^\n]+?")
        parts.append(f"(?P<{name}>{body})" if name not in used else f"(?:{body})")
        used.add(name)
        pos = match.end()
    parts.append(re.escape(template[pos:]))
    return "".join(parts)


@dataclass(frozen=True)
class _Compiled:
    entry: _Entry
    regexes: tuple[re.Pattern[str], ...]


def _compile(entry: _Entry) -> _Compiled:
    sources = [template_regex(t) for t in entry.texts] + list(entry.patterns)
    sources += [re.escape(s) for t in entry.texts for s in [_first_sentence(t)] if s]
    return _Compiled(entry, tuple(re.compile(s) for s in sources))


def _first_sentence(template: str) -> str | None:
    """The first sentence of a longer message, without its period, so a pasted fragment
    ("Values cannot be larger than 131072 bytes") still matches; None when it holds a
    placeholder or is too short to be specific."""
    head, dot, rest = template.partition(". ")
    if not dot or not rest or "{" in head or len(head) < 20:
        return None
    return head


_COMPILED: tuple[_Compiled, ...] = tuple(_compile(e) for e in _CATALOGUE)


def explain(error: str | BaseException) -> Explanation:
    """Explain a Durable Object error message (or exception): the best (longest) match among
    the known texts, its cause, whether to retry, the fix and the lesson. An exception's flags
    decide the retry advice (``.overloaded`` never, ``.retryable`` yes)."""
    text = _error_text(error)
    best = _best_match(text)
    if best is None:
        return _unrecognized(text)
    entry, groups = best
    retry = _retry_advice(entry, error)
    return Explanation(entry.title, _fill(entry.cause, groups), retry,
                       _fill(entry.fix, groups), entry.lesson, True)


def _error_text(error: str | BaseException) -> str:
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    return str(error)


def _best_match(text: str) -> tuple[_Entry, dict[str, str]] | None:
    best: tuple[int, _Entry, dict[str, str]] | None = None
    for compiled in _COMPILED:
        for regex in compiled.regexes:
            match = regex.search(text)
            if match and (best is None or len(match.group(0)) > best[0]):
                groups = {k: v for k, v in match.groupdict().items() if v is not None}
                best = (len(match.group(0)), compiled.entry, groups)
    return None if best is None else (best[1], best[2])


def _fill(text: str, groups: dict[str, str]) -> str:
    """Put what the message said into ``{group}`` slots; other braces stay as they are."""
    return _PLACEHOLDER.sub(lambda m: groups.get(m.group(1), f"<{m.group(1)}>")
                            if m.group(1) in _SLOTS else m.group(0), text)


_SLOTS = frozenset({"name", "op", "cls", "url", "binding", "token", "tag", "classes", "column",
                    "msg", "what", "keys", "mode", "code", "n", "size", "method"})


def _retry_advice(entry: _Entry, error: str | BaseException) -> str:
    if isinstance(error, BaseException):
        if getattr(error, "overloaded", False):
            return _NEVER
        if getattr(error, "retryable", False):
            return _RETRYABLE
    return entry.retry


def _unrecognized(text: str) -> Explanation:
    return Explanation(
        "Not recognized",
        "This text does not match any Durable Object error dolab knows (spec §2–§11); it may "
        "come from your own code or another library.",
        "Unknown: retry only errors that carry `.retryable`, never `.overloaded` ones.",
        "Read the whole traceback; `dolab explain` knows the platform's own messages.",
        "", False, _closest(text))


def _closest(text: str, limit: int = 3, cutoff: float = 0.5) -> list[str]:
    """Titles of the known errors whose texts look most like the last line of ``text``."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    probe = (lines[-1] if lines else text).lower()
    scored: list[tuple[float, str]] = []
    for entry in _CATALOGUE:
        samples = [_PLACEHOLDER.sub("", t).lower() for t in entry.texts] + [entry.title.lower()]
        ratio = max(difflib.SequenceMatcher(None, probe, s).ratio() for s in samples)
        scored.append((ratio, entry.title))
    scored.sort(key=lambda s: -s[0])
    return [title for ratio, title in scored[:limit] if ratio >= cutoff]


def known_errors() -> list[str]:
    """The titles ``explain`` can recognize, in catalogue order."""
    return [e.title for e in _CATALOGUE]


# ---- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``dolab check PATH… [--format json] [--wrangler FILE] [--binding NAME]…`` exits 1 when
    there are findings, 2 on unreadable input; ``dolab explain TEXT…`` exits 1 when the text is
    not recognized."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if args.command == "check":
        return _run_check(args.paths, args.format, args.wrangler, args.bindings)
    return _run_explain(" ".join(args.text), args.format)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dolab", description="Durable Object pitfalls and errors")
    sub = parser.add_subparsers(dest="command", required=True)
    check_ = sub.add_parser("check", help="find Durable Object pitfalls in Python files")
    check_.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    check_.add_argument("--format", choices=("text", "json"), default="text")
    check_.add_argument("--wrangler", metavar="FILE", help="wrangler.toml/.json/.jsonc bindings")
    check_.add_argument("--binding", metavar="NAME", action="append", dest="bindings",
                        help="a declared binding name (repeatable)")
    explain_ = sub.add_parser("explain", help="explain a Durable Object error message")
    explain_.add_argument("text", nargs="+", help="the error text")
    explain_.add_argument("--format", choices=("text", "json"), default="text")
    return parser


def _python_files(paths: list[str]) -> Iterator[Path]:
    for name in paths:
        path = Path(name)
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def _run_check(paths: list[str], fmt: str, wrangler: str | None,
               bindings: list[str] | None) -> int:
    results: list[tuple[Path, Finding]] = []
    failed = False
    for path in _python_files(paths):
        try:
            results += [(path, f) for f in check_path(path, bindings=bindings, wrangler=wrangler)]
        except (OSError, SyntaxError, ValueError, tomllib.TOMLDecodeError) as error:
            print(f"{path}: cannot check: {error}", file=sys.stderr)
            failed = True
    _print_findings(results, fmt)
    return 2 if failed else 1 if results else 0


def _print_findings(results: list[tuple[Path, Finding]], fmt: str) -> None:
    if fmt == "json":
        rows = [{"path": str(p), **dataclasses.asdict(f)} for p, f in results]
        print(json.dumps(rows, indent=2))
        return
    for path, finding in results:
        print(f"{path}:{finding.line}: {finding.code}: {finding.message}")
        print(_wrap("fix", finding.fix))
        print(_wrap("lesson", f"notebooks/{finding.lesson}.ipynb"))
    print(f"{len(results)} finding{'s' if len(results) != 1 else ''}")


def _run_explain(text: str, fmt: str) -> int:
    explanation = explain(text)
    if fmt == "json":
        print(json.dumps(dataclasses.asdict(explanation), indent=2))
    else:
        print(explanation)
    return 0 if explanation.matched else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
