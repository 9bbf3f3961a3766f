"""An object's write buffer: un-committed writes layered over its committed ZODB record.

Reads see the buffer first (so a ``get`` after an un-awaited ``put`` sees the value); the lab's flush
moves the buffer into the record and commits. A transaction stacks a ``TxnLayer`` on top, which
merges into the buffer only when its closure succeeds.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any, Iterator

from BTrees.OOBTree import OOBTree, OOBucket

from . import values

if TYPE_CHECKING:
    from .host import ObjectHost
    from .store import ObjectRecord

from .sql import MISSING
Pending = dict[str, "bytes | None"]  # key -> encoded value, or None for a delete


def merge(committed: Iterator[tuple[str, bytes]], pending: list[tuple[str, bytes | None]],
          reverse: bool) -> Iterator[tuple[str, bytes]]:
    """Merge two key-ordered streams; pending entries win, and a ``None`` hides the key."""
    tagged_committed = ((k, 1, v) for k, v in committed)
    tagged_pending = ((k, 0, v) for k, v in pending)
    if reverse:
        stream = heapq.merge(tagged_pending, tagged_committed, key=lambda t: (_Rev(t[0]), t[1]))
    else:
        stream = heapq.merge(tagged_pending, tagged_committed, key=lambda t: (t[0], t[1]))
    last: str | None = None
    for key, _, value in stream:
        if key == last:
            continue
        last = key
        if value is not None:
            yield key, value


class _Rev:
    """Inverts string order for a descending merge."""

    __slots__ = ("s",)

    def __init__(self, s: str) -> None:
        self.s = s

    def __lt__(self, other: _Rev) -> bool:
        return self.s > other.s

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Rev) and self.s == other.s


def _in_range(key: str, low: str | None, high: str | None) -> bool:
    return (low is None or key >= low) and (high is None or key < high)


def committed_items(record: ObjectRecord | None, low: str | None, high: str | None,
                    reverse: bool) -> Iterator[tuple[str, bytes]]:
    if record is None or (low is not None and high is not None and high <= low):
        return iter(())
    if not reverse:
        return iter(record.kv.items(min=low, max=high, excludemax=high is not None))
    return descending(record.kv, low, high)


def descending(node: Any, low: str | None, high: str | None) -> Iterator[tuple[str, bytes]]:
    """The items of a BTree (or bucket) in ``[low, high)``, largest key first.

    BTrees cannot iterate backwards (zopefoundation/BTrees#101), and indexing ``items()`` from the
    end costs O(n) per step (``len`` walks, and loads, every bucket). So walk the tree from its
    rightmost child and skip children wholly outside the range: O(log n + k) for k items."""
    if isinstance(node, OOBucket):
        yield from reversed(node.items(min=low, max=high, excludemax=high is not None))
        return
    state = OOBTree.__getstate__(node)  # ((child, key, …), first bucket), inline bucket, or None
    if state is None:
        return
    if len(state) == 1 and len(state[0]) == 1 and isinstance(state[0][0], tuple):
        flat = state[0][0][0]  # a one-bucket tree keeps its bucket inline: (k0, v0, k1, v1, …)
        for i in range(len(flat) - 2, -1, -2):
            key = flat[i]
            if low is not None and key < low:
                return
            if high is None or key < high:
                yield key, flat[i + 1]
        return
    children, keys = state[0][0::2], state[0][1::2]
    for i in range(len(children) - 1, -1, -1):
        floor = keys[i - 1] if i > 0 else None  # child i holds the keys in [keys[i-1], keys[i])
        if high is not None and floor is not None and floor >= high:
            continue
        yield from descending(children[i], low, high)
        if low is not None and floor is not None and floor <= low:
            return


class WriteBuffer:
    """The host's layer: pending writes, a pending deleteAll, a pending alarm change."""

    __slots__ = ("host", "pending", "cleared", "alarm_pending", "sql_cleared")

    def __init__(self, host: ObjectHost) -> None:
        self.host = host
        self.pending: Pending = {}
        self.cleared = False
        self.alarm_pending: Any = MISSING
        self.sql_cleared = False

    @property
    def dirty(self) -> bool:
        return bool(self.pending) or self.cleared or self.alarm_pending is not MISSING

    def read(self, key: str) -> Any:
        if key in self.pending:
            data = self.pending[key]
            return MISSING if data is None else data
        if self.cleared:
            return MISSING
        record = self.host.record
        return MISSING if record is None else record.kv.get(key, MISSING)

    def items(self, low: str | None, high: str | None, reverse: bool) -> Iterator[tuple[str, bytes]]:
        committed = iter(()) if self.cleared else committed_items(
            self.host.record, low, high, reverse)
        if not self.pending:
            return committed
        pending = sorted(((k, v) for k, v in self.pending.items() if _in_range(k, low, high)),
                         reverse=reverse)
        return merge(committed, pending, reverse)

    def write(self, entries: Pending, confirmed: bool) -> None:
        self.pending.update(entries)
        self.host.wrote(list(entries), confirmed)

    def alarm(self) -> float | None:
        if self.host.alarm_hides_current():
            return None
        if self.alarm_pending is not MISSING:
            return self.alarm_pending  # type: ignore[no-any-return]
        record = self.host.record
        return None if record is None else record.alarm

    def set_alarm(self, when: float | None, confirmed: bool) -> None:
        self.alarm_pending = when
        self.host.alarm_changed(when)
        self.host.wrote([], confirmed)

    def clear(self, confirmed: bool, with_alarm: bool) -> None:
        self.pending.clear()
        self.cleared = True
        if with_alarm:
            self.alarm_pending = None
            self.host.alarm_changed(None)
        self.host.wrote(["*"], confirmed)

    def discard(self) -> None:
        self.pending.clear()
        self.cleared = False
        self.alarm_pending = MISSING

    def apply(self, record: ObjectRecord) -> None:
        """Move the buffer into the record (inside the flush's ZODB transaction)."""
        if self.cleared:
            record.kv.clear()
        for key, data in self.pending.items():
            if data is None:
                record.kv.pop(key, None)
            else:
                record.kv[key] = data
        self.discard()

    def sync_backend(self) -> SyncBackend:
        return SyncBackend(self)


class SyncBackend:
    """The KVBackend protocol ``storage.kv`` (synchronous KV) runs on: decoded values."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer

    def get(self, key: str) -> Any:
        self.layer.host.limits.key(key)
        data = self.layer.read(key)
        return MISSING if data is MISSING else values.decode(data)

    def put(self, key: str, value: Any) -> None:
        raw = self.layer.host.limits.key(key)
        self.layer.write({key: self.layer.host.limits.value(raw, value)}, True)

    def delete(self, key: str) -> bool:
        existed = self.layer.read(key) is not MISSING
        if existed:
            self.layer.write({key: None}, True)
        return existed

    def items(self, start: str | None, end: str | None, reverse: bool) -> Iterator[tuple[str, Any]]:
        for key, data in self.layer.items(start, end, reverse):
            yield key, values.decode(data)


class TxnLayer:
    """A transaction's writes, over the host's buffer; merged into it on success."""

    def __init__(self, parent: WriteBuffer) -> None:
        self.parent = parent
        self.host = parent.host
        self.pending: Pending = {}
        self.alarm_pending: Any = MISSING

    def read(self, key: str) -> Any:
        if key in self.pending:
            data = self.pending[key]
            return MISSING if data is None else data
        return self.parent.read(key)

    def items(self, low: str | None, high: str | None, reverse: bool) -> Iterator[tuple[str, bytes]]:
        below = self.parent.items(low, high, reverse)
        if not self.pending:
            return below
        pending = sorted(((k, v) for k, v in self.pending.items() if _in_range(k, low, high)),
                         reverse=reverse)
        return merge(below, pending, reverse)

    def write(self, entries: Pending, confirmed: bool) -> None:
        self.pending.update(entries)

    def alarm(self) -> float | None:
        if self.alarm_pending is not MISSING:
            return self.alarm_pending  # type: ignore[no-any-return]
        return self.parent.alarm()

    def set_alarm(self, when: float | None, confirmed: bool) -> None:
        self.alarm_pending = when

    def discard(self) -> None:
        self.pending.clear()
        self.alarm_pending = MISSING

    def commit(self) -> None:
        if self.pending:
            self.parent.write(dict(self.pending), True)
        if self.alarm_pending is not MISSING:
            self.parent.set_alarm(self.alarm_pending, True)
        self.discard()
