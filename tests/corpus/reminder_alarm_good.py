# expect: none
"""Reminders scheduled with the object's alarm."""
from js import Date
from workers import DurableObject


class Reminders(DurableObject):
    async def remind(self, text, in_seconds):
        due = Date.now() + in_seconds * 1000
        await self.ctx.storage.put(f"due:{due:015d}", text)
        current = await self.ctx.storage.getAlarm()
        if current is None or due < current:
            await self.ctx.storage.setAlarm(due)
        return due

    async def alarm(self, alarm_info=None):
        now = Date.now()
        due = await self.ctx.storage.list(prefix="due:", end=f"due:{now:015d}~")
        for key, text in due.items():
            await self.env.NOTIFIER.getByName("default").send(text)
            await self.ctx.storage.delete(key)
        upcoming = await self.ctx.storage.list(prefix="due:", limit=1)
        if upcoming:
            first = next(iter(upcoming))
            await self.ctx.storage.setAlarm(int(first.removeprefix("due:")))
