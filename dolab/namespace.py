"""``env.NS`` (DurableObjectNamespace) and the stubs it hands out (spec §2).

Creating ids and stubs has no side effect (B12); the first call constructs the object. A stub binds
to the object's generation on its first call; after a reset it stays broken (B23, B26) and a new
stub reaches a fresh instance.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable, Generator

from . import errors, object as do_object, values
from .host import ObjectHost, current_host
from .http import Request, absolute_url
from .ids import DurableObjectId, IdFactory
from .storage import Limits

if TYPE_CHECKING:
    from .lab import Lab

JURISDICTIONS = ("eu", "fedramp", "fedramp-high", "us")
LOCATION_HINTS = ("wnam", "enam", "sam", "weur", "eeur", "apac", "apac-ne", "apac-se", "oc", "afr",
                  "me")
_TOKEN = object()


class NamespaceBinding:
    """The lab's side of one binding: class, backend, id derivation and the object hosts."""

    def __init__(self, lab: Lab, name: str, cls: type, backend: str) -> None:
        self.lab = lab
        self.name = name
        self.cls = cls
        self.backend = backend
        self.limits = Limits(backend)
        self.key = f"{lab.name}-{cls.__name__}"
        self.ids = IdFactory(self.key, lab.id_rng)
        self.jurisdiction_ids = {j: IdFactory(f"{self.key}#{j}", lab.id_rng) for j in JURISDICTIONS}
        self.hosts: dict[str, ObjectHost] = {}

    def host(self, object_id: DurableObjectId) -> ObjectHost:
        host = self.hosts.get(object_id.toString())
        if host is None:
            if not self._owns(object_id):
                raise TypeError(errors.ID_OTHER_NAMESPACE)
            host = self.hosts[object_id.toString()] = ObjectHost(self, object_id)
        return host

    def _owns(self, object_id: DurableObjectId) -> bool:
        return self.ids.owns(object_id) or any(f.owns(object_id)
                                               for f in self.jurisdiction_ids.values())

    def factory(self, jurisdiction: str | None) -> IdFactory:
        return self.ids if jurisdiction is None else self.jurisdiction_ids[jurisdiction]


class DurableObjectNamespace:
    """``env.NS``: mints ids and stubs."""

    def __init__(self, binding: NamespaceBinding, jurisdiction: str | None = None,
                 token: object = None) -> None:
        if token is not _TOKEN:
            raise TypeError("Namespaces come from lab.env; bind a class with lab.bind().")
        self._binding = binding
        self._jurisdiction = jurisdiction

    def _mint(self, object_id: DurableObjectId) -> DurableObjectId:
        object_id.jurisdiction = self._jurisdiction
        return object_id

    def idFromName(self, name: str) -> DurableObjectId:
        return self._mint(self._binding.factory(self._jurisdiction).from_name(name))

    def newUniqueId(self, options: dict[str, Any] | None = None, *,
                    jurisdiction: str | None = None) -> DurableObjectId:
        wanted = jurisdiction or (options or {}).get("jurisdiction") or self._jurisdiction
        if wanted is not None and wanted not in JURISDICTIONS:
            raise TypeError(f"Unknown jurisdiction: {wanted}")
        object_id = self._binding.factory(wanted).unique()
        object_id.jurisdiction = wanted
        return object_id

    def idFromString(self, text: str) -> DurableObjectId:
        factories = [self._binding.factory(self._jurisdiction)]
        if self._jurisdiction is None:
            factories += list(self._binding.jurisdiction_ids.values())
        error: TypeError | None = None
        for factory in factories:
            try:
                object_id = factory.from_string(text.lower() if isinstance(text, str) else text)
            except TypeError as exc:
                error = exc if error is None or "64 hex" not in str(exc) else error
                if "64 hex" in str(exc):
                    raise
                continue
            object_id.jurisdiction = next((j for j, f in self._binding.jurisdiction_ids.items()
                                           if f is factory), None)
            return object_id
        assert error is not None
        raise error

    def get(self, id: DurableObjectId, options: dict[str, Any] | None = None, *,
            locationHint: str | None = None, routingMode: str | None = None) -> DurableObjectStub:
        opts = dict(options or {})
        routing = routingMode if routingMode is not None else opts.get("routingMode")
        if routing is not None and routing != "primary-only":
            raise errors.RangeError(errors.UNKNOWN_ROUTING_MODE.format(mode=routing))
        if not isinstance(id, DurableObjectId):
            raise TypeError("get() expects a DurableObjectId (use idFromName() or getByName()).")
        if self._jurisdiction is not None and id.jurisdiction != self._jurisdiction:
            raise TypeError(errors.JURISDICTION_MISMATCH)
        return DurableObjectStub(self._binding, id, _TOKEN)

    def getByName(self, name: str, options: dict[str, Any] | None = None, **kw: Any
                  ) -> DurableObjectStub:
        return self.get(self.idFromName(name), options, **kw)

    def jurisdiction(self, name: str) -> DurableObjectNamespace:
        if name not in JURISDICTIONS:
            raise TypeError(f"Unknown jurisdiction: {name}")
        return DurableObjectNamespace(self._binding, name, _TOKEN)

    def __repr__(self) -> str:
        cls = self._binding.cls.__name__
        return f"<DurableObjectNamespace {self._binding.name} → {cls} ({self._binding.backend})>"


class Call:
    """An RPC or fetch in flight: already submitted, awaited to get the result.

    Awaiting it from outside any object lets the virtual clock auto-jump; awaiting it from inside
    an object opens that object's input gate until the reply arrives (spec §7 table)."""

    __slots__ = ("_lab", "_future", "_caller")

    def __init__(self, lab: Lab, future: asyncio.Future[Any], caller: ObjectHost | None) -> None:
        self._lab = lab
        self._future = future
        self._caller = caller

    def __await__(self) -> Generator[Any, None, Any]:
        if self._caller is None:
            return self._lab.drive(self._future).__await__()
        return self._lab.external(self._caller, self._future, "call").__await__()

    def __del__(self) -> None:
        future = self._future
        if future.done() and not future.cancelled():
            future.exception()  # a fire-and-forget call's error is not "never retrieved"


class InlineCall:
    """The fast path: the object is idle, so awaiting the call runs the handler right here.

    The delivery slot is reserved at call time (later calls queue behind it, E-order). If the call
    is not awaited within this loop step (fire-and-forget, or handed to gather), it turns into an
    ordinary mailbox event."""

    __slots__ = ("_lab", "_host", "_caller", "_kind", "_label", "_invoke", "_generation",
                 "_future", "_awaited")

    def __init__(self, lab: Lab, host: ObjectHost, caller: ObjectHost | None, kind: str,
                 label: str, invoke: Callable[[Any], Any], generation: int) -> None:
        self._lab, self._host, self._caller = lab, host, caller
        self._kind, self._label, self._invoke, self._generation = kind, label, invoke, generation
        self._future: asyncio.Future[Any] | None = None
        self._awaited = False
        host.reserve(self)
        lab.watch_reservation(self)

    def not_awaited(self) -> None:
        """Called at the end of the loop step if nobody awaited the call: queue it normally."""
        if not self._awaited and self._future is None:
            self._future = self._host.unreserve_into_mailbox(
                self._kind, self._label, self._invoke, self._generation)

    def __await__(self) -> Generator[Any, None, Any]:
        self._awaited = True
        self._lab.reservations.discard(self)
        if self._future is not None:
            return Call(self._lab, self._future, self._caller).__await__()
        work = self._host.run_inline(self._kind, self._label, self._invoke, self._generation)
        if self._caller is None:
            if not self._lab.clock.virtual:
                return work.__await__()  # nothing to drive: real time moves by itself
            return self._lab.drive(work).__await__()
        return self._lab.external(self._caller, work, "call").__await__()

    def __del__(self) -> None:
        future = self._future
        if future is not None and future.done() and not future.cancelled():
            future.exception()


class RpcMethod:
    """``stub.name``: call it for RPC, or await it to read a getter (B19)."""

    __slots__ = ("_stub", "_name")

    def __init__(self, stub: DurableObjectStub, name: str) -> None:
        self._stub = stub
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Call | InlineCall:
        if kwargs:
            raise TypeError(errors.RPC_NO_KWARGS.format(name=self._name, keys=", ".join(kwargs)))
        cloned = tuple(map(values.clone, args))
        name = self._name
        # why: the host clones what an "rpc" event returns (ObjectHost.run_inline and _run)
        return self._stub._send("rpc", name, lambda inst: do_object.rpc_invoke(inst, name, cloned))

    def __await__(self) -> Generator[Any, None, Any]:
        name = self._name
        call = self._stub._send("get", name,
                                lambda inst: values.clone(do_object.rpc_read(inst, name)))
        return call.__await__()

    def __repr__(self) -> str:
        return f"<RPC method {self._name} of {self._stub!r}>"


class DurableObjectStub:
    """A client-side handle to one object: ``fetch`` and any public method as RPC."""

    def __init__(self, binding: NamespaceBinding, object_id: DurableObjectId,
                 token: object = None) -> None:
        if token is not _TOKEN:
            raise TypeError("Stubs come from env.NS.get(id) or env.NS.getByName(name).")
        self._binding = binding
        self.id = object_id
        self.name = object_id.name
        self._generation: int | None = None
        self._cached_host: ObjectHost | None = None

    def _host(self) -> ObjectHost:
        host = self._cached_host  # a host outlives its instances; the lab never drops one
        if host is None:
            host = self._cached_host = self._binding.host(self.id)
        return host

    def _send(self, kind: str, label: str, invoke: Callable[[Any], Any]) -> Call | InlineCall:
        host = self._host()
        lab = self._binding.lab
        lab.attach_loop()
        if self._generation is None:
            self._generation = host.generation
        if host.instance is None and host.construct_id is None:
            host.construct_id = self.id
        caller = current_host.get()
        if host.can_inline(self._generation) and (
                caller is None or lab.output_gate.durable(caller.confirmed_epoch)):
            return InlineCall(lab, host, caller, kind, label, invoke, self._generation)
        if caller is not None and not lab.output_gate.durable(caller.confirmed_epoch):
            future = lab.after_output_gate(caller, lambda: host.submit(kind, label, invoke,
                                                                       self._generation))
        else:
            future = host.submit(kind, label, invoke, self._generation)
        return Call(lab, future, caller)

    def fetch(self, input: Any, init: dict[str, Any] | None = None, **kwargs: Any) -> Call | InlineCall:
        """``stub.fetch(url_or_request, method=…, headers=…, body=…)`` → awaitable Response."""
        options = {**(init or {}), **kwargs}
        if isinstance(input, Request):
            request = Request(input, **options) if options else input
        else:
            request = Request(absolute_url(str(input)), **options)
        if not request.url.startswith(("http://", "https://")):
            raise TypeError(f"Fetch API cannot load: {request.url}")  # workerd's text
        return self._send("fetch", f"fetch {request.method} {_path(request.url)}",
                          lambda inst: _call_fetch(inst, request))

    def __getattr__(self, name: str) -> RpcMethod:
        if name.startswith("__") or name.startswith("_repr_") or name.startswith("_ipython"):
            raise AttributeError(name)
        method = self.__dict__[name] = RpcMethod(self, name)  # next time: a plain attribute
        return method

    def __repr__(self) -> str:
        label = self.name if self.name is not None else self.id.toString()[:12] + "…"
        return f"<DurableObjectStub {self._binding.name}:{label}>"


def _call_fetch(instance: Any, request: Request) -> Any:
    handler = getattr(instance, "fetch", None)
    if handler is None:
        raise TypeError(f"{type(instance).__name__} has no fetch() handler; "
                        "define async def fetch(self, request) or call an RPC method instead.")
    return handler(request)


def _path(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")

