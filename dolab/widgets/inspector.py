"""The inspector widget: one object's committed storage, alarm and instance state, with a history
slider over its committed versions (each labelled with the request that wrote it) and the diff
to the previous version.

It reads only the lab's public views: ``lab.history(stub)`` (ZODB history) and the trace (for
the instance state and to know when a commit touched the object); ``dolab.views.inspect_object``
turns them into the synced traits.
"""

from __future__ import annotations

from typing import Any

import traitlets

from .. import trace as t
from .. import views
from ..trace import Event
from ._live import LiveWidget, assets


def stub_for(lab: Any, label: str) -> Any:
    """The stub of a trace label, ``"BINDING:name"`` or ``"BINDING:<8 hex digits>"``."""
    binding, _, rest = label.partition(":")
    namespace = getattr(lab.env, binding)
    stored = lab.ids(binding)
    by_name = namespace.idFromName(rest)
    if by_name.toString() not in stored and len(rest) == 8:
        matches = [hex_id for hex_id in stored if hex_id.startswith(rest)]
        if len(matches) == 1:
            return namespace.get(namespace.idFromString(matches[0]))
    return namespace.get(by_name)


class Inspector(LiveWidget):
    """``Inspector(lab, stub)`` (or a label like ``"COUNTER:room-1"``; None: pick in the widget)."""

    _esm, _css = assets("inspector")

    objects = traitlets.List(traitlets.Unicode()).tag(sync=True)
    label = traitlets.Unicode("").tag(sync=True)
    state = traitlets.Unicode("").tag(sync=True)
    versions = traitlets.List(traitlets.Dict()).tag(sync=True)
    index = traitlets.Int(-1).tag(sync=True)
    entries = traitlets.List(traitlets.Dict()).tag(sync=True)
    hidden_entries = traitlets.Int(0).tag(sync=True)
    tables = traitlets.List(traitlets.Unicode()).tag(sync=True)
    alarm = traitlets.Unicode(None, allow_none=True).tag(sync=True)
    diff = traitlets.List(traitlets.Dict()).tag(sync=True)

    def __init__(self, lab: Any, target: Any = None, *, live: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lab = lab
        self._states: dict[str, str] = {}
        self._history: list[Any] = []
        self._history_stale = True
        self._applying = False
        self._follow = True
        for event in lab.trace:
            self._note(event)
        self._listen(lab.trace, live)
        self.observe(self._on_label, "label")
        self.observe(self._on_index, "index")
        self.label = self._label_of(target) if target is not None else self._first_object()
        self.refresh()

    def _label_of(self, target: Any) -> str:
        return target if isinstance(target, str) else str(self.lab.host_of(target).label)

    def _first_object(self) -> str:
        return next(iter(self._states), "")

    def _note(self, event: Event) -> bool:
        """Track object labels and instance states; True when it concerns the shown object."""
        if event.obj not in ("lab", "worker"):
            if event.obj not in self._states:
                self._states[event.obj] = "not constructed"
            if event.kind in views.LANE_STATES:
                self._states[event.obj] = views.LANE_STATES[event.kind]
        if event.kind == t.COMMIT and self.label in event.detail.get("objects", ()):
            self._history_stale = True
            return True
        return event.obj == self.label and event.kind in views.LANE_STATES

    def _on_event(self, event: Event) -> None:
        new_object = event.obj not in self._states and event.obj not in ("lab", "worker")
        if self._note(event) or new_object:
            self._throttle.poke()

    def _on_label(self, change: dict[str, Any]) -> None:
        self._history_stale = True
        self._follow = True
        if not self._applying:
            self.refresh()

    def _on_index(self, change: dict[str, Any]) -> None:
        if not self._applying:
            self._follow = change["new"] < 0 or change["new"] >= len(self._history) - 1
            self.refresh()

    def refresh(self) -> None:
        """Re-read the object's history (when a commit touched it) and set the traits now."""
        self._throttle.run()

    def _update(self) -> None:
        if not self.label and self._states:
            self._set_quietly(label=self._first_object())  # nothing chosen: the first object
        if self._history_stale:
            self._history = self._read_history()
            self._history_stale = False
        index = None if self._follow else self.index
        view = views.inspect_object(self.label, self._states.get(self.label, ""),
                                    self._history, index)
        with self.hold_sync():
            self._set_quietly(objects=list(self._states), **view.traits())

    def _set_quietly(self, **traits: Any) -> None:
        """Set traits without the observers that react to the browser (no refresh loop)."""
        self._applying = True
        try:
            for name, value in traits.items():
                setattr(self, name, value)
        finally:
            self._applying = False

    def _read_history(self) -> list[Any]:
        if not self.label:
            return []
        try:
            stub = stub_for(self.lab, self.label)
        except AttributeError:  # the binding is gone (a label from an older trace)
            return []
        return list(self.lab.history(stub))

    def __repr__(self) -> str:  # stable text/plain output (nbval compares it)
        count = len(self.versions)
        return f"<Inspector: {self.label or 'no object'}, {count} version{'s' * (count != 1)}>"
