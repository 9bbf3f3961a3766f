"""dolab: Cloudflare Durable Objects, hosted in a Jupyter kernel (or any asyncio program).

Platform names keep Cloudflare's spelling (``DurableObject``, ``Response``, ``fetch``, ``Date``,
``scheduler``) so code ports to Python Workers by changing its imports; the lab's own controls are
snake_case (``Lab``, ``lab.advance``…).
"""

from __future__ import annotations

from typing import Any

from .errors import (
    DataCloneError, DOMException, DurableObjectError, DurableObjectOverloaded, DurableObjectReset,
    RangeError,
)
from .host import DurableObjectAbort
from .http import Headers, Request, Response
from .lab import Lab
from .object import DurableObject, WorkerEntrypoint
from .outbound import fetch
from .timers import Date, scheduler
from .websocket import WebSocketPair, WebSocketRequestResponsePair

__version__ = "0.1.0"

__all__ = [
    "DataCloneError",
    "Date",
    "DOMException",
    "DurableObject",
    "DurableObjectAbort",
    "DurableObjectError",
    "DurableObjectOverloaded",
    "DurableObjectReset",
    "Headers",
    "Lab",
    "RangeError",
    "Request",
    "Response",
    "WebSocketPair",
    "WebSocketRequestResponsePair",
    "WorkerEntrypoint",
    "fetch",
    "load_ipython_extension",
    "scheduler",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext dolab``: register the magics and put ``lab`` and ``env`` in the namespace."""
    from .magics import load

    load(ipython)
