"""Live views over a lab's trace (DESIGN.md §8): the timeline, the inspector, the sockets, and the
dashboard ``lab.show()`` puts them in. They render synced traits computed by ``dolab.views``; the
drawing is plain ESM beside this file (anywidget, no build step).
"""

from __future__ import annotations

from .dashboard import Dashboard, dashboard
from .inspector import Inspector
from .sockets import Sockets
from .timeline import Timeline

__all__ = ["Dashboard", "Inspector", "Sockets", "Timeline", "dashboard"]
