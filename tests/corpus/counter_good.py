# expect: none
"""The canonical counter: state loaded once, written through, reached by name."""
from urllib.parse import urlparse

from workers import DurableObject, Response, WorkerEntrypoint


class Counter(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.count = await self.ctx.storage.get("count") or 0

    async def increment(self, by=1):
        self.count += by
        self.ctx.storage.put("count", self.count)
        return self.count

    async def current(self):
        return self.count


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        name = urlparse(request.url).path.strip("/") or "global"
        stub = self.env.COUNTER.getByName(name)
        if request.method == "POST":
            return Response.json({"count": await stub.increment()})
        return Response.json({"count": await stub.current()})
