"""SQL write + commit rate against database size (issue 4).

Each SQLite-backed object keeps its database in memory and commits its whole image into ZODB with
the turn's other writes, so a commit costs time proportional to the database's size. This prints
writes per second (one INSERT per call, each call committed before it returns) for databases of
about 10 KB, 100 KB, 1 MB and 10 MB, file-backed, and the ratio to the 10 KB rate.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dolab import DurableObject, Lab  # noqa: E402

SIZES = [10_000, 100_000, 1_000_000, 10_000_000]
ROW = "x" * 1000


class Table(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")

    async def fill(self, rows):
        for _ in range(rows):
            self.ctx.storage.sql.exec("INSERT INTO t (v) VALUES (?)", ROW)
        return self.ctx.storage.sql.databaseSize

    async def write(self):
        self.ctx.storage.sql.exec("INSERT INTO t (v) VALUES (?)", "y")


async def rate(size: int, calls: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as directory:
        lab = Lab(path=Path(directory) / "lab.fs")
        lab.bind("T", Table)
        stub = lab.env.T.getByName("t")
        actual = await stub.fill(max(1, size // 1100))
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(calls):
                await stub.write()
            runs.append(calls / (time.perf_counter() - start))
        lab.close()
        return statistics.median(runs), actual


async def main() -> None:
    print("| database | size (bytes) | SQL writes/s (each committed) | vs 10 KB |")
    print("|---|---|---|---|")
    base = None
    for size in SIZES:
        calls = 200 if size <= 1_000_000 else 40
        per_second, actual = await rate(size, calls)
        base = base or per_second
        label = f"{size // 1000} KB" if size < 1_000_000 else f"{size // 1_000_000} MB"
        print(f"| {label} | {actual:,} | {per_second:,.0f} | {per_second / base:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
