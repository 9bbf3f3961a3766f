"""``ctx.storage``: the asynchronous KV API, transactions and the alarm API (spec §5.2, §5.3, §6).

Every method does its work when called and returns an awaitable that is already done, so an
un-awaited ``put`` is applied at once (as on Cloudflare) and a ``get`` after it sees the value.
Because the work is done before the awaitable is returned, awaiting storage never yields to the
loop: no other event can be delivered to the object meanwhile. That *is* the input gate's storage
rule (B59), enforced by construction rather than by a lock.

Writes go to the object's write buffer (``ObjectHost``); the lab commits all buffers dirtied in a
loop step in one ZODB transaction, and the output gate holds results until then (``gates.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Generator, Iterable, TypeVar

from . import errors, values
from .sql import MISSING
from .sql import SqlStorage, SyncKV, list_range

if TYPE_CHECKING:
    from .host import ObjectHost

T = TypeVar("T")
KV_KEY_LIMIT = 2048
KV_VALUE_LIMIT = 131072
KV_VALUE_SLACK = 34  # workerd enforces 131072 + 34 to absorb serializer headers (spec §5.2)
MAX_KEYS = 128
SQLITE_PAIR_LIMIT = 2 * 1024 * 1024


class Done:
    """An awaitable whose work is already done (like an already-resolved JS promise)."""

    __slots__ = ("value",)

    def __init__(self, value: Any = None) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, Any]:
        return self.value
        yield  # pragma: no cover - makes this a generator without ever suspending

    def __repr__(self) -> str:
        return f"<done: {self.value!r}>"


class Limits:
    """The documented production limits of one backend (spec §5.2, B37–B38)."""

    def __init__(self, backend: str) -> None:
        self.kv = backend == "kv"

    def key(self, key: Any) -> bytes:
        if not isinstance(key, str):
            raise TypeError(f"Storage keys must be strings, not {type(key).__name__}.")
        raw = key.encode("utf-8", "surrogatepass")
        if self.kv and len(raw) > KV_KEY_LIMIT:
            raise errors.RangeError(errors.KEY_TOO_LARGE.format(size=len(raw)))
        return raw

    def value(self, key_raw: bytes, value: Any) -> bytes:
        data = values.encode(value)
        if self.kv and len(data) > KV_VALUE_LIMIT + KV_VALUE_SLACK:
            raise errors.RangeError(errors.VALUE_TOO_LARGE.format(size=len(data)))
        if not self.kv and len(data) + len(key_raw) > SQLITE_PAIR_LIMIT:
            raise errors.RangeError(
                errors.SQLITE_PAIR_TOO_LARGE.format(size=len(data) + len(key_raw))
            )
        return data

    def batch(self, count: int) -> None:
        if count > MAX_KEYS:
            raise errors.RangeError(errors.TOO_MANY_KEYS.format(n=count))


def _keys_list(keys: Any) -> list[str] | None:
    return list(keys) if isinstance(keys, (list, set, frozenset)) else None


class KVOps:
    """The KV operations shared by ``ctx.storage`` and a transaction's ``txn``."""

    def __init__(self, host: ObjectHost, layer: Any) -> None:
        self._host = host
        self._layer = layer  # where reads and writes go: the host's buffer or a transaction's

    # -- reads --
    def get(self, keys: Any, *, allowConcurrency: bool = False, noCache: bool = False) -> Done:
        self._check("get")
        many = _keys_list(keys)
        if many is None:
            self._host.limits.key(keys)
            self._host.traced_read("get", keys)
            data = self._layer.read(keys)
            return Done(None if data is MISSING else values.decode(data))
        self._host.limits.batch(len(many))
        for key in many:
            self._host.limits.key(key)
        self._host.traced_read("get", many)
        found = {}
        for key in sorted(set(many)):
            data = self._layer.read(key)
            if data is not MISSING:
                found[key] = values.decode(data)
        return Done(found)

    def list(
        self, *, start: str | None = None, startAfter: str | None = None, end: str | None = None,
        prefix: str | None = None, reverse: bool = False, limit: int | None = None,
        allowConcurrency: bool = False, noCache: bool = False,
    ) -> Done:
        self._check("list")
        low, high = list_range(start, startAfter, end, prefix, limit)
        self._host.traced_read("list", prefix or start or startAfter or "")
        result: dict[str, Any] = {}
        if low is not None and high is not None and high <= low:
            return Done(result)
        for key, data in self._layer.items(low, high, reverse):
            if limit is not None and len(result) >= limit:
                break
            result[key] = values.decode(data)
        return Done(result)

    # -- writes --
    def put(self, key: Any, value: Any = MISSING, options: Any = MISSING, *,
            allowConcurrency: bool = False, allowUnconfirmed: bool = False,
            noCache: bool = False) -> Done:
        self._check("put")
        if isinstance(key, dict):
            if value is not MISSING and not isinstance(value, dict):
                raise TypeError(errors.PUT_SIGNATURE)
            return self._put_many(key, allowUnconfirmed)
        if value is MISSING:
            raise TypeError(errors.PUT_UNDEFINED)
        raw = self._host.limits.key(key)
        data = self._host.limits.value(raw, value)
        self._layer.write({key: data}, not allowUnconfirmed)
        return Done(None)

    def _put_many(self, entries: dict[Any, Any], allowUnconfirmed: bool) -> Done:
        kept = {k: v for k, v in entries.items() if v is not MISSING}
        self._host.limits.batch(len(kept))
        encoded = {}
        for key, value in kept.items():
            encoded[key] = self._host.limits.value(self._host.limits.key(key), value)
        if encoded:
            self._layer.write(encoded, not allowUnconfirmed)
        return Done(None)

    def delete(self, keys: Any, *, allowConcurrency: bool = False,
               allowUnconfirmed: bool = False, noCache: bool = False) -> Done:
        self._check("delete")
        many = _keys_list(keys)
        if many is None:
            self._host.limits.key(keys)
            existed = self._layer.read(keys) is not MISSING
            if existed:
                self._layer.write({keys: None}, not allowUnconfirmed)
            return Done(existed)
        self._host.limits.batch(len(many))
        check_keys(many, self._host.limits)
        present = [k for k in dict.fromkeys(many) if self._layer.read(k) is not MISSING]
        if present:
            self._layer.write({k: None for k in present}, not allowUnconfirmed)
        return Done(len(present))

    # -- alarms (spec §6) --
    def getAlarm(self, *, allowConcurrency: bool = False) -> Done:
        self._check("getAlarm")
        when = self._layer.alarm()
        return Done(None if when is None else int(round(when * 1000)))

    def setAlarm(self, scheduledTime: Any, *, allowConcurrency: bool = False,
                 allowUnconfirmed: bool = False) -> Done:
        self._check("setAlarm")
        millis = _alarm_millis(scheduledTime)
        if millis <= 0:
            raise TypeError(errors.ALARM_TIME)
        self._host.require_alarm_handler()
        when = max(millis / 1000, self._host.lab.clock.now())
        self._layer.set_alarm(when, not allowUnconfirmed)
        return Done(None)

    def deleteAlarm(self, *, allowConcurrency: bool = False,
                    allowUnconfirmed: bool = False) -> Done:
        self._check("deleteAlarm")
        self._layer.set_alarm(None, not allowUnconfirmed)
        return Done(None)

    def _check(self, op: str) -> None:
        """Transactions override this to refuse use after rollback or commit."""


def _alarm_millis(scheduled: Any) -> float:
    if isinstance(scheduled, datetime):
        return values.datetime_millis(scheduled)
    if isinstance(scheduled, bool) or not isinstance(scheduled, (int, float)):
        raise TypeError("setAlarm() expects a number of milliseconds since the epoch or a datetime.")
    return float(scheduled)


class DurableObjectStorage(KVOps):
    """``ctx.storage``; it belongs to one instance and refuses to work once that instance is gone."""

    def __init__(self, host: ObjectHost, owner: tuple[int, int]) -> None:
        super().__init__(host, host.buffer)
        self._owner = owner
        self._sql: SqlStorage | None = None
        self._kv: SyncKV | None = None

    @property
    def sql(self) -> SqlStorage:
        """``ctx.storage.sql`` (SQLite-backed objects); the database loads on first use."""
        if self._sql is None:
            kv_error = errors.NOT_SQLITE if self._host.backend == "kv" else None
            self._sql = SqlStorage(self._host.sql_db(), self._host.sql_written, kv_error)
        return self._sql

    @property
    def kv(self) -> SyncKV:
        """``ctx.storage.kv``: the synchronous KV API of SQLite-backed objects."""
        if self._kv is None:
            kv_error = errors.SYNC_KV_NOT_SQLITE if self._host.backend == "kv" else None
            self._kv = SyncKV(self._host.buffer.sync_backend(), kv_error)
        return self._kv

    def _check(self, op: str) -> None:
        self._host.check_owner(self._owner)

    def deleteAll(self, *, allowConcurrency: bool = False, allowUnconfirmed: bool = False,
                  noCache: bool = False) -> Done:
        self._check("deleteAll")
        self._host.delete_all(not allowUnconfirmed)
        return Done(None)

    def sync(self) -> Awaitable[None]:
        """Resolves once every write issued before the call is durable (spec §5.2)."""
        return self._host.until_committed()

    def transaction(self, closure: Callable[[DurableObjectTransaction], Awaitable[T]]) -> Any:
        """Run ``closure(txn)`` as a critical section (inside blockConcurrencyWhile, spec §5.3)."""
        return self._host.run_transaction(closure)

    def transactionSync(self, fn: Callable[[], T]) -> T:
        if self._host.backend == "kv":
            raise RuntimeError(errors.NOT_SQL_BACKED)
        result: T = self._host.transaction_sync(fn)
        return result

    def getCurrentBookmark(self) -> Any:
        raise RuntimeError("Point-in-time recovery is not supported by dolab (nor by local workerd).")

    getBookmarkForTime = onNextSessionRestoreBookmark = getCurrentBookmark


class TxnState:
    OPEN, ROLLED_BACK, COMMITTED = "open", "rolled back", "committed"


class DurableObjectTransaction(KVOps):
    """``txn`` inside ``storage.transaction(closure)``; its writes land only if the closure succeeds."""

    def __init__(self, host: ObjectHost, layer: Any) -> None:
        super().__init__(host, layer)
        self.state = TxnState.OPEN

    def _check(self, op: str) -> None:
        if self.state == TxnState.ROLLED_BACK:
            raise RuntimeError(errors.TXN_ROLLED_BACK.format(op=op))
        if self.state == TxnState.COMMITTED:
            raise RuntimeError(errors.TXN_COMMITTED.format(op=op))

    def rollback(self) -> None:
        if self.state == TxnState.COMMITTED:
            raise RuntimeError(errors.TXN_COMMITTED.format(op="rollback"))
        self.state = TxnState.ROLLED_BACK
        self._layer.discard()

    def deleteAll(self, **options: Any) -> None:
        raise RuntimeError(errors.TXN_DELETE_ALL)


def check_keys(keys: Iterable[Any], limits: Limits) -> None:
    for key in keys:
        limits.key(key)
