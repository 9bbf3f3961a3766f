// The reference runtime for bench/bench_miniflare.py: the same counter workloads on Miniflare
// (workerd), driven in-process from Node through a Durable Object stub and through dispatchFetch.
// Prints one JSON object: {"versions": {...}, "results": [{"case", "ops", "seconds"}...]}.
//
// Run: node bench/miniflare/bench.mjs [--quick] [--persist DIR]
import { Miniflare } from "miniflare";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

const quick = process.argv.includes("--quick");
const persistAt = process.argv.indexOf("--persist");
const persist = persistAt > 0 ? process.argv[persistAt + 1] : mkdtempSync(join(tmpdir(), "dolab-bench-mf-"));
const repeats = quick ? 3 : 5;
// Every call crosses from Node into workerd over a local socket (~2–5 ms): keep runs short.
const sizes = {
  rpc: quick ? 300 : 1000,
  durable: quick ? 100 : 200,
  fetch: quick ? 300 : 1000,
  objects: 100,
  callers: 10,
};

// The DESIGN.md Counter, in JavaScript, and a Worker in front of it.
const script = `
import { DurableObject } from "cloudflare:workers";

export class Counter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => {
      this.count = (await ctx.storage.get("count")) ?? 0;
    });
  }
  async increment() {
    this.count += 1;
    this.ctx.storage.put("count", this.count);
    return this.count;
  }
  async ping(x) {
    return x;
  }
  async fetch(request) {
    if (new URL(request.url).pathname === "/ping") return Response.json({ pong: true });
    return Response.json({ count: await this.increment() });
  }
}

export default {
  async fetch(request, env) {
    const name = new URL(request.url).searchParams.get("name") ?? "fetch";
    return env.COUNTER.get(env.COUNTER.idFromName(name)).fetch(request);
  },
};
`;

const mf = new Miniflare({
  modules: true,
  script,
  compatibilityDate: "2025-04-01",
  durableObjects: { COUNTER: { className: "Counter", useSQLite: true } },
  durableObjectsPersist: persist,
});

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function timed(ops, body) {
  const start = process.hrtime.bigint();
  await body();
  return { ops, seconds: Number(process.hrtime.bigint() - start) / 1e9 };
}

const ns = await mf.getDurableObjectNamespace("COUNTER");
const stub = (name) => ns.get(ns.idFromName(name));
const single = stub("single");
const echo = stub("echo");
const many = Array.from({ length: sizes.objects }, (_, i) => stub(`c${i}`));

const cases = {
  "RPC ping, 1 caller (no storage)": () =>
    timed(sizes.rpc, async () => {
      for (let i = 0; i < sizes.rpc; i++) await echo.ping(i);
    }),
  "durable increment via stub RPC, 1 object sequential": () =>
    timed(sizes.durable, async () => {
      for (let i = 0; i < sizes.durable; i++) await single.increment();
    }),
  "durable increment via dispatchFetch, 1 object sequential": () =>
    timed(sizes.durable, async () => {
      for (let i = 0; i < sizes.durable; i++) {
        const response = await mf.dispatchFetch("http://bench/inc?name=single");
        await response.json();
      }
    }),
  [`durable increment via stub RPC, ${sizes.objects} objects × ${sizes.callers} callers`]: () =>
    timed(sizes.objects * sizes.callers, async () => {
      await Promise.all(many.flatMap((s) => Array.from({ length: sizes.callers }, () => s.increment())));
    }),
  "dispatchFetch → Worker → object, 1 caller (no storage)": () =>
    timed(sizes.fetch, async () => {
      for (let i = 0; i < sizes.fetch; i++) {
        const response = await mf.dispatchFetch("http://bench/ping?name=echo");
        await response.json();
      }
    }),
};

const samples = Object.fromEntries(Object.keys(cases).map((name) => [name, []]));
for (const run of Object.values(cases)) await run(); // warm-up
for (let r = 0; r < repeats; r++) {
  for (const [name, run] of Object.entries(cases)) samples[name].push(await run());
}
await mf.dispose();

const require = createRequire(import.meta.url);
const miniflarePackage = JSON.parse(readFileSync(require.resolve("miniflare/package.json"), "utf8"));
let workerd = "unknown";
try {
  const bin = require.resolve("workerd/bin/workerd");
  workerd = execFileSync(bin, ["--version"]).toString().trim();
} catch {
  workerd = `workerd ${miniflarePackage.dependencies?.workerd ?? "?"}`;
}

console.log(JSON.stringify({
  versions: { node: process.version, miniflare: miniflarePackage.version, workerd },
  persist,
  repeats,
  results: Object.entries(samples).map(([name, list]) => ({
    case: name,
    rate: median(list.map((s) => s.ops / s.seconds)),
    rates: list.map((s) => s.ops / s.seconds),
  })),
}));
