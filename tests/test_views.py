"""View models of a trace (dolab.views): what the timeline, inspector, sockets and plots draw."""
from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from dolab import DurableObject, Lab, Response, WorkerEntrypoint, scheduler, views
from dolab import trace as t
from dolab.trace import Trace


class Counter(DurableObject):
    async def increment(self):
        value = await self.ctx.storage.get("count") or 0
        await scheduler.wait(5)  # not storage: the input gate opens, calls interleave
        self.ctx.storage.put("count", value + 1)
        return value + 1

    async def safe_increment(self):
        value = await self.ctx.storage.get("count") or 0
        self.ctx.storage.put("count", value + 1)
        return value + 1

    async def fail(self):
        raise ValueError("nope")


async def lost_update(lab: Lab, calls: int = 3) -> list[int]:
    lab.bind("COUNTER", Counter)
    stub = lab.env.COUNTER.getByName("c")
    return list(await asyncio.gather(*[stub.increment() for _ in range(calls)]))


def fake_trace() -> tuple[Trace, list[float]]:
    now = [1000.0]
    return Trace(lambda: now[0]), now


def overlaps(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


# ---- timeline ------------------------------------------------------------------------------------

async def test_lost_update_draws_three_overlapping_bars_in_one_lane(lab: Lab) -> None:
    assert await lost_update(lab) == [1, 1, 1]
    view = views.timeline(lab.trace)
    assert [lane["id"] for lane in view.lanes] == ["COUNTER:c"]
    assert [b["request"] for b in view.bars] == ["r1", "r2", "r3"]
    assert [b["row"] for b in view.bars] == [0, 1, 2]  # concurrent: stacked, not serialized
    assert view.lanes[0]["rows"] == 3
    for bar in view.bars:
        assert [s["kind"] for s in bar["segments"]] == ["gate", "run", "external", "run", "held"]
        assert [op["kind"] for op in bar["ops"]] == ["read", "write"]
        assert bar["status"] == "finished"
    externals = [next(s for s in b["segments"] if s["kind"] == "external") for b in view.bars]
    assert all(overlaps(a, b) for a in externals for b in externals if a is not b)
    assert len(view.ticks) == len(lab.trace.events(t.COMMIT)) == 1
    assert view.ticks[0]["lanes"] == ["COUNTER:c"]


async def test_serialized_requests_share_a_row(lab: Lab) -> None:
    lab.bind("COUNTER", Counter)
    stub = lab.env.COUNTER.getByName("c")
    for _ in range(3):
        await stub.safe_increment()
    view = views.timeline(lab.trace)
    assert [b["row"] for b in view.bars] == [0, 0, 0]
    assert [[s["kind"] for s in b["segments"]] for b in view.bars] == [
        ["gate", "run", "held"]] * 3
    assert len(view.ticks) == len(lab.trace.events(t.COMMIT)) == 3


async def test_bar_title_says_request_outcome_and_where_time_went(lab: Lab) -> None:
    await lost_update(lab, 1)
    title = views.timeline(lab.trace).bars[0]["title"]
    lines = title.splitlines()
    assert lines[0] == "r1 · COUNTER:c · increment"
    assert lines[1].startswith("result: ")
    assert "external await (may interleave) 5.0 ms" in lines[3]


def test_bar_segments_from_events_in_order() -> None:
    trace, now = fake_trace()
    trace.record("A:x", t.QUEUED, "r1", type="rpc", method="go")
    now[0] += 0.001
    trace.record("A:x", t.DELIVERED, "r1", method="go")
    trace.record("A:x", t.STORAGE_AWAIT, "r1")
    now[0] += 0.002
    trace.record("A:x", t.STORAGE_DONE, "r1")
    trace.record("A:x", t.WRITE, "r1", keys=["k"])
    trace.record("A:x", t.HELD, "r1")
    trace.record("lab", t.COMMIT, None, epoch=1, objects=["A:x"])
    trace.record("A:x", t.RELEASED, "r1")
    trace.record("A:x", t.FINISHED, "r1", result=42)
    bar = views.timeline(trace).bars[0]
    assert [(s["kind"], s["start"], s["end"]) for s in bar["segments"]] == [
        ("gate", 1, 2), ("run", 2, 3), ("storage", 3, 4), ("run", 4, 6), ("held", 6, 8)]
    assert (bar["start"], bar["end"], bar["status"], bar["result"]) == (1, 8, "finished", "42")
    timed = views.timeline(trace, axis="time").bars[0]
    assert [(s["kind"], s["start"], s["end"]) for s in timed["segments"]][:3] == [
        ("gate", 0.0, 0.001), ("run", 0.001, 0.001), ("storage", 0.001, 0.003)]


def test_running_and_queued_bars_end_at_the_latest_event() -> None:
    trace, _ = fake_trace()
    trace.record("A:x", t.QUEUED, "r1", method="slow")
    trace.record("A:x", t.DELIVERED, "r1")
    trace.record("A:x", t.EXTERNAL_AWAIT, "r1", what="fetch")
    trace.record("A:x", t.QUEUED, "r2", method="next")
    bars = views.timeline(trace).bars
    assert [(b["request"], b["status"], b["end"]) for b in bars] == [
        ("r1", "running", 4), ("r2", "queued", 4)]
    assert "in flight: external await" in bars[0]["title"]


async def test_errors_are_bars_with_error_status(lab: Lab) -> None:
    lab.bind("COUNTER", Counter)
    with pytest.raises(ValueError, match="nope"):
        await lab.env.COUNTER.getByName("c").fail()
    bar = views.timeline(lab.trace).bars[0]
    assert bar["status"] == "error"
    assert bar["error"] == "ValueError: nope"
    assert "error: ValueError: nope" in bar["title"]


async def test_lifecycle_markers_and_lane_state(lab: Lab) -> None:
    lab.bind("COUNTER", Counter)
    stub = lab.env.COUNTER.getByName("c")
    await stub.safe_increment()
    await lab.evict(stub)
    view = views.timeline(lab.trace)
    assert [m["kind"] for m in view.markers] == [t.CONSTRUCTED, t.EVICTED]
    assert view.lanes[0]["state"] == "evicted"
    await stub.safe_increment()
    view = views.timeline(lab.trace)
    assert [m["kind"] for m in view.markers] == [t.CONSTRUCTED, t.EVICTED, t.CONSTRUCTED]
    assert view.lanes[0]["state"] == "live"


async def test_worker_requests_get_their_own_lane_first(lab: Lab) -> None:
    class Front(WorkerEntrypoint):
        async def fetch(self, request):
            value = await self.env.COUNTER.getByName("c").safe_increment()
            return Response(str(value))

    lab.bind("COUNTER", Counter)
    lab.worker(Front)
    await lab.fetch("http://do/x")
    view = views.timeline(lab.trace)
    assert [(lane["id"], lane["label"], lane["kind"]) for lane in view.lanes] == [
        ("worker", "Worker", "worker"), ("COUNTER:c", "COUNTER:c", "object")]
    worker, obj = view.bars
    assert worker["lane"] == "worker" and worker["result"] == "200"
    assert worker["start"] < obj["start"] and obj["end"] < worker["end"]


def synthetic(requests: int) -> Trace:
    trace = Trace(lambda: 0.0, maxlen=10 * requests)
    for i in range(requests):
        rid, obj = f"r{i + 1}", f"COUNTER:{i % 7}"
        for kind in (t.QUEUED, t.DELIVERED, t.READ, t.WRITE, t.HELD):
            trace.record(obj, kind, rid, method="increment")
        trace.record("lab", t.COMMIT, None, epoch=i + 1, objects=[obj])
        trace.record(obj, t.RELEASED, rid)
        trace.record(obj, t.FINISHED, rid, result=i)
    return trace


def test_a_long_trace_renders_only_the_last_requests() -> None:
    view = views.timeline(synthetic(10_000))
    assert len(view.bars) == views.DEFAULT_LIMIT
    assert view.bars[0]["request"] == "r9501" and view.bars[-1]["request"] == "r10000"
    assert view.extent["hidden"] == 9_500 and view.extent["requests"] == 10_000
    assert len(view.ticks) <= 4 * views.DEFAULT_LIMIT
    assert all(tick["x"] >= view.bars[0]["start"] for tick in view.ticks)
    assert len(json.dumps(view.traits())) < 1_000_000


def test_incremental_feeding_equals_one_pass() -> None:
    trace = synthetic(50)
    events = list(trace)
    builder = views.TimelineBuilder(20)
    for start in range(0, len(events), 37):
        builder.feed(events[start:start + 37])
    builder.feed(events[:100])  # already seen: ignored
    assert builder.view().traits() == views.timeline(trace, limit=20).traits()


def test_axis_must_be_order_or_time() -> None:
    with pytest.raises(ValueError, match="order"):
        views.timeline(synthetic(1), axis="seconds")


def test_palette_covers_every_segment_and_marker() -> None:
    palette = views.palette()
    assert set(palette["segments"]) == {"gate", "run", "storage", "external", "held"}
    assert views.ALWAYS_MARKERS <= set(palette["markers"])
    assert len({s["color"] for s in palette["segments"].values()}) == 5


# ---- inspector -----------------------------------------------------------------------------------

def version(n: int, request: str | None, kv: dict, alarm: float | None = None,
            tables: list[str] | None = None) -> SimpleNamespace:
    return SimpleNamespace(version=n, request=request, time=1767225600.0 + n, kv=kv, alarm=alarm,
                           sql_tables=tables or [])


def test_diff_lists_added_changed_and_removed_keys_alarm_and_tables() -> None:
    old = version(1, "r1", {"a": 1, "b": 2, "same": [1]})
    new = version(2, "r2", {"b": 3, "c": "x", "same": [1]}, alarm=1767225660.0, tables=["t"])
    assert views.diff(old, new) == [
        {"kind": "kv", "key": "a", "change": "removed", "old": "1", "new": None},
        {"kind": "kv", "key": "b", "change": "changed", "old": "2", "new": "3"},
        {"kind": "kv", "key": "c", "change": "added", "old": None, "new": "x"},
        {"kind": "alarm", "key": "alarm", "change": "added", "old": None,
         "new": "2026-01-01T00:01:00.000Z"},
        {"kind": "sql", "key": "t", "change": "added", "old": None, "new": "table"},
    ]
    assert [c["change"] for c in views.diff(None, old)] == ["added"] * 3
    assert views.diff(old, old) == []


def test_inspect_object_labels_versions_and_diffs_the_chosen_one() -> None:
    history = [version(1, "r1", {"n": 1}), version(2, None, {"n": 2}), version(3, "r9", {})]
    view = views.inspect_object("A:x", "live", history)
    assert [v["label"] for v in view.versions] == [
        "v1 · r1 · 2026-01-01T00:00:01.000Z", "v2 · no request · 2026-01-01T00:00:02.000Z",
        "v3 · r9 · 2026-01-01T00:00:03.000Z"]
    assert view.index == 2 and view.entries == []
    assert view.diff == [{"kind": "kv", "key": "n", "change": "removed", "old": "2", "new": None}]
    first = views.inspect_object("A:x", "live", history, 0)
    assert (first.index, first.entries) == (0, [{"key": "n", "value": "1"}])
    assert views.inspect_object("A:x", "live", history, 99).index == 2
    assert views.inspect_object("A:x", "new", []).traits()["versions"] == []


async def test_instance_state_comes_from_the_trace(lab: Lab) -> None:
    lab.bind("COUNTER", Counter)
    stub = lab.env.COUNTER.getByName("c")
    assert views.instance_state(lab.trace, "COUNTER:c") == "not constructed"
    await stub.safe_increment()
    assert views.instance_state(lab.trace, "COUNTER:c") == "live"
    await lab.hibernate(stub)
    assert views.instance_state(lab.trace, "COUNTER:c") == "hibernated"


# ---- sequence diagram ----------------------------------------------------------------------------

async def test_sequence_of_a_lost_update(lab: Lab) -> None:
    await lost_update(lab)
    view = views.sequence(lab.trace)
    assert view.columns == ["caller", "COUNTER:c", "storage"]
    arrows = [(a["src"], a["dst"], a["request"], a["label"]) for a in view.arrows]
    assert arrows == [
        ("caller", "COUNTER:c", "r1", "increment"),
        ("caller", "COUNTER:c", "r2", "increment"),
        ("caller", "COUNTER:c", "r3", "increment"),
        ("COUNTER:c", "storage", "r1", "get"),
        ("COUNTER:c", "storage", "r2", "get"),
        ("COUNTER:c", "storage", "r3", "get"),
        ("COUNTER:c", "storage", "r1", "put count"),
        ("COUNTER:c", "storage", "r2", "put count"),
        ("COUNTER:c", "storage", "r3", "put count"),
        ("storage", "COUNTER:c", None, "durable"),
        ("COUNTER:c", "caller", "r1", arrows[10][3]),
        ("COUNTER:c", "caller", "r2", arrows[11][3]),
        ("COUNTER:c", "caller", "r3", arrows[12][3]),
    ]
    rows = [a["row"] for a in view.arrows]
    assert rows == sorted(rows)
    assert [n["text"] for n in view.notes if n["kind"] == t.EXTERNAL_AWAIT] == [
        "r1: await scheduler.wait", "r2: await scheduler.wait", "r3: await scheduler.wait"]
    assert sorted(a["depth"] for a in view.activations) == [0, 1, 2]  # interleaved


async def test_sequence_routes_calls_through_the_worker(lab: Lab) -> None:
    class Front(WorkerEntrypoint):
        async def fetch(self, request):
            return Response(str(await self.env.COUNTER.getByName("c").safe_increment()))

    lab.bind("COUNTER", Counter)
    lab.worker(Front)
    await lab.fetch("http://do/x")
    view = views.sequence(lab.trace)
    assert view.columns == ["caller", "worker", "COUNTER:c", "storage"]
    calls = [(a["src"], a["dst"]) for a in view.arrows if a["style"] in ("call", "return")]
    assert calls == [("caller", "worker"), ("worker", "COUNTER:c"), ("COUNTER:c", "worker"),
                     ("worker", "caller")]


class Room(DurableObject):
    async def fetch(self, request):
        from dolab import WebSocketPair

        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        for socket in self.ctx.getWebSockets():
            socket.send(message)


class RoomWorker(WorkerEntrypoint):
    async def fetch(self, request):
        return await self.env.ROOM.getByName("r").fetch(request)


async def test_sockets_in_the_sequence_and_the_timeline(lab: Lab) -> None:
    lab.bind("ROOM", Room)
    lab.worker(RoomWorker)
    a = await lab.connect("ws://x/r")
    b = await lab.connect("ws://x/r")
    a.send("hi")
    assert await b.receive() == "hi"
    view = views.sequence(lab.trace)
    assert view.columns == ["caller", "client ws1", "client ws2", "worker", "ROOM:r", "storage"]
    ws = [(x["src"], x["dst"], x["label"]) for x in view.arrows if x["style"] == "ws"]
    assert ws == [("ROOM:r", "client ws1", "open (hibernation)"),
                  ("ROOM:r", "client ws2", "open (hibernation)"),
                  ("client ws1", "ROOM:r", "“hi”"), ("ROOM:r", "client ws1", "“hi”"),
                  ("ROOM:r", "client ws2", "“hi”")]
    assert not [x for x in view.arrows if x["request"] == "r5" and x["style"] == "return"]
    timeline = views.timeline(lab.trace)
    message = next(bar for bar in timeline.bars if bar["method"] == "webSocketMessage")
    assert [op["kind"] for op in message["ops"] if op["kind"] != "other"] == ["send", "send"]
    assert timeline.extent["ops"] == ["send", "other"]  # "other": the ws-message itself
    assert [m["kind"] for m in timeline.markers].count(t.WS_OPEN) == 2
    b.close(1000, "bye")
    a.drop()
    await lab.settle()
    assert [views.client_state(c) for c in (a, b)] == ["dropped", "closed"]
    assert views.close_text(b) == "1000 bye"


def test_sequence_keeps_the_last_rows() -> None:
    view = views.sequence(synthetic(100), max_rows=30)
    assert view.rows == 30 and view.hidden_rows > 0
    assert [a["row"] for a in view.arrows] == sorted(a["row"] for a in view.arrows)


# ---- sockets -------------------------------------------------------------------------------------

def test_client_card_interleaves_sent_and_received_messages() -> None:
    card = views.client_card("client 1", "ws://x/ws", "open", ["hello", "a: hi", b"\x00\x01"],
                             [(1, "hi"), (3, "bye")])
    assert card["messages"] == [
        {"dir": "in", "text": "hello"}, {"dir": "out", "text": "hi"},
        {"dir": "in", "text": "a: hi"}, {"dir": "in", "text": "<2 bytes> b'\\x00\\x01'"},
        {"dir": "out", "text": "bye"}]
    assert (card["received"], card["sent"], card["hidden"]) == (3, 2, 0)
    many = views.client_card("c", "u", "closed", [str(i) for i in range(80)], [])
    assert len(many["messages"]) == views.MESSAGES_MAX and many["hidden"] == 30
    assert many["messages"][-1]["text"] == "79"
