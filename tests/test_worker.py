"""The Worker in front of the objects, wrangler configuration, missing bindings, compatibility dates
(spec §10, DESIGN.md §3)."""
from __future__ import annotations

import json
import textwrap
import types
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from dolab import DurableObject, Lab, Response, WorkerEntrypoint, trace
from dolab.config import ConfigError

# ---- WorkerEntrypoint and lab.fetch --------------------------------------------------------------


class Counter(DurableObject):
    async def increment(self, by):
        count = (await self.ctx.storage.get("count") or 0) + by
        self.ctx.storage.put("count", count)
        return count

    async def note(self, text):
        notes = await self.ctx.storage.get("notes") or []
        self.ctx.storage.put("notes", notes + [text])


class Api(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlsplit(request.url).path
        stub = self.env.COUNTER.getByName(path.strip("/") or "root")
        if request.method == "POST":
            body = await request.json()
            self.ctx.waitUntil(stub.note(f"posted {body['by']}"))  # after the response
            count = await stub.increment(body["by"])
            return Response.json({"count": count, "agent": request.headers.get("x-agent")})
        return Response(f"{request.method} {path}", headers={"x-served-by": "Api"})


@pytest.fixture
def api(lab: Lab) -> Lab:
    lab.bind("COUNTER", Counter)
    lab.worker(Api)
    return lab


async def test_lab_fetch_dispatches_through_the_worker(api: Lab) -> None:
    response = await api.fetch("http://app/items")
    assert (response.status, await response.text(), response.headers.get("X-Served-By")) == (
        200, "GET /items", "Api")
    posted = await api.fetch("http://app/c1", method="POST", headers={"X-Agent": "test"},
                             body=json.dumps({"by": 5}))
    assert await posted.json() == {"count": 5, "agent": "test"}
    worker_request = api.trace.events(trace.DELIVERED, obj="worker")[-1].request
    assert [e.kind for e in api.trace.events(obj="worker")][-2:] == [
        trace.DELIVERED, trace.FINISHED]
    assert api.trace.events(trace.FINISHED, obj="worker", request=worker_request)[0].detail == {
        "status": 200}


async def test_worker_waitUntil_runs_after_the_response(api: Lab) -> None:
    await api.fetch("http://app/c2", method="POST", body='{"by": 1}')
    await api.settle()
    stub = api.env.COUNTER.getByName("c2")
    assert api.storage_of(stub) == {"count": 1, "notes": ["posted 1"]}


async def test_lab_fetch_needs_a_worker(lab: Lab) -> None:
    with pytest.raises(RuntimeError) as info:
        await lab.fetch("http://app/")
    assert str(info.value) == (
        "No Worker is bound: define a WorkerEntrypoint subclass and call lab.worker(MyWorker) "
        "(or use the %%worker cell magic).")
    with pytest.raises(TypeError, match="needs a class that extends WorkerEntrypoint"):
        lab.worker(Counter)


async def test_a_worker_error_reaches_the_caller_and_the_trace(lab: Lab) -> None:
    class Broken(WorkerEntrypoint):
        async def fetch(self, request):
            raise ValueError("bad route")

    lab.worker(Broken)
    with pytest.raises(ValueError, match="bad route"):
        await lab.fetch("http://app/")
    assert lab.trace.events(trace.ERROR, obj="worker")[0].detail == {
        "error": "ValueError: bad route"}


# ---- missing binding -----------------------------------------------------------------------------


async def test_a_missing_binding_names_itself_and_shows_the_entry_to_add(api: Lab) -> None:
    with pytest.raises(AttributeError) as info:
        _ = api.env.NOPE
    assert str(info.value) == (
        "env has no binding named 'NOPE' (bindings: COUNTER). Declare it in wrangler.toml:\n\n"
        "[[durable_objects.bindings]]\n"
        'name = "NOPE"\n'
        'class_name = "Nope"\n\n'
        'or in the lab: lab.bind("NOPE", Nope).')

    class Lost(WorkerEntrypoint):
        async def fetch(self, request):
            return await self.env.ROOMS.getByName("x").fetch(request)

    api.worker(Lost)
    with pytest.raises(AttributeError, match=r"env has no binding named 'ROOMS'"):
        await api.fetch("http://app/")


# ---- wrangler configuration ----------------------------------------------------------------------


class ChatRoom(DurableObject):
    async def hello(self):
        return "room"


class RateLimiter(DurableObject):
    async def hello(self):
        return "limiter"


class Front(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(await self.env.LIMITER.getByName("l").hello())


WRANGLER_TOML = """\
name = "chat-worker"
main = "src/entry.py"
compatibility_date = "2026-03-01"
compatibility_flags = ["python_workers"]

[[durable_objects.bindings]]
name = "ROOMS"
class_name = "ChatRoom"

[[durable_objects.bindings]]
name = "LIMITER"
class_name = "RateLimiter"

[[migrations]]
tag = "v1"
new_classes = ["ChatRoom"]

[[migrations]]
tag = "v2"
new_sqlite_classes = ["RateLimiter"]
"""

WRANGLER_JSONC = """\
// the same Worker, as wrangler.jsonc
{
  "name": "chat-worker",
  "compatibility_date": "2026-03-01",
  "durable_objects": {
    "bindings": [
      { "name": "ROOMS", "class_name": "ChatRoom" },
      { "name": "LIMITER", "class_name": "RateLimiter" }, /* trailing comma */
    ],
  },
  "migrations": [
    { "tag": "v1", "new_classes": ["ChatRoom"] },
    { "tag": "v2", "new_sqlite_classes": ["RateLimiter"] },
  ],
}
"""

MODULE = types.SimpleNamespace(ChatRoom=ChatRoom, RateLimiter=RateLimiter, Front=Front)


@pytest.mark.parametrize("filename, text", [("wrangler.toml", WRANGLER_TOML),
                                            ("wrangler.jsonc", WRANGLER_JSONC)])
async def test_wrangler_config_with_two_bindings_and_migrations(
        tmp_path: Path, filename: str, text: str) -> None:
    config = tmp_path / filename
    config.write_text(text)
    lab = Lab(path=None, clock="virtual", config=config, module=MODULE)
    try:
        assert (lab.name, lab.compatibility_date) == ("chat-worker", "2026-03-01")
        assert {name: (b.cls, b.backend) for name, b in lab.bindings.items()} == {
            "ROOMS": (ChatRoom, "kv"), "LIMITER": (RateLimiter, "sqlite")}
        assert lab.bindings["ROOMS"].key == "chat-worker-ChatRoom"
        assert lab.worker_cls is Front
        assert await (await lab.fetch("http://chat/")).text() == "limiter"
        assert await lab.env.ROOMS.getByName("r").hello() == "room"
    finally:
        lab.close()


async def test_a_bound_class_the_module_does_not_define_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "wrangler.toml"
    config.write_text(WRANGLER_TOML)
    with pytest.raises(ConfigError) as info:
        Lab(path=None, clock="virtual", config=config,
            module={"ChatRoom": ChatRoom, "Front": Front})
    assert str(info.value) == (
        "Your Worker depends on the following Durable Objects, which are not exported in your "
        "entrypoint file: RateLimiter.\n"
        f"You should export these objects from your entrypoint, {config}.")


async def test_a_class_no_migration_creates_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "wrangler.toml"
    config.write_text(textwrap.dedent("""\
        name = "w"
        [[durable_objects.bindings]]
        name = "ROOMS"
        class_name = "ChatRoom"
        """))
    with pytest.raises(ConfigError, match="Durable Object class ChatRoom is not created by any "
                                          "migration"):
        Lab(path=None, clock="virtual", config=config, module=MODULE)


# ---- compatibility-date gates --------------------------------------------------------------------


class Alarmed(DurableObject):
    async def alarm(self, info=None):
        pass

    async def wipe(self):
        await self.ctx.storage.setAlarm(4_000_000_000_000)
        self.ctx.storage.put("k", 1)
        await self.ctx.storage.deleteAll()
        return [await self.ctx.storage.getAlarm(), await self.ctx.storage.get("k")]


@pytest.mark.parametrize("date, alarm_after_delete_all", [("2026-02-23", 4_000_000_000_000),
                                                          ("2026-02-24", None)])
async def test_delete_all_deletes_the_alarm_from_2026_02_24(
        date: str, alarm_after_delete_all: int | None) -> None:  # B41
    lab = Lab(path=None, clock="virtual", compatibility_date=date)
    lab.bind("A", Alarmed)
    assert await lab.env.A.getByName("a").wipe() == [alarm_after_delete_all, None]
    lab.close()


async def test_the_config_compatibility_date_gates_the_close_reason_limit(tmp_path: Path) -> None:
    from dolab import WebSocketPair

    long_reason = "r" * 124

    class Closer(WorkerEntrypoint):
        async def fetch(self, request):
            client, server = WebSocketPair()
            server.accept()
            server.close(4000, long_reason)
            return Response(None, status=101, web_socket=client)

    config = tmp_path / "wrangler.toml"
    config.write_text('name = "w"\ncompatibility_date = "2026-03-02"\n')
    lab = Lab(path=None, clock="virtual", config=config, module={"Closer": Closer})
    client = await lab.connect("ws://w/")
    assert (client.close_code, client.close_reason) == (4000, long_reason)
    lab.compatibility_date = "2026-03-03"
    with pytest.raises(Exception, match="must not be longer than 123 bytes"):
        await lab.connect("ws://w/")
    lab.close()
