# expect: external-coordination
"""Seat booking that locks rows in Postgres instead of using one object per show."""
import asyncpg

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        body = await request.json()
        conn = await asyncpg.connect(self.env.DATABASE_URL)
        try:
            async with conn.transaction():
                seat = await conn.fetchrow(
                    "SELECT id, taken FROM seats WHERE show = $1 AND id = $2 FOR UPDATE",
                    body["show"], body["seat"],
                )
                if seat["taken"]:
                    return Response("taken", status=409)
                await conn.execute("UPDATE seats SET taken = true WHERE id = $1", seat["id"])
        finally:
            await conn.close()
        return Response("booked", status=201)
