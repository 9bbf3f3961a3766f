# expect: timer-instead-of-alarm
"""Presence tracking whose helper class schedules 'went away' with threading.Timer."""
import threading

from workers import DurableObject


class AwayScheduler:
    def __init__(self, on_away):
        self.on_away = on_away
        self.timers = {}

    def arm(self, user, seconds=120):
        if user in self.timers:
            self.timers[user].cancel()
        self.timers[user] = threading.Timer(seconds, self.on_away, args=(user,))
        self.timers[user].start()


class Presence(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.online = set()
        self.away = AwayScheduler(self.online.discard)

    async def heartbeat(self, user):
        self.online.add(user)
        self.away.arm(user)
        return sorted(self.online)
