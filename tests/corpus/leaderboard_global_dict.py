# expect: kv-for-state
"""A leaderboard kept in a dict at module level of the Worker."""
from collections import defaultdict

from workers import Response, WorkerEntrypoint

scores = defaultdict(int)
TOP_N = 10


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.method == "POST":
            body = await request.json()
            scores[body["player"]] += int(body["points"])
        top = sorted(scores.items(), key=lambda kv: -kv[1])[:TOP_N]
        return Response.json({"top": top})
