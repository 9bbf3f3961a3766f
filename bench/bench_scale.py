"""Scale: many objects, one big object, and memory per live instance.

1. 100,000 objects with one key each in a file-backed lab: create them (1,000 concurrent callers,
   so writes group-commit), close, reopen, and read every one back.
2. One object with 1,000,000 keys (keys ``k0000000…``, 10,000 per call): latency of ``get``, and of
   ``list`` with ``prefix``/``start``/``limit``/``reverse``, warm and right after a reopen.
3. Memory per live instance: Python heap (tracemalloc) and resident memory per constructed
   instance of a one-field object, in-memory lab, tracing off.

``--quick`` uses 10,000 objects and 100,000 keys; ``make bench`` runs the full sizes.

Run: ``.venv/bin/python bench/bench_scale.py [--quick]``
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Awaitable, Callable

from common import (banner, fmt_bytes, fmt_rate, fmt_time, heading, rss_bytes, scratch_dir,
                    table)

from dolab import DurableObject, Lab

QUICK = "--quick" in sys.argv
OBJECTS = 10_000 if QUICK else 100_000
KEYS = 100_000 if QUICK else 1_000_000
PER_FILL = 10_000                 # keys written per RPC call (one commit each)
CONCURRENCY = 1_000               # callers in flight while creating / reading objects
LIVE = 10_000                     # instances for the memory measurement
LATENCY_CALLS = 200


class Item(DurableObject):
    async def set(self, value: int) -> None:
        self.ctx.storage.put("value", value)

    async def read(self) -> Any:
        return await self.ctx.storage.get("value")


class Big(DurableObject):
    async def fill(self, start: int, count: int) -> None:
        storage = self.ctx.storage
        for base in range(start, start + count, 128):
            storage.put({f"k{i:07d}": i for i in range(base, min(base + 128, start + count))})

    async def get(self, key: str) -> Any:
        return await self.ctx.storage.get(key)

    async def list(self, options: dict[str, Any]) -> int:
        return len(await self.ctx.storage.list(**options))


class Tiny(DurableObject):
    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        self.n = 0

    async def touch(self) -> int:
        self.n += 1
        return self.n


def open_lab(path: Path) -> Lab:
    lab = Lab(path=path, clock="real")
    lab.bind("ITEM", Item)
    lab.bind("BIG", Big)
    lab.trace.enabled = False
    return lab


async def in_batches(count: int, call: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """``call(i)`` for every i, CONCURRENCY at a time."""
    results: list[Any] = []
    for start in range(0, count, CONCURRENCY):
        results += await asyncio.gather(*(call(i) for i in range(start, min(start + CONCURRENCY,
                                                                             count))))
    return results


# ---- 1. many objects -----------------------------------------------------------------------------


async def many_objects(where: Path) -> list[list[str]]:
    path = where / "many.fs"
    lab = open_lab(path)
    start = time.perf_counter()
    await in_batches(OBJECTS, lambda i: lab.env.ITEM.getByName(f"item-{i}").set(i))
    created = time.perf_counter() - start
    start = time.perf_counter()
    lab.close()
    closed = time.perf_counter() - start
    size = path.stat().st_size

    gc.collect()
    start = time.perf_counter()
    lab = open_lab(path)
    reopened = time.perf_counter() - start
    start = time.perf_counter()
    ids = lab.ids("ITEM")
    listed = time.perf_counter() - start
    start = time.perf_counter()
    values = await in_batches(OBJECTS, lambda i: lab.env.ITEM.getByName(f"item-{i}").read())
    read = time.perf_counter() - start
    assert values == list(range(OBJECTS)), "read back differs"
    assert len(ids) == OBJECTS
    lab.close()
    return [
        [f"create {OBJECTS:,} objects (1 put each)", fmt_time(created),
         f"{fmt_rate(OBJECTS / created)} objects/s"],
        ["close (commit, write the index)", fmt_time(closed), f"file {fmt_bytes(size)}"],
        ["reopen the lab", fmt_time(reopened), ""],
        [f"lab.ids() → {len(ids):,} ids", fmt_time(listed), ""],
        [f"read back {OBJECTS:,} objects after reopen", fmt_time(read),
         f"{fmt_rate(OBJECTS / read)} objects/s"],
    ]


# ---- 2. one big object ---------------------------------------------------------------------------

MIDDLE = f"k{KEYS // 2:07d}"
QUERIES: list[tuple[str, dict[str, Any]]] = [
    (f"list(prefix={MIDDLE[:-4]!r}, limit=100)", {"prefix": MIDDLE[:-4], "limit": 100}),
    (f"list(start={MIDDLE!r}, limit=100)", {"start": MIDDLE, "limit": 100}),
    ("list(limit=100, reverse=True)", {"limit": 100, "reverse": True}),
    (f"list(prefix={MIDDLE[:-4]!r}, limit=100, reverse=True)",
     {"prefix": MIDDLE[:-4], "limit": 100, "reverse": True}),
    (f"list(prefix={MIDDLE[:-3]!r}) (all 1,000)", {"prefix": MIDDLE[:-3]}),
]


async def latency(call: Callable[[], Awaitable[Any]], calls: int = LATENCY_CALLS,
                  budget_s: float = 3.0) -> tuple[float, int]:
    """Median latency of ``call`` over ``calls`` calls (fewer, at least 5, for a slow one)."""
    times: list[float] = []
    spent = 0.0
    while len(times) < calls and (len(times) < 5 or spent < budget_s):
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return statistics.median(times), len(times)


async def big_object(where: Path) -> list[list[str]]:
    path = where / "big.fs"
    lab = open_lab(path)
    big = lab.env.BIG.getByName("big")
    start = time.perf_counter()
    for offset in range(0, KEYS, PER_FILL):
        await big.fill(offset, min(PER_FILL, KEYS - offset))
    filled = time.perf_counter() - start
    rows = [[f"write {KEYS:,} keys ({PER_FILL:,} per call and commit)", fmt_time(filled),
             f"{fmt_rate(KEYS / filled)} keys/s"]]
    median, calls = await latency(lambda: big.get(MIDDLE))
    rows.append(["get(one key), warm", fmt_time(median), f"{calls} calls"])
    for label, options in QUERIES:
        expected = await big.list(options)
        median, calls = await latency(lambda o=options: big.list(o))
        rows.append([f"{label} → {expected} keys, warm", fmt_time(median), f"{calls} calls"])
    lab.close()
    size = path.stat().st_size

    cold = open_lab(path)
    big = cold.env.BIG.getByName("big")
    start = time.perf_counter()
    await big.list({"prefix": MIDDLE[:-4], "limit": 100})
    first = time.perf_counter() - start
    start = time.perf_counter()
    await big.list({"limit": 100, "reverse": True})
    reverse = time.perf_counter() - start
    cold.close()
    rows += [
        ["first list(prefix, limit=100) after reopen (construct, load)", fmt_time(first),
         f"file {fmt_bytes(size)}"],
        ["then list(limit=100, reverse=True), cold buckets", fmt_time(reverse), ""],
    ]
    return rows


# ---- 3. memory per live instance -----------------------------------------------------------------


async def memory_per_instance() -> list[list[str]]:
    lab = Lab(path=None, clock="real")
    lab.bind("TINY", Tiny)
    lab.trace.enabled = False
    await lab.env.TINY.getByName("warm").touch()

    gc.collect()
    rss_before = rss_bytes()
    await in_batches(OBJECTS, lambda i: lab.env.TINY.getByName(f"u{i}").touch())
    gc.collect()
    rss = (rss_bytes() - rss_before) / OBJECTS

    gc.collect()
    tracemalloc.start()
    heap_before = tracemalloc.get_traced_memory()[0]
    await in_batches(LIVE, lambda i: lab.env.TINY.getByName(f"t{i}").touch())
    gc.collect()
    heap = (tracemalloc.get_traced_memory()[0] - heap_before) / LIVE
    hosts = [h for h in lab.bindings["TINY"].hosts.values() if (h.id.name or "")[:1] == "t"]
    live = sum(1 for h in hosts if h.instance is not None)
    for host in hosts:
        host.evict()  # what idle eviction does (lab.evict() would settle the loop each time)
    gc.collect()
    kept = (tracemalloc.get_traced_memory()[0] - heap_before) / LIVE
    tracemalloc.stop()
    lab.close()
    return [
        [f"resident memory per live instance (RSS delta, {OBJECTS:,} instances)",
         fmt_bytes(rss), "includes the lab's bookkeeping for the object"],
        [f"Python heap per live instance (tracemalloc, {LIVE:,} instances)", fmt_bytes(heap),
         f"{live:,} of them still live when measured"],
        ["Python heap kept per object after eviction", fmt_bytes(kept),
         "the lab keeps one host per object ever used"],
    ]


async def main() -> None:
    where = scratch_dir("scale")
    banner("Scale", where)
    print(f"Scratch directory {where}; file-backed labs (FileStorage), tracing off; "
          f"{'--quick sizes' if QUICK else 'full sizes'}.")
    memory = await memory_per_instance()  # first: later steps leave freed memory to reuse
    heading(f"{OBJECTS:,} objects, one key each")
    print(table(["step", "time", "rate / size"], await many_objects(where)))
    heading(f"One object with {KEYS:,} keys (median latency of an RPC call doing the operation)")
    print(table(["operation", "latency", "note"], await big_object(where)))
    heading("Memory per live instance")
    print(table(["measure", "per instance", "note"], memory))


if __name__ == "__main__":
    asyncio.run(main())
