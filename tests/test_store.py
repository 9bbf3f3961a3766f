"""The ZODB engine: file locks, crafted files, history, packing."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dolab import DurableObject, Lab
from dolab.errors import DatabaseLockedError, UnsafeDatabaseError


class Box(DurableObject):
    async def put(self, key, value):
        self.ctx.storage.put(key, value)

    async def get(self, key):
        return await self.ctx.storage.get(key)

    async def alarm(self, info=None):
        self.ctx.storage.put("rang", True)


def test_second_lab_on_a_locked_file_gets_a_clear_error(tmp_path) -> None:
    path = tmp_path / "lab.fs"
    first = Lab(path=path)
    script = f"from dolab import Lab\nLab(path={str(path)!r})"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    first.close()
    assert result.returncode != 0
    assert "DatabaseLockedError" in result.stderr and "locked by another process" in result.stderr
    assert "ZEO" in result.stderr


def test_locked_error_class_in_process(tmp_path) -> None:
    path = tmp_path / "lab.fs"
    first = Lab(path=path)
    try:
        with pytest.raises(DatabaseLockedError, match="lab.close"):
            Lab(path=path)
    finally:
        first.close()


class Evil:
    def __reduce__(self):
        return (open, (str(EVIL_MARKER), "w"))


EVIL_MARKER = None


def test_crafted_file_is_refused_and_runs_nothing(tmp_path) -> None:
    global EVIL_MARKER
    import transaction
    import ZODB
    import ZODB.FileStorage

    EVIL_MARKER = tmp_path / "pwned"
    path = tmp_path / "evil.fs"
    db = ZODB.DB(ZODB.FileStorage.FileStorage(str(path)))
    conn = db.open()
    conn.root()["dolab"] = {"payload": Evil()}
    transaction.commit()
    db.close()
    assert not EVIL_MARKER.exists()
    with pytest.raises(UnsafeDatabaseError, match="Refusing to load"):
        Lab(path=path)
    assert not EVIL_MARKER.exists()


async def test_history_labels_versions_with_requests(tmp_path) -> None:
    lab = Lab(path=tmp_path / "lab.fs", clock="virtual")
    lab.bind("B", Box)
    stub = lab.env.B.getByName("a")
    await stub.put("x", 1)
    await stub.put("x", 2)
    versions = lab.history(stub)
    assert [v.kv for v in versions] == [{"x": 1}, {"x": 2}]
    assert all(v.request and v.request.startswith("r") for v in versions)
    assert versions[0].request != versions[1].request
    lab.pack()
    assert [v.kv for v in lab.history(stub)] == [{"x": 2}]
    lab.close()


async def test_virtual_lab_time_continues_after_reopen(tmp_path) -> None:
    path = tmp_path / "lab.fs"
    lab = Lab(path=path, clock="virtual")
    lab.bind("B", Box)
    await lab.advance(100)
    await lab.env.B.getByName("a").put("x", 1)
    when = lab.now()
    lab.close()
    reopened = Lab(path=path, clock="virtual")
    assert reopened.now() == when
    reopened.close()


async def test_a_zeo_lab_is_shared_through_a_zeo_server(tmp_path) -> None:
    """Lab(path="zeo://host:port"): the store is a ZEO client; a second lab sees the commits."""
    import ZEO

    address, stop = ZEO.server(path=str(tmp_path / "shared.fs"), port=0)
    try:
        url = f"zeo://{address[0]}:{address[1]}"
        writer = Lab(path=url, clock="virtual")
        writer.bind("B", Box)
        await writer.env.B.getByName("a").put("x", [1, 2])
        writer.close()
        reader = Lab(path=url, clock="virtual")
        reader.bind("B", Box)
        assert reader.storage_of(reader.env.B.getByName("a")) == {"x": [1, 2]}
        reader.close()
    finally:
        stop()


def test_a_malformed_zeo_url_is_refused() -> None:
    with pytest.raises(ValueError, match="zeo://127.0.0.1:8100"):
        Lab(path="zeo://nohost")


@pytest.mark.parametrize("clock", ["real", "virtual"])
async def test_a_put_to_a_small_object_commits_one_zodb_record(tmp_path, clock) -> None:
    """The version metadata lives in the KvTree, so a put rewrites that one record (the raw ZODB
    baseline of bench_durable.py writes one too), not the ObjectRecord as well."""
    lab = Lab(path=tmp_path / "lab.fs", clock=clock)
    lab.bind("B", Box)
    stub = lab.env.B.getByName("a")
    await stub.put("x", 1)
    await stub.put("x", 2)
    *_, last = [[r.oid for r in txn] for txn in lab.store.db.storage.iterator()]
    record = lab.store.find(lab.bindings["B"].key, stub.id.toString())
    assert last == [record.kv._p_oid]
    assert lab.history(stub)[-1].kv == {"x": 2}
    lab.close()


SCHEMA1 = Path(__file__).parent / "fixtures" / "lab-schema1.fs"


async def test_a_schema_1_file_is_migrated_with_its_data_alarms_and_names(tmp_path) -> None:
    """``fixtures/lab-schema1.fs`` was written by dolab at a6a6d76 (version metadata on the
    record, sockets in a PersistentMapping): alice has x=1, y={"nested": [1, 2]} and an alarm a
    minute ahead, bob has x=2."""
    path = tmp_path / "lab.fs"
    shutil.copy(SCHEMA1, path)
    lab = Lab(path=path, clock="virtual")
    assert lab.store.root.schema == 2
    lab.bind("BOX", Box)
    alice, bob = lab.env.BOX.getByName("alice"), lab.env.BOX.getByName("bob")
    assert lab.storage_of(alice) == {"x": 1, "y": {"nested": [1, 2]}}
    assert lab.storage_of(bob) == {"x": 2}
    [migrated] = lab.history(alice)  # history starts again at the migration, numbering goes on
    assert (migrated.version, migrated.kv) == (3, {"x": 1, "y": {"nested": [1, 2]}})
    await alice.put("x", 10)
    assert [(v.version, v.kv["x"]) for v in lab.history(alice)] == [(3, 1), (4, 10)]
    await lab.advance(61)
    assert await alice.get("rang") is True  # the alarm survived the migration
    assert [e.obj for e in lab.trace.events("alarm-fired")] == ["BOX:alice"]
    lab.close()
    size = path.stat().st_size
    reopened = Lab(path=path)  # migrated once: opening again writes nothing
    assert path.stat().st_size == size
    reopened.bind("BOX", Box)
    assert reopened.storage_of(reopened.env.BOX.getByName("bob")) == {"x": 2}
    reopened.close()


def test_two_writers_of_one_object_conflict_instead_of_merging() -> None:
    """Two kernels on one ZEO lab writing the same object: the second commit is a ConflictError
    (dolab then resets that object), never a merge of the two versions."""
    import transaction
    import ZODB
    from ZODB.MappingStorage import MappingStorage
    from ZODB.POSException import ConflictError

    from dolab.store import KvTree

    db = ZODB.DB(MappingStorage())
    first, second = transaction.TransactionManager(), transaction.TransactionManager()
    mine = db.open(transaction_manager=first)
    mine.root()["kv"] = KvTree()
    first.commit()
    theirs = db.open(transaction_manager=second).root()["kv"]
    len(theirs)  # loaded before the first writer commits
    mine.root()["kv"]["a"], mine.root()["kv"].meta = b"1", (1, 1.0, "r1")
    first.commit()
    theirs["b"], theirs.meta = b"2", (1, 1.0, "r2")
    with pytest.raises(ConflictError):
        second.commit()
    stored = db.open().root()["kv"]
    assert (dict(stored.items()), stored.meta) == ({"a": b"1"}, (1, 1.0, "r1"))
    db.close()
