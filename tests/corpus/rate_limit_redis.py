# expect: external-coordination
"""A per-user rate limiter that takes a Redis lock before touching the object."""
import redis.asyncio as redis

from workers import DurableObject, Response, WorkerEntrypoint

r = redis.from_url("redis://cache.internal:6379")


class RateLimiter(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.tokens = await self.ctx.storage.get("tokens") or 10

    async def take(self):
        if self.tokens <= 0:
            return False
        self.tokens -= 1
        self.ctx.storage.put("tokens", self.tokens)
        return True


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        user = request.headers.get("x-user", "anon")
        got_lock = await r.set(f"lock:{user}", "1", nx=True, ex=5)
        if not got_lock:
            return Response("busy", status=429)
        try:
            ok = await self.env.RATE_LIMITER.getByName(user).take()
        finally:
            await r.delete(f"lock:{user}")
        return Response("ok" if ok else "slow down", status=200 if ok else 429)
