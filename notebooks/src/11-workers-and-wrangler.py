# %% [markdown]
# # 11 · Workers and wrangler.toml: the front door and the wiring
#
# Nobody calls a Durable Object from the Internet directly. Requests arrive at a **Worker**, whose
# `fetch` decides which object owns the data and forwards the work to it through a **binding**:
# `self.env.ROOMS.getByName("lobby")`. The bindings, and the classes behind them, are declared in
# `wrangler.toml`: `[[durable_objects.bindings]]` puts a namespace on `env`, and `[[migrations]]`
# creates each class and chooses its storage backend, once and for good.
#
# This lesson mistypes a binding and reads the error, builds the router, then wires it all up
# with a `wrangler.toml`.

# %%
%load_ext dolab
%dolab new --memory --virtual --name lessons

# %% [markdown]
# One object per room: it counts its visits.

# %%
%%durable_object ROOMS
class Room(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.visits = await self.ctx.storage.get("visits") or 0

    async def visit(self):
        self.visits += 1
        self.ctx.storage.put("visits", self.visits)
        return {"room": self.ctx.id.name, "visits": self.visits}

# %% [markdown]
# ## The wrong way: a binding that does not exist
#
# The router below asks for `self.env.ROOM`, but the binding is `ROOMS`. The checker compares the
# names on `env` with the lab's bindings and flags it beneath the cell.

# %%
%%worker
from urllib.parse import urlsplit

class Router(WorkerEntrypoint):
    async def fetch(self, request):
        parts = urlsplit(request.url).path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "rooms":
            room = self.env.ROOM.getByName(parts[1])
            return Response.json(await room.visit())
        return Response("Not found", status=404)

# %% tags=["raises-exception"]
await lab.fetch("http://localhost/rooms/lobby")

# %% [markdown]
# On Cloudflare `env.ROOM` is `undefined` and the call fails with *Cannot read properties of
# undefined (reading 'getByName')*; in Python it is an `AttributeError`. dolab's message lists the
# bindings there are and shows the `wrangler.toml` entry that would declare the missing one.
#
# ## The DO way: a router over the right binding
#
# Same router, with `ROOMS`. Each room name reaches its own object, and the same name always
# reaches the same one.

# %%
%%worker
from urllib.parse import urlsplit

class Router(WorkerEntrypoint):
    async def fetch(self, request):
        parts = urlsplit(request.url).path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "rooms":
            room = self.env.ROOMS.getByName(parts[1])
            return Response.json(await room.visit())
        return Response("Not found", status=404)

# %%
for path in ["/rooms/lobby", "/rooms/lobby", "/rooms/games", "/about"]:
    response = await lab.fetch(f"http://localhost{path}")
    print(path, response.status, await response.text())

# %% [markdown]
# `%dolab fetch` sends the same request from a line magic:

# %%
%dolab fetch /rooms/lobby

# %% [markdown]
# ## wrangler.toml: bindings and migrations
#
# On Cloudflare the wiring is configuration. Each `[[durable_objects.bindings]]` entry names a
# namespace on `env` and the class behind it. Each class must be created by a `[[migrations]]`
# entry, and that entry fixes its storage backend for good:
#
# - `new_sqlite_classes`: **SQLite-backed** (the default and the recommendation): KV API, SQL API,
#   2 MB per key and value;
# - `new_classes`: **KV-backed** (legacy): KV API only, 128 KiB per value; a deployed class
#   cannot switch.
#
# A `%%wrangler` cell applies such a file to the lab, taking the classes from the notebook. Here
# is a second class, defined in a plain cell so that only the file binds it:

# %%
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
%%wrangler
name = "lessons"
main = "src/entry.py"
compatibility_date = "2026-04-10"

[[durable_objects.bindings]]
name = "ROOMS"
class_name = "Room"

[[durable_objects.bindings]]
name = "COUNTERS"
class_name = "Counter"

[[migrations]]
tag = "v1"
new_classes = ["Counter"]            # legacy: KV-backed

[[migrations]]
tag = "v2"
new_sqlite_classes = ["Room"]        # SQLite-backed

# %% [markdown]
# Applying the file is a deploy: the live rooms were reset and reload from storage. Each class
# got the backend its migration chose:

# %%
{name: binding.backend for name, binding in lab.bindings.items()}

# %% [markdown]
# So `Counter` has no SQL database. `lab.run_in(stub, fn)` runs `fn(instance, ctx)` inside an
# object (like Cloudflare's `runInDurableObject` test helper); reaching for SQL there fails with
# Cloudflare's explanation:

# %% tags=["raises-exception"]
counter = env.COUNTERS.getByName("a")
await lab.run_in(counter, lambda instance, ctx: ctx.storage.sql.exec("SELECT 1"))

# %% [markdown]
# ## Exercise
#
# Extend the router so that `/counters/<name>` increments the `Counter` named `<name>` (binding
# `COUNTERS`) and answers with `Response.json(count)`. Then run the check cell.

# %%
%%worker
from urllib.parse import urlsplit

class Router(WorkerEntrypoint):
    async def fetch(self, request):
        parts = urlsplit(request.url).path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "rooms":
            room = self.env.ROOMS.getByName(parts[1])
            return Response.json(await room.visit())
        return Response("Not found", status=404)

# %%
first = await lab.fetch("http://localhost/counters/b")
second = await lab.fetch("http://localhost/counters/b")
answer = await second.text()
print("✓ /counters/b counts: 1, 2" if (second.status, answer) == (200, "2")
      else f"✗ /counters/b answered {second.status} {answer!r} — try again")

# %% [markdown]
# ## Summary
#
# - The Worker routes: it picks the object by name (`self.env.ROOMS.getByName(name)`) and
#   forwards the work by RPC or `stub.fetch(request)`.
# - A binding missing from `wrangler.toml` is an `AttributeError` on `env` (JavaScript:
#   `undefined`); the checker flags it as `missing-binding` before anything runs.
# - `[[migrations]]` creates each class once: `new_sqlite_classes` for SQLite-backed objects (use
#   it), `new_classes` for the legacy KV backend, which cannot be switched later.
