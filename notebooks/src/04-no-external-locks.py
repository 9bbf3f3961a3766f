# %% [markdown]
# # 04 · No external locks: the object is the lock
#
# The classic way to stop two requests from selling the same seat is a lock in Redis or Postgres:
# take the lock, check the seat, sell it, release the lock. Such a lock needs a **lease** (it
# expires on its own, or a crashed holder would block everyone forever), and a lease can run out
# while its holder is still working: a slow payment, a long pause. Then a second request takes the
# lock, and both sell the seat.
#
# A Durable Object needs no lock. Every request for one id reaches one instance, which runs one
# event at a time: code with no non-storage await in it cannot be interrupted (lesson 05).

# %%
%load_ext dolab
%dolab new --memory --virtual --name lessons

# %% [markdown]
# ## A toy Redis and a slow payment service
#
# Just enough Redis for a lock: `SET key value NX PX ms` (set if absent, expire after `ms`), `GET`
# and `DEL`, served over the network by `lab.service`. The server logs every command with its lab
# time. Payments take 3 s; the customer checks in the exercise take 2 s.

# %%
import json

data, log = {}, []                                 # the Redis server's memory and its log
start = Date.now()

async def redis_server(request):
    op, key, value, nx, px = await request.json()
    now = Date.now()
    if key in data and data[key][1] <= now:        # the lease ran out: the key is gone
        del data[key]
    if op == "GET":
        reply = data.get(key, (None,))[0]
    elif op == "DEL":
        reply = data.pop(key, None) is not None
    elif nx and key in data:
        reply = None                               # SET NX on a key that exists: refused
    else:
        data[key] = (value, now + px if px else float("inf"))
        reply = "OK"
    command = " ".join(str(p) for p in [op, key, value, nx and "NX", px and f"PX {px}"] if p)
    log.append(f"{(now - start) / 1000:6.3f} s  {command:<28} → {reply}")
    return {"reply": reply}


class Redis:
    async def command(self, *args):
        response = await fetch("https://redis.example/", method="POST", body=json.dumps(args))
        return (await response.json())["reply"]

    async def get(self, key):
        return await self.command("GET", key, None, False, None)

    async def set(self, key, value, nx=False, px=None):
        return await self.command("SET", key, value, nx, px)

    async def delete(self, key):
        return await self.command("DEL", key, None, False, None)


redis = Redis()
lab.service("https://redis.example/", redis_server, latency=0.002)
lab.service("https://pay.example/", lambda request: {"paid": True}, latency=3)
lab.service("https://crm.example/", lambda request: {"ok": True}, latency=2)

# %% [markdown]
# ## The wrong way: a lock with a lease
#
# The box office takes a 2 s lock on the seat, checks it, charges the card, records the sale and
# releases the lock. The checker points at the lock.

# %%
%%worker
class BoxOffice(WorkerEntrypoint):
    async def fetch(self, request):
        seat, who = request.url.split("/")[-2:]           # http://box/12/ann
        if not await redis.set(f"lock:{seat}", who, nx=True, px=2000):
            return Response(f"{who}: seat {seat} is busy, try again", status=409)
        try:
            if await redis.get(f"seat:{seat}"):
                return Response(f"{who}: seat {seat} is taken", status=409)
            await fetch("https://pay.example/charge", method="POST", body=who)
            await redis.set(f"seat:{seat}", who)
            return Response(f"{who}: you have seat {seat}")
        finally:
            await redis.delete(f"lock:{seat}")

# %% [markdown]
# Ann and Cy ask for seat 12 at the same moment; Bo asks 2.5 s later.

# %%
import asyncio

async def arrive(after, path):
    await scheduler.wait(after * 1000)
    response = await lab.fetch(f"http://box/{path}")
    return await response.text()

print(*await asyncio.gather(arrive(0, "12/ann"), arrive(0, "12/cy"), arrive(2.5, "12/bo")),
      sep="\n")
print("Redis says seat 12 belongs to", await redis.get("seat:12"))

# %% [markdown]
# Ann and Bo both paid and were both told "you have seat 12". The lock worked for Cy, but Redis's
# log shows what went wrong for Bo: Ann's lease ran out at 2.002 s while she was still paying, so
# Bo got the lock and saw an empty seat. Ann's `DEL` then even removed Bo's lock.

# %%
print(*log, sep="\n")

# %% [markdown]
# A longer lease only moves the line; fencing tokens patch it with more machinery. The Durable
# Object way removes the lock altogether.
#
# ## The DO way: one object owns the seats
#
# One object per show holds its seats. `book` checks the seat and claims it in one turn: storage
# awaits keep the input gate closed, so nothing can run between the check and the `put`. The
# payment's await opens the gate, but by then the seat is already taken.

# %%
%%durable_object
class Show(DurableObject):
    async def book(self, seat, who):
        if await self.ctx.storage.get(f"seat:{seat}"):
            return f"{who}: seat {seat} is taken"
        self.ctx.storage.put(f"seat:{seat}", who)           # claimed: no await since the check
        await fetch("https://pay.example/charge", method="POST", body=who)
        return f"{who}: you have seat {seat}"

# %%
%%worker
class BoxOffice(WorkerEntrypoint):
    async def fetch(self, request):
        seat, who = request.url.split("/")[-2:]
        return Response(await self.env.SHOW.getByName("hamlet").book(seat, who))

# %%
print(*await asyncio.gather(arrive(0, "12/ann"), arrive(0, "12/cy"), arrive(2.5, "12/bo")),
      sep="\n")
lab.storage_of(env.SHOW.getByName("hamlet"))

# %% [markdown]
# One seat, one sale, no lock, no lease, no Redis. (A real box office would also give the seat back
# when the payment fails: that is one more `delete` in the same object.)
#
# ## Exercise
#
# A coupon may be redeemed once. `Coupons.redeem` still takes a Redis lock and checks the coupon
# before a slow 2 s verification, and two customers both get the discount. Drop the lock and make
# the object itself guarantee one redemption, then run the check cell.

# %%
%%durable_object
class Coupons(DurableObject):
    async def redeem(self, code, who):
        if not await redis.set(f"lock:{code}", who, nx=True, px=1000):
            return f"{who}: busy, try again"
        used = await self.ctx.storage.get(code)
        await fetch("https://crm.example/verify", method="POST", body=who)
        if used:
            return f"{who}: {code} was already used"
        self.ctx.storage.put(code, who)
        return f"{who}: {code} redeemed"

# %%
async def customer(after, book, who):
    await scheduler.wait(after * 1000)
    return await book.redeem("HALFOFF", who)

book = env.COUPONS.get(env.COUPONS.newUniqueId())            # a fresh coupon book each run
results = await asyncio.gather(customer(0, book, "ann"), customer(1.5, book, "bo"))
redeemed = sum(r.endswith("redeemed") for r in results)
print("✓ redeemed exactly once" if redeemed == 1
      else f"✗ redeemed {redeemed} times — try again")

# %% [markdown]
# ## Summary
#
# - A lock with a lease fails when its holder outlives the lease; a lock without one fails when
#   its holder crashes.
# - A Durable Object serializes every request for its id: route everything about one thing to one
#   object (`getByName`) and it needs no lock.
# - Check and claim in one turn (no non-storage await in between); do slow work after claiming.
