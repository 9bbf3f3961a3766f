# expect: none
"""Creating private rooms: a unique id per room, handed back to the client."""
from urllib.parse import urlparse

from workers import DurableObject, Response, WorkerEntrypoint


class PrivateRoom(DurableObject):
    async def setTopic(self, topic):
        self.ctx.storage.put("topic", topic)
        return topic

    async def info(self):
        return {"topic": await self.ctx.storage.get("topic")}


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        rooms = self.env.PRIVATE_ROOMS
        path = urlparse(request.url).path.strip("/")
        if request.method == "POST" and path == "rooms":
            room_id = rooms.newUniqueId()
            await rooms.get(room_id).setTopic((await request.json()).get("topic", ""))
            return Response.json({"room": room_id.toString()}, status=201)
        stub = rooms.get(rooms.idFromString(path.removeprefix("rooms/")))
        return Response.json(await stub.info())
