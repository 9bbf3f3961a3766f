# expect: none
"""Read-mostly feature flags from KV, cached per isolate; counters in a Durable Object."""
import json

from workers import Response, WorkerEntrypoint

_flag_cache = {}


async def flags(env):
    if "flags" not in _flag_cache:
        raw = await env.CONFIG.get("flags")
        _flag_cache["flags"] = json.loads(raw or "{}")
    return _flag_cache["flags"]


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        feature = await flags(self.env)
        if not feature.get("votes", True):
            return Response("disabled", status=503)
        stub = self.env.VOTES.getByName("main")
        return Response.json({"n": await stub.increment()})
