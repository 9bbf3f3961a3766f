"""Durable Object ids, derived exactly as workerd derives them (spec §2.1).

    key            = SHA-256(uniqueKey)                    uniqueKey = "<worker name>-<ClassName>"
    idFromName(n): first16 = HMAC-SHA256(key, n)[:16]
    newUniqueId(): first16 = 16 random bytes
    both:          last16  = HMAC-SHA256(key, first16)[:16];  id = first16 + last16

So dolab's ids equal ``wrangler dev``'s for the same worker, class and names, and ``idFromString``
can tell an id of another namespace apart.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
from typing import Callable

from . import errors

_TOKEN = object()


class DurableObjectId:
    """A 256-bit object id. Minted by a namespace, never constructed by hand."""

    __slots__ = ("_raw", "_hex", "name", "jurisdiction", "_namespace_key")

    def __init__(self, raw: bytes, name: str | None, key: bytes, token: object = None) -> None:
        if token is not _TOKEN:
            raise TypeError(
                "DurableObjectId cannot be constructed directly; use env.NS.idFromName(), "
                "newUniqueId() or idFromString()."
            )
        self._raw = raw
        self._hex = raw.hex()
        self.name = name
        self.jurisdiction: str | None = None
        self._namespace_key = key

    def toString(self) -> str:
        return self._hex

    def equals(self, other: object) -> bool:
        return isinstance(other, DurableObjectId) and other._raw == self._raw

    def __str__(self) -> str:
        return self._hex

    def __repr__(self) -> str:
        label = f" name={self.name!r}" if self.name is not None else ""
        return f"<DurableObjectId {self._hex[:12]}…{label}>"

    def __eq__(self, other: object) -> bool:
        return self.equals(other)

    def __hash__(self) -> int:
        return hash(self._raw)


NAMES_KEPT = 65_536  # ids remembered per namespace by idFromName (names are not bounded)


class IdFactory:
    """Derives the ids of one namespace from its uniqueKey."""

    def __init__(self, unique_key: str, rng: Callable[[int], bytes] | None = None) -> None:
        self.unique_key = unique_key
        self._key = hashlib.sha256(unique_key.encode()).digest()
        self._rng = rng or os.urandom
        self._named: dict[str, bytes] = {}  # name -> raw id: a Worker derives one per request

    def _raw(self, first16: bytes) -> bytes:
        return first16 + hmac.new(self._key, first16, hashlib.sha256).digest()[:16]

    def _mint(self, first16: bytes, name: str | None) -> DurableObjectId:
        return DurableObjectId(self._raw(first16), name, self._key, _TOKEN)

    def from_name(self, name: str) -> DurableObjectId:
        if not isinstance(name, str):
            raise TypeError(f"idFromName() expects a string name, got {type(name).__name__}.")
        raw = self._named.get(name)
        if raw is None:  # two HMAC-SHA256 cost ~15 µs here, more than an RPC round trip
            raw = self._raw(hmac.new(self._key, name.encode(), hashlib.sha256).digest()[:16])
            if len(self._named) >= NAMES_KEPT:
                self._named.clear()
            self._named[name] = raw
        return DurableObjectId(raw, name, self._key, _TOKEN)

    def unique(self) -> DurableObjectId:
        return self._mint(self._rng(16), None)

    def from_string(self, text: str) -> DurableObjectId:
        if not isinstance(text, str) or len(text) != 64:
            raise TypeError(errors.INVALID_ID)
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise TypeError(errors.INVALID_ID) from None
        candidate = self._mint(raw[:16], None)
        if candidate._raw != raw:
            raise TypeError(errors.ID_OTHER_NAMESPACE)
        return candidate

    def owns(self, object_id: DurableObjectId) -> bool:
        return object_id._namespace_key == self._key


def seeded_rng(seed: int) -> Callable[[int], bytes]:
    """Deterministic bytes for newUniqueId() under the virtual clock (same ids every run)."""
    generator = random.Random(seed)
    return generator.randbytes
