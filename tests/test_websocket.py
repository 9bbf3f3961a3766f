"""WebSockets: pairs, the standard and Hibernation APIs, simulated clients (spec §9, B64–B68)."""
from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from dolab import (
    DOMException,
    DurableObject,
    Lab,
    RangeError,
    Response,
    WebSocketPair,
    WebSocketRequestResponsePair,
    WorkerEntrypoint,
    scheduler,
    trace,
    values,
)
from dolab import websocket as ws_mod
from dolab.errors import WS_RESET
from dolab.websocket import WebSocket, WebSocketClosed

# ---- a chat room: Worker + Durable Object (Hibernation API) --------------------------------------


class ChatRoom(DurableObject):
    constructed = 0
    closes: ClassVar[list[tuple[Any, ...]]] = []
    errors: ClassVar[list[str]] = []

    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        type(self).constructed += 1

    async def fetch(self, request):
        query = parse_qs(urlsplit(request.url).query)
        name = query.get("name", ["anon"])[0]
        tags = query.get("tag", [name])
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server, tags)
        server.serializeAttachment({"name": name})
        server.note = "only in memory"
        if "ping" in query:
            self.ctx.setWebSocketAutoResponse(WebSocketRequestResponsePair("ping", "pong"))
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        if message == "whoami":
            ws.send(json.dumps({"tags": self.ctx.getTags(ws), "attachment":
                                ws.deserializeAttachment(), "note": getattr(ws, "note", None)}))
        elif message == "stamp":
            stamp = self.ctx.getWebSocketAutoResponseTimestamp(ws)
            ws.send("none" if stamp is None else stamp.isoformat())
        elif message == "save":
            self.ctx.storage.put("saved", True)
            ws.send("saved")
        elif message == "bye":
            ws.close(1000, "done")
        elif isinstance(message, bytes):
            ws.send(message[::-1])
        else:
            name = ws.deserializeAttachment()["name"]
            for peer in self.ctx.getWebSockets():
                peer.send(f"{name}: {message}")

    async def webSocketClose(self, ws, code, reason, wasClean):
        type(self).closes.append((code, reason, wasClean, ws.readyState))

    async def webSocketError(self, ws, error):
        type(self).errors.append(f"{type(error).__name__}: {error}")

    async def sockets(self, tag=None):
        return len(self.ctx.getWebSockets(tag))

    async def reset(self):
        self.ctx.abort("boom")


class Router(WorkerEntrypoint):
    async def fetch(self, request):
        if request.headers.get("Upgrade") != "websocket":
            return Response("Durable Object expected Upgrade: websocket", status=426)
        path = urlsplit(request.url).path
        if path != "/room":
            return Response(f"no room at {path}", status=404)
        return await self.env.ROOMS.getByName("lobby").fetch(request)


@pytest.fixture
def chat(lab: Lab) -> Lab:
    ChatRoom.constructed, ChatRoom.closes, ChatRoom.errors = 0, [], []
    lab.bind("ROOMS", ChatRoom)
    lab.worker(Router)
    return lab


def room(lab: Lab) -> Any:
    return lab.env.ROOMS.getByName("lobby")


def kinds_of(lab: Lab, request: str, wanted: tuple[str, ...]) -> list[str]:
    return [e.kind for e in lab.trace.events(wanted, request=request)]


# ---- chat, broadcast, event order ----------------------------------------------------------------


async def test_chat_room_broadcasts_to_three_clients(chat: Lab) -> None:
    alice = await chat.connect("ws://chat/room?name=alice")
    bob = await chat.connect("ws://chat/room?name=bob")
    carol = await chat.connect("ws://chat/room?name=carol")
    alice.send("hi all")
    assert [await c.receive() for c in (alice, bob, carol)] == ["alice: hi all"] * 3
    message = chat.trace.events(trace.WS_MESSAGE)[0]
    assert (message.obj, message.detail["socket"], message.detail["text"]) == (
        "ROOMS:lobby", "ws1", "hi all")
    assert chat.trace.kinds(request=message.request) == [
        trace.QUEUED, trace.DELIVERED, trace.WS_MESSAGE, trace.WS_SEND, trace.WS_SEND,
        trace.WS_SEND, trace.FINISHED]
    sends = chat.trace.events(trace.WS_SEND, request=message.request)
    assert [e.detail for e in sends] == [
        {"socket": sid, "size": 13, "text": "alice: hi all"} for sid in ("ws1", "ws2", "ws3")]
    alice.send("ça va")  # the next broadcast is described afresh (UTF-8 size)
    assert [await c.receive() for c in (alice, bob, carol)] == ["alice: ça va"] * 3
    assert chat.trace.events(trace.WS_SEND)[-1].detail == {
        "socket": "ws3", "size": 13, "text": "alice: ça va"}
    assert [e.detail["api"] for e in chat.trace.events(trace.WS_OPEN)] == ["hibernation"] * 3
    assert ChatRoom.constructed == 1
    assert await room(chat).sockets() == 3
    assert await room(chat).sockets("bob") == 1 and await room(chat).sockets("nobody") == 0


async def test_upgrade_is_a_get_through_the_worker(lab: Lab) -> None:
    seen: list[tuple[str, str, str | None]] = []

    class Gate(WorkerEntrypoint):
        async def fetch(self, request):
            seen.append((request.method, request.url, request.headers.get("UPGRADE")))
            client, server = WebSocketPair()
            server.accept()
            return Response(None, status=101, web_socket=client)

    lab.worker(Gate)
    for url in ("ws://h/a", "wss://h/b?x=1", "http://h/c", "https://h/d"):
        await lab.connect(url)
    assert seen == [("GET", "http://h/a", "websocket"), ("GET", "https://h/b?x=1", "websocket"),
                    ("GET", "http://h/c", "websocket"), ("GET", "https://h/d", "websocket")]
    with pytest.raises(TypeError) as info:
        await lab.connect("ftp://h/")
    assert str(info.value) == ws_mod.BAD_URL.format(url="ftp://h/")


async def test_a_worker_answer_other_than_101_is_an_error_with_status_and_body(chat: Lab) -> None:
    with pytest.raises(TypeError) as info:
        await chat.connect("ws://chat/nowhere")
    assert str(info.value) == (
        "Failed to establish the WebSocket connection: expected server to reply with HTTP status "
        "code 101 (switching protocols), but received 404 instead. "
        "The Worker answered: 'no room at /nowhere'")
    response = await chat.fetch("http://chat/room")  # no Upgrade header: the Worker says 426
    assert (response.status, await response.text()) == (
        426, "Durable Object expected Upgrade: websocket")


async def test_binary_messages_round_trip(chat: Lab) -> None:
    client = await chat.connect("ws://chat/room")
    client.send(b"\x00\x01\x02")
    assert await client.receive() == b"\x02\x01\x00"
    assert chat.trace.events(trace.WS_MESSAGE)[0].detail == {
        "socket": "ws1", "size": 3, "binary": True}


async def test_sends_wait_for_the_output_gate(chat: Lab) -> None:
    client = await chat.connect("ws://chat/room")
    client.send("save")
    assert await client.receive() == "saved"
    request = chat.trace.events(trace.WS_MESSAGE)[0].request
    order = [e.kind for e in chat.trace if e.request == request or e.kind == trace.COMMIT]
    assert order[order.index(trace.WRITE):] == [trace.WRITE, trace.HELD, trace.COMMIT,
                                                trace.WS_SEND, trace.RELEASED, trace.FINISHED]
    assert chat.storage_of(room(chat)) == {"saved": True}


# ---- hibernation ---------------------------------------------------------------------------------


async def test_hibernation_keeps_tags_and_attachment_and_reruns_the_constructor(
        chat: Lab) -> None:  # B64
    client = await chat.connect("ws://chat/room?name=alice&tag=a&tag=b&tag=a")
    client.send("whoami")
    assert json.loads(await client.receive()) == {
        "tags": ["a", "b"], "attachment": {"name": "alice"}, "note": "only in memory"}
    await chat.hibernate(room(chat))
    client.send("whoami")
    assert json.loads(await client.receive()) == {
        "tags": ["a", "b"], "attachment": {"name": "alice"}, "note": None}  # a fresh handle
    assert ChatRoom.constructed == 2
    assert [e.kind for e in chat.trace if e.kind in (trace.CONSTRUCTED, trace.HIBERNATED)] == [
        trace.CONSTRUCTED, trace.HIBERNATED, trace.CONSTRUCTED]
    record = chat.store.find(chat.bindings["ROOMS"].key, room(chat).id.toString())
    assert list(record.sockets) == ["ws1"] and record.sockets["ws1"].tags == ("a", "b")
    assert values.decode(record.sockets["ws1"].attachment) == {"name": "alice"}


async def test_idle_object_with_hibernatable_sockets_hibernates_after_10s() -> None:
    lab = Lab(path=None, clock="virtual")
    ChatRoom.constructed = 0
    lab.bind("ROOMS", ChatRoom)
    lab.worker(Router)

    class Plain(DurableObject):
        async def ping(self):
            return "pong"

    lab.bind("PLAIN", Plain)
    client = await lab.connect("ws://chat/room?name=alice")
    await lab.env.PLAIN.getByName("p").ping()
    await lab.advance(11)
    assert lab.trace.kinds(obj="ROOMS:lobby").count(trace.HIBERNATED) == 1
    assert trace.EVICTED not in lab.trace.kinds(obj="ROOMS:lobby")
    assert lab.trace.kinds(obj="PLAIN:p")[-1] == trace.EVICTED
    assert trace.HIBERNATED not in lab.trace.kinds(obj="PLAIN:p")
    client.send("still here")
    assert await client.receive() == "alice: still here"
    assert ChatRoom.constructed == 2
    lab.close()


async def test_production_timing_still_hibernates_after_10s() -> None:
    lab = Lab(path=None, clock="virtual", timing="production")
    lab.bind("ROOMS", ChatRoom)
    lab.worker(Router)
    await lab.connect("ws://chat/room")
    await lab.advance(11)
    assert lab.trace.kinds(obj="ROOMS:lobby")[-1] == trace.HIBERNATED
    lab.close()


async def test_socket_records_survive_in_the_file_until_the_lab_is_reopened(tmp_path) -> None:
    path = tmp_path / "lab.fs"
    lab = Lab(path=path, clock="virtual")
    lab.bind("ROOMS", ChatRoom)
    lab.worker(Router)
    client = await lab.connect("ws://chat/room?name=alice&tag=a&tag=b&tag=a")
    await lab.hibernate(room(lab))
    await lab.settle()
    lab.close()  # the process "restarts": connections cannot survive it
    assert (client.closed, client.close_code, client.close_reason) == (True, 1006, "")

    lab = Lab(path=path, clock="virtual")
    lab.bind("ROOMS", ChatRoom)
    key, hex_id = lab.bindings["ROOMS"].key, room(lab).id.toString()
    record = lab.store.find(key, hex_id)
    assert record.sockets["ws1"].tags == ("a", "b")                       # durable in ZODB
    assert values.decode(record.sockets["ws1"].attachment) == {"name": "alice"}
    assert await room(lab).sockets() == 0       # the next instance sees no socket
    await lab.settle()
    assert len(lab.store.find(key, hex_id).sockets) == 0                  # and the record is gone
    lab.close()


async def test_standard_api_sockets_keep_the_object_in_memory(lab: Lab) -> None:
    class Echo(DurableObject):
        async def fetch(self, request):
            client, server = WebSocketPair()
            server.accept()
            server.addEventListener("message", lambda event: server.send(f"echo {event.data}"))
            return Response(None, status=101, web_socket=client)

    class Front(WorkerEntrypoint):
        async def fetch(self, request):
            return await self.env.ECHO.getByName("e").fetch(request)

    lab.bind("ECHO", Echo)
    lab.worker(Front)
    client = await lab.connect("ws://x/")
    await lab.advance(30)
    assert not {trace.EVICTED, trace.HIBERNATED} & set(lab.trace.kinds(obj="ECHO:e"))
    client.send("a")
    assert await client.receive() == "echo a"
    assert lab.trace.events(trace.QUEUED, obj="ECHO:e")[-1].detail["method"] == "message listener"
    client.close()
    await lab.advance(11)
    assert lab.trace.kinds(obj="ECHO:e")[-1] == trace.EVICTED  # closed: nothing keeps it now


async def test_standard_api_echo_server_in_a_worker(lab: Lab) -> None:
    closes: list[tuple[int, str, bool]] = []

    class EchoWorker(WorkerEntrypoint):
        async def fetch(self, request):
            client, server = WebSocketPair.new().object_values()
            server.accept()

            def on_message(event):
                server.send(f"echo: {event.data}")

            async def on_close(event):
                closes.append((event.code, event.reason, event.wasClean))

            server.addEventListener("message", on_message)
            server.addEventListener("close", on_close)
            return Response(None, status=101, web_socket=client)

    lab.worker(EchoWorker)
    client = await lab.connect("ws://echo/")
    client.send("one")
    client.send("two")
    assert [await client.receive(), await client.receive()] == ["echo: one", "echo: two"]
    assert client.messages == ["echo: one", "echo: two"]
    client.close(1000, "done")
    await lab.settle()
    assert closes == [(1000, "done", True)]
    assert (client.closed, client.close_code, client.close_reason) == (True, 1000, "done")


async def test_messages_sent_before_the_101_response_wait_in_the_pipe(lab: Lab) -> None:
    class Greeter(DurableObject):
        async def fetch(self, request):
            client, server = WebSocketPair()
            self.ctx.acceptWebSocket(server)
            self.ctx.storage.put("greeted", True)
            server.send("welcome")  # held by the output gate, then by the uncoupled pipe
            return Response(None, status=101, web_socket=client)

    class Front(WorkerEntrypoint):
        async def fetch(self, request):
            return await self.env.G.getByName("g").fetch(request)

    lab.bind("G", Greeter)
    lab.worker(Front)
    client = await lab.connect("ws://g/")
    assert client.messages == ["welcome"]
    assert [e.kind for e in lab.trace.events((trace.COMMIT, trace.WS_SEND, trace.WS_OPEN))] == [
        trace.COMMIT, trace.WS_SEND, trace.WS_OPEN]


async def test_a_worker_listener_error_is_traced_not_raised(lab: Lab) -> None:
    class Faulty(WorkerEntrypoint):
        async def fetch(self, request):
            client, server = WebSocketPair()
            server.accept()

            def on_message(event):
                raise ValueError(f"cannot handle {event.data}")

            server.addEventListener("message", on_message)
            return Response(None, status=101, web_socket=client)

    lab.worker(Faulty)
    client = await lab.connect("ws://f/")
    client.send("x")
    assert lab.trace.events(trace.ERROR, obj="worker")[-1].detail == {
        "socket": "ws1", "error": "ValueError: cannot handle x"}


async def test_a_code_update_disconnects_hibernated_sockets_too(chat: Lab) -> None:
    live = await chat.connect("ws://chat/room")
    await chat.hibernate(room(chat))
    chat.bind("ROOMS", type("ChatRoom", (ChatRoom,), {}))  # rerunning the cell
    assert (live.closed, live.close_code, live.close_reason) == (True, 1011, WS_RESET)
    assert await room(chat).sockets() == 0


# ---- closing -------------------------------------------------------------------------------------


async def test_client_close_4001_bye_and_a_dropped_client(chat: Lab) -> None:  # B67
    alice = await chat.connect("ws://chat/room?name=alice")
    bob = await chat.connect("ws://chat/room?name=bob")
    alice.close(4001, "bye")
    bob.drop()
    await chat.settle()
    assert ChatRoom.closes == [
        (4001, "bye", True, WebSocket.CLOSED),
        (1006, "WebSocket disconnected without sending Close frame.", False, WebSocket.CLOSED)]
    assert (alice.closed, alice.close_code, alice.close_reason) == (True, 4001, "bye")
    assert (bob.closed, bob.close_code) == (True, 1006)
    closes = chat.trace.events(trace.WS_CLOSE)
    assert [(e.detail["socket"], e.detail["code"], e.detail["by"]) for e in closes] == [
        ("ws1", 4001, "client"), ("ws1", 4001, "runtime"), ("ws2", 1006, "client")]
    assert await room(chat).sockets() == 0
    record = chat.store.find(chat.bindings["ROOMS"].key, room(chat).id.toString())
    assert list(record.sockets.items()) == []


async def test_server_close_reaches_the_client_and_the_reply_reaches_webSocketClose(
        chat: Lab) -> None:
    client = await chat.connect("ws://chat/room")
    client.send("bye")
    await chat.settle()
    assert (client.closed, client.close_code, client.close_reason) == (True, 1000, "done")
    assert ChatRoom.closes == [(1000, "done", True, WebSocket.CLOSED)]
    with pytest.raises(WebSocketClosed) as info:
        await client.receive()
    assert str(info.value) == (
        "The WebSocket closed (code 1000, 'done') with no message left to read.")


async def test_before_2026_04_07_the_handler_must_reply_to_a_close() -> None:
    class Manual(ChatRoom):
        async def webSocketClose(self, ws, code, reason, wasClean):
            type(self).closes.append((code, reason, wasClean, ws.readyState))
            if reason == "reply":
                ws.close(code, "replied")

    lab = Lab(path=None, clock="virtual", compatibility_date="2026-04-06")
    Manual.closes = []
    lab.bind("ROOMS", Manual)
    lab.worker(Router)
    silent, polite = await lab.connect("ws://c/room"), await lab.connect("ws://c/room")
    silent.close(4000, "quiet")
    polite.close(4000, "reply")
    assert not silent.closed and not polite.closed  # waiting for the server's Close frame
    await lab.settle()
    assert Manual.closes == [(4000, "quiet", True, WebSocket.CLOSING),
                             (4000, "reply", True, WebSocket.CLOSING)]
    assert (silent.close_code, silent.close_reason) == (1006, "")
    assert (polite.close_code, polite.close_reason) == (4000, "replied")
    lab.close()


async def test_a_reset_closes_the_sockets_with_1011(chat: Lab) -> None:
    client = await chat.connect("ws://chat/room")
    with pytest.raises(Exception, match="boom"):
        await room(chat).reset()
    assert (client.closed, client.close_code, client.close_reason) == (True, 1011, WS_RESET)
    assert WS_RESET == "Durable Object connection closed because the object was reset."
    assert await room(chat).sockets() == 0


async def test_a_message_over_32_MiB_breaks_the_connection(chat: Lab) -> None:
    client = await chat.connect("ws://chat/room")
    client.send(b"x" * (32 * 1024 * 1024 + 1))
    await chat.settle()
    assert ChatRoom.errors == [(
        "RuntimeError: WebSocket message is too large: 33554433 bytes (the limit is 33554432 "
        "bytes, 32 MiB).")]
    assert (client.closed, client.close_code, client.close_reason) == (
        True, 1009, "Message is too large")
    assert await room(chat).sockets() == 0


# ---- auto-response, event timeout ----------------------------------------------------------------


async def test_auto_response_answers_without_waking_the_object(chat: Lab) -> None:  # B66
    client = await chat.connect("ws://chat/room?ping=1")
    await chat.hibernate(room(chat))
    await chat.advance(5)
    client.send("ping")
    assert await client.receive() == "pong"
    assert ChatRoom.constructed == 1
    assert chat.trace.events(trace.QUEUED)[-1].detail["method"] == "fetch GET /room?ping=1"
    [auto] = chat.trace.events(trace.WS_MESSAGE)
    assert auto.detail == {"socket": "ws1", "auto": True, "size": 4, "text": "ping"}
    pinged_at = datetime.fromtimestamp(chat.now(), tz=UTC)
    await chat.advance(1)
    client.send("stamp")
    assert await client.receive() == pinged_at.isoformat() == "2026-01-01T00:00:05+00:00"
    assert ChatRoom.constructed == 2


async def test_auto_response_configuration(lab: Lab) -> None:
    class Probe(DurableObject):
        pass

    lab.bind("P", Probe)

    def configure(instance, ctx):
        before = ctx.getWebSocketAutoResponse()
        ctx.setWebSocketAutoResponse(WebSocketRequestResponsePair("ping", "pong"))
        during = ctx.getWebSocketAutoResponse()
        ctx.setWebSocketAutoResponse()
        return before, (during.request, during.response), ctx.getWebSocketAutoResponse()

    assert await lab.run_in(lab.env.P.getByName("p"), configure) == (None, ("ping", "pong"), None)


async def test_event_timeout_cancels_a_slow_handler(lab: Lab) -> None:
    class Slow(DurableObject):
        async def fetch(self, request):
            client, server = WebSocketPair()
            self.ctx.acceptWebSocket(server)
            self.ctx.setHibernatableWebSocketEventTimeout(1000)
            return Response(None, status=101, web_socket=client)

        async def webSocketMessage(self, ws, message):
            await scheduler.wait(5000)
            ws.send("late")

    class Front(WorkerEntrypoint):
        async def fetch(self, request):
            return await self.env.SLOW.getByName("s").fetch(request)

    lab.bind("SLOW", Slow)
    lab.worker(Front)
    client = await lab.connect("ws://s/")
    client.send("go")
    with pytest.raises(TimeoutError):
        await client.receive()
    [error] = lab.trace.events(trace.ERROR, obj="SLOW:s")
    assert error.detail["error"] == "RuntimeError: " + ws_mod.EVENT_TIMED_OUT.format(ms=1000)
    assert client.messages == []


# ---- receive() and the virtual clock -------------------------------------------------------------


async def test_receive_jumps_virtual_time_and_does_not_hang(lab: Lab) -> None:
    class Clock(DurableObject):
        async def fetch(self, request):
            client, server = WebSocketPair()
            self.ctx.acceptWebSocket(server)
            await self.ctx.storage.setAlarm(Date_now() + 5000)
            return Response(None, status=101, web_socket=client)

        async def alarm(self, info=None):
            for ws in self.ctx.getWebSockets():
                ws.send("tick")

    class Front(WorkerEntrypoint):
        async def fetch(self, request):
            return await self.env.CLOCK.getByName("c").fetch(request)

    lab.bind("CLOCK", Clock)
    lab.worker(Front)
    client = await lab.connect("ws://c/")
    start = lab.now()
    assert await client.receive() == "tick"
    assert lab.now() - start == pytest.approx(5.0)
    with pytest.raises(TimeoutError) as info:
        await client.receive()
    assert str(info.value) == ws_mod.RECEIVE_IDLE
    with pytest.raises(TimeoutError) as timed:
        await client.receive(timeout=2)
    assert str(timed.value) == "No message arrived within 2 s of lab time."


def Date_now() -> int:
    from dolab import Date

    return Date.now()


# ---- every error text ----------------------------------------------------------------------------


class Probe(DurableObject):
    async def fetch(self, request):
        _client, server = WebSocketPair()
        server.accept()
        return Response(None, status=101, web_socket=server)  # the wrong end: already accepted


@pytest.fixture
def probe(lab: Lab) -> Callable[..., Any]:
    lab.bind("P", Probe)

    async def inside(fn: Callable[[Any, Any, Any, Any], Any]) -> Any:
        def run(instance, ctx):
            client, server = WebSocketPair()
            return fn(instance, ctx, client, server)
        return await lab.run_in(lab.env.P.getByName("p"), run)

    return inside


async def error_of(probe: Callable[..., Any], fn: Callable[..., Any]) -> BaseException:
    with pytest.raises(Exception) as info:
        await probe(fn)
    return info.value


async def test_attachment_over_16384_bytes(probe) -> None:  # B65
    fits, big = "x" * 16_380, "x" * 16_381
    assert (values.size(fits), values.size(big)) == (16_384, 16_385)  # the codec's size
    error = await error_of(probe, lambda i, ctx, c, s: s.serializeAttachment(big))
    assert (type(error), str(error)) == (RuntimeError, (
        "A WebSocket 'attachment' cannot be larger than 16384 bytes.'attachment' was 16385 bytes."))

    def round_trip(i, ctx, c, s):
        s.serializeAttachment(fits)
        return s.deserializeAttachment() == fits

    assert await probe(round_trip) is True


async def test_tag_rules(probe) -> None:  # B65
    eleven = [f"t{n}" for n in range(11)]
    error = await error_of(probe, lambda i, ctx, c, s: ctx.acceptWebSocket(s, eleven))
    assert (type(error), str(error)) == (
        RuntimeError, "a Hibernatable WebSocket cannot have more than 10 tags")
    long_tag = "t" * 257
    error = await error_of(probe, lambda i, ctx, c, s: ctx.acceptWebSocket(s, [long_tag]))
    assert str(error) == f'"{long_tag}" is longer than the max tag length (256 characters).'

    def ten_distinct_and_duplicates(i, ctx, c, s):
        ctx.acceptWebSocket(s, [f"t{n}" for n in range(9)] + ["t" * 256, "t0", "t" * 256])
        return ctx.getTags(s)

    assert await probe(ten_distinct_and_duplicates) == [f"t{n}" for n in range(9)] + ["t" * 256]
    assert await probe(lambda i, ctx, c, s: (ctx.acceptWebSocket(s, ["a", "b", "a"]),
                                              ctx.getTags(s))[1]) == ["a", "b"]


async def test_accept_rules(probe) -> None:  # B68
    def accept_after_hibernation(i, ctx, c, s):
        ctx.acceptWebSocket(s)
        s.accept()

    def hibernation_after_accept(i, ctx, c, s):
        s.accept()
        ctx.acceptWebSocket(s)

    def other_end_after_hibernation(i, ctx, c, s):
        ctx.acceptWebSocket(s)
        ctx.acceptWebSocket(c)

    error = await error_of(probe, accept_after_hibernation)
    assert (type(error), str(error)) == (
        TypeError, "Can't accept() WebSocket after enabling hibernation.")
    error = await error_of(probe, hibernation_after_accept)
    assert (type(error), str(error)) == (RuntimeError, (
        "Cannot call `acceptWebSocket()` if the WebSocket was already accepted via `accept()`"))
    error = await error_of(probe, other_end_after_hibernation)
    assert str(error) == ("Cannot call `acceptWebSocket()` on this WebSocket because its pair has "
                          "already been accepted or used in a Response.")


async def test_send_rules(probe) -> None:
    def send_before_accept(i, ctx, c, s):
        s.send("x")

    def send_after_close(i, ctx, c, s):
        s.accept()
        s.close(1000)
        s.close(1000)  # a second close() is ignored
        s.send("x")

    error = await error_of(probe, send_before_accept)
    assert (type(error), str(error)) == (TypeError, (
        "You must call one of accept() or state.acceptWebSocket() on this WebSocket before "
        "sending messages."))
    error = await error_of(probe, send_after_close)
    assert (type(error), str(error)) == (TypeError, "Can't call WebSocket send() after close().")
    error = await error_of(probe, lambda i, ctx, c, s: (s.accept(), s.send(42)))
    assert str(error) == "WebSocket send() takes a str or bytes, not int."


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 5000])
async def test_invalid_close_codes(probe, code: int) -> None:
    error = await error_of(probe, lambda i, ctx, c, s: (s.accept(), s.close(code)))
    assert (type(error), error.name, str(error)) == (
        DOMException, "InvalidAccessError", f"Invalid WebSocket close code: {code}.")


async def test_close_reason_rules(probe, lab: Lab) -> None:
    error = await error_of(probe, lambda i, ctx, c, s: (s.accept(), s.close(reason="why")))
    assert (error.name, str(error)) == ("InvalidAccessError", (
        "If you specify a WebSocket close reason, you must also specify a code."))
    long_reason = "é" * 62  # 124 UTF-8 bytes
    error = await error_of(probe, lambda i, ctx, c, s: (s.accept(), s.close(4000, long_reason)))
    assert (error.name, str(error)) == ("SyntaxError", (
        "WebSocket close reason must not be longer than 123 bytes when UTF-8 encoded."))
    assert await probe(lambda i, ctx, c, s: (s.accept(), s.close(1000), s.close(4999))[0]) is None
    lab.compatibility_date = "2026-03-02"  # before websocket_close_reason_byte_limit
    assert await probe(lambda i, ctx, c, s: (s.accept(), s.close(4000, long_reason))[0]) is None


async def test_auto_response_and_event_timeout_limits(probe) -> None:
    def big_request(i, ctx, c, s):
        ctx.setWebSocketAutoResponse(WebSocketRequestResponsePair("q" * 2049, "pong"))

    def big_response(i, ctx, c, s):
        ctx.setWebSocketAutoResponse(WebSocketRequestResponsePair("ping", "r" * 2049))

    error = await error_of(probe, big_request)
    assert (type(error), str(error)) == (RangeError, (
        "Request cannot be larger than 2048 bytes. A request of size 2049 was provided."))
    error = await error_of(probe, big_response)
    assert str(error) == (
        "Response cannot be larger than 2048 bytes. A response of size 2049 was provided.")
    error = await error_of(
        probe, lambda i, ctx, c, s: ctx.setHibernatableWebSocketEventTimeout(604_800_001))
    assert (type(error), str(error)) == (
        RuntimeError, "Event timeout should not exceed 604800000 ms.")

    def timeouts(i, ctx, c, s):
        ctx.setHibernatableWebSocketEventTimeout(604_800_000)
        first = ctx.getHibernatableWebSocketEventTimeout()
        ctx.setHibernatableWebSocketEventTimeout(0)
        return [first, ctx.getHibernatableWebSocketEventTimeout()]

    assert await probe(timeouts) == [604_800_000, None]


async def test_get_tags_needs_a_hibernatable_socket(probe) -> None:
    error = await error_of(probe, lambda i, ctx, c, s: ctx.getTags(s))
    assert (type(error), str(error)) == (RuntimeError, (
        "you must call 'acceptWebSocket()' before attempting to access the tags of a WebSocket."))
    error = await error_of(probe, lambda i, ctx, c, s: (s.accept(), ctx.getTags(s)))
    assert str(error) == "only hibernatable websockets can have tags."


async def test_returning_an_accepted_end_is_refused(lab: Lab) -> None:
    class Front(WorkerEntrypoint):
        async def fetch(self, request):
            return await self.env.P.getByName("p").fetch(request)

    lab.bind("P", Probe)
    lab.worker(Front)
    with pytest.raises(TypeError) as info:
        await lab.connect("ws://p/")
    assert str(info.value) == "Can't return WebSocket in a Response after calling accept()."


async def test_client_side_rules(chat: Lab) -> None:
    client = await chat.connect("ws://chat/room")
    with pytest.raises(DOMException) as info:
        client.close(1005)
    assert str(info.value) == "Invalid WebSocket close code: 1005."
    client.drop()
    with pytest.raises(DOMException) as closed:
        client.send("late")
    assert (closed.value.name, str(closed.value)) == (
        "InvalidStateError", "WebSocket is already in CLOSING or CLOSED state.")


async def test_handles_are_minted_by_the_runtime() -> None:
    with pytest.raises(TypeError) as info:
        WebSocket()
    assert str(info.value) == ws_mod.NO_CONSTRUCTOR
