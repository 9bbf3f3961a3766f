"""Time as user code sees it: ``Date.now()``, ``scheduler.wait(ms)`` (like ``from js import Date,
scheduler``) and the in-memory timers an instance starts with ``asyncio.sleep`` or ``call_later``.

The lab patches its loop's ``call_later``/``call_at`` once. Outside an object nothing changes.
Inside one, a timer runs on the lab clock (so the virtual clock governs ``asyncio.sleep`` too),
belongs to the instance that started it — when that instance is gone (evicted, reset) the timer is
*lost*, as on Cloudflare, and the trace says so — and, like every event, waits for the object's
input gate before it runs.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any, Callable

from . import trace
from .gates import current_critical, resolve
from .host import current_host, current_request

if TYPE_CHECKING:
    from .clock import Timer
    from .host import ObjectHost


class LoopTimerHandle:
    """What the patched ``call_later`` returns: asyncio's TimerHandle surface over a lab timer."""

    __slots__ = ("_timer", "_loop")

    def __init__(self, timer: Timer, loop: asyncio.AbstractEventLoop, offset: float) -> None:
        self._timer = timer
        self._loop = loop

    def cancel(self) -> None:
        self._timer.cancel()

    def cancelled(self) -> bool:
        return self._timer.cancelled

    def when(self) -> float:
        return self._loop.time()


def patch_loop(loop: asyncio.AbstractEventLoop) -> None:
    if getattr(loop, "_dolab_patched", False):
        return
    original_later, original_at = loop.call_later, loop.call_at

    def call_later(delay: float, callback: Callable[..., Any], *args: Any,
                   context: Any = None) -> Any:
        host = current_host.get()
        if host is None or host.lab.closed:
            return original_later(delay, callback, *args, context=context)
        return instance_timer(host, delay, callback, args, context)

    def call_at(when: float, callback: Callable[..., Any], *args: Any, context: Any = None) -> Any:
        host = current_host.get()
        if host is None or host.lab.closed:
            return original_at(when, callback, *args, context=context)
        return instance_timer(host, when - loop.time(), callback, args, context)

    loop.call_later = call_later  # type: ignore[method-assign, assignment]
    loop.call_at = call_at  # type: ignore[method-assign, assignment]
    def safe_call_later(delay: float, callback: Callable[..., Any], *args: Any,
                        context: Any = None) -> Any:
        # asyncio's own call_later calls self.call_at, which is patched: go to call_at directly
        return original_at(loop.time() + delay, callback, *args, context=context)

    loop._dolab_original_call_later = safe_call_later  # type: ignore[attr-defined]
    loop._dolab_original_call_at = original_at  # type: ignore[attr-defined]
    loop._dolab_patched = True  # type: ignore[attr-defined]


def original_call_at(loop: asyncio.AbstractEventLoop) -> Callable[..., asyncio.TimerHandle]:
    """The loop's own call_at, for dolab's machinery (never routed to an instance)."""
    return getattr(loop, "_dolab_original_call_at", loop.call_at)


def instance_timer(host: ObjectHost, delay: float, callback: Callable[..., Any],
                   args: tuple[Any, ...], context: Any) -> LoopTimerHandle:
    incarnation = host.incarnation
    token = current_critical.get()
    request = current_request.get()
    lab = host.lab

    def fire() -> None:
        if host.incarnation != incarnation:
            lab.trace.record(host.label, trace.TIMER_LOST, request, delay=delay)
            return
        if not host.gate.admits(token):
            host.gate.defer(fire)  # why: a timer callback is an event; the closed gate holds it
            return
        if context is not None:
            context.run(callback, *args)
        else:
            callback(*args)

    timer = lab.clock.call_later(delay, fire, f"timer {host.label}")
    return LoopTimerHandle(timer, asyncio.get_running_loop(), delay)


class _Date:
    """``Date.now()``: lab time in milliseconds."""

    @staticmethod
    def now() -> int:
        from .lab import current_lab

        return current_lab().clock.now_ms()


class _Scheduler:
    """``scheduler.wait(ms)``: wait on the lab clock; inside an object the input gate opens."""

    @staticmethod
    async def wait(ms: float) -> None:
        from .lab import current_lab

        lab = current_lab()
        lab.attach_loop()
        future = asyncio.get_running_loop().create_future()
        lab.clock.call_later(ms / 1000, functools.partial(resolve, future), "scheduler.wait")
        host = current_host.get()
        if host is None:
            await lab.drive(future)
            return
        await lab.external(host, future, "scheduler.wait")


Date = _Date()
scheduler = _Scheduler()
