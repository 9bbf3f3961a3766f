"""Instructions per RPC, counted by valgrind's callgrind: the noise-free view of ``bench_rpc.py``.

Timings on a shared 2-core VM move by ±5–10 % from run to run; instruction counts repeat to a few
instructions. Each case runs twice under callgrind, with 1 and with N + 1 calls, and the difference
divided by N is the cost of one call (start-up cancels out). Cases: the asyncio Queue → worker →
Future baseline of ``bench_rpc.py``, and dolab's RPC to an idle object with tracing off and on.
Instructions are not time (a cache miss costs more than an add), so use this to compare versions
of the same path, and ``bench_rpc.py`` for the targets. Not run by ``make bench`` (it needs
valgrind and takes about a minute).

Run: ``.venv/bin/python bench/instructions.py``
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys

from bench_rpc import Echo, start_actor

from dolab import Lab

CALLS = 20_000


async def asyncio_baseline(n: int) -> None:
    """As ``bench_rpc.asyncio_baseline`` with one caller."""
    queue, task = start_actor()
    loop = asyncio.get_running_loop()
    for i in range(n):
        future = loop.create_future()
        queue.put_nowait((future, i))
        await future
    task.cancel()


async def dolab_rpc(n: int, tracing: bool) -> None:
    lab = Lab(path=None, clock="real")
    lab.bind("E", Echo)
    lab.trace.enabled = tracing
    stub = lab.env.E.getByName("a")
    await stub.ping(0)  # constructed: every call below takes the fast path
    for i in range(n):
        await stub.ping(i)
    lab.close()


CASES = {
    "asyncio Queue → worker → Future": lambda n: asyncio_baseline(n),
    "dolab RPC, trace off": lambda n: dolab_rpc(n, False),
    "dolab RPC, trace on": lambda n: dolab_rpc(n, True),
}


def _count(case: str, n: int) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
               __file__, "--run", case, str(n)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stderr
    found = re.search(r"Collected : (\d+)", output)
    if found is None:
        raise RuntimeError(f"callgrind printed no count:\n{output[-2000:]}")
    return int(found.group(1))


def main() -> None:
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind); nothing measured.")
        return
    rows = []
    for case in CASES:
        per_call = (_count(case, CALLS + 1) - _count(case, 1)) / CALLS
        rows.append((case, per_call))
        print(f"{case}: {per_call:,.0f} instructions per call", flush=True)
    base, off, on = (per for _, per in rows)
    print(f"\ndolab trace off ÷ asyncio baseline: {off / base:.2f}× the instructions "
          f"(fewer is faster)\ntracing on costs {(on / off - 1) * 100:.0f} % more instructions "
          "than tracing off")


if __name__ == "__main__":
    if "--run" in sys.argv:
        case, n = sys.argv[sys.argv.index("--run") + 1:][:2]
        asyncio.run(CASES[case](int(n)))
    else:
        main()
