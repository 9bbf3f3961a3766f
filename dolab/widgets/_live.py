"""Live updates without flooding the browser: trace listeners only mark a view dirty, and one
refresh per ``MIN_INTERVAL`` (at most 20 per second) recomputes the view model and sets traits.

The refresh is scheduled with the loop's *original* ``call_later`` and from an empty context: the
lab patches ``loop.call_later``/``call_at`` so that timers started inside an object run on the lab
clock and die with the instance (dolab.timers), and a trace listener often runs inside an
object's task. The refresh itself then runs in that empty context too, so nothing of the object's
context (current host, request) leaks into the view.
Without a running loop (plain scripts, tests) nothing is scheduled: call ``refresh()`` yourself.

A refresh that takes long (a big view) spaces the next one further (``COST_FACTOR`` times its
duration), so a busy lab never spends more than a small share of the loop redrawing.
"""

from __future__ import annotations

import asyncio
import contextvars
import pathlib
import time
from collections.abc import Callable
from typing import Any

import anywidget

from ..trace import Event, Trace

MIN_INTERVAL = 0.05  # seconds between two refreshes: ≤ 20 updates per second
COST_FACTOR = 5     # wait at least this many times the last refresh's duration


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Throttle:
    """Coalesces many ``poke()`` calls into at most one ``refresh()`` per ``interval``."""

    def __init__(self, refresh: Callable[[], None], interval: float = MIN_INTERVAL) -> None:
        self._refresh = refresh
        self.interval = interval
        self.dirty = False
        self._handle: Any = None
        self._last = -float("inf")  # when the previous refresh ended
        self._gap = interval

    def poke(self) -> None:
        """Mark dirty and, on a running loop, arm one timer for the next allowed refresh."""
        self.dirty = True
        if self._handle is not None:
            return
        loop = running_loop()
        if loop is None:
            return  # no loop: the owner refreshes on demand
        later = getattr(loop, "_dolab_original_call_later", loop.call_later)
        delay = max(0.0, self._last + self._gap - time.monotonic())
        # why: scheduled from an empty context, since asyncio's call_later goes through
        # loop.call_at, which the lab patches too (it makes a lab timer inside an object)
        self._handle = contextvars.Context().run(later, delay, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if self.dirty:
            self.run()

    def run(self) -> None:
        """Refresh now (also what ``widget.refresh()`` calls)."""
        self.dirty = False
        started = time.monotonic()
        self._refresh()
        self._last = time.monotonic()
        self._gap = max(self.interval, COST_FACTOR * (self._last - started))

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def assets(name: str) -> tuple[str, str]:
    """A widget's ES module and style sheet, each after what all widgets share (common.js/.css)."""
    here = pathlib.Path(__file__).parent
    return tuple(  # type: ignore[return-value]
        (here / f"common.{ext}").read_text() + (here / f"{name}.{ext}").read_text()
        for ext in ("js", "css"))


class LiveWidget(anywidget.AnyWidget):
    """What the live widgets share: trace events poke a ``Throttle`` that calls ``_update``, and
    ``close()`` stops both."""

    def _listen(self, trace: Trace, live: bool) -> None:
        self._throttle = Throttle(self._update)
        self._unsubscribe = trace.subscribe(self._on_event) if live else None

    def _on_event(self, event: Event) -> None:
        raise NotImplementedError

    def _update(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._throttle.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        super().close()
