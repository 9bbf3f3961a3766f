"""The crash-test workload, shared by the writer subprocess (``crash_writer.py``) and the checker
(``test_crash.py``): a ledger object whose every RPC call is one *turn* writing several keys, a SQL
row and sometimes an alarm, all stamped with one turn id, so a reader can tell a whole turn from a
partial one.

Per turn ``tid`` on one object (no ``await`` between the writes, so they coalesce into one commit):

- ``k0 … k{n-1}`` = tid, written with separate un-awaited ``put`` calls;
- ``last`` = [tid, n] and the marker ``t/<tid>`` = [n, alarm_ms] in one ``put(entries)``;
- SQLite-backed objects: the row ``(tid, n, pad)`` in table ``turns``;
- when ``alarm_ms`` is set: ``setAlarm(alarm_ms)`` and ``alarm_tid`` = tid.
"""

from __future__ import annotations

from typing import Any

from dolab import DurableObject

WORKER_NAME = "crash"
SQL_OBJECTS = ["s0", "s1", "s2", "s3", "s4"]
KV_OBJECTS = ["v0", "v1", "v2"]
ALARM_BASE_S = 3600.0  # alarms are set an hour (plus the turn id in ms) past the lab's time


def marker(tid: int) -> str:
    return f"t/{tid:09d}"


class Ledger(DurableObject):
    """SQLite-backed: KV keys and a SQL row per turn."""

    sql = True

    async def turn(self, tid: int, nkeys: int, alarm_ms: int | None, pad: int) -> int:
        storage = self.ctx.storage
        for j in range(nkeys):
            storage.put(f"k{j}", tid)  # un-awaited: coalesced with the rest of the turn
        entries: dict[str, Any] = {"last": [tid, nkeys], marker(tid): [nkeys, alarm_ms]}
        if alarm_ms is not None:
            entries["alarm_tid"] = tid
        storage.put(entries)
        if self.sql:
            storage.sql.exec("CREATE TABLE IF NOT EXISTS turns "
                             "(tid INTEGER PRIMARY KEY, nkeys INTEGER, pad TEXT)")
            storage.sql.exec("INSERT INTO turns VALUES (?, ?, ?)", tid, nkeys, "x" * pad)
        if alarm_ms is not None:
            storage.setAlarm(alarm_ms)
        return tid

    async def alarm(self, alarm_info: Any = None) -> None:
        self.ctx.storage.put("fired", alarm_info.scheduledTime)


class LedgerKV(Ledger):
    """KV-backed: the same turns without SQL."""

    sql = False


def bind(lab: Any) -> None:
    lab.bind("LEDGER", Ledger)
    lab.bind("LEDGER_KV", LedgerKV, storage="kv")


def stubs(lab: Any) -> dict[str, Any]:
    """Every object of the workload by "<binding>/<name>"."""
    out = {f"LEDGER/{n}": lab.env.LEDGER.getByName(n) for n in SQL_OBJECTS}
    out.update({f"LEDGER_KV/{n}": lab.env.LEDGER_KV.getByName(n) for n in KV_OBJECTS})
    return out


def trials() -> int:
    """How many crash trials to run (env ``DOLAB_STRESS_TRIALS``: 10 by default, 100 in
    ``make stress``)."""
    import os

    return max(1, int(os.environ.get("DOLAB_STRESS_TRIALS", "10")))
