"""Outbound ``fetch`` (like ``from workers import fetch``): requests from Workers and objects go to
services registered with ``lab.service(prefix, handler, latency=…)``; nothing reaches the network
unless the user registers a handler that does.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable

from .gates import resolve
from .host import current_host
from .http import Request, Response, absolute_url


@dataclass
class Service:
    prefix: str
    handler: Callable[..., Any]
    latency: float = 0.0


class NoServiceError(ConnectionError):
    """dolab's own: no registered service answers this URL (objects have no real network)."""


async def fetch(input: Any, init: dict[str, Any] | None = None, **kwargs: Any) -> Response:
    """Send a request to a registered service; waits ``latency`` seconds of lab time."""
    from .lab import current_lab

    lab = current_lab()
    lab.attach_loop()
    options = {**(init or {}), **kwargs}
    request = input if isinstance(input, Request) and not options else Request(
        input if isinstance(input, Request) else absolute_url(str(input)), **options)
    service = _find(lab.services, request.url)
    host = current_host.get()
    if host is None:
        return await lab.drive(_call(lab, service, request))  # type: ignore[no-any-return]
    await host.output_gate_open()  # why: a subrequest must not leave before earlier writes
    return await lab.external(host, _call(lab, service, request),  # type: ignore[no-any-return]
                              f"fetch {request.url}")


def _find(services: list[Service], url: str) -> Service:
    matches = [s for s in services if url.startswith(s.prefix)]
    if not matches:
        known = ", ".join(s.prefix for s in services) or "none"
        raise NoServiceError(
            f"No service answers {url} (registered: {known}). dolab objects have no real "
            'network: register one with lab.service("https://api.example.com/", handler).')
    return max(matches, key=lambda s: len(s.prefix))


async def _call(lab: Any, service: Service, request: Request) -> Response:
    if service.latency:
        future = asyncio.get_running_loop().create_future()
        lab.clock.call_later(service.latency, functools.partial(resolve, future),
                             f"latency {service.prefix}")
        await future
    result = service.handler(request)
    if inspect.isawaitable(result):
        result = await result
    if not isinstance(result, Response):
        result = Response.json(result) if isinstance(result, (dict, list)) else Response(
            str(result))
    return result
