# %% [markdown]
# # 03 · One instance per id: route every request to the same object
#
# A Durable Object is addressed by an **id**. For each id there is at most one live instance in the
# world, and every request for that id reaches it. So the Worker's job is to compute the *same* id
# for every request about the same thing: `env.CART.getByName("alice")` always reaches Alice's cart.
# Make up a new id per request and every request gets its own, empty object.
#
# This lesson runs a shop whose Worker picks the wrong id, then fixes it, then looks at ids and
# stubs more closely.

# %%
%load_ext dolab
%dolab new --memory --virtual --name lessons

# %% [markdown]
# A shopping cart, one object per shopper:

# %%
%%durable_object
class Cart(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.items = await self.ctx.storage.get("items") or {}

    async def add(self, item):
        self.items[item] = self.items.get(item, 0) + 1
        self.ctx.storage.put("items", self.items)
        return self.items

# %% [markdown]
# ## The wrong way: a new id for every request
#
# `newUniqueId()` makes a random id that no one has used before. The Worker uses it and throws it
# away, and the checker says so beneath the cell.

# %%
%%worker
class Shop(WorkerEntrypoint):
    async def fetch(self, request):
        shopper, item = request.url.split("/")[-2:]         # http://shop/alice/apple
        cart = self.env.CART.get(self.env.CART.newUniqueId())
        return Response.json(await cart.add(item))

# %%
for item in ["apple", "pear", "apple"]:
    response = await lab.fetch(f"http://shop/alice/{item}")
    print(await response.text())
print(len(lab.ids("CART")), "carts stored for one shopper")

# %% [markdown]
# Alice added three things and her cart never holds more than one. Each request created its own
# object, and no one can reach those three again: their ids are gone.
#
# ## The DO way: derive the id from the name
#
# `getByName(name)` is `get(idFromName(name))`: the same name gives the same id, on every request,
# in every Worker, anywhere in the world. So all of Alice's requests reach one instance, which runs
# them one at a time.

# %%
%%worker
class Shop(WorkerEntrypoint):
    async def fetch(self, request):
        shopper, item = request.url.split("/")[-2:]
        cart = self.env.CART.getByName(shopper)              # Alice's cart, whoever asks
        return Response.json(await cart.add(item))

# %%
for item in ["apple", "pear", "apple"]:
    response = await lab.fetch(f"http://shop/alice/{item}")
    print(await response.text())
print(len(lab.ids("CART")), "carts stored: the 3 orphans and Alice's")

# %% [markdown]
# (A dict on the Worker, `carts[shopper]`, would split state too: every Worker isolate has its own
# copy, and isolates come and go. The checker flags that as `kv-for-state`, lesson 02.)
#
# ## Ids and stubs
#
# An id is just a name for an object; a **stub** is a handle for sending it calls. Making either one
# does nothing: the instance is constructed on the first call.

# %%
one, two = env.CART.idFromName("bob"), env.CART.idFromName("bob")
print("same id:", one.equals(two), "| name:", one.name)

bob = env.CART.getByName("bob")
print("instances after getByName:", len(lab.trace.events("constructed", obj="CART:bob")))
await bob.add("fig")
print("instances after a call:", len(lab.trace.events("constructed", obj="CART:bob")))

# %% [markdown]
# `newUniqueId()` is right for things that have no name of their own: a guest's cart, a new
# document, a game room. Keep the id's text (in a cookie, a URL, a database row) and turn it back
# into an id with `idFromString`; without it the object is lost.

# %%
guest = env.CART.newUniqueId()
await env.CART.get(guest).add("plum")
cookie = guest.toString()                                    # 64 hex digits
print("name:", guest.name, "| text:", len(cookie), "hex digits")

again = env.CART.get(env.CART.idFromString(cookie))          # a later request, same cart
await again.add("plum")

# %% [markdown]
# ## Exercise
#
# Votes on the poll `lunch` keep disappearing. Fix the Worker so that every vote for a poll reaches
# that poll's object, then run the check cell.

# %%
%%durable_object
class Poll(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.votes = await self.ctx.storage.get("votes") or {}

    async def vote(self, choice):
        self.votes[choice] = self.votes.get(choice, 0) + 1
        self.ctx.storage.put("votes", self.votes)
        return self.votes

# %%
%%worker
class Voting(WorkerEntrypoint):
    async def fetch(self, request):
        poll, choice = request.url.split("/")[-2:]          # http://vote/lunch/pizza
        stub = self.env.POLL.get(self.env.POLL.newUniqueId())
        return Response.json(await stub.vote(choice))

# %%
tallies = [await (await lab.fetch(f"http://vote/lunch/{c}")).json() for c in ["pizza", "soup", "pizza"]]
counted = sum(tallies[-1].values()) - sum(tallies[0].values()) + 1
print("✓ all 3 votes in one poll" if counted == 3
      else f"✗ the last vote saw {counted} of the 3 votes — try again")

# %% [markdown]
# ## Summary
#
# - One id, one instance: every request for an id reaches the same object.
# - Name things with `getByName(name)` (or `get(idFromName(name))`): the same name always gives
#   the same id.
# - `newUniqueId()` is for things without a name; keep `id.toString()` to reach them again
#   (`idFromString`).
# - Stubs are cheap handles: the object starts on the first call.
