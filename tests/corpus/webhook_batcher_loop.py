# expect: timer-instead-of-alarm
"""Batches webhook events and flushes them every few seconds with a sleep loop."""
from asyncio import sleep as pause

from workers import DurableObject, fetch

FLUSH_EVERY_S = 5


class Batcher(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.pending = []
        self.flushing = False

    async def add(self, event):
        self.pending.append(event)
        if not self.flushing:
            self.flushing = True
            self.ctx.waitUntil(self.flush_loop())
        return len(self.pending)

    async def flush_loop(self):
        while self.pending:
            await pause(FLUSH_EVERY_S)
            batch, self.pending = self.pending, []
            await fetch("https://hooks.example.com/batch", method="POST", body=str(batch))
        self.flushing = False
