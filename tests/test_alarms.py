"""Alarms (spec §6, B53–B58), measured in lab time under the virtual clock."""
from __future__ import annotations

import pytest

from dolab import DurableObject, Lab, trace


class Alarmed(DurableObject):
    runs: list[tuple[float, int, bool]] = []
    constructed = 0
    fail = False
    rearm_ms: float | None = None

    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        type(self).constructed += 1

    async def arm(self, ms):
        await self.ctx.storage.setAlarm(ms)

    async def arm_in(self, seconds):
        from dolab import Date

        await self.ctx.storage.setAlarm(Date.now() + seconds * 1000)

    async def get_alarm(self):
        return await self.ctx.storage.getAlarm()

    async def delete_alarm(self):
        await self.ctx.storage.deleteAlarm()

    async def alarm(self, alarm_info):
        from dolab import Date

        inside = await self.ctx.storage.getAlarm()
        type(self).runs.append((Date.now() / 1000, alarm_info.retryCount, alarm_info.isRetry))
        type(self).inside = inside
        if type(self).rearm_ms is not None:
            await self.ctx.storage.setAlarm(Date.now() + type(self).rearm_ms)
            type(self).rearm_ms = None
            raise RuntimeError("failed after re-arming")
        if type(self).fail:
            raise RuntimeError("alarm failed")


class NoAlarm(DurableObject):
    async def arm(self, ms):
        await self.ctx.storage.setAlarm(ms)


@pytest.fixture
def alarmed(lab: Lab):
    Alarmed.runs, Alarmed.constructed, Alarmed.fail, Alarmed.rearm_ms = [], 0, False, None
    lab.bind("A", Alarmed)
    return lab.env.A.getByName("a")


async def test_setAlarm_rejects_non_positive_times(alarmed) -> None:  # B53
    with pytest.raises(TypeError, match=r"^setAlarm\(\) cannot be called with an alarm time "
                                        r"<= 0$"):
        await alarmed.arm(0)


async def test_past_alarm_is_clamped_to_now_and_fires_promptly(alarmed, lab: Lab) -> None:  # B53
    now_ms = int(lab.now() * 1000)
    await alarmed.arm(1000)
    assert await alarmed.get_alarm() == now_ms
    await lab.settle()
    assert len(Alarmed.runs) == 1 and Alarmed.runs[0][0] == pytest.approx(lab.now())


async def test_setAlarm_needs_an_alarm_handler(lab: Lab) -> None:  # B54
    lab.bind("N", NoAlarm)
    with pytest.raises(TypeError, match=r"^Your Durable Object class must have an alarm\(\) "
                                        r"handler in order to call setAlarm\(\)$"):
        await lab.env.N.getByName("a").arm(10**13)


async def test_getAlarm_before_inside_and_after(alarmed, lab: Lab) -> None:  # B55
    await alarmed.arm_in(10)
    expected = int((lab.now() + 10) * 1000)
    assert await alarmed.get_alarm() == expected
    await lab.advance(10)
    assert Alarmed.inside is None
    assert await alarmed.get_alarm() is None


async def test_failing_alarm_retries_with_backoff_then_gives_up(alarmed, lab: Lab) -> None:  # B56
    Alarmed.fail = True
    start = lab.now()
    await alarmed.arm_in(1)
    await lab.advance(1 + 2 + 4 + 8 + 16 + 32 + 64 + 100)
    offsets = [round(t - start, 3) for t, _, _ in Alarmed.runs]
    assert offsets == [1, 3, 7, 15, 31, 63, 127]
    assert [r for _, r, _ in Alarmed.runs] == [0, 1, 2, 3, 4, 5, 6]
    assert [i for _, _, i in Alarmed.runs] == [False] + [True] * 6
    assert await alarmed.get_alarm() is None
    assert len(lab.trace.events(trace.ALARM_RETRY)) == 6


async def test_setAlarm_in_a_failing_handler_replaces_the_retry(alarmed, lab: Lab) -> None:  # B57
    Alarmed.rearm_ms = 200
    await alarmed.arm_in(1)
    start = lab.now()
    await lab.advance(60)
    assert [(round(t - start, 3), r) for t, r, _ in Alarmed.runs] == [(1, 0), (1.2, 0)]


async def test_alarm_fires_after_eviction_constructor_first(alarmed, lab: Lab) -> None:  # B58
    await alarmed.arm_in(30)
    await lab.evict(alarmed)
    assert Alarmed.constructed == 1
    await lab.advance(30)
    assert Alarmed.constructed == 2 and len(Alarmed.runs) == 1
    kinds = [e.kind for e in lab.trace.events(obj="A:a")
             if e.kind in (trace.EVICTED, trace.CONSTRUCTED, trace.ALARM_FIRED)]
    assert kinds == [trace.CONSTRUCTED, trace.EVICTED, trace.CONSTRUCTED, trace.ALARM_FIRED]


async def test_alarm_survives_close_and_reopen(tmp_path) -> None:
    Alarmed.runs, Alarmed.fail, Alarmed.rearm_ms = [], False, None
    path = tmp_path / "lab.fs"
    lab = Lab(path=path, clock="virtual")
    lab.bind("A", Alarmed)
    await lab.env.A.getByName("a").arm_in(60)
    lab.close()
    reopened = Lab(path=path, clock="virtual")
    reopened.bind("A", Alarmed)
    assert Alarmed.runs == []
    await reopened.advance(60)
    assert len(Alarmed.runs) == 1
    reopened.close()


async def test_alarm_due_while_closed_fires_promptly_on_open(tmp_path) -> None:
    Alarmed.runs, Alarmed.fail, Alarmed.rearm_ms = [], False, None
    path = tmp_path / "lab.fs"
    lab = Lab(path=path)
    lab.bind("A", Alarmed)
    await lab.env.A.getByName("a").arm(lab.now() * 1000 + 50)
    lab.close()
    reopened = Lab(path=path)
    reopened.bind("A", Alarmed)
    await reopened.advance(0.1)
    assert len(Alarmed.runs) == 1
    reopened.close()


async def test_run_alarm_runs_it_now(alarmed, lab: Lab) -> None:
    assert await lab.run_alarm(alarmed) is False
    await alarmed.arm_in(3600)
    assert await lab.run_alarm(alarmed) is True
    assert len(Alarmed.runs) == 1 and await alarmed.get_alarm() is None


async def test_deleteAlarm_cancels(alarmed, lab: Lab) -> None:
    await alarmed.arm_in(5)
    await alarmed.delete_alarm()
    await lab.advance(10)
    assert Alarmed.runs == []


def test_a_real_clock_lab_keeps_its_timers_across_event_loops() -> None:
    """A script may drive one lab from two asyncio.run calls: the wake-up armed on the first
    loop is gone with it, so meeting the second loop re-arms it there (an alarm set in the first
    run fires in the second, though later timers were added meanwhile)."""
    import asyncio

    Alarmed.runs = []
    lab = Lab(path=None, clock="real")
    lab.bind("A", Alarmed)
    stub = lab.env.A.getByName("a")

    async def first() -> None:
        await stub.arm_in(0.2)

    async def second() -> int:
        await lab.env.A.getByName("b").get_alarm()  # a later (idle) timer; the lab meets the loop
        for _ in range(100):  # up to 10 s of real time; the alarm is due 0.2 s after first()
            if Alarmed.runs:
                break
            await asyncio.sleep(0.1)
        return len(Alarmed.runs)

    asyncio.run(first())
    assert asyncio.run(second()) == 1
    lab.close()


async def test_advance_on_the_real_clock_moves_lab_time_and_fires_what_is_due() -> None:
    """The real clock follows the wall clock plus what lab.advance added (its fast "now" gives
    way to the offset one)."""
    import time

    Alarmed.runs = []
    lab = Lab(path=None, clock="real")
    lab.bind("A", Alarmed)
    await lab.env.A.getByName("a").arm_in(3600)
    await lab.advance(3601)
    assert lab.now() - time.time() == pytest.approx(3601, abs=5)
    assert len(Alarmed.runs) == 1 and Alarmed.runs[0][0] == pytest.approx(time.time() + 3600, abs=5)
    lab.close()
