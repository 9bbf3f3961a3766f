# expect: storage-read-per-request, await-between-read-and-write
"""A matchmaking lobby: reads its queue from storage on each call and awaits the game
server between reading and writing it."""
from workers import DurableObject


class Lobby(DurableObject):
    async def enqueue(self, player):
        queue = await self.ctx.storage.get("queue") or []
        if player in queue:
            return {"queued": len(queue)}
        queue = queue + [player]
        if len(queue) >= 4:
            match = self.env.GAME.newUniqueId()
            await self.env.GAME.get(match).start(queue[:4])
            queue = queue[4:]
        await self.ctx.storage.put("queue", queue)
        return {"queued": len(queue)}

    async def size(self):
        queue = await self.ctx.storage.get("queue") or []
        return len(queue)
