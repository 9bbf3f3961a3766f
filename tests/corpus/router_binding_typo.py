# expect: missing-binding
# bindings: ROOMS, SESSIONS
"""A router whose code says ROOM where the configuration declares ROOMS."""
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        name = request.url.rsplit("/", 1)[-1]
        if name.startswith("s-"):
            return await self.env.SESSIONS.getByName(name).fetch(request)
        stub = self.env.ROOM.getByName(name)
        return Response.json(await stub.info())
