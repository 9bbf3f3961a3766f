# %% [markdown]
# # 10 · WebSockets: a chat room that can sleep
#
# A Durable Object is the natural home of a chat room: every member's socket is accepted by the
# *same* object, so broadcasting is a loop over `ctx.getWebSockets()`.
#
# There are two ways to accept a socket. The **standard API** (`ws.accept()` plus event
# listeners) keeps the object in memory for as long as a socket is open — you pay for an idle
# room all night. The **Hibernation API** (`ctx.acceptWebSocket(ws)` plus `webSocketMessage`)
# lets Cloudflare drop the idle object from memory while the sockets stay connected; the next
# message wakes it (the constructor runs again). Anything the object must remember about a socket
# goes in its *attachment* or *tags*, which survive hibernation — in-memory fields do not.

# %%
%load_ext dolab
%dolab new --memory --virtual --name lessons

# %% [markdown]
# ## The wrong way: remember members in a field
#
# The room keeps a dict from socket to name. It works — until the room hibernates.

# %%
%%durable_object
class ChatRoom(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.names = {}                                   # socket → name, in memory only

    async def fetch(self, request):
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server)
        self.names[server] = request.headers.get("x-name") or "anonymous"
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        name = self.names.get(ws, "?")
        for other in self.ctx.getWebSockets():
            other.send(f"{name}: {message}")

# %%
%%worker
class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return await self.env.CHAT_ROOM.getByName("lobby").fetch(request)

# %%
ada = await lab.connect("ws://chat.example/", headers={"x-name": "ada"})
bob = await lab.connect("ws://chat.example/", headers={"x-name": "bob"})
ada.send("hello")
print(await bob.receive())

# %% [markdown]
# Nobody talks for a minute. The room has only hibernatable sockets, so it is dropped from memory
# (`lab.advance` moves the virtual clock past the idle timeout). The sockets stay open.

# %%
await lab.advance(60)
print([e.kind for e in lab.trace.events(("hibernated", "evicted"))])
bob.send("still there?")
await lab.settle()
print(ada.messages[-1])

# %% [markdown]
# The message arrived — the constructor ran again to deliver it — but the names were in memory and
# are gone: `?: still there?`.
#
# ## The Hibernation way: attachments and tags
#
# `ws.serializeAttachment(value)` keeps a small value (≤ 16 KiB) with the socket;
# `ctx.acceptWebSocket(ws, tags)` labels it so `ctx.getWebSockets(tag)` can find it. Both survive
# hibernation.

# %%
%%durable_object
class ChatRoom(DurableObject):
    async def fetch(self, request):
        name = request.headers.get("x-name") or "anonymous"
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server, ["member", f"name:{name}"])
        server.serializeAttachment({"name": name})
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        name = ws.deserializeAttachment()["name"]
        if message.startswith("@"):                       # "@bob hi": a direct message
            target, _, text = message[1:].partition(" ")
            for other in self.ctx.getWebSockets(f"name:{target}"):
                other.send(f"{name} (private): {text}")
            return
        for other in self.ctx.getWebSockets("member"):
            other.send(f"{name}: {message}")

    async def webSocketClose(self, ws, code, reason, wasClean):
        name = ws.deserializeAttachment()["name"]
        for other in self.ctx.getWebSockets("member"):
            if other is not ws:
                other.send(f"{name} left ({code})")

# %% [markdown]
# Rerunning the cell was a code update: the old instance was reset and its sockets closed, as a
# deploy does. Reconnect, hibernate, and talk again.

# %%
ada = await lab.connect("ws://chat.example/", headers={"x-name": "ada"})
bob = await lab.connect("ws://chat.example/", headers={"x-name": "bob"})
cy = await lab.connect("ws://chat.example/", headers={"x-name": "cy"})
await lab.advance(60)
bob.send("still there?")
print(await ada.receive())
cy.send("@ada psst")
print(await ada.receive(), "| bob got", len(bob.messages), "message(s)")

# %% [markdown]
# A client that closes cleanly sends a close code; one that vanishes (a laptop lid) gets 1006.

# %%
cy.close(4001, "bye")
print(await ada.receive())
bob.drop()
print(await ada.receive())

# %%
lab.show().sockets

# %% [markdown]
# ## Auto-response: pings without waking the room
#
# `ctx.setWebSocketAutoResponse(WebSocketRequestResponsePair("ping", "pong"))` answers a `ping`
# for the object, so keep-alive traffic never wakes it.
#
# ## Exercise
#
# Make the room greet each newcomer with `welcome, <name>` (sent only to the newcomer, from
# `fetch`, right after accepting). Rerun the room cell, then the check.

# %%
dee = await lab.connect("ws://chat.example/", headers={"x-name": "dee"})
await lab.settle()
print("✓ greeted" if dee.messages[:1] == ["welcome, dee"]
      else "✗ no welcome message yet — send one from fetch() after acceptWebSocket")

# %% [markdown]
# ## Summary
#
# - One object per room: broadcast is a loop over `ctx.getWebSockets()`.
# - Prefer `ctx.acceptWebSocket`: idle rooms hibernate and cost nothing; messages wake them.
# - Keep per-socket state in attachments and tags, not in fields.
