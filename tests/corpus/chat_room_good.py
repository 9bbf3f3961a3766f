# expect: none
"""Chat room with hibernatable sockets; each message is its own key."""
import json

from workers import DurableObject, Response, WebSocketPair, WorkerEntrypoint


class ChatRoom(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.seq = await self.ctx.storage.get("seq") or 0

    async def fetch(self, request):
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server, ["member"])
        recent = await self.ctx.storage.list(prefix="msg:", reverse=True, limit=50)
        for message in reversed(list(recent.values())):
            server.send(json.dumps(message))
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        self.seq += 1
        entry = {"n": self.seq, "text": str(message)[:2000]}
        self.ctx.storage.put({"seq": self.seq, f"msg:{self.seq:010d}": entry})
        for peer in self.ctx.getWebSockets("member"):
            peer.send(json.dumps(entry))

    async def webSocketClose(self, ws, code, reason, was_clean):
        ws.close(code, reason)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        room = request.url.rsplit("/", 1)[-1] or "lobby"
        return await self.env.CHAT_ROOM.getByName(room).fetch(request)
