"""View models of a trace: what the timeline, inspector and sockets widgets and the plots draw.

Everything here is plain Python over trace events and the lab's public reads (``lab.history``),
so it runs and is tested without a browser (DESIGN.md §1 principles 4–5). The widgets only sync
these dicts as traits and the plots only draw them; colours and symbols live here once, so the
browser and matplotlib show the same legend.

A request in an object's lane is a **bar** from queued to released, cut into **segments**:

- ``gate``     — queued, waiting for the input gate (QUEUED → DELIVERED)
- ``run``      — the handler runs
- ``storage``  — awaiting storage: the input gate stays closed
- ``external`` — awaiting something else (another object, fetch, a wait): other events may
                 interleave here, which is where lost updates come from
- ``held``     — the result waits for the output gate (HELD → RELEASED)

Coordinates: ``axis="order"`` puts events at their trace ``seq`` (every event one step, so
serialization and interleaving show even when the virtual clock stands still); ``axis="time"``
puts them at lab time in seconds after the first event shown.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import trace as t
from .trace import Event

DEFAULT_LIMIT = 500          # bars sent to the browser, however long the trace
OPS_PER_BAR = 40             # reads/writes drawn inside one bar
TEXT_MAX = 120               # characters of a result or error shown in a tooltip

SEGMENTS: dict[str, dict[str, str]] = {
    "gate": {"label": "waiting for input gate", "color": "#b8b0ac"},
    "run": {"label": "running", "color": "#4c78a8"},
    "storage": {"label": "storage await (gate closed)", "color": "#f58518"},
    "external": {"label": "external await (may interleave)", "color": "#e45756"},
    "held": {"label": "held by output gate", "color": "#72b7b2"},
}
COMMIT_COLOR = "#2f9e44"
ERROR_COLOR = "#c92a2a"
OPS: dict[str, dict[str, str]] = {
    "read": {"label": "read", "color": "#1c3d5a"},
    "write": {"label": "write", "color": "#ffd43b"},
    "send": {"label": "socket send", "color": "#a5d8ff"},
    "other": {"label": "event", "color": "#868e96"},
}
_OP_KINDS = {t.READ: "read", t.WRITE: "write", t.WS_SEND: "send"}
# kind → label, a glyph for the browser, a matplotlib marker, a colour
MARKERS: dict[str, dict[str, str]] = {
    t.CONSTRUCTED: {"label": "constructed", "glyph": "▲", "mpl": "^", "color": "#2f9e44"},
    t.RESET: {"label": "reset", "glyph": "✖", "mpl": "X", "color": "#c92a2a"},
    t.EVICTED: {"label": "evicted", "glyph": "▼", "mpl": "v", "color": "#495057"},
    t.HIBERNATED: {"label": "hibernated", "glyph": "☾", "mpl": "v", "color": "#7048e8"},
    t.TIMER_LOST: {"label": "timer lost", "glyph": "⌀", "mpl": "x", "color": "#e8590c"},
    t.ALARM_SET: {"label": "alarm set", "glyph": "◇", "mpl": "d", "color": "#f08c00"},
    t.ALARM_DELETED: {"label": "alarm deleted", "glyph": "◌", "mpl": "1", "color": "#f08c00"},
    t.ALARM_FIRED: {"label": "alarm fired", "glyph": "★", "mpl": "*", "color": "#f08c00"},
    t.ALARM_RETRY: {"label": "alarm retry", "glyph": "↻", "mpl": "P", "color": "#e8590c"},
    t.WS_OPEN: {"label": "socket open", "glyph": "⊕", "mpl": "o", "color": "#1971c2"},
    t.WS_MESSAGE: {"label": "socket message", "glyph": "✉", "mpl": ".", "color": "#1971c2"},
    t.WS_SEND: {"label": "socket send", "glyph": "➚", "mpl": ".", "color": "#1971c2"},
    t.WS_CLOSE: {"label": "socket close", "glyph": "⊖", "mpl": "s", "color": "#1971c2"},
    t.ERROR: {"label": "error", "glyph": "!", "mpl": "X", "color": "#c92a2a"},
    t.GATE_BLOCKED: {"label": "blockConcurrencyWhile", "glyph": "⊓", "mpl": "|",
                     "color": "#495057"},
    t.GATE_OPENED: {"label": "gate opened", "glyph": "⊔", "mpl": "|", "color": "#495057"},
    t.READ: {"label": "read", "glyph": "·", "mpl": ".", "color": "#1c3d5a"},
    t.WRITE: {"label": "write", "glyph": "·", "mpl": ".", "color": "#f08c00"},
}
ALWAYS_MARKERS = frozenset({t.CONSTRUCTED, t.RESET, t.EVICTED, t.HIBERNATED, t.TIMER_LOST,
                            t.ALARM_SET, t.ALARM_DELETED, t.ALARM_FIRED, t.ALARM_RETRY,
                            t.WS_OPEN, t.WS_CLOSE})
LANE_STATES = {t.CONSTRUCTED: "live", t.EVICTED: "evicted", t.HIBERNATED: "hibernated",
               t.RESET: "reset"}


def palette() -> dict[str, Any]:
    """Colours and symbols, as the widgets sync them (one legend for browser and matplotlib)."""
    return {"segments": SEGMENTS, "ops": OPS, "markers": MARKERS, "commit": COMMIT_COLOR,
            "error": ERROR_COLOR}


def short(value: Any, limit: int = TEXT_MAX) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- timeline ------------------------------------------------------------------------------------

Point = tuple[int, float]  # (seq, time)


@dataclass
class _Bar:
    request: str
    lane: str
    start: Point
    method: str = ""
    type: str = ""
    caller: str | None = None
    status: str = "running"
    result: str | None = None
    error: str | None = None
    end: Point | None = None
    segments: list[list[Any]] = field(default_factory=list)  # [kind, start, end | None]
    ops: list[tuple[str, Point, str]] = field(default_factory=list)

    def open(self, kind: str, at: Point) -> None:
        self.close(at)
        self.segments.append([kind, at, None])

    def close(self, at: Point) -> None:
        if self.segments and self.segments[-1][2] is None:
            self.segments[-1][2] = at

    def current(self) -> str | None:
        if self.segments and self.segments[-1][2] is None:
            return str(self.segments[-1][0])
        return None


_OPENS = {t.QUEUED: "gate", t.DELIVERED: "run", t.STORAGE_AWAIT: "storage",
          t.STORAGE_DONE: "run", t.EXTERNAL_AWAIT: "external", t.EXTERNAL_DONE: "run",
          t.HELD: "held"}


class TimelineBuilder:
    """Folds trace events into bars, ticks and markers, incrementally and in bounded memory.

    ``feed`` takes events in trace order; ``view`` renders the last ``limit`` requests.
    """

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self.bars: OrderedDict[str, _Bar] = OrderedDict()
        self.ticks: deque[tuple[Point, int | None, list[str]]] = deque(maxlen=4 * limit)
        self.markers: deque[tuple[str, Point, str, str | None, str]] = deque(maxlen=4 * limit)
        self.lane_order: dict[str, int] = {}
        self.lane_state: dict[str, str] = {}
        self.requests_seen = 0
        self.events_seen = 0
        self.last: Point | None = None
        self.last_seq = 0

    def feed(self, events: Iterable[Event]) -> None:
        for event in events:
            if event.seq > self.last_seq:
                self._feed_one(event)

    def _feed_one(self, event: Event) -> None:
        at = (event.seq, event.time)
        self.last, self.last_seq = at, event.seq
        self.events_seen += 1
        if event.kind == t.COMMIT:
            objects = [str(o) for o in event.detail.get("objects", ())]
            self.ticks.append((at, event.detail.get("epoch"), objects))
            return
        if event.obj == "lab":
            return
        self.lane_order.setdefault(event.obj, len(self.lane_order))
        if event.kind in LANE_STATES:
            self.lane_state[event.obj] = LANE_STATES[event.kind]
        bar = self._bar_for(event, at)
        if bar is None:
            self._marker(event, at)
        else:
            self._advance(bar, event, at)

    def _bar_for(self, event: Event, at: Point) -> _Bar | None:
        if event.request is None or event.kind in ALWAYS_MARKERS:
            return None
        bar = self.bars.get(event.request)
        if bar is not None and bar.lane == event.obj:
            return bar
        if event.kind not in _OPENS and event.kind not in (t.ERROR, t.FINISHED):
            return None  # an op of a request that is not (or no longer) drawn: a marker
        bar = _Bar(event.request, event.obj, at)
        self.bars[event.request] = bar
        self.requests_seen += 1
        while len(self.bars) > self.limit:
            self.bars.popitem(last=False)
        return bar

    def _advance(self, bar: _Bar, event: Event, at: Point) -> None:
        kind, detail = event.kind, event.detail
        if kind in (t.QUEUED, t.DELIVERED):
            bar.method = str(detail.get("method", bar.method))
            bar.type = str(detail.get("type", bar.type or "request"))
            if kind == t.QUEUED:
                bar.caller = detail.get("caller")
        if kind in _OPENS:
            bar.open(_OPENS[kind], at)
        elif kind == t.RELEASED:
            bar.close(at)
            bar.end = at
        elif kind == t.FINISHED:
            self._finish(bar, at, "finished")
            result = detail.get("result", detail.get("status"))
            bar.result = None if result is None else short(result)
        elif kind == t.ERROR:
            self._finish(bar, at, "error")
            bar.error = short(detail.get("error", "error"))
        elif len(bar.ops) < OPS_PER_BAR:
            bar.ops.append((kind, at, _op_label(event)))

    @staticmethod
    def _finish(bar: _Bar, at: Point, status: str) -> None:
        bar.close(at)
        bar.status = status
        if bar.end is None:
            bar.end = at

    def _marker(self, event: Event, at: Point) -> None:
        if event.kind not in MARKERS or event.kind in _OPENS or event.kind == t.RELEASED:
            return
        text = f"{MARKERS[event.kind]['label']}{_detail_text(event.detail)}"
        self.markers.append((event.obj, at, event.kind, event.request, text))

    def view(self, axis: str = "order") -> TimelineView:
        return _render(self, axis)


def _op_label(event: Event) -> str:
    return f"{MARKERS.get(event.kind, {}).get('label', event.kind)}{_detail_text(event.detail)}"


def _detail_text(detail: dict[str, Any]) -> str:
    if not detail:
        return ""
    return " " + " ".join(f"{k}={short(v, 40)}" for k, v in detail.items())


@dataclass
class TimelineView:
    """What the timeline draws; every field is JSON-ready (the widget syncs them as traits)."""

    axis: str
    lanes: list[dict[str, Any]]
    bars: list[dict[str, Any]]
    ticks: list[dict[str, Any]]
    markers: list[dict[str, Any]]
    extent: dict[str, Any]

    def traits(self) -> dict[str, Any]:
        return {"lanes": self.lanes, "bars": self.bars, "ticks": self.ticks,
                "markers": self.markers, "extent": self.extent}


class _Scale:
    """Maps trace points to the chosen axis."""

    def __init__(self, axis: str, origin: Point) -> None:
        if axis not in ("order", "time"):
            raise ValueError('axis must be "order" (trace sequence) or "time" (lab seconds)')
        self.axis = axis
        self.origin = origin

    def x(self, at: Point) -> float:
        if self.axis == "order":
            return float(at[0])
        return round(at[1] - self.origin[1], 6)


def _render(builder: TimelineBuilder, axis: str) -> TimelineView:
    bars = list(builder.bars.values())
    first = min((b.start for b in bars), default=None)
    ticks = [k for k in builder.ticks if first is None or k[0] >= first]
    markers = [m for m in builder.markers if first is None or m[1] >= first]
    origin = min([p for p in (first, ticks[0][0] if ticks else None,
                              markers[0][1] if markers else None) if p is not None],
                 default=(0, 0.0))
    scale = _Scale(axis, origin)
    now = builder.last or origin
    lanes = _lanes(builder, bars, markers, ticks)
    rows = _stack(bars, now)
    bar_dicts = [_bar_dict(b, scale, now, rows[b.request]) for b in bars]
    for lane in lanes:
        lane["rows"] = max([rows[b.request] + 1 for b in bars if b.lane == lane["id"]], default=1)
    known = {lane["id"] for lane in lanes}
    tick_dicts = [_tick_dict(k, scale, known) for k in ticks]
    marker_dicts = [_marker_dict(m, scale) for m in markers]
    extent = _extent(builder, scale, origin, now, len(bars))
    extent["ops"] = [k for k in OPS if any(op["kind"] == k for b in bar_dicts for op in b["ops"])]
    extent["marker_kinds"] = list(dict.fromkeys(m["kind"] for m in marker_dicts))
    return TimelineView(axis, lanes, bar_dicts, tick_dicts, marker_dicts, extent)


def _lanes(builder: TimelineBuilder, bars: list[_Bar], markers: list[Any],
           ticks: list[Any]) -> list[dict[str, Any]]:
    used = {b.lane for b in bars} | {m[0] for m in markers}
    for _, _, objects in ticks:
        used.update(o for o in objects if o in builder.lane_order)
    ordered = sorted(used, key=lambda lane: (lane != "worker", builder.lane_order[lane]))
    return [{"id": lane, "label": "Worker" if lane == "worker" else lane,
             "kind": "worker" if lane == "worker" else "object",
             "state": "" if lane == "worker" else builder.lane_state.get(lane, "new")}
            for lane in ordered]


def _stack(bars: list[_Bar], now: Point) -> dict[str, int]:
    """Row of each bar inside its lane: concurrent requests stack (greedy, by trace order)."""
    rows: dict[str, int] = {}
    ends: dict[str, list[int]] = {}
    for bar in sorted(bars, key=lambda b: b.start):
        lane_ends = ends.setdefault(bar.lane, [])
        row = next((i for i, end in enumerate(lane_ends) if end < bar.start[0]), len(lane_ends))
        end = (bar.end or now)[0]
        if row == len(lane_ends):
            lane_ends.append(end)
        else:
            lane_ends[row] = end
        rows[bar.request] = row
    return rows


def _bar_dict(bar: _Bar, scale: _Scale, now: Point, row: int) -> dict[str, Any]:
    end = bar.end or now
    segments = [{"kind": kind, "start": scale.x(a), "end": scale.x(b or now)}
                for kind, a, b in bar.segments]
    ops = [{"kind": _op_kind(kind), "x": scale.x(at), "label": label}
           for kind, at, label in bar.ops]
    status = "queued" if bar.current() == "gate" and bar.status == "running" else bar.status
    return {"request": bar.request, "lane": bar.lane, "row": row, "method": bar.method,
            "type": bar.type, "caller": bar.caller, "start": scale.x(bar.start),
            "end": scale.x(end), "status": status, "result": bar.result, "error": bar.error,
            "segments": segments, "ops": ops, "title": _bar_title(bar, now)}


def _op_kind(kind: str) -> str:
    return _OP_KINDS.get(kind, "other")


def _bar_title(bar: _Bar, now: Point) -> str:
    """The hover text: the request, its outcome and where its time went."""
    head = f"{bar.request} · {bar.lane} · {bar.method or bar.type}"
    if bar.error is not None:
        outcome = f"error: {bar.error}"
    elif bar.status == "finished":
        outcome = "result: " + (bar.result if bar.result is not None else "(done)")
    else:
        outcome = "in flight: " + SEGMENTS.get(bar.current() or "run", SEGMENTS["run"])["label"]
    end = bar.end or now
    span = f"seq {bar.start[0]}–{end[0]} · {_ms(end[1] - bar.start[1])}"
    return "\n".join([head, outcome, span, _time_split(bar, now)])


def _time_split(bar: _Bar, now: Point) -> str:
    totals: dict[str, float] = {}
    for kind, a, b in bar.segments:
        totals[kind] = totals.get(kind, 0.0) + ((b or now)[1] - a[1])
    return " · ".join(f"{SEGMENTS[k]['label']} {_ms(v)}" for k, v in totals.items()
                      if k != "run" or v > 0)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.3f} s"


def _tick_dict(tick: tuple[Point, int | None, list[str]], scale: _Scale,
               known: set[str]) -> dict[str, Any]:
    at, epoch, objects = tick
    lanes = [o for o in objects if o in known]
    title = f"commit #{epoch} · {', '.join(objects) or 'no object data'}"
    return {"x": scale.x(at), "seq": at[0], "epoch": epoch, "lanes": lanes, "title": title}


def _marker_dict(marker: tuple[str, Point, str, str | None, str],
                 scale: _Scale) -> dict[str, Any]:
    lane, at, kind, request, text = marker
    title = f"{request} · {text}" if request else text
    return {"x": scale.x(at), "seq": at[0], "lane": lane, "kind": kind, "request": request,
            "title": title}


def _extent(builder: TimelineBuilder, scale: _Scale, origin: Point, now: Point,
            shown: int) -> dict[str, Any]:
    from .clock import iso

    x0, x1 = scale.x(origin), scale.x(now)
    if x1 <= x0:
        x1 = x0 + (1.0 if scale.axis == "order" else 0.001)
    return {"x0": x0, "x1": x1, "axis": scale.axis, "origin": iso(origin[1]),
            "requests": builder.requests_seen, "shown": shown,
            "hidden": builder.requests_seen - shown, "events": builder.events_seen}


def timeline(events: Iterable[Event], limit: int = DEFAULT_LIMIT,
             axis: str = "order") -> TimelineView:
    """The timeline of a trace (or any events in trace order): the last ``limit`` requests."""
    builder = TimelineBuilder(limit)
    builder.feed(events)
    return builder.view(axis)


# ---- inspector -----------------------------------------------------------------------------------

ENTRIES_MAX = 200  # KV entries shown for one version


def version_label(version: Any) -> str:
    by = version.request or "no request"
    return f"v{version.version} · {by} · {_when(version.time)}"


def _when(time: float | None) -> str:
    from .clock import iso

    return iso(time) if time else "—"  # 0: a record no request has written data to yet


def versions_list(history: Sequence[Any], limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
    """The history slider's stops, oldest first (the last ``limit`` versions)."""
    return [{"version": v.version, "request": v.request, "time": _when(v.time),
             "label": version_label(v)} for v in list(history)[-limit:]]


def entries(kv: dict[str, Any], limit: int = ENTRIES_MAX) -> list[dict[str, str]]:
    return [{"key": key, "value": short(value)} for key, value in list(kv.items())[:limit]]


def diff(old: Any | None, new: Any) -> list[dict[str, Any]]:
    """What ``new`` changed against ``old`` (None: the first version): KV keys, alarm, tables."""
    before: dict[str, Any] = {} if old is None else old.kv
    changes = [_change("kv", key, before.get(key, _ABSENT), new.kv.get(key, _ABSENT))
               for key in _union(before, new.kv)]
    old_alarm = None if old is None else old.alarm
    if old_alarm != new.alarm:
        changes.append(_change("alarm", "alarm", _alarm(old_alarm), _alarm(new.alarm)))
    old_tables = [] if old is None else list(old.sql_tables)
    for table in _union(dict.fromkeys(old_tables), dict.fromkeys(new.sql_tables)):
        changes.append(_change("sql", table, "table" if table in old_tables else _ABSENT,
                               "table" if table in new.sql_tables else _ABSENT))
    return [c for c in changes if c["change"] != "same"]


class _Absent:
    def __repr__(self) -> str:
        return "—"


_ABSENT: Any = _Absent()


def _union(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys([*a, *b]))


def _change(kind: str, key: str, old: Any, new: Any) -> dict[str, Any]:
    if old is _ABSENT:
        change = "added"
    elif new is _ABSENT:
        change = "removed"
    else:
        change = "same" if _same(old, new) else "changed"
    return {"kind": kind, "key": key, "change": change,
            "old": None if old is _ABSENT else short(old),
            "new": None if new is _ABSENT else short(new)}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(type(a) is type(b) and a == b)


def _alarm(when: float | None) -> Any:
    from .clock import iso

    return _ABSENT if when is None else iso(when)


def instance_state(events: Iterable[Event], label: str) -> str:
    """live, evicted, hibernated, reset, or "not constructed" — from the trace alone."""
    state = "not constructed"
    for event in events:
        if event.obj == label and event.kind in LANE_STATES:
            state = LANE_STATES[event.kind]
    return state


@dataclass
class InspectorView:
    label: str
    state: str
    versions: list[dict[str, Any]]
    index: int
    entries: list[dict[str, str]]
    hidden_entries: int
    tables: list[str]
    alarm: str | None
    diff: list[dict[str, Any]]

    def traits(self) -> dict[str, Any]:
        return {"label": self.label, "state": self.state, "versions": self.versions,
                "index": self.index, "entries": self.entries,
                "hidden_entries": self.hidden_entries, "tables": self.tables,
                "alarm": self.alarm, "diff": self.diff}


def inspect_object(label: str, state: str, history: Sequence[Any],
                   index: int | None = None) -> InspectorView:
    """One object at one committed version (``index`` into ``history``; None: the newest)."""
    from .clock import iso

    shown = list(history)[-DEFAULT_LIMIT:]
    if not shown:
        return InspectorView(label, state, [], -1, [], 0, [], None, [])
    i = len(shown) - 1 if index is None or not 0 <= index < len(shown) else index
    version = shown[i]
    previous = shown[i - 1] if i > 0 else None
    return InspectorView(
        label, state, versions_list(shown), i, entries(version.kv),
        max(0, len(version.kv) - ENTRIES_MAX), list(version.sql_tables),
        None if version.alarm is None else iso(version.alarm), diff(previous, version))


# ---- sequence diagram ----------------------------------------------------------------------------

SEQUENCE_ROWS = 120
UNCALLED = frozenset({"alarm", "ws"})  # request types no caller awaits (no call/return arrows)


@dataclass
class SequenceView:
    """Columns left to right and rows top to bottom: arrows (messages) and notes, in order."""

    columns: list[str]
    arrows: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    activations: list[dict[str, Any]]
    rows: int
    hidden_rows: int


class _SequenceBuilder:
    CALLER = "caller"
    STORAGE = "storage"

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.lane_of: dict[str, str] = {}      # request → where it runs
        self.type_of: dict[str, str] = {}      # request → rpc, fetch, alarm, ws…
        self.caller_of: dict[str, str] = {}    # request → the column it returns to
        self.open_worker: list[str] = []
        self.active: dict[str, float] = {}     # request → the row its activation starts
        self.depth: dict[str, int] = {}        # request → its activation's offset (interleaving)
        self.activations: list[dict[str, Any]] = []
        self.objects: dict[str, None] = {}
        self.clients: dict[str, None] = {}

    def feed(self, event: Event) -> None:
        if event.obj not in ("lab", "worker"):
            self.objects.setdefault(event.obj, None)
        handler = getattr(self, "_" + event.kind.replace("-", "_"), None)
        if handler is not None:
            handler(event)
        elif event.kind in ALWAYS_MARKERS or (event.kind in MARKERS and event.request is None):
            self._note(event.obj, MARKERS[event.kind]["label"], event.kind)

    def _arrow(self, src: str, dst: str, label: str, style: str, request: str | None) -> None:
        self.items.append({"type": "arrow", "src": src, "dst": dst, "label": label,
                           "style": style, "request": request})

    def _note(self, column: str, text: str, kind: str) -> None:
        self.items.append({"type": "note", "column": column, "text": text, "kind": kind})

    def _caller_column(self, event: Event) -> str:
        caller = event.detail.get("caller")
        if caller is not None and caller in self.lane_of:
            return self.lane_of[caller]
        if self.open_worker:
            return "worker"  # without a recorded caller: the Worker request in flight
        return self.CALLER

    def _queued(self, event: Event) -> None:
        assert event.request is not None
        kind = str(event.detail.get("type", "rpc"))
        self.lane_of[event.request] = event.obj
        self.type_of[event.request] = kind
        if kind in UNCALLED:
            return  # no caller waits: the socket's message or the alarm is drawn instead
        src = self._caller_column(event)
        self.caller_of[event.request] = src
        self._arrow(src, event.obj, str(event.detail.get("method", "call")), "call",
                    event.request)

    def _delivered(self, event: Event) -> None:
        if event.request is None:
            return
        if event.obj == "worker":
            self.open_worker.append(event.request)
            self.lane_of[event.request] = "worker"
            self.caller_of[event.request] = self.CALLER
            self._arrow(self.CALLER, "worker", str(event.detail.get("method", "fetch")),
                        "call", event.request)
        self.active[event.request] = len(self.items) - 0.5
        busy = {self.depth.get(r, 0) for r in self.active if self.lane_of.get(r) == event.obj
                and r != event.request}
        self.depth[event.request] = min(d for d in range(len(busy) + 1) if d not in busy)

    def _end(self, event: Event, label: str, style: str) -> None:
        request = event.request
        if request is None:
            self._note(event.obj, label, event.kind)
            return
        if request in self.open_worker:
            self.open_worker.remove(request)
        if self.type_of.get(request) not in UNCALLED:
            self._arrow(event.obj, self.caller_of.get(request, self.CALLER), label, style,
                        request)
        elif style == "error":
            self._note(event.obj, f"{request}: {label}", t.ERROR)
        start = self.active.pop(request, None)
        if start is not None:
            depth = self.depth.pop(request, 0)
            self.activations.append({"column": event.obj, "start": start, "depth": depth,
                                     "end": len(self.items) - 1, "request": request})

    def _finished(self, event: Event) -> None:
        result = event.detail.get("result", event.detail.get("status"))
        self._end(event, "ok" if result is None else short(result, 40), "return")

    def _error(self, event: Event) -> None:
        self._end(event, short(event.detail.get("error", "error"), 48), "error")

    def _read(self, event: Event) -> None:
        self._arrow(event.obj, self.STORAGE, str(event.detail.get("op", "read")), "storage",
                    event.request)

    def _write(self, event: Event) -> None:
        keys = ", ".join(str(k) for k in event.detail.get("keys", ()))
        self._arrow(event.obj, self.STORAGE, f"put {keys}".strip(), "storage", event.request)

    def _commit(self, event: Event) -> None:
        objects = [str(o) for o in event.detail.get("objects", ())]
        self._note(self.STORAGE, f"commit #{event.detail.get('epoch')}", t.COMMIT)
        for obj in objects:
            self._arrow(self.STORAGE, obj, "durable", "commit", None)

    def _external_await(self, event: Event) -> None:
        self._note(event.obj, f"{event.request}: await {event.detail.get('what', '…')}",
                   t.EXTERNAL_AWAIT)

    def _ws_open(self, event: Event) -> None:
        self._arrow(event.obj, self._client(event), f"open ({event.detail.get('api')})", "ws",
                    None)

    def _ws_message(self, event: Event) -> None:
        self._arrow(self._client(event), event.obj, _ws_text(event.detail), "ws", event.request)

    def _ws_send(self, event: Event) -> None:
        self._arrow(event.obj, self._client(event), _ws_text(event.detail), "ws", event.request)

    def _ws_close(self, event: Event) -> None:
        detail = event.detail
        label = f"close {detail.get('code')} {detail.get('reason') or ''}".strip()
        client = self._client(event)
        if detail.get("by") == "client":
            self._arrow(client, event.obj, short(label, 40), "ws", event.request)
        else:
            self._arrow(event.obj, client, short(label, 40), "ws", event.request)

    def _client(self, event: Event) -> str:
        name = f"client {event.detail.get('socket', '?')}"
        self.clients.setdefault(name, None)
        return name

    def view(self, max_rows: int) -> SequenceView:
        used = {i.get("src") for i in self.items} | {i.get("dst") for i in self.items} | {
            i.get("column") for i in self.items}
        columns = [c for c in [self.CALLER, *self.clients, "worker", *self.objects, self.STORAGE]
                   if c in used]
        hidden = max(0, len(self.items) - max_rows)
        kept = self.items[hidden:]
        for row, item in enumerate(kept):
            item["row"] = row
        activations = [dict(a, start=max(-0.5, a["start"] - hidden), end=a["end"] - hidden)
                       for a in self.activations if a["end"] >= hidden]
        return SequenceView(columns, [i for i in kept if i["type"] == "arrow"],
                            [i for i in kept if i["type"] == "note"], activations, len(kept),
                            hidden)


def _ws_text(detail: dict[str, Any]) -> str:
    if detail.get("binary"):
        return f"<{detail.get('size')} bytes>"
    return "“" + short(str(detail.get("text", "")), 30) + "”"


def sequence(events: Iterable[Event], max_rows: int = SEQUENCE_ROWS) -> SequenceView:
    """The sequence diagram of a trace: the caller (notebook), clients, the Worker, the objects
    and storage as columns; each call, return, read, write and commit as an arrow, in order."""
    builder = _SequenceBuilder()
    for event in events:
        builder.feed(event)
    return builder.view(max_rows)


# ---- sockets -------------------------------------------------------------------------------------

MESSAGES_MAX = 50  # messages shown per client card


def message_text(message: Any) -> str:
    if isinstance(message, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(message))} bytes> {short(bytes(message), 60)}"
    return short(message if isinstance(message, str) else repr(message), 400)


def client_state(client: Any, dropped: bool = False) -> str:
    """open, closing, closed (a Close handshake) or dropped (gone without one: code 1006)."""
    ready = getattr(client, "readyState", 3 if getattr(client, "closed", False) else 1)
    if ready < 2:
        return "open"
    if ready == 2:
        return "closing"
    if dropped or getattr(client, "was_clean", True) is False:
        return "dropped"
    return "closed"


def close_text(client: Any) -> str:
    code = getattr(client, "close_code", None)
    return "" if code is None else f"{code} {getattr(client, 'close_reason', '') or ''}".strip()


def client_card(cid: str, url: str, state: str, received: Sequence[Any],
                sent: Sequence[tuple[int, Any]], limit: int = MESSAGES_MAX,
                close: str = "") -> dict[str, Any]:
    """One simulated client as its card shows it: received (``in``) and sent (``out``) messages
    in order; ``sent`` holds ``(number of messages received before it, message)``."""
    merged: list[dict[str, str]] = []
    outgoing = iter(sent)
    nxt = next(outgoing, None)
    for i in range(len(received) + 1):
        while nxt is not None and nxt[0] <= i:
            merged.append({"dir": "out", "text": message_text(nxt[1])})
            nxt = next(outgoing, None)
        if i < len(received):
            merged.append({"dir": "in", "text": message_text(received[i])})
    return {"id": cid, "url": url, "state": state, "close": close, "received": len(received),
            "sent": len(sent), "messages": merged[-limit:],
            "hidden": max(0, len(merged) - limit)}
