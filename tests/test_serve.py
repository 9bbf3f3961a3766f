"""`lab.serve`: the Worker over real HTTP and WebSockets on 127.0.0.1 (aiohttp), reaching the same
Durable Objects, Hibernation API included, as `lab.fetch` and `lab.connect` (spec §9, §12)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets

from dolab import Lab, Response, WorkerEntrypoint, scheduler, trace
from dolab.cli import bind_defaults, load_module
from dolab.serve import Server, is_loopback
from dolab.websocket import MAX_MESSAGE

CHAT = Path(__file__).resolve().parent / "fixtures" / "chat.py"
T = 10  # seconds: a generous bound for anything on loopback


def chat_lab(clock: str = "real") -> Lab:
    lab = Lab(name="chat", path=None, clock=clock)
    bind_defaults(lab, load_module(CHAT), str(CHAT))
    return lab


@pytest.fixture
async def served() -> AsyncIterator[tuple[Lab, Server]]:
    lab = chat_lab()
    server = await lab.serve(port=0)
    yield lab, server
    await server.close()
    lab.close()


def ws_url(server: Server, name: str, room: str = "lobby") -> str:
    return f"ws://127.0.0.1:{server.port}/room/{room}?name={name}"


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers.get("content-type", ""), await response.text()


async def receive(client: Any) -> Any:
    return await asyncio.wait_for(client.recv(), T)


# ---- HTTP ----------------------------------------------------------------------------------------


async def test_port_zero_picks_a_free_port(served: tuple[Lab, Server]) -> None:
    _, server = served
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}/"
    assert repr(server) == f"<dolab Server {server.url} (0 WebSockets open)>"


async def test_http_get_goes_through_the_workers_fetch(served: tuple[Lab, Server]) -> None:
    lab, server = served
    status, content_type, body = await get(server.url)
    assert (status, content_type) == (200, "text/html;charset=UTF-8")
    assert "new WebSocket(url)" in body
    assert await get(server.url + "nowhere") == (404, "text/plain;charset=UTF-8",
                                                 "nothing at /nowhere")
    methods = [e.detail["method"] for e in lab.trace.events(trace.DELIVERED) if e.obj == "worker"]
    assert methods == [f"GET {server.url}", f"GET {server.url}nowhere"]


async def test_a_worker_exception_is_a_500(tmp_path: Path) -> None:
    class Broken(WorkerEntrypoint):
        async def fetch(self, request):
            raise ValueError("no route")

    lab = Lab(path=None)
    lab.worker(Broken)
    async with await lab.serve(port=0) as server:
        status, _, body = await get(server.url)
    assert (status, body) == (500, "Worker threw exception: ValueError: no route")
    lab.close()


async def test_request_method_headers_and_body_reach_the_worker() -> None:
    class Echo(WorkerEntrypoint):
        async def fetch(self, request):
            return Response.json({"method": request.method, "url": request.url,
                                  "x": request.headers.get("X-Thing"),
                                  "body": await request.text()},
                                 status=201, headers={"x-reply": "yes"})

    lab = Lab(path=None)
    lab.worker(Echo)
    async with await lab.serve(port=0) as server, aiohttp.ClientSession() as session:
        async with session.post(server.url + "p?q=1", data="hi",
                                headers={"x-thing": "42"}) as response:
            assert response.status == 201 and response.headers["x-reply"] == "yes"
            assert await response.json() == {"method": "POST", "url": server.url + "p?q=1",
                                              "x": "42", "body": "hi"}
    lab.close()


async def test_cells_keep_working_while_it_serves(served: tuple[Lab, Server]) -> None:
    lab, server = served
    alice = await websockets.connect(ws_url(server, "alice"))
    # The test's own awaits (a notebook's cells) run on the loop that serves.
    members, listed = await asyncio.gather(
        lab.env.CHAT_ROOM.getByName("lobby").members(),
        get(server.url + "room/lobby/members"))
    assert members == ["alice"] and json.loads(listed[2]) == ["alice"]
    response = await lab.fetch("http://chat/room/lobby/members")
    assert await response.json() == ["alice"]
    await alice.close()


async def test_the_virtual_clock_jumps_while_a_request_runs() -> None:
    class Slow(WorkerEntrypoint):
        async def fetch(self, request):
            await scheduler.wait(3_600_000)  # an hour of lab time
            return Response("done")

    lab = Lab(path=None, clock="virtual")
    lab.worker(Slow)
    async with await lab.serve(port=0) as server:
        before = lab.now()
        assert (await get(server.url))[2] == "done"
        assert lab.now() - before == pytest.approx(3600)
    lab.close()


# ---- WebSockets ----------------------------------------------------------------------------------


async def test_three_websocket_clients_receive_a_broadcast(served: tuple[Lab, Server]) -> None:
    lab, server = served
    clients = [await websockets.connect(ws_url(server, n)) for n in ("alice", "bob", "carol")]
    await clients[1].send("hello, room")
    assert [await receive(c) for c in clients] == ["bob: hello, room"] * 3
    assert server.connections == 3
    opened = lab.trace.events(trace.WS_OPEN)
    assert [e.detail["api"] for e in opened] == ["hibernation"] * 3
    assert {e.obj for e in opened} == {"CHAT_ROOM:lobby"}
    for client in clients:
        await client.close()


async def test_real_and_simulated_clients_share_one_room(served: tuple[Lab, Server]) -> None:
    lab, server = served
    real = await websockets.connect(ws_url(server, "real"))
    simulated = await lab.connect("ws://chat/room/lobby?name=simulated")
    simulated.send("hi from the lab")
    assert await receive(real) == "simulated: hi from the lab"
    assert await simulated.receive() == "simulated: hi from the lab"
    await real.send("hi from the network")
    assert await receive(real) == "real: hi from the network"
    assert await simulated.receive() == "real: hi from the network"
    await real.close()


async def test_real_sockets_survive_hibernation(served: tuple[Lab, Server]) -> None:
    lab, server = served
    alice = await websockets.connect(ws_url(server, "alice"))
    bob = await websockets.connect(ws_url(server, "bob"))
    room = lab.env.CHAT_ROOM.getByName("lobby")
    assert await room.members() == ["alice", "bob"]
    await lab.hibernate(room)
    assert [e.kind for e in lab.trace.events((trace.HIBERNATED,))] == [trace.HIBERNATED]
    constructed = len(lab.trace.events((trace.CONSTRUCTED,)))
    await alice.send("still here?")  # wakes the object: the constructor runs again
    assert [await receive(c) for c in (alice, bob)] == ["alice: still here?"] * 2
    assert len(lab.trace.events((trace.CONSTRUCTED,))) == constructed + 1
    await alice.close()
    await bob.close()


async def test_a_client_close_reaches_webSocketClose(served: tuple[Lab, Server]) -> None:
    lab, server = served
    alice = await websockets.connect(ws_url(server, "alice"))
    await alice.close(4001, "bye")
    assert (alice.close_code, alice.close_reason) == (4001, "bye")  # the runtime's reply
    events = await lab.env.CHAT_ROOM.getByName("lobby").last_events()
    assert events == {"close": [4001, "bye", True], "error": None}
    assert server.connections == 0


async def test_a_vanished_client_is_code_1006_to_the_object(served: tuple[Lab, Server]) -> None:
    lab, server = served
    alice = await websockets.connect(ws_url(server, "alice"))
    alice.transport.abort()  # no Close frame
    room = lab.env.CHAT_ROOM.getByName("lobby")
    for _ in range(200):
        if (await room.last_events())["close"] is not None:
            break
        await asyncio.sleep(0.01)
    assert (await room.last_events())["close"] == [
        1006, "WebSocket disconnected without sending Close frame.", False]


async def test_binary_messages_up_to_32_mib_pass(served: tuple[Lab, Server]) -> None:
    _, server = served
    async with websockets.connect(ws_url(server, "big"), max_size=None) as client:
        await client.send(b"\x01" * MAX_MESSAGE)
        assert await receive(client) == f"{MAX_MESSAGE} bytes"


async def test_a_message_over_32_mib_is_refused_with_1009(served: tuple[Lab, Server]) -> None:
    lab, server = served
    client = await websockets.connect(ws_url(server, "big"))
    await client.send(b"\x01" * (MAX_MESSAGE + 1))
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await receive(client)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    events = await lab.env.CHAT_ROOM.getByName("lobby").last_events()
    assert events["error"] == ("WebSocket message is too large: 33554433 bytes (the limit is "
                               "33554432 bytes, 32 MiB).")


async def test_closing_the_server_says_going_away(served: tuple[Lab, Server]) -> None:
    lab, server = served
    alice = await websockets.connect(ws_url(server, "alice"))
    await server.close()
    with pytest.raises(websockets.ConnectionClosed):
        await receive(alice)
    assert alice.close_code == 1001
    assert (await lab.env.CHAT_ROOM.getByName("lobby").last_events())["close"][0] == 1006
    assert repr(server).endswith("(closed)>")


async def test_closing_the_lab_drops_real_clients(served: tuple[Lab, Server]) -> None:
    lab, server = served
    alice = await websockets.connect(ws_url(server, "alice"))
    assert await lab.env.CHAT_ROOM.getByName("lobby").members() == ["alice"]
    lab.close()
    with pytest.raises(websockets.ConnectionClosed):
        await receive(alice)
    assert alice.close_code == 1006
    assert (await get(server.url))[:1] == (503,)


# ---- where it listens ----------------------------------------------------------------------------


def test_loopback_addresses() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.3.2.1", "localhost", "::1", "[::1]"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.2", "::", "example.com"]))


async def test_another_host_must_be_asked_for_and_warns(capsys: pytest.CaptureFixture[str]) -> None:
    lab = chat_lab()
    async with await lab.serve(port=0) as server:
        assert server.host == "127.0.0.1"
    assert capsys.readouterr().err == ""
    async with await lab.serve(port=0, host="0.0.0.0") as server:
        assert "Warning: serving the lab on 0.0.0.0" in capsys.readouterr().err
        assert (await get(f"http://127.0.0.1:{server.port}/"))[0] == 200
    lab.close()
