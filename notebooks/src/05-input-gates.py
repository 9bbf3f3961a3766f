# %% [markdown]
# # 05 · Input gates: when requests may interleave
#
# A Durable Object handles one event at a time *between awaits*. While a handler awaits
# **storage**, the object's *input gate* stays closed: no other request is delivered. While it
# awaits **anything else** — a timer, an outbound `fetch`, a call to another object — the gate is
# open and other requests run in between. That is where lost updates come from.
#
# This lesson runs the wrong pattern, reads the trace to see why it fails, then fixes it twice.

# %%
%load_ext dolab
%dolab new --memory --virtual --name lessons

# %% [markdown]
# ## The wrong way: an await between the read and the write
#
# The count lives in memory (loaded once, lesson 07) and is saved on every view.
# `scheduler.wait(5)` stands for any non-storage await: an API call, a call to another object.
# The checker already points at the problem beneath the cell.

# %%
%%durable_object
class Views(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.views = await self.ctx.storage.get("views") or 0

    async def record_view(self):
        views = self.views
        await scheduler.wait(5)                    # e.g. a geo lookup before counting
        self.views = views + 1
        self.ctx.storage.put("views", self.views)
        return self.views

# %%
import asyncio

page = env.VIEWS.getByName("home")
await asyncio.gather(*[page.record_view() for _ in range(20)])
lab.storage_of(page)

# %% [markdown]
# Twenty requests, one view counted. The trace shows why: all twenty requests started waiting
# before the first one finished waiting, so each read `views` while it was still 0.

# %%
waits = [e.kind for e in lab.trace.events(("external-await", "external-done"), obj="VIEWS:home")]
print("first 20 events:", set(waits[:20]), "— then", set(waits[20:]))

# %%
lab.trace.plot()

# %% [markdown]
# ## Fix 1: no await between read and write
#
# Do the slow work first (or after), and keep read-modify-write in one synchronous stretch. A
# storage await in the middle would be fine too: storage keeps the gate closed.

# %%
%%durable_object
class Views(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.views = await self.ctx.storage.get("views") or 0

    async def record_view(self):
        await scheduler.wait(5)                    # slow work first, with the gate open
        self.views += 1                            # then read-modify-write with no await
        self.ctx.storage.put("views", self.views)
        return self.views

# %%
page = env.VIEWS.getByName("home")
await asyncio.gather(*[page.record_view() for _ in range(20)])
lab.storage_of(page)

# %% [markdown]
# 1 + 20 = 21: none lost. Rerunning the cell was a *code update*: the live instance was reset and
# reloaded its count from storage.
#
# ## Fix 2: `blockConcurrencyWhile` when the await must sit in the middle
#
# `ctx.blockConcurrencyWhile(fn)` closes the gate for the whole of `fn`, even across timers and
# fetches. Every other request waits, so keep it short: at 5 ms each, one object serves at most
# about 200 such requests a second. (`transaction()` closures run the same way.)

# %%
%%durable_object
class Views(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.views = await self.ctx.storage.get("views") or 0

    async def record_view(self):
        async def critical():
            views = self.views
            await scheduler.wait(5)
            self.views = views + 1
            self.ctx.storage.put("views", self.views)
        await self.ctx.blockConcurrencyWhile(critical)
        return self.views

# %%
page = env.VIEWS.getByName("home")
start = lab.now()
await asyncio.gather(*[page.record_view() for _ in range(20)])
print(lab.storage_of(page), f"in {lab.now() - start:.3f} s of lab time: 20 × 5 ms, one at a time")

# %% [markdown]
# ## Exercise
#
# `Likes.like()` below loses likes. Change it so that 20 concurrent likes give 20, then run the
# check cell.

# %%
%%durable_object
class Likes(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.likes = 0

    async def like(self):
        likes = self.likes
        await scheduler.wait(1)                    # notify the author (an outbound call)
        self.likes = likes + 1
        self.ctx.storage.put("likes", self.likes)

# %%
post = env.LIKES.getByName("post-1")
await asyncio.gather(*[post.like() for _ in range(20)])
likes = lab.storage_of(post).get("likes")
print("✓ all 20 likes kept" if likes == 20 else f"✗ {likes} of 20 likes kept — try again")

# %% [markdown]
# ## Summary
#
# - Storage awaits keep the input gate closed; nothing interleaves with them.
# - Any other await opens it: what you read before it may be stale after it.
# - Keep read-modify-write free of non-storage awaits, or wrap it in `blockConcurrencyWhile`.
