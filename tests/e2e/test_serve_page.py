"""A browser on a served page: the chat Worker's HTML at `/` opens a WebSocket to its room, and
broadcasts reach the page, its own and another client's (no JupyterLab needed).

The lab and its aiohttp server run on their own asyncio loop in a thread: tests under tests/e2e
use Playwright's sync API in the main thread (see conftest.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from websockets.sync.client import connect

from dolab import Lab
from dolab.cli import bind_defaults, load_module

from .lab_page import screenshot

CHAT = Path(__file__).resolve().parents[1] / "fixtures" / "chat.py"
T = 30_000  # ms


class ServedLab:
    """The chat module served by ``lab.serve(port=0)`` on a loop in a background thread."""

    def __init__(self) -> None:
        self.url = ""
        self.members: list[str] = []
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="dolab-serve", daemon=True)

    def __enter__(self) -> ServedLab:
        self._thread.start()
        if not self._ready.wait(60) or self._error is not None:
            raise RuntimeError(f"the lab did not start serving: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def members_of(self, room: str) -> list[str]:
        """The room's members, asked over RPC on the lab's own loop."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._members(room), self._loop)
        return future.result(30)

    async def _members(self, room: str) -> list[str]:
        return await self._lab.env.CHAT_ROOM.getByName(room).members()  # type: ignore[no-any-return]

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # noqa: BLE001 - reported by __enter__
            self._error = error
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._lab = Lab(name="chat", path=None)
        bind_defaults(self._lab, load_module(CHAT), str(CHAT))
        server = await self._lab.serve(port=0)
        self.url = server.url
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await server.close()
            self._lab.close()


@pytest.fixture
def served() -> Iterator[ServedLab]:
    with ServedLab() as lab:
        yield lab


def test_a_served_page_shows_broadcasts_over_its_websocket(browser: Any,
                                                           served: ServedLab) -> None:
    context = browser.new_context()
    context.set_default_timeout(T)
    page = context.new_page()
    try:
        page.goto(served.url + "?room=lobby&name=page")
        expect(page.locator("#status")).to_have_text("connected")
        assert served.members_of("lobby") == ["page"]

        page.locator("#text").fill("hello from the browser")
        page.locator("#text").press("Enter")
        expect(page.locator("#messages li")).to_have_text(["page: hello from the browser"])

        with connect(served.url.replace("http", "ws") + "room/lobby?name=python") as other:
            other.send("hello from python")
            assert other.recv(timeout=30) == "python: hello from python"
        expect(page.locator("#messages li")).to_have_text(
            ["page: hello from the browser", "python: hello from python"])
        screenshot(page, "serve-page")
    finally:
        context.close()
