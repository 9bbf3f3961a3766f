"""Durable increments (one ``put`` per call) on a file-backed lab, against raw ZODB and sqlite3.

Every case writes to the same disk (one scratch directory):

- raw ZODB FileStorage: set one key of an OOBTree and commit (one change per commit), and set one
  key in each of 100 OOBTrees per commit (100 changes per commit);
- sqlite3 in WAL mode with ``synchronous=FULL``: one upsert per commit, and 100 per commit;
- dolab: the DESIGN.md Counter (``storage.put("count", n)`` per call, output-gated reply), one
  object with one sequential caller, and 100 objects with 1 and with 100 concurrent callers each.
  dolab commits once per loop step for every object written in it (group commit), so "writes per
  commit" is the number of ``put`` calls each ZODB commit carried.

Targets: one object sequential ≥ 80 % of raw ZODB's one-change-per-commit rate; 100 objects
concurrent ≥ 20× the one-object sequential rate.

Run: ``.venv/bin/python bench/bench_durable.py [--quick]``
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path
from typing import Any

import transaction
import ZODB
import ZODB.FileStorage
from BTrees.OOBTree import OOBTree
from common import (Result, Sample, banner, fmt_rate, fmt_ratio, heading, interleaved,
                    scratch_dir, table, target, timed)

from dolab import DurableObject, Lab

QUICK = "--quick" in sys.argv
SEQUENTIAL = 100 if QUICK else 300        # commits per run in the one-change cases
BATCHED = 30 if QUICK else 100            # commits per run in the 100-changes cases
OBJECTS = 100
CALLS_EACH = 1 if QUICK else 3            # sequential calls per caller, 100 × 100 callers
REPEATS = 3 if QUICK else 5


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


# ---- baselines -----------------------------------------------------------------------------------


class RawZodb:
    """A FileStorage with 100 OOBTrees, committed by hand as dolab's store does."""

    def __init__(self, path: Path) -> None:
        self.tm = transaction.TransactionManager(explicit=True)
        self.db = ZODB.DB(ZODB.FileStorage.FileStorage(str(path)))
        self.conn = self.db.open(transaction_manager=self.tm)
        self.tm.begin()
        root = self.conn.root()
        root["trees"] = self.trees = [OOBTree() for _ in range(OBJECTS)]
        for tree in self.trees:
            root[f"t{id(tree)}"] = tree
        self.tm.commit()
        self.n = 0

    async def one_per_commit(self) -> Sample:
        async def body() -> None:
            tree = self.trees[0]
            for _ in range(SEQUENTIAL):
                self.n += 1
                self.tm.begin()
                tree["count"] = b"I%d" % self.n
                self.tm.commit()
                await asyncio.sleep(0)  # as a server would: let the loop run between commits
        return _commits(await timed(SEQUENTIAL, body), SEQUENTIAL, 1)

    async def hundred_per_commit(self) -> Sample:
        async def body() -> None:
            for _ in range(BATCHED):
                self.n += 1
                self.tm.begin()
                for tree in self.trees:
                    tree["count"] = b"I%d" % self.n
                self.tm.commit()
                await asyncio.sleep(0)
        return _commits(await timed(BATCHED * OBJECTS, body), BATCHED, OBJECTS)

    def close(self) -> None:
        self.conn.close()
        self.db.close()


class RawSqlite:
    """sqlite3, WAL journal, synchronous=FULL (an fsync per commit), one table of key → value."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB)")
        self.n = 0

    async def one_per_commit(self) -> Sample:
        async def body() -> None:
            for _ in range(SEQUENTIAL):
                self.n += 1
                self.db.execute("BEGIN")
                self.db.execute("INSERT OR REPLACE INTO kv VALUES ('count', ?)", (self.n,))
                self.db.execute("COMMIT")
                await asyncio.sleep(0)
        return _commits(await timed(SEQUENTIAL, body), SEQUENTIAL, 1)

    async def hundred_per_commit(self) -> Sample:
        async def body() -> None:
            for _ in range(BATCHED):
                self.n += 1
                self.db.execute("BEGIN")
                self.db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)",
                                    ((f"count{i}", self.n) for i in range(OBJECTS)))
                self.db.execute("COMMIT")
                await asyncio.sleep(0)
        return _commits(await timed(BATCHED * OBJECTS, body), BATCHED, OBJECTS)

    def close(self) -> None:
        self.db.close()


def _commits(sample: Sample, commits: int, per: int) -> Sample:
    sample.extra = {"commits": commits, "writes": commits * per}
    return sample


# ---- dolab ---------------------------------------------------------------------------------------


class DolabCounters:
    """One file-backed lab; counts ZODB commits by wrapping the store's commit."""

    def __init__(self, path: Path) -> None:
        self.lab = Lab(path=path, clock="real")
        self.lab.bind("COUNTER", Counter)
        self.commits = 0
        commit = self.lab.store.commit

        def counting(note: str = "") -> None:
            self.commits += 1
            commit(note)

        self.lab.store.commit = counting  # type: ignore[method-assign]
        self.single = self.lab.env.COUNTER.getByName("single")
        self.many = [self.lab.env.COUNTER.getByName(f"c{i}") for i in range(OBJECTS)]

    async def sequential(self, tracing: bool) -> Sample:
        async def body() -> None:
            for _ in range(SEQUENTIAL):
                await self.single.increment()
        return await self._measure(SEQUENTIAL, body, tracing)

    async def concurrent(self, callers: int, calls: int) -> Sample:
        async def caller(stub: Any) -> None:
            for _ in range(calls):
                await stub.increment()

        async def body() -> None:
            await asyncio.gather(*(caller(s) for s in self.many for _ in range(callers)))
        return await self._measure(OBJECTS * callers * calls, body, False)

    async def _measure(self, n: int, body: Any, tracing: bool) -> Sample:
        self.lab.trace.enabled = tracing
        before = self.commits
        sample = await timed(n, body)
        commits = self.commits - before
        sample.extra = {"commits": commits, "writes": n}
        return sample

    def close(self) -> None:
        self.lab.close()


# ---- report --------------------------------------------------------------------------------------


async def main() -> None:
    where = scratch_dir("durable")
    banner("Durable increments (one put per call), file-backed", where)
    print(f"Scratch directory {where}; median of {REPEATS} interleaved runs after a warm-up.")
    zodb, lite = RawZodb(where / "raw.fs"), RawSqlite(where / "raw.sqlite")
    dolab = DolabCounters(where / "lab.fs")
    cases = {
        "raw ZODB, 1 change per commit": zodb.one_per_commit,
        "raw ZODB, 100 changes per commit": zodb.hundred_per_commit,
        "sqlite3 WAL/FULL, 1 change per commit": lite.one_per_commit,
        "sqlite3 WAL/FULL, 100 changes per commit": lite.hundred_per_commit,
        "dolab, 1 object, sequential, trace off": lambda: dolab.sequential(False),
        "dolab, 1 object, sequential, trace on": lambda: dolab.sequential(True),
        f"dolab, {OBJECTS} objects × 1 caller": lambda: dolab.concurrent(1, 10 * CALLS_EACH),
        f"dolab, {OBJECTS} objects × 100 callers": lambda: dolab.concurrent(100, CALLS_EACH),
    }
    results = await interleaved(cases, REPEATS)
    zodb.close()
    lite.close()
    dolab.close()
    report(results)


def report(results: dict[str, Result]) -> None:
    names = list(results)
    raw1 = results[names[0]]
    rows = []
    for name, result in results.items():
        commits = result.extra("commits")
        writes = result.extra("writes")
        commit_rate = result.rate * commits / writes if writes else 0.0
        rows.append([name, fmt_rate(result.rate), fmt_rate(commit_rate),
                     f"{writes / commits:.1f}" if commits else "–", result.spread,
                     fmt_ratio(result.rate / raw1.rate)])
    heading("Results")
    print(table(["case", "writes/s", "commits/s", "writes/commit", "spread",
                 "vs raw ZODB 1/commit"], rows))
    seq, seq_on = results[names[4]], results[names[5]]
    many = results[names[7]]
    print()
    target("dolab 1 object sequential ÷ raw ZODB 1 change per commit", seq.rate / raw1.rate, 0.8)
    target(f"dolab {OBJECTS} objects × 100 callers ÷ dolab 1 object sequential",
           many.rate / seq.rate, 20.0)
    print(f"INFO tracing cost, durable sequential (time per call, on vs off): "
          f"{(seq.rate / seq_on.rate - 1) * 100:.0f} %")


if __name__ == "__main__":
    asyncio.run(main())
