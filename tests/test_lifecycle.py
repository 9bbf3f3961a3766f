"""Eviction, in-memory timers, code updates, test helpers (spec §8, B63)."""
from __future__ import annotations

import asyncio

import pytest

from dolab import DurableObject, DurableObjectReset, Lab, trace


class Memo(DurableObject):
    built = 0
    ticks: list[str] = []

    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        type(self).built += 1
        self.memory = 0

    async def bump(self):
        self.memory += 1
        self.ctx.storage.put("n", self.memory)
        return self.memory

    async def later(self, seconds):
        async def tick():
            await asyncio.sleep(seconds)
            type(self).ticks.append("timer ran")
        asyncio.get_running_loop().create_task(tick())
        return "scheduled"

    async def call_later(self, seconds):
        asyncio.get_running_loop().call_later(seconds, type(self).ticks.append, "call_later ran")


@pytest.fixture
def memo(lab: Lab):
    Memo.built, Memo.ticks = 0, []
    lab.bind("M", Memo)
    return lab.env.M.getByName("a")


async def test_idle_object_is_evicted_after_10s_not_5s(memo, lab: Lab) -> None:  # B63
    await memo.bump()
    await lab.advance(5)
    assert await memo.bump() == 2 and Memo.built == 1
    await lab.advance(11)
    assert await memo.bump() == 1 and Memo.built == 2
    assert trace.EVICTED in lab.trace.kinds(obj="M:a")
    assert lab.storage_of(memo) == {"n": 1}


async def test_production_timing_evicts_after_70_to_140s() -> None:
    lab = Lab(path=None, clock="virtual", timing="production")
    Memo.built = 0
    lab.bind("M", Memo)
    stub = lab.env.M.getByName("a")
    await stub.bump()
    await lab.advance(69)
    assert await stub.bump() == 2
    await lab.advance(141)
    assert await stub.bump() == 1
    lab.close()


async def test_timers_die_with_the_instance(memo, lab: Lab) -> None:
    await memo.later(30)
    await memo.call_later(30)
    await lab.advance(11)                     # evicted at 10 s: the timers are lost
    await lab.advance(30)
    assert Memo.ticks == []
    assert len(lab.trace.events(trace.TIMER_LOST)) == 2


async def test_timers_run_on_lab_time_while_the_instance_lives(memo, lab: Lab) -> None:
    await memo.later(5)
    await lab.advance(5)
    assert Memo.ticks == ["timer ran"]


async def test_code_update_resets_instances_keeps_storage(memo, lab: Lab) -> None:
    await memo.bump()

    class Memo2(Memo):
        pass
    Memo2.__name__ = "Memo"
    lab.bind("M", Memo2)
    with pytest.raises(DurableObjectReset, match="^Durable Object reset because its code was "
                                                 "updated.$"):
        await memo.bump()
    fresh = lab.env.M.getByName("a")
    assert await fresh.bump() == 1
    assert lab.storage_of(fresh) == {"n": 1}


async def test_run_in_and_ids(memo, lab: Lab) -> None:
    await memo.bump()
    assert await lab.run_in(memo, lambda instance, ctx: instance.memory) == 1
    assert lab.ids("M") == [memo.id.toString()]


async def test_waitUntil_keeps_the_instance_alive(lab: Lab) -> None:
    class Keeper(DurableObject):
        built = 0

        def __init__(self, ctx, env):
            super().__init__(ctx, env)
            type(self).built += 1

        async def start(self):
            from dolab import scheduler

            self.ctx.waitUntil(scheduler.wait(60_000))

    lab.bind("K", Keeper)
    stub = lab.env.K.getByName("k")
    await stub.start()
    await lab.advance(30)
    assert lab.host_of(stub).instance is not None
    await lab.advance(40)
    assert lab.host_of(stub).instance is None
