# expect: kv-for-state
"""Page-view counter kept in Workers KV (the mistake lesson 02 starts from)."""
import json
from urllib.parse import urlparse

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path
        key = f"views:{path}"
        raw = await self.env.PAGE_VIEWS.get(key)
        stats = json.loads(raw) if raw else {"views": 0, "last": None}
        stats["views"] += 1
        stats["last"] = request.headers.get("cf-connecting-ip")
        await self.env.PAGE_VIEWS.put(key, json.dumps(stats))
        return Response.json(stats)
