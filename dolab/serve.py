"""Serve the lab's Worker to real clients: HTTP and WebSockets on 127.0.0.1, with aiohttp
(DESIGN.md §7, §12).

``server = await lab.serve(port=8787)`` starts an aiohttp server *on the running loop* (the
kernel's in Jupyter) and returns at once; cells keep working while it serves, and what it serves
is the lab itself: the same Worker, the same Durable Objects, the same storage and trace as
``lab.fetch`` and ``lab.connect``. ``port=0`` picks a free port (``server.port``, ``server.url``);
``await server.close()`` stops it.

Each HTTP request becomes a :class:`dolab.Request` dispatched through the Worker's ``fetch``
(under the virtual clock, lab time auto-jumps while it runs, as for ``lab.fetch``). A 101
response with a WebSocket upgrades the connection, and a :class:`RealClient` takes the place of
a simulated client on the end the Worker returned::

    browser ⇄ aiohttp WebSocketResponse ⇄ RealClient ⇄ SocketEnd (the object's server socket)

so the object's handlers (``webSocketMessage``… with the Hibernation API, or listeners) run as
for ``lab.connect``, hibernation included. Incoming messages over 32 MiB are refused with close
code 1009 and the object gets its ``webSocketError`` (spec §9.3, §12).

Only loopback by default: any other ``host`` must be asked for explicitly and prints a warning,
since whoever reaches the port can call the Worker.
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys
import traceback
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .http import Request, Response
from .websocket import (
    ABNORMAL,
    DROP,
    MAX_MESSAGE,
    TOO_LARGE_CODE,
    ClientWebSocket,
    Close,
    ReadyState,
    couple,
)
from .worker import dispatch

if TYPE_CHECKING:
    from .lab import Lab

MAX_BODY = 100 * 1024 * 1024  # Cloudflare's request body limit on the Free and Pro plans
NO_CODE = 1005                # dolab's Close(1005) is a Close frame without a code
GOING_AWAY = 1001
EXPOSED = (
    "Warning: serving the lab on {host}:{port}, not only on this machine's loopback: anyone who "
    "can reach this address can call your Worker and its Durable Objects."
)
WORKER_THREW = "Worker threw exception: {error}"
NOT_UPGRADE = (
    "The Worker answered a request without `Upgrade: websocket` with a 101 WebSocket response."
)
LAB_CLOSED = "The lab is closed."
HOP_BY_HOP = frozenset({"connection", "content-length", "keep-alive", "transfer-encoding",
                        "upgrade"})


def is_loopback(host: str) -> bool:
    """``localhost`` or an address in 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def serve(lab: Lab, port: int = 8787, host: str = "127.0.0.1") -> Server:
    """Start serving the lab's Worker on ``host:port`` (``port=0``: a free one) and return the
    running :class:`Server`. A host that is not loopback prints a warning."""
    gateway = _Gateway(lab)
    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_route("*", "/{path:.*}", gateway.handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    server = Server(lab, runner, gateway, host, _bound_port(runner))
    if not is_loopback(host):
        print(EXPOSED.format(host=host, port=server.port), file=sys.stderr)
    return server


def _bound_port(runner: web.AppRunner) -> int:
    address = runner.addresses[0]
    return int(address[1])


class Server:
    """A running ``lab.serve``: ``host``, ``port``, ``url``, ``connections`` (open WebSockets)
    and ``await close()``. Also an async context manager."""

    def __init__(self, lab: Lab, runner: web.AppRunner, gateway: _Gateway, host: str,
                 port: int) -> None:
        self.lab = lab
        self.host = host
        self.port = port
        self._runner = runner
        self._gateway = gateway
        self.closed = False

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    @property
    def connections(self) -> int:
        return len(self._gateway.clients)

    async def close(self) -> None:
        """Close the WebSockets (code 1001; the objects see them vanish) and stop listening."""
        if self.closed:
            return
        self.closed = True
        await asyncio.gather(*(c.shutdown() for c in list(self._gateway.clients)))
        await self._runner.cleanup()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.connections} WebSockets open"
        return f"<dolab Server {self.url} ({state})>"


class _Gateway:
    """The aiohttp handler: an HTTP request in, the Worker's Response out (or an upgrade)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.clients: set[RealClient] = set()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if self.lab.closed:
            return web.Response(status=503, text=LAB_CLOSED)
        try:
            incoming = Request(str(request.url), method=request.method,
                               headers=list(request.headers.items()),
                               body=(await request.read()) or None)
        except TypeError as error:  # e.g. a GET with a body: the Fetch API refuses it
            return web.Response(status=400, text=str(error))
        try:
            response = await self.lab.drive(dispatch(self.lab, incoming))
            if not isinstance(response, Response):
                raise TypeError(f"The Worker's fetch() must return a Response, got {response!r}.")
        except Exception as error:  # noqa: BLE001 - the Worker's error is the client's 500
            traceback.print_exc(file=sys.stderr)
            return web.Response(status=500, text=WORKER_THREW.format(error=_describe(error)))
        if response.status == 101:
            return await self._upgrade(request, response)
        return web.Response(status=response.status, reason=response.status_text or None,
                            headers=_headers(response), body=response.body)

    async def _upgrade(self, request: web.BaseRequest, response: Response) -> web.StreamResponse:
        if (request.headers.get("Upgrade") or "").lower() != "websocket":
            return web.Response(status=500, text=WORKER_THREW.format(error=NOT_UPGRADE))
        protocol = response.headers.get("sec-websocket-protocol")
        # max_msg_size: aiohttp refuses a frame of max_msg_size bytes or more, so this admits
        # exactly 32 MiB (spec §12) and answers anything larger with close code 1009.
        ws = web.WebSocketResponse(autoclose=False, max_msg_size=MAX_MESSAGE + 1, timeout=5.0,
                                   protocols=(protocol,) if protocol else ())
        await ws.prepare(request)
        url = str(request.url.with_scheme("ws"))
        client = _couple(self.lab, url, response.web_socket)
        self.clients.add(client)
        try:
            await client.run(ws, request)
        finally:
            self.clients.discard(client)
        return ws


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _headers(response: Response) -> list[tuple[str, str]]:
    return [(name, value) for name, value in response.headers.items() if name not in HOP_BY_HOP]


def _couple(lab: Lab, url: str, socket: Any) -> RealClient:
    """Couple a :class:`RealClient` to the end the Worker returned, as ``lab.connect`` couples a
    simulated one. ``websocket.couple`` makes a ClientWebSocket; the bridge takes its class (the
    same object, so the lab's list of clients and the trace's ws-open event stay right) until
    ``couple`` accepts a client class."""
    client = couple(lab, url, socket)
    client.__class__ = RealClient
    assert isinstance(client, RealClient)
    client.bridge()
    return client


class RealClient(ClientWebSocket):
    """A real WebSocket standing where a simulated client would: what the object sends goes to
    the network, what the network sends goes to the object.

    Frames from the object arrive through ``receive_frame`` (the peer protocol of
    :class:`~dolab.websocket.ClientWebSocket`) and are written by one task, in order. Frames from
    the network enter the server end as a browser's would, except that a peer's Close passes as
    it came (a real peer may send an empty Close) and an oversized message is refused by aiohttp
    before it is read (the object gets ``webSocketError``, as for an oversized simulated one).
    """

    _frames: asyncio.Queue[Any]
    _done: asyncio.Event
    _ws: web.WebSocketResponse | None
    _request: web.BaseRequest | None

    def bridge(self) -> None:
        """Start bridging: what the object sent before the 101 went out is sent first."""
        self._frames = asyncio.Queue()
        self._ws = self._request = None
        self._done = asyncio.Event()
        for message in self.messages:
            self._frames.put_nowait(message)
        self.messages = []  # a real client keeps no history: the browser has it
        if self.closed:
            self._frames.put_nowait(DROP if self.close_code == ABNORMAL else
                                    Close(self.close_code or NO_CODE, self.close_reason or ""))

    # ---- from the object --------------------------------------------------------------------

    def receive_frame(self, frame: Any) -> None:
        if self.closed:
            return
        if isinstance(frame, (str, bytes)):
            self._frames.put_nowait(frame)
            return
        super().receive_frame(frame)  # a Close or a drop: the client's state follows
        self._frames.put_nowait(frame)

    def _closed(self, code: int, reason: str, clean: bool) -> None:
        """Also called by ``lab.close()`` (every client loses its connection): the real one is
        then dropped too."""
        super()._closed(code, reason, clean)
        if code == ABNORMAL and getattr(self, "_frames", None) is not None:
            self._frames.put_nowait(DROP)

    async def _to_network(self, ws: web.WebSocketResponse, request: web.BaseRequest) -> None:
        while True:
            frame = await self._frames.get()
            try:
                if isinstance(frame, str):
                    await ws.send_str(frame)
                elif isinstance(frame, bytes):
                    await ws.send_bytes(frame)
                elif isinstance(frame, Close):
                    code = 1000 if frame.code == NO_CODE else frame.code
                    await ws.close(code=code, message=frame.reason.encode("utf-8"))
                    return
                else:  # the runtime dropped the socket: the TCP connection goes, no Close frame
                    _abort(request)
                    return
            except ConnectionError:
                self._lost()
                return

    # ---- from the network -------------------------------------------------------------------

    async def run(self, ws: web.WebSocketResponse, request: web.BaseRequest) -> None:
        """Bridge until the connection ends."""
        self._ws, self._request = ws, request
        writer = asyncio.ensure_future(self._to_network(ws, request))
        try:
            await self._from_network(ws)
            await writer  # the object's Close (or drop) ends the connection
        finally:
            if not writer.done():
                writer.cancel()
            if not self.closed:
                self._lost()
            self._done.set()

    async def _from_network(self, ws: web.WebSocketResponse) -> None:
        while not self.closed:
            message = await ws.receive()
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                self._server.receive_frame(message.data)
            elif message.type is WSMsgType.CLOSE:
                self._peer_closed(message.data, message.extra or "")
                return
            elif message.type is WSMsgType.ERROR:
                self._failed(message.data)
                return
            elif message.type in (WSMsgType.CLOSED, WSMsgType.CLOSING):
                if message.type is WSMsgType.CLOSED:
                    self._lost()
                return

    def _peer_closed(self, code: int | None, reason: str) -> None:
        """The peer sent a Close: pass it to the object; its reply (the runtime's, or the
        handler's ``ws.close``) comes back through ``receive_frame`` and closes the socket."""
        self._state = ReadyState.CLOSING
        self._server.receive_frame(Close(code or NO_CODE, reason))

    def _failed(self, error: Any) -> None:
        if getattr(error, "code", None) == TOO_LARGE_CODE:  # aiohttp answered with 1009 already
            self._server._on_too_large(_size_of(error))
            if not self.closed:
                self._closed(TOO_LARGE_CODE, "Message is too large", False)
            self._frames.put_nowait(DROP)  # ends the writer: the connection is closed
        else:
            self._lost()

    def _lost(self) -> None:
        """The connection went without a Close frame: the object sees code 1006."""
        if not self.closed:
            self.drop()
        self._frames.put_nowait(DROP)

    async def shutdown(self, timeout: float = 5.0) -> None:
        """The server stops: the peer gets 1001, the object sees the connection vanish."""
        if not self.closed:
            self._frames.put_nowait(Close(GOING_AWAY, "server closing"))
            self.drop()
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:
            if self._request is not None:
                _abort(self._request)

    def __repr__(self) -> str:
        state = self._state.name
        if self.closed:
            state += f" {self.close_code}"
        return f"<RealClient {self.url} {state}>"


def _size_of(error: Any) -> int:
    """The size aiohttp reports in "Message size N exceeds limit M" (at least the limit + 1)."""
    words = str(error).split()
    sizes = [int(w) for w in words if w.isdigit()]
    return sizes[0] if sizes else MAX_MESSAGE + 1


def _abort(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


__all__ = ["RealClient", "Server", "is_loopback", "serve"]
