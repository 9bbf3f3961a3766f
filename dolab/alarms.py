"""Alarm scheduling and retries (spec §6, B53–B58).

One alarm per object, stored in ZODB with an index by time, so it fires after eviction and after the
lab is reopened (times that passed while closed fire promptly), at least once. A failing handler is
retried after 2, 4, 8, 16, 32, 64 s (no jitter under the virtual clock, up to 25 % with the real
one), at most 6 times; a ``setAlarm`` during the failing handler replaces the retry (B57).
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any

from . import errors, trace
from .sql import MISSING

if TYPE_CHECKING:
    from .host import ObjectHost
    from .lab import Lab
    from .namespace import NamespaceBinding

MAX_RETRIES = 6
FIRST_RETRY_S = 2.0
JITTER = 0.25
log = logging.getLogger("dolab.alarms")


class AlarmInfo:
    """``alarm_info`` (attributes, as Python Workers' JS proxy spells them)."""

    __slots__ = ("retryCount", "isRetry", "scheduledTime")

    def __init__(self, retry: int, scheduled_ms: int) -> None:
        self.retryCount = retry
        self.isRetry = retry > 0
        self.scheduledTime = scheduled_ms

    def __repr__(self) -> str:
        return f"<AlarmInfo retryCount={self.retryCount} scheduledTime={self.scheduledTime}>"


class AlarmScheduler:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.retries: dict[ObjectHost, int] = {}

    def restore(self, binding: NamespaceBinding) -> None:
        """Arm the stored alarms of a namespace that was just bound (after a restart too)."""
        for when, ns_key, id_hex in self.lab.store.alarms():
            if ns_key == binding.key and _plain(binding, id_hex):
                self._arm(binding.host(_stored_id(self.lab, binding, id_hex)), when)

    def after_commit(self, hosts: list[ObjectHost]) -> None:
        for host in hosts:
            if host.alarm_dirty:
                host.alarm_dirty = False
                record = host.record
                self._arm(host, None if record is None else record.alarm)

    def _arm(self, host: ObjectHost, when: float | None) -> None:
        if host.alarm_timer is not None:
            host.alarm_timer.cancel()
            host.alarm_timer = None
        if when is not None:
            host.alarm_timer = self.lab.clock.call_at(when, lambda: self._fire(host),
                                                      f"alarm {host.label}")

    def _fire(self, host: ObjectHost) -> None:
        host.alarm_timer = None
        self.submit(host)

    def submit(self, host: ObjectHost) -> Any:
        retry = self.retries.get(host, 0)
        return host.submit("alarm", "alarm", lambda inst: self._run(host, inst, retry))

    async def run_now(self, host: ObjectHost) -> bool:
        pending = host.buffer.alarm_pending
        when = pending if pending is not MISSING else (
            None if host.record is None else host.record.alarm)
        if when is None:
            return False
        if host.alarm_timer is not None:
            host.alarm_timer.cancel()
            host.alarm_timer = None
        await self.submit(host)
        return True

    async def _run(self, host: ObjectHost, instance: Any, retry: int) -> None:
        record = host.record
        scheduled = host.lab.clock.now() if record is None or record.alarm is None else record.alarm
        self.lab.trace.record(host.label, trace.ALARM_FIRED, None, retryCount=retry)
        handler = getattr(instance, "alarm", None)
        if handler is None:
            log.warning(errors.ALARM_MISSING_AT_FIRE)
            self._finish(host, None)
            return
        host.alarm_running = {"reset": False}
        info = AlarmInfo(retry, int(scheduled * 1000))
        try:
            result = handler(info) if _takes_argument(handler) else handler()
            if inspect.isawaitable(result):
                await result
        except BaseException as error:
            self._failed(host, retry, error)
            if not isinstance(error, Exception):
                raise
            return
        finally:
            running, host.alarm_running = host.alarm_running, None
            if running is not None and running.get("reset"):
                self.retries.pop(host, None)
        if running is None or not running.get("reset"):
            self._finish(host, None)

    def _failed(self, host: ObjectHost, retry: int, error: BaseException) -> None:
        running = host.alarm_running
        self.lab.trace.record(host.label, trace.ERROR, None, error=f"alarm: {error!r}")
        if running is not None and running.get("reset"):
            return  # a new alarm was set during the handler: it replaces the retry (B57)
        if not host.abort_alarm_retry:
            host.abort_alarm_retry = True
            self._finish(host, None)
            return
        if retry >= MAX_RETRIES:
            self._finish(host, None)
            return
        delay = FIRST_RETRY_S * 2 ** retry
        if not self.lab.clock.virtual:
            delay *= 1 + JITTER * self.lab._rng.random()
        self.retries[host] = retry + 1
        host.alarm_running = None
        self.lab.trace.record(host.label, trace.ALARM_RETRY, None, retryCount=retry + 1,
                              delay=delay)
        host.buffer.set_alarm(self.lab.clock.now() + delay, True)

    def _finish(self, host: ObjectHost, when: float | None) -> None:
        self.retries.pop(host, None)
        host.alarm_running = None
        host.buffer.set_alarm(when, True)


def _takes_argument(handler: Any) -> bool:
    try:
        parameters = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
               for p in parameters)


def _stored_id(lab: Lab, binding: NamespaceBinding, id_hex: str) -> Any:
    """The id of a stored object, with its name when the record kept one (trace labels)."""
    record = lab.store.find(binding.key, id_hex)
    name = None if record is None else record.name
    if name is not None and binding.ids.from_name(name).toString() == id_hex:
        return binding.ids.from_name(name)
    return binding.ids.from_string(id_hex)


def _plain(binding: NamespaceBinding, id_hex: str) -> bool:
    try:
        binding.ids.from_string(id_hex)
    except TypeError:
        return False
    return True
