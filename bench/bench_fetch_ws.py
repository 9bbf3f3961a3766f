"""``lab.fetch`` through a Worker to an object, and WebSocket broadcast to 1,000 simulated clients.

- fetch: ``await lab.fetch(url)`` → the Worker's ``fetch`` → ``env.COUNTER.getByName(…).fetch(req)``
  → the object answers ``Response.json`` (no storage) → the body is read. Beside it, the same
  object's RPC round trip, so the ratio shows what the HTTP shapes (Request, Response, the Worker)
  cost on top of the stub.
- broadcast: 1,000 clients ``await lab.connect("ws://…/room")`` to one object that accepts them with
  the Hibernation API; one client sends messages, ``webSocketMessage`` sends each to every socket
  (``for ws in self.ctx.getWebSockets(): ws.send(msg)``); a run ends when every client has every
  message. The baseline is the same fan-out in plain asyncio: one ``Queue.put_nowait`` per client.

In-memory lab, real clock, tracing off (tracing on is shown for information).

Run: ``.venv/bin/python bench/bench_fetch_ws.py [--quick]``
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from common import (Result, Sample, banner, fmt_rate, fmt_ratio, heading, interleaved, table,
                    timed)

from dolab import DurableObject, Lab, Response, WebSocketPair, WorkerEntrypoint

QUICK = "--quick" in sys.argv
REQUESTS = 2_000 if QUICK else 10_000
CALLERS = 100
CLIENTS = 1_000
MESSAGES = 10 if QUICK else 50
REPEATS = 3 if QUICK else 5


class Counter(DurableObject):
    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        self.count = 0

    async def increment(self) -> int:
        self.count += 1
        return self.count

    async def fetch(self, request: Any) -> Response:
        return Response.json({"count": await self.increment()})


class Room(DurableObject):
    async def fetch(self, request: Any) -> Response:
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws: Any, message: Any) -> None:
        for peer in self.ctx.getWebSockets():
            peer.send(message)


class Front(WorkerEntrypoint):
    async def fetch(self, request: Any) -> Response:
        if request.headers.get("upgrade") == "websocket":
            return await self.env.ROOM.getByName("room").fetch(request)
        return await self.env.COUNTER.getByName("counter").fetch(request)


def make_lab(tracing: bool) -> Lab:
    lab = Lab(path=None, clock="real")
    lab.bind("COUNTER", Counter)
    lab.bind("ROOM", Room)
    lab.worker(Front)
    lab.trace.enabled = tracing
    return lab


async def _callers(caller: Any, callers: int, total: int) -> Sample:
    per = total // callers

    async def body() -> None:
        await asyncio.gather(*(caller(per) for _ in range(callers)))
    return await timed(per * callers, body)


def fetch_case(lab: Lab, callers: int) -> Any:
    async def caller(count: int) -> None:
        for _ in range(count):
            response = await lab.fetch("http://bench/count")
            await response.json()
    return lambda: _callers(caller, callers, REQUESTS)


def rpc_case(lab: Lab, callers: int) -> Any:
    stub = lab.env.COUNTER.getByName("counter")

    async def caller(count: int) -> None:
        for _ in range(count):
            await stub.increment()
    return lambda: _callers(caller, callers, REQUESTS)


class Broadcast:
    """A room of CLIENTS simulated clients; ``run()`` times MESSAGES broadcasts."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.clients: list[Any] = []
        self.connect_rate = 0.0

    async def open(self) -> None:
        start = time.perf_counter()
        for _ in range(CLIENTS):
            self.clients.append(await self.lab.connect("ws://bench/room"))
            await asyncio.sleep(0)  # clients arrive over time: each accept commits on its own
        self.connect_rate = CLIENTS / (time.perf_counter() - start)

    async def run(self) -> Sample:
        last = self.clients[-1]

        async def body() -> None:
            base = len(last.messages)
            for i in range(MESSAGES):
                self.clients[i % CLIENTS].send(f"message {i}")
            while len(last.messages) < base + MESSAGES:
                await asyncio.sleep(0)
        sample = await timed(MESSAGES * CLIENTS, body)
        short = [c for c in self.clients if len(c.messages) != len(last.messages)]
        assert not short, f"{len(short)} clients missed messages"
        return sample


async def asyncio_fanout() -> Sample:
    """The fan-out alone, in plain asyncio: one Queue.put_nowait per client per message."""
    queues: list[asyncio.Queue[str]] = [asyncio.Queue() for _ in range(CLIENTS)]

    async def body() -> None:
        for i in range(MESSAGES):
            message = f"message {i}"
            for queue in queues:
                queue.put_nowait(message)
            await asyncio.sleep(0)
    return await timed(MESSAGES * CLIENTS, body)


async def main() -> None:
    banner("lab.fetch through a Worker, and WebSocket broadcast")
    print(f"{REQUESTS:,} requests per fetch/RPC run; {CLIENTS:,} clients × {MESSAGES} messages "
          f"per broadcast run; median of {REPEATS} interleaved runs after a warm-up.")
    off, on = make_lab(False), make_lab(True)
    room_off, room_on = Broadcast(off), Broadcast(on)
    await room_off.open()
    await room_on.open()
    cases = {
        "dolab RPC to the object, 1 caller": rpc_case(off, 1),
        "lab.fetch → Worker → object, 1 caller": fetch_case(off, 1),
        "lab.fetch → Worker → object, 1 caller, trace on": fetch_case(on, 1),
        f"lab.fetch → Worker → object, {CALLERS} callers": fetch_case(off, CALLERS),
        "asyncio fan-out (Queue.put_nowait per client)": asyncio_fanout,
        f"WebSocket broadcast to {CLIENTS:,} clients": room_off.run,
        f"WebSocket broadcast to {CLIENTS:,} clients, trace on": room_on.run,
    }
    results = await interleaved(cases, REPEATS)
    off.close()
    on.close()
    report(results, room_off.connect_rate)


def report(results: dict[str, Result], connect_rate: float) -> None:
    names = list(results)
    rpc, fanout = results[names[0]], results[names[4]]
    rows = []
    for name, result in results.items():
        broadcast = "clients" in name or "fan-out" in name
        unit = "messages delivered/s" if broadcast else "requests/s"
        base = fanout if broadcast else rpc
        rows.append([name, fmt_rate(result.rate), unit, f"{result.cpu_us:.1f}", result.spread,
                     fmt_ratio(result.rate / base.rate)])
    heading("Results")
    print(table(["case", "rate", "unit", "CPU µs/op", "spread", "vs first row of its kind"],
                rows))
    print()
    print(f"INFO lab.connect (upgrade through the Worker, acceptWebSocket, one commit each) for "
          f"{CLIENTS:,} clients: {fmt_rate(connect_rate)} clients/s")
    fetch1, broadcast = results[names[1]], results[names[5]]
    print(f"INFO lab.fetch ÷ RPC, 1 caller: {fmt_ratio(fetch1.rate / rpc.rate)}; broadcast: "
          f"{fmt_rate(broadcast.rate / CLIENTS)} broadcasts/s to {CLIENTS:,} clients")


if __name__ == "__main__":
    asyncio.run(main())
