"""RPC round trip to one object, no storage: dolab against an asyncio baseline in the same process.

The baseline is what an actor costs in plain asyncio: the caller puts ``(future, arg)`` on an
``asyncio.Queue``, one worker task takes it, awaits the handler and resolves the future. dolab's
round trip is ``await stub.ping(x)`` on an in-memory lab (real clock), with tracing off and on.

Targets: dolab's one-caller rate ≥ the baseline's one-caller rate (trace off); tracing on costs
≤ 25 % (time per call, on against off).

Run: ``.venv/bin/python bench/bench_rpc.py [--quick]``
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from common import (Result, Sample, banner, fmt_rate, fmt_ratio, heading, interleaved, table,
                    target, target_at_most, timed)

from dolab import DurableObject, Lab

QUICK = "--quick" in sys.argv
CALLS = 4_000 if QUICK else 20_000
CALLERS = 100
REPEATS = 3 if QUICK else 7


class Echo(DurableObject):
    async def ping(self, x: int) -> int:
        return x


async def _handler(x: int) -> int:
    return x


Actor = asyncio.Queue[tuple[asyncio.Future[int], int]]


def start_actor() -> tuple[Actor, asyncio.Task[None]]:
    """Queue → worker task → Future, the smallest asyncio actor: its queue and its worker."""
    queue: Actor = asyncio.Queue()

    async def worker() -> None:
        while True:
            future, x = await queue.get()
            future.set_result(await _handler(x))

    return queue, asyncio.get_running_loop().create_task(worker())


async def asyncio_baseline(callers: int) -> Sample:
    """The asyncio actor, called by ``callers`` concurrent callers."""
    queue, task = start_actor()
    loop = asyncio.get_running_loop()

    async def caller(count: int) -> None:
        for i in range(count):
            future = loop.create_future()
            queue.put_nowait((future, i))
            await future

    try:
        return await _callers(caller, callers)
    finally:
        task.cancel()


async def plain_await(callers: int) -> Sample:
    """No queue at all: the caller awaits the handler itself (the floor of any dispatch)."""
    async def caller(count: int) -> None:
        for i in range(count):
            await _handler(i)

    return await _callers(caller, callers)


async def _callers(caller: Any, callers: int) -> Sample:
    per = CALLS // callers

    async def body() -> None:
        if callers == 1:
            await caller(per)
        else:
            await asyncio.gather(*(caller(per) for _ in range(callers)))

    return await timed(per * callers, body)


def dolab_case(lab: Lab, callers: int) -> Any:
    stub = lab.env.ECHO.getByName("echo")

    async def caller(count: int) -> None:
        for i in range(count):
            await stub.ping(i)

    async def case() -> Sample:
        return await _callers(caller, callers)

    return case


def echo_lab(tracing: bool) -> Lab:
    lab = Lab(path=None, clock="real")
    lab.bind("ECHO", Echo)
    lab.trace.enabled = tracing
    return lab


async def main() -> None:
    banner("RPC round trip, one object, no storage")
    print(f"{CALLS:,} calls per run; median of {REPEATS} interleaved runs after a warm-up.")
    off, on = echo_lab(False), echo_lab(True)
    cases = {
        "asyncio Queue → worker → Future, 1 caller": lambda: asyncio_baseline(1),
        "dolab RPC, 1 caller, trace off": dolab_case(off, 1),
        "dolab RPC, 1 caller, trace on": dolab_case(on, 1),
        "plain await (no dispatch), 1 caller": lambda: plain_await(1),
        f"asyncio Queue → worker → Future, {CALLERS} callers": lambda: asyncio_baseline(CALLERS),
        f"dolab RPC, {CALLERS} callers, trace off": dolab_case(off, CALLERS),
        f"dolab RPC, {CALLERS} callers, trace on": dolab_case(on, CALLERS),
    }
    results = await interleaved(cases, REPEATS)
    off.close()
    on.close()
    report(results)


def report(results: dict[str, Result]) -> None:
    names = list(results)
    base1, base100 = results[names[0]], results[names[4]]
    rows = []
    for name, result in results.items():
        base = base100 if f"{CALLERS} callers" in name else base1
        rows.append([name, fmt_rate(result.rate), f"{result.latency_us:.1f}",
                     f"{result.cpu_us:.1f}", result.spread, fmt_ratio(result.rate / base.rate)])
    heading("Results")
    print(table(["case", "calls/s", "µs/call", "CPU µs/call", "spread", "vs asyncio baseline"],
                rows))
    off1, on1 = results[names[1]], results[names[2]]
    off100, on100 = results[names[5]], results[names[6]]
    print()
    target("RPC, 1 caller, trace off ÷ asyncio baseline", off1.rate / base1.rate, 1.0)
    target_at_most("tracing cost, RPC 1 caller (time per call, on vs off)",
                   (off1.rate / on1.rate - 1) * 100, 25)
    print(f"INFO RPC, {CALLERS} callers, trace off ÷ asyncio baseline: "
          f"{fmt_ratio(off100.rate / base100.rate)}; tracing cost at {CALLERS} callers: "
          f"{(off100.rate / on100.rate - 1) * 100:.0f} %")


if __name__ == "__main__":
    asyncio.run(main())
