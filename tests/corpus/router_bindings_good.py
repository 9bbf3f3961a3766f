# expect: none
# bindings: ROOMS, SESSIONS
"""The same router with the binding names the configuration declares."""
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        name = request.url.rsplit("/", 1)[-1]
        if name.startswith("s-"):
            return await self.env.SESSIONS.getByName(name).fetch(request)
        rooms = self.env.ROOMS
        stub = rooms.getByName(name)
        return Response.json(await stub.info())
