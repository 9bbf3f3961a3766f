"""Serving under stress (issue 10): ``lab.serve`` binds loopback only unless told otherwise (and
then warns), a WebSocket message over 32 MiB is refused with 1009, and many connect/disconnect
cycles leak no sockets and no tasks (DESIGN.md §12).

While ``dolab/serve.py`` does not exist these tests are marked xfail (not skipped), and the stress
summary says so; they run for real as soon as it does.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from dolab import DurableObject, Lab, Response, WebSocketPair, WorkerEntrypoint

SERVE_EXISTS = importlib.util.find_spec("dolab.serve") is not None
MIB = 1024 * 1024
pytestmark = [
    pytest.mark.slow,
    pytest.mark.xfail(not SERVE_EXISTS, strict=False,
                      reason="serve not yet implemented (dolab/serve.py does not exist)"),
]


class Echo(DurableObject):
    received: ClassVar[list[int]] = []

    async def fetch(self, request: Any) -> Response:
        client, server = WebSocketPair()
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws: Any, message: Any) -> None:
        type(self).received.append(len(message))
        ws.send(message)

    async def webSocketClose(self, ws: Any, code: int, reason: str, was_clean: bool) -> None:
        pass

    async def sockets(self) -> int:
        return len(self.ctx.getWebSockets())


class Front(WorkerEntrypoint):
    async def fetch(self, request: Any) -> Any:
        if request.headers.get("upgrade") == "websocket":
            return await self.env.ECHO.getByName("room").fetch(request)
        return Response("hello")


@pytest.fixture(autouse=True)
def _say_when_serve_is_missing(stress_report: dict[str, str]) -> None:
    if not SERVE_EXISTS:
        stress_report["serve"] = ("NOT RUN: dolab/serve.py does not exist yet, so the serve "
                                  "stress tests are marked xfail")


@pytest.fixture
async def served() -> AsyncIterator[tuple[Lab, Any]]:
    Echo.received = []
    lab = Lab(path=None)
    lab.bind("ECHO", Echo)
    lab.worker(Front)
    server = await lab.serve(port=0)
    try:
        yield lab, server
    finally:
        await server.close()
        lab.close()


def _listening(port: int) -> list[str]:
    """The local addresses listening on ``port``, from /proc/net/tcp and tcp6 (hex, as there)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.append(address)
    return found


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 and ::1


async def test_serve_listens_on_loopback_only_unless_told(
        served: tuple[Lab, Any], capsys: pytest.CaptureFixture[str]) -> None:
    lab, server = served
    addresses = _listening(server.port)
    assert addresses and set(addresses) <= LOOPBACK, addresses
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await reader.read()).endswith(b"hello")
    writer.close()
    assert "Warning" not in capsys.readouterr().err
    exposed = await lab.serve(port=0, host="0.0.0.0")  # told otherwise: it says so, loudly
    try:
        assert _listening(exposed.port) == ["00000000"]
        assert "not only on this machine's loopback" in capsys.readouterr().err
    finally:
        await exposed.close()
    assert _listening(exposed.port) == []


async def test_a_websocket_message_over_32_MiB_is_refused(served: tuple[Lab, Any]) -> None:
    lab, server = served
    url = f"ws://127.0.0.1:{server.port}/room"
    async with connect(url, max_size=None) as ws:
        await ws.send(b"x" * (32 * MIB))  # exactly the limit: delivered and echoed
        assert len(await ws.recv()) == 32 * MIB
    async with connect(url, max_size=None) as ws:
        await ws.send(b"x" * (32 * MIB + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert Echo.received == [32 * MIB]  # the object never saw the oversized message
    async with connect(url) as ws:  # and the server still serves
        await ws.send("after")
        assert await ws.recv() == "after"


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_connect_disconnect_cycles_leak_no_sockets_or_tasks(
        served: tuple[Lab, Any], stress_report: dict[str, str]) -> None:
    lab, server = served
    url = f"ws://127.0.0.1:{server.port}/room"
    async with connect(url) as ws:  # warm up: the first connection creates what stays
        await ws.send("warm")
        await ws.recv()
    await asyncio.sleep(0.1)
    tasks, fds = len(asyncio.all_tasks()), _open_fds()
    for cycle in range(300):
        ws = await connect(url)
        await ws.send(f"m{cycle}")
        assert await ws.recv() == f"m{cycle}"
        if cycle % 3 == 2:
            ws.transport.abort()  # vanish without a Close frame
        else:
            await ws.close()
    await asyncio.sleep(0.5)  # let the server notice the last ones
    sockets = await lab.env.ECHO.getByName("room").sockets()
    leaked = (len(asyncio.all_tasks()) - tasks, _open_fds() - fds, sockets, server.connections)
    stress_report["serve"] = (f"300 WebSocket connect/disconnect cycles (1 in 3 dropped without "
                              f"a Close frame): {leaked[0]} tasks, {leaked[1]} fds, {leaked[2]} "
                              f"object sockets, {leaked[3]} server connections left over")
    assert leaked[0] <= 2 and leaked[1] <= 3 and leaked[2:] == (0, 0), leaked
