# expect: none
"""A tenant's user directory: one key per user, looked up by id per request."""
from workers import DurableObject


class Directory(DurableObject):
    async def upsert(self, uid, profile):
        await self.ctx.storage.put(f"user:{uid}", profile)
        return uid

    async def lookup(self, uid):
        return await self.ctx.storage.get(f"user:{uid}")

    async def lookup_many(self, uids):
        found = await self.ctx.storage.get([f"user:{u}" for u in uids])
        return list(found.values())

    async def remove(self, uid):
        return await self.ctx.storage.delete(f"user:{uid}")
