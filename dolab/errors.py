"""The error tree, with Cloudflare's texts.

Cloudflare's JavaScript error classes map onto Python's so that ported code catches what it expects::

    TypeError (builtin)            JS TypeError: argument misuse, RPC receiver errors, invalid ids
    ValueError (builtin)
     └── RangeError                JS RangeError: storage limits, unknown routingMode
    TypeError
     └── DataCloneError            a value the structured-clone codec cannot copy
    RuntimeError (builtin)         JS Error: plain runtime errors (transaction misuse, SQL errors)
     └── DurableObjectError        platform errors about the object itself; carry the flags
          ├── DurableObjectReset       the instance was reset (abort, blockConcurrencyWhile, code update,
          │                            failed commit, constructor failure): durableObjectReset=True
          └── DurableObjectOverloaded  the mailbox is too deep: overloaded=True (never retry)
    Exception
     └── DOMException              WebSocket misuse; `.name` is the DOMException name
          (InvalidAccessError, SyntaxError, InvalidStateError)

Every error that crosses a stub keeps its class and message, loses its other attributes, and gains
``remote=True`` (spec §3.3, §8.1). The flags ``remote``, ``retryable``, ``overloaded`` and
``durableObjectReset`` read as ``False`` on a ``DurableObjectError`` unless set; on other classes use
:func:`flag` to read them.
"""

from __future__ import annotations

from typing import TypeVar

E = TypeVar("E", bound=BaseException)

# ---- texts (spec verbatim) -------------------------------------------------------------------------

INVALID_ID = "Invalid Durable Object ID: must be 64 hex digits"
ID_OTHER_NAMESPACE = "Durable Object ID is not valid for this namespace."
JURISDICTION_MISMATCH = (
    "get called on jurisdictional subnamespace with an ID from a different jurisdiction"
)
UNKNOWN_ROUTING_MODE = "unknown routingMode: {mode}"
RPC_NOT_IMPLEMENTED = 'The RPC receiver does not implement the method "{name}".'
RPC_RESERVED = "'{name}' is a reserved method and cannot be called over RPC."
RPC_NOT_FUNCTION = '"{name}" is not a function.'
RPC_NO_KWARGS = (
    "RPC methods take positional arguments only, as on Cloudflare; "
    "{name}() was called with keyword arguments: {keys}."
)
RPC_PAYLOAD_TOO_LARGE = (
    "Serialized RPC arguments or return values are limited to 32MiB, "
    "but the size of this value was: {size} bytes."
)
CANNOT_SEND = "{cls} cannot be sent over RPC."
CANNOT_CLONE = "{what} could not be cloned."
INVALID_URL = "Invalid URL: {url}"

BCW_TIMEOUT = (
    "A call to blockConcurrencyWhile() in a Durable Object waited for too long. "
    "The call was canceled and the Durable Object was reset."
)
BCW_NESTED = "blockConcurrencyWhile() calls are nested too deeply."
ABORT_DEFAULT = "Application called abort() to reset Durable Object."
OVERLOADED = "Durable Object is overloaded. Too many requests queued."
CODE_UPDATED = "Durable Object reset because its code was updated."
INSTANCE_GONE = (
    "Connection closed: this Durable Object instance is no longer active. "
    "Reconnect or retry the request."
)
WS_RESET = "Durable Object connection closed because the object was reset."
STORAGE_TIMEOUT = "Durable Object storage operation exceeded timeout which caused object to be reset."

PUT_UNDEFINED = "put() called with undefined value."
PUT_SIGNATURE = (
    "put() may only be called with a single key-value pair and optional options as "
    "put(key, value, options) or with multiple key-value pairs and optional options as "
    "put(entries, options)"
)
LIST_START_AND_AFTER = "list() cannot be called with both start and startAfter values."
LIST_LIMIT = "List limit must be positive."
KEY_TOO_LARGE = "Keys cannot be larger than 2048 bytes. A key of size {size} was provided."
VALUE_TOO_LARGE = "Values cannot be larger than 131072 bytes. A value of size {size} was provided."
TOO_MANY_KEYS = "Maximum number of key value pairs is 128. {n} pairs were provided."
SQLITE_PAIR_TOO_LARGE = (
    "Key and value together cannot be larger than 2097152 bytes (2 MB) on a SQLite-backed "
    "Durable Object. A key and value of size {size} were provided."
)
TXN_DELETE_ALL = "Cannot call deleteAll() within a transaction"
TXN_ROLLED_BACK = "Cannot {op}() on rolled back transaction"
TXN_COMMITTED = (
    "Cannot call {op}() on transaction that has already committed: "
    "did you move `txn` outside of the closure?"
)

ALARM_TIME = "setAlarm() cannot be called with an alarm time <= 0"
ALARM_NO_HANDLER = (
    "Your Durable Object class must have an alarm() handler in order to call setAlarm()"
)
ALARM_MISSING_AT_FIRE = (
    "Attempted to run a scheduled alarm without a handler, "
    "did you remember to export an alarm() function?"
)

NOT_SQLITE = (
    "This Durable Object is not backed by SQLite storage, so the SQL API is not available. "
    "SQL can be enabled on a new Durable Object class by using the `new_sqlite_classes` instead of "
    "`new_classes` under `[[migrations]]` in your wrangler.toml, but an already-deployed class "
    "cannot be converted to SQLite (except by deleting the existing data)."
)
NOT_SQL_BACKED = "Durable Object is not backed by SQL."
SYNC_KV_NOT_SQLITE = (
    "The storage.kv (synchronous KV) API is only available for SQLite-backed Durable Objects, "
    "but this object is KV-backed."
)


class RangeError(ValueError):
    """JavaScript's RangeError: a value outside what the platform allows (storage limits…)."""


class DataCloneError(TypeError):
    """A value the structured-clone algorithm cannot copy (functions, class instances…)."""


class DOMException(Exception):
    """A DOMException (WebSocket misuse); ``name`` is the DOMException's name."""

    def __init__(self, message: str, name: str = "Error") -> None:
        super().__init__(message)
        self.name = name


class DurableObjectError(RuntimeError):
    """A platform error about a Durable Object, carrying Cloudflare's flags (spec §8.1)."""

    remote: bool = False
    retryable: bool = False
    overloaded: bool = False
    durableObjectReset: bool = False


class DurableObjectReset(DurableObjectError):
    """The instance was reset: in-memory state is gone, the stub that reached it is broken."""

    durableObjectReset = True


class DurableObjectOverloaded(DurableObjectError):
    """Too many events are queued for one object. Do not retry (spec §8.1)."""

    overloaded = True


class DatabaseLockedError(RuntimeError):
    """dolab's own: the lab's ZODB file is held by another process."""


class DamagedDatabaseError(RuntimeError):
    """dolab's own: the lab's ZODB file could not be read (a torn or garbage file)."""


class UnsafeDatabaseError(RuntimeError):
    """dolab's own: a database file names a class dolab does not admit, so it was not loaded."""


def flag(error: BaseException, name: str) -> bool:
    """Read one of Cloudflare's error flags (``remote``, ``retryable``…) from any exception."""
    return bool(getattr(error, name, False))


def mark(error: E, **flags: bool) -> E:
    """Set Cloudflare's flags on an exception (builtin exceptions accept attributes)."""
    for name, value in flags.items():
        setattr(error, name, value)
    return error


def remote_copy(error: BaseException) -> BaseException:
    """The error as a caller across a stub sees it: same class and message, flags kept,
    other attributes dropped, ``remote=True`` (spec §3.3, B20)."""
    cls = type(error)
    message = str(error)
    try:
        copy = cls(message) if cls is not DOMException else DOMException(message, error.name)  # type: ignore[attr-defined]
    except Exception:  # an exception class whose constructor wants other arguments
        copy = RuntimeError(message)
    for name in ("retryable", "overloaded", "durableObjectReset"):
        if flag(error, name):
            setattr(copy, name, True)
    copy.remote = True  # type: ignore[attr-defined]
    # Cloudflare drops the stack; dolab keeps it so a notebook traceback points at the cell
    # that defined the method (README, "Differences from Cloudflare").
    return copy.with_traceback(error.__traceback__)
