"""dolab.checks: the pitfall checker (one block per code: offending snippets found, correct ones
not), the wrangler reader, the error diagnostic over every error text of the spec, the CLI, and
the corpus used by bench/checker_precision.py."""

from __future__ import annotations

import json
import runpy
import string
import textwrap
from pathlib import Path

import pytest

from dolab import errors as E
from dolab.checks import (
    CODES,
    LESSONS,
    check,
    explain,
    known_errors,
    main,
    strip_jsonc,
    wrangler_bindings,
)

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).parent / "corpus"
HEAD = "from dolab import DurableObject, WorkerEntrypoint, Response, scheduler, fetch\n"


def codes(source: str, **kwargs: object) -> list[str]:
    return [f.code for f in check(HEAD + textwrap.dedent(source), **kwargs)]  # type: ignore[arg-type]


def params(cases: dict[str, str]) -> list[object]:
    return [pytest.param(src, id=name) for name, src in cases.items()]


# ---- kv-for-state ------------------------------------------------------------------------------

KV_BAD = {
    "kv-counter": """
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                n = int(await self.env.COUNTS.get("hits") or 0)
                await self.env.COUNTS.put("hits", str(n + 1))
                return Response(str(n + 1))
    """,
    "kv-json-state-through-alias": """
        import json
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                kv = self.env.STATE
                state = json.loads(await kv.get("room:1") or "{}")
                state["members"] = state.get("members", 0) + 1
                await kv.put("room:1", json.dumps(state))
                return Response.json(state)
    """,
    "module-dict-in-worker": """
        sessions = {}
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                user = request.headers.get("x-user")
                sessions[user] = sessions.get(user, 0) + 1
                return Response.json({"visits": sessions[user]})
    """,
    "worker-class-list": """
        class Default(WorkerEntrypoint):
            visitors = []
            async def fetch(self, request):
                self.visitors.append(request.headers.get("x-user"))
                return Response(str(len(self.visitors)))
    """,
    "global-counter": """
        hits = 0
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                global hits
                hits += 1
                return Response(str(hits))
    """,
    "do-keeps-its-state-in-kv": """
        class Room(DurableObject):
            async def join(self, user):
                members = (await self.env.ROOMS_KV.get("members") or "").split(",")
                members.append(user)
                await self.env.ROOMS_KV.put("members", ",".join(members))
                return members
    """,
    "helper-function-reached-from-worker": """
        from collections import defaultdict
        totals = defaultdict(int)
        def record(user, amount):
            totals[user] += amount
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                record(request.headers.get("x-user"), 1)
                return Response("ok")
    """,
}

KV_GOOD = {
    "kv-read-only-config": """
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                banner = await self.env.CONFIG.get("banner")
                return Response(banner or "welcome")
    """,
    "kv-cache-of-an-upstream": """
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                cached = await self.env.CACHE_KV.get(request.url)
                if cached is not None:
                    return Response(cached)
                upstream = await fetch(request.url)
                body = await upstream.text()
                await self.env.CACHE_KV.put(request.url, body, expirationTtl=60)
                return Response(body)
    """,
    "module-constant-table-read-only": """
        PRICES = {"basic": 5, "pro": 20}
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                plan = request.headers.get("x-plan", "basic")
                return Response.json({"price": PRICES.get(plan, 0)})
    """,
    "namespace-get-by-id-is-not-kv": """
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                ns = self.env.ROOMS
                stub = ns.get(ns.idFromName("lobby"))
                return await stub.fetch(request)
    """,
    "module-cache-dict": """
        _schema_cache = {}
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if "schema" not in _schema_cache:
                    _schema_cache["schema"] = await (await fetch("https://x.test/schema")).json()
                return Response.json(_schema_cache["schema"])
    """,
    "per-request-worker-field": """
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                self.user = request.headers.get("x-user")
                stub = self.env.PROFILES.getByName(self.user)
                return Response.json(await stub.show())
    """,
    "dict-mutated-inside-a-durable-object": """
        class Room(DurableObject):
            async def join(self, user):
                self.members = getattr(self, "members", {})
                self.members[user] = True
                return len(self.members)
    """,
}


@pytest.mark.parametrize("source", params(KV_BAD))
def test_kv_for_state_found(source: str) -> None:
    assert "kv-for-state" in codes(source)


@pytest.mark.parametrize("source", params(KV_GOOD))
def test_kv_for_state_not_flagged(source: str) -> None:
    assert codes(source) == []


# ---- new-id-per-request ------------------------------------------------------------------------

NEW_ID_BAD = {
    "inline": """
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return await self.env.CARTS.get(self.env.CARTS.newUniqueId()).fetch(request)
    """,
    "id-in-a-local": """
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                user = request.headers.get("x-user")
                cart_id = self.env.CARTS.newUniqueId()
                stub = self.env.CARTS.get(cart_id)
                return Response.json(await stub.add(user, "sku-1"))
    """,
    "namespace-alias": """
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                ns = self.env.GAMES
                game = ns.get(ns.newUniqueId())
                await game.join(request.headers.get("x-player"))
                return Response("joined")
    """,
    "module-on-fetch": """
        async def on_fetch(request, env):
            stub = env.ROOMS.get(env.ROOMS.newUniqueId())
            return await stub.fetch(request)
    """,
    "rpc-entrypoint-method": """
        class Api(WorkerEntrypoint):
            async def track(self, user, event):
                counter = self.env.COUNTERS.get(self.env.COUNTERS.newUniqueId())
                return await counter.add(event)
    """,
}

NEW_ID_GOOD = {
    "by-name": """
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                stub = self.env.CARTS.getByName(request.headers.get("x-user"))
                return await stub.fetch(request)
    """,
    "id-returned-as-text": """
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                room_id = self.env.ROOMS.newUniqueId()
                await self.env.ROOMS.get(room_id).setup()
                return Response.json({"room": room_id.toString()}, status=201)
    """,
    "id-stored-in-an-index": """
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                doc_id = self.env.DOCS.newUniqueId()
                await self.env.DOCS.get(doc_id).create(await request.text())
                await self.env.INDEX.getByName("all").add(str(doc_id))
                return Response("created", status=201)
    """,
    "stub-id-returned": """
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                stub = self.env.ROOMS.get(self.env.ROOMS.newUniqueId())
                await stub.setup()
                return Response(stub.id.toString(), status=201)
    """,
    "unique-job-object-spawned-by-a-durable-object": """
        class Scheduler(DurableObject):
            async def submit(self, job):
                worker = self.env.JOBS.get(self.env.JOBS.newUniqueId())
                await worker.run(job)
                return "queued"
    """,
}


@pytest.mark.parametrize("source", params(NEW_ID_BAD))
def test_new_id_per_request_found(source: str) -> None:
    assert "new-id-per-request" in codes(source)


@pytest.mark.parametrize("source", params(NEW_ID_GOOD))
def test_new_id_per_request_not_flagged(source: str) -> None:
    assert codes(source) == []


# ---- external-coordination ---------------------------------------------------------------------

COORD_BAD = {
    "import-redis": """
        import redis
        r = redis.Redis()
        class Counter(DurableObject):
            async def inc(self):
                r.incr("n")
    """,
    "redis-asyncio-setnx": """
        from redis.asyncio import Redis
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                client = Redis(host="cache")
                if not await client.set("lock:room", "1", nx=True, ex=10):
                    return Response("busy", status=409)
                return await self.env.ROOMS.getByName("room").fetch(request)
    """,
    "aliased-asyncio-lock": """
        import asyncio as aio
        class Doc(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                self.guard = aio.Lock()
            async def edit(self, patch):
                async with self.guard:
                    await fetch("https://lint.test", method="POST", body=patch)
    """,
    "threading-lock-from-import": """
        from threading import Lock
        class Counter(DurableObject):
            lock = Lock()
            async def inc(self):
                with self.lock:
                    self.n = getattr(self, "n", 0) + 1
    """,
    "filelock": """
        from filelock import FileLock
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                with FileLock("/tmp/room.lock"):
                    return await self.env.ROOMS.getByName("r").fetch(request)
    """,
    "postgres-advisory-lock-on-a-helper": """
        class Seats:
            def __init__(self, conn):
                self.conn = conn
            async def hold(self, seat):
                await self.conn.execute("SELECT pg_advisory_lock($1)", seat)
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                await Seats(self.env.PG).hold(7)
                return Response("held")
    """,
}

COORD_GOOD = {
    "object-serializes": """
        class Seats(DurableObject):
            async def hold(self, seat):
                taken = self.ctx.storage.sql.exec("SELECT 1 FROM held WHERE seat = ?", seat)
                if taken.toArray():
                    return False
                self.ctx.storage.sql.exec("INSERT INTO held (seat) VALUES (?)", seat)
                return True
    """,
    "kv-put-with-options": """
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                await self.env.SESSIONS_KV.put("s", "v", expirationTtl=60)
                return Response("ok")
    """,
    "headers-set": """
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                response = Response("ok")
                response.headers.set("cache-control", "no-store")
                return response
    """,
    "critical-section-with-block-concurrency-while": """
        class Doc(DurableObject):
            async def edit(self, patch):
                return await self.ctx.blockConcurrencyWhile(lambda: self._apply(patch))
            async def _apply(self, patch):
                self.ctx.storage.put("doc", patch)
                return True
    """,
}


@pytest.mark.parametrize("source", params(COORD_BAD))
def test_external_coordination_found(source: str) -> None:
    assert "external-coordination" in codes(source)


@pytest.mark.parametrize("source", params(COORD_GOOD))
def test_external_coordination_not_flagged(source: str) -> None:
    assert codes(source) == []


def test_external_coordination_ignores_code_that_is_not_durable_object_code() -> None:
    script = ("import redis\nimport threading\nlock = threading.Lock()\n"
              "redis.Redis().set('a', 1, nx=True)\n")
    assert check(script) == []


# ---- missing-binding ---------------------------------------------------------------------------

ROUTER = """
    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            stub = self.env.COUNTER.getByName("x")
            return Response.json({"n": await stub.increment()})
"""


def test_missing_binding_found_with_the_labs_bindings() -> None:
    [finding] = check(HEAD + textwrap.dedent(ROUTER), bindings=["COUNTERS"])
    assert finding.code == "missing-binding"
    assert finding.line == 5
    assert "Did you mean `COUNTERS`?" in finding.message
    assert '[[durable_objects.bindings]]' in finding.fix and 'name = "COUNTER"' in finding.fix


def test_missing_binding_found_through_an_alias_and_in_on_fetch() -> None:
    source = """
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                rooms = self.env.ROOMS
                return await rooms.getByName("lobby").fetch(request)
        async def on_fetch(request, env):
            return await env.CHATS.idFromName("x")
    """
    assert codes(source, bindings=[]) == ["missing-binding", "missing-binding"]


def test_missing_binding_suggests_the_class_named_like_the_binding() -> None:
    source = """
        class ChatRoom(DurableObject):
            pass
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return await self.env.CHAT_ROOM.getByName("a").fetch(request)
    """
    [finding] = check(HEAD + textwrap.dedent(source), bindings=["OTHER"])
    assert 'lab.bind("CHAT_ROOM", ChatRoom)' in finding.fix


def test_missing_binding_skipped_when_no_bindings_are_known() -> None:
    assert codes(ROUTER) == []


def test_missing_binding_not_flagged_for_a_declared_name_or_a_plain_variable() -> None:
    source = ROUTER + """
    class Api(WorkerEntrypoint):
        async def token(self):
            return {"auth": self.env.API_TOKEN}
    """
    assert codes(source, bindings=["COUNTER"]) == []


WRANGLER_TOML = """
name = "my-worker"
main = "src/entry.py"

[vars]
GREETING = "hi"

[[durable_objects.bindings]]
name = "COUNTER"
class_name = "Counter"

[[kv_namespaces]]
binding = "CONFIG"
id = "abc"

[[migrations]]
tag = "v1"
new_sqlite_classes = ["Counter"]

[env.staging]
name = "my-worker-staging"
[[env.staging.durable_objects.bindings]]
name = "STAGING_ROOMS"
class_name = "Room"
"""

WRANGLER_JSONC = """{
  // the worker
  "name": "my-worker",
  "main": "https://example.com/not-a-comment", /* a URL with // inside a string */
  "durable_objects": {
    "bindings": [
      {"name": "COUNTER", "class_name": "Counter"},  // trailing comma next
    ],
  },
  "d1_databases": [{"binding": "DB", "database_name": "x"}],
}
"""


def test_wrangler_toml_bindings(tmp_path: Path) -> None:
    path = tmp_path / "wrangler.toml"
    path.write_text(WRANGLER_TOML)
    assert wrangler_bindings(path) == {"COUNTER", "CONFIG", "GREETING", "STAGING_ROOMS"}


def test_wrangler_jsonc_bindings(tmp_path: Path) -> None:
    path = tmp_path / "wrangler.jsonc"
    path.write_text(WRANGLER_JSONC)
    assert wrangler_bindings(path) == {"COUNTER", "DB"}
    assert json.loads(strip_jsonc(WRANGLER_JSONC))["main"] == "https://example.com/not-a-comment"


def test_missing_binding_from_a_wrangler_file(tmp_path: Path) -> None:
    path = tmp_path / "wrangler.toml"
    path.write_text(WRANGLER_TOML)
    assert codes(ROUTER, wrangler=path) == []
    other = ROUTER.replace("COUNTER", "ROOMS")
    assert codes(other, wrangler=path) == ["missing-binding"]


def test_missing_binding_suggests_kv_for_kv_use() -> None:
    source = """
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                await self.env.LOGS.put("k", "v")
                return Response("ok")
    """
    [finding] = check(HEAD + textwrap.dedent(source), bindings=[])
    assert "[[kv_namespaces]]" in finding.fix


# ---- storage-read-per-request ------------------------------------------------------------------

READ_BAD = {
    "counter-reads-every-call": """
        class Counter(DurableObject):
            async def increment(self):
                n = await self.ctx.storage.get("count") or 0
                await self.ctx.storage.put("count", n + 1)
                return n + 1
    """,
    "storage-alias": """
        class Counter(DurableObject):
            async def increment(self):
                storage = self.ctx.storage
                n = (await storage.get("count") or 0) + 1
                storage.put("count", n)
                return n
    """,
    "private-helper-called-by-handlers": """
        class Settings(DurableObject):
            async def _load(self):
                return await self.ctx.storage.get("settings") or {}
            async def read(self, name):
                return (await self._load()).get(name)
            async def write(self, name, value):
                settings = await self._load()
                settings[name] = value
                self.ctx.storage.put("settings", settings)
    """,
    "websocket-message-handler": """
        class Room(DurableObject):
            async def webSocketMessage(self, ws, message):
                topic = await self.ctx.storage.get("topic")
                ws.send(f"{topic}: {message}")
            async def setTopic(self, topic):
                self.ctx.storage.put("topic", topic)
    """,
    "module-constant-key": """
        STATE = "state"
        class Game(DurableObject):
            async def move(self, m):
                state = await self.ctx.storage.get(STATE) or {"moves": 0}
                state["moves"] += 1
                self.ctx.storage.put(STATE, state)
    """,
    "loads-one-key-once-but-reads-another-per-request": """
        class Shop(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                ctx.blockConcurrencyWhile(self.load)
            async def load(self):
                self.name = await self.ctx.storage.get("name")
            async def buy(self, sku):
                stock = await self.ctx.storage.get(["stock", "sold"])
                self.ctx.storage.put("sold", stock.get("sold", 0) + 1)
    """,
}

READ_GOOD = {
    "loaded-once": """
        class Counter(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                ctx.blockConcurrencyWhile(self.load)
            async def load(self):
                self.count = await self.ctx.storage.get("count") or 0
            async def increment(self):
                self.count += 1
                self.ctx.storage.put("count", self.count)
                return self.count
    """,
    "dynamic-key-lookup": """
        class Users(DurableObject):
            async def show(self, uid):
                return await self.ctx.storage.get(f"user:{uid}")
            async def save(self, uid, profile):
                self.ctx.storage.put(f"user:{uid}", profile)
    """,
    "lazy-load": """
        class Counter(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                self.count = None
            async def increment(self):
                if self.count is None:
                    self.count = await self.ctx.storage.get("count") or 0
                self.count += 1
                self.ctx.storage.put("count", self.count)
                return self.count
    """,
    "loaded-with-list-from-a-lambda": """
        class Bag(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                ctx.blockConcurrencyWhile(lambda: self._restore())
            async def _restore(self):
                self.items = dict(await self.ctx.storage.list())
            async def refresh(self):
                self.items["a"] = await self.ctx.storage.get("a")
                self.ctx.storage.put("a", 1)
    """,
    "read-only-key": """
        class Room(DurableObject):
            async def rules(self):
                return await self.ctx.storage.get("rules") or "be nice"
    """,
    "alarm-reads-storage": """
        class Cleaner(DurableObject):
            async def alarm(self, alarm_info=None):
                runs = await self.ctx.storage.get("runs") or 0
                self.ctx.storage.put("runs", runs + 1)
    """,
}


@pytest.mark.parametrize("source", params(READ_BAD))
def test_storage_read_per_request_found(source: str) -> None:
    assert "storage-read-per-request" in codes(source)


@pytest.mark.parametrize("source", params(READ_GOOD))
def test_storage_read_per_request_not_flagged(source: str) -> None:
    assert codes(source) == []


# ---- timer-instead-of-alarm --------------------------------------------------------------------

TIMER_BAD = {
    "aliased-asyncio": """
        import asyncio as aio
        class Session(DurableObject):
            async def touch(self):
                await aio.sleep(3600)
                await self.ctx.storage.deleteAll()
    """,
    "from-asyncio-import-sleep": """
        from asyncio import sleep
        class Reminder(DurableObject):
            async def remind(self, text):
                await sleep(60)
                await self.env.MAIL.getByName("m").send(text)
    """,
    "call-later": """
        import asyncio
        class Cache(DurableObject):
            async def put(self, key, value):
                self.ctx.storage.put(key, value)
                asyncio.get_running_loop().call_later(30, self.evict, key)
            def evict(self, key):
                self.ctx.storage.delete(key)
    """,
    "threading-timer-on-a-helper-class": """
        import threading
        class Expirer:
            def arm(self, fn, seconds):
                threading.Timer(seconds, fn).start()
        class Session(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                self.expirer = Expirer()
            async def login(self, user):
                self.expirer.arm(self.logout, 900)
            def logout(self):
                self.ctx.storage.delete("user")
    """,
    "scheduler-wait-a-minute": """
        class Poll(DurableObject):
            async def open(self):
                self.ctx.storage.put("open", True)
                await scheduler.wait(60_000)
                self.ctx.storage.put("open", False)
    """,
    "short-sleep-in-a-background-task": """
        import asyncio
        class Debounce(DurableObject):
            async def change(self, value):
                self.ctx.storage.put("value", value)
                asyncio.create_task(self._publish_later())
            async def _publish_later(self):
                await asyncio.sleep(0.5)
                await self.env.FEED.getByName("f").publish(await self.ctx.storage.get("value"))
    """,
    "periodic-loop": """
        import asyncio
        class Heartbeat(DurableObject):
            async def start(self):
                while True:
                    await asyncio.sleep(0.2)
                    for ws in self.ctx.getWebSockets():
                        ws.send("ping")
    """,
    "computed-delay-time-sleep": """
        from time import sleep as snooze
        class Backup(DurableObject):
            async def schedule(self, delay):
                snooze(delay)
                self.ctx.storage.put("backed-up", True)
    """,
}

TIMER_GOOD = {
    "alarm": """
        class Session(DurableObject):
            async def touch(self):
                await self.ctx.storage.setAlarm(60_000)
            async def alarm(self, alarm_info=None):
                await self.ctx.storage.deleteAll()
    """,
    "sleep-zero-yields": """
        import asyncio
        class Work(DurableObject):
            async def step(self):
                await asyncio.sleep(0)
                return 1
    """,
    "short-latency-stand-in": """
        class Slow(DurableObject):
            async def ping(self):
                await scheduler.wait(5)
                return "pong"
    """,
    "backoff-before-a-retry": """
        import asyncio
        class Relay(DurableObject):
            async def forward(self, body):
                for attempt in range(3):
                    try:
                        response = await fetch("https://x.test", method="POST", body=body)
                        return await response.text()
                    except OSError:
                        await asyncio.sleep(2 ** attempt)
    """,
    "worker-retry-loop": """
        import asyncio
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                for attempt in range(4):
                    await asyncio.sleep(0.1 * attempt)
                return await self.env.ROOMS.getByName("a").fetch(request)
    """,
    "helper-only-the-worker-uses": """
        import asyncio
        async def polite_pause():
            await asyncio.sleep(2)
        class Room(DurableObject):
            async def hello(self):
                return "hi"
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                await polite_pause()
                return Response("ok")
    """,
}


@pytest.mark.parametrize("source", params(TIMER_BAD))
def test_timer_instead_of_alarm_found(source: str) -> None:
    assert "timer-instead-of-alarm" in codes(source)


@pytest.mark.parametrize("source", params(TIMER_GOOD))
def test_timer_instead_of_alarm_not_flagged(source: str) -> None:
    assert codes(source) == []


# ---- oversized-value ---------------------------------------------------------------------------

BIG_BAD = {
    "appended-field-written-whole": """
        class Chat(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                ctx.blockConcurrencyWhile(self.load)
            async def load(self):
                self.messages = await self.ctx.storage.get("messages") or []
            async def post(self, text):
                self.messages.append(text)
                self.ctx.storage.put("messages", self.messages)
    """,
    "json-dumps-of-a-concatenated-list": """
        import json
        class Audit(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                self.log = []
                ctx.blockConcurrencyWhile(self.load)
            async def load(self):
                self.log = json.loads(await self.ctx.storage.get("log") or "[]")
            async def record(self, entry):
                self.log += [entry]
                self.ctx.storage.put("log", json.dumps(self.log))
    """,
    "local-read-append-write": """
        class Feed(DurableObject):
            async def add(self, item):
                items = await self.ctx.storage.get("items")
                if items is None:
                    items = []
                items.append(item)
                await self.ctx.storage.put("items", items)
    """,
    "local-derived-through-json": """
        import json
        class Feed(DurableObject):
            async def add(self, item):
                raw = await self.ctx.storage.get("feed.json")
                items = json.loads(raw) if raw else []
                items.insert(0, item)
                await self.ctx.storage.put("feed.json", json.dumps(items))
    """,
    "growing-transcript-string": """
        class Call(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                self.transcript = ""
            async def say(self, line):
                self.transcript += line + "\\n"
                self.ctx.storage.put({"transcript": self.transcript, "lines": 1})
    """,
    "spread-into-a-new-list": """
        class History(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                self.history = []
            async def push(self, item):
                self.history = [*self.history, item]
                self.ctx.storage.put("history", {"items": self.history})
    """,
}

BIG_GOOD = {
    "one-key-per-item": """
        class Chat(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                ctx.blockConcurrencyWhile(self.load)
            async def load(self):
                self.seq = await self.ctx.storage.get("seq") or 0
            async def post(self, text):
                self.seq += 1
                self.ctx.storage.put({"seq": self.seq, f"msg:{self.seq:08d}": text})
    """,
    "trimmed-by-slicing": """
        class Recent(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                ctx.blockConcurrencyWhile(self.load)
            async def load(self):
                self.items = await self.ctx.storage.get("recent") or []
            async def add(self, item):
                self.items.append(item)
                self.items = self.items[-100:]
                self.ctx.storage.put("recent", self.items)
    """,
    "bounded-by-a-length-test": """
        class Recent(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                ctx.blockConcurrencyWhile(self.load)
            async def load(self):
                self.items = await self.ctx.storage.get("recent") or []
            async def add(self, item):
                self.items.append(item)
                if len(self.items) > 50:
                    self.items.pop(0)
                self.ctx.storage.put("recent", self.items)
    """,
    "dict-keyed-by-id": """
        class Presence(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                ctx.blockConcurrencyWhile(self.load)
            async def load(self):
                self.seen = await self.ctx.storage.get("seen") or {}
            async def ping(self, user, at):
                self.seen[user] = at
                self.ctx.storage.put("seen", self.seen)
    """,
    "only-the-last-item-written": """
        class Chat(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                self.buffer = []
            async def post(self, text):
                self.buffer.append(text)
                self.ctx.storage.put(f"msg:{len(self.buffer)}", self.buffer[-1])
    """,
    "numeric-total": """
        class Till(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                ctx.blockConcurrencyWhile(self.load)
            async def load(self):
                self.total = await self.ctx.storage.get("total") or 0
            async def sell(self, amount):
                self.total += amount
                self.ctx.storage.put("total", self.total)
    """,
}


@pytest.mark.parametrize("source", params(BIG_BAD))
def test_oversized_value_found(source: str) -> None:
    assert "oversized-value" in codes(source)


@pytest.mark.parametrize("source", params(BIG_GOOD))
def test_oversized_value_not_flagged(source: str) -> None:
    assert codes(source) == []


# ---- await-between-read-and-write --------------------------------------------------------------

STALE_BAD = {
    "storage-read-timer-write": """
        class Counter(DurableObject):
            async def inc(self):
                v = await self.ctx.storage.get("c") or 0
                await scheduler.wait(5)
                await self.ctx.storage.put("c", v + 1)
    """,
    "field-read-fetch-field-write": """
        class Counter(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                self.count = 0
            async def inc(self):
                current = self.count
                await fetch("https://audit.test/inc")
                self.count = current + 1
    """,
    "aliased-sleep": """
        import asyncio as aio
        class Bank(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                self.balances = {}
            async def pay(self, user, amount):
                balance = self.balances.get(user, 0)
                await aio.sleep(0.01)
                self.balances[user] = balance - amount
    """,
    "stub-call-between": """
        class Seats(DurableObject):
            async def book(self, seat):
                taken = await self.ctx.storage.get("taken") or []
                await self.env.BILLING.getByName("b").charge(seat)
                taken = taken + [seat]
                self.ctx.storage.put("taken", taken)
    """,
    "helper-method-that-awaits-a-fetch": """
        class Votes(DurableObject):
            async def _notify(self):
                await fetch("https://hooks.test/vote")
            async def vote(self):
                n = await self.ctx.storage.get("n") or 0
                await self._notify()
                self.ctx.storage.put("n", n + 1)
    """,
    "one-line-augmented-assignment": """
        class Cart(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                self.total = 0
            async def add(self, sku):
                self.total += await self.env.PRICES.getByName("eu").price(sku)
                return self.total
    """,
    "sql-read-fetch-sql-write": """
        class Account(DurableObject):
            async def withdraw(self, cents):
                row = self.ctx.storage.sql.exec("SELECT cents FROM balance WHERE id = 1").one()
                await fetch("https://fraud.test/check")
                left = row["cents"] - cents
                self.ctx.storage.sql.exec("UPDATE balance SET cents = ? WHERE id = 1", left)
    """,
    "helper-class-holding-storage": """
        class Store:
            def __init__(self, storage):
                self.storage = storage
            async def bump(self, key):
                value = await self.storage.get(key) or 0
                await fetch("https://log.test")
                await self.storage.put(key, value + 1)
        class Counter(DurableObject):
            async def inc(self):
                await Store(self.ctx.storage).bump("n")
    """,
    "field-read-then-constant-key-write": """
        class Counter(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                ctx.blockConcurrencyWhile(self.load)
            async def load(self):
                self.count = await self.ctx.storage.get("count") or 0
            async def inc(self):
                n = self.count
                await self.env.AUDIT.getByName("a").record("inc")
                self.ctx.storage.put("count", n + 1)
    """,
}

STALE_GOOD = {
    "storage-awaits-only": """
        class Counter(DurableObject):
            async def inc(self, who):
                v = await self.ctx.storage.get(f"c:{who}") or 0
                await self.ctx.storage.put(f"c:{who}", v + 1)
    """,
    "external-call-first": """
        class Counter(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                self.count = 0
            async def inc(self):
                await fetch("https://audit.test/inc")
                current = self.count
                self.count = current + 1
    """,
    "inside-block-concurrency-while": """
        class Counter(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                self.count = 0
            async def inc(self):
                return await self.ctx.blockConcurrencyWhile(self._inc)
            async def _inc(self):
                current = self.count
                await scheduler.wait(5)
                self.count = current + 1
                return self.count
    """,
    "inside-a-transaction-closure": """
        class Counter(DurableObject):
            async def inc(self):
                async def body(txn):
                    v = await txn.get("c") or 0
                    await scheduler.wait(1)
                    await txn.put("c", v + 1)
                return await self.ctx.storage.transaction(body)
    """,
    "helper-that-only-awaits-storage": """
        class Counter(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                self.count = 0
            async def _flush(self):
                await self.ctx.storage.put("count", self.count)
            async def inc(self):
                n = self.count
                await self._flush()
                self.count = n + 1
    """,
    "different-target-after-the-await": """
        class Mirror(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                self.url = "https://x.test"
            async def refresh(self):
                url = self.url
                body = await (await fetch(url)).text()
                self.body = body
    """,
    "re-read-after-the-await": """
        class Counter(DurableObject):
            async def inc(self, who):
                v = await self.ctx.storage.get(f"c:{who}")
                await scheduler.wait(5)
                v = await self.ctx.storage.get(f"c:{who}") or 0
                await self.ctx.storage.put(f"c:{who}", v + 1)
    """,
}


@pytest.mark.parametrize("source", params(STALE_BAD))
def test_await_between_read_and_write_found(source: str) -> None:
    assert "await-between-read-and-write" in codes(source)


@pytest.mark.parametrize("source", params(STALE_GOOD))
def test_await_between_read_and_write_not_flagged(source: str) -> None:
    assert codes(source) == []


def test_await_between_read_and_write_names_the_read_the_await_and_the_write() -> None:
    [finding] = [f for f in check(HEAD + textwrap.dedent(STALE_BAD["storage-read-timer-write"]))
                 if f.code == "await-between-read-and-write"]
    assert finding.line == 7
    assert "`v` holds 'c' read at line 5" in finding.message
    assert "`await scheduler.wait(5)` at line 6" in finding.message


# ---- the checker as a whole --------------------------------------------------------------------

DESIGN_COUNTER = """
class Counter(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)
    async def load(self):
        self.count = await self.ctx.storage.get("count") or 0
    async def increment(self, by=1):
        self.count += by
        self.ctx.storage.put("count", self.count)
        return self.count
    async def fetch(self, request):
        return Response.json({"count": await self.increment()})

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        stub = self.env.COUNTER.getByName("x")
        return Response.json({"n": await stub.increment()})
"""


def test_the_design_counter_has_no_findings() -> None:
    assert check(HEAD + DESIGN_COUNTER, bindings=["COUNTER"]) == []


def test_a_notebook_cell_with_magics_and_top_level_await() -> None:
    cell = "%%durable_object COUNTER\n" + HEAD + DESIGN_COUNTER + "\nawait lab.fetch('http://x/')\n"
    assert check(cell) == []


def test_code_that_does_not_parse_raises_syntax_error() -> None:
    with pytest.raises(SyntaxError):
        check("class Broken(:\n")


def test_every_finding_names_its_lesson() -> None:
    lessons = {"01-tour", "02-why-not-kv", "03-one-instance-per-id", "04-no-external-locks",
               "05-input-gates", "06-output-gates", "07-initialization", "08-alarms-vs-timers",
               "09-storage-limits", "10-websockets", "11-workers-and-wrangler", "12-patterns",
               "13-export"}
    assert set(LESSONS) == set(CODES) and len(CODES) == 8
    assert set(LESSONS.values()) <= lessons
    found = check(HEAD + textwrap.dedent(TIMER_BAD["aliased-asyncio"]))
    assert [(f.code, f.line, f.lesson) for f in found] == [
        ("timer-instead-of-alarm", 6, "08-alarms-vs-timers")]
    assert "timer-instead-of-alarm" in str(found[0])
    assert "notebooks/08-alarms-vs-timers.ipynb" in str(found[0])


def test_findings_are_sorted_by_line() -> None:
    source = KV_BAD["kv-counter"] + TIMER_BAD["aliased-asyncio"]
    lines = [f.line for f in check(HEAD + textwrap.dedent(source))]
    assert lines == sorted(lines) and len(lines) == 2


# ---- explain -----------------------------------------------------------------------------------

#: Every Durable Object error text in the spec (§2–§11), as a runtime would print it, and the
#: title explain() must give it.
SPEC_ERRORS = [
    ("TypeError: Invalid Durable Object ID: must be 64 hex digits", "Invalid Durable Object ID"),
    ("TypeError: Durable Object ID is not valid for this namespace.", "ID from another namespace"),
    ("Error: Jurisdiction restrictions are not implemented in workerd.",
     "Jurisdictions not available locally"),
    ("TypeError: get called on jurisdictional subnamespace with an ID from a different "
     "jurisdiction", "Jurisdiction mismatch"),
    ("RangeError: unknown routingMode: fastest", "Unknown routingMode"),
    ("TypeError: Invalid URL: /x", "Invalid URL for stub.fetch"),
    ("TypeError: Fetch API cannot load: /x", "Invalid URL for stub.fetch"),
    ('TypeError: The RPC receiver does not implement the method "nope".',
     "RPC method not implemented"),
    ("TypeError: 'alarm' is a reserved method and cannot be called over RPC.",
     "Reserved method called over RPC"),
    ('TypeError: "total" is not a function.', "RPC property is not a function"),
    ("TypeError: The receiving Durable Object does not support RPC, because its class was not "
     "declared with `extends DurableObject`. Add it.", "Class does not support RPC"),
    ("Serialized RPC arguments or return values are limited to 32MiB, but the size of this value "
     "was: 40000000 bytes.", "RPC payload too large"),
    ("Error: A call to blockConcurrencyWhile() in a Durable Object waited for too long. The call "
     "was canceled and the Durable Object was reset.", "blockConcurrencyWhile() timed out"),
    ("Error: blockConcurrencyWhile() calls are nested too deeply.",
     "blockConcurrencyWhile() nested too deeply"),
    ("Error: Application called abort() to reset Durable Object.", "Object reset by abort()"),
    ("Creating new key-value backed Durable Object namespaces is no longer supported on this "
     "account. Please create a namespace using a `new_sqlite_classes` migration instead.",
     "New KV-backed namespaces not allowed"),
    ("Error: " + E.NOT_SQLITE, "Not backed by SQLite"),
    ("Error: SQL is not enabled for this Durable Object class. To enable it, change "
     "`new_classes` to `new_sqlite_classes` within the 'migrations' field in your wrangler.jsonc "
     "or wrangler.toml file.", "Not backed by SQLite"),
    ("Error: Durable Object is not backed by SQL.", "transactionSync() on a KV-backed object"),
    ("Error: The storage.kv (synchronous KV) API is only available for SQLite-backed Durable "
     "Objects, …", "Synchronous KV on a KV-backed object"),
    ("TypeError: put() called with undefined value.", "put() with an undefined value"),
    ("TypeError: " + E.PUT_SIGNATURE, "put() called with the wrong arguments"),
    ("TypeError: list() cannot be called with both start and startAfter values.",
     "list() with both start and startAfter"),
    ("TypeError: List limit must be positive.", "list() limit not positive"),
    ("RangeError: Keys cannot be larger than 2048 bytes. A key of size 2049 was provided.",
     "Storage key too large"),
    ("RangeError: Values cannot be larger than 131072 bytes. A value of size 131107 was "
     "provided.", "Storage value too large"),
    ("RangeError: Maximum number of key value pairs is 128. 129 pairs were provided.",
     "Too many keys in one call"),
    ("RangeError: Key and value together cannot be larger than 2097152 bytes (2 MB) on a "
     "SQLite-backed Durable Object. A key and value of size 2097200 were provided.",
     "Key and value over 2 MB (SQLite-backed)"),
    ("DataCloneError: () => 1 could not be cloned.", "DataCloneError: value could not be cloned"),
    ("Error: Cannot call deleteAll() within a transaction", "deleteAll() inside a transaction"),
    ("Error: Cannot put() on rolled back transaction", "Transaction used after rollback"),
    ("Error: Cannot call put() on transaction that has already committed: did you move `txn` "
     "outside of the closure?", "Transaction used after it committed"),
    ("Error: kv.list() iterator was invalidated because a new call to kv.list() was started. "
     "Only one kv.list() iterator can exist at a time.",
     "Synchronous kv.list() iterator invalidated"),
    ("Error: Expected exactly one result from SQL query, but got no results.",
     "SQL one() found no rows"),
    ("Error: Expected exactly one result from SQL query, but got multiple results.",
     "SQL one() found several rows"),
    ("Error: SQL code did not contain a statement.", "SQL without a statement"),
    ("Error: Wrong number of parameter bindings for SQL query.", "SQL binding count mismatch"),
    ("Error: To execute a transaction, please use the state.storage.transaction() or "
     "state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT "
     "statements. The JavaScript API is safer because it will automatically roll back on "
     "exceptions, and because it interacts correctly with Durable Objects' automatic atomic "
     "write coalescing.", "SQL BEGIN TRANSACTION / SAVEPOINT"),
    ("Error: not authorized: SQLITE_AUTH", "SQL not authorized (SQLITE_AUTH)"),
    ("Error: access to _cf_KV.key is prohibited", "SQL not authorized (SQLITE_AUTH)"),
    ('Error: near "SELEC": syntax error at offset 0', "SQL syntax error"),
    ("Error: datatype mismatch: SQLITE_MISMATCH", "SQL datatype mismatch"),
    ("Error: SQL cursor was closed because the same statement was executed again. …",
     "SQL cursor closed by a re-run statement"),
    ("Error: Durable Object was reset and rolled back to its last known good state because the "
     "application left the database in a state where constraints were violated: FOREIGN KEY "
     "constraint failed", "Reset for violated SQL constraints"),
    ("Error: database or disk is full: SQLITE_FULL", "SQLite storage full"),
    ("TypeError: setAlarm() cannot be called with an alarm time <= 0",
     "setAlarm() with a time <= 0"),
    ("TypeError: Your Durable Object class must have an alarm() handler in order to call "
     "setAlarm()", "setAlarm() without an alarm() handler"),
    ("Attempted to run a scheduled alarm without a handler, did you remember to export an "
     "alarm() function?", "Alarm fired without a handler"),
    ("Error: Durable Object is overloaded. Too many requests queued.", "Durable Object overloaded"),
    ("Error: Durable Object is overloaded. Too much data queued.", "Durable Object overloaded"),
    ("Error: Durable Object is overloaded. Requests queued for too long.",
     "Durable Object overloaded"),
    ("Error: Durable Object is overloaded. Too many requests for the same object within a 10 "
     "second window.", "Durable Object overloaded"),
    ("Error: Your account is generating too much load on Durable Objects. Please back off and try "
     "again later.", "Account generating too much load"),
    ("Error: Durable Object reset because its code was updated.",
     "Reset because the code was updated"),
    ("Error: Connection closed: this Durable Object instance is no longer active. Reconnect or "
     "retry the request.", "Instance no longer active"),
    ("Durable Object connection closed because the object was reset.",
     "WebSocket closed because the object was reset"),
    ("Error: Durable Object storage operation exceeded timeout which caused object to be reset.",
     "Storage operation timed out"),
    ("Error: Your account is doing too many concurrent storage operations. Please back off and "
     "try again later.", "Too many concurrent storage operations"),
    ("Error: Network connection lost.", "Network connection lost"),
    ("TypeError: You must call one of accept() or state.acceptWebSocket() on this WebSocket "
     "before sending messages.", "WebSocket send() before accept()"),
    ("TypeError: Can't call WebSocket send() after close().", "WebSocket send() after close()"),
    ("Error: a Hibernatable WebSocket cannot have more than 10 tags", "Too many WebSocket tags"),
    ('Error: "' + "t" * 300 + '" is longer than the max tag length (256 characters).',
     "WebSocket tag too long"),
    ("Error: only 32768 websockets can be accepted on a single Durable Object instance",
     "Too many hibernatable WebSockets"),
    ("Error: Cannot call `acceptWebSocket()` if the WebSocket was already accepted via "
     "`accept()`", "acceptWebSocket() after accept()"),
    ("TypeError: Can't accept() WebSocket after enabling hibernation.",
     "accept() after acceptWebSocket()"),
    ("Error: A WebSocket 'attachment' cannot be larger than 16384 bytes.'attachment' was 20000 "
     "bytes.", "WebSocket attachment too large"),
    ("RangeError: Request cannot be larger than 2048 bytes. A request of size 3000 was provided.",
     "WebSocket auto-response too large"),
    ("Error: Event timeout should not exceed 604800000 ms.",
     "Hibernatable event timeout too large"),
    ("WebSocket disconnected without sending Close frame.",
     "WebSocket dropped without a Close frame (1006)"),
    ("InvalidAccessError: Invalid WebSocket close code: 1005.", "Invalid WebSocket close code"),
    ("InvalidAccessError: If you specify a WebSocket close reason, you must also specify a code.",
     "WebSocket close reason without a code"),
    ("SyntaxError: WebSocket close reason must not be longer than 123 bytes when UTF-8 encoded.",
     "WebSocket close reason too long"),
    ("Durable Object expected Upgrade: websocket", "WebSocket upgrade expected"),
    ("Cannot apply new_sqlite_classes migration to existing class Room",
     "Migration to SQLite for an existing class"),
    ("Cannot apply --delete-class migration to class Room without also removing the binding "
     "that references it", "Deleting a class that is still bound"),
    ("`migrations` and `exports` are mutually exclusive. Choose one or the other to declare your "
     "Durable Object lifecycle, but not both.", "Both migrations and exports"),
    ("Your Worker depends on the following Durable Objects, which are not exported in your "
     "entrypoint file: Room.", "Durable Object class not exported"),
    ("TypeError: Cannot read properties of undefined (reading 'getByName')",
     "Binding missing from env"),
    ("AttributeError: 'Env' object has no attribute 'COUNTER'", "Binding missing from env"),
    ("TypeError: <class 'tuple'> cannot be sent over RPC.", "Value cannot be sent over RPC"),
    ("There is no 'Room' class defined in the Python Worker's main module",
     "Class not in the Python Worker's main module"),
    ("TypeError: Method nope does not exist", "RPC method does not exist (Python Workers)"),
    ("CpuLimitExceeded: Python Worker exceeded CPU time limit", "Python Worker exceeded CPU time"),
]


@pytest.mark.parametrize(("text", "title"), SPEC_ERRORS, ids=[t for _, t in SPEC_ERRORS])
def test_explain_recognizes_every_spec_error(text: str, title: str) -> None:
    explanation = explain(text)
    assert explanation.matched, text
    assert explanation.title == title
    assert explanation.cause and explanation.retry and explanation.fix
    assert explanation.lesson and explanation.closest == []


def _sample(template: str) -> str:
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    digits = {"n", "size", "code"}
    return template.format(**{f: "129" if f in digits else "thing" for f in fields})


ERROR_CONSTANTS = {name: value for name, value in vars(E).items()
                   if name.isupper() and isinstance(value, str)}


@pytest.mark.parametrize("name", sorted(ERROR_CONSTANTS))
def test_explain_recognizes_every_text_dolab_raises(name: str) -> None:
    assert explain(_sample(ERROR_CONSTANTS[name])).matched


def test_explain_recognizes_a_pasted_first_sentence() -> None:
    assert explain("Values cannot be larger than 131072 bytes").title == "Storage value too large"
    assert explain("This Durable Object is not backed by SQLite storage, so the SQL API is not "
                   "available").title == "Not backed by SQLite"


def test_explain_fills_in_what_the_message_said() -> None:
    explanation = explain('TypeError: The RPC receiver does not implement the method "incrementt".')
    assert "incrementt" in explanation.cause and "def incrementt(self" in explanation.fix
    assert explanation.lesson == "01-tour"


@pytest.mark.parametrize("text", [
    "AttributeError: 'Env' object has no attribute 'COUNTER'",
    "AttributeError: env has no binding named 'COUNTER' (bindings: none). Declare it in "
    "wrangler.toml:\n\n[[durable_objects.bindings]]\nname = \"COUNTER\"\nclass_name = "
    "\"Counter\"\n\nor in the lab: lab.bind(\"COUNTER\", Counter).",
    "KeyError: \"No binding named 'COUNTER'; bound: ['ROOMS']\"",
])
def test_explain_binding_not_found_in_python_wording(text: str) -> None:
    explanation = explain(text)
    assert explanation.title == "Binding missing from env"
    assert 'lab.bind("COUNTER"' in explanation.fix
    assert explanation.lesson == "11-workers-and-wrangler"


def test_explain_binding_not_found_from_an_exception() -> None:
    assert explain(AttributeError("'_Env' object has no attribute 'ROOMS'")).title == (
        "Binding missing from env")


def test_retry_advice_follows_the_spec() -> None:
    assert explain(E.OVERLOADED).retry.startswith("No")
    assert "never" in explain(E.OVERLOADED).retry
    assert "new stub" in explain(E.CODE_UPDATED).retry
    assert explain("Network connection lost.").retry.startswith("Yes")
    assert explain(E.INVALID_ID).retry.startswith("No")


def test_retry_advice_reads_the_exceptions_flags() -> None:
    overloaded = E.DurableObjectOverloaded(E.OVERLOADED)
    assert explain(overloaded).retry.startswith("No") and explain(overloaded).matched
    transient = E.mark(RuntimeError(E.INSTANCE_GONE), retryable=True)
    assert ".retryable" in explain(transient).retry
    bcw = E.mark(E.DurableObjectReset(E.BCW_TIMEOUT), overloaded=True)
    assert "never" in explain(bcw).retry


def test_explain_is_case_sensitive_and_offers_the_closest() -> None:
    explanation = explain("error: durable object is overloaded. too many requests queued.")
    assert not explanation.matched
    assert explanation.closest[0] == "Durable Object overloaded"


def test_explain_unknown_text_is_honest() -> None:
    explanation = explain("KeyError: 'username'")
    assert not explanation.matched
    assert explanation.title == "Not recognized"
    assert "Not recognized" in str(explanation)


def test_explanation_renders_as_plain_text() -> None:
    text = str(explain(E.VALUE_TOO_LARGE.format(size=200000)))
    assert text.splitlines()[0] == "Storage value too large"
    for label in ("cause:", "retry:", "fix:", "lesson:"):
        assert label in text
    assert "notebooks/09-storage-limits.ipynb" in text


def test_catalogue_titles_are_unique() -> None:
    titles = known_errors()
    assert len(titles) == len(set(titles))


# ---- command line ------------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(HEAD + textwrap.dedent(source))
    return path


def test_cli_check_exits_1_on_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "bad.py", KV_BAD["kv-counter"])
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:6: kv-for-state:" in out and "1 finding" in out


def test_cli_check_exits_0_when_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "good.py", DESIGN_COUNTER)
    assert main(["check", str(path)]) == 0
    assert "0 findings" in capsys.readouterr().out


def test_cli_check_json_over_a_directory(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "sub").mkdir()
    _write(tmp_path, "a.py", TIMER_BAD["aliased-asyncio"])
    _write(tmp_path / "sub", "b.py", KV_BAD["kv-counter"])
    assert main(["check", "--format", "json", str(tmp_path)]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert [r["code"] for r in rows] == ["timer-instead-of-alarm", "kv-for-state"]
    assert set(rows[0]) == {"path", "code", "line", "message", "fix", "lesson"}


def test_cli_check_with_wrangler_and_bindings(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "router.py", ROUTER)
    config = tmp_path / "wrangler.toml"
    config.write_text(WRANGLER_TOML.replace('name = "COUNTER"', 'name = "ROOMS"'))
    assert main(["check", str(path), "--wrangler", str(config)]) == 1
    assert "missing-binding" in capsys.readouterr().out
    assert main(["check", str(path), "--binding", "COUNTER"]) == 0


def test_cli_check_exits_2_on_a_syntax_error(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.py"
    path.write_text("def (:\n")
    assert main(["check", str(path)]) == 2
    assert "cannot check" in capsys.readouterr().err


def test_cli_explain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "Durable", "Object", "is", "overloaded.", "Too", "many", "requests",
                 "queued."]) == 0
    assert capsys.readouterr().out.startswith("Durable Object overloaded")
    assert main(["explain", "--format", "json", "what is this"]) == 1
    assert json.loads(capsys.readouterr().out)["matched"] is False


def test_cli_usage_error_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["check"]) == 2


# ---- the corpus behind bench/checker_precision.py ----------------------------------------------


def test_corpus_files_are_annotated_and_parse() -> None:
    files = sorted(CORPUS.glob("*.py"))
    assert len(files) >= 20
    for path in files:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# expect: "), path
        expected = {c.strip() for c in first.removeprefix("# expect: ").split(",")}
        assert expected == {"none"} or expected <= set(CODES), path
        check(path.read_text())


def test_corpus_precision_and_recall(capsys: pytest.CaptureFixture[str]) -> None:
    bench = runpy.run_path(str(ROOT / "bench" / "checker_precision.py"), run_name="bench")
    assert bench["main"]([]) == 0
    scores = {code: bench["Score"]() for code in CODES}
    for path in sorted(CORPUS.glob("*.py")):
        bench["score_file"](path, scores, False)
    tp = sum(s.tp for s in scores.values())
    fp = sum(s.fp for s in scores.values())
    fn = sum(s.fn for s in scores.values())
    assert tp / (tp + fp) >= 0.9 and tp / (tp + fn) >= 0.9
    assert "total" in capsys.readouterr().out
