"""The base classes user code extends: ``DurableObject`` and ``WorkerEntrypoint`` (spec §3, §11.1).

Which methods a stub may call (Python Workers' rules, spec §3.3 and §11.1): public plain functions
defined on the class or its bases (``not name.startswith("_")``); not instance fields, not
``_private`` methods, not static/class methods, and not the reserved handler names.
"""

from __future__ import annotations

import inspect
from typing import Any

from . import errors

RESERVED = frozenset({
    "fetch", "connect", "alarm", "webSocketMessage", "webSocketClose", "webSocketError", "dup",
    "constructor",
})
_ABSENT = object()


class DurableObject:
    """Extend this; the lab constructs it with ``(ctx, env)`` on the first event for an id."""

    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx
        self.env = env


class WorkerEntrypoint:
    """The Worker in front of Durable Objects: ``async def fetch(self, request)``."""

    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx
        self.env = env


_members: dict[tuple[type, str], Any] = {}


def rpc_member(cls: type, name: str) -> Any:
    """The class attribute an RPC call of ``name`` reaches, or raise the spec's TypeError."""
    found = _members.get((cls, name), _ABSENT)
    if found is _ABSENT:
        found = _members[(cls, name)] = _lookup(cls, name)
    return found


def _lookup(cls: type, name: str) -> Any:
    if name in RESERVED:
        raise TypeError(errors.RPC_RESERVED.format(name=name))
    attr = _ABSENT if name.startswith("_") else inspect.getattr_static(cls, name, _ABSENT)
    if attr is _ABSENT or isinstance(attr, (staticmethod, classmethod)):
        raise TypeError(errors.RPC_NOT_IMPLEMENTED.format(name=name))
    if getattr(DurableObject, name, None) is attr or getattr(object, name, None) is attr:
        raise TypeError(errors.RPC_NOT_IMPLEMENTED.format(name=name))
    return attr


_callable: dict[tuple[type, str], bool] = {}


def rpc_invoke(instance: Any, name: str, args: tuple[Any, ...]) -> Any:
    """Call method ``name`` (B17–B19): functions run, anything else is "not a function"."""
    key = (type(instance), name)
    is_function = _callable.get(key)
    if is_function is None:
        is_function = _callable[key] = inspect.isfunction(rpc_member(key[0], name))
    if not is_function:
        raise TypeError(errors.RPC_NOT_FUNCTION.format(name=name))
    return getattr(instance, name)(*args)


def rpc_read(instance: Any, name: str) -> Any:
    """``await stub.prop``: read a property (a getter) over RPC."""
    attr = rpc_member(type(instance), name)
    if inspect.isfunction(attr):
        return getattr(instance, name)
    return getattr(instance, name)
