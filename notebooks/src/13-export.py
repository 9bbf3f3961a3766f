# %% [markdown]
# # 13 · From notebook to Cloudflare
#
# The prototype works in the lab. Three steps take it further:
#
# 1. **Export** it as a Cloudflare Python Workers project (`src/entry.py`, `wrangler.toml`,
#    `pyproject.toml`), ready for `uv run pywrangler deploy`.
# 2. **Serve** it on this machine, so a real WebSocket client (or a browser) can talk to it.
# 3. **Test** your objects with dolab's helpers in pytest.

# %%
%load_ext dolab
%dolab new --memory --virtual --name chat-worker

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
# ## The wrong way: lab-only code in the Worker
#
# Anything that exists only in dolab (`lab`, `%dolab`, the checker) has no meaning on Cloudflare.
# Export refuses it and says where.

# %%
%%worker
class Default(WorkerEntrypoint):
    async def fetch(self, request):
        lab.trace.clear()                          # debugging left in: there is no `lab` on Cloudflare
        return await self.env.CHAT_ROOM.getByName("lobby").fetch(request)

# %% tags=["raises-exception"]
import tempfile, pathlib

out = pathlib.Path(tempfile.mkdtemp()) / "chat"
lab.export(out)

# %% [markdown]
# ## The export
#
# With the debugging line gone, the project is written. Its imports are Python Workers' own:
# `from workers import …` and `from js import …`.

# %%
%%worker
from urllib.parse import urlparse

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        room = urlparse(request.url).path.strip("/") or "lobby"
        return await self.env.CHAT_ROOM.getByName(room).fetch(request)

# %%
project = lab.export(out)
print(sorted(str(p.relative_to(out)) for p in project.files))
print((out / "wrangler.toml").read_text())

# %%
print((out / "src" / "entry.py").read_text())

# %% [markdown]
# To deploy: `cd` into the folder and run `uv run pywrangler deploy` (the generated README says
# the same). `dolab export MODULE --out DIR --check` also runs `wrangler deploy --dry-run`, which
# checks bindings and migrations offline.
#
# ## Serve it to a real client
#
# `await lab.serve(port=0)` starts an HTTP and WebSocket server on 127.0.0.1 in this kernel's
# loop. Here a real client (the `websockets` package) joins the same room as a simulated one.

# %%
import websockets

server = await lab.serve(port=0)
simulated = await lab.connect("ws://chat.example/lobby")
async with websockets.connect(server.url.replace("http", "ws") + "lobby") as real:
    simulated.send("hello from the notebook")
    print("real client got:", await real.recv())
    await real.send("hello from a real socket")
    print("real client got:", await real.recv())
print("simulated client got:", simulated.messages)
await server.close()

# %% [markdown]
# ## Test your objects with pytest
#
# dolab's helpers are the same ones its own tests use (like Cloudflare's `runInDurableObject` and
# `runDurableObjectAlarm`). A test file for the room:
#
# ```python
# import pytest
# from dolab import Lab
# from chat import ChatRoom, Default          # your module
#
# async def test_broadcast_reaches_everyone():
#     lab = Lab(path=None, clock="virtual")
#     lab.bind("CHAT_ROOM", ChatRoom)
#     lab.worker(Default)
#     a, b = [await lab.connect("ws://x/lobby") for _ in range(2)]
#     a.send("hi")
#     assert await b.receive() == "hi"
#     lab.close()
# ```
#
# Run it with `pytest` (and `pytest-asyncio`). The same test, run here:

# %%
async def test_broadcast_reaches_everyone():
    test_lab = Lab(path=None, clock="virtual")
    test_lab.bind("CHAT_ROOM", ChatRoom)
    test_lab.worker(Default)
    a, b = [await test_lab.connect("ws://x/lobby") for _ in range(2)]
    a.send("hi")
    assert await b.receive() == "hi"
    test_lab.close()

await test_broadcast_reaches_everyone()
print("passed")

# %% [markdown]
# ## Exercise
#
# Give the room a `history()` RPC method that returns the last 10 messages (keep them in storage
# with one key per message, lesson 09), export again, and check that `src/entry.py` has it.

# %%
lab.export(out)
exported = (out / "src" / "entry.py").read_text()
print("✓ history() exported" if "def history" in exported
      else "✗ no history() method in src/entry.py yet")

# %% [markdown]
# ## Summary
#
# - `lab.export(dir)` writes a Python Workers project; dolab-only code is refused with reasons.
# - `lab.serve()` lets real clients and browsers talk to the objects in your notebook.
# - `Lab(path=None, clock="virtual")` in pytest tests your objects deterministically.
# - On Cloudflare the same code runs across its network: that is where Durable Objects scale.
