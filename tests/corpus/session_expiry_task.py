# expect: timer-instead-of-alarm
"""Sessions that expire with a background task instead of an alarm."""
import asyncio

from workers import DurableObject

SESSION_TTL = 30 * 60


class Session(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.data = await self.ctx.storage.get("data") or {}

    async def touch(self, patch):
        self.data.update(patch)
        self.ctx.storage.put("data", self.data)
        asyncio.create_task(self._expire_later())
        return self.data

    async def _expire_later(self):
        await asyncio.sleep(SESSION_TTL)
        await self.ctx.storage.deleteAll()
        self.data = {}
