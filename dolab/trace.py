"""The one trace: every observable event of a lab, in order.

Widgets, plots, lessons and tests read this and nothing else (DESIGN.md §8). An event is a small
record ``(seq, time, obj, request, kind, detail)``:

- ``seq``     — a counter that orders events totally (lab time may stand still under the virtual clock)
- ``time``    — lab time in seconds since the epoch
- ``obj``     — the object's label, ``"BINDING:name"`` (or ``"BINDING:<hex prefix>"``), ``"worker"``
                or ``"lab"``
- ``request`` — the request id (``"r12"``) the event belongs to, or ``None``
- ``kind``    — one of the ``KINDS`` below
- ``detail``  — a small dict (method name, keys written, error text…)

The buffer is a ring of ``maxlen`` records (default 100,000); ``dropped`` counts the events that
fell out. A record is one event, except that an inline call which recorded nothing else while it
ran is kept as one record for its three events (queued, delivered, finished).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterator

QUEUED = "queued"                    # an event entered the object's mailbox
DELIVERED = "delivered"              # its handler started (input gate open)
STORAGE_AWAIT = "storage-await"      # handler awaits storage: the input gate stays closed
STORAGE_DONE = "storage-done"
EXTERNAL_AWAIT = "external-await"    # handler awaits something else: other events may interleave
EXTERNAL_DONE = "external-done"
READ = "read"                        # a storage read (get, list, sync kv, SQL)
WRITE = "write"                      # a put/delete/SQL write entered the write buffer
COMMIT = "commit"                    # a group commit made writes durable (obj="lab")
HELD = "held"                        # a result waits for the output gate
RELEASED = "released"                # the output gate let the result out
FINISHED = "finished"                # the caller received the result
ERROR = "error"                      # the caller received an error
CONSTRUCTED = "constructed"
RESET = "reset"
EVICTED = "evicted"
HIBERNATED = "hibernated"
TIMER_LOST = "timer-lost"            # an in-memory timer of a gone instance will never run
ALARM_SET = "alarm-set"
ALARM_DELETED = "alarm-deleted"
ALARM_FIRED = "alarm-fired"
ALARM_RETRY = "alarm-retry"
WS_OPEN = "ws-open"
WS_MESSAGE = "ws-message"
WS_SEND = "ws-send"
WS_CLOSE = "ws-close"
GATE_BLOCKED = "gate-closed"         # blockConcurrencyWhile/transaction started
GATE_OPENED = "gate-opened"

KINDS = (
    QUEUED, DELIVERED, STORAGE_AWAIT, STORAGE_DONE, EXTERNAL_AWAIT, EXTERNAL_DONE, READ, WRITE, COMMIT,
    HELD, RELEASED, FINISHED, ERROR, CONSTRUCTED, RESET, EVICTED, HIBERNATED, TIMER_LOST, ALARM_SET,
    ALARM_DELETED, ALARM_FIRED, ALARM_RETRY, WS_OPEN, WS_MESSAGE, WS_SEND, WS_CLOSE, GATE_BLOCKED,
    GATE_OPENED,
)


class Event:
    """One trace record (read-only by convention; a plain slotted class because it is created on
    every step of every request)."""

    __slots__ = ("seq", "time", "obj", "request", "kind", "detail")

    def __init__(self, seq: int, time: float, obj: str, request: str | None, kind: str,
                 detail: dict[str, Any]) -> None:
        self.seq = seq
        self.time = time
        self.obj = obj
        self.request = request
        self.kind = kind
        self.detail = detail

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and other.seq == self.seq and other.kind == self.kind

    def __hash__(self) -> int:
        return hash((self.seq, self.kind))

    def __repr__(self) -> str:
        extra = "".join(f" {k}={v!r}" for k, v in self.detail.items())
        req = f" {self.request}" if self.request else ""
        return f"<{self.seq} {self.kind} {self.obj}{req}{extra}>"


Listener = Callable[[Event], None]

# An inline call (host.run_inline) that runs to completion without recording anything else is
# stored as one record instead of three: (seq, time, obj, request, _INLINE, type, method, caller)
# holds its QUEUED and DELIVERED events (seq, seq + 1), and _INLINE_DONE adds (finished time,
# result) for its FINISHED event (seq + 2). Readers see the three ordinary events (``_expand``).
_INLINE = "inline"
_INLINE_DONE = "inline-done"
_SIZES = {_INLINE: 2, _INLINE_DONE: 3}


def _expand(raw: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    seq, when, obj, request, kind, type_, method, caller = raw[:8]
    queued = {"type": type_, "method": method, "caller": caller}
    events = [(seq, when, obj, request, QUEUED, queued),
              (seq + 1, when, obj, request, DELIVERED, {"method": method})]
    if kind == _INLINE_DONE:
        events.append((seq + 2, raw[8], obj, request, FINISHED, {"result": raw[9]}))
    return events


class _Fixed:
    """A plain function as a clock."""

    __slots__ = ("now",)

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now


class Trace:
    """A bounded, ordered record of lab events with a small query API."""

    def __init__(self, clock: Any, maxlen: int = 100_000) -> None:
        """``clock`` is the lab's clock (read as ``clock.now()`` on every record, so a clock may
        swap its ``now`` for a faster one), or a function returning the time (tests)."""
        self._clock = clock if hasattr(clock, "now") else _Fixed(clock)
        # Raw tuples (seq, time, obj, request, kind, detail): an Event is built when read or when
        # someone listens, which halves the cost of a record on every call's hot path.
        self._events: deque[tuple[Any, ...]] = deque(maxlen=maxlen)
        self._seq = 0
        self._listeners: list[Listener] = []
        self.enabled = True
        self._base = 0  # the last seq before the latest clear()
        self.clears = 0  # how many times clear() ran: views rebuild when it changes

    def record(self, obj: str, kind: str, request: str | None = None, **detail: Any) -> None:
        if not self.enabled:
            return
        self._seq += 1
        raw = (self._seq, self._clock.now(), obj, request, kind, detail)
        self._events.append(raw)
        if self._listeners:
            event = Event(*raw)
            for listener in self._listeners:
                listener(event)

    def record_delivery(self, obj: str, request: str, kind: str, method: str,
                        caller: str | None) -> tuple[Any, ...] | None:
        """QUEUED then DELIVERED of an event delivered at once (the RPC fast path), stored as one
        record; pass what it returns to ``record_finished``."""
        if self._listeners:  # why: listeners see events as they happen, so make them now
            self.record(obj, QUEUED, request, type=kind, method=method, caller=caller)
            self.record(obj, DELIVERED, request, method=method)
            return None
        seq = self._seq + 1
        self._seq = seq + 1
        raw = (seq, self._clock.now(), obj, request, _INLINE, kind, method, caller)
        self._events.append(raw)
        return raw

    def record_finished(self, obj: str, request: str, result: str,
                        delivery: tuple[Any, ...] | None = None) -> None:
        """FINISHED with the result's description. When nothing was recorded since ``delivery``
        (a handler that neither suspended nor touched storage), the three events of the call
        become one record."""
        events = self._events
        seq = self._seq + 1
        self._seq = seq
        if delivery is not None and seq == delivery[0] + 2 and events and events[-1] is delivery:
            d, now = delivery, self._clock.now()
            events[-1] = (d[0], d[1], obj, request, _INLINE_DONE, d[5], d[6], d[7], now, result)
            return
        raw = (seq, self._clock.now(), obj, request, FINISHED, {"result": result})
        events.append(raw)
        if self._listeners:
            event = Event(*raw)
            for listener in self._listeners:
                listener(event)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` on every new event; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def events(
        self, kind: str | tuple[str, ...] | None = None, obj: str | None = None,
        request: str | None = None,
    ) -> list[Event]:
        kinds = (kind,) if isinstance(kind, str) else kind
        return [
            Event(*e) for e in self._raw()
            if (kinds is None or e[4] in kinds)
            and (obj is None or e[2] == obj)
            and (request is None or e[3] == request)
        ]

    def kinds(self, obj: str | None = None, request: str | None = None) -> list[str]:
        return [e.kind for e in self.events(obj=obj, request=request)]

    def requests(self, obj: str | None = None) -> list[str]:
        """Request ids in the order they were queued."""
        return [e.request for e in self.events(QUEUED, obj=obj) if e.request]

    def objects(self) -> list[str]:
        seen: dict[str, None] = {}
        for e in self._events:
            if e[2] not in ("lab", "worker"):
                seen.setdefault(e[2], None)
        return list(seen)

    def clear(self) -> None:
        self._events.clear()
        self._base = self._seq
        self.clears += 1

    @property
    def dropped(self) -> int:
        """Events that fell out of the ring since the last ``clear`` (one seq per event)."""
        return self._seq - self._base - len(self)

    def __iter__(self) -> Iterator[Event]:
        return iter([Event(*e) for e in self._raw()])

    def __len__(self) -> int:
        return sum(_SIZES.get(e[4], 1) for e in self._events)

    def _raw(self) -> Iterator[tuple[Any, ...]]:
        """Every event as a raw tuple, in order, with the inline calls' records expanded."""
        for raw in self._events:
            if raw[4] in _SIZES:
                yield from _expand(raw)
            else:
                yield raw

    def __repr__(self) -> str:
        return f"<Trace {len(self)} events, {len(self.objects())} objects>"

    def plot(self, **options: Any) -> Any:
        """A matplotlib timeline of the trace (one lane per object)."""
        from .plots import plot_timeline

        return plot_timeline(self, **options)

    def sequence(self, **options: Any) -> Any:
        """A matplotlib sequence diagram of the trace (clients, Worker, objects, storage)."""
        from .plots import plot_sequence

        return plot_sequence(self, **options)
