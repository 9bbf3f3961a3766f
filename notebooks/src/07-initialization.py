# %% [markdown]
# # 07 · Initialization: load once, serve from memory
#
# An object's instance lives on between requests, so its state can live in fields: load it from
# storage once, when the instance starts, and serve every request from memory. Writes still go to
# storage (write-through), so nothing is lost when the instance goes away.
#
# The place to load is the constructor, inside `ctx.blockConcurrencyWhile(self.load)`: no request
# is delivered until `load()` has finished, so no request ever sees a half-built object.
#
# This lesson counts storage reads from the trace, first for an object that reads on every
# request, then for one that loads once.

# %%
%load_ext dolab
%dolab new --memory --virtual --name lessons

# %% [markdown]
# ## The wrong way: read storage on every request
#
# This counter is correct (storage awaits keep the input gate closed, lesson 05), but every
# request goes to storage for a value the object itself wrote. The checker notices.

# %%
%%durable_object
class Counter(DurableObject):
    async def increment(self):
        count = await self.ctx.storage.get("count") or 0
        self.ctx.storage.put("count", count + 1)
        return count + 1

# %%
import asyncio

home = env.COUNTER.getByName("home")
await asyncio.gather(*[home.increment() for _ in range(100)])
print(lab.storage_of(home), "after",
      len(lab.trace.events("read", obj="COUNTER:home")), "storage reads")

# %% [markdown]
# A hundred requests, a hundred reads of a value the object wrote itself. Each one is work for the
# storage layer, and on a busy object they add up.
#
# ## The DO way: load once in `blockConcurrencyWhile`
#
# The constructor cannot `await`, so it hands `load` to `blockConcurrencyWhile`, which runs it
# before any request is delivered. Requests then read and update `self.count`.

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
        self.ctx.storage.put("count", self.count)            # write-through
        return self.count

# %%
lab.trace.clear()
home = env.COUNTER.getByName("home")
await asyncio.gather(*[home.increment() for _ in range(100)])
print(lab.storage_of(home), "after",
      len(lab.trace.events("read", obj="COUNTER:home")), "storage read")

# %% [markdown]
# One read for a hundred requests. The code update reset the old instance; the new one loaded the
# count (100) and went on from there.
#
# When the instance goes away (evicted when idle, reset, redeployed), the next request constructs
# a new one, which loads again: one read per instance, not per request.

# %%
await lab.evict(home)
await home.increment()
print(lab.storage_of(home), "after",
      len(lab.trace.events("read", obj="COUNTER:home")), "storage reads in all")
print("instances constructed:", len(lab.trace.events("constructed", obj="COUNTER:home")))

# %% [markdown]
# The trace of that last request shows the order: the gate closes in the constructor, `load`
# reads, the gate opens, and only then is the request delivered. It would wait the same way if
# `load` awaited something slow, such as a call to another service.

# %%
last = lab.trace.requests("COUNTER:home")[-1]
first = lab.trace.events("queued", request=last)[0].seq
print(" → ".join(e.kind for e in lab.trace.events(obj="COUNTER:home") if e.seq >= first))

# %% [markdown]
# ## Exercise
#
# `Settings` reads the theme from storage on every call. Make it load the theme once per
# instance, then run the check cell.

# %%
%%durable_object
class Settings(DurableObject):
    async def set_theme(self, theme):
        self.ctx.storage.put("theme", theme)

    async def get_theme(self):
        return await self.ctx.storage.get("theme") or "light"

# %%
prefs = env.SETTINGS.getByName("ann")
await prefs.set_theme("dark")
before = len(lab.trace.events("read", obj="SETTINGS:ann"))
themes = await asyncio.gather(*[prefs.get_theme() for _ in range(50)])
reads = len(lab.trace.events("read", obj="SETTINGS:ann")) - before
print(f"✓ 50 calls, {reads} storage reads" if reads == 0 and set(themes) == {"dark"}
      else f"✗ 50 calls, {reads} storage reads (themes seen: {sorted(set(themes))}) — try again")

# %% [markdown]
# ## Summary
#
# - Load an object's state once, in the constructor, with `ctx.blockConcurrencyWhile(self.load)`.
# - Serve requests from fields; write changes through to storage.
# - Storage is read once per instance: after an eviction, reset or deploy, the constructor loads
#   again.
