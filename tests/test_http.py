"""Fetch-API shapes: headers are case-insensitive, URLs absolute, statuses within JS's rules."""

from __future__ import annotations

import json
from http import HTTPMethod, HTTPStatus

import pytest

from dolab import errors
from dolab.http import Headers, Request, Response, absolute_url

# ---- Headers ------------------------------------------------------------------------------------


def test_header_names_are_case_insensitive() -> None:
    headers = Headers({"Content-Type": "text/html"})
    assert headers.get("content-type") == headers.get("CONTENT-TYPE") == "text/html"
    assert headers.has("Content-type") and "CONTENT-TYPE" in headers
    assert headers["content-TYPE"] == "text/html"


def test_missing_header_reads_as_none() -> None:
    headers = Headers()
    assert headers.get("x-missing") is None and headers["x-missing"] is None
    assert not headers.has("x-missing") and "x-missing" not in headers


def test_appended_values_read_back_joined() -> None:
    headers = Headers([("Accept", "text/html"), ("accept", "application/json")])
    headers.append("ACCEPT", "*/*")
    assert headers.get("accept") == "text/html, application/json, */*"


def test_set_replaces_and_delete_removes() -> None:
    headers = Headers({"x-a": "1"})
    headers.append("x-a", "2")
    headers.set("X-A", "3")
    assert headers.get("x-a") == "3"
    headers.delete("X-a")
    assert not headers.has("x-a") and len(headers) == 0


def test_headers_iterate_lowercased_in_name_order() -> None:
    headers = Headers({"X-Zeta": "z", "Accept": "a", "Content-Type": "c"})
    assert list(headers) == headers.keys() == ["accept", "content-type", "x-zeta"]
    assert headers.items() == [("accept", "a"), ("content-type", "c"), ("x-zeta", "z")]
    assert headers.values() == ["a", "c", "z"]


def test_headers_copy_from_headers_independently() -> None:
    original = Headers({"a": "1"})
    copy = Headers(original)
    copy.set("a", "2")
    assert original.get("a") == "1" and copy.get("a") == "2"


def test_headers_equal_a_dict_whatever_its_case() -> None:
    headers = Headers({"Upgrade": "websocket"})
    assert headers == {"upgrade": "websocket"}
    assert headers == {"UPGRADE": "websocket"}
    assert headers == Headers([("upgrade", "websocket")])
    assert headers != {"upgrade": "h2c"}


def test_headers_repr_shows_lowercased_names() -> None:
    assert repr(Headers({"X-A": "1"})) == "Headers({'x-a': '1'})"


def test_header_values_are_strings_without_surrounding_whitespace() -> None:
    headers = Headers({"content-length": 5, "x-pad": "  v \t"})
    assert headers.get("content-length") == "5" and headers.get("x-pad") == "v"


@pytest.mark.parametrize("name", ["", "bad name", "x:y", "é"])
def test_invalid_header_name_is_refused(name: str) -> None:
    with pytest.raises(TypeError, match=r"^Invalid header name\.$"):
        Headers({name: "v"})


def test_header_value_with_a_line_break_is_refused() -> None:
    with pytest.raises(TypeError, match=r"^Invalid header value\.$"):
        Headers().set("x-a", "v\r\nInjected: 1")


@pytest.mark.parametrize("init", ["a: b", [("only-name",)], [1]])
def test_malformed_header_init_is_refused(init: object) -> None:
    with pytest.raises(TypeError, match="list of \\(name, value\\) pairs"):
        Headers(init)  # type: ignore[arg-type]


# ---- absolute_url -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://do/x", "https://example.com", "ws://localhost:8787/chat", "wss://a.b/c?d=1"]
)
def test_absolute_url_is_returned_unchanged(url: str) -> None:
    assert absolute_url(url) == url


def test_relative_url_is_refused_with_cloudflare_text() -> None:
    with pytest.raises(TypeError, match=r"^Invalid URL: /x$"):
        absolute_url("/x")


@pytest.mark.parametrize("url", ["", "x", "do/x", "mailto:a@b.c", "http://[::1"])
def test_urls_without_scheme_and_host_are_invalid(url: str) -> None:
    with pytest.raises(TypeError, match=r"^Invalid URL: "):
        absolute_url(url)


# ---- Request ------------------------------------------------------------------------------------


async def test_request_defaults_to_get_without_body() -> None:
    request = Request("http://do/x")
    assert (request.url, request.method, request.body) == ("http://do/x", "GET", None)
    assert request.headers == {}
    assert await request.text() == "" and await request.bytes() == b""


def test_request_url_without_path_gains_a_slash() -> None:
    assert Request("http://do").url == "http://do/"


def test_request_to_a_relative_url_is_refused() -> None:
    with pytest.raises(TypeError, match=r"^Invalid URL: /inc$"):
        Request("/inc")


def test_request_method_is_upper_case() -> None:
    assert Request("http://do/", method="post", body="x").method == "POST"
    method = Request("http://do/", method=HTTPMethod.DELETE).method
    assert method == "DELETE" and type(method) is str


def test_invalid_method_is_refused() -> None:
    with pytest.raises(TypeError, match="Invalid HTTP method"):
        Request("http://do/", method="GE T")


async def test_str_body_is_utf8_with_a_text_content_type() -> None:
    request = Request("http://do/", method="POST", body="héllo")
    assert request.body == "héllo".encode()
    assert request.headers.get("content-type") == "text/plain;charset=UTF-8"
    assert await request.text() == "héllo"


async def test_json_body_is_given_as_str_and_read_with_json() -> None:
    request = Request(
        "http://do/", method="POST", headers={"content-type": "application/json"}, body='{"a": 1}'
    )
    assert await request.json() == {"a": 1}
    assert request.headers.get("content-type") == "application/json"


async def test_bytes_body_has_no_default_content_type_and_reads_twice() -> None:
    request = Request("http://do/", method="PUT", body=b"\x00\x01")
    assert not request.headers.has("content-type")
    assert await request.bytes() == await request.bytes() == b"\x00\x01"


def test_dict_body_is_refused() -> None:
    with pytest.raises(TypeError, match=r"^Unsupported type in Request: dict$"):
        Request("http://do/", method="POST", body={"a": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["GET", "HEAD", "get"])
def test_get_and_head_requests_cannot_have_a_body(method: str) -> None:
    with pytest.raises(
        TypeError, match=r"^Request with a GET or HEAD method cannot have a body\.$"
    ):
        Request("http://do/", method=method, body="x")


async def test_request_from_a_request_copies_it_and_overrides_given_fields() -> None:
    original = Request("http://do/a", method="POST", headers={"x-a": "1"}, body="data")
    copy = Request(original, headers={"x-b": "2"})
    assert (copy.url, copy.method, await copy.text()) == ("http://do/a", "POST", "data")
    assert copy.headers == {"x-b": "2"}
    assert Request(original, method="PUT").method == "PUT"


def test_copied_request_headers_are_independent() -> None:
    original = Request("http://do/", headers={"x-a": "1"})
    copy = original.clone()
    copy.headers.set("x-a", "2")
    assert original.headers.get("x-a") == "1"
    assert (copy.url, copy.method, copy.body) == (original.url, original.method, original.body)


def test_request_repr() -> None:
    assert repr(Request("http://do/x")) == "<Request GET http://do/x>"


# ---- Response -----------------------------------------------------------------------------------


async def test_response_defaults() -> None:
    response = Response()
    assert (response.status, response.status_text, response.ok, response.body) == (
        200,
        "",
        True,
        None,
    )
    assert response.headers == {} and response.web_socket is None
    assert await response.text() == ""


async def test_str_response_body_is_utf8_text() -> None:
    response = Response("ça va", status=201, status_text="Created")
    assert (response.status, response.status_text, response.body) == (
        201,
        "Created",
        "ça va".encode(),
    )
    assert response.headers.get("content-type") == "text/plain;charset=UTF-8"
    assert await response.text() == "ça va"


def test_response_keeps_a_given_content_type() -> None:
    response = Response("<p>", headers={"Content-Type": "text/html"})
    assert response.headers.get("content-type") == "text/html"


async def test_response_json_serializes_and_sets_the_content_type() -> None:
    response = Response.json({"count": 1, "ok": True})
    assert response.status == 200
    assert response.headers.get("content-type") == "application/json"
    assert response.body == json.dumps({"count": 1, "ok": True}).encode()
    assert await response.json() == {"count": 1, "ok": True}


def test_response_json_takes_status_and_headers() -> None:
    response = Response.json([1], status=404, headers={"x-a": "1"})
    assert response.status == 404 and not response.ok
    assert response.headers == {"content-type": "application/json", "x-a": "1"}


def test_response_json_keeps_a_given_content_type() -> None:
    response = Response.json({}, headers={"content-type": "application/problem+json"})
    assert response.headers.get("content-type") == "application/problem+json"


@pytest.mark.parametrize(("status", "ok"), [(200, True), (299, True), (300, False), (599, False)])
def test_ok_means_a_2xx_status(status: int, ok: bool) -> None:
    assert Response(status=status).ok is ok


def test_status_may_be_an_http_status() -> None:
    assert Response(status=HTTPStatus.CREATED).status == 201


@pytest.mark.parametrize("status", [0, 100, 101, 199, 600, 1000])
def test_status_outside_200_to_599_raises_range_error(status: int) -> None:
    with pytest.raises(errors.RangeError) as caught:
        Response(status=status)
    assert str(caught.value) == (
        "Responses may only be constructed with status codes in the range 200 to 599, inclusive."
    )


def test_status_101_is_allowed_with_a_web_socket() -> None:
    socket = object()
    response = Response(None, status=101, web_socket=socket)
    assert response.status == 101 and response.web_socket is socket and not response.ok


@pytest.mark.parametrize("status", [204, 205, 304])
def test_null_body_status_cannot_have_a_body(status: int) -> None:
    assert Response(status=status).body is None
    with pytest.raises(TypeError, match="null body status"):
        Response("x", status=status)


def test_unsupported_response_body_is_refused_with_the_sdk_text() -> None:
    with pytest.raises(TypeError, match=r"^Unsupported type in Response: dict$"):
        Response({"a": 1})  # type: ignore[arg-type]


def test_redirect_sets_location_and_defaults_to_302() -> None:
    response = Response.redirect("https://example.com/next")
    assert response.status == 302 and response.body is None
    assert response.headers == {"location": "https://example.com/next"}
    assert Response.redirect("http://do/", 301).status == 301


def test_redirect_needs_a_redirect_status() -> None:
    with pytest.raises(errors.RangeError, match="Invalid redirect status code: 200"):
        Response.redirect("http://do/", 200)


def test_redirect_needs_an_absolute_url() -> None:
    with pytest.raises(TypeError, match=r"^Invalid URL: /next$"):
        Response.redirect("/next")


async def test_response_clone_is_independent() -> None:
    original = Response("body", status=202, headers={"x-a": "1"})
    copy = original.clone()
    copy.headers.set("x-a", "2")
    assert (copy.status, await copy.text()) == (202, "body")
    assert original.headers.get("x-a") == "1"


def test_response_repr() -> None:
    assert repr(Response()) == "<Response 200>"
    assert repr(Response.json({}, status=404)) == "<Response 404>"
