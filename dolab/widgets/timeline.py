"""The timeline widget: one lane per object, each request a bar from queued to released.

The drawing is ``timeline.js`` (SVG, no build step); what it draws is computed here from the
trace by ``dolab.views.TimelineBuilder`` and synced as traits: ``lanes``, ``bars``, ``ticks``,
``markers``, ``extent`` and ``palette`` (the shared legend). ``axis`` ("order" or "time") and
``selected`` (a lane clicked in the browser) come back from the browser.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import traitlets

from .. import views
from ..trace import Event, Trace
from ._live import LiveWidget, assets

PENDING_MAX = 50_000  # events buffered between refreshes before a rebuild from the trace


def trace_of(source: Any) -> Trace:
    """A Lab or a Trace → the Trace."""
    trace = getattr(source, "trace", source)
    if not isinstance(trace, Trace):
        raise TypeError(f"expected a Lab or a Trace, got {source!r}")
    return trace


class Timeline(LiveWidget):
    """A live timeline of a lab's trace: ``Timeline(lab)`` (or ``Timeline(lab.trace)``)."""

    _esm, _css = assets("timeline")

    lanes = traitlets.List(traitlets.Dict()).tag(sync=True)
    bars = traitlets.List(traitlets.Dict()).tag(sync=True)
    ticks = traitlets.List(traitlets.Dict()).tag(sync=True)
    markers = traitlets.List(traitlets.Dict()).tag(sync=True)
    extent = traitlets.Dict().tag(sync=True)
    palette = traitlets.Dict().tag(sync=True)
    axis = traitlets.Unicode("order").tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)

    def __init__(self, source: Any, *, limit: int = views.DEFAULT_LIMIT, axis: str = "order",
                 live: bool = True, **kwargs: Any) -> None:
        super().__init__(palette=views.palette(), axis=axis, **kwargs)
        self.trace = trace_of(source)
        self.limit = limit
        self._builder = views.TimelineBuilder(limit)
        self._pending: deque[Event] = deque()
        self._overflow = False
        self._known_clears = self.trace.clears
        self._listen(self.trace, live)
        self.observe(self._on_axis, "axis")
        self.refresh()

    def _on_event(self, event: Event) -> None:
        """The trace listener: remember the event, mark dirty; no view work here."""
        if len(self._pending) >= PENDING_MAX:
            self._pending.clear()
            self._overflow = True  # the refresh rebuilds from the trace instead
        self._pending.append(event)
        self._throttle.poke()

    def _on_axis(self, change: dict[str, Any]) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Recompute the view model from the trace and set the traits now."""
        self._throttle.run()

    def _update(self) -> None:
        cleared = self.trace.clears != self._known_clears
        if self._overflow or cleared or self._builder.last is None:
            self._rebuild()  # first time, after a trace.clear(), or after a flood
        else:
            pending, self._pending = self._pending, deque()
            self._builder.feed(pending)
        self._known_clears = self.trace.clears
        view = self._builder.view(self.axis)
        with self.hold_sync():
            for name, value in view.traits().items():
                setattr(self, name, value)

    def _rebuild(self) -> None:
        self._pending.clear()
        self._overflow = False
        self._builder = views.TimelineBuilder(self.limit)
        self._builder.feed(self.trace)

    def __repr__(self) -> str:  # stable text/plain output (nbval compares it)
        lanes = len(self.lanes)
        return (f"<Timeline: {self.extent.get('requests', 0)} requests, {lanes} "
                f"lane{'s' if lanes != 1 else ''}>")
