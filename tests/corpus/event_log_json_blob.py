# expect: oversized-value, storage-read-per-request
"""Analytics events appended to a JSON document stored under one key."""
import json

from workers import DurableObject


class EventLog(DurableObject):
    async def record(self, event):
        raw = await self.ctx.storage.get("events.json")
        events = json.loads(raw) if raw else []
        events.append(event)
        await self.ctx.storage.put("events.json", json.dumps(events))
        return len(events)
