# %% [markdown]
# # 12 · Patterns: one class per concern
#
# A common mistake is one giant object that counts, chats and rate-limits. Each Durable Object is
# single-threaded, so one object for everything serializes *everything* — the chat waits for the
# counter. Instead: one small class per concern, one object per entity, one Worker routing.
#
# This lesson builds three: a **Counter**, a **ChatRoom**, and a **RateLimiter** (a token bucket
# refilled by an alarm), and routes to them from one Worker.

# %%
%load_ext dolab
%dolab new --memory --virtual --name lessons

# %% [markdown]
# ## The wrong way: one object for everything
#
# A "god object" that counts page views and rate-limits. A slow rate-limit check (it calls out to
# an abuse service) holds up every page view behind it.

# %%
%%durable_object
class Everything(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.views = 0

    async def view(self):
        async def count():
            self.views += 1
            self.ctx.storage.put("views", self.views)
        await self.ctx.blockConcurrencyWhile(count)
        return self.views

    async def check_abuse(self, user):
        async def slow_check():
            await scheduler.wait(200)                     # an abuse-score lookup
        await self.ctx.blockConcurrencyWhile(slow_check)
        return "ok"

# %%
import asyncio

god = env.EVERYTHING.getByName("global")
start = lab.now()
check = asyncio.ensure_future(god.check_abuse("mallory"))
await asyncio.sleep(0)
await god.view()
print(f"a page view waited {lab.now() - start:.3f} s behind an unrelated abuse check")
await check

# %% [markdown]
# ## One class per concern
#
# **Counter** — the simplest object: state in memory, loaded once, saved on change.

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

# %% [markdown]
# **RateLimiter** — one object per user: a bucket of 5 tokens, refilled by an alarm every
# 10 seconds. No timers in memory, so it keeps working across evictions and restarts.

# %%
%%durable_object
class RateLimiter(DurableObject):
    CAPACITY = 5
    REFILL_MS = 10_000

    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.tokens = await self.ctx.storage.get("tokens")
        if self.tokens is None:
            self.tokens = self.CAPACITY

    async def take(self):
        if self.tokens == 0:
            return False
        self.tokens -= 1
        self.ctx.storage.put("tokens", self.tokens)
        if await self.ctx.storage.getAlarm() is None:
            await self.ctx.storage.setAlarm(Date.now() + self.REFILL_MS)
        return True

    async def alarm(self, alarm_info=None):
        self.tokens = self.CAPACITY
        self.ctx.storage.put("tokens", self.tokens)

# %% [markdown]
# **ChatRoom** — sockets accepted with the Hibernation API (lesson 10).

# %%
%%durable_object
class ChatRoom(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        for other in self.ctx.getWebSockets():
            other.send(message)

# %% [markdown]
# ## One Worker routes them all
#
# `/count/<page>`, `/chat/<room>`; every request first takes a token from the caller's own
# limiter.

# %%
%%worker
from urllib.parse import urlparse

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        user = request.headers.get("x-user") or "anonymous"
        if not await self.env.RATE_LIMITER.getByName(user).take():
            return Response("slow down", status=429)
        kind, _, name = urlparse(request.url).path.strip("/").partition("/")
        if kind == "count":
            count = await self.env.COUNTER.getByName(name).increment()
            return Response.json({"page": name, "count": count})
        if kind == "chat":
            return await self.env.CHAT_ROOM.getByName(name).fetch(request)
        return Response("not found", status=404)

# %%
statuses = [(await lab.fetch("http://app.example/count/home", headers={"x-user": "ada"})).status
            for _ in range(7)]
print("ada:", statuses)
print("bob:", (await lab.fetch("http://app.example/count/home", headers={"x-user": "bob"})).status)
await lab.advance(10)
print("ada after the refill alarm:",
      (await lab.fetch("http://app.example/count/home", headers={"x-user": "ada"})).status)
print(lab.storage_of(env.COUNTER.getByName("home")))

# %%
room = [await lab.connect("ws://app.example/chat/lobby", headers={"x-user": u})
        for u in ("ada", "bob")]
room[0].send("hi bob")
print(await room[1].receive())

# %% [markdown]
# Each object is tiny, each entity has its own — ada's limiter never slows bob down, and the chat
# never waits for a counter.

# %%
lab.trace.sequence(max_rows=18)

# %% [markdown]
# ## Exercise
#
# Give the counter a `reset()` RPC method and a Worker route `/reset/<page>` that calls it (still
# rate-limited). Rerun both cells, then the check.

# %%
response = await lab.fetch("http://app.example/reset/home", headers={"x-user": "cy"})
after = lab.storage_of(env.COUNTER.getByName("home")).get("count")
print("✓ reset works" if response.status == 200 and after == 0
      else f"✗ /reset/home answered {response.status}; count is {after}")

# %% [markdown]
# ## Summary
#
# - One class per concern, one object per entity: unrelated work never queues together.
# - The Worker stays a thin, stateless router.
# - Periodic work (refills, cleanup) belongs in alarms, which survive eviction.
