"""One Durable Object as the lab hosts it: mailbox, input gate, instance lifecycle, write buffer.

An ``ObjectHost`` outlives its instances. Every event (RPC call, fetch, alarm, WebSocket message)
enters the mailbox in arrival order (E-order, B16) and is *delivered* — its handler started as a
task — only while the input gate is open. Delivered events interleave only where a handler awaits
something that is not storage (spec §7).

``generation`` counts resets: a stub binds to the generation of its first call, and every call on a
stub whose generation was reset fails with the reset's error (B23, B26). ``incarnation`` counts
instances (evictions included): timers and storage handles of a gone instance check it.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
from asyncio import current_task as _current_task
from asyncio.tasks import _enter_task, _leave_task
from types import CoroutineType
import inspect
from collections import deque
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from . import errors, trace, values
from .buffer import TxnLayer, WriteBuffer
from .gates import MAX_BCW_DEPTH, Critical, InputGate, current_critical
from .sql import MISSING
from .storage import DurableObjectTransaction, Limits, TxnState

if TYPE_CHECKING:
    from .ids import DurableObjectId
    from .namespace import NamespaceBinding
    from .sql import SqlDatabase
    from .store import ObjectRecord

current_host: contextvars.ContextVar[ObjectHost | None] = contextvars.ContextVar(
    "dolab_host", default=None)
current_request: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "dolab_request", default=None)

BCW_TIMEOUT_S = 30.0


class DurableObjectAbort(BaseException):
    """Raised by ``ctx.abort()``; a BaseException, so ``except Exception`` does not swallow it
    (as in Python Workers)."""


class Event:
    """A mailbox entry."""

    __slots__ = ("rid", "kind", "invoke", "future", "generation", "label", "task")

    def __init__(self, rid: str, kind: str, invoke: Callable[[Any], Any],
                 future: asyncio.Future[Any], generation: int, label: str) -> None:
        self.rid = rid
        self.kind = kind
        self.invoke = invoke
        self.future = future
        self.generation = generation
        self.label = label
        self.task: asyncio.Task[None] | None = None


class ObjectHost:
    # why: the lab keeps one host per object ever used (B23 needs its broken generations), so a
    # host should be small: slots save its __dict__ (about a third of its memory)
    __slots__ = ("binding", "lab", "id", "hex", "label", "generation", "incarnation", "broken",
                 "instance", "ctx", "construct_id", "abort_alarm_retry", "mailbox", "inflight",
                 "gate", "buffer", "confirmed_epoch", "last_writer", "_record", "_sql", "_pumping",
                 "_starting", "keepalive", "_standin", "idle_since", "idle_timer", "alarm_timer",
                 "alarm_running", "alarm_dirty", "reset_hooks", "evict_hooks", "sockets")

    def __init__(self, binding: NamespaceBinding, object_id: DurableObjectId) -> None:
        self.binding = binding
        self.lab = binding.lab
        self.id = object_id
        self.hex = object_id.toString()
        self.label = f"{binding.name}:{object_id.name if object_id.name is not None else self.hex[:8]}"
        self.generation = 0
        self.incarnation = 0
        self.broken: dict[int, BaseException] = {}
        self.instance: Any = None
        self.ctx: Any = None
        self.construct_id: DurableObjectId | None = None  # the id of the call that constructs
        self.abort_alarm_retry = True
        self.mailbox: deque[Event] = deque()
        # Event (mailbox path), an inline call's own task once it suspended, or None before
        self.inflight: dict[str, Event | asyncio.Task[Any] | None] = {}
        self.gate = InputGate(self._pump)
        self.buffer = WriteBuffer(self)
        self.confirmed_epoch = 0
        self.last_writer: str | None = None
        self._record: ObjectRecord | None = None
        self._sql: SqlDatabase | None = None
        self._pumping = False
        self._starting: Event | None = None
        self.keepalive = 0          # waitUntil promises, standard-API sockets, outbound calls
        self._standin = _Standin()  # current_task() during an inline first step (run_inline)
        self.idle_since: float | None = None
        self.idle_timer: Any = None
        self.alarm_timer: Any = None
        self.alarm_running: dict[str, Any] | None = None
        self.alarm_dirty = False
        self.reset_hooks: list[Callable[[BaseException], None]] = []
        self.evict_hooks: list[Callable[[], None]] = []
        self.sockets: Any = None    # websocket.SocketRegistry, made on first use

    # ---- identity ------------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        return self.binding.backend

    @property
    def limits(self) -> Limits:
        return self.binding.limits

    @property
    def record(self) -> ObjectRecord | None:
        if self._record is None:
            self._record = self.lab.store.find(self.binding.key, self.hex)
        return self._record

    def ensure_record(self) -> ObjectRecord:
        if self.record is None:
            self._record = self.lab.store.record(self.binding.key, self.hex, self.id.name)
        assert self._record is not None
        return self._record

    def sql_db(self) -> SqlDatabase | None:
        if self.backend == "kv":
            return None
        if self._sql is None:
            from .sql import SqlDatabase

            self._sql = SqlDatabase()
            record = self.record
            self._sql.restore(None if record is None or record.sql is None else record.sql.image)
        return self._sql

    # ---- mailbox and delivery -------------------------------------------------------------------

    def submit(self, kind: str, label: str, invoke: Callable[[Any], Any],
               generation: int | None = None) -> asyncio.Future[Any]:
        """Queue an event; the future resolves with its (output-gated) result."""
        rid = self.lab.next_request_id()
        future = asyncio.get_running_loop().create_future()
        gen = self.generation if generation is None else generation
        if gen != self.generation:
            future.set_exception(errors.remote_copy(self.broken[gen]))
            return future
        if len(self.mailbox) >= self.lab.mailbox_limit:
            error = errors.DurableObjectOverloaded(errors.OVERLOADED)
            self.lab.trace.record(self.label, trace.ERROR, rid, error=str(error))
            future.set_exception(errors.mark(error, remote=True))
            return future
        self.mailbox.append(Event(rid, kind, invoke, future, gen, label))
        self.idle_since = None
        self.lab.trace.record(self.label, trace.QUEUED, rid, type=kind, method=label)
        self._pump()
        return future

    # ---- the fast path: an idle object runs the handler in the caller's task ------------------

    def can_inline(self, generation: int) -> bool:
        """True when an event would be delivered at once: constructed, gate open, nothing queued."""
        return (self.instance is not None and not self.mailbox and self._starting is None
                and not self.gate.locked and generation == self.generation)

    def reserve(self, reservation: Any) -> None:
        """Hold the delivery slot for ``reservation`` so later calls queue behind it (E-order)."""
        self._starting = reservation

    def unreserve_into_mailbox(self, kind: str, label: str, invoke: Callable[[Any], Any],
                               generation: int) -> asyncio.Future[Any]:
        """A reserved call that was not awaited at once becomes an ordinary event, first in line."""
        self._starting = None
        rid = self.lab.next_request_id()
        future = asyncio.get_running_loop().create_future()
        self.mailbox.appendleft(Event(rid, kind, invoke, future, generation, label))
        self.lab.trace.record(self.label, trace.QUEUED, rid, type=kind, method=label)
        self._pump()
        return future

    async def run_inline(self, kind: str, label: str, invoke: Callable[[Any], Any],
                         generation: int) -> Any:
        """Deliver an event in the awaiting task itself: same gates, trace and errors as ``_run``,
        without a task and a future per call."""
        __tracebackhide__ = True
        lab = self.lab
        rid = lab.next_request_id()
        tracing = lab.trace.enabled  # why: the details cost more than the call itself
        if generation != self.generation:
            if tracing:
                lab.trace.record(self.label, trace.QUEUED, rid, type=kind, method=label,
                                 caller=current_request.get())
            raise errors.remote_copy(self.broken[generation])
        delivery = lab.trace.record_delivery(
            self.label, rid, kind, label, current_request.get()) if tracing else None
        self._starting = None
        self.idle_since = None
        if self.mailbox:
            asyncio.get_running_loop().call_soon(self._pump)  # why: as in _run
        self.inflight[rid] = None
        critical = current_critical.get()  # a caller inside blockConcurrencyWhile: not the callee
        tokens = (current_host.set(self), current_request.set(rid),
                  None if critical is None else current_critical.set(None))
        error: BaseException | None = None
        pending: asyncio.Task[Any] | None = None
        try:
            result = invoke(self.instance)
            if type(result) is not CoroutineType and (
                    not isinstance(result, _SCALARS) and inspect.isawaitable(result)):
                result = _as_coroutine(result)
            if type(result) is CoroutineType:
                standin, loop = self._standin, asyncio.get_running_loop()
                caller_task = _current_task(loop)
                if caller_task is not None:
                    _leave_task(loop, caller_task)
                _enter_task(loop, standin)  # type: ignore[arg-type]  # why: _Standin
                try:  # the first step runs here: most handlers never suspend
                    yielded = result.send(None)
                except StopIteration as stop:
                    result = stop.value
                else:
                    pending = standin.task = self._own_task(result, yielded, rid)
                    self._standin = _Standin()  # why: that one now stands for the new task
                finally:
                    _leave_task(loop, standin)  # type: ignore[arg-type]
                    if caller_task is not None:
                        _enter_task(loop, caller_task)
            if kind == "rpc" and pending is None:
                result = values.clone(result)  # why: RPC passes copies (structured clone)
        except DurableObjectAbort:
            error = self.broken.get(generation, errors.DurableObjectReset(errors.INSTANCE_GONE))
        except BaseException as exc:
            error = exc
        finally:
            if tokens[2] is not None:
                current_critical.reset(tokens[2])
            current_request.reset(tokens[1])
            current_host.reset(tokens[0])
        if pending is not None:
            result, error = await self._await_own_task(pending, generation)
            if kind == "rpc" and error is None:
                try:
                    result = values.clone(result)
                except BaseException as exc:
                    error = exc
        if not lab.output_gate.durable(self.confirmed_epoch):
            await self._inline_hold(rid, generation)  # a coroutine only when there is a wait
        if error is not None or generation != self.generation:
            self._inline_error(rid, error, generation)
        self.inflight.pop(rid, None)
        if lab.trace.enabled:
            lab.trace.record_finished(self.label, rid, short(result), delivery)
        self._maybe_idle()
        return result

    def _own_task(self, coro: Any, yielded: Any, rid: str) -> asyncio.Task[Any]:
        """The handler suspended after its first step (run in the caller's task): the rest runs
        in a task of its own, in the handler's context, so that cancelling the caller cannot cut
        it short."""
        task = asyncio.get_running_loop().create_task(_Resume(coro, yielded).run(),
                                                      context=contextvars.copy_context())
        self.inflight[rid] = task
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    async def _await_own_task(self, task: asyncio.Task[Any], generation: int
                              ) -> tuple[Any, BaseException | None]:
        """The handler suspended, so it runs on in a task of its own (as on Cloudflare, a caller
        that gives up does not cut the handler short): wait for it without being it."""
        try:
            return await asyncio.shield(task), None
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                task.add_done_callback(self._orphan_done)
                raise  # the caller itself was cancelled; the handler goes on
            return None, self.broken.get(generation,
                                         errors.DurableObjectReset(errors.INSTANCE_GONE))
        except DurableObjectAbort:
            return None, self.broken.get(generation,
                                         errors.DurableObjectReset(errors.INSTANCE_GONE))
        except BaseException as exc:
            return None, exc

    def _orphan_done(self, task: asyncio.Task[Any]) -> None:
        """The handler of a caller that gave up has finished: record it, free the slot."""
        rid = next((r for r, t in self.inflight.items() if t is task), None)
        if rid is None:
            return
        self.inflight.pop(rid, None)
        failed = task.cancelled() or task.exception() is not None
        self.lab.trace.record(self.label, trace.ERROR if failed else trace.FINISHED, rid,
                              caller="gone")
        self._maybe_idle()

    async def _inline_hold(self, rid: str, generation: int) -> None:
        epoch = self.confirmed_epoch
        if not self.lab.output_gate.durable(epoch) and generation == self.generation:
            self.lab.trace.record(self.label, trace.HELD, rid)
            try:
                await self.lab.output_gate.wait(epoch)  # why: B62, results wait for their writes
            except Exception:
                pass  # the failed commit reset the object: the generation check reports it
            else:
                self.lab.trace.record(self.label, trace.RELEASED, rid)

    def _inline_error(self, rid: str, error: BaseException | None, generation: int) -> None:
        __tracebackhide__ = True
        self.inflight.pop(rid, None)
        if generation != self.generation:
            error = self.broken[generation]
        assert error is not None
        self.lab.trace.record(self.label, trace.ERROR, rid,
                              error=f"{type(error).__name__}: {error}")
        self._maybe_idle()
        raise errors.remote_copy(error)

    def _pump(self) -> None:
        if self._pumping:
            return
        self._pumping = True
        try:
            while self.mailbox and not self.gate.locked:
                if self.instance is None and not self._construct():
                    continue
                if self.gate.locked:
                    break
                if self._starting is not None:
                    break  # why: one event at a time until it reached its first suspension
                self._deliver(self.mailbox.popleft())
        finally:
            self._pumping = False
        self._maybe_idle()

    def _deliver(self, event: Event) -> None:
        if event.generation != self.generation:
            self._fail(event, self.broken[event.generation])
            return
        self.inflight[event.rid] = event
        self._starting = event
        context = contextvars.copy_context()
        context.run(_enter, self, event.rid)
        event.task = asyncio.get_running_loop().create_task(self._run(event), context=context)

    async def _run(self, event: Event) -> None:
        self.lab.trace.record(self.label, trace.DELIVERED, event.rid, method=event.label)
        self._starting = None
        if self.mailbox:
            # why: as in workerd, the next event is delivered only after this one ran up to its
            # first suspension (it may have closed the input gate with bCW or a transaction);
            # a callback queued now runs right after this step.
            asyncio.get_running_loop().call_soon(self._pump)
        instance, incarnation = self.instance, self.incarnation
        try:
            result = event.invoke(instance)
            if inspect.isawaitable(result):
                result = await result
            if event.kind == "rpc":
                result = values.clone(result)  # why: RPC passes copies (structured clone)
        except DurableObjectAbort:
            return  # the reset already failed this event
        except asyncio.CancelledError:
            if not event.future.done():
                self._fail(event, errors.DurableObjectReset(errors.INSTANCE_GONE))
            return
        except BaseException as error:  # an ordinary exception is not a reset (B21)
            await self._release(event, None, error, incarnation)
            return
        await self._release(event, result, None, incarnation)

    async def _release(self, event: Event, result: Any, error: BaseException | None,
                       incarnation: int) -> None:
        """The output gate: the result leaves only once the writes made before it are durable."""
        epoch = self.confirmed_epoch
        if not self.lab.output_gate.durable(epoch) and event.generation == self.generation:
            self.lab.trace.record(self.label, trace.HELD, event.rid)
            try:
                await self.lab.output_gate.wait(epoch)  # why: B62, results wait for their writes
            except Exception:
                pass  # a failed commit reset this object and failed the event already
            else:
                self.lab.trace.record(self.label, trace.RELEASED, event.rid)
        self.inflight.pop(event.rid, None)
        if event.future.done():  # the caller gave up: the work is done all the same
            self.lab.trace.record(self.label, trace.ERROR if error else trace.FINISHED,
                                  event.rid, caller="gone")
            self._maybe_idle()
            return
        if event.generation != self.generation:
            self._fail(event, self.broken[event.generation])
        elif error is not None:
            self._fail(event, error)
        else:
            self.lab.trace.record(self.label, trace.FINISHED, event.rid, result=short(result))
            event.future.set_result(result)
        self._maybe_idle()

    def _fail(self, event: Event, error: BaseException) -> None:
        self.inflight.pop(event.rid, None)
        self.lab.trace.record(self.label, trace.ERROR, event.rid,
                              error=f"{type(error).__name__}: {error}")
        if not event.future.done():
            event.future.set_exception(errors.remote_copy(error))

    # ---- construction, reset, eviction -----------------------------------------------------------

    def _construct(self) -> bool:
        """Run the constructor under the closed input gate; False when it failed (a reset)."""
        from .state import DurableObjectState

        self.incarnation += 1
        cls = self.binding.cls
        object_id, self.construct_id = self.construct_id or self.id, None
        self.ctx = DurableObjectState(self, self.generation, self.incarnation,
                                      _visible_name(object_id))
        token = Critical(None, "constructor")
        self.gate.lock(token)
        context = contextvars.copy_context()
        try:
            instance = cls.__new__(cls)  # type: ignore[call-overload]
            context.run(_construct_in, self, instance, self.ctx)
        except BaseException as error:
            self.gate.unlock(token)
            self.reset(errors.mark(error, durableObjectReset=True))
            return False
        self.instance = instance
        self.lab.trace.record(self.label, trace.CONSTRUCTED, None, cls=cls.__name__)
        self.gate.unlock(token)
        return True

    def reset(self, error: BaseException) -> None:
        """Drop the instance and its uncommitted writes; break the stubs bound to it (spec §8.2)."""
        errors.mark(error, durableObjectReset=True)
        old = self.generation
        self.broken[old] = error
        self.generation += 1
        self.lab.trace.record(self.label, trace.RESET, current_request.get(),
                              error=f"{type(error).__name__}: {error}")
        self._drop_instance()
        self.buffer.discard()
        self.confirmed_epoch = self.lab.output_gate.committed  # its dropped writes hold nothing
        if self._sql is not None:  # reload from the last committed image on next use
            self._sql.close()
            self._sql = None
        self.lab.forget_dirty(self)
        for hook in list(self.reset_hooks):
            hook(error)
        me = asyncio.current_task() if _loop_running() else None
        for task in [t for t in self.inflight.values() if isinstance(t, asyncio.Task)]:
            if task is not me:
                task.cancel()  # an inline call's handler that went on in its own task
        events = [e for e in self.inflight.values() if isinstance(e, Event)]
        for event in events + list(self.mailbox):
            self._fail(event, error)
            if event.task is not None and event.task is not me:
                event.task.cancel()
        self.mailbox.clear()
        self.inflight.clear()

    def evict(self, kind: str = trace.EVICTED) -> None:
        """Drop an idle instance without error: stubs keep working, memory is lost (B63)."""
        if self.instance is None:
            return
        self._drop_instance()
        self.lab.trace.record(self.label, kind, None)
        for hook in list(self.evict_hooks):
            hook()

    def _drop_instance(self) -> None:
        self.instance = None
        self._starting = None
        self.ctx = None
        self.incarnation += 1
        self.gate.clear()
        self.keepalive = 0
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def hibernatable_only(self) -> bool:
        """Hibernatable WebSockets are open: when idle, the instance hibernates (spec §8.3)."""
        return self.sockets is not None and bool(self.sockets.hibernatable())

    @property
    def busy(self) -> bool:
        return bool(self.mailbox or self.inflight or self.gate.locked or self.keepalive)

    def _maybe_idle(self) -> None:
        if (self.instance is None or self.mailbox or self.inflight or self.gate.locked
                or self.keepalive):  # why: self.busy, spelled out on every call's path
            return
        self.idle_since = self.lab.clock.now()
        if self.idle_timer is not None:
            return  # the pending check re-arms itself for the remaining time
        self.idle_timer = self.lab.clock.call_later(
            self.lab.idle_timeout(self), self._idle_check, f"idle {self.label}")

    def _idle_check(self) -> None:
        self.idle_timer = None
        if self.instance is None or self.busy or self.idle_since is None:
            self._maybe_idle()
            return
        remaining = self.idle_since + self.lab.idle_timeout(self) - self.lab.clock.now()
        if remaining > 1e-9:
            self.idle_timer = self.lab.clock.call_later(remaining, self._idle_check)
            return
        self.evict(self.lab.eviction_kind(self))

    def touch(self) -> None:
        self.idle_since = None

    def keep_alive(self, awaitable: Awaitable[Any]) -> None:
        """waitUntil and similar: the instance stays in memory until ``awaitable`` settles."""
        self.keepalive += 1
        incarnation = self.incarnation
        future = asyncio.ensure_future(awaitable)

        def done(_: Any) -> None:
            if self.incarnation == incarnation:
                self.keepalive = max(0, self.keepalive - 1)
                self._maybe_idle()
            if not future.cancelled():
                future.exception()  # retrieved: waitUntil errors are only logged on Cloudflare

        future.add_done_callback(done)

    # ---- blockConcurrencyWhile ------------------------------------------------------------------

    def block_concurrency_while(self, callback: Callable[[], Any]) -> asyncio.Task[Any]:
        parent = current_critical.get()
        token = Critical(parent, "blockConcurrencyWhile")
        if token.depth > MAX_BCW_DEPTH:
            raise RuntimeError(errors.BCW_NESTED)
        self.gate.lock(token)
        self.lab.trace.record(self.label, trace.GATE_BLOCKED, current_request.get(),
                              depth=token.depth)
        context = contextvars.copy_context()
        context.run(current_critical.set, token)
        loop = asyncio.get_running_loop()
        return loop.create_task(self._critical(callback, token), context=context)

    async def _critical(self, callback: Callable[[], Any], token: Critical) -> Any:
        generation = self.generation
        task = asyncio.current_task()

        def time_out() -> None:
            if task is not None:
                task.cancel()

        timer = self.lab.clock.call_later(BCW_TIMEOUT_S, time_out, f"bCW timeout {self.label}")
        try:
            result = callback()
            if inspect.isawaitable(result):
                result = await result
            return result
        except asyncio.CancelledError:
            if generation == self.generation and timer.cancelled is False:
                self.reset(errors.mark(errors.DurableObjectReset(errors.BCW_TIMEOUT),
                                       overloaded=True))
            raise
        except DurableObjectAbort:
            raise
        except BaseException as error:
            if generation == self.generation:
                self.reset(error)
            raise
        finally:
            timer.cancel()
            self.gate.unlock(token)
            self.lab.trace.record(self.label, trace.GATE_OPENED, current_request.get())

    # ---- transactions ---------------------------------------------------------------------------

    def run_transaction(self, closure: Callable[[DurableObjectTransaction], Any]) -> Any:
        async def body() -> Any:
            layer = TxnLayer(self.buffer)
            txn = DurableObjectTransaction(self, layer)
            try:
                result = closure(txn)
                if inspect.isawaitable(result):
                    result = await result
            except BaseException:
                txn.state = TxnState.ROLLED_BACK
                layer.discard()
                raise
            if txn.state == TxnState.OPEN:
                layer.commit()
            txn.state = TxnState.COMMITTED
            return result

        return self._transaction_section(body)

    def _transaction_section(self, body: Callable[[], Any]) -> asyncio.Task[Any]:
        """A transaction is a critical section whose failure is *not* a reset (spec §5.3)."""
        parent = current_critical.get()
        token = Critical(parent, "transaction")
        self.gate.lock(token)
        context = contextvars.copy_context()
        context.run(current_critical.set, token)

        async def run() -> Any:
            try:
                return await body()
            finally:
                self.gate.unlock(token)

        return asyncio.get_running_loop().create_task(run(), context=context)

    def transaction_sync(self, fn: Callable[[], Any]) -> Any:
        db = self.sql_db()
        assert db is not None
        snapshot = dict(self.buffer.pending), self.buffer.cleared, self.buffer.alarm_pending
        try:
            return db.transaction_sync(fn)
        except BaseException:
            self.buffer.pending, self.buffer.cleared, self.buffer.alarm_pending = (
                snapshot[0], snapshot[1], snapshot[2])
            raise

    # ---- writes ---------------------------------------------------------------------------------

    def check_owner(self, owner: tuple[int, int]) -> None:
        """A stale instance (reset or evicted) must not touch its successor's storage."""
        if owner != (self.generation, self.incarnation):
            raise errors.DurableObjectReset(errors.INSTANCE_GONE)

    def wrote(self, keys: list[str], confirmed: bool) -> None:
        request = current_request.get()
        self.last_writer = request
        if self.lab.trace.enabled:
            self.lab.trace.record(self.label, trace.WRITE, request, keys=keys[:8])
        self.lab.mark_dirty(self, confirmed)

    def sql_written(self) -> None:
        self.wrote(["<sql>"], True)

    def traced_read(self, op: str, keys: Any) -> None:
        if self.lab.trace.enabled:
            self.lab.trace.record(self.label, trace.READ, current_request.get(), op=op)

    def delete_all(self, confirmed: bool) -> None:
        with_alarm = self.lab.compat_at_least("2026-02-24")
        self.buffer.clear(confirmed, with_alarm)
        db = self.sql_db()
        if db is not None:
            db.clear_all()

    async def output_gate_open(self) -> None:
        """Outgoing messages (fetch, sends) wait for the writes made before them (spec §7);
        if those writes fail, the message is never sent and the caller sees the reset."""
        epoch, generation = self.confirmed_epoch, self.generation
        if not self.lab.output_gate.durable(epoch):
            try:
                await self.lab.output_gate.wait(epoch)
            except Exception:
                pass
        if generation != self.generation:
            raise errors.remote_copy(self.broken[generation])

    def until_committed(self) -> Awaitable[None]:
        from .storage import Done

        epoch = self.lab.output_gate.epoch if self.lab.has_dirty(self) else self.confirmed_epoch
        if self.lab.output_gate.durable(epoch):
            return Done(None)
        return self.lab.output_gate.wait(epoch)

    def flush_into(self, now: float) -> bool:
        """Move buffered writes into the ZODB record (inside the flush). True if anything moved."""
        db = self._sql
        sql_changed = db is not None and db.dirty
        sockets_changed = self.sockets is not None and self.sockets.dirty
        if not self.buffer.dirty and not sql_changed and not sockets_changed:
            return False
        record = self.ensure_record()
        if sockets_changed and not self.sockets.apply(record) and not self.buffer.dirty \
                and not sql_changed:
            return True  # hibernated-socket bookkeeping only: no new version of the object's data
        old_alarm = record.alarm
        if self.buffer.alarm_pending is not MISSING:
            record.alarm = self.buffer.alarm_pending
            self.lab.store.index_alarm(self.binding.key, self.hex, old_alarm, record.alarm)
            self.alarm_dirty = True
        self.buffer.apply(record)
        if sql_changed and db is not None:
            db.commit_turn()
            self._store_sql(record, db.image())
            db.clear_dirty()
        record.kv.meta = (record.kv.meta[0] + 1, now, self.last_writer)
        return True

    def _store_sql(self, record: ObjectRecord, image: bytes) -> None:
        from .store import SqlImage

        if record.sql is None:
            record.sql = SqlImage(image)
        else:
            record.sql.image = image

    # ---- alarms ---------------------------------------------------------------------------------

    def require_alarm_handler(self) -> None:
        if self.instance is not None and not callable(getattr(self.instance, "alarm", None)):
            raise TypeError(errors.ALARM_NO_HANDLER)

    def alarm_changed(self, when: float | None) -> None:
        if self.alarm_running is not None:
            self.alarm_running["reset"] = True
        self.lab.trace.record(self.label, trace.ALARM_SET if when is not None else
                              trace.ALARM_DELETED, current_request.get(),
                              time=None if when is None else int(when * 1000))

    def alarm_hides_current(self) -> bool:
        """Inside a running alarm handler getAlarm() is null unless the handler set a new one."""
        running = self.alarm_running
        return running is not None and not running.get("reset")


_SCALARS = (int, float, bool, type(None))


async def _as_coroutine(awaitable: Any) -> Any:
    return await awaitable


class _Standin:
    """``asyncio.current_task()`` while a handler's first step runs in the caller's task.

    A handler is a task of its own on Cloudflare, so ``asyncio.timeout`` or a ``TaskGroup`` it
    opens before its first ``await`` must act on the handler, not on its caller. The stand-in
    is the current task during the first step (``run_inline`` switches to it with
    ``asyncio.tasks._enter_task``/``_leave_task``, as asyncio's own tasks do); if the handler
    suspends, it forwards to the task the handler goes on in (``ObjectHost._own_task``). Python
    3.12's eager tasks would do the same at the cost of a task per call; this runs on 3.11 too."""

    __slots__ = ("task",)

    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None

    def cancel(self, msg: Any = None) -> bool:
        return self.task is not None and self.task.cancel(msg)

    def uncancel(self) -> int:
        return 0 if self.task is None else self.task.uncancel()

    def cancelling(self) -> int:
        return 0 if self.task is None else self.task.cancelling()

    def __getattr__(self, name: str) -> Any:
        if self.task is None:
            raise AttributeError(f"{name}: the handler finished without suspending")
        return getattr(self.task, name)


class _Resume:
    """Drives a coroutine that already yielded once, from inside a task."""

    __slots__ = ("coro", "yielded")

    def __init__(self, coro: Any, yielded: Any) -> None:
        self.coro = coro
        self.yielded = yielded

    async def run(self) -> Any:
        return await self

    def __await__(self) -> Any:
        yielded = self.yielded
        while True:
            try:
                sent = yield yielded
            except BaseException as exc:  # cancellation or an error thrown into the await
                try:
                    yielded = self.coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = self.coro.send(sent)
                except StopIteration as stop:
                    return stop.value


def short(value: Any) -> str:
    """A bounded description of a result for the trace (hover text), cheap on the hot path."""
    kind = type(value)
    if kind is int or kind is bool or value is None:
        return repr(value)
    if isinstance(value, _SCALARS):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    return f"<{type(value).__name__}>"


def _enter(host: ObjectHost, rid: str) -> None:
    current_host.set(host)
    current_request.set(rid)
    current_critical.set(None)


def _construct_in(host: ObjectHost, instance: Any, ctx: Any) -> None:
    current_host.set(host)
    current_critical.set(None)
    instance.__init__(ctx, host.lab.env)


def _visible_name(object_id: DurableObjectId) -> DurableObjectId:
    """ctx.id: the name is visible only for names of at most 1,024 bytes (spec §2.4)."""
    name = object_id.name
    if name is None or len(name.encode()) <= 1024:
        return object_id
    hidden = copy.copy(object_id)
    hidden.name = None
    return hidden


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True

