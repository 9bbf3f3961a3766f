# expect: storage-read-per-request
"""Settings stored under a key named by a module constant, re-read on every call."""
from workers import DurableObject

SETTINGS_KEY = "settings"
DEFAULTS = {"theme": "light", "lang": "en"}


class Settings(DurableObject):
    async def get_setting(self, name):
        settings = await self.ctx.storage.get(SETTINGS_KEY) or dict(DEFAULTS)
        return settings.get(name)

    async def set_setting(self, name, value):
        settings = await self.ctx.storage.get(SETTINGS_KEY) or dict(DEFAULTS)
        settings[name] = value
        self.ctx.storage.put(SETTINGS_KEY, settings)
        return settings
