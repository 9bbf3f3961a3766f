# expect: kv-for-state
"""A like-counter in KV, with the read and the write in separate helpers."""
from workers import Response, WorkerEntrypoint


async def read_likes(env, post):
    value = await env.LIKES.get(f"likes:{post}")
    return int(value or 0)


async def write_likes(env, post, n):
    await env.LIKES.put(f"likes:{post}", str(n))


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        post = request.url.rsplit("/", 1)[-1]
        likes = await read_likes(self.env, post) + 1
        await write_likes(self.env, post, likes)
        return Response.json({"post": post, "likes": likes})
