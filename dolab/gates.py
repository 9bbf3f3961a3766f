"""Input and output gates (spec §7; workerd's io-gate.h in substance).

**Input gate** — while locked, no event is delivered to the object: no new request from its mailbox,
no timer callback, no reply to an outbound call. It is locked by the constructor, by
``blockConcurrencyWhile`` callbacks and by ``transaction()`` closures. The holder's own work (the
callback and whatever it awaits) still runs: a holder is a ``Critical`` token carried in a
context variable, and waiters carrying a token in the holder stack pass.

Storage operations need no lock: they finish before returning (see ``storage.py``), so nothing can
interleave with them.

**Output gate** — a result, Response, outgoing call or WebSocket send waits until the writes made
before it are committed. Writes are numbered by the lab's commit epoch: a write made while epoch
``n`` is open is durable once commit ``n`` finished. ``OutputGate.wait(epoch)`` returns at once when
that commit is done, otherwise waits for it (or raises the commit's error).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from typing import Callable

MAX_BCW_DEPTH = 64


class Critical:
    """One blockConcurrencyWhile/transaction/constructor section; ``depth`` counts nesting."""

    __slots__ = ("depth", "parent", "label")

    def __init__(self, parent: Critical | None, label: str) -> None:
        self.parent = parent
        self.depth: int = 1 if parent is None else parent.depth + 1
        self.label = label

    def chain(self) -> list[Critical]:
        node: Critical | None = self
        out = []
        while node is not None:
            out.append(node)
            node = node.parent
        return out


current_critical: contextvars.ContextVar[Critical | None] = contextvars.ContextVar(
    "dolab_critical", default=None
)


class InputGate:
    __slots__ = ("_holders", "_waiting", "_on_open")

    def __init__(self, on_open: Callable[[], None]) -> None:
        self._holders: list[Critical] = []
        self._waiting: list[Callable[[], None]] = []  # few at a time; an empty deque is 10× larger
        self._on_open = on_open  # the host pumps its mailbox when the gate opens

    @property
    def locked(self) -> bool:
        return bool(self._holders)

    def admits(self, token: Critical | None) -> bool:
        """True when a continuation carrying ``token`` may run now."""
        if not self._holders:
            return True
        return token is not None and any(h in self._holders for h in token.chain())

    def lock(self, token: Critical) -> None:
        self._holders.append(token)

    def unlock(self, token: Critical) -> None:
        if token in self._holders:
            self._holders.remove(token)
        if not self._holders:
            self._release_waiting()

    def defer(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the gate opens (a timer or reply that arrived while locked)."""
        self._waiting.append(callback)

    def _release_waiting(self) -> None:
        while self._waiting and not self._holders:
            self._waiting.pop(0)()
        if not self._holders:
            self._on_open()

    def clear(self) -> None:
        self._holders.clear()
        self._waiting.clear()

    async def wait_open(self, token: Critical | None) -> None:
        """Suspend until a continuation carrying ``token`` may run."""
        while not self.admits(token):
            future = asyncio.get_running_loop().create_future()
            self.defer(functools.partial(resolve, future))
            await future


def resolve(future: asyncio.Future[None]) -> None:
    """Resolve ``future`` with None unless it is already done (a timer's or a gate's callback)."""
    if not future.done():
        future.set_result(None)


class OutputGate:
    """Commit epochs shared by all objects of a lab (group commit)."""

    def __init__(self) -> None:
        self.epoch = 1           # the epoch writes are currently assigned to
        self.committed = 0       # the last epoch whose commit finished
        self._waiters: dict[int, asyncio.Future[None]] = {}

    def durable(self, epoch: int) -> bool:
        return epoch <= self.committed

    def wait(self, epoch: int) -> asyncio.Future[None]:
        future = self._waiters.get(epoch)
        if future is None:
            future = self._waiters[epoch] = asyncio.get_running_loop().create_future()
        return future

    def begin_commit(self) -> int:
        """Close the open epoch (its writes are being committed) and open the next one."""
        closing = self.epoch
        self.epoch += 1
        return closing

    def finish_commit(self, epoch: int, error: BaseException | None = None) -> None:
        self.committed = max(self.committed, epoch)
        future = self._waiters.pop(epoch, None)
        if future is not None and not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
                future.exception()  # retrieved: a failed commit is reported through the hosts
