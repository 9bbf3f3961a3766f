# expect: new-id-per-request
"""Shopping sessions: every request makes a brand-new object for the user."""
from workers import DurableObject, Response, WorkerEntrypoint


class Session(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.items = await self.ctx.storage.get("items") or {}

    async def add(self, sku, qty):
        self.items[sku] = self.items.get(sku, 0) + qty
        self.ctx.storage.put("items", self.items)
        return self.items


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        user = request.headers.get("x-user-id")
        if not user:
            return Response("who are you?", status=401)
        sessions = self.env.SESSION
        session_id = sessions.newUniqueId()
        stub = sessions.get(session_id)
        body = await request.json()
        items = await stub.add(body["sku"], body.get("qty", 1))
        return Response.json({"user": user, "items": items})
