"""Fetch-API shapes as Python Workers spells them: :class:`Headers`, :class:`Request`, :class:`Response`.

Cloudflare hands a Worker's and a Durable Object's ``fetch`` a JavaScript ``Request`` and expects a
``Response``; Python Workers wraps both (``from workers import Request, Response``), keeping the
JavaScript names except in its own constructor arguments (``status_text=``, ``web_socket=``,
spec §11.1). Bodies here are plain ``bytes`` read as many times as wanted, not streams.

The JavaScript rules kept, with their texts: a URL must be absolute (``TypeError: Invalid URL: /x``,
spec §2.3, B24); a GET or HEAD request has no body; a response's status is 200–599, or 101 with a
WebSocket (``RangeError``); 101, 204, 205 and 304 responses have no body; header names are
case-insensitive and several values of one name read back joined with ``", "``.
"""

from __future__ import annotations

import builtins
import json
import operator
import re
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from functools import partial
from typing import Any, Union, overload
from urllib.parse import urlsplit, urlunsplit

from dolab import errors

# ---- texts --------------------------------------------------------------------------------------

STATUS_RANGE = (
    "Responses may only be constructed with status codes in the range 200 to 599, inclusive."
)
NULL_BODY_STATUS = "Response with null body status cannot have body"
BODY_WITH_GET = "Request with a GET or HEAD method cannot have a body."
UNSUPPORTED_BODY = "Unsupported type in {what}: {type}"
INVALID_HEADER_NAME = "Invalid header name."
INVALID_HEADER_VALUE = "Invalid header value."
INVALID_METHOD = "Invalid HTTP method: {method!r}"
HEADER_PAIR = "Headers must be given as a dict, a Headers or a list of (name, value) pairs."
REDIRECT_STATUS = "Invalid redirect status code: {status}. Use 301, 302, 303, 307 or 308."

TEXT_PLAIN = "text/plain;charset=UTF-8"
APPLICATION_JSON = "application/json"

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\0]")
_HTTP_WHITESPACE = " \t\r\n"
_NULL_BODY_STATUSES = frozenset({101, 204, 205, 304})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

HeadersInit = Union["Headers", Mapping[str, object], Iterable[Iterable[object]], None]
BodyInit = str | builtins.bytes | None


def absolute_url(url: str) -> str:
    """``url`` itself when it is absolute (a scheme and a host), else JavaScript's ``TypeError``."""
    if isinstance(url, str):
        try:
            parts = urlsplit(url)
        except ValueError:  # e.g. an unclosed IPv6 bracket
            parts = None
        if parts is not None and parts.scheme and parts.netloc:
            return url
    raise TypeError(errors.INVALID_URL.format(url=url))


# ---- Headers ------------------------------------------------------------------------------------


class Headers:
    """A case-insensitive header map, iterated in name order with lowercased names (as in JS)."""

    __slots__ = ("_values",)

    def __init__(self, init: HeadersInit = None) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in _header_pairs(init):
            self.append(name, value)

    def get(self, name: str) -> str | None:
        values = self._values.get(_header_name(name))
        return ", ".join(values) if values else None

    def has(self, name: str) -> bool:
        return _header_name(name) in self._values

    def set(self, name: str, value: object) -> None:
        self._values[_header_name(name)] = [_header_value(value)]

    def append(self, name: str, value: object) -> None:
        self._values.setdefault(_header_name(name), []).append(_header_value(value))

    def delete(self, name: str) -> None:
        self._values.pop(_header_name(name), None)

    def keys(self) -> list[str]:
        return sorted(self._values)

    def values(self) -> list[str]:
        return [value for _, value in self.items()]

    def items(self) -> list[tuple[str, str]]:
        return [(name, ", ".join(self._values[name])) for name in self.keys()]

    def __getitem__(self, name: str) -> str | None:
        """``headers["x"]``, as Python Workers' headers allow: the value, or ``None``."""
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self.items() == other.items()
        if isinstance(other, Mapping):
            return dict(self.items()) == {str(k).lower(): v for k, v in other.items()}
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


def _header_pairs(init: HeadersInit) -> Iterator[tuple[str, object]]:
    if init is None:
        return
    if isinstance(init, (Headers, Mapping)):
        yield from init.items()
    elif isinstance(init, (str, builtins.bytes)):
        raise TypeError(HEADER_PAIR)
    else:
        yield from (_header_pair(pair) for pair in init)


def _header_pair(pair: object) -> tuple[str, object]:
    if isinstance(pair, (str, builtins.bytes)) or not isinstance(pair, Iterable):
        raise TypeError(HEADER_PAIR)
    items = list(pair)
    if len(items) != 2:
        raise TypeError(HEADER_PAIR)
    return items[0], items[1]


def _header_name(name: object) -> str:
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise TypeError(INVALID_HEADER_NAME)
    return name.lower()


def _header_value(value: object) -> str:
    text = str(value).strip(_HTTP_WHITESPACE)  # JS normalizes surrounding whitespace away
    if _BAD_VALUE.search(text):
        raise TypeError(INVALID_HEADER_VALUE)
    return text


# ---- bodies -------------------------------------------------------------------------------------


def _body_bytes(body: object, what: str) -> builtins.bytes | None:
    """A body as bytes: str is UTF-8, bytes stay, ``None`` is no body; JSON must come as str."""
    if body is None or isinstance(body, builtins.bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    raise TypeError(UNSUPPORTED_BODY.format(what=what, type=type(body).__name__))


class _Body:
    """The body readers Request and Response share. A body may be read any number of times."""

    body: builtins.bytes | None
    headers: Headers

    async def text(self) -> str:
        return (self.body or b"").decode("utf-8", "replace")  # TextDecoder replaces bad bytes

    async def bytes(self) -> builtins.bytes:
        return self.body or b""

    async def _read_json(self) -> Any:
        return json.loads(await self.text())

    def _default_content_type(self, body: object) -> None:
        if isinstance(body, str) and not self.headers.has("content-type"):
            self.headers.set("content-type", TEXT_PLAIN)


# ---- Request ------------------------------------------------------------------------------------


class Request(_Body):
    """An HTTP request: ``Request(url_or_request, method=, headers=, body=)``.

    Given a Request, copies it and overrides the fields given. ``method`` defaults to GET.
    """

    def __init__(
        self,
        input: str | Request,
        method: str | None = None,
        headers: HeadersInit = None,
        body: BodyInit = None,
    ) -> None:
        url, base_method, base_headers, base_body = _fields_of(input)
        self.url = url
        self.method = _method(base_method if method is None else method)
        self.headers = Headers(base_headers if headers is None else headers)
        self.body = base_body if body is None else _body_bytes(body, "Request")
        if self.body is not None and self.method in ("GET", "HEAD"):
            raise TypeError(BODY_WITH_GET)
        self._default_content_type(body)

    async def json(self) -> Any:
        return await self._read_json()

    def clone(self) -> Request:
        return Request(self)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"


def _fields_of(input: str | Request) -> tuple[str, str, HeadersInit, builtins.bytes | None]:
    """What a new Request starts from: a Request's fields, or a URL's defaults."""
    if isinstance(input, Request):
        return input.url, input.method, input.headers, input.body
    return _with_path(absolute_url(input)), "GET", None, None


def _method(method: object) -> str:
    if not isinstance(method, str) or not _TOKEN.fullmatch(method):
        raise TypeError(INVALID_METHOD.format(method=method))
    return str.__str__(method.upper())  # a plain str, also from http.HTTPMethod


def _with_path(url: str) -> str:
    """``http://do`` reads back as ``http://do/``, as a JS URL does."""
    parts = urlsplit(url)
    return url if parts.path else urlunsplit(parts._replace(path="/"))


# ---- Response -----------------------------------------------------------------------------------


class _JsonMethod:
    """``Response.json(data)`` builds a JSON response; ``await response.json()`` reads the body.

    Python Workers' SDK gives the one name both meanings, so dolab does too.
    """

    @overload
    def __get__(self, obj: None, owner: type[Response]) -> Callable[..., Response]: ...

    @overload
    def __get__(
        self, obj: Response, owner: type[Response]
    ) -> Callable[[], Coroutine[Any, Any, Any]]: ...

    def __get__(self, obj: Response | None, owner: type[Response]) -> Callable[..., Any]:
        if obj is None:
            return partial(_json_response, owner)
        return obj._read_json


def _json_response(
    cls: type[Response], data: object, status: int = 200, headers: HeadersInit = None
) -> Response:
    merged = Headers(headers)
    if not merged.has("content-type"):
        merged.set("content-type", APPLICATION_JSON)
    return cls(json.dumps(data), status=status, headers=merged)


class Response(_Body):
    """An HTTP response, with Python Workers' argument names.

    ``Response(body=None, status=200, status_text=None, headers=None, web_socket=None)``; a str
    body is UTF-8 and defaults the content-type to ``text/plain;charset=UTF-8``.
    """

    json = _JsonMethod()

    def __init__(
        self,
        body: BodyInit = None,
        status: int | None = 200,
        status_text: str | None = None,
        headers: HeadersInit = None,
        web_socket: object | None = None,
    ) -> None:
        self.status = _status(status, web_socket)
        self.body = _body_bytes(body, "Response")
        if self.body is not None and self.status in _NULL_BODY_STATUSES:
            raise TypeError(NULL_BODY_STATUS)
        self.status_text = status_text or ""
        self.headers = Headers(headers)
        self.web_socket = web_socket
        self._default_content_type(body)

    @property
    def ok(self) -> bool:
        return 200 <= self.status <= 299

    @classmethod
    def redirect(cls, url: str, status: int = 302) -> Response:
        if status not in _REDIRECT_STATUSES:
            raise errors.RangeError(REDIRECT_STATUS.format(status=status))
        return cls(None, status=status, headers={"location": absolute_url(url)})

    def clone(self) -> Response:
        copy = Response(self.body, self.status, self.status_text, self.headers, self.web_socket)
        copy.headers = Headers(self.headers)  # exactly these headers, no defaults added
        return copy

    def __repr__(self) -> str:
        return f"<Response {self.status}>"


def _status(status: int | None, web_socket: object | None) -> int:
    code = 200 if status is None else operator.index(status)
    if code == 101 and web_socket is not None:
        return code
    if not 200 <= code <= 599:
        raise errors.RangeError(STATUS_RANGE)
    return code
