"""Profile dolab's hot paths (not run by ``make bench``).

Each workload is the one its benchmark times. With pyinstrument installed
(``.venv/bin/pip install pyinstrument``) the call tree is printed; ``--cprofile`` prints the
stdlib profiler's top functions by own time instead.

Run: ``.venv/bin/python bench/profile_paths.py rpc|rpc-trace|durable|durable-many|fetch|ws|ws-trace
[--cprofile]``
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
from typing import Any, Awaitable, Callable

from bench_fetch_ws import Front, Room
from bench_rpc import Echo
from common import scratch_dir

from dolab import DurableObject, Lab, Response


class Counter(DurableObject):
    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self) -> None:
        self.count = await self.ctx.storage.get("count") or 0

    async def increment(self) -> int:
        self.count += 1
        self.ctx.storage.put("count", self.count)
        return self.count

    async def fetch(self, request: Any) -> Response:
        return Response.json({"count": self.count})


async def rpc(trace: bool) -> Callable[[], Awaitable[None]]:
    lab = Lab(path=None, clock="real")
    lab.bind("ECHO", Echo)
    lab.trace.enabled = trace
    stub = lab.env.ECHO.getByName("e")
    await stub.ping(0)

    async def work() -> None:
        for i in range(30_000):
            await stub.ping(i)
    return work


async def durable(objects: int, callers: int, calls: int) -> Callable[[], Awaitable[None]]:
    lab = Lab(path=scratch_dir("profile") / "lab.fs", clock="real")
    lab.bind("COUNTER", Counter)
    lab.trace.enabled = False
    stubs = [lab.env.COUNTER.getByName(f"c{i}") for i in range(objects)]
    await asyncio.gather(*(s.increment() for s in stubs))

    async def caller(stub: Any) -> None:
        for _ in range(calls):
            await stub.increment()

    async def work() -> None:
        await asyncio.gather(*(caller(s) for s in stubs for _ in range(callers)))
    return work


async def fetch() -> Callable[[], Awaitable[None]]:
    lab = Lab(path=None, clock="real")
    lab.bind("COUNTER", Counter)
    lab.worker(Front)
    lab.trace.enabled = False
    await lab.fetch("http://w/")

    async def work() -> None:
        for _ in range(10_000):
            await lab.fetch("http://w/")
    return work


async def ws(trace: bool) -> Callable[[], Awaitable[None]]:
    lab = Lab(path=None, clock="real")
    lab.bind("ROOM", Room)
    lab.worker(Front)
    lab.trace.enabled = False
    clients = [await lab.connect("ws://w/room") for _ in range(1000)]
    lab.trace.enabled = trace

    async def work() -> None:
        for i in range(20):
            clients[0].send(f"m{i}")
        while len(clients[-1].messages) < 20:
            await asyncio.sleep(0)
    return work


WORKLOADS: dict[str, Callable[[], Awaitable[Callable[[], Awaitable[None]]]]] = {
    "rpc": lambda: rpc(False),
    "rpc-trace": lambda: rpc(True),
    "durable": lambda: durable(1, 1, 1_000),
    "durable-many": lambda: durable(100, 100, 5),
    "fetch": fetch,
    "ws": lambda: ws(False),
    "ws-trace": lambda: ws(True),
}


async def main(name: str, use_cprofile: bool) -> None:
    work = await WORKLOADS[name]()
    if use_cprofile:
        profile = cProfile.Profile()
        profile.enable()
        await work()
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0002, async_mode="disabled")
    profiler.start()
    await work()
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=False))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    asyncio.run(main(args[0] if args else "rpc", "--cprofile" in sys.argv))
