"""``ctx``: the DurableObjectState handed to a Durable Object's constructor (spec §4)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, NoReturn

from . import errors
from .host import DurableObjectAbort
from .storage import DurableObjectStorage

if TYPE_CHECKING:
    from .host import ObjectHost
    from .ids import DurableObjectId


class DurableObjectState:
    """Minted by the lab for each instance; constructing one by hand raises TypeError."""

    def __init__(self, host: ObjectHost, generation: int, incarnation: int,
                 object_id: DurableObjectId | None = None) -> None:
        self._host = host
        self.id = object_id if object_id is not None else host.id
        self.storage = DurableObjectStorage(host, (generation, incarnation))
        from . import websocket

        websocket.registry(host)  # sockets outlive instances; a reopened lab drops stale records

    def blockConcurrencyWhile(self, callback: Callable[[], Any]) -> Awaitable[Any]:
        """Run ``callback`` while no other event is delivered; already running when returned."""
        return self._host.block_concurrency_while(callback)

    def waitUntil(self, awaitable: Awaitable[Any]) -> None:
        """Keep the instance in memory until ``awaitable`` settles (it does not delay responses)."""
        self._host.keep_alive(awaitable)

    def abort(self, reason: str | None = None, options: dict[str, Any] | None = None) -> NoReturn:
        """Reset the object now: uncommitted writes are dropped, callers get ``reason`` (B29)."""
        message = errors.ABORT_DEFAULT if reason is None else str(reason)
        retry = True if options is None else bool(options.get("retryAlarm", True))
        self._host.abort_alarm_retry = retry
        self._host.reset(errors.DurableObjectReset(message))
        raise DurableObjectAbort(message)

    # WebSocket Hibernation API: implemented in websocket.py over the host's socket registry.
    def __getattr__(self, name: str) -> Any:
        from . import websocket

        method = websocket.ctx_method(self._host, name)
        if method is None:
            raise AttributeError(f"'DurableObjectState' object has no attribute {name!r}")
        return method
