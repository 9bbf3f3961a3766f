"""ctx.storage: the async KV API, limits, transactions, output gate (spec §5.2–5.3, §7)."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from dolab import DataCloneError, DurableObject, Lab, RangeError, scheduler, trace


class Store(DurableObject):
    async def run(self, op, *args):
        return await getattr(self, op)(*args)

    async def get(self, keys):
        return await self.ctx.storage.get(keys)

    async def put(self, key, value):
        await self.ctx.storage.put(key, value)

    async def put_entries(self, entries):
        await self.ctx.storage.put(entries)

    async def delete(self, keys):
        return await self.ctx.storage.delete(keys)

    async def list(self, options):
        return await self.ctx.storage.list(**options)

    async def put_then_get_unawaited(self, key, value):
        self.ctx.storage.put(key, value)
        return await self.ctx.storage.get(key)

    async def put_missing_value(self):
        self.ctx.storage.put("k")

    async def store_function(self):
        self.ctx.storage.put("f", lambda: 1)

    async def delete_all(self):
        await self.ctx.storage.deleteAll()
        return await self.ctx.storage.list()

    async def two_turns(self):
        self.ctx.storage.put("a", 1)
        self.ctx.storage.put("b", 2)
        await scheduler.wait(1)
        self.ctx.storage.put("c", 3)

    async def unconfirmed(self):
        self.ctx.storage.put("u", 1, allowUnconfirmed=True)
        return "done"

    async def synced(self):
        self.ctx.storage.put("s", 1)
        await self.ctx.storage.sync()
        return "synced"

    async def txn(self, mode):
        async def closure(txn):
            await txn.put("t", 1)
            if mode == "raise":
                raise ValueError("txn failed")
            if mode == "rollback":
                txn.rollback()
                txn.rollback()
                try:
                    await txn.put("t", 2)
                except RuntimeError as error:
                    return str(error)
            if mode == "deleteAll":
                txn.deleteAll()
            if mode == "escape":
                self.escaped = txn
            return "value"
        return await self.ctx.storage.transaction(closure)

    async def use_escaped(self):
        await self.escaped.put("x", 1)

    async def slow_txn(self):
        async def closure(txn):
            await txn.put("slow", "started")
            await scheduler.wait(10)
            await txn.put("slow", "finished")
        await self.ctx.storage.transaction(closure)

    async def read_slow(self):
        return await self.ctx.storage.get("slow")


@pytest.fixture
def stub(lab: Lab):
    lab.bind("S", Store)
    return lab.env.S.getByName("a")


@pytest.fixture
def kv_stub(lab: Lab):
    lab.bind("K", Store, storage="kv")
    return lab.env.K.getByName("a")


ORDERED = ["B", "a", "a\0", "ab", "abc", "b", "ä", "\uffff", "😀"]


async def test_get_missing_and_many(stub) -> None:  # B30
    assert await stub.get("missing") is None
    await stub.put_entries({"b": 2, "a": 1})
    assert await stub.get(["b", "missing", "a"]) == {"a": 1, "b": 2}
    assert list((await stub.get(["b", "a"])).keys()) == ["a", "b"]


async def test_put_without_value_and_none(stub) -> None:  # B31, B70
    with pytest.raises(TypeError, match=r"^put\(\) called with undefined value\.$"):
        await stub.put_missing_value()
    await stub.put("n", None)
    assert await stub.get("n") is None
    assert await stub.get(["n"]) == {"n": None}


async def test_integral_float_reads_back_as_int(stub) -> None:  # B70
    await stub.put("k", 3.0)
    value = await stub.get("k")
    assert value == 3 and type(value) is int


async def test_delete_single_and_many(stub) -> None:  # B32
    await stub.put_entries({"k1": 1, "k2": 2})
    assert await stub.delete("k1") is True
    assert await stub.delete("k1") is False
    assert await stub.delete(["k1", "k2", "missing"]) == 1


async def test_list_orders_by_code_point(stub) -> None:  # B33
    await stub.put_entries({k: i for i, k in enumerate(reversed(ORDERED))})
    assert list(await stub.list({})) == ORDERED


async def test_list_options(stub) -> None:  # B34, B35, B36
    await stub.put_entries({k: 0 for k in ORDERED})
    assert list(await stub.list({"startAfter": "a", "limit": 3})) == ["a\0", "ab", "abc"]
    assert list(await stub.list({"prefix": "a"})) == ["a", "a\0", "ab", "abc"]
    assert list(await stub.list({"start": "a", "end": "b"})) == ["a", "a\0", "ab", "abc"]
    assert list(await stub.list({"reverse": True, "limit": 2})) == ["😀", "\uffff"]
    assert await stub.list({"start": "b", "end": "a"}) == {}
    with pytest.raises(TypeError, match=r"^list\(\) cannot be called with both start and "
                                        r"startAfter values\.$"):
        await stub.list({"start": "a", "startAfter": "a"})
    with pytest.raises(TypeError, match="^List limit must be positive.$"):
        await stub.list({"limit": 0})


async def test_list_sees_unflushed_writes_and_deletes(stub) -> None:
    await stub.put_entries({"a": 1, "b": 2, "c": 3})
    await stub.delete("b")
    await stub.put("d", 4)
    assert await stub.list({}) == {"a": 1, "c": 3, "d": 4}
    assert await stub.list({"reverse": True}) == {"d": 4, "c": 3, "a": 1}


async def test_kv_backed_limits(kv_stub) -> None:  # B37
    with pytest.raises(RangeError, match="^Keys cannot be larger than 2048 bytes. A key of size "
                                         "2049 was provided.$"):
        await kv_stub.put("k" * 2049, 1)
    with pytest.raises(RangeError, match="^Values cannot be larger than 131072 bytes. A value of "
                                         r"size \d+ was provided.$"):
        await kv_stub.put("big", "x" * 131_200)
    with pytest.raises(RangeError, match="^Maximum number of key value pairs is 128. 129 pairs "
                                         "were provided.$"):
        await kv_stub.get([str(i) for i in range(129)])
    await kv_stub.put("fits", "x" * 131_000)


async def test_sqlite_backed_limits(stub) -> None:  # B38
    await stub.put("k" * 3000, 1)
    await stub.put("big", "x" * 1_000_000)
    with pytest.raises(RangeError, match="2 MB"):
        await stub.put("huge", "x" * 2_100_000)


async def test_values_round_trip_with_types(stub) -> None:  # B39
    when = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=timezone.utc)
    value = {"date": when, "set": {1, 2}, "bytes": b"\x00\x01", "big": 2**70,
             "nan": float("nan"), "nested": [{"a": [1, 2.5]}]}
    await stub.put("v", value)
    back = await stub.get("v")
    assert back["date"] == when and back["set"] == {1, 2} and back["bytes"] == b"\x00\x01"
    assert back["big"] == 2**70 and back["nan"] != back["nan"]
    assert back["nested"] == [{"a": [1, 2.5]}]
    with pytest.raises(DataCloneError, match="could not be cloned"):
        await stub.store_function()


async def test_get_sees_an_unawaited_put(stub) -> None:  # B40
    assert await stub.put_then_get_unawaited("k", "v") == "v"


async def test_delete_all(stub, lab: Lab) -> None:  # B41
    await stub.put_entries({"a": 1, "b": 2})
    assert await stub.delete_all() == {}
    assert lab.storage_of(stub) == {}


async def test_transaction_rules(stub, lab: Lab) -> None:  # B42, B43
    assert await stub.txn("commit") == "value"
    assert lab.storage_of(stub) == {"t": 1}
    await stub.delete("t")
    with pytest.raises(ValueError, match="^txn failed$"):
        await stub.txn("raise")
    assert lab.storage_of(stub) == {}
    assert await stub.txn("rollback") == "Cannot put() on rolled back transaction"
    assert lab.storage_of(stub) == {}
    with pytest.raises(RuntimeError, match=r"^Cannot call deleteAll\(\) within a transaction$"):
        await stub.txn("deleteAll")
    await stub.txn("escape")
    with pytest.raises(RuntimeError, match=r"^Cannot call put\(\) on transaction that has already "
                                           r"committed: did you move `txn` outside of the "
                                           r"closure\?$"):
        await stub.use_escaped()


async def test_transaction_blocks_other_events(stub) -> None:  # B44
    slow = asyncio.ensure_future(stub.slow_txn())
    await asyncio.sleep(0)
    assert await stub.read_slow() == "finished"
    await slow


async def test_result_waits_for_commit(stub, lab: Lab) -> None:  # B62
    await stub.put("k", 1)
    assert lab.storage_of(stub) == {"k": 1}
    events = [e.kind for e in lab.trace.events() if e.kind in
              (trace.WRITE, trace.HELD, trace.COMMIT, trace.RELEASED, trace.FINISHED)]
    assert events[-5:] == [trace.WRITE, trace.HELD, trace.COMMIT, trace.RELEASED, trace.FINISHED]


async def test_allow_unconfirmed_skips_the_hold(stub, lab: Lab) -> None:  # B62
    lab.trace.clear()
    assert await stub.unconfirmed() == "done"
    kinds = lab.trace.kinds()
    assert trace.HELD not in kinds and trace.WRITE in kinds


async def test_sync_waits_for_durability(stub, lab: Lab) -> None:
    assert await stub.synced() == "synced"
    assert lab.storage_of(stub) == {"s": 1}


async def test_writes_in_one_turn_commit_together(stub, lab: Lab) -> None:  # B61
    await stub.two_turns()
    versions = lab.history(stub)
    assert [v.kv for v in versions] == [{"a": 1, "b": 2}, {"a": 1, "b": 2, "c": 3}]
    assert versions[0].request == versions[1].request


async def test_group_commit_across_objects(lab: Lab) -> None:
    lab.bind("S", Store)
    stubs = [lab.env.S.getByName(str(i)) for i in range(10)]
    lab.trace.clear()
    await asyncio.gather(*[s.put("k", 1) for s in stubs])
    commits = lab.trace.events(trace.COMMIT)
    assert len(commits) == 1 and len(commits[0].detail["objects"]) == 10


async def test_failed_commit_resets_and_fails_held_results(stub, lab: Lab) -> None:
    from dolab import DurableObjectReset

    await stub.put("ok", 1)
    lab.fail_next_commit = OSError("disk full")
    with pytest.raises(DurableObjectReset, match="disk full"):
        await stub.put("lost", 2)
    assert lab.storage_of(stub) == {"ok": 1}


async def test_storage_survives_reopen_memory_does_not(tmp_path) -> None:
    path = tmp_path / "lab.fs"
    lab = Lab(path=path, clock="virtual")
    lab.bind("S", Store)
    await lab.env.S.getByName("a").put("k", [1, 2])
    lab.close()
    reopened = Lab(path=path, clock="virtual")
    reopened.bind("S", Store)
    assert await reopened.env.S.getByName("a").get("k") == [1, 2]
    reopened.close()
