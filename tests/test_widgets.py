"""The widgets' synced traits — what they would draw — tested without a browser."""
from __future__ import annotations

import asyncio
import importlib.resources
import json
import time
from typing import Any

import anywidget
import ipywidgets
import pytest
from test_views import Counter, lost_update, synthetic

from dolab import DurableObject, Lab, Response, WorkerEntrypoint, views
from dolab import trace as t
from dolab.trace import Trace
from dolab.widgets import Dashboard, Inspector, Sockets, Timeline, dashboard
from dolab.widgets._live import MIN_INTERVAL


def count_updates(widget: Any, name: str) -> list[Any]:
    seen: list[Any] = []
    widget.observe(lambda change: seen.append(change["new"]), name)
    return seen


async def real_sleep(seconds: float) -> None:
    """Wait in real time (the lab's virtual clock does not move while nothing awaits it)."""
    await asyncio.sleep(seconds)


# ---- timeline ------------------------------------------------------------------------------------

async def test_timeline_traits_for_three_concurrent_lost_updates(lab: Lab) -> None:
    await lost_update(lab)
    widget = Timeline(lab)
    try:
        assert [lane["id"] for lane in widget.lanes] == ["COUNTER:c"]
        assert len(widget.bars) == 3 and {b["lane"] for b in widget.bars} == {"COUNTER:c"}
        externals = [[s for s in b["segments"] if s["kind"] == "external"] for b in widget.bars]
        assert all(len(e) == 1 for e in externals)
        spans = [(e[0]["start"], e[0]["end"]) for e in externals]
        assert max(s for s, _ in spans) < min(e for _, e in spans)  # all three overlap
        assert len(widget.ticks) == len(lab.trace.events(t.COMMIT))
        assert widget.palette == views.palette()
        assert widget.extent["shown"] == 3
    finally:
        widget.close()


async def test_timeline_updates_live_and_throttled(lab: Lab) -> None:
    lab.bind("COUNTER", Counter)
    stub = lab.env.COUNTER.getByName("c")
    widget = Timeline(lab)
    updates = count_updates(widget, "bars")
    started = time.monotonic()
    for _ in range(20):
        await asyncio.gather(*[stub.safe_increment() for _ in range(10)])
    await real_sleep(3 * MIN_INTERVAL)
    elapsed = time.monotonic() - started
    try:
        events = len(lab.trace)
        assert events > 1000
        assert 1 <= len(updates) <= elapsed / MIN_INTERVAL + 2  # ≤ 20 per second, not per event
        assert len(widget.bars) == 200 and widget.bars[-1]["status"] == "finished"
        assert len(widget.ticks) == len(lab.trace.events(t.COMMIT))
    finally:
        widget.close()


async def test_timeline_refresh_scheduled_from_inside_an_object_is_a_real_timer() -> None:
    # A request that outlasts the refresh interval records events inside the object with no
    # refresh pending, where the lab patches call_later/call_at onto the lab clock: the widget
    # must still get a plain asyncio timer (and must not break the request).
    real = Lab(path=None, clock="real")
    real.bind("COUNTER", Counter)
    stub = real.env.COUNTER.getByName("slow")
    widget = Timeline(real)
    handles: list[Any] = []
    real.trace.subscribe(lambda event: handles.append(widget._throttle._handle))
    try:
        await real_sleep(2 * MIN_INTERVAL)
        assert await asyncio.wait_for(stub.increment(), 5) == 1  # waits 5 ms on the real clock
        await real_sleep(3 * MIN_INTERVAL)
        assert {type(h) for h in handles} <= {asyncio.TimerHandle, type(None)}
        assert [b["status"] for b in widget.bars] == ["finished"]
    finally:
        widget.close()
        real.close()


def test_timeline_without_a_loop_refreshes_on_demand() -> None:
    trace = Trace(lambda: 0.0)
    widget = Timeline(trace)
    updates = count_updates(widget, "bars")
    try:
        trace.record("A:x", t.QUEUED, "r1", method="go")
        trace.record("A:x", t.DELIVERED, "r1")
        assert updates == [] and widget.bars == []
        widget.refresh()
        assert len(updates) == 1 and widget.bars[0]["status"] == "running"
    finally:
        widget.close()


def test_timeline_sends_bounded_data_for_a_10000_request_trace() -> None:
    trace = synthetic(10_000)
    widget = Timeline(trace)
    try:
        assert len(widget.bars) == views.DEFAULT_LIMIT
        assert widget.extent["hidden"] == 10_000 - views.DEFAULT_LIMIT
        state = {k: getattr(widget, k) for k in ("lanes", "bars", "ticks", "markers", "extent")}
        assert len(json.dumps(state)) < 1_000_000
        for i in range(10_000, 10_100):  # more events: still the last 500
            trace.record("COUNTER:x", t.QUEUED, f"r{i + 1}", method="m")
        widget.refresh()
        assert len(widget.bars) == views.DEFAULT_LIMIT
        assert widget.bars[-1]["request"] == "r10100"
    finally:
        widget.close()


def test_timeline_axis_and_clear() -> None:
    trace = synthetic(3)
    widget = Timeline(trace)
    try:
        assert widget.extent["axis"] == "order"
        widget.axis = "time"  # what the browser's axis menu sets
        assert widget.extent["axis"] == "time"
        trace.clear()
        trace.record("B:y", t.QUEUED, "r9", method="m")
        widget.refresh()
        assert [b["request"] for b in widget.bars] == ["r9"]
        trace.clear()  # as many events again as before the clear: still a rebuild
        for i in range(len(synthetic(3)) + 1):
            trace.record("B:z", t.QUEUED, f"s{i}", method="m")
        widget.refresh()
        assert {b["request"] for b in widget.bars} == {f"s{i}" for i in range(len(trace))}
    finally:
        widget.close()


def test_closed_timeline_stops_listening() -> None:
    trace = Trace(lambda: 0.0)
    widget = Timeline(trace)
    widget.close()
    trace.record("A:x", t.QUEUED, "r1")
    assert widget._pending == type(widget._pending)()


# ---- inspector -----------------------------------------------------------------------------------

async def test_inspector_history_slider_labels_and_diff(lab: Lab) -> None:
    lab.bind("COUNTER", Counter)
    stub = lab.env.COUNTER.getByName("c")
    for _ in range(3):
        await stub.safe_increment()
    widget = Inspector(lab, stub)
    try:
        assert (widget.label, widget.state, widget.objects) == ("COUNTER:c", "live", ["COUNTER:c"])
        assert [(v["version"], v["request"]) for v in widget.versions] == [
            (1, "r1"), (2, "r2"), (3, "r3")]
        assert widget.versions[0]["label"].startswith("v1 · r1 · 2026-01-01T")
        assert widget.index == 2 and widget.entries == [{"key": "count", "value": "3"}]
        assert widget.diff == [{"kind": "kv", "key": "count", "change": "changed", "old": "2",
                                "new": "3"}]
        widget.index = 0  # the browser moved the slider
        assert widget.entries == [{"key": "count", "value": "1"}]
        assert [d["change"] for d in widget.diff] == ["added"]
        await stub.safe_increment()
        widget.refresh()
        assert len(widget.versions) == 4 and widget.index == 0  # not at the end: stays put
        widget.index = 3
        await stub.safe_increment()
        widget.refresh()
        assert widget.index == 4 and widget.entries == [{"key": "count", "value": "5"}]
    finally:
        widget.close()


async def test_inspector_shows_alarm_and_instance_state(lab: Lab) -> None:
    class Alarmed(DurableObject):
        async def arm(self):
            self.ctx.storage.setAlarm(lab_ms(lab) + 60_000)

        async def alarm(self):
            pass

    lab.bind("ALARMED", Alarmed)
    stub = lab.env.ALARMED.getByName("a")
    await stub.arm()
    widget = Inspector(lab, "ALARMED:a")
    try:
        assert widget.alarm == "2026-01-01T00:01:00.000Z"
        assert [d["kind"] for d in widget.diff] == ["alarm"]
        await lab.evict(stub)
        await real_sleep(3 * MIN_INTERVAL)
        widget.refresh()
        assert widget.state == "evicted"
    finally:
        widget.close()


def lab_ms(lab: Lab) -> int:
    return int(lab.now() * 1000)


async def test_inspector_updates_live_on_commits(lab: Lab) -> None:
    lab.bind("COUNTER", Counter)
    stub = lab.env.COUNTER.getByName("c")
    widget = Inspector(lab)  # no object yet: picks the first one that appears
    try:
        assert (widget.label, widget.versions) == ("", [])
        await stub.safe_increment()
        widget.refresh()
        assert widget.label == "COUNTER:c" and len(widget.versions) == 1
        await stub.safe_increment()
        await real_sleep(3 * MIN_INTERVAL)
        assert len(widget.versions) == 2 and widget.index == 1
    finally:
        widget.close()


# ---- sockets -------------------------------------------------------------------------------------

class FakeClient:
    """The simulated client's surface (send, messages, close, drop, closed)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.closed = False
        self.log: list[Any] = []

    def send(self, message: Any) -> None:
        self.log.append(("send", message))
        self.messages.append(f"echo: {message}")

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.log.append(("close", code, reason))
        self.closed = True

    def drop(self) -> None:
        self.log.append(("drop",))
        self.closed = True


def test_sockets_cards_and_actions_from_the_browser(lab: Lab) -> None:
    widget = Sockets(lab)
    try:
        a, b = FakeClient(), FakeClient()
        assert widget.track(a, "ws://x/a") == "client 1"
        assert widget.track(b, "ws://x/b") == "client 2"
        assert widget.track(a) == "client 1"
        widget._on_browser(widget, {"action": "send", "client": "client 1", "text": "hi"}, [])
        widget._on_browser(widget, {"action": "close", "client": "client 1"}, [])
        widget._on_browser(widget, {"action": "drop", "client": "client 2"}, [])
        widget._on_browser(widget, {"action": "send", "client": "client 9", "text": "x"}, [])
        assert a.log == [("send", "hi"), ("close", 1000, "")] and b.log == [("drop",)]
        assert widget.error == "no client 'client 9'"
        cards = {c["id"]: c for c in widget.clients}
        assert cards["client 1"]["messages"] == [{"dir": "out", "text": "hi"},
                                                 {"dir": "in", "text": "echo: hi"}]
        assert (cards["client 1"]["state"], cards["client 2"]["state"]) == ("closed", "dropped")
    finally:
        widget.close()


def test_sockets_add_client_needs_a_running_loop(lab: Lab) -> None:
    widget = Sockets(lab)
    try:
        with pytest.raises(RuntimeError, match="running event loop"):
            widget.add_client()
    finally:
        widget.close()


class RefusingLab:
    """A lab whose connect fails (as with no Worker bound, or a non-101 answer)."""

    def __init__(self) -> None:
        self.trace = Trace(lambda: 0.0)
        self.urls: list[str] = []

    async def connect(self, url: str) -> Any:
        self.urls.append(url)
        await asyncio.sleep(0)
        raise RuntimeError("No Worker is bound")


async def test_sockets_add_client_runs_as_a_task_and_reports_errors() -> None:
    lab = RefusingLab()
    widget = Sockets(lab, url="ws://do/room")
    try:
        widget._on_browser(widget, {"action": "add", "url": "ws://do/other"}, [])
        assert widget.busy is True
        task = next(iter(widget._tasks))
        assert await task is None
        assert lab.urls == ["ws://do/other"]
        assert widget.error == "RuntimeError: No Worker is bound"
        assert widget.clients == [] and widget.busy is False
        assert await widget.add_client() is None and lab.urls[-1] == "ws://do/room"
    finally:
        widget.close()


class ChatRoom(DurableObject):
    async def fetch(self, request):
        from dolab import WebSocketPair

        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        for socket in self.ctx.getWebSockets():
            socket.send(f"{message}")


class ChatWorker(WorkerEntrypoint):
    async def fetch(self, request):
        return await self.env.CHAT_ROOM.getByName("lobby").fetch(request)


async def test_sockets_cards_after_a_broadcast(lab: Lab) -> None:
    # Needs the simulated WebSocket clients of dolab/websocket.py (lab.connect).
    lab.bind("CHAT_ROOM", ChatRoom)
    lab.worker(ChatWorker)
    widget = Sockets(lab, url="ws://chat/lobby")
    try:
        first = await widget.add_client()
        second = await widget.add_client()
        assert (first, second) == ("client 1", "client 2"), widget.error
        widget._on_browser(widget, {"action": "send", "client": "client 1", "text": "hi all"}, [])
        await lab.settle()
        await real_sleep(3 * MIN_INTERVAL)
        cards = {c["id"]: c for c in widget.clients}
        assert cards["client 1"]["messages"] == [{"dir": "out", "text": "hi all"},
                                                 {"dir": "in", "text": "hi all"}]
        assert cards["client 2"]["messages"] == [{"dir": "in", "text": "hi all"}]
        widget._on_browser(widget, {"action": "close", "client": "client 2"}, [])
        await lab.settle()
        widget.refresh()
        assert [(c["state"], c["close"]) for c in widget.clients] == [("open", ""),
                                                                     ("closed", "1000")]
        third = await lab.connect("ws://chat/lobby")  # opened in a cell: gets a card too
        third.send("me too")
        await lab.settle()
        await real_sleep(3 * MIN_INTERVAL)
        cards = {c["id"]: c for c in widget.clients}
        assert cards["client 3"]["messages"] == [{"dir": "in", "text": "me too"}]
        assert cards["client 1"]["messages"][-1] == {"dir": "in", "text": "me too"}
        widget._on_browser(widget, {"action": "drop", "client": "client 3"}, [])
        assert [c["state"] for c in widget.clients] == ["open", "closed", "dropped"]
        assert widget.clients[2]["close"].startswith("1006")
        later = Sockets(lab)  # "add client" defaults to where the last client connected
        assert later.url == "ws://chat/lobby" and len(later.clients) == 3
        later.close()
    finally:
        widget.close()


# ---- dashboard and packaging ---------------------------------------------------------------------

async def test_lab_show_is_the_dashboard_of_three_views(lab: Lab) -> None:
    await lost_update(lab)
    board = lab.show()
    try:
        assert isinstance(board, Dashboard) and isinstance(board, ipywidgets.VBox)
        assert isinstance(board.timeline, Timeline) and len(board.timeline.bars) == 3
        assert isinstance(board.inspector, Inspector) and isinstance(board.sockets, Sockets)
        assert board.inspector.label == "COUNTER:c"
        board.timeline.selected = "COUNTER:c"  # a click on a lane label
        assert board.inspector.label == "COUNTER:c"
        board.timeline.selected = "worker"  # not an object: the inspector keeps its object
        assert board.inspector.label == "COUNTER:c"
        # text/plain outputs carry no addresses (nbval compares them)
        assert board._repr_mimebundle_()["text/plain"] == "<Dashboard of lab 'my-worker'>"
        assert [repr(w) for w in (board.timeline, board.inspector, board.sockets)] == [
            "<Timeline: 3 requests, 1 lane>", "<Inspector: COUNTER:c, 1 version>",
            "<Sockets: 0 clients>"]
        assert [v["request"] for v in board.inspector.versions] == ["r3"]
    finally:
        board.close()
    assert dashboard.__module__ == "dolab.widgets.dashboard"


@pytest.mark.parametrize("cls, name", [(Timeline, "timeline"), (Inspector, "inspector"),
                                       (Sockets, "sockets")])
def test_widgets_ship_their_esm_and_css(cls: type, name: str) -> None:
    files = importlib.resources.files("dolab.widgets")
    common_esm, common_css = (files / "common.js").read_text(), (files / "common.css").read_text()
    esm, css = (files / f"{name}.js").read_text(), (files / f"{name}.css").read_text()
    assert issubclass(cls, anywidget.AnyWidget)
    # anywidget serves the package files: what all widgets share, then the widget's own
    assert (cls._esm, cls._css) == (common_esm + esm, common_css + css)
    assert "function html(" in common_esm and ".dolab-card" in common_css
    assert "export default { render }" in esm and "function render({ model, el })" in esm
    assert "model.on(" in esm and "model.off(" in esm
    assert css.strip()
