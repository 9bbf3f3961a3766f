"""The sockets widget: simulated WebSocket clients as cards, each with the messages it received
(and sent), a send box, and buttons to close it (a clean Close frame) or drop it (it vanishes
without one). "Add client" opens another with ``await lab.connect(url)``.

Browser actions arrive as custom messages and run the same Python methods tests call
(``add_client``, ``send``, ``close_client``, ``drop_client``); the asynchronous one runs as a
task on the running loop. Cards are recomputed by ``dolab.views.client_card``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import traitlets

from .. import trace as t
from .. import views
from ..trace import Event
from ._live import LiveWidget, assets, running_loop

DEFAULT_URL = "ws://localhost:8787/ws"


@dataclass
class _Tracked:
    client: Any
    url: str
    sent: list[tuple[int, Any]] = field(default_factory=list)
    dropped: bool = False


class Sockets(LiveWidget):
    """``Sockets(lab, url=…)``: a card for every simulated client of the lab (``lab.ws_clients``:
    opened here, or with ``await lab.connect(url)`` in a cell)."""

    _esm, _css = assets("sockets")

    url = traitlets.Unicode(DEFAULT_URL).tag(sync=True)
    clients = traitlets.List(traitlets.Dict()).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    busy = traitlets.Bool(False).tag(sync=True)

    def __init__(self, lab: Any, url: str | None = None, *, live: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(url=url or _last_url(lab) or DEFAULT_URL, **kwargs)
        self.lab = lab
        self._tracked: dict[str, _Tracked] = {}
        self._count = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listen(lab.trace, live)
        self.on_msg(self._on_browser)
        self.refresh()

    # ---- the clients ----------------------------------------------------------------------------

    def track(self, client: Any, url: str | None = None) -> str:
        """Show ``client`` (from ``await lab.connect(url)``) as a card; returns its card id."""
        cid = self._add(client, url)
        self.refresh()
        return cid

    def _add(self, client: Any, url: str | None) -> str:
        for cid, tracked in self._tracked.items():
            if tracked.client is client:
                return cid
        self._count += 1
        cid = f"client {self._count}"
        self._tracked[cid] = _Tracked(client, url or str(getattr(client, "url", "") or ""))
        return cid

    async def connect(self, url: str | None = None) -> str:
        """Open a client with ``lab.connect`` and show it; returns its card id."""
        target = url or self.url
        client = await self.lab.connect(target)
        return self.track(client, target)

    def add_client(self, url: str | None = None) -> asyncio.Task[str | None]:
        """The "Add client" button: ``connect`` as a task on the running loop."""
        loop = running_loop()
        if loop is None:
            raise RuntimeError("Sockets.add_client() needs a running event loop (a Jupyter "
                               "kernel or asyncio.run); use `await sockets.connect(url)`.")
        self.busy, self.error = True, ""  # the button shows it at once
        task = loop.create_task(self._connect_reporting(url))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _connect_reporting(self, url: str | None) -> str | None:
        try:
            return await self.connect(url)
        except Exception as error:  # noqa: BLE001 - shown on the widget: a button has no caller
            self.error = f"{type(error).__name__}: {error}"
            return None
        finally:
            self.busy = False

    def client(self, cid: str) -> Any:
        return self._tracked[cid].client

    def send(self, cid: str, message: Any) -> None:
        tracked = self._tracked[cid]
        tracked.sent.append((len(self._received(tracked)), message))
        self._act(lambda: tracked.client.send(message))

    def close_client(self, cid: str, code: int = 1000, reason: str = "") -> None:
        self._act(lambda: self._tracked[cid].client.close(code, reason))

    def drop_client(self, cid: str) -> None:
        tracked = self._tracked[cid]
        tracked.dropped = True
        self._act(tracked.client.drop)

    def _act(self, action: Any) -> None:
        self.error = ""
        try:
            action()
        except Exception as error:  # noqa: BLE001 - the browser shows it; nothing to raise to
            self.error = f"{type(error).__name__}: {error}"
        self.refresh()

    # ---- browser messages and refresh -----------------------------------------------------------

    def _on_browser(self, widget: Any, content: dict[str, Any], buffers: Any) -> None:
        action, cid = content.get("action"), str(content.get("client", ""))
        if action == "add":
            self.add_client(content.get("url") or None)
        elif cid not in self._tracked:
            self.error = f"no client {cid!r}"
        elif action == "send":
            self.send(cid, str(content.get("text", "")))
        elif action == "close":
            self.close_client(cid)
        elif action == "drop":
            self.drop_client(cid)

    def _on_event(self, event: Event) -> None:
        if self._tracked or event.kind == t.WS_OPEN:
            self._throttle.poke()

    def refresh(self) -> None:
        """Recompute the cards now."""
        self._throttle.run()

    def _update(self) -> None:
        for client in list(getattr(self.lab, "ws_clients", ())):  # opened in cells too
            if not any(tracked.client is client for tracked in self._tracked.values()):
                self._add(client, None)
        self.clients = [
            views.client_card(cid, tracked.url, views.client_state(tracked.client,
                                                                    tracked.dropped),
                              self._received(tracked), tracked.sent,
                              close=views.close_text(tracked.client))
            for cid, tracked in self._tracked.items()]

    @staticmethod
    def _received(tracked: _Tracked) -> list[Any]:
        return list(getattr(tracked.client, "messages", ()))

    def __repr__(self) -> str:  # stable text/plain output (nbval compares it)
        count = len(self.clients)
        return f"<Sockets: {count} client{'s' if count != 1 else ''}>"


def _last_url(lab: Any) -> str | None:
    """The URL the last simulated client connected to: what "add client" most likely wants."""
    clients = list(getattr(lab, "ws_clients", ()))
    return str(getattr(clients[-1], "url", "")) or None if clients else None
