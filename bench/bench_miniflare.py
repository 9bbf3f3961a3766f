"""The reference runtime beside dolab: the same counter workloads on Miniflare (workerd).

``bench/miniflare/bench.mjs`` drives Miniflare in-process from Node through a Durable Object stub
(``getDurableObjectNamespace``) and through ``dispatchFetch``, with SQLite-backed objects persisted
to a temporary directory. This script runs the same workloads on a file-backed dolab lab (stub RPC
and ``lab.fetch``), then the Node script, and prints both with the versions used.

Needs Node.js and ``cd bench/miniflare && npm install`` (miniflare is pinned in package.json);
without them it prints dolab's column and says why Miniflare's is missing.

Note what is compared: Miniflare's stub and ``dispatchFetch`` cross from Node into workerd over a
local socket on every call, while dolab's caller and object share one asyncio loop. The figures
describe the two local development runtimes, not Cloudflare's network.

Run: ``.venv/bin/python bench/bench_miniflare.py [--quick]``
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from typing import Any

from common import (ROOT, Result, Sample, banner, fmt_rate, fmt_ratio, heading, interleaved,
                    scratch_dir, table, timed)

from dolab import DurableObject, Lab, Response, WorkerEntrypoint

QUICK = "--quick" in sys.argv
REPEATS = 3 if QUICK else 5
RPC = 2_000 if QUICK else 10_000
DURABLE = 100 if QUICK else 300
FETCH = 1_000 if QUICK else 5_000
OBJECTS = 100
CALLERS = 10                      # per object, as bench.mjs (100 would take minutes there)
MINIFLARE = ROOT / "bench" / "miniflare"
NODE_TIMEOUT_S = 600


class Counter(DurableObject):
    """The same Counter as bench.mjs's, in Python."""

    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self) -> None:
        self.count = await self.ctx.storage.get("count") or 0

    async def increment(self) -> int:
        self.count += 1
        self.ctx.storage.put("count", self.count)
        return self.count

    async def ping(self, x: int) -> int:
        return x

    async def fetch(self, request: Any) -> Response:
        if request.url.endswith("/ping") or "/ping?" in request.url:
            return Response.json({"pong": True})
        return Response.json({"count": await self.increment()})


class Front(WorkerEntrypoint):
    async def fetch(self, request: Any) -> Response:
        name = request.url.split("name=", 1)[1] if "name=" in request.url else "fetch"
        namespace = self.env.COUNTER
        return await namespace.get(namespace.idFromName(name)).fetch(request)


def dolab_cases(lab: Lab) -> dict[str, Any]:
    ns = lab.env.COUNTER
    single, echo = ns.getByName("single"), ns.getByName("echo")
    many = [ns.getByName(f"c{i}") for i in range(OBJECTS)]

    async def rpc() -> Sample:
        async def body() -> None:
            for i in range(RPC):
                await echo.ping(i)
        return await timed(RPC, body)

    async def durable_rpc() -> Sample:
        async def body() -> None:
            for _ in range(DURABLE):
                await single.increment()
        return await timed(DURABLE, body)

    async def durable_fetch() -> Sample:
        async def body() -> None:
            for _ in range(DURABLE):
                await (await lab.fetch("http://bench/inc?name=single")).json()
        return await timed(DURABLE, body)

    async def concurrent() -> Sample:
        async def body() -> None:
            await asyncio.gather(*(s.increment() for s in many for _ in range(CALLERS)))
        return await timed(OBJECTS * CALLERS, body)

    async def fetch() -> Sample:
        async def body() -> None:
            for _ in range(FETCH):
                await (await lab.fetch("http://bench/ping?name=echo")).json()
        return await timed(FETCH, body)

    return {
        "RPC ping, 1 caller (no storage)": rpc,
        "durable increment via stub RPC, 1 object sequential": durable_rpc,
        "durable increment via dispatchFetch, 1 object sequential": durable_fetch,
        f"durable increment via stub RPC, {OBJECTS} objects × {CALLERS} callers": concurrent,
        "dispatchFetch → Worker → object, 1 caller (no storage)": fetch,
    }


def run_miniflare() -> tuple[dict[str, Any] | None, str]:
    """Run bench.mjs; returns (its JSON, "") or (None, why it could not run)."""
    node = shutil.which("node")
    if node is None:
        return None, "Node.js is not installed"
    if not (MINIFLARE / "node_modules" / "miniflare").is_dir():
        return None, "miniflare is not installed: run `cd bench/miniflare && npm install`"
    args = [node, str(MINIFLARE / "bench.mjs"), "--persist", str(scratch_dir("miniflare"))]
    if QUICK:
        args.append("--quick")
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=NODE_TIMEOUT_S,
                              cwd=MINIFLARE)
    except subprocess.TimeoutExpired:
        return None, f"bench.mjs did not finish in {NODE_TIMEOUT_S} s"
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        return None, "workerd could not run here: " + " / ".join(tail)
    return json.loads(lines[-1]), ""


async def main() -> None:
    where = scratch_dir("reference")
    banner("dolab beside the reference runtime (Miniflare / workerd)", where)
    lab = Lab(path=where / "lab.fs", clock="real")
    lab.bind("COUNTER", Counter)
    lab.worker(Front)
    lab.trace.enabled = False
    results = await interleaved(dolab_cases(lab), REPEATS)
    lab.close()
    reference, why = run_miniflare()
    report(results, reference, why)


def report(results: dict[str, Result], reference: dict[str, Any] | None, why: str) -> None:
    theirs = {r["case"]: r["rate"] for r in (reference or {}).get("results", [])}
    if reference is not None:
        v = reference["versions"]
        print(f"Reference: Miniflare {v['miniflare']}, {v['workerd']}, Node.js {v['node']}; "
              f"SQLite-backed objects persisted to {reference['persist']}; median of "
              f"{reference['repeats']} runs.")
    else:
        print(f"Reference: not measured — {why}.")
    print(f"dolab: file-backed lab (FileStorage), tracing off; median of {REPEATS} runs.")
    rows = []
    for name, result in results.items():
        other = theirs.get(name)
        rows.append([name, fmt_rate(result.rate), fmt_rate(other) if other else "n/a",
                     fmt_ratio(result.rate / other) if other else "n/a"])
    heading("Results (operations per second)")
    print(table(["workload", "dolab", "Miniflare", "dolab ÷ Miniflare"], rows))


if __name__ == "__main__":
    asyncio.run(main())
