"""WebSockets (spec §9): ``WebSocketPair``, the server-side ``WebSocket`` with the standard and the
Hibernation APIs, the per-object socket registry that outlives instances, and simulated clients.

The pieces::

    ClientWebSocket  ─frames─▶  SocketEnd (server end)  ─events─▶  the object's mailbox
      (lab.connect)  ◀─frames─     │  outbox: sends wait for the output gate
                                   └─ WebSocket handles (one per instance incarnation)

- A ``WebSocketPair`` makes two ``SocketEnd``s wired to each other. The object accepts one end
  (``ws.accept()`` or ``ctx.acceptWebSocket(ws, tags)``) and returns the other in
  ``Response(None, status=101, web_socket=client)``; ``lab.connect`` then *couples* that returned
  end to a :class:`ClientWebSocket`, the simulated browser. Frames that arrive before an end is
  accepted or coupled wait in its inbox, as they wait in workerd's pipe.
- An end's life is the enum :class:`Mode` (workerd's native states): AWAITING → ACCEPTED
  (standard API) | HIBERNATABLE | RELEASED (returned in a Response). Closing is two flags, as in
  workerd: ``closed_outgoing`` (we sent a Close) and ``closed_incoming`` (we received one, or the
  peer vanished); ``readyState`` is derived from them.
- Events for an object's sockets (message, close, error) enter the object's mailbox like any
  event, so they respect the input gate and E-order, and a hibernated object is constructed again
  by the next one. A Worker's own sockets (no object) call their listeners at once.
- Sends from an object wait for the output gate: each frame carries the sender's confirmed write
  epoch, and the outbox releases frames in order once their epoch is durable (B62 for sockets).
- Hibernatable sockets live in the host's :class:`SocketRegistry`, which outlives instances. Their
  durable part — tags, attachment, auto-response time — is written through the host's write path
  (``ObjectHost.flush_into`` calls :meth:`SocketRegistry.apply`) into ``ObjectRecord.sockets``, and
  read back from there: nothing durable is kept in memory only (DESIGN.md §1.3). The JS-side
  ``WebSocket`` objects are per instance: after hibernation the object gets fresh handles, so fields
  set on a handle are lost, as on Cloudflare; ``serializeAttachment`` is what survives.

Choices where the spec is silent (the README's "Differences from Cloudflare" lists them): a reset
closes the object's sockets with code 1011 and ``errors.WS_RESET``; ``lab.close()`` drops every
client (code 1006) and a reopened lab deletes the socket records it finds (connections cannot
survive the process); ``getWebSockets()`` lists sockets in accept order; inside ``webSocketClose``
``readyState`` is CLOSED (3) once the runtime has replied (the docs' value; local workerd shows 2).
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import itertools
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from . import errors, trace, values
from .host import current_host, current_request
from .http import Headers, Request, Response, absolute_url

if TYPE_CHECKING:
    from .host import ObjectHost
    from .lab import Lab
    from .store import ObjectRecord

# ---- texts (spec §9, workerd's web-socket.c++ and actor-state.c++, verbatim) ---------------------

SEND_BEFORE_ACCEPT = (
    "You must call one of accept() or state.acceptWebSocket() on this WebSocket before sending "
    "messages."
)
SEND_AFTER_CLOSE = "Can't call WebSocket send() after close()."
ACCEPT_AFTER_HIBERNATION = "Can't accept() WebSocket after enabling hibernation."
ACCEPT_RELEASED = "Can't accept() WebSocket that was already used in a response."
ALREADY_ACCEPTED = (
    "Cannot call `acceptWebSocket()` if the WebSocket was already accepted via `accept()`"
)
PAIR_NOT_AWAITING = (
    "Cannot call `acceptWebSocket()` on this WebSocket because its pair has already been accepted "
    "or used in a Response."
)
INCOMPATIBLE_STATE = (
    "Tried to make an api::WebSocket hibernatable when it was in an incompatible state."
)
TOO_MANY_TAGS = "a Hibernatable WebSocket cannot have more than 10 tags"
TAG_TOO_LONG = '"{tag}" is longer than the max tag length (256 characters).'
TOO_MANY_SOCKETS = "only 32768 websockets can be accepted on a single Durable Object instance"
ATTACHMENT_TOO_LARGE = (
    "A WebSocket 'attachment' cannot be larger than 16384 bytes.'attachment' was {size} bytes."
)
TAGS_BEFORE_ACCEPT = (
    "you must call 'acceptWebSocket()' before attempting to access the tags of a WebSocket."
)
TAGS_NOT_HIBERNATABLE = "only hibernatable websockets can have tags."
AUTO_REQUEST_TOO_LARGE = (
    "Request cannot be larger than 2048 bytes. A request of size {size} was provided."
)
AUTO_RESPONSE_TOO_LARGE = (
    "Response cannot be larger than 2048 bytes. A response of size {size} was provided."
)
EVENT_TIMEOUT_TOO_LARGE = "Event timeout should not exceed 604800000 ms."
INVALID_CLOSE_CODE = "Invalid WebSocket close code: {code}."
REASON_WITHOUT_CODE = "If you specify a WebSocket close reason, you must also specify a code."
REASON_TOO_LONG = "WebSocket close reason must not be longer than 123 bytes when UTF-8 encoded."
DISCONNECTED = "WebSocket disconnected without sending Close frame."
RETURN_AFTER_ACCEPT = "Can't return WebSocket in a Response after calling accept()."
RETURN_AFTER_HIBERNATION = "Can't return WebSocket in a Response after calling acceptWebSocket()."
RETURN_RELEASED = "Can't return WebSocket that was already used in a response."
UPGRADE_FAILED = (
    "Failed to establish the WebSocket connection: expected server to reply with HTTP status code "
    "101 (switching protocols), but received {status} instead."
)

# dolab's own texts.
UPGRADE_BODY = " The Worker answered: {body!r}"
NOT_A_RESPONSE = "The Worker's fetch() must return a Response, got {value!r}."
NOT_A_SOCKET = "{what} expects a WebSocket (an end of a WebSocketPair), got {value!r}."
NOT_A_MESSAGE = "WebSocket send() takes a str or bytes, not {type}."
NOT_A_PAIR = (
    "setWebSocketAutoResponse() takes a WebSocketRequestResponsePair or None, not {value!r}."
)
BAD_URL = "lab.connect() takes a ws://, wss://, http:// or https:// URL, not {url!r}."
NO_CONSTRUCTOR = (
    "dolab has no outgoing WebSockets (new WebSocket(url)); make a pair with WebSocketPair() "
    "and return one end in a 101 Response."
)
NO_MESSAGE_HANDLER = (
    "{cls} accepted a WebSocket with ctx.acceptWebSocket() but has no webSocketMessage() handler; "
    "define async def webSocketMessage(self, ws, message)."
)
MESSAGE_TOO_LARGE = (
    "WebSocket message is too large: {size} bytes (the limit is 33554432 bytes, 32 MiB)."
)
CLIENT_NOT_OPEN = "WebSocket is already in CLOSING or CLOSED state."
EVENT_TIMED_OUT = (
    "The hibernatable WebSocket event handler ran longer than the event timeout ({ms} ms) set "
    "with setHibernatableWebSocketEventTimeout() and was canceled."
)
RECEIVE_IDLE = (
    "receive() would wait forever: no message is queued for this client and nothing in the lab "
    "is left to run (virtual clock)."
)
RECEIVE_TIMEOUT = "No message arrived within {seconds} s of lab time."
CLOSED_WHILE_RECEIVING = "The WebSocket closed (code {code}{reason}) with no message left to read."

# ---- limits and dates ----------------------------------------------------------------------------

MAX_TAGS = 10
MAX_TAG_BYTES = 256
MAX_HIBERNATABLE = 32_768
MAX_ATTACHMENT = 16_384
MAX_AUTO_RESPONSE = 2_048
MAX_EVENT_TIMEOUT_MS = 604_800_000
MAX_MESSAGE = 32 * 1024 * 1024
MAX_REASON = 123
REASON_LIMIT_DATE = "2026-03-03"      # websocket_close_reason_byte_limit
AUTO_REPLY_DATE = "2026-04-07"        # web_socket_auto_reply_to_close
RESET_CODE = 1011                     # "internal error": the object went away under the socket
ABNORMAL = 1006                       # no Close frame (a drop, a closed lab)
TOO_LARGE_CODE = 1009
HANDLERS = {"message": "webSocketMessage", "close": "webSocketClose", "error": "webSocketError"}
CTX_METHODS = frozenset({
    "acceptWebSocket", "getWebSockets", "getTags", "setWebSocketAutoResponse",
    "getWebSocketAutoResponse", "getWebSocketAutoResponseTimestamp",
    "setHibernatableWebSocketEventTimeout", "getHibernatableWebSocketEventTimeout",
})
_TOKEN = object()
_MISSING: Any = object()
_ids: weakref.WeakKeyDictionary[Any, Iterator[int]] = weakref.WeakKeyDictionary()


class ReadyState(enum.IntEnum):
    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class Mode(enum.Enum):
    """What an end of a pair has become (workerd's ``NativeState``)."""

    AWAITING = "awaiting acceptance or coupling"
    ACCEPTED = "accepted with accept() (standard API)"
    HIBERNATABLE = "accepted with ctx.acceptWebSocket() (Hibernation API)"
    RELEASED = "returned in a Response"


class Close(NamedTuple):
    """A Close frame. Code 1005 means "no code" (an empty Close frame on the wire)."""

    code: int
    reason: str


class _Drop:
    """The peer vanished without a Close frame."""

    def __repr__(self) -> str:
        return "<drop>"


DROP = _Drop()
Message = str | bytes
Frame = str | bytes | Close | _Drop


class Saved(NamedTuple):
    """The durable part of a hibernatable socket (``store.SocketRecord``)."""

    tags: tuple[str, ...]
    attachment: bytes | None
    auto_time: float | None


_NOTHING_SAVED = Saved((), None, None)


# ---- events handed to standard-API listeners -----------------------------------------------------


class MessageEvent:
    type = "message"

    def __init__(self, target: WebSocket, data: Message) -> None:
        self.target = target
        self.data = data

    def __repr__(self) -> str:
        return f"<MessageEvent data={self.data!r}>"


class CloseEvent:
    type = "close"

    def __init__(self, target: WebSocket, code: int, reason: str, wasClean: bool) -> None:
        self.target = target
        self.code = code
        self.reason = reason
        self.wasClean = wasClean

    def __repr__(self) -> str:
        return f"<CloseEvent code={self.code} reason={self.reason!r} wasClean={self.wasClean}>"


class ErrorEvent:
    type = "error"

    def __init__(self, target: WebSocket, error: BaseException) -> None:
        self.target = target
        self.error = error
        self.message = str(error)

    def __repr__(self) -> str:
        return f"<ErrorEvent {self.message!r}>"


# ---- WebSocketPair, WebSocketRequestResponsePair -------------------------------------------------


class WebSocketPair:
    """``WebSocketPair()``: two connected WebSockets, ``pair[0]`` (client) and ``pair[1]`` (server).

    ``client, server = WebSocketPair()`` unpacks; Python Workers spells it
    ``client, server = WebSocketPair.new().object_values()``, which works too.
    """

    def __init__(self) -> None:
        from .lab import current_lab

        lab = current_lab()
        first, second = SocketEnd(lab), SocketEnd(lab)
        first.wire(second)
        self._sockets = (WebSocket(_TOKEN, first), WebSocket(_TOKEN, second))

    @classmethod
    def new(cls) -> WebSocketPair:
        """Python Workers' spelling of ``new WebSocketPair()``."""
        return cls()

    def object_values(self) -> list[WebSocket]:
        """``Object.values(pair)``: ``[client, server]``."""
        return list(self._sockets)

    def __getitem__(self, index: int) -> WebSocket:
        return self._sockets[index]

    def __iter__(self) -> Iterator[WebSocket]:
        return iter(self._sockets)

    def __len__(self) -> int:
        return 2

    def __repr__(self) -> str:
        return f"<WebSocketPair {self._sockets[0]!r}, {self._sockets[1]!r}>"


class WebSocketRequestResponsePair:
    """``WebSocketRequestResponsePair(request, response)`` for ``ctx.setWebSocketAutoResponse``."""

    def __init__(self, request: str, response: str) -> None:
        if not isinstance(request, str) or not isinstance(response, str):
            raise TypeError("WebSocketRequestResponsePair(request, response) takes two strings.")
        self.request = request
        self.response = response

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WebSocketRequestResponsePair):
            return NotImplemented
        return (self.request, self.response) == (other.request, other.response)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"WebSocketRequestResponsePair({self.request!r}, {self.response!r})"


# ---- the server side: one end of a pair ----------------------------------------------------------


class SocketEnd:
    """One end of a WebSocketPair as the runtime sees it. Outlives the instance that accepted it
    (hibernation); the user holds :class:`WebSocket` handles onto it."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.sid: str | None = None          # "ws3", given when accepted
        self.mode = Mode.AWAITING
        self.peer: Any = None                # the other end, then the ClientWebSocket once coupled
        self.twin: SocketEnd | None = None   # the other end of the pair, for ever
        self.host: ObjectHost | None = None  # the object that accepted it (None: a Worker)
        self.closed_outgoing = False
        self.closed_incoming = False
        self.aborted = False                 # the peer vanished, or the message was too large
        self.dead = False                    # the runtime dropped it (reset, eviction): inert
        self.retired = False                 # its close/error event ran: out of the registry
        self.inbox: deque[Frame] = deque()
        self.outbox: deque[tuple[int, Message | Close, str | None, str]] = deque()
        self._gated = False
        self.listeners: dict[str, list[Callable[[Any], Any]]] = {}
        self.attachment: bytes | None = None  # non-hibernatable sockets keep it in memory only
        self.handle: WebSocket | None = None
        self.keep_incarnation: int | None = None

    def wire(self, other: SocketEnd) -> None:
        self.peer, other.peer = other, self
        self.twin, other.twin = other, self

    # ---- identity and state -----------------------------------------------------------------

    @property
    def label(self) -> str:
        return "worker" if self.host is None else self.host.label

    @property
    def ready_state(self) -> ReadyState:
        if (self.closed_incoming and self.closed_outgoing) or self.aborted or self.dead:
            return ReadyState.CLOSED
        if self.closed_incoming or self.closed_outgoing:
            return ReadyState.CLOSING
        return ReadyState.OPEN

    @property
    def accepted(self) -> bool:
        return self.mode in (Mode.ACCEPTED, Mode.HIBERNATABLE)

    @property
    def durable(self) -> bool:
        """Its tags and attachment live in the store (a hibernatable socket still registered)."""
        return self.mode is Mode.HIBERNATABLE and not self.retired and not self.dead

    def registry(self) -> SocketRegistry:
        assert self.host is not None
        return registry(self.host)

    def current_handle(self) -> WebSocket:
        """The handle of the current instance: a hibernated socket gets a fresh one per instance."""
        handle = self.handle
        host = self.host
        stale = (self.mode is Mode.HIBERNATABLE and host is not None and handle is not None
                 and handle._incarnation != host.incarnation)
        if handle is None or stale:
            self.handle = handle = WebSocket(_TOKEN, self)
            handle._incarnation = None if host is None else host.incarnation
        return handle

    def record(self, kind: str, request: str | None = None, **detail: Any) -> None:
        self.lab.trace.record(self.label, kind, request, socket=self.sid, **detail)

    # ---- accepting ----------------------------------------------------------------------------

    def accept_standard(self, host: ObjectHost | None) -> None:
        self._become(Mode.ACCEPTED, host)
        if host is not None:
            registry(host).ends[self.sid or ""] = self
            host.keepalive += 1  # why: a standard-API socket keeps the instance in memory
            self.keep_incarnation = host.incarnation
        self._replay_inbox()

    def accept_hibernatable(self, registry_: SocketRegistry, tags: tuple[str, ...]) -> None:
        self._become(Mode.HIBERNATABLE, registry_.host)
        assert self.sid is not None
        registry_.ends[self.sid] = self
        registry_.save(self.sid, Saved(tags, self.attachment, None))
        self.attachment = None  # from now on the store holds it
        if self.handle is not None:
            self.handle._incarnation = registry_.host.incarnation
        self._replay_inbox()

    def _become(self, mode: Mode, host: ObjectHost | None) -> None:
        if self.mode is not Mode.AWAITING:
            raise RuntimeError(
                f"expected a socket {Mode.AWAITING.value}, got one {self.mode.value}")
        self.mode = mode
        self.host = host
        if host is not None:
            self.lab = host.lab
        self.sid = f"ws{next(_counter(self.lab))}"

    def release(self) -> None:
        """Returned in a 101 Response: this end now stands for the network connection."""
        if self.mode is Mode.RELEASED:
            raise TypeError(RETURN_RELEASED)
        if self.mode is Mode.ACCEPTED:
            raise TypeError(RETURN_AFTER_ACCEPT)
        if self.mode is Mode.HIBERNATABLE:
            raise TypeError(RETURN_AFTER_HIBERNATION)
        self.mode = Mode.RELEASED

    def _replay_inbox(self) -> None:
        while self.inbox and not self.dead:
            self.receive_frame(self.inbox.popleft())

    # ---- incoming frames (from the client) ---------------------------------------------------

    def receive_frame(self, frame: Frame) -> None:
        if self.dead or self.retired:
            return
        if self.mode is Mode.AWAITING or self.mode is Mode.RELEASED:
            self.inbox.append(frame)  # why: frames wait in the pipe until the end is accepted
        elif isinstance(frame, Close):
            self._on_close(frame)
        elif isinstance(frame, _Drop):
            self._on_drop()
        elif not self.closed_incoming:
            self._on_message(frame)

    def _on_message(self, message: Message) -> None:
        size = _size(message)
        if size > MAX_MESSAGE:
            self._on_too_large(size)
        elif not (self.mode is Mode.HIBERNATABLE and self.registry().auto_respond(self, message)):
            self.dispatch("message", message)

    def _on_close(self, frame: Close) -> None:
        if self.closed_incoming:
            return
        self.closed_incoming = True
        by = "client" if not self.closed_outgoing else "client reply"
        self.record(trace.WS_CLOSE, None, code=frame.code, reason=frame.reason, wasClean=True,
                    by=by)
        if not self.closed_outgoing and self.lab.compat_at_least(AUTO_REPLY_DATE):
            self.closed_outgoing = True  # why: web_socket_auto_reply_to_close, the runtime replies
            self.queue(Close(frame.code, frame.reason), gated=False, by="runtime")
        self.dispatch("close", (frame.code, frame.reason, True))

    def _on_drop(self) -> None:
        if self.closed_incoming:
            return
        self.closed_incoming = self.aborted = True
        self.outbox.clear()
        self.record(trace.WS_CLOSE, None, code=ABNORMAL, reason=DISCONNECTED, wasClean=False,
                    by="client")
        self.dispatch("close", (ABNORMAL, DISCONNECTED, False))

    def _on_too_large(self, size: int) -> None:
        """A message over 32 MiB breaks the connection: the client gets 1009, the object an
        error event."""
        self.closed_incoming = self.aborted = True
        self.outbox.clear()
        error = RuntimeError(MESSAGE_TOO_LARGE.format(size=size))
        self.record(trace.WS_CLOSE, None, code=TOO_LARGE_CODE, reason="Message is too large",
                    wasClean=False, by="runtime")
        self.peer.receive_frame(Close(TOO_LARGE_CODE, "Message is too large"))
        self.dispatch("error", error)

    def dispatch(self, kind: str, payload: Any) -> None:
        """Hand an event to the object (through its mailbox) or to a Worker's listeners."""
        after = self.finish if kind != "message" else None
        if self.host is not None:
            self.registry().deliver(self, kind, payload, after)
        else:
            self._dispatch_in_worker(kind, payload, after)

    def _dispatch_in_worker(self, kind: str, payload: Any,
                            after: Callable[[], None] | None) -> None:
        """A Worker's own socket has no mailbox: its listeners run at once; their errors are
        traced, as Cloudflare logs them, and never reach the client."""
        try:
            result = self.run_listeners(kind, payload)
        except Exception as error:  # noqa: BLE001 - a listener's error is traced, not the client's
            self._listener_failed(error)
            result = None
        if not inspect.isawaitable(result):
            if after is not None:
                after()
            return
        task = asyncio.ensure_future(result)
        task.add_done_callback(lambda done: self._listener_done(done, after))

    def _listener_done(self, task: asyncio.Future[Any], after: Callable[[], None] | None) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._listener_failed(task.exception())  # type: ignore[arg-type]
        if after is not None:
            after()

    def _listener_failed(self, error: BaseException) -> None:
        self.record(trace.ERROR, None, error=f"{type(error).__name__}: {error}")

    def run_listeners(self, kind: str, payload: Any) -> Any:
        """Call the standard-API listeners for one event; an awaitable if any of them is async."""
        event = _event(self.current_handle(), kind, payload)
        if kind == "message":
            self.record(trace.WS_MESSAGE, current_request.get(), **_describe(payload))
        pending = []
        for listener in list(self.listeners.get(kind, ())):
            result = listener(event)
            if inspect.isawaitable(result):
                pending.append(result)
        return _await_all(pending) if pending else None

    def finish(self) -> None:
        """The close or error event ran: the socket leaves the registry (hibernation manager)."""
        if self.retired or self.dead:
            return
        if not self.closed_outgoing and not self.aborted:
            # Before web_socket_auto_reply_to_close the handler must close(); if it did not, the
            # runtime drops the connection and the client sees 1006 (spec §9.3).
            self.aborted = True
            self.record(trace.WS_CLOSE, None, code=ABNORMAL, reason="", wasClean=False,
                        by="runtime")
            self.peer.receive_frame(DROP)
        self.retire()

    def retire(self) -> None:
        self.retired = True
        host = self.host
        if host is None:
            return
        sockets = registry(host)
        if sockets.ends.pop(self.sid or "", None) is not None and self.mode is Mode.HIBERNATABLE:
            sockets.forget(self.sid or "")
        if self.mode is Mode.ACCEPTED and self.keep_incarnation == host.incarnation:
            host.keepalive = max(0, host.keepalive - 1)
            self.keep_incarnation = None
            host._maybe_idle()

    def kill(self, code: int, reason: str) -> None:
        """The runtime drops the socket (reset, eviction): the client gets ``code`` and no
        handler runs."""
        if self.dead:
            return
        self.outbox.clear()
        self.dead = True
        if not (self.closed_outgoing and self.closed_incoming) and not self.aborted:
            self.record(trace.WS_CLOSE, None, code=code, reason=reason, wasClean=False,
                        by="runtime")
            self.peer.receive_frame(Close(code, reason) if code != ABNORMAL else DROP)
        self.retired = True

    # ---- outgoing frames (to the client) -------------------------------------------------------

    def queue(self, frame: Message | Close, gated: bool, by: str = "server") -> None:
        """Send ``frame`` once the writes made before it are durable (the output gate); the
        runtime's own frames (auto-responses, close replies) are not gated but keep their turn."""
        host = self.host
        epoch = host.confirmed_epoch if gated and host is not None else 0
        self.outbox.append((epoch, frame, current_request.get(), by))
        self._drain()

    def _drain(self) -> None:
        gate = self.lab.output_gate
        while self.outbox and not self.dead:
            epoch, frame, request, by = self.outbox[0]
            if not gate.durable(epoch):
                if not self._gated:
                    self._gated = True
                    gate.wait(epoch).add_done_callback(self._gate_opened)
                return
            self.outbox.popleft()
            self._transmit(frame, request, by)

    def _gate_opened(self, future: asyncio.Future[None]) -> None:
        self._gated = False
        _retrieved(future)  # a failed commit reset the object, which cleared this outbox
        self._drain()

    def _transmit(self, frame: Message | Close, request: str | None, by: str) -> None:
        if not self.lab.trace.enabled:
            pass  # why: a broadcast sends per socket, and describing a frame is half of a send
        elif isinstance(frame, Close):
            self.record(trace.WS_CLOSE, request, code=frame.code, reason=frame.reason,
                        wasClean=True, by=by)
        elif by != "server":
            self.record(trace.WS_SEND, request, auto=True, **_describe(frame))
        else:  # why: a broadcast records once per socket, so no ** merge and no second encode
            size, text = _summary(frame)
            if text is None:
                self.lab.trace.record(self.label, trace.WS_SEND, request, socket=self.sid,
                                      size=size, binary=True)
            else:
                self.lab.trace.record(self.label, trace.WS_SEND, request, socket=self.sid,
                                      size=size, text=text)
        self.peer.receive_frame(frame)

    def __repr__(self) -> str:
        return f"<SocketEnd {self.sid or 'unaccepted'} {self.mode.name} {self.ready_state.name}>"


# ---- the JS-side handle --------------------------------------------------------------------------


class WebSocket:
    """A WebSocket as the Worker or the object holds it (the server end of a pair).

    Standard API: ``accept()``, ``addEventListener("message" | "close" | "error", fn)``,
    ``send(str | bytes)``, ``close(code, reason)``, ``readyState``. With the Hibernation API the
    object calls ``ctx.acceptWebSocket(ws, tags)`` instead of ``accept()`` and receives the events
    in ``webSocketMessage``/``webSocketClose``/``webSocketError``. Any socket has
    ``serializeAttachment(value)``/``deserializeAttachment()``.
    """

    CONNECTING = ReadyState.CONNECTING
    OPEN = ReadyState.OPEN
    CLOSING = ReadyState.CLOSING
    CLOSED = ReadyState.CLOSED

    def __init__(self, token: object = None, end: SocketEnd | None = None) -> None:
        if token is not _TOKEN or end is None:
            raise TypeError(NO_CONSTRUCTOR)
        self._end = end
        self._incarnation: int | None = None
        if end.handle is None:
            end.handle = self

    @property
    def readyState(self) -> int:
        return int(self._end.ready_state)

    url = None
    protocol = None
    extensions = None

    def accept(self) -> None:
        """Standard API: handle this socket's events with listeners; keeps the object in memory."""
        end = self._end
        if end.mode is Mode.RELEASED:
            raise TypeError(ACCEPT_RELEASED)
        if end.mode is Mode.HIBERNATABLE:
            raise TypeError(ACCEPT_AFTER_HIBERNATION)
        if end.mode is Mode.AWAITING:
            end.accept_standard(current_host.get())

    def addEventListener(self, type: str, listener: Callable[[Any], Any]) -> None:
        if not callable(listener):
            raise TypeError("addEventListener() needs a function to call.")
        self._end.listeners.setdefault(type, []).append(listener)

    def removeEventListener(self, type: str, listener: Callable[[Any], Any]) -> None:
        listeners = self._end.listeners.get(type, [])
        if listener in listeners:
            listeners.remove(listener)

    def send(self, message: str | bytes) -> None:
        """Send a message; it leaves once the object's earlier writes are durable (output gate)."""
        end = self._end
        if end.closed_outgoing:
            raise TypeError(SEND_AFTER_CLOSE)
        if end.aborted or end.dead or end.mode is Mode.RELEASED:
            return  # the peer is gone: sends are silently dropped (workerd, per the spec)
        if not end.accepted:
            raise TypeError(SEND_BEFORE_ACCEPT)
        end.queue(_message(message), gated=True)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Send a Close frame (after the output gate). A second close() is ignored."""
        end = self._end
        if end.closed_outgoing or end.aborted or end.dead or end.mode is Mode.RELEASED:
            return
        if not end.accepted:
            raise TypeError(SEND_BEFORE_ACCEPT)
        check_close(code, reason, end.lab.compat_at_least(REASON_LIMIT_DATE))
        end.closed_outgoing = True
        end.queue(Close(1005 if code is None else code, reason or ""), gated=True)

    def serializeAttachment(self, value: Any) -> None:
        """Keep ``value`` with the socket (≤ 16,384 bytes encoded); it survives hibernation."""
        data = values.encode(value)
        if len(data) > MAX_ATTACHMENT:
            raise RuntimeError(ATTACHMENT_TOO_LARGE.format(size=len(data)))
        end = self._end
        if end.durable:
            sockets = end.registry()
            sockets.save(end.sid or "", sockets.saved(end.sid or "")._replace(attachment=data))
        else:
            end.attachment = data

    def deserializeAttachment(self) -> Any:
        """The value given to ``serializeAttachment``, or ``None`` if it was never called."""
        end = self._end
        data = end.registry().saved(end.sid or "").attachment if end.durable else end.attachment
        return None if data is None else values.decode(data)

    def __repr__(self) -> str:
        end = self._end
        return f"<WebSocket {end.sid or 'unaccepted'} {end.ready_state.name}>"


# ---- the registry: an object's sockets, across instances -----------------------------------------


class SocketRegistry:
    """An object's accepted sockets and hibernation settings (workerd's HibernationManager).

    Lives on the host (``host.sockets``), so it survives hibernation. The durable part of each
    hibernatable socket is written through ``pending`` into ``ObjectRecord.sockets`` by the host's
    flush, in the same ZODB transaction as the object's other writes.
    """

    def __init__(self, host: ObjectHost) -> None:
        self.host = host
        self.lab = host.lab
        self.ends: dict[str, SocketEnd] = {}
        self.pending: dict[str, Saved | None] = {}   # None: delete the record
        self.pending_auto: Any = _MISSING
        self.event_timeout_ms: int | None = None
        host.reset_hooks.append(self._on_reset)
        host.evict_hooks.append(self._on_evict)
        self._drop_stale()

    # ---- lifecycle ----------------------------------------------------------------------------

    def hibernatable(self) -> bool:
        """True while a hibernatable socket is connected: idle eviction becomes hibernation."""
        return any(e.mode is Mode.HIBERNATABLE for e in self.ends.values())

    def _drop_stale(self) -> None:
        """Records left by a closed lab: their connections died with it, so they are deleted."""
        record = self.host.record
        if record is None or record.sockets is None or not len(record.sockets):
            return
        for sid in list(record.sockets):
            self.pending[sid] = None
        self._dirty()

    def _on_reset(self, error: BaseException) -> None:
        self.pending.clear()  # uncommitted socket writes die with the instance, like its storage
        self.pending_auto = _MISSING
        self.disconnect()

    def disconnect(self) -> None:
        """Close every socket of the object with 1011 (a reset, or a code update: deploys
        disconnect all WebSockets, spec §8.3); their records are deleted."""
        for end in list(self.ends.values()):
            end.kill(RESET_CODE, errors.WS_RESET)
            if end.sid:
                self.pending[end.sid] = None
        self.ends.clear()
        self._drop_stale()
        self._dirty()

    def _on_evict(self) -> None:
        """Standard-API sockets belong to the instance: they break when it goes."""
        for end in [e for e in self.ends.values() if e.mode is Mode.ACCEPTED]:
            end.kill(ABNORMAL, "")
            self.ends.pop(end.sid or "", None)

    # ---- durable part (through the host's write path) -----------------------------------------

    @property
    def dirty(self) -> bool:
        return bool(self.pending) or self.pending_auto is not _MISSING

    def saved(self, sid: str) -> Saved:
        if sid in self.pending:
            return self.pending[sid] or _NOTHING_SAVED
        record = self.host.record
        rec = None if record is None or record.sockets is None else record.sockets.get(sid)
        if rec is None:
            return _NOTHING_SAVED
        return Saved(tuple(rec.tags), rec.attachment, rec.auto_response_time)

    def save(self, sid: str, saved: Saved) -> None:
        self.pending[sid] = saved
        self._dirty()

    def forget(self, sid: str) -> None:
        self.pending[sid] = None
        self._dirty()

    def _dirty(self) -> None:
        if not self.dirty:
            return
        try:
            self.lab.mark_dirty(self.host, False)  # why: bookkeeping, not a write results wait for
        except RuntimeError:  # no running loop (a lab being closed): the next flush takes it
            pass

    def apply(self, record: ObjectRecord) -> bool:
        """Move pending socket changes into ``record`` (inside the flush). True if the object's
        own record changed (the auto-response), not just its socket records."""
        from BTrees.OOBTree import OOBTree

        from .store import SocketRecord

        for sid, saved in self.pending.items():
            if saved is None:
                if record.sockets is not None:
                    record.sockets.pop(sid, None)
                continue
            if record.sockets is None:
                record.sockets = OOBTree()  # an OOBTree: an accept rewrites one bucket, not all
            rec = record.sockets.get(sid)
            if rec is None:
                rec = record.sockets[sid] = SocketRecord(saved.tags, saved.attachment)
            _assign(rec, "tags", saved.tags)
            _assign(rec, "attachment", saved.attachment)
            _assign(rec, "auto_response_time", saved.auto_time)
        self.pending.clear()
        if self.pending_auto is _MISSING:
            return False
        record.auto_response, self.pending_auto = self.pending_auto, _MISSING
        return True

    # ---- events -------------------------------------------------------------------------------

    def deliver(self, end: SocketEnd, kind: str, payload: Any,
                after: Callable[[], None] | None) -> None:
        label = HANDLERS[kind] if end.mode is Mode.HIBERNATABLE else f"{kind} listener"
        future = self.host.submit("ws", label, lambda inst: self._invoke(inst, end, kind, payload))
        future.add_done_callback(lambda f: _retrieved(f) and after and after())

    def _invoke(self, instance: Any, end: SocketEnd, kind: str, payload: Any) -> Any:
        if end.dead:
            return None
        if end.mode is not Mode.HIBERNATABLE:
            return end.run_listeners(kind, payload)
        ws = end.current_handle()
        if kind == "message":
            end.record(trace.WS_MESSAGE, current_request.get(), **_describe(payload))
        handler = getattr(instance, HANDLERS[kind], None)
        if handler is None:
            if kind == "message":
                raise TypeError(NO_MESSAGE_HANDLER.format(cls=type(instance).__name__))
            return None
        args = (ws, *payload) if kind == "close" else (ws, payload)
        return self._timed(handler(*args))

    def _timed(self, result: Any) -> Any:
        ms = self.event_timeout_ms
        if ms is None or not inspect.isawaitable(result):
            return result
        return _with_timeout(self.lab, result, ms)

    def auto_respond(self, end: SocketEnd, message: Message) -> bool:
        """Answer the auto-response request without waking the object (spec §9.3, B66)."""
        pair = self._auto()
        if pair is None or not isinstance(message, str) or message != pair[0]:
            return False
        now = self.lab.clock.now()
        end.record(trace.WS_MESSAGE, None, auto=True, **_describe(message))
        self.save(end.sid or "", self.saved(end.sid or "")._replace(auto_time=now))
        end.queue(pair[1], gated=False, by="runtime")
        return True

    def _auto(self) -> tuple[str, str] | None:
        if self.pending_auto is not _MISSING:
            return self.pending_auto  # type: ignore[no-any-return]
        record = self.host.record
        return None if record is None else record.auto_response

    # ---- ctx methods (the Hibernation API) ------------------------------------------------------

    def acceptWebSocket(self, ws: WebSocket, tags: list[str] | None = None) -> None:
        """Accept ``ws`` for hibernation, with up to 10 distinct tags of ≤ 256 bytes each."""
        end = _end_of(ws, "acceptWebSocket()")
        if end.accepted:
            raise RuntimeError(ALREADY_ACCEPTED)
        if end.twin is None or end.twin.mode is not Mode.AWAITING:
            raise RuntimeError(PAIR_NOT_AWAITING)
        distinct = distinct_tags(tags)
        if end.mode is not Mode.AWAITING:
            raise TypeError(INCOMPATIBLE_STATE)
        if sum(e.mode is Mode.HIBERNATABLE for e in self.ends.values()) >= MAX_HIBERNATABLE:
            raise RuntimeError(TOO_MANY_SOCKETS)
        end.accept_hibernatable(self, distinct)

    def getWebSockets(self, tag: str | None = None) -> list[WebSocket]:
        """Connected hibernatable sockets (CLOSING ones included), optionally with ``tag``."""
        ends = [e for e in self.ends.values() if e.mode is Mode.HIBERNATABLE and not e.dead]
        if tag is not None:
            ends = [e for e in ends if tag in self.saved(e.sid or "").tags]
        return [e.current_handle() for e in ends]

    def getTags(self, ws: WebSocket) -> list[str]:
        end = _end_of(ws, "getTags()")
        if not end.accepted:
            raise RuntimeError(TAGS_BEFORE_ACCEPT)
        if end.mode is not Mode.HIBERNATABLE:
            raise RuntimeError(TAGS_NOT_HIBERNATABLE)
        return list(self.saved(end.sid or "").tags)

    def setWebSocketAutoResponse(self, pair: WebSocketRequestResponsePair | None = None) -> None:
        """Answer ``pair.request`` with ``pair.response`` without waking the object; None unsets."""
        wanted = None
        if pair is not None:
            if not isinstance(pair, WebSocketRequestResponsePair):
                raise TypeError(NOT_A_PAIR.format(value=pair))
            wanted = (pair.request, pair.response)
            _check_auto_sizes(pair)
        if wanted != self._auto():
            self.pending_auto = wanted
            self._dirty()

    def getWebSocketAutoResponse(self) -> WebSocketRequestResponsePair | None:
        pair = self._auto()
        return None if pair is None else WebSocketRequestResponsePair(*pair)

    def getWebSocketAutoResponseTimestamp(self, ws: WebSocket) -> datetime | None:
        """When the runtime last auto-responded on ``ws`` (lab time), or ``None``."""
        end = _end_of(ws, "getWebSocketAutoResponseTimestamp()")
        when = self.saved(end.sid or "").auto_time if end.durable else None
        return None if when is None else _js_date(when)

    def setHibernatableWebSocketEventTimeout(self, timeoutMs: int | None = None) -> None:
        """Cancel hibernatable event handlers that run longer; 0 or None unsets (≤ 7 days)."""
        if timeoutMs is None or timeoutMs == 0:
            self.event_timeout_ms = None
            return
        if isinstance(timeoutMs, bool) or not isinstance(timeoutMs, int) or timeoutMs < 0:
            raise TypeError(
                "setHibernatableWebSocketEventTimeout() takes a number of milliseconds.")
        if timeoutMs > MAX_EVENT_TIMEOUT_MS:
            raise RuntimeError(EVENT_TIMEOUT_TOO_LARGE)
        self.event_timeout_ms = timeoutMs

    def getHibernatableWebSocketEventTimeout(self) -> int | None:
        return self.event_timeout_ms

    def __repr__(self) -> str:
        return f"<SocketRegistry {self.host.label}: {sorted(self.ends)}>"



def registry(host: ObjectHost) -> SocketRegistry:
    """The host's socket registry, created on first use (it outlives the host's instances)."""
    sockets = getattr(host, "sockets", None)
    if sockets is None:
        sockets = SocketRegistry(host)
        host.sockets = sockets
    return sockets


def ctx_method(host: ObjectHost, name: str) -> Callable[..., Any] | None:
    """The Hibernation API method ``ctx.<name>`` (``DurableObjectState`` delegates here)."""
    if name not in CTX_METHODS:
        return None
    return getattr(registry(host), name)  # type: ignore[no-any-return]


# ---- simulated clients ---------------------------------------------------------------------------


class WebSocketClosed(ConnectionError):
    """dolab's own: ``receive()`` on a client whose connection closed with nothing left to read."""

    def __init__(self, message: str, code: int | None, reason: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class ClientWebSocket:
    """A simulated browser WebSocket, from ``await lab.connect(url)``.

    ``send(msg)`` and ``close(code, reason)`` and ``drop()`` are synchronous; ``await receive()``
    returns the next message (under the virtual clock it lets lab time jump, and raises
    ``TimeoutError`` instead of waiting for ever when nothing in the lab can send one).
    ``messages`` is every message received so far.
    """

    def __init__(self, lab: Lab, url: str, server: SocketEnd) -> None:
        self.lab = lab
        self.url = url
        self.messages: list[Message] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.was_clean: bool | None = None
        self._state = ReadyState.OPEN
        self._server = server
        self._read = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def readyState(self) -> int:
        return int(self._state)

    @property
    def closed(self) -> bool:
        return self._state is ReadyState.CLOSED

    def send(self, message: str | bytes) -> None:
        """Send a text (str) or binary (bytes) message to the server."""
        data = _message(message)
        if self._state is not ReadyState.OPEN:
            raise errors.DOMException(CLIENT_NOT_OPEN, "InvalidStateError")
        self._server.receive_frame(data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; ``closed`` turns True when the server's Close arrives."""
        check_close(code, reason, True)  # why: browsers always enforce the 123-byte reason limit
        if self._state is not ReadyState.OPEN:
            return
        self._state = ReadyState.CLOSING
        self._server.receive_frame(Close(code, reason))

    def drop(self) -> None:
        """Vanish without a Close frame (a lost network): the server sees code 1006."""
        if self._state is ReadyState.CLOSED:
            return
        self._closed(ABNORMAL, "", False)
        self._server.receive_frame(DROP)

    async def receive(self, timeout: float | None = None) -> Message:
        """The next message not yet returned by ``receive()``; ``timeout`` is in lab seconds."""
        self.lab.attach_loop()
        while self._read >= len(self.messages):
            if self.closed:
                raise self._closed_error()
            await self._wait(timeout)
        self._read += 1
        return self.messages[self._read - 1]

    async def _wait(self, timeout: float | None) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        timer = None if timeout is None else self.lab.clock.call_later(
            timeout, lambda: _fail(waiter, TimeoutError(RECEIVE_TIMEOUT.format(seconds=timeout))))
        watcher = None
        if timeout is None and self.lab.clock.virtual:
            watcher = asyncio.get_running_loop().create_task(_watch_idle(self.lab, waiter))
        try:
            await self.lab.drive(waiter)
        finally:
            if timer is not None:
                timer.cancel()
            if watcher is not None:
                watcher.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _closed_error(self) -> WebSocketClosed:
        reason = f", {self.close_reason!r}" if self.close_reason else ""
        text = CLOSED_WHILE_RECEIVING.format(code=self.close_code, reason=reason)
        return WebSocketClosed(text, self.close_code, self.close_reason or "")

    # ---- frames from the server ---------------------------------------------------------------

    def receive_frame(self, frame: Frame) -> None:
        if self._state is ReadyState.CLOSED:
            return
        if isinstance(frame, Close):
            initiated = self._state is ReadyState.CLOSING
            self._closed(frame.code, frame.reason, True)
            if not initiated:
                # Browsers echo a Close they did not start.
                self._server.receive_frame(Close(frame.code, frame.reason))
        elif isinstance(frame, _Drop):
            self._closed(ABNORMAL, "", False)
        else:
            self.messages.append(frame)
            self._wake()

    def _closed(self, code: int, reason: str, clean: bool) -> None:
        self._state = ReadyState.CLOSED
        self.close_code, self.close_reason, self.was_clean = code, reason, clean
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def __repr__(self) -> str:
        state = self._state.name
        if self.closed:
            state += f" {self.close_code} {self.close_reason!r}"
        return f"<ClientWebSocket {self.url} {state}, {len(self.messages)} messages>"


async def connect(lab: Lab, url: str, headers: Any = None) -> ClientWebSocket:
    """``lab.connect``: a GET with ``Upgrade: websocket`` through the Worker, then couple the
    returned end of the pair to a simulated client."""
    from .worker import dispatch

    request = Request(_http_url(url), method="GET", headers=_upgrade_headers(headers))
    response = await dispatch(lab, request)
    if not isinstance(response, Response):
        raise TypeError(NOT_A_RESPONSE.format(value=response))
    if response.status != 101:
        body = await response.text()
        raise TypeError(UPGRADE_FAILED.format(status=response.status)
                        + (UPGRADE_BODY.format(body=body) if body else ""))
    return couple(lab, url, response.web_socket)


def couple(lab: Lab, url: str, socket: Any,
           client_cls: type[ClientWebSocket] | None = None) -> ClientWebSocket:
    """Attach a client (a :class:`ClientWebSocket`, or ``client_cls``, e.g. the bridge to a real
    connection in ``serve.py``) to the end returned in a 101 Response."""
    returned = _end_of(socket, "Response(web_socket=…)")
    returned.release()
    server = returned.twin
    assert server is not None
    returned.lab = lab
    if server.host is None:
        server.lab = lab  # a Worker's own socket belongs to the lab that connected to it
    client = (client_cls or ClientWebSocket)(lab, url, server)
    server.peer = client
    api = {Mode.ACCEPTED: "standard", Mode.HIBERNATABLE: "hibernation"}.get(server.mode)
    server.record(trace.WS_OPEN, current_request.get(), url=url, api=api)
    lab.ws_clients.append(client)
    while returned.inbox:  # frames the server sent before the Response went out
        client.receive_frame(returned.inbox.popleft())
    return client


def disconnect_all(lab: Lab) -> None:
    """``lab.close()``: every simulated client loses its connection (code 1006); no handler runs,
    and the socket records are deleted when the lab is next opened (connections cannot survive)."""
    for client in lab.ws_clients:
        if not client.closed:
            client._closed(ABNORMAL, "", False)


# ---- rules and helpers ---------------------------------------------------------------------------


def check_close(code: int | None, reason: str | None, limit_reason: bool) -> None:
    """The close-code rules (spec §9.3): 1000–4999 except 1004, 1005, 1006, 1015; a reason needs a
    code; from compatibility date 2026-03-03 a reason is at most 123 UTF-8 bytes."""
    if code is not None:
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"A WebSocket close code is an integer, not {code!r}.")
        if not 1000 <= code < 5000 or code in (1004, 1005, 1006, 1015):
            raise errors.DOMException(INVALID_CLOSE_CODE.format(code=code), "InvalidAccessError")
    if reason is None:
        return
    if code is None:
        raise errors.DOMException(REASON_WITHOUT_CODE, "InvalidAccessError")
    if not isinstance(reason, str):
        raise TypeError(f"A WebSocket close reason is a string, not {reason!r}.")
    if limit_reason and len(reason.encode("utf-8", "surrogatepass")) > MAX_REASON:
        raise errors.DOMException(REASON_TOO_LONG, "SyntaxError")


def distinct_tags(tags: Any) -> tuple[str, ...]:
    """Tags as workerd keeps them: distinct (duplicates ignored), in first-seen order, at most 10,
    each at most 256 UTF-8 bytes (spec §9.3)."""
    if tags is None:
        return ()
    if isinstance(tags, (str, bytes)) or not isinstance(tags, (list, tuple)):
        raise TypeError(f"acceptWebSocket() takes a list of tags, not {tags!r}.")
    seen: dict[str, None] = {}
    for tag in tags:
        if not isinstance(tag, str):
            raise TypeError(f"A WebSocket tag is a string, not {tag!r}.")
        if tag not in seen and len(seen) >= MAX_TAGS:
            raise RuntimeError(TOO_MANY_TAGS)
        if len(tag.encode("utf-8", "surrogatepass")) > MAX_TAG_BYTES:
            raise RuntimeError(TAG_TOO_LONG.format(tag=tag))
        seen.setdefault(tag, None)
    return tuple(seen)


def _check_auto_sizes(pair: WebSocketRequestResponsePair) -> None:
    request = len(pair.request.encode("utf-8", "surrogatepass"))
    if request > MAX_AUTO_RESPONSE:
        raise errors.RangeError(AUTO_REQUEST_TOO_LARGE.format(size=request))
    response = len(pair.response.encode("utf-8", "surrogatepass"))
    if response > MAX_AUTO_RESPONSE:
        raise errors.RangeError(AUTO_RESPONSE_TOO_LARGE.format(size=response))


def _end_of(socket: Any, what: str) -> SocketEnd:
    if not isinstance(socket, WebSocket):
        raise TypeError(NOT_A_SOCKET.format(what=what, value=socket))
    return socket._end


def _message(message: Any) -> Message:
    if isinstance(message, str):
        return message
    if isinstance(message, (bytes, bytearray, memoryview)):
        return bytes(message)
    raise TypeError(NOT_A_MESSAGE.format(type=type(message).__name__))


def _size(message: Message) -> int:
    if isinstance(message, str):
        return len(message.encode("utf-8", "surrogatepass"))
    return len(message)


def _describe(message: Message) -> dict[str, Any]:
    """What the trace keeps of a message: its size and the start of its text."""
    size, text = _summary(message)
    return {"size": size, "binary": True} if text is None else {"size": size, "text": text}


_last_summary: list[Any] = [None, (0, None)]  # the last message summarized, kept alive


def _summary(message: Message) -> tuple[int, str | None]:
    """(size, start of the text or None for binary); a broadcast sends one message to every
    socket, so the last one's summary is reused."""
    if message is _last_summary[0]:
        return _last_summary[1]  # type: ignore[no-any-return]
    summary = (_size(message), message[:80]) if isinstance(message, str) else (len(message), None)
    _last_summary[0], _last_summary[1] = message, summary
    return summary


def _event(target: WebSocket, kind: str, payload: Any) -> Any:
    if kind == "message":
        return MessageEvent(target, payload)
    if kind == "close":
        return CloseEvent(target, *payload)
    return ErrorEvent(target, payload)


async def _await_all(pending: list[Any]) -> None:
    for awaitable in pending:
        await awaitable


async def _with_timeout(lab: Lab, awaitable: Any, ms: int) -> Any:
    """Run a hibernatable event handler, cancelling it after ``ms`` of lab time."""
    task = asyncio.ensure_future(awaitable)
    expired: list[bool] = []

    def expire() -> None:
        expired.append(True)
        task.cancel()

    timer = lab.clock.call_later(ms / 1000, expire, "ws event timeout")
    try:
        return await task
    except asyncio.CancelledError:
        if expired:
            raise RuntimeError(EVENT_TIMED_OUT.format(ms=ms)) from None
        raise
    finally:
        timer.cancel()


async def _watch_idle(lab: Lab, waiter: asyncio.Future[None]) -> None:
    """Under the virtual clock, fail a ``receive()`` that nothing in the lab can ever satisfy:
    no lab timer is pending, no object has an event queued or running, nothing is to commit."""
    quiet = 0
    while not waiter.done():
        await asyncio.sleep(0.002)  # real time, so the auto-jumper runs the lab's timers meanwhile
        quiet = 0 if _lab_busy(lab) else quiet + 1
        if quiet >= 3:
            _fail(waiter, TimeoutError(RECEIVE_IDLE))


def _lab_busy(lab: Lab) -> bool:
    if lab.clock.next_deadline() is not None or lab._dirty or lab._flush_scheduled:
        return True
    return any(host.mailbox or host.inflight or host.gate.locked
               for binding in lab.bindings.values() for host in binding.hosts.values())


def _fail(waiter: asyncio.Future[None], error: BaseException) -> None:
    if not waiter.done():
        waiter.set_exception(error)


def _retrieved(future: asyncio.Future[Any]) -> bool:
    """Mark a future's outcome as seen (the host already traced any error); always True."""
    if not future.cancelled():
        future.exception()
    return True


def _assign(record: Any, name: str, value: Any) -> None:
    if getattr(record, name) != value:  # why: an unchanged attribute must not dirty the record
        setattr(record, name, value)


def _js_date(seconds: float) -> datetime:
    """Lab time as a JS Date reads back in Python: UTC, millisecond precision."""
    return datetime.fromtimestamp(round(seconds * 1000) / 1000, tz=UTC)


def _counter(lab: Lab) -> Iterator[int]:
    counter = _ids.get(lab)
    if counter is None:
        counter = _ids[lab] = itertools.count(1)
    return counter


def _http_url(url: str) -> str:
    """``ws://`` → ``http://`` and ``wss://`` → ``https://`` (workerd maps them the same way)."""
    if not isinstance(url, str):
        raise TypeError(BAD_URL.format(url=url))
    parts = urlsplit(absolute_url(url))
    scheme = {"ws": "http", "wss": "https", "http": "http", "https": "https"}.get(parts.scheme)
    if scheme is None:
        raise TypeError(BAD_URL.format(url=url))
    return urlunsplit(parts._replace(scheme=scheme))


def _upgrade_headers(headers: Any) -> Headers:
    merged = Headers(headers)
    for name, value in (("upgrade", "websocket"), ("connection", "Upgrade"),
                        ("sec-websocket-version", "13")):
        if not merged.has(name):
            merged.set(name, value)
    return merged


__all__ = [
    "ClientWebSocket", "Close", "CloseEvent", "ErrorEvent", "MessageEvent", "Mode", "ReadyState",
    "SocketEnd", "SocketRegistry", "WebSocket", "WebSocketClosed", "WebSocketPair",
    "WebSocketRequestResponsePair", "connect", "couple", "ctx_method", "disconnect_all",
    "registry",
]
