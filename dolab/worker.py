"""The Worker in front of the objects: ``lab.fetch`` dispatches through its ``fetch``."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from . import trace
from .host import current_request
from .http import Request, Response, absolute_url

if TYPE_CHECKING:
    from .lab import Lab


class WorkerContext:
    """The Worker's ``ctx``: ``waitUntil`` and ``passThroughOnException``."""

    def __init__(self, lab: Lab) -> None:
        self._lab = lab

    def waitUntil(self, awaitable: Any) -> None:
        import asyncio

        future = asyncio.ensure_future(awaitable)
        future.add_done_callback(lambda f: f.cancelled() or f.exception())

    def passThroughOnException(self) -> None:
        """Accepted for compatibility; there is no origin behind the lab."""


async def dispatch(lab: Lab, url: Any, **init: Any) -> Response:
    __tracebackhide__ = True
    cls = lab.worker_cls
    if cls is None:
        raise RuntimeError("No Worker is bound: define a WorkerEntrypoint subclass and call "
                           "lab.worker(MyWorker) (or use the %%worker cell magic).")
    options = {k: v for k, v in init.items() if v is not None}
    request = url if isinstance(url, Request) and not options else Request(
        url if isinstance(url, Request) else absolute_url(str(url)), **options)
    rid = lab.next_request_id()
    token = current_request.set(rid)
    lab.trace.record("worker", trace.DELIVERED, rid, method=f"{request.method} {request.url}")
    try:
        worker = cls(WorkerContext(lab), lab.env)
        result = worker.fetch(request)
        if inspect.isawaitable(result):
            result = await result
    except BaseException as error:
        lab.trace.record("worker", trace.ERROR, rid, error=f"{type(error).__name__}: {error}")
        raise
    finally:
        current_request.reset(token)
    lab.trace.record("worker", trace.FINISHED, rid, status=getattr(result, "status", None))
    return result  # type: ignore[no-any-return]
