"""Lab time: the only time alarms, evictions, retries and ``scheduler.wait`` ever read.

Two clocks share one timer heap:

- ``RealClock`` follows the wall clock (plus whatever ``lab.advance`` added) and wakes itself with
  one asyncio timer for the earliest lab timer.
- ``VirtualClock`` starts at 2026-01-01T00:00:00Z and never moves by itself: only ``lab.advance``
  and the lab's auto-jump (see ``Lab``) move it, so a notebook gives the same output every run.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import datetime, timezone
from typing import Callable

VIRTUAL_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()


class Timer:
    """A pending lab timer; ``cancel()`` makes it never fire."""

    __slots__ = ("when", "seq", "callback", "cancelled", "label")

    def __init__(self, when: float, seq: int, callback: Callable[[], None], label: str) -> None:
        self.when = when
        self.seq = seq
        self.callback = callback
        self.cancelled = False
        self.label = label

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: Timer) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)


class LabClock:
    """Common timer heap. Subclasses say what "now" is and how the heap is woken."""

    virtual = False

    def __init__(self) -> None:
        self._heap: list[Timer] = []
        self._seq = itertools.count()

    def now(self) -> float:
        raise NotImplementedError

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def call_at(self, when: float, callback: Callable[[], None], label: str = "") -> Timer:
        timer = Timer(when, next(self._seq), callback, label)
        heapq.heappush(self._heap, timer)
        if self._heap[0] is timer:  # why: a later timer leaves the wake-up for the earliest as is
            self._rearm()
        return timer

    def call_later(self, delay: float, callback: Callable[[], None], label: str = "") -> Timer:
        return self.call_at(self.now() + max(0.0, delay), callback, label)

    def next_deadline(self) -> float | None:
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].when if self._heap else None

    def fire_due(self) -> int:
        """Run every timer due by now, earliest first; returns how many ran."""
        fired = 0
        while (deadline := self.next_deadline()) is not None and deadline <= self.now():
            timer = heapq.heappop(self._heap)
            timer.callback()
            fired += 1
        self._rearm()
        return fired

    def fire_next(self) -> bool:
        """Move to the earliest timer and run it alone (and any others due at the same instant)."""
        deadline = self.next_deadline()
        if deadline is None:
            return False
        self._move_to(deadline)
        self.fire_due()
        return True

    def move_by(self, seconds: float) -> None:
        self._move_to(self.now() + seconds)

    def _move_to(self, when: float) -> None:
        raise NotImplementedError

    def _rearm(self) -> None:
        """Real clocks schedule a loop wake-up for the earliest timer; virtual ones do nothing."""

    def close(self) -> None:
        self._heap.clear()


class VirtualClock(LabClock):
    virtual = True

    def __init__(self, start: float = VIRTUAL_EPOCH) -> None:
        super().__init__()
        self._now = start

    def now(self) -> float:
        return self._now

    def _move_to(self, when: float) -> None:
        self._now = max(self._now, when)


class RealClock(LabClock):
    def __init__(self) -> None:
        super().__init__()
        self._offset = 0.0
        self._wakeup: asyncio.TimerHandle | None = None
        self._wakeup_loop: asyncio.AbstractEventLoop | None = None
        # why: the trace reads the clock twice per call; until lab.advance adds an offset, "now"
        # is time.time itself, with no Python frame per read
        self.now = time.time  # type: ignore[method-assign]

    def now(self) -> float:
        return time.time() + self._offset

    def _move_to(self, when: float) -> None:
        self._offset += max(0.0, when - self.now())
        if self._offset and "now" in self.__dict__:
            del self.now  # the method above, which adds the offset

    def _rearm(self) -> None:
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
        deadline = self.next_deadline()
        if deadline is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop yet (a script built the lab before asyncio.run)
            return
        delay = max(0.0, deadline - self.now())
        call_at = getattr(loop, "_dolab_original_call_at", loop.call_at)
        self._wakeup = call_at(loop.time() + delay, self.fire_due)
        self._wakeup_loop = loop

    def ensure_armed(self) -> None:
        """Arm the wake-up on the running loop (the lab just met it: a new kernel loop or
        asyncio.run), unless it is armed there already."""
        if self._wakeup is None or self._wakeup_loop is not _running_loop():
            self._rearm()

    def close(self) -> None:
        super().close()
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def make_clock(kind: str, start: float | None = None) -> LabClock:
    if kind == "virtual":
        return VirtualClock(VIRTUAL_EPOCH if start is None else start)
    if kind == "real":
        return RealClock()
    raise ValueError(f'clock must be "real" or "virtual", not {kind!r}')


def iso(seconds: float) -> str:
    """Lab time as ISO 8601 UTC with milliseconds, for the trace and widgets."""
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
