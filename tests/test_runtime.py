"""The runtime core: RPC, mailbox order, input gates, resets, overload (spec §3–4, §7–8)."""
from __future__ import annotations

import asyncio

import pytest

from dolab import (DurableObject, DurableObjectOverloaded, DurableObjectReset, Lab, Request,
                   Response, scheduler, trace)
from dolab.errors import flag


class Echo(DurableObject):
    constructed = 0

    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        type(self).constructed += 1
        self.field = 1
        self.log: list[int] = []
        self.memory = 0

    async def record(self, n):
        self.log.append(n)
        return n

    async def seen(self):
        return self.log

    def sync_method(self, x):
        return x * 2

    async def boom(self):
        error = TypeError("user boom")
        error.custom = 123
        self.ctx.storage.put("before-throw", True)
        raise error

    async def bump(self):
        self.memory += 1
        return self.memory

    async def tuple_result(self):
        return (1, 2)

    async def _private(self):
        return "secret"

    @property
    def getter(self):
        return "got"

    @staticmethod
    def static():
        return 1

    async def fetch(self, request):
        return Response.json({"url": request.url, "method": request.method})


@pytest.fixture
def echo(lab: Lab):
    Echo.constructed = 0
    lab.bind("ECHO", Echo)
    return lab.env.ECHO


async def test_rpc_calls_public_methods_sync_and_async(echo) -> None:
    stub = echo.getByName("a")
    assert await stub.record(5) == 5
    assert await stub.sync_method(21) == 42


async def test_creating_stubs_never_constructs(echo, lab: Lab) -> None:  # B12
    stub = echo.getByName("a")
    echo.get(echo.newUniqueId())
    await lab.settle()
    assert Echo.constructed == 0
    await stub.bump()
    assert Echo.constructed == 1


async def test_getByName_reaches_the_same_object_as_get(echo) -> None:  # B11
    await echo.getByName("x").record(1)
    assert await echo.get(echo.idFromName("x")).seen() == [1]


async def test_calls_on_one_stub_arrive_in_issue_order(echo) -> None:  # B16
    stub = echo.getByName("order")
    calls = [stub.record(i) for i in range(10)]
    await asyncio.gather(*reversed(calls))
    assert await stub.seen() == list(range(10))


async def test_unknown_method_error(echo) -> None:  # B17
    with pytest.raises(TypeError) as info:
        await echo.getByName("a").nope()
    assert str(info.value) == 'The RPC receiver does not implement the method "nope".'
    assert flag(info.value, "remote")


@pytest.mark.parametrize("name", ["alarm", "webSocketMessage", "webSocketClose", "webSocketError",
                                  "connect"])
async def test_reserved_methods_are_refused(echo, name: str) -> None:  # B18
    with pytest.raises(TypeError, match=f"^'{name}' is a reserved method and cannot be called "
                                        "over RPC.$"):
        await getattr(echo.getByName("a"), name)()


async def test_fields_private_and_static_are_not_rpc(echo) -> None:  # B19, B69
    stub = echo.getByName("a")
    for name in ("field", "_private", "static"):
        with pytest.raises(TypeError, match=f'^The RPC receiver does not implement the method '
                                            f'"{name}".$'):
            await getattr(stub, name)()
    assert await stub.getter == "got"
    with pytest.raises(TypeError, match='^"getter" is not a function.$'):
        await stub.getter()


async def test_errors_keep_class_and_message_lose_attributes(echo) -> None:  # B20
    with pytest.raises(TypeError) as info:
        await echo.getByName("a").boom()
    assert str(info.value) == "user boom"
    assert flag(info.value, "remote") and not hasattr(info.value, "custom")


async def test_user_exception_is_not_a_reset(echo, lab: Lab) -> None:  # B21, B22
    stub = echo.getByName("a")
    await stub.bump()
    with pytest.raises(TypeError):
        await stub.boom()
    assert await stub.bump() == 2
    assert Echo.constructed == 1
    assert lab.storage_of(stub) == {"before-throw": True}


async def test_tuple_results_are_refused_with_python_workers_text(echo) -> None:  # B69
    with pytest.raises(TypeError, match=r"^<class 'tuple'> cannot be sent over RPC\.$"):
        await echo.getByName("a").tuple_result()


async def test_rpc_takes_positional_arguments_only(echo) -> None:
    with pytest.raises(TypeError, match="positional arguments only"):
        echo.getByName("a").record(n=1)


async def test_arguments_are_copies(echo) -> None:
    payload = [1, 2]
    stub = echo.getByName("copies")
    await stub.record(payload)
    payload.append(3)
    assert await stub.seen() == [[1, 2]]


async def test_fetch_needs_an_absolute_url(echo) -> None:  # B24
    stub = echo.getByName("a")
    with pytest.raises(TypeError, match="^Invalid URL: /relative$"):
        await stub.fetch("/relative")
    response = await stub.fetch("http://anything/path?q=1", method="POST")
    assert await response.json() == {"url": "http://anything/path?q=1", "method": "POST"}
    forwarded = await stub.fetch(Request("https://x/y"))
    assert (await forwarded.json())["url"] == "https://x/y"


# ---- constructor, blockConcurrencyWhile, abort ---------------------------------------------

class Fragile(DurableObject):
    fail_next = True
    built = 0

    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        type(self).built += 1
        if type(self).fail_next:
            type(self).fail_next = False
            raise ValueError("constructor failed")

    async def ok(self):
        return "ok"


async def test_constructor_failure_breaks_the_stub_not_the_namespace(lab: Lab) -> None:  # B23
    Fragile.fail_next, Fragile.built = True, 0
    lab.bind("F", Fragile)
    stub = lab.env.F.getByName("a")
    for _ in range(2):
        with pytest.raises(ValueError, match="^constructor failed$") as info:
            await stub.ok()
        assert flag(info.value, "durableObjectReset")
    assert await lab.env.F.getByName("a").ok() == "ok"
    assert Fragile.built == 2


class Blocking(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.events: list[str] = []
        self.memory = "fresh"

    async def guarded(self):
        async def critical():
            self.events.append("critical-start")
            await scheduler.wait(50)
            self.events.append("critical-end")
            return "result"
        return await self.ctx.blockConcurrencyWhile(critical)

    async def quick(self):
        self.events.append("quick")
        return self.events

    async def failing(self):
        self.memory = "changed"

        async def critical():
            raise RuntimeError("critical failed")
        await self.ctx.blockConcurrencyWhile(critical)

    async def read_memory(self):
        return self.memory

    async def forever(self):
        async def critical():
            await scheduler.wait(60_000)
        await self.ctx.blockConcurrencyWhile(critical)

    async def nest(self, depth):
        async def level(n):
            if n == depth:
                return n
            return await self.ctx.blockConcurrencyWhile(lambda: level(n + 1))
        return await self.ctx.blockConcurrencyWhile(lambda: level(1))

    async def abort_after_put(self):
        self.ctx.storage.put("lost", 1)
        self.ctx.abort("why")

    async def call_inside_critical(self, other, depth):
        async def critical():
            return await self.env.B.getByName(other).nest(depth)
        return await self.ctx.blockConcurrencyWhile(critical)


@pytest.fixture
def blocking(lab: Lab):
    lab.bind("B", Blocking)
    return lab.env.B


async def test_blockConcurrencyWhile_returns_result_and_queues_others(blocking) -> None:  # B25
    stub = blocking.getByName("a")
    first = asyncio.ensure_future(stub.guarded())
    await asyncio.sleep(0)
    events = await stub.quick()
    assert await first == "result"
    assert events == ["critical-start", "critical-end", "quick"]


async def test_blockConcurrencyWhile_failure_resets(blocking, lab: Lab) -> None:  # B26
    stub = blocking.getByName("a")
    with pytest.raises(RuntimeError, match="^critical failed$") as info:
        await stub.failing()
    assert flag(info.value, "durableObjectReset")
    with pytest.raises(RuntimeError, match="^critical failed$"):
        await stub.read_memory()
    assert await blocking.getByName("a").read_memory() == "fresh"
    assert trace.RESET in lab.trace.kinds()


async def test_blockConcurrencyWhile_times_out_after_30s(blocking, lab: Lab) -> None:  # B27
    start = lab.now()
    with pytest.raises(DurableObjectReset) as info:
        await blocking.getByName("a").forever()
    assert str(info.value) == ("A call to blockConcurrencyWhile() in a Durable Object waited for "
                               "too long. The call was canceled and the Durable Object was reset.")
    assert flag(info.value, "overloaded") and flag(info.value, "durableObjectReset")
    assert lab.now() - start == pytest.approx(30.0)


async def test_blockConcurrencyWhile_nesting_limit(blocking) -> None:  # B28
    assert await blocking.getByName("a").nest(64) == 64
    with pytest.raises(RuntimeError, match=r"^blockConcurrencyWhile\(\) calls are nested too "
                                           r"deeply\.$"):
        await blocking.getByName("b").nest(65)


async def test_a_call_made_inside_blockConcurrencyWhile_starts_outside_it(blocking) -> None:
    """The callee is another object: the caller's critical section does not follow the call (its
    bCW nests from depth 1 again) and the caller's gate does not hold the callee."""
    for callee in ("b", "d"):
        await blocking.getByName(callee).nest(1)  # constructed: the calls below go inline
    assert await blocking.getByName("a").call_inside_critical("b", 64) == 64
    with pytest.raises(RuntimeError, match="nested too deeply"):
        await blocking.getByName("c").call_inside_critical("d", 65)


async def test_abort_fails_the_call_and_drops_unflushed_writes(blocking, lab: Lab) -> None:  # B29
    stub = blocking.getByName("a")
    with pytest.raises(DurableObjectReset, match="^why$") as info:
        await stub.abort_after_put()
    assert flag(info.value, "durableObjectReset")
    assert lab.storage_of(stub) == {}
    with pytest.raises(DurableObjectReset, match="^why$"):
        await stub.read_memory()
    assert await blocking.getByName("a").read_memory() == "fresh"


# ---- concurrency: the lost-update demonstration (B59, B60) ------------------------------

class Tally(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.count = 0

    async def increment_with_wait(self):
        value = self.count
        await scheduler.wait(5)
        self.count = value + 1
        return self.count

    async def increment(self):
        value = self.count
        self.count = value + 1
        return self.count

    async def storage_increment(self):
        value = await self.ctx.storage.get("c") or 0
        await self.ctx.storage.put("c", value + 1)

    async def storage_increment_with_wait(self):
        value = await self.ctx.storage.get("c") or 0
        await scheduler.wait(5)
        await self.ctx.storage.put("c", value + 1)

    async def total(self):
        return self.count


@pytest.fixture
def tally(lab: Lab):
    lab.bind("T", Tally)
    return lab.env.T


async def test_lost_update_with_a_timer_between_read_and_write(tally, lab: Lab) -> None:
    stub = tally.getByName("x")
    await asyncio.gather(*[stub.increment_with_wait() for _ in range(20)])
    assert await stub.total() < 20
    # The trace shows why: every request read before any wrote back (all 20 awaited the timer).
    label = "T:x"
    kinds = [e.kind for e in lab.trace.events(obj=label)
             if e.kind in (trace.EXTERNAL_AWAIT, trace.EXTERNAL_DONE)]
    assert kinds[:20] == [trace.EXTERNAL_AWAIT] * 20
    assert kinds[20:40] == [trace.EXTERNAL_DONE] * 20


async def test_no_lost_update_without_the_await(tally) -> None:
    stub = tally.getByName("x")
    await asyncio.gather(*[stub.increment() for _ in range(20)])
    assert await stub.total() == 20


async def test_storage_awaits_keep_the_input_gate_closed(tally, lab: Lab) -> None:  # B59
    stub = tally.getByName("s")
    await asyncio.gather(*[stub.storage_increment() for _ in range(20)])
    assert lab.storage_of(stub) == {"c": 20}


async def test_timer_between_storage_read_and_write_loses_updates(tally, lab: Lab) -> None:  # B60
    stub = tally.getByName("s")
    await asyncio.gather(*[stub.storage_increment_with_wait() for _ in range(20)])
    assert lab.storage_of(stub)["c"] == 1


async def test_requests_to_different_objects_run_concurrently(tally, lab: Lab) -> None:
    start = lab.now()
    await asyncio.gather(*[tally.getByName(str(i)).increment_with_wait() for i in range(10)])
    assert lab.now() - start == pytest.approx(0.005, abs=1e-5)


# ---- overload ---------------------------------------------------------------------------

async def test_overload_rejects_beyond_the_mailbox_limit() -> None:
    lab = Lab(path=None, clock="virtual", mailbox_limit=5)
    lab.bind("B", Blocking)
    stub = lab.env.B.getByName("a")
    first = asyncio.ensure_future(stub.guarded())  # holds the gate for 50 ms
    await asyncio.sleep(0)
    queued = [asyncio.ensure_future(stub.quick()) for _ in range(8)]
    results = await asyncio.gather(*queued, return_exceptions=True)
    overloaded = [r for r in results if isinstance(r, DurableObjectOverloaded)]
    assert len(overloaded) == 3
    assert str(overloaded[0]) == "Durable Object is overloaded. Too many requests queued."
    assert flag(overloaded[0], "overloaded")
    assert await first == "result"
    assert isinstance(await stub.quick(), list)  # the lab recovered
    lab.close()


class Critical(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.views = 0

    async def view(self):
        async def critical():
            views = self.views
            await scheduler.wait(5)
            self.views = views + 1
        await self.ctx.blockConcurrencyWhile(critical)
        return self.views


async def test_blockConcurrencyWhile_in_every_request_serializes_them(lab: Lab) -> None:
    """Each event is delivered only after the previous one reached its first suspension, so a
    bCW at the top of a handler keeps the requests queued behind it out (workerd order)."""
    lab.bind("C", Critical)
    stub = lab.env.C.getByName("a")
    start = lab.now()
    await asyncio.gather(*[stub.view() for _ in range(20)])
    assert await stub.view() == 21
    assert lab.now() - start == pytest.approx(0.105, abs=1e-5)  # 21 views, 5 ms each


class Steps(DurableObject):
    async def two_steps(self):
        self.ctx.storage.put("started", True)
        await scheduler.wait(50)
        self.ctx.storage.put("finished", True)
        return "done"


async def test_a_caller_that_gives_up_does_not_cut_the_handler_short(lab: Lab) -> None:
    """The fast path runs the handler in the caller's task only until it first suspends; then it
    goes on in a task of its own, so cancelling the caller leaves the object's work whole."""
    lab.bind("S", Steps)
    stub = lab.env.S.getByName("a")
    await lab.run_in(stub, lambda instance, ctx: None)  # constructed: the next call is inline
    call = asyncio.ensure_future(lab.drive(stub.two_steps()))
    await asyncio.sleep(0)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await lab.advance(1)
    assert lab.storage_of(stub) == {"started": True, "finished": True}
    assert lab.trace.kinds(obj="S:a")[-1] == trace.FINISHED


async def test_a_caller_that_gives_up_on_a_queued_call_leaves_it_whole(lab: Lab) -> None:
    lab.bind("S", Steps)
    stub = lab.env.S.getByName("b")
    call = asyncio.ensure_future(lab.drive(stub.two_steps()))  # first call: constructs, a task
    await asyncio.sleep(0)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await lab.advance(1)
    assert lab.storage_of(stub) == {"started": True, "finished": True}
    assert lab.trace.kinds(obj="S:b")[-1] == trace.FINISHED


class Keeper(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.items = [1, 2]

    async def kept(self, suspend):
        if suspend:
            await asyncio.sleep(0)
        return self.items

    async def unclonable(self, suspend):
        if suspend:
            await asyncio.sleep(0)
        return lambda: None


@pytest.mark.parametrize("path", ["inline", "suspended", "mailbox"])
async def test_an_rpc_result_is_a_copy_on_every_delivery_path(path) -> None:
    """Inline (idle object), inline then its own task (the handler suspends), and the mailbox
    (calls started together): the caller gets a copy, an unclonable result is DataCloneError."""
    from dolab.errors import DataCloneError

    lab = Lab(path=None, clock="virtual")
    lab.bind("K", Keeper)
    stub = lab.env.K.getByName("k")
    await stub.kept(False)  # constructed: the next idle call takes the fast path
    suspend = path == "suspended"
    if path == "mailbox":
        mine, _ = await asyncio.gather(stub.kept(suspend), stub.kept(suspend))
    else:
        mine = await stub.kept(suspend)
    mine.append(3)
    assert await stub.kept(False) == [1, 2]
    with pytest.raises(DataCloneError, match="could not be cloned"):
        if path == "mailbox":
            await asyncio.gather(stub.unclonable(suspend), stub.kept(suspend))
        else:
            await stub.unclonable(suspend)
    assert await stub.kept(False) == [1, 2]  # an error, not a reset (B21)
    assert lab.trace.events(trace.ERROR)[-1].detail["error"].startswith("DataCloneError")


class OwnTask(DurableObject):
    """Handlers that rely on being a task of their own from their first line (as on Cloudflare),
    though the fast path runs their first step in the caller's task."""

    async def slow_with_deadline(self):
        try:
            async with asyncio.timeout(5):  # opened before the first await
                await asyncio.sleep(60)
        except TimeoutError:
            return "the handler's deadline fired"
        return "slept"

    async def group_with_a_failure(self):
        async def fails():
            await asyncio.sleep(1)
            raise ValueError("child failed")

        try:
            async with asyncio.TaskGroup() as group:  # its parent task is the handler
                group.create_task(fails())
                await asyncio.sleep(60)
        except ExceptionGroup as caught:
            return [str(e) for e in caught.exceptions]
        return "no failure"

    async def fast_deadline(self):
        async with asyncio.timeout(5):
            return "done before any await"


async def _constructed(lab: Lab, name: str):
    lab.bind("O", OwnTask)
    stub = lab.env.O.getByName(name)
    await lab.run_in(stub, lambda instance, ctx: None)  # constructed: the next call is inline
    return stub


async def test_a_timeout_opened_before_the_first_await_acts_on_the_handler(lab: Lab) -> None:
    stub = await _constructed(lab, "a")
    started = lab.now()
    assert await stub.slow_with_deadline() == "the handler's deadline fired"
    assert lab.now() - started == pytest.approx(5, abs=1e-3)
    assert not asyncio.current_task().cancelling()  # the caller was never cancelled


async def test_a_task_group_opened_before_the_first_await_belongs_to_the_handler(lab: Lab) -> None:
    stub = await _constructed(lab, "b")
    assert await stub.group_with_a_failure() == ["child failed"]
    assert not asyncio.current_task().cancelling()


async def test_a_handler_that_never_suspends_keeps_the_fast_path(lab: Lab) -> None:
    stub = await _constructed(lab, "c")
    me = asyncio.current_task()
    assert await stub.fast_deadline() == "done before any await"
    assert asyncio.current_task() is me  # the caller's task is current again
    assert await stub.slow_with_deadline() == "the handler's deadline fired"  # and again after
