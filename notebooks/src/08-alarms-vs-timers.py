# %% [markdown]
# # 08 · Alarms, not timers: delayed work that survives
#
# An idle Durable Object does not stay in memory: `wrangler dev` evicts it after 10 s, Cloudflare
# after a minute or two, and a deploy or a restart drops it at any time. A timer —
# `asyncio.sleep`, `call_later`, JavaScript's `setTimeout` — lives in that memory and dies with
# it. An **alarm** is stored with the object's data: it wakes the object up (running the
# constructor first), survives restarts, and is retried when its handler fails.
#
# This lesson loses a reminder to eviction, then keeps it with an alarm, across a restart too.

# %%
%load_ext dolab
%dolab new --memory --virtual --name lessons

# %% [markdown]
# ## The wrong way: a timer in memory
#
# `remind_in` schedules the reminder with `call_later`, Python's `setTimeout`. The checker already
# points at it beneath the cell.

# %%
%%durable_object
import asyncio

class Reminders(DurableObject):
    async def remind_in(self, seconds, text):
        asyncio.get_running_loop().call_later(seconds, self.send, text)
        return f"reminder set for +{seconds} s"

    def send(self, text):
        self.ctx.storage.put("sent", text)         # stands for: notify the user

# %%
ada = env.REMINDERS.getByName("ada")
start = lab.now()
print(await ada.remind_in(60, "stand up"))
await lab.advance(120)
lab.storage_of(ada)

# %% [markdown]
# Two minutes later, nothing was sent. The trace tells why: the object sat idle, was evicted at
# +10 s, and at +60 s its timer had nothing left to run in.

# %%
def show(events, start):
    """Trace events from lab time `start` on, at times relative to it."""
    for e in events:
        if e.time >= start:
            detail = [f"{k}={v}" for k, v in e.detail.items()
                      if k in ("retryCount", "delay", "error")]
            print(f"+{e.time - start:>3.0f} s  {e.kind:<12} {' '.join(detail)}".rstrip())

show(lab.trace.events(("finished", "evicted", "timer-lost"), obj="REMINDERS:ada"), start)

# %% [markdown]
# ## The DO way: an alarm
#
# Store what the delayed work needs, then `setAlarm(time in ms)`. When it is due, the runtime calls
# `alarm(alarm_info)` — constructing the object first if it was evicted. One alarm per object;
# a new `setAlarm` replaces the old time.

# %%
%%durable_object
class Reminders(DurableObject):
    async def remind_in(self, seconds, text):
        self.ctx.storage.put("reminder", text)
        await self.ctx.storage.setAlarm(Date.now() + seconds * 1000)
        return f"reminder set for +{seconds} s"

    async def alarm(self, alarm_info):
        text = await self.ctx.storage.get("reminder")
        self.ctx.storage.put("sent", text)

# %%
start = lab.now()
print(await ada.remind_in(60, "stand up"))
await lab.advance(120)
show(lab.trace.events(("constructed", "evicted", "alarm-fired"), obj="REMINDERS:ada"), start)
lab.storage_of(ada)

# %% [markdown]
# Evicted at +10 s as before, woken up at +60 s: constructed, then `alarm()` ran and sent it.
#
# ## An alarm survives a restart
#
# A lab kept in a file (here in a temporary directory) outlives its kernel. Set a reminder, close
# the lab as a kernel restart would, open the same file again, bind the class again, and let time
# pass.

# %%
import tempfile
from pathlib import Path

tmp = tempfile.TemporaryDirectory()
path = Path(tmp.name) / "lab.fs"
disk = Lab(path=path, clock="virtual", name="lessons")
disk.bind("REMINDERS", Reminders)
start = disk.now()
print(await disk.env.REMINDERS.getByName("bob").remind_in(60, "drink water"))
disk.close()                                       # the kernel goes away; the file stays

# %%
disk = Lab(path=path, clock="virtual", name="lessons")  # a new kernel opens the same file
disk.bind("REMINDERS", Reminders)
await disk.advance(120)
show(disk.trace.events(("constructed", "alarm-fired")), start)
disk.storage_of(disk.env.REMINDERS.getByName("bob"))

# %%
disk.close()
tmp.cleanup()

# %% [markdown]
# ## Retries with backoff
#
# When `alarm()` raises, the runtime runs it again after 2, 4, 8, 16, 32 and 64 s (at most six
# retries; Cloudflare adds up to 25 % jitter). `alarm_info.retryCount` says which attempt this is.
# Here a mail service is down for its first three calls.

# %%
%%durable_object
class Mailer(DurableObject):
    async def send_later(self, seconds, text):
        self.ctx.storage.put("outbox", text)
        await self.ctx.storage.setAlarm(Date.now() + seconds * 1000)

    async def alarm(self, alarm_info):
        text = await self.ctx.storage.get("outbox")
        response = await fetch("https://mail.example/send", method="POST", body=text)
        if not response.ok:
            raise RuntimeError(f"mail service answered {response.status}")
        self.ctx.storage.delete("outbox")
        self.ctx.storage.put("sent", text)

# %%
calls = 0

def mail_service(request):
    global calls
    calls += 1
    return Response("busy", status=503) if calls <= 3 else Response("sent")

lab.service("https://mail.example/", mail_service)
mailer = env.MAILER.getByName("ada")
start = lab.now()
await mailer.send_later(10, "weekly report")
await lab.advance(60)
show(lab.trace.events(("alarm-fired", "error", "alarm-retry"), obj="MAILER:ada"), start)
lab.storage_of(mailer)

# %% [markdown]
# Fired at +10 s, retried at +12, +16 and +24 s (2, 4, 8 s apart), and the fourth attempt went
# through. Alarms are delivered *at least once*: make the handler safe to run twice.
#
# ## Exercise
#
# A `Session` should be deleted 30 minutes after it starts. This one uses a timer, so an eviction
# makes it live forever. Change it to use an alarm, then run the check cell.

# %%
%%durable_object
class Session(DurableObject):
    async def start(self, user):
        self.ctx.storage.put("user", user)
        asyncio.get_running_loop().call_later(30 * 60, self.expire)

    def expire(self):
        self.ctx.storage.deleteAll()

# %%
session = env.SESSION.getByName("tab-1")
await session.start("ada")
await lab.advance(2 * 3600)
left = lab.storage_of(session)
print("✓ the session expired" if not left
      else f"✗ still stored after 2 hours: {left} — try again")

# %% [markdown]
# ## Summary
#
# - Timers live in memory: eviction, a restart or a deploy loses them (the trace says `timer-lost`).
# - `setAlarm(ms)` is stored with the object; `alarm(alarm_info)` runs when due, after the
#   constructor if the object was evicted, even after a restart.
# - A failing `alarm()` is retried after 2, 4, 8, 16, 32, 64 s; `alarm_info.retryCount` counts.
# - Store what the delayed work needs; one alarm per object (keep a schedule in storage for more).
