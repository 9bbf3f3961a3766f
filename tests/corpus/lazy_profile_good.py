# expect: none
"""A profile object that loads lazily on first use and serves from memory after."""
from workers import DurableObject


class Profile(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.profile = None

    async def _ensure(self):
        if self.profile is None:
            self.profile = await self.ctx.storage.get("profile") or {"name": "", "bio": ""}
        return self.profile

    async def update(self, **fields):
        profile = await self._ensure()
        profile.update({k: v for k, v in fields.items() if k in ("name", "bio")})
        self.ctx.storage.put("profile", profile)
        return profile

    async def show(self):
        return await self._ensure()
