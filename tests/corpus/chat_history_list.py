# expect: oversized-value
"""Chat room that keeps the whole history in one list under one key."""
import json
import time

from workers import DurableObject, Response


class ChatRoom(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.restore)

    async def restore(self):
        self.history = await self.ctx.storage.get("history") or []
        self.members = set()

    async def post(self, user, text):
        message = {"user": user, "text": text, "at": time.time()}
        self.history.append(message)
        self.ctx.storage.put("history", self.history)
        return len(self.history)

    async def join(self, user):
        self.members.add(user)
        return self.history[-20:]

    async def fetch(self, request):
        recent = json.dumps(self.history[-100:])
        return Response(recent, headers={"content-type": "application/json"})
