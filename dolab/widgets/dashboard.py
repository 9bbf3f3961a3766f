"""``lab.show()``: the timeline on top, the inspector and the sockets side by side.

Clicking a lane in the timeline shows that object in the inspector.
"""

from __future__ import annotations

from typing import Any

import ipywidgets
import traitlets

from .inspector import Inspector
from .sockets import Sockets
from .timeline import Timeline


class Dashboard(ipywidgets.VBox):  # type: ignore[misc]
    """The three views of one lab: ``.timeline``, ``.inspector``, ``.sockets``."""

    def __init__(self, lab: Any, **kwargs: Any) -> None:
        self.lab = lab
        self.timeline = Timeline(lab)
        self.inspector = Inspector(lab)
        self.sockets = Sockets(lab)
        self._link: traitlets.dlink | None = traitlets.dlink(
            (self.timeline, "selected"), (self.inspector, "label"), transform=self._inspectable)
        self.inspector.layout = ipywidgets.Layout(flex="1 1 50%", min_width="320px",
                                                  margin="0 6px 0 0")
        self.sockets.layout = ipywidgets.Layout(flex="1 1 50%", min_width="320px",
                                                margin="0 0 0 6px")
        lower = ipywidgets.HBox([self.inspector, self.sockets],
                                layout=ipywidgets.Layout(width="100%", margin="8px 0 0 0"))
        super().__init__([self.timeline, lower], **kwargs)
        self.add_class("dolab-dashboard")

    def _inspectable(self, label: str) -> str:
        """A lane clicked in the timeline, if the inspector can show it (not the Worker)."""
        return label if label in self.inspector.objects else self.inspector.label

    def refresh(self) -> None:
        for view in (self.timeline, self.inspector, self.sockets):
            view.refresh()

    def __repr__(self) -> str:  # stable text/plain output (nbval compares it)
        return f"<Dashboard of lab {self.lab.name!r}>"

    def close(self) -> None:
        if self._link is not None:
            self._link.unlink()
            self._link = None
        for view in (self.timeline, self.inspector, self.sockets):
            view.close()
        super().close()


def dashboard(lab: Any) -> Dashboard:
    return Dashboard(lab)
