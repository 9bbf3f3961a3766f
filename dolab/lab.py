"""The Lab: hosts namespaces and objects on the running asyncio loop, owns the store, the clock,
the trace, the group commit and the lifecycle (DESIGN.md §3–§6).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from . import errors, trace as trace_mod
from .alarms import AlarmScheduler
from .clock import LabClock, make_clock
from .gates import OutputGate, current_critical
from .host import ObjectHost, current_host, current_request
from .ids import seeded_rng
from .namespace import DurableObjectNamespace, DurableObjectStub, NamespaceBinding, _TOKEN
from .object import DurableObject, WorkerEntrypoint
from .store import Store
from .trace import Trace

DEFAULT_PATH = ".dolab/lab.fs"
DEFAULT_COMPATIBILITY_DATE = "2026-04-10"
LOCAL_IDLE_S = 10.0
HIBERNATE_IDLE_S = 10.0
_current_lab: list[Lab] = []


def current_lab() -> Lab:
    host = current_host.get()
    if host is not None:
        return host.lab
    if not _current_lab:
        raise RuntimeError("No dolab Lab is open: create one with Lab() first.")
    return _current_lab[-1]


class Env:
    """``env``: one attribute per binding; a missing one says how to declare it."""

    def __init__(self, lab: Lab) -> None:
        self._lab = lab
        self._bindings: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        __tracebackhide__ = True
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._bindings[name]
        except KeyError:
            raise AttributeError(self._missing(name)) from None

    def _missing(self, name: str) -> str:
        from .config import binding_snippet

        known = ", ".join(sorted(self._bindings)) or "none"
        guess = name.title().replace("_", "")
        return (f"env has no binding named '{name}' (bindings: {known}). Declare it in "
                f"wrangler.toml:\n\n{binding_snippet(name, guess)}\n\n"
                f'or in the lab: lab.bind("{name}", {guess}).')

    def __dir__(self) -> list[str]:
        """Bindings, plus anything attached by hand (``env.KV = MyKV()`` in a lesson)."""
        attached = {name for name in vars(self) if not name.startswith("_")}
        return sorted(set(self._bindings) | attached)

    def __contains__(self, name: str) -> bool:
        return name in self._bindings

    def __repr__(self) -> str:
        return f"<env {', '.join(sorted(self._bindings)) or '(no bindings)'}>"


@dataclass
class Version:
    """One committed version of an object, as ``lab.history`` returns it."""

    time: float
    request: str | None
    kv: dict[str, Any]
    alarm: float | None
    sql_tables: list[str]
    version: int

    def __repr__(self) -> str:
        from .clock import iso

        return f"<Version {self.version} at {iso(self.time)} by {self.request}: {self.kv!r}>"


class Lab:
    """Hosts Durable Objects with Cloudflare's semantics. See DESIGN.md §3 for the API."""

    def __init__(self, name: str = "dolab", path: str | Path | None = DEFAULT_PATH,
                 clock: str = "real", *, config: str | Path | None = None, module: Any = None,
                 mailbox_limit: int = 1000, timing: str = "local",
                 compatibility_date: str | None = None, trace_limit: int = 100_000,
                 seed: int = 0) -> None:
        if timing not in ("local", "production"):
            raise ValueError('timing must be "local" (10 s eviction) or "production" (70–140 s)')
        if clock not in ("real", "virtual"):
            raise ValueError(f'clock must be "real" or "virtual", not {clock!r}')
        self.name = name
        self.path = None if path is None else str(path)
        self.mailbox_limit = mailbox_limit
        self.timing = timing
        self.compatibility_date = compatibility_date or DEFAULT_COMPATIBILITY_DATE
        self.store = Store(self.path)
        start = self.store.root.lab_time if clock == "virtual" else None
        self.clock: LabClock = make_clock(clock, start)
        self.trace = Trace(self.clock, trace_limit)
        self.output_gate = OutputGate()
        self.id_rng = seeded_rng(seed) if self.clock.virtual else None
        self._rng = random.Random(seed)
        self.env = Env(self)
        self.bindings: dict[str, NamespaceBinding] = {}
        self.worker_cls: type | None = None
        self.services: list[Any] = []
        self.ws_clients: list[Any] = []   # simulated WebSocket clients (websocket.ClientWebSocket)
        self.alarms = AlarmScheduler(self)
        self._dirty: dict[ObjectHost, None] = {}
        self._flush_scheduled = False
        self._request_seq = 0
        self._drivers = 0
        self._probers = 0
        self._jumper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.fail_next_commit: BaseException | None = None
        self.reservations: set[Any] = set()
        self._reservation_check = False
        self.closed = False
        _current_lab.append(self)
        if config is not None:
            try:
                self._configure(config, module)
            except BaseException:
                self.close()  # why: a lab that failed to open must not keep its file locked
                raise

    # ---- bindings -------------------------------------------------------------------------------

    def bind(self, name: str, cls: type, storage: str = "sqlite") -> DurableObjectNamespace:
        """Bind ``cls`` as ``env.NAME``; rebinding the same name is a code update."""
        if not (isinstance(cls, type) and issubclass(cls, DurableObject)):
            raise TypeError(f"lab.bind({name!r}, …) needs a class that extends DurableObject, "
                            f"got {cls!r}.")
        if storage not in ("sqlite", "kv"):
            raise ValueError('storage must be "sqlite" (new_sqlite_classes) or "kv" (new_classes)')
        existing = self.bindings.get(name)
        if existing is not None and existing.cls.__name__ == cls.__name__:
            self._code_update(existing, cls, storage)
            return self.env._bindings[name]  # type: ignore[no-any-return]
        binding = self._same_class(cls, storage) or NamespaceBinding(self, name, cls, storage)
        self.bindings[name] = binding
        namespace = DurableObjectNamespace(binding, None, _TOKEN)
        self.env._bindings[name] = namespace
        self.alarms.restore(binding)
        return namespace

    def _same_class(self, cls: type, storage: str) -> NamespaceBinding | None:
        """Two bindings of one class are one namespace: the same ids reach the same objects."""
        for other in self.bindings.values():
            if other.cls.__name__ == cls.__name__:
                if other.backend != storage:
                    raise ValueError(f"{cls.__name__} is already bound as env.{other.name} with "
                                     f"{other.backend} storage; one class has one backend.")
                return other
        return None

    def _code_update(self, binding: NamespaceBinding, cls: type, storage: str) -> None:
        binding.cls = cls
        binding.backend = storage
        from .storage import Limits

        binding.limits = Limits(storage)
        for host in binding.hosts.values():
            if host.instance is not None or host.mailbox or host.inflight:
                host.reset(errors.DurableObjectReset(errors.CODE_UPDATED))
            elif host.sockets is not None:
                host.sockets.disconnect()  # a deploy disconnects hibernated sockets too (§8.3)

    def worker(self, cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, WorkerEntrypoint)):
            raise TypeError(f"lab.worker() needs a class that extends WorkerEntrypoint, got {cls!r}")
        self.worker_cls = cls
        return cls

    def bucket(self, name: str) -> Any:
        """Bind an R2-like bucket as ``env.NAME`` (``bucket.py``); its data lives in this lab's
        store and survives reopening. Binding the same name again returns the same bucket."""
        from .bucket import R2Bucket, open_bucket

        existing = self.env._bindings.get(name)
        if isinstance(existing, R2Bucket):
            return existing
        if existing is not None:
            raise ValueError(f"env.{name} is already a Durable Object namespace; give the bucket "
                             "another name.")
        bucket = self.env._bindings[name] = open_bucket(self, name)
        return bucket

    def _configure(self, config: str | Path, module: Any) -> None:
        from . import config as config_mod

        cfg = config_mod.load(config)
        if cfg.name:
            self.name = cfg.name
        if cfg.compatibility_date:
            self.compatibility_date = cfg.compatibility_date
        names = {n: getattr(module, n) for n in dir(module)} if module is not None else {}
        if isinstance(module, dict):
            names = module
        self.apply_config(cfg, names)

    def apply_config(self, cfg: Any, names: dict[str, Any]) -> None:
        from . import config as config_mod

        config_mod.check_module_exports(cfg, names, cfg.path or "the module")
        backends = cfg.backends()
        for binding in cfg.bindings:
            self.bind(binding.name, names[binding.class_name], backends[binding.class_name])
        for value in names.values():
            if isinstance(value, type) and issubclass(value, WorkerEntrypoint) \
                    and value is not WorkerEntrypoint:
                self.worker(value)

    def ids(self, binding: str) -> list[str]:
        """Ids (hex) of every object of a binding that has stored data (listDurableObjectIds)."""
        return self.store.ids(self._binding(binding).key)

    def _binding(self, name: str) -> NamespaceBinding:
        try:
            return self.bindings[name]
        except KeyError:
            raise KeyError(f"No binding named {name!r}; bound: {sorted(self.bindings)}") from None

    def host_of(self, stub: DurableObjectStub) -> ObjectHost:
        return stub._host()

    # ---- requests -------------------------------------------------------------------------------

    def next_request_id(self) -> str:
        self._request_seq += 1
        return f"r{self._request_seq}"

    def attach_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            from .timers import patch_loop

            patch_loop(loop)
            ensure = getattr(self.clock, "ensure_armed", None)
            if ensure is not None:
                ensure()

    async def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None,
                    **init: Any) -> Any:
        """Dispatch a request through the Worker's ``fetch`` (like Miniflare's dispatchFetch)."""
        from .worker import dispatch

        self.attach_loop()
        return await self.drive(dispatch(self, url, method=method, headers=headers, body=body,
                                         **init))

    async def connect(self, url: str, headers: Any = None) -> Any:
        """Open a simulated WebSocket client through the Worker (a GET with Upgrade: websocket)."""
        from .websocket import connect

        self.attach_loop()
        return await self.drive(connect(self, url, headers))

    def watch_reservation(self, call: Any) -> None:
        """Fast-path calls not awaited by the end of this loop step become mailbox events."""
        self.reservations.add(call)
        if not self._reservation_check:
            self._reservation_check = True
            asyncio.get_running_loop().call_soon(self._check_reservations)

    def _check_reservations(self) -> None:
        self._reservation_check = False
        pending, self.reservations = self.reservations, set()
        for call in pending:
            call.not_awaited()

    def service(self, url_prefix: str, handler: Callable[..., Any], latency: float = 0.0) -> None:
        """Register an outbound service for ``dolab.fetch`` (no real network from objects)."""
        from .outbound import Service

        self.services.append(Service(url_prefix, handler, latency))

    # ---- commit (write coalescing, group commit, output gate) ----------------------------------

    def mark_dirty(self, host: ObjectHost, confirmed: bool) -> None:
        if confirmed:
            host.confirmed_epoch = self.output_gate.epoch
        self._dirty[host] = None
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def has_dirty(self, host: ObjectHost) -> bool:
        return host in self._dirty

    def forget_dirty(self, host: ObjectHost) -> None:
        self._dirty.pop(host, None)

    def flush(self) -> None:
        """Commit every buffer dirtied in this loop step in one ZODB transaction (group commit)."""
        self._flush_scheduled = False
        if self.closed:
            return
        if not self._dirty:  # every writer was reset meanwhile: close the epoch all the same
            self.output_gate.finish_commit(self.output_gate.begin_commit())
            return
        hosts = list(self._dirty)
        self._dirty.clear()
        epoch = self.output_gate.begin_commit()
        now = self.clock.now()
        try:
            moved = [h for h in hosts if h.flush_into(now)]
            if self.clock.virtual and self.store.root.lab_time != now:
                self.store.root.lab_time = now
            if self.fail_next_commit is not None:
                failure, self.fail_next_commit = self.fail_next_commit, None
                raise failure
            self.store.commit()
        except Exception as error:  # the write failed: reset the objects, fail held results
            self.store.abort()
            for host in hosts:
                host._record = None
                host.reset(errors.DurableObjectReset(
                    f"Durable Object reset because a storage write failed: {error}"))
            self.output_gate.finish_commit(epoch, error)
            return
        self.output_gate.finish_commit(epoch)
        self.trace.record("lab", trace_mod.COMMIT, None, epoch=epoch,
                          objects=[h.label for h in moved])
        self.alarms.after_commit(moved)

    def after_output_gate(self, caller: ObjectHost,
                          submit: Callable[[], asyncio.Future[Any]]) -> asyncio.Future[Any]:
        """An outgoing call from ``caller`` leaves once caller's earlier writes are durable."""
        outer = asyncio.get_running_loop().create_future()
        gate = self.output_gate.wait(caller.confirmed_epoch)

        def go(_: Any) -> None:
            if gate.exception() is not None:
                outer.set_exception(gate.exception())  # type: ignore[arg-type]
                return
            inner = submit()
            inner.add_done_callback(lambda f: _chain(f, outer))

        gate.add_done_callback(go)
        return outer

    # ---- time -----------------------------------------------------------------------------------

    def now(self) -> float:
        """Lab time, seconds since the epoch."""
        return self.clock.now()

    async def drive(self, awaitable: Awaitable[Any]) -> Any:
        """Await lab work from outside any object; under the virtual clock, auto-jump time while
        the work is blocked on lab time and nothing else can run (trio's MockClock autojump)."""
        __tracebackhide__ = True  # IPython shows the learner's frames, not dolab's plumbing
        if not self.clock.virtual or current_host.get() is not None:
            return await awaitable
        self._drivers += 1
        if self._jumper is None or self._jumper.done():
            self._jumper = asyncio.get_running_loop().create_task(self._autojump())
        try:
            return await awaitable
        finally:
            self._drivers -= 1

    async def _autojump(self) -> None:
        self._probers += 1
        try:
            while self._drivers > 0 and not self.closed:
                await asyncio.sleep(0)
                if self._drivers == 0:
                    break  # why: the awaited work finished; nothing may fire while the lab is idle
                if not self._quiet():
                    continue
                if not self.clock.fire_next():
                    self._probers -= 1
                    try:
                        await asyncio.sleep(0.001)  # nothing due: the work waits on something real
                    finally:
                        self._probers += 1
        finally:
            self._probers -= 1

    def _quiet(self) -> bool:
        """Nothing but the lab's own probes (auto-jump, settle) is ready to run.

        Each probe loops on ``sleep(0)``; when one runs, the others are at most queued, so the
        loop is quiet when no more than ``probers - 1`` callbacks are ready."""
        return len(getattr(self._loop, "_ready", ())) <= self._probers - 1

    async def external(self, host: ObjectHost, awaitable: Awaitable[Any], what: str) -> Any:
        """A handler awaits something that is not storage: the input gate is open meanwhile, and
        the reply waits for the gate like any other event (spec §7)."""
        request = current_request.get()
        token = current_critical.get()
        self.trace.record(host.label, trace_mod.EXTERNAL_AWAIT, request, what=what)
        try:
            return await awaitable
        finally:
            self.trace.record(host.label, trace_mod.EXTERNAL_DONE, request, what=what)
            await host.gate.wait_open(token)  # why: replies are events; a closed gate holds them

    async def settle(self) -> None:
        """Run until nothing in the loop is runnable (timers due by now included)."""
        self.attach_loop()
        self._probers += 1
        try:
            while True:
                await asyncio.sleep(0)
                if not self._quiet():
                    continue
                deadline = self.clock.next_deadline()
                if deadline is not None and deadline <= self.clock.now():
                    self.clock.fire_due()
                    continue
                return
        finally:
            self._probers -= 1

    async def advance(self, seconds: float) -> None:
        """Move lab time forward, running everything due on the way (alarms, retries, evictions,
        waits) to completion, in time order."""
        if seconds < 0:
            raise ValueError("lab.advance() moves time forward only")
        self.attach_loop()
        target = self.clock.now() + seconds
        await self.settle()
        while (deadline := self.clock.next_deadline()) is not None and deadline <= target:
            self.clock.fire_next()
            await self.settle()
        self.clock.move_by(max(0.0, target - self.clock.now()))
        await self.settle()

    def idle_timeout(self, host: ObjectHost) -> float:
        if self.timing == "local":
            return LOCAL_IDLE_S
        if getattr(host, "hibernatable_only", lambda: False)():
            return HIBERNATE_IDLE_S
        return 70.0 + self._rng.random() * 70.0

    def eviction_kind(self, host: ObjectHost) -> str:
        sockets = getattr(host, "sockets", None)
        if sockets is not None and sockets.hibernatable():
            return trace_mod.HIBERNATED
        return trace_mod.EVICTED

    def compat_at_least(self, date: str) -> bool:
        return self.compatibility_date >= date

    # ---- test helpers (like Cloudflare's runInDurableObject, runDurableObjectAlarm) -------------

    async def evict(self, stub: DurableObjectStub) -> None:
        """Drop the instance now (as idle eviction would); storage, alarms and sockets stay."""
        self.attach_loop()
        await self.settle()
        stub._host().evict(trace_mod.EVICTED)

    async def hibernate(self, stub: DurableObjectStub) -> None:
        """Drop the instance; its hibernatable WebSockets stay connected."""
        self.attach_loop()
        await self.settle()
        stub._host().evict(trace_mod.HIBERNATED)

    async def run_alarm(self, stub: DurableObjectStub) -> bool:
        """Run the object's alarm now if one is set; True if it ran (runDurableObjectAlarm)."""
        self.attach_loop()
        ran: bool = await self.drive(self.alarms.run_now(stub._host()))
        return ran

    async def run_in(self, stub: DurableObjectStub, fn: Callable[[Any, Any], Any]) -> Any:
        """Run ``fn(instance, ctx)`` inside the object, as an event (runInDurableObject)."""
        self.attach_loop()
        host = stub._host()
        if stub._generation is None:
            stub._generation = host.generation
        future = host.submit("run_in", getattr(fn, "__name__", "run_in"),
                             lambda inst: fn(inst, host.ctx), stub._generation)
        return await self.drive(future)

    def storage_of(self, stub: DurableObjectStub) -> dict[str, Any]:
        """The object's committed KV entries (decoded, key order). Read-only."""
        from . import values

        record = self.store.find(stub._binding.key, stub.id.toString())
        if record is None:
            return {}
        return {k: values.decode(v) for k, v in record.kv.items()}

    def history(self, stub: DurableObjectStub) -> list[Version]:
        """Committed versions of the object from ZODB's history, oldest first."""
        record = self.store.find(stub._binding.key, stub.id.toString())
        if record is None:
            return []
        return [self._version_at(stub, rev["tid"]) for rev in self.store.history(record)]

    def _version_at(self, stub: DurableObjectStub, tid: bytes) -> Version:
        from . import values
        from .sql import table_names

        conn = self.store.at(tid)
        try:
            root = conn.root()["dolab"]
            record = root.namespaces[stub._binding.key].objects[stub.id.toString()]
            kv = {k: values.decode(v) for k, v in record.kv.items()}
            tables = table_names(record.sql.image) if record.sql is not None else []
            version, when, request = record.kv.meta
            return Version(when, request, kv, record.alarm, tables, version)
        finally:
            conn.close()

    def pack(self, days: float = 0.0) -> None:
        """Drop history older than ``days`` (ZODB pack)."""
        self.store.pack(days)

    # ---- views ----------------------------------------------------------------------------------

    def show(self) -> Any:
        from .widgets import dashboard

        return dashboard(self)

    def export(self, directory: str | Path, **options: Any) -> Any:
        from .export import export

        return export(self, directory, **options)

    async def serve(self, port: int = 8787, host: str = "127.0.0.1", **options: Any) -> Any:
        from .serve import serve

        self.attach_loop()
        return await serve(self, port=port, host=host, **options)

    # ---- closing --------------------------------------------------------------------------------

    def close(self) -> None:
        """Commit what is buffered, stop timers and close the database."""
        if self.closed:
            return
        from .websocket import disconnect_all

        disconnect_all(self)  # connections cannot outlive the lab (README: Differences)
        if self._dirty:
            self.flush()
        if self.clock.virtual and self.store.root.lab_time != self.clock.now():
            self.store.root.lab_time = self.clock.now()  # why: reopen continues from here
            self.store.commit()
        self.closed = True
        self.clock.close()
        self.store.close()
        if self in _current_lab:
            _current_lab.remove(self)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.path or "memory"
        kind = "virtual" if self.clock.virtual else "real"
        return f"<Lab {self.name!r} at {where}, {kind} clock, bindings: {sorted(self.bindings)}>"


def _chain(source: asyncio.Future[Any], target: asyncio.Future[Any]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())  # type: ignore[arg-type]
    else:
        target.set_result(source.result())

