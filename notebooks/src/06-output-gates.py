# %% [markdown]
# # 06 · Output gates: nothing is said before it is saved
#
# A `put` goes into the object's write buffer at once, and the buffer is committed to disk a moment
# later. Meanwhile the object's **output gate** holds back its result: the caller hears nothing
# until the write is durable. If the commit fails, the caller gets an error and the object is
# reset. So a caller is never told something that a crash can take back, and you never need to
# `await` a `put` for safety.
#
# `allowUnconfirmed=True` opts a write out of that guarantee. This lesson shows what that costs,
# then watches the gate at work.

# %%
%load_ext dolab
%dolab new --memory --virtual --name lessons

# %% [markdown]
# ## The wrong way: answering before the write is durable
#
# A bank account that answers as fast as it can:

# %%
%%durable_object
class Account(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.balance = await self.ctx.storage.get("balance") or 0

    async def deposit(self, amount):
        self.balance += amount
        self.ctx.storage.put("balance", self.balance, allowUnconfirmed=True)   # don't wait
        return self.balance

    async def get_balance(self):
        return self.balance

# %% [markdown]
# The trace of one deposit shows the answer (`finished`) leaving before the `commit`:

# %%
alice = env.ACCOUNT.getByName("alice")
await alice.deposit(100)
lab.trace.clear()
print("told:", await alice.deposit(50))
await lab.settle()                                 # let the commit happen
print(" → ".join(e.kind for e in lab.trace))

# %% [markdown]
# Now the disk fails during the next commit (`lab.fail_next_commit` simulates that):

# %%
lab.fail_next_commit = OSError("disk full")
print("told:", await alice.deposit(25))
await lab.settle()
print("stored:", lab.storage_of(alice))

# %% [markdown]
# Alice was told her balance is 175, and the bank has 150 on record. The deposit is gone and no one
# knows it.
#
# ## The DO way: let the output gate wait
#
# Drop `allowUnconfirmed`. The `put` still needs no `await`: the gate holds the result for us.

# %%
%%durable_object
class Account(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.balance = await self.ctx.storage.get("balance") or 0

    async def deposit(self, amount):
        self.balance += amount
        self.ctx.storage.put("balance", self.balance)     # the output gate holds the result
        return self.balance

    async def get_balance(self):
        return self.balance

# %%
alice = env.ACCOUNT.getByName("alice")
print("balance:", await alice.get_balance())
lab.trace.clear()
print("told:", await alice.deposit(50))
print(" → ".join(e.kind for e in lab.trace))

# %% [markdown]
# The lost 25 never came back. Then `held`, `commit`, `released`: this result waited for its
# write. Now the same disk failure:

# %% tags=["raises-exception"]
lab.fail_next_commit = OSError("disk full")
await alice.deposit(25)

# %% [markdown]
# An error instead of a lie. The failed commit reset the object (its memory held the lost 25), so a
# new stub reaches a fresh instance that reloads what was stored, and that is exactly what Alice
# was told before:

# %%
print("stored:", lab.storage_of(alice))
print("balance:", await env.ACCOUNT.getByName("alice").get_balance())

# %% [markdown]
# ## Durable means it survives a restart
#
# A lab backed by a file keeps what it acknowledged when the process stops. Here is one in a
# temporary directory: deposit, close it, open it again.

# %%
import tempfile
from pathlib import Path

with tempfile.TemporaryDirectory() as folder:
    bank = Lab(name="bank", path=Path(folder) / "lab.fs", clock="virtual")
    bank.bind("ACCOUNT", Account)
    print("told:", await bank.env.ACCOUNT.getByName("bob").deposit(70))
    bank.close()                                   # the process stops…

    bank = Lab(name="bank", path=Path(folder) / "lab.fs", clock="virtual")   # …and starts again
    bank.bind("ACCOUNT", Account)
    print("after a restart:", await bank.env.ACCOUNT.getByName("bob").get_balance())
    bank.close()

# %% [markdown]
# ## Exercise
#
# The shop below confirms orders before they are stored. Change `place` so that an order is never
# confirmed unless it was saved, then run the check cell (it makes the next commit fail).

# %%
%%durable_object
class Orders(DurableObject):
    async def place(self, order_id, item):
        self.ctx.storage.put(f"order:{order_id}", item, allowUnconfirmed=True)
        return f"order {order_id} confirmed"

# %%
shop = env.ORDERS.getByName("shop")
lab.fail_next_commit = OSError("disk full")
try:
    answer = await shop.place("1042", "teapot")
except Exception as error:
    answer = f"an error: {error}"
await lab.settle()
saved = "order:1042" in lab.storage_of(shop)
print(f"✗ the customer was told {answer!r}, but the order was not saved — try again"
      if answer.endswith("confirmed") and not saved else f"✓ no false confirmation: {answer}")

# %% [markdown]
# ## Summary
#
# - The output gate holds a result until the writes before it are committed; a failed commit
#   resets the object and turns the result into an error.
# - So don't `await` every `put` for safety, and don't use `allowUnconfirmed` for anything a
#   caller relies on.
# - What was acknowledged is durable: it survives resets, evictions and restarts.
