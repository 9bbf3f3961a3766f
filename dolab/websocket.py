"""WebSockets (placeholder until the WebSocket module lands)."""

from __future__ import annotations

from typing import Any


class WebSocketPair:
    pass


class WebSocketRequestResponsePair:
    def __init__(self, request: str, response: str) -> None:
        self.request = request
        self.response = response


def ctx_method(host: Any, name: str) -> Any:
    return None
