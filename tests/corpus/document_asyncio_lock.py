# expect: external-coordination
"""A collaborative document that guards edits with an asyncio.Lock."""
import asyncio

from workers import DurableObject, fetch


class Document(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.lock = asyncio.Lock()
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.version = await self.ctx.storage.get("version") or 0

    async def edit(self, patch):
        async with self.lock:
            check = await fetch("https://lint.example.com/check", method="POST", body=patch)
            if check.status != 200:
                return {"ok": False}
            self.version += 1
            self.ctx.storage.put(f"patch:{self.version:08d}", patch)
            self.ctx.storage.put("version", self.version)
            return {"ok": True, "version": self.version}
