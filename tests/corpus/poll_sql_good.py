# expect: none
"""The spec's poll example: votes in the object's SQLite database, closed by an alarm."""
from urllib.parse import urlparse

from workers import DurableObject, Response, WorkerEntrypoint


class Poll(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.ctx.storage.sql.exec(
            "CREATE TABLE IF NOT EXISTS votes (choice TEXT PRIMARY KEY, n INTEGER NOT NULL)"
        )

    async def cast(self, choice):
        self.ctx.storage.sql.exec(
            "INSERT INTO votes VALUES (?, 1) ON CONFLICT(choice) DO UPDATE SET n = n + 1",
            choice,
        )
        if await self.ctx.storage.getAlarm() is None:
            from js import Date
            await self.ctx.storage.setAlarm(Date.now() + 3_600_000)
        return await self.tally()

    async def tally(self):
        rows = self.ctx.storage.sql.exec("SELECT choice, n FROM votes ORDER BY choice").toArray()
        return {row["choice"]: row["n"] for row in rows}

    async def alarm(self, alarm_info=None):
        self.ctx.storage.sql.exec("DELETE FROM votes")


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        parts = urlparse(request.url).path.strip("/").split("/")
        if len(parts) != 2 or not all(parts):
            return Response("use /<poll>/<choice>", status=400)
        stub = self.env.POLLS.getByName(parts[0])
        totals = await stub.cast(parts[1])
        return Response.json(totals)
