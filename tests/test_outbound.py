"""Outbound ``dolab.fetch`` to services registered with ``lab.service`` (DESIGN.md §3)."""
from __future__ import annotations

import pytest

from dolab import Date, DurableObject, Lab, Request, Response, WorkerEntrypoint, fetch, trace
from dolab.outbound import NoServiceError


def weather(request: Request) -> Response:
    return Response.json({"url": request.url, "method": request.method})


class Reporter(DurableObject):
    async def report(self, city):
        started = Date.now()
        response = await fetch(f"https://weather.example/{city}")
        body = await response.json()
        self.ctx.storage.put("last", body["url"])
        return {"status": response.status, "body": body, "took_ms": Date.now() - started}


async def test_an_object_fetches_a_service_with_latency_in_lab_time(lab: Lab) -> None:
    lab.service("https://weather.example/", weather, latency=0.25)
    lab.bind("R", Reporter)
    start = lab.now()
    result = await lab.env.R.getByName("r").report("oslo")
    assert result == {"status": 200, "took_ms": 250, "body": {
        "url": "https://weather.example/oslo", "method": "GET"}}
    assert lab.now() - start == pytest.approx(0.25)
    kinds = [e.kind for e in lab.trace.events(obj="R:r")
             if e.kind in (trace.EXTERNAL_AWAIT, trace.EXTERNAL_DONE, trace.WRITE)]
    assert kinds == [trace.EXTERNAL_AWAIT, trace.EXTERNAL_DONE, trace.WRITE]
    assert lab.trace.events(trace.EXTERNAL_AWAIT)[0].detail == {
        "what": "fetch https://weather.example/oslo"}


async def test_the_input_gate_is_open_while_a_fetch_is_in_flight(lab: Lab) -> None:
    class Slow(DurableObject):
        def __init__(self, ctx, env):
            super().__init__(ctx, env)
            self.log: list[str] = []

        async def slow(self):
            self.log.append("slow starts")
            await fetch("https://slow.example/")
            self.log.append("slow ends")
            return self.log

        async def quick(self):
            self.log.append("quick")

    lab.service("https://slow.example/", lambda request: "ok", latency=1.0)
    lab.bind("S", Slow)
    stub = lab.env.S.getByName("s")
    slow = stub.slow()
    await stub.quick()
    assert await slow == ["slow starts", "quick", "slow ends"]


async def test_a_worker_and_the_notebook_can_fetch_too(lab: Lab) -> None:
    class Proxy(WorkerEntrypoint):
        async def fetch(self, request):
            upstream = await fetch("https://api.example/v1/items", method="POST", body="x")
            return Response(await upstream.text(), status=upstream.status)

    async def items(request: Request) -> Response:
        return Response(f"{request.method} {await request.text()}", status=201)

    lab.service("https://api.example/", items, latency=2)
    lab.worker(Proxy)
    response = await lab.fetch("http://front/")
    assert (response.status, await response.text()) == (201, "POST x")
    direct = await fetch("https://api.example/v1/other")
    assert await direct.text() == "GET "
    assert lab.now() - 1767225600 == pytest.approx(4.0)  # two calls of 2 s each, from 2026-01-01


async def test_the_longest_matching_prefix_answers_and_plain_results_become_responses(
        lab: Lab) -> None:
    lab.service("https://api.example/", lambda request: "general")
    lab.service("https://api.example/users/", lambda request: {"user": request.url[-3:]})
    general = await fetch("https://api.example/items")
    user = await fetch("https://api.example/users/bob")
    assert (await general.text(), general.headers.get("content-type")) == (
        "general", "text/plain;charset=UTF-8")
    assert (await user.json(), user.headers.get("content-type")) == (
        {"user": "bob"}, "application/json")


async def test_an_unregistered_url_is_an_error_naming_it(lab: Lab) -> None:
    lab.service("https://api.example/", weather)
    with pytest.raises(NoServiceError) as info:
        await fetch("https://elsewhere.example/x")
    assert str(info.value) == (
        "No service answers https://elsewhere.example/x (registered: https://api.example/). "
        'dolab objects have no real network: register one with '
        'lab.service("https://api.example.com/", handler).')
    assert isinstance(info.value, ConnectionError)
    with pytest.raises(TypeError, match="Invalid URL: /relative"):
        await fetch("/relative")


async def test_outbound_fetch_waits_for_earlier_writes_and_is_never_sent_if_they_fail() -> None:
    """Spec §7: outgoing requests are held by the output gate like results."""
    from dolab import DurableObject, DurableObjectReset, Lab, Response, fetch

    calls: list[str] = []
    lab = Lab(path=None, clock="virtual")
    lab.service("https://audit.example/", lambda request: calls.append(request.url) or
                Response("ok"))

    class Ledger(DurableObject):
        async def pay(self, amount):
            self.ctx.storage.put("balance", amount)
            await fetch("https://audit.example/paid")
            return "paid"

    lab.bind("L", Ledger)
    stub = lab.env.L.getByName("a")
    assert await stub.pay(1) == "paid" and calls == ["https://audit.example/paid"]
    lab.fail_next_commit = OSError("disk full")
    with pytest.raises(DurableObjectReset):
        await lab.env.L.getByName("a").pay(2)
    assert calls == ["https://audit.example/paid"]
    assert lab.storage_of(stub) == {"balance": 1}
    lab.close()
