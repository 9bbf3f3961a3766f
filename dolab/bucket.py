"""An R2-like bucket: ``lab.bucket("BLOBS")`` binds ``env.BLOBS``, so an object can keep large
data outside its own storage and hold only a reference to it (lesson 09).

The surface is a small part of R2's binding, with R2's names::

    await env.BLOBS.put(key, data)         -> R2Object (.key, .size, .etag); data: bytes | str
    await env.BLOBS.get(key)               -> R2ObjectBody (an R2Object with await .bytes(),
                                              .text(), .json()), or None
    await env.BLOBS.head(key)              -> R2Object, or None
    await env.BLOBS.delete(key | [keys])   -> None
    await env.BLOBS.list(prefix=, limit=, cursor=, startAfter=)
                                           -> R2Objects (.objects, .truncated, .cursor)

Durability: R2 is a service of its own, not part of any object's storage, so a bucket write is
neither coalesced with the object's writes nor held by its output gate. Each ``put`` and
``delete`` commits at once, in its own ZODB transaction, before its awaitable resolves (an R2 put
is durable when its promise resolves); the data survives ``lab.close()`` and reopening. The
store's transaction holds nothing else at that moment: object writes enter ZODB only inside the
lab's flush, which commits them in the same step.

Inside an object a bucket call is an outbound call, like ``fetch``: the input gate is open while it
is awaited (spec §7), and the trace records it as ``external-await``.

Not modelled (README, "Differences from Cloudflare"): HTTP and custom metadata, conditional and
range reads, multipart uploads, ``delimiter``, versions, storage classes; no size limit (R2's
5 GiB single put is beyond a notebook). A list cursor is the last key returned.
"""

from __future__ import annotations

import builtins
import hashlib
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from .host import current_host

if TYPE_CHECKING:
    from .lab import Lab
    from .store import BucketRecord

T = TypeVar("T")
KEY_LIMIT = 1024          # bytes of UTF-8, as R2's object keys
LIST_LIMIT = 1000         # at most 1000 objects per list() and keys per delete(), as in R2
_TOKEN = object()


class R2Object:
    """An object's metadata, as ``put`` and ``head`` return it."""

    def __init__(self, key: str, data: builtins.bytes) -> None:
        self.key = key
        self.size = len(data)
        self.etag = hashlib.md5(data, usedforsecurity=False).hexdigest()  # R2's single-part etag

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key!r} {self.size} bytes>"


class R2ObjectBody(R2Object):
    """What ``get`` returns: the metadata and the body (read it as often as you like)."""

    def __init__(self, key: str, data: builtins.bytes) -> None:
        super().__init__(key, data)
        self._data = data

    async def bytes(self) -> builtins.bytes:
        return self._data

    async def text(self) -> str:
        return self._data.decode("utf-8")

    async def json(self) -> Any:
        return json.loads(self._data)


class R2Objects:
    """What ``list`` returns: ``objects`` in key order; ``cursor`` continues when ``truncated``."""

    def __init__(self, objects: list[R2Object], truncated: bool, cursor: str | None) -> None:
        self.objects = objects
        self.truncated = truncated
        self.cursor = cursor
        self.delimitedPrefixes: list[str] = []

    def __repr__(self) -> str:
        more = ", truncated" if self.truncated else ""
        return f"<R2Objects {[o.key for o in self.objects]!r}{more}>"


class R2Bucket:
    """``env.BLOBS``: an R2-like bucket whose data lives in the lab's ZODB store."""

    def __init__(self, lab: Lab, name: str, token: object = None) -> None:
        if token is not _TOKEN:
            raise TypeError('Buckets come from lab.env; bind one with lab.bucket("BLOBS").')
        self._lab = lab
        self._name = name

    async def put(self, key: str, value: builtins.bytes | str | None) -> R2Object:
        _check_key(key)
        data = _body(value)
        return await self._call(f"put {key}", lambda: self._put(key, data))

    async def get(self, key: str) -> R2ObjectBody | None:
        _check_key(key)
        return await self._call(f"get {key}", lambda: self._read(key, R2ObjectBody))

    async def head(self, key: str) -> R2Object | None:
        _check_key(key)
        return await self._call(f"head {key}", lambda: self._read(key, R2Object))

    async def delete(self, keys: str | builtins.list[str]) -> None:
        names = _key_list(keys)
        await self._call(f"delete {', '.join(names)}", lambda: self._delete(names))

    async def list(self, *, prefix: str | None = None, limit: int = LIST_LIMIT,
                   cursor: str | None = None, startAfter: str | None = None) -> R2Objects:
        _check_limit(limit)
        after = max((k for k in (cursor, startAfter) if k is not None), default=None)
        return await self._call(f"list {prefix or ''}", lambda: self._list(prefix or "", limit,
                                                                           after))

    def __repr__(self) -> str:
        return f"<R2Bucket {self._name}>"

    # ---- the work (runs when the call is made, or inside the object's outbound await) ----------

    async def _call(self, what: str, work: Callable[[], T]) -> T:
        if self._lab.closed:
            raise RuntimeError(f"The lab is closed, and env.{self._name} with it: open a new lab "
                               f'and bind the bucket again with lab.bucket("{self._name}").')
        host = current_host.get()
        if host is None:
            return work()

        async def outbound() -> T:
            return work()

        # why: an R2 call leaves the object, so its input gate opens while it is awaited
        result: T = await self._lab.external(host, outbound(), f"R2 {self._name} {what}")
        return result

    def _record(self) -> BucketRecord:
        return self._lab.store.bucket(self._name)

    def _put(self, key: str, data: builtins.bytes) -> R2Object:
        self._record().objects[key] = data
        self._commit(f"R2 put {self._name}/{key}")
        return R2Object(key, data)

    def _read(self, key: str, kind: type[R2Object]) -> Any:
        data = self._record().objects.get(key)
        return None if data is None else kind(key, data)

    def _delete(self, keys: builtins.list[str]) -> None:
        objects = self._record().objects
        for key in keys:
            objects.pop(key, None)
        self._commit(f"R2 delete {self._name}: {len(keys)} key(s)")

    def _list(self, prefix: str, limit: int, after: str | None) -> R2Objects:
        found: builtins.list[R2Object] = []
        for key, data in self._from(prefix, after):
            if not key.startswith(prefix):
                break  # keys are sorted: no later key has the prefix
            if len(found) == limit:
                return R2Objects(found, True, found[-1].key)
            found.append(R2Object(key, data))
        return R2Objects(found, False, None)

    def _from(self, prefix: str, after: str | None) -> Iterator[tuple[str, builtins.bytes]]:
        objects = self._record().objects
        if after is not None and after >= prefix:
            return iter(objects.items(min=after, excludemin=True))
        return iter(objects.items(min=prefix))

    def _commit(self, note: str) -> None:
        try:
            self._lab.store.commit(note)
        except BaseException:
            self._lab.store.abort()
            raise


def open_bucket(lab: Lab, name: str) -> R2Bucket:
    """Create the bucket's record (committed at once) and mint its binding; ``lab.bucket`` puts
    it on ``env``."""
    if not name.isidentifier():
        raise ValueError(f"{name!r} cannot name a binding: use letters, digits and _ (e.g. BLOBS)")
    if lab.closed:
        raise RuntimeError("The lab is closed: open a new lab to bind a bucket.")
    lab.store.bucket(name)
    lab.store.commit(f"R2 bucket {name}")
    return R2Bucket(lab, name, _TOKEN)


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"An R2 key must be a str, not {type(key).__name__}.")
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > KEY_LIMIT:
        raise ValueError(f"R2 keys are limited to {KEY_LIMIT} bytes; this key has {size}.")
    return key


def _key_list(keys: object) -> builtins.list[str]:
    if isinstance(keys, str):
        return [_check_key(keys)]
    if not isinstance(keys, (builtins.list, tuple)):
        raise TypeError(f"delete() takes a key (str) or a list of keys, not {type(keys).__name__}.")
    if len(keys) > LIST_LIMIT:
        raise ValueError(f"delete() takes at most {LIST_LIMIT} keys at a time; got {len(keys)}.")
    return [_check_key(k) for k in keys]


def _body(value: object) -> builtins.bytes:
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (builtins.bytes, bytearray, memoryview)):
        return builtins.bytes(value)
    hint = " (store json.dumps(value) for JSON)" if isinstance(value, (dict, builtins.list)) else ""
    raise TypeError(f"put() takes the object's data as bytes or str, not "
                    f"{type(value).__name__}{hint}.")


def _check_limit(limit: object) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise TypeError(f"list() limit must be an int, not {type(limit).__name__}.")
    if not 1 <= limit <= LIST_LIMIT:
        raise ValueError(f"list() limit must be between 1 and {LIST_LIMIT}; got {limit}.")
