# %% [markdown]
# # 01 · Tour: a collaborative counter
#
# A **Durable Object** is a small server with an id, its own storage and one thread. Cloudflare
# runs *at most one instance per id* in the world, so every request about "room-1" reaches the
# same instance, one event at a time. That makes shared state easy: no locks, no races.
#
# In this tour a Worker routes requests to one shared counter, WebSocket clients watch the count
# change live, and the timeline shows how the requests were serialized. Every cell runs in this
# kernel: no Cloudflare account needed.

# %%
%load_ext dolab
%dolab new --memory --virtual --name tour

# %% [markdown]
# ## The object
#
# The counter loads its count once (in `blockConcurrencyWhile`, before any request is delivered),
# counts in memory, saves every change, and tells every connected client.

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
        self.ctx.storage.put("count", self.count)     # no await needed: the output gate waits
        for ws in self.ctx.getWebSockets():
            ws.send(f"count={self.count}")
        return self.count

    async def fetch(self, request):
        if request.headers.get("upgrade") == "websocket":
            client, server = WebSocketPair.new().object_values()
            self.ctx.acceptWebSocket(server)
            server.send(f"count={self.count}")
            return Response(None, status=101, web_socket=client)
        return Response.json({"count": await self.increment()})

# %% [markdown]
# ## The Worker in front
#
# The Worker is stateless. It picks the object by name and forwards the request.

# %%
%%worker
class Default(WorkerEntrypoint):
    async def fetch(self, request):
        stub = self.env.COUNTER.getByName("room-1")
        return await stub.fetch(request)

# %% [markdown]
# ## Watch it
#
# Three clients connect, then fifty requests arrive at once. Each client sees every count, in
# order, and no increment is lost.

# %%
import asyncio

clients = [await lab.connect("ws://counter.example/room-1") for _ in range(3)]
responses = await asyncio.gather(*[lab.fetch("http://counter.example/room-1") for _ in range(50)])
print("last response:", await responses[-1].json())
print("client 1 saw:", clients[0].messages[:3], "…", clients[0].messages[-1])
print("stored:", lab.storage_of(env.COUNTER.getByName("room-1")))

# %% [markdown]
# The dashboard shows the same run live: the timeline (one bar per request), the inspector (the
# object's storage and its history) and the connected clients. Try the send box or *add client*.

# %%
dashboard = lab.show()
dashboard

# %% [markdown]
# ## One instance per id
#
# `getByName("room-1")` is `get(idFromName("room-1"))`: the name always maps to the same 64-digit
# id, so every Worker everywhere reaches the same object. `newUniqueId()` makes a fresh random id,
# for things that need no name (a game session you hand out as a link).

# %%
room = env.COUNTER.idFromName("room-1")
print(room.toString() == env.COUNTER.idFromName("room-1").toString(), room.name)
other = env.COUNTER.get(env.COUNTER.newUniqueId())
print(await other.increment(), "(a different object: its own count)")

# %% [markdown]
# Stubs are cheap handles: creating one constructs nothing. The first call does.

# %%
stub = env.COUNTER.getByName("room-2")
print([e.kind for e in lab.trace.events(obj="COUNTER:room-2")])
await stub.increment()
print([e.kind for e in lab.trace.events(obj="COUNTER:room-2")][:3])

# %% [markdown]
# ## Exercise
#
# Make `Default.fetch` route by the URL's path, so `http://counter.example/room-7` reaches the
# object named `room-7` (hint: `from urllib.parse import urlparse`; `urlparse(request.url).path`).
# Rerun the `%%worker` cell, then the check.

# %%
await lab.fetch("http://counter.example/room-7")
seven = lab.storage_of(env.COUNTER.getByName("room-7")).get("count")
print("✓ routed by path" if seven == 1 else "✗ room-7 has no count yet — route by path and retry")

# %% [markdown]
# ## Summary
#
# - One instance per id; requests to it are serialized, so in-memory state is safe.
# - The Worker is a stateless router: `env.COUNTER.getByName(name)` → stub → `fetch` or RPC.
# - Storage writes need no `await`: results wait until they are durable (lesson 06).
# - Next: why not keep the counter in KV (02), and what "one instance" buys you (03).
