# expect: none
"""A Worker that retries retryable errors with backoff and a new stub; the object loads once."""
import asyncio

from workers import DurableObject, Response, WorkerEntrypoint


class Quota(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.used = await self.ctx.storage.get("used") or 0

    async def consume(self, n):
        self.used += n
        self.ctx.storage.put("used", self.used)
        return self.used


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        tenant = request.headers.get("x-tenant", "public")
        for attempt in range(3):
            stub = self.env.QUOTA.getByName(tenant)
            try:
                return Response.json({"used": await stub.consume(1)})
            except Exception as error:
                if not getattr(error, "retryable", False) or getattr(error, "overloaded", False):
                    raise
                await asyncio.sleep(0.1 * 2 ** attempt)
        return Response("try later", status=503)
