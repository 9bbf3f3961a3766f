"""The ZODB engine: the one durable store of a lab, and nothing else (no Cloudflare rules here).

Schema (all classes defined here; user values are stored as codec bytes, never as pickles)::

    root["dolab"]          LabRoot
      .namespaces          OOBTree  binding class key -> NamespaceRecord
      .alarms              OOBTree  (time, ns key, id hex) -> True        an index of alarms by time
      .lab_time            float | None                                 the virtual clock's last time
      .buckets             OOBTree  bucket name -> BucketRecord  (added on first use; bucket.py)
    NamespaceRecord
      .objects             OOBTree  id hex -> ObjectRecord
    ObjectRecord
      .kv                  KvTree  key (str) -> value bytes              in code-point order
        .meta              (version, lab time, request id)              rewritten on every commit
      .name                str | None                                   the name its id came from
      .alarm               float | None                                 lab seconds
      .sql                 SqlImage | None                              sqlite image, own record
      .sockets             OOBTree | None  socket id -> SocketRecord    (hibernation; on first use)
    BucketRecord
      .objects             OOBTree  key (str) -> object bytes            an R2-like bucket's data

Only the flush commits (``Store.commit``), in one transaction for every object written in that loop
step (group commit); the one exception is a bucket (an R2-like service of its own), whose writes
commit in their own transaction when they are made (``bucket.py``). Opening admits only the
classes listed in ``_ADMITTED``: a crafted file that names any other global is refused before
anything runs.

Each commit of an object's data rewrites one ZODB object when its data fits in one bucket: the
``KvTree``, which carries the version metadata in its own state (so ``lab.history`` is that
object's ZODB history) and keeps a small tree's bucket inline. The ``ObjectRecord`` itself is
rewritten only when the alarm, the SQL image or the socket table is first set. Files of schema 1
(metadata on the record, sockets in a ``PersistentMapping``) are migrated when opened.
"""

from __future__ import annotations

import io
import os
import pickletools
from pathlib import Path
from typing import Any, Iterator

import transaction
import ZODB
import ZODB.FileStorage
from BTrees.OOBTree import OOBTree
from persistent import Persistent
from ZODB.Connection import Connection
from ZODB.MappingStorage import MappingStorage
from ZODB.POSException import ConflictError, StateLoadError

from . import errors

SCHEMA_VERSION = 2


class LabRoot(Persistent):
    def __init__(self) -> None:
        self.schema = SCHEMA_VERSION
        self.namespaces = OOBTree()
        self.alarms = OOBTree()
        self.lab_time: float | None = None


class NamespaceRecord(Persistent):
    def __init__(self) -> None:
        self.objects = OOBTree()


class SqlImage(Persistent):
    def __init__(self, image: bytes) -> None:
        self.image = image


class SocketRecord(Persistent):
    """A hibernatable WebSocket's durable part: tags, attachment (codec bytes), auto-response time."""

    def __init__(self, tags: tuple[str, ...], attachment: bytes | None) -> None:
        self.tags = tags
        self.attachment = attachment
        self.auto_response_time: float | None = None


Meta = tuple[int, float, "str | None"]  # (version, lab time of the commit, last writing request)


class KvTree(OOBTree):
    """An object's KV data, and the metadata of its latest committed version, in one record."""

    meta: Meta = (0, 0.0, None)  # interior nodes of a large tree keep the default

    def __getstate__(self) -> Any:
        return (OOBTree.__getstate__(self), self.meta)

    def __setstate__(self, state: Any) -> None:
        tree, meta = state
        if not (isinstance(meta, tuple) and len(meta) == 3):
            raise errors.UnsafeDatabaseError("The lab database holds a malformed object version.")
        self.meta = meta
        OOBTree.__setstate__(self, tree)

    def _p_resolveConflict(self, old: Any, committed: Any, new: Any) -> Any:
        """Two writers of one object (two kernels on one ZEO lab) never merge: each commit is a
        new version of the whole object, as the single writer Cloudflare guarantees."""
        raise ConflictError("two labs wrote the same Durable Object at once")


class ObjectRecord(Persistent):
    def __init__(self, name: str | None) -> None:
        self.kv = KvTree()
        self.name = name
        self.alarm: float | None = None
        self.sql: SqlImage | None = None
        self.sockets: OOBTree | None = None
        self.auto_response: tuple[str, str] | None = None


class BucketRecord(Persistent):
    """An R2-like bucket (``bucket.py``): key -> the object's bytes."""

    def __init__(self) -> None:
        self.objects = OOBTree()


_ADMITTED: dict[str, set[str]] = {
    __name__: {"LabRoot", "NamespaceRecord", "SqlImage", "SocketRecord", "ObjectRecord",
               "BucketRecord", "KvTree"},
    "persistent.mapping": {"PersistentMapping"},
    "persistent.list": {"PersistentList"},
    "BTrees.OOBTree": {"OOBTree", "OOBucket", "OOSet", "OOTreeSet"},
    "BTrees.Length": {"Length"},
    "builtins": {"set", "frozenset", "object"},
    "copyreg": {"_reconstructor"},
}


class RestrictedConnection(Connection):
    """Reports a refused class as dolab's own error, not ZODB's empty StateLoadError."""

    def setstate(self, obj: Any) -> None:
        try:
            super().setstate(obj)
        except StateLoadError as error:
            if isinstance(error.__cause__, errors.UnsafeDatabaseError):
                raise error.__cause__ from None
            raise


class RestrictedDB(ZODB.DB):
    """A ZODB database whose unpickler admits only dolab's schema, BTrees and persistent classes."""

    klass = RestrictedConnection

    def classFactory(self, connection: Any, modulename: str, globalname: str) -> Any:
        allowed = _ADMITTED.get(modulename, set())
        if globalname not in allowed:
            raise errors.UnsafeDatabaseError(
                f"Refusing to load {modulename}.{globalname} from the lab database: it is not part "
                "of dolab's schema. The file may be crafted or from another program; nothing in it "
                "was run. Open a different file, or delete this one to start afresh."
            )
        return super().classFactory(connection, modulename, globalname)


class Store:
    """One ZODB database, one connection, one explicit transaction manager."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = None if path is None else str(path)
        self._tm = transaction.TransactionManager(explicit=True)
        storage = self._open_storage()
        try:
            self.db = RestrictedDB(storage, pool_size=2, cache_size=100_000)
            self._conn = self.db.open(transaction_manager=self._tm)
            self._tm.begin()
        except Exception as error:
            storage.close()
            raise errors.DamagedDatabaseError(_damaged_message(str(path), error)) from error
        self.root = self._load_root()

    def _open_storage(self) -> Any:
        if self.path is None:
            return MappingStorage()
        if self.path.startswith("zeo://"):
            return _zeo_storage(self.path)
        target = Path(self.path)
        if not self.path or target.is_dir():
            raise ValueError(f"Lab(path={self.path!r}) needs a file name such as "
                             '".dolab/lab.fs" (or path=None for an in-memory lab).')
        target.parent.mkdir(parents=True, exist_ok=True)
        _drop_unsafe_index(self.path + ".index")
        try:
            return ZODB.FileStorage.FileStorage(self.path)
        except Exception as exc:  # zc.lockfile.LockError, or a damaged file
            if type(exc).__name__ == "LockError":
                raise errors.DatabaseLockedError(_locked_message(self.path)) from None
            raise errors.DamagedDatabaseError(_damaged_message(self.path, exc)) from exc

    def _load_root(self) -> LabRoot:
        try:
            root = self._conn.root()
            lab_root = root.get("dolab")
        except Exception as error:  # ZODB wraps the factory's refusal in StateLoadError
            cause = error.__cause__
            self.close()
            if isinstance(error, errors.UnsafeDatabaseError):
                raise
            if isinstance(cause, errors.UnsafeDatabaseError):
                raise cause from None
            raise errors.DamagedDatabaseError(_damaged_message(str(self.path), error)) from error
        if lab_root is None:
            lab_root = root["dolab"] = LabRoot()
            self.commit()
        if not isinstance(lab_root, LabRoot):
            raise errors.UnsafeDatabaseError("The lab database's root is not a dolab lab.")
        if getattr(lab_root, "schema", 1) < SCHEMA_VERSION:
            _migrate(lab_root)
            self.commit("dolab: schema 2")
        return lab_root

    # ---- records -------------------------------------------------------------------------------

    def namespace(self, key: str) -> NamespaceRecord:
        record: NamespaceRecord | None = self.root.namespaces.get(key)
        if record is None:
            record = self.root.namespaces[key] = NamespaceRecord()
        return record

    def find(self, ns_key: str, id_hex: str) -> ObjectRecord | None:
        ns = self.root.namespaces.get(ns_key)
        return None if ns is None else ns.objects.get(id_hex)

    def record(self, ns_key: str, id_hex: str, name: str | None) -> ObjectRecord:
        ns = self.namespace(ns_key)
        record: ObjectRecord | None = ns.objects.get(id_hex)
        if record is None:
            record = ns.objects[id_hex] = ObjectRecord(name)
        return record

    def bucket(self, name: str) -> BucketRecord:
        """The bucket record ``name``, created (with ``root.buckets``) on first use."""
        buckets = getattr(self.root, "buckets", None)
        if buckets is None:  # a lab file written before buckets existed
            buckets = self.root.buckets = OOBTree()
        record: BucketRecord | None = buckets.get(name)
        if record is None:
            record = buckets[name] = BucketRecord()
        return record

    def ids(self, ns_key: str) -> list[str]:
        ns = self.root.namespaces.get(ns_key)
        return [] if ns is None else list(ns.objects.keys())

    def index_alarm(self, ns_key: str, id_hex: str, old: float | None, new: float | None) -> None:
        if old is not None:
            self.root.alarms.pop((old, ns_key, id_hex), None)
        if new is not None:
            self.root.alarms[(new, ns_key, id_hex)] = True

    def alarms(self) -> Iterator[tuple[float, str, str]]:
        return iter(list(self.root.alarms.keys()))

    # ---- transactions --------------------------------------------------------------------------

    def commit(self, note: str = "") -> None:
        txn = self._tm.get()
        if note:
            txn.note(note)
        self._tm.commit()
        self._tm.begin()

    def abort(self) -> None:
        self._tm.abort()
        self._tm.begin()

    def history(self, record: ObjectRecord, size: int = 1000) -> list[dict[str, Any]]:
        """Committed versions of one object (its ``KvTree``'s revisions), oldest first; ZODB
        keeps them until packed."""
        if record.kv._p_oid is None:
            return []
        return list(reversed(self.db.storage.history(record.kv._p_oid, size=size)))

    def at(self, tid: bytes) -> Any:
        """A read-only historical connection at transaction ``tid``; close it when done."""
        return self.db.open(at=tid)

    def pack(self, days: float) -> None:
        import time as _time

        self.db.pack(t=_time.time() - days * 86400)

    def close(self) -> None:
        try:
            self._tm.abort()
        finally:
            self._conn.close()
            self.db.close()


def _migrate(root: LabRoot) -> None:
    """Schema 1 → 2: metadata moves from the record into its ``KvTree``, sockets into an OOBTree.
    The data is kept; ``lab.history`` starts again at the migration (older versions stay in the
    file until packed)."""
    for ns in root.namespaces.values():
        for record in ns.objects.values():
            version, when, request, name = record.meta
            del record.meta
            kv = KvTree()
            kv.update(record.kv)
            kv.meta = (version, when, request)
            record.kv, record.name = kv, name
            old = record.sockets
            record.sockets = OOBTree(dict(old)) if old is not None and len(old) else None
            record._p_changed = True
    root.schema = SCHEMA_VERSION


def _drop_unsafe_index(index: str) -> None:
    """FileStorage unpickles ``lab.fs.index`` without any class restriction. dolab's own index
    files hold plain data only (no globals): anything else is deleted, and FileStorage rebuilds
    the index by reading ``lab.fs``."""
    try:
        data = Path(index).read_bytes()
    except FileNotFoundError:
        return
    if not _plain_pickles(data):
        Path(index).unlink()


_CODE_OPS = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD",
             "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID"}


def _plain_pickles(data: bytes) -> bool:
    stream = io.BytesIO(data)
    try:
        while stream.tell() < len(data):
            for opcode, _, _ in pickletools.genops(stream):
                if opcode.name in _CODE_OPS:
                    return False
    except Exception:
        return False
    return True


def _damaged_message(path: str, error: BaseException) -> str:
    return (f"The lab database {path} could not be opened: it looks damaged "
            f"({type(error).__name__}: {error}). Keep a copy, then try "
            f"`python -m ZODB.fsrecover {path} {path}.recovered` and open the recovered "
            "file, or delete the file to start afresh.")


def _locked_message(path: str) -> str:
    return (
        f"The lab database {path} is locked by another process (lock file {path}.lock): another "
        "kernel has this lab open. Close that kernel (or call lab.close() there), or open a "
        'different file with Lab(path="other.fs"), or share one lab between kernels through ZEO '
        'with Lab(path="zeo://host:port").'
    )


def _zeo_storage(url: str) -> Any:
    from ZEO.ClientStorage import ClientStorage

    hostport = url.removeprefix("zeo://").rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f'A ZEO path looks like "zeo://127.0.0.1:8100", not {url!r}.')
    return ClientStorage((host, int(port)), wait_timeout=10)
