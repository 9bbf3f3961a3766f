# %% [markdown]
# # 02 · Why not KV: state that changes needs one owner
#
# Workers KV is a great place for data that is read a lot and written rarely: it is cached at the
# edge, close to every user. That same design makes it a bad home for state that changes on every
# request. A read may return a cached copy up to 60 s old, and there is no atomic
# read-modify-write: two requests that read at the same time both write back `n + 1`.
#
# This lesson counts likes in a small KV simulation and loses most of them, then counts them in a
# Durable Object and keeps every one.

# %%
%load_ext dolab
%dolab new --memory --virtual --name lessons

# %% [markdown]
# ## A toy Workers KV
#
# The lab has no KV namespaces, so here is one in miniature. Every call is a 10 ms round trip, and a
# read is served from a cached copy while that copy is under 60 s old (KV's default cache time), as
# it is in every location but the writer's.

# %%
class ToyKV:
    def __init__(self):
        self.store = {}                            # the central store
        self.cache = {}                            # key -> (value, when it was cached)

    async def get(self, key):
        await scheduler.wait(10)                   # a network round trip
        value, cached_at = self.cache.get(key, (None, -60_000))
        if Date.now() - cached_at >= 60_000:       # the cached copy expired: fetch a fresh one
            value = self.store.get(key)
            self.cache[key] = (value, Date.now())
        return value

    async def put(self, key, value):
        await scheduler.wait(10)
        self.store[key] = value


env.KV = ToyKV()                                   # on Cloudflare: [[kv_namespaces]] in wrangler.toml

# %% [markdown]
# ## The wrong way: a counter in KV
#
# The Worker reads the count, adds one and writes it back. The checker flags the
# read-modify-write (`kv-for-state`) beneath the cell.

# %%
%%worker
class Worker(WorkerEntrypoint):
    async def fetch(self, request):
        likes = int(await self.env.KV.get("likes") or 0)
        await self.env.KV.put("likes", str(likes + 1))
        return Response(str(likes + 1))

# %% [markdown]
# Twenty people click "like" at the same moment:

# %%
import asyncio

answers = await asyncio.gather(*[lab.fetch("http://w/like") for _ in range(20)])
print("each click was told:", {await a.text() for a in answers})
print("the central store holds:", env.KV.store)

# %% [markdown]
# All twenty read `None` before any of them wrote, so all twenty wrote `"1"`. Clicks one second
# apart fare no better: each one reads the cached copy, which stays stale for a minute.

# %%
for _ in range(10):
    await lab.advance(1)
    await lab.fetch("http://w/like")
print("after 10 more clicks, a read still gives:", await env.KV.get("likes"))
await lab.advance(60)
print("a minute later, a read gives:", await env.KV.get("likes"), "— for 30 clicks")

# %% [markdown]
# ## The DO way: one object owns the count
#
# Every request for `"likes"` reaches the same object, which runs one event at a time. It loads
# the count once (lesson 07), adds one in memory with no await in between, and saves it. No cache
# can be stale: there is only one copy, and it lives with its owner.

# %%
%%durable_object
class Counter(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.count = await self.ctx.storage.get("count") or 0

    async def increment(self):
        self.count += 1
        self.ctx.storage.put("count", self.count)
        return self.count

# %%
%%worker
class Worker(WorkerEntrypoint):
    async def fetch(self, request):
        likes = await self.env.COUNTER.getByName("likes").increment()
        return Response(str(likes))

# %%
answers = await asyncio.gather(*[lab.fetch("http://w/like") for _ in range(20)])
print("the clicks were told:", [await a.text() for a in answers])
lab.storage_of(env.COUNTER.getByName("likes"))

# %% [markdown]
# Twenty clicks, twenty different answers, and storage says 20 at once: no minute to wait.
#
# ## Exercise
#
# This Worker counts views per page in KV, and loses them. Make it count with the `Counter`
# objects instead, one per page, then run the check cell.

# %%
%%worker
class Worker(WorkerEntrypoint):
    async def fetch(self, request):
        page = request.url.split("/")[-1]          # http://w/views/home → "home"
        views = int(await self.env.KV.get(f"views:{page}") or 0)
        await self.env.KV.put(f"views:{page}", str(views + 1))
        return Response(str(views + 1))

# %%
answers = await asyncio.gather(*[lab.fetch("http://w/views/home") for _ in range(20)])
seen = {await a.text() for a in answers}
print("✓ 20 views, 20 different counts: none lost" if len(seen) == 20
      else f"✗ 20 views, but only {len(seen)} different count(s) — try again")

# %% [markdown]
# ## Summary
#
# - KV is eventually consistent: reads may be up to 60 s stale, and there is no atomic
#   read-modify-write, so concurrent updates are lost.
# - Keep KV for read-mostly data (configuration, rendered pages, lookups).
# - State that changes per request belongs to a Durable Object: route every request for the
#   entity to it with `getByName(name)`, and update it there.
