# %% [markdown]
# # 09 · Storage limits: many small values, big data elsewhere
#
# A Durable Object's storage is built for many small values. On a KV-backed object (the legacy
# backend, `new_classes`) a key is at most 2,048 bytes and a value at most 131,072 bytes
# (128 KiB); on a SQLite-backed object (the default) a key and its value are at most 2 MB together.
# A value that grows with every request — a chat history kept as one JSON list — hits the limit
# sooner or later, and rewrites all of itself on every change until it does.
#
# This lesson grows one value until it fails, then splits it across keys, moves big data into a
# bucket, and stores rows with the SQL API.

# %%
%load_ext dolab
%dolab new --memory --virtual --name lessons

# %% [markdown]
# ## The wrong way: the whole history in one key
#
# `Board` keeps its messages in a list and saves it, as JSON, under one key. It is KV-backed
# (`--storage kv`), so the limit is 128 KiB. The checker already sees the growing list.

# %%
%%durable_object --storage kv
import json

class Board(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.messages = json.loads(await self.ctx.storage.get("messages") or "[]")

    async def post(self, user, text):
        self.messages.append({"user": user, "text": text})
        self.ctx.storage.put("messages", json.dumps(self.messages))
        return len(self.messages)

# %% tags=["raises-exception"]
general = env.BOARD.getByName("general")
text = "lorem ipsum " * 83                            # about 1 KB per message
for n in range(1, 201):                                # 200 messages: a 200 KB blob
    await general.post("ada", f"message {n}: {text}")

# %% [markdown]
# The 127th post pushed the blob past 128 KiB, and its `put` failed with Cloudflare's
# `RangeError`. The board is stuck: every later post fails the same way. What is stored:

# %%
stored = lab.storage_of(general)["messages"]
print(f"{len(json.loads(stored))} messages in one value of {len(stored):,} bytes")

# %% [markdown]
# ## Fix 1: one key per message
#
# Give each message its own key, numbered so that keys sort in order, and keep a count. Reading
# the latest is a `list()` with a prefix. Each value stays around 1 KB however long the board
# runs, and a post writes 1 KB, not the whole history.

# %%
%%durable_object --storage kv
class Board(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.count = await self.ctx.storage.get("count") or 0

    async def post(self, user, text):
        self.count += 1
        self.ctx.storage.put({"count": self.count,
                              f"msg:{self.count:06d}": {"user": user, "text": text}})
        return self.count

    async def recent(self, n):
        latest = await self.ctx.storage.list(prefix="msg:", reverse=True, limit=n)
        return [f"{key} {m['user']}: {m['text'][:12]}…" for key, m in latest.items()]

# %%
lobby = env.BOARD.getByName("lobby")
for n in range(1, 201):
    await lobby.post("ada", f"message {n}: {text}")
print(len(lab.storage_of(lobby)), "keys")
await lobby.recent(3)

# %% [markdown]
# ## Fix 2: big data in a bucket, a reference in the object
#
# Images, files and exports do not belong in an object at all. Keep them in R2 (here
# `lab.bucket("BLOBS")`, a small R2-like bucket) and store only the key and size in the object.
# Put the blob first, then the reference, so that no reference ever points at a missing blob.
# An R2 call leaves the object, like `fetch`, so other requests may run while it is awaited.

# %%
lab.bucket("BLOBS")

# %%
%%durable_object
class Profile(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.avatar_ref = await self.ctx.storage.get("avatar")

    async def set_avatar(self, image):
        written = await self.env.BLOBS.put(f"avatars/{self.ctx.id.name}.png", image)
        self.avatar_ref = {"key": written.key, "size": written.size}
        self.ctx.storage.put("avatar", self.avatar_ref)

    async def avatar(self):
        blob = await self.env.BLOBS.get(self.avatar_ref["key"])
        return await blob.bytes()

# %%
ada = env.PROFILE.getByName("ada")
await ada.set_avatar(bytes(300_000))                   # a 300 KB image
print("object:", lab.storage_of(ada))
print("bucket:", (await env.BLOBS.list(prefix="avatars/")).objects)
len(await ada.avatar())

# %% [markdown]
# ## The SQL API: rows instead of keys
#
# SQLite-backed objects (the default, `new_sqlite_classes`) also have a SQL database:
# `ctx.storage.sql.exec(query, *bindings)` returns a cursor; `toArray()` reads all its rows.
# A table of messages grows row by row, and queries pick what they need. SQL writes commit with
# the object's other writes, between awaits, like `put`.

# %%
%%durable_object
class ChatLog(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS messages "
                             "(id INTEGER PRIMARY KEY, user TEXT, text TEXT)")

    async def post(self, user, text):
        self.ctx.storage.sql.exec("INSERT INTO messages (user, text) VALUES (?, ?)", user, text)

    async def recent(self, n):
        return self.ctx.storage.sql.exec(
            "SELECT id, user, substr(text, 1, 12) AS text FROM messages ORDER BY id DESC LIMIT ?",
            n).toArray()

# %%
log = env.CHAT_LOG.getByName("general")
for n in range(1, 201):
    await log.post("ada", f"message {n}: {text}")
await log.recent(3)

# %% [markdown]
# ## Exercise
#
# `Gallery.add()` stores each photo in the object's storage, and a 300 KB photo is over the
# limit. Change it to put the photo in `env.BLOBS` under `photos/<name>` and store only a
# reference in the object, then run the check cell.

# %%
%%durable_object --storage kv
class Gallery(DurableObject):
    async def add(self, name, photo):
        self.ctx.storage.put(name, photo)

# %%
trip = env.GALLERY.getByName("trip")
try:
    for n in range(3):
        await trip.add(f"photo-{n}.jpg", bytes(300_000))
    in_bucket = (await env.BLOBS.list(prefix="photos/")).objects
    small = len(repr(lab.storage_of(trip))) < 1000
    print("✓ photos in the bucket, references in the object" if len(in_bucket) == 3 and small
          else "✗ the photos are not all in env.BLOBS under photos/ — try again")
except RangeError as error:
    print(f"✗ {error} — try again")

# %% [markdown]
# ## Summary
#
# - KV-backed objects: keys ≤ 2,048 bytes, values ≤ 128 KiB, 128 keys per call; SQLite-backed:
#   key and value ≤ 2 MB together. A value over the limit fails with `RangeError`.
# - Never let one value grow with use: one key per item (`list(prefix=…)`) or one row per item
#   (`ctx.storage.sql`).
# - Keep blobs in R2 and only a reference (key, size) in the object.
