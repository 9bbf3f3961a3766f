"""Crash consistency (spec B61–B62, DESIGN.md §5): a writer process SIGKILLed at random moments
loses no acknowledged write, applies no turn partially, keeps its alarms, and its file opens again
without repair. A damaged tail of ``lab.fs`` is handled as ZODB's FileStorage recovers it.

The writer (``crash_writer.py``) prints an ack only after ``await stub.turn(…)`` returned, i.e.
after the output gate released the result, so every acked turn was committed. Trials run two
writers at a time; set ``DOLAB_STRESS_TRIALS`` (default 10) and ``DOLAB_STRESS_SEED`` (default
random, printed in the summary and on failure) to reproduce a run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import workload
from workload import trials

from dolab import Lab

WRITER = Path(__file__).with_name("crash_writer.py")
STALL_S = 30.0  # a trial takes 1–3 s: a writer still running after this is stuck
pytestmark = pytest.mark.slow


# ---- the writer ----------------------------------------------------------------------------------


@dataclass
class Run:
    """One SIGKILLed writer: where it wrote and what it acknowledged."""

    seed: int
    path: Path
    plan: str
    acks: list[tuple[str, int]] = field(default_factory=list)
    returncode: int | None = None
    stalled: bool = False

    def stderr(self) -> str:
        log = self.path.with_name("writer.err")
        return log.read_text()[-2000:] if log.exists() else ""


def run_writer(path: Path, seed: int) -> Run:
    """Start a writer, SIGKILL it after a random number of acks (or early, while it opens)."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    reopen_every = rng.choice((0, 0, 3, 7))
    early = rng.random() < 0.1
    run = Run(seed, path, f"reopen_every={reopen_every} " + ("early" if early else ""))
    with open(path.with_name("writer.err"), "w") as err:
        proc = subprocess.Popen([sys.executable, str(WRITER), str(path), str(seed),
                                 str(reopen_every)], stdout=subprocess.PIPE, stderr=err, text=True)
    watchdog = threading.Timer(STALL_S, lambda: _stall(run, proc))
    watchdog.start()
    try:
        if early:
            time.sleep(rng.uniform(0.0, 1.0))
        else:
            target = rng.randint(0, 400)
            run.plan += f"target={target}"
            _read_until(proc, run, target)
            time.sleep(rng.uniform(0.0, 0.02))
        proc.kill()
        out, _ = proc.communicate(timeout=STALL_S)
    finally:
        watchdog.cancel()
    _parse(out.splitlines(keepends=True), run)
    run.returncode = proc.returncode
    return run


def _stall(run: Run, proc: subprocess.Popen[str]) -> None:
    run.stalled = True
    proc.kill()


def _read_until(proc: subprocess.Popen[str], run: Run, target: int) -> None:
    assert proc.stdout is not None
    ready = False
    while not ready or len(run.acks) < target:
        line = proc.stdout.readline()
        if not line.endswith("\n"):
            return  # the writer died (or stalled and was killed): the check reports it
        ready = ready or line == "ready\n"
        _parse([line], run)


def _parse(lines: list[str], run: Run) -> None:
    for line in lines:
        if line.startswith("ack ") and line.endswith("\n"):  # a torn last line is no ack
            _, label, tid = line.split()
            run.acks.append((label, int(tid)))


# ---- the check -----------------------------------------------------------------------------------


@dataclass
class Verdict:
    acked: int = 0
    committed_unacked: int = 0
    alarms: int = 0
    truncated_files: int = 0
    lost: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)


async def check(run: Run) -> Verdict:
    """Reopen the writer's file in-process and check every object against the acks."""
    verdict = Verdict(acked=len(run.acks))
    lab = Lab(name=workload.WORKER_NAME, path=run.path, clock="virtual")  # opens without repair
    try:
        verdict.truncated_files = int(any(p.name.startswith("lab.fs.tr")
                                          for p in run.path.parent.iterdir()))
        workload.bind(lab)
        stubs = workload.stubs(lab)
        acked: dict[str, set[int]] = defaultdict(set)
        for label, tid in run.acks:
            acked[label].add(tid)
        alarms: dict[str, int] = {}
        for label, stub in stubs.items():
            await check_object(lab, label, stub, acked[label], verdict, alarms)
        await check_alarms_fire(lab, stubs, alarms, verdict)
    finally:
        lab.close()
    return verdict


async def check_object(lab: Lab, label: str, stub: Any, acked: set[int], verdict: Verdict,
                       alarms: dict[str, int]) -> None:
    kv = lab.storage_of(stub)
    markers = {int(k[2:]): v for k, v in kv.items() if k.startswith("t/")}
    verdict.lost += [f"{label} turn {t}: acked, not in KV" for t in sorted(acked - set(markers))]
    verdict.committed_unacked += len(set(markers) - acked)
    if stub._binding.cls.sql:
        rows = await sql_rows(lab, stub)
        verdict.lost += [f"{label} turn {t}: acked, no SQL row" for t in sorted(acked - set(rows))]
        if rows != {t: m[0] for t, m in markers.items()}:
            verdict.partial.append(f"{label}: SQL rows {sorted(rows)} != KV turns "
                                   f"{sorted(markers)}")
    check_latest_turn(label, kv, markers, verdict)
    await check_alarm(lab, label, stub, kv, markers, verdict, alarms)


async def sql_rows(lab: Lab, stub: Any) -> dict[int, int]:
    def read(instance: Any, ctx: Any) -> list[list[int]]:
        try:
            cursor = ctx.storage.sql.exec("SELECT tid, nkeys FROM turns")
        except RuntimeError as error:
            if "no such table" in str(error):
                return []
            raise
        return [list(row) for row in cursor.raw()]

    return {tid: nkeys for tid, nkeys in await lab.run_in(stub, read)}


def check_latest_turn(label: str, kv: dict[str, Any], markers: dict[int, Any],
                      verdict: Verdict) -> None:
    """The newest committed turn is whole: its ``last`` and all its ``k`` keys carry its id."""
    if not markers:
        if kv:
            verdict.partial.append(f"{label}: keys without any turn marker: {sorted(kv)[:5]}")
        return
    top = max(markers)
    nkeys = markers[top][0]
    if kv.get("last") != [top, nkeys]:
        verdict.partial.append(f"{label}: last={kv.get('last')}, newest turn {top}/{nkeys}")
    for j in range(8):
        value = kv.get(f"k{j}")
        if (j < nkeys and value != top) or (j >= nkeys and value is not None and value >= top):
            verdict.partial.append(f"{label}: k{j}={value} after turn {top} of {nkeys} keys")


async def check_alarm(lab: Lab, label: str, stub: Any, kv: dict[str, Any],
                      markers: dict[int, Any], verdict: Verdict, alarms: dict[str, int]) -> None:
    """The alarm is the newest committed turn's alarm, in the record, the index and getAlarm()."""
    with_alarm = [t for t, (_, alarm_ms) in markers.items() if alarm_ms is not None]
    expected = markers[max(with_alarm)][1] if with_alarm else None
    if kv.get("alarm_tid") != (max(with_alarm) if with_alarm else None):
        verdict.partial.append(f"{label}: alarm_tid={kv.get('alarm_tid')}, turns {with_alarm}")
    key, hex_id = stub._binding.key, stub.id.toString()
    indexed = [round(t * 1000) for t, ns, i in lab.store.root.alarms.keys()
               if (ns, i) == (key, hex_id)]
    got = await lab.run_in(stub, lambda instance, ctx: ctx.storage.getAlarm())
    if got != expected or indexed != ([] if expected is None else [expected]):
        verdict.partial.append(f"{label}: getAlarm()={got}, index={indexed}, expected {expected}")
    if expected is not None:
        alarms[label] = expected
        verdict.alarms += 1


async def check_alarms_fire(lab: Lab, stubs: dict[str, Any], alarms: dict[str, int],
                            verdict: Verdict) -> None:
    """After reopening, every stored alarm fires once its time comes, and only those."""
    await lab.advance(2 * workload.ALARM_BASE_S)
    for label, stub in stubs.items():
        fired = lab.storage_of(stub).get("fired")
        if fired != alarms.get(label):
            verdict.partial.append(f"{label}: alarm fired at {fired}, expected {alarms.get(label)}")


# ---- the test ------------------------------------------------------------------------------------


@pytest.mark.timeout(120 + 6 * trials())
def test_sigkilled_writers_lose_no_acknowledged_write_and_apply_no_partial_turn(
        tmp_path: Path, stress_report: dict[str, str]) -> None:
    count = trials()
    base = int(os.environ.get("DOLAB_STRESS_SEED", random.randrange(2**31)))
    totals = Verdict()
    failures: list[str] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(run_writer, tmp_path / f"trial{i:03d}" / "lab.fs", base + i)
                for i in range(count)]
        for future in as_completed(runs):
            run = future.result()
            failures += judge(run, totals)
    stress_report["crash"] = (
        f"{count} trials, {totals.acked} acknowledged writes checked, lost {len(totals.lost)}, "
        f"partial {len(totals.partial)} ({totals.committed_unacked} unacknowledged turns found "
        f"committed, {totals.alarms} alarms checked, {totals.truncated_files} files had a torn "
        f"last transaction that FileStorage truncated on open; seed {base})")
    assert not failures, f"DOLAB_STRESS_SEED={base}:\n" + "\n".join(failures[:30])


def judge(run: Run, totals: Verdict) -> list[str]:
    """Check one run, add it to the totals, and return its failures (its files go if none)."""
    where = f"trial seed {run.seed} ({run.plan}, {len(run.acks)} acks)"
    if run.stalled:
        return [f"{where}: the writer was still running after {STALL_S:.0f} s (deadlock?)\n{run.stderr()}"]
    if run.returncode != -9:
        return [f"{where}: the writer exited by itself ({run.returncode})\n{run.stderr()}"]
    try:
        verdict = asyncio.run(check(run))
    except Exception as error:  # the file did not open, or a read failed
        return [f"{where}: reopening failed: {type(error).__name__}: {error}"]
    totals.acked += verdict.acked
    totals.committed_unacked += verdict.committed_unacked
    totals.alarms += verdict.alarms
    totals.truncated_files += verdict.truncated_files
    totals.lost += verdict.lost
    totals.partial += verdict.partial
    problems = [f"{where}: {p}" for p in verdict.lost + verdict.partial]
    if not problems:
        shutil.rmtree(run.path.parent)
    return problems


# ---- a damaged tail ------------------------------------------------------------------------------


async def write_turns(path: Path, first: int, count: int) -> None:
    """Commit ``count`` turns (tids from ``first``) to every object of the workload, then close."""
    lab = Lab(name=workload.WORKER_NAME, path=path, clock="virtual")
    workload.bind(lab)
    for tid in range(first, first + count):
        stubs = workload.stubs(lab).values()
        await asyncio.gather(*[stub.turn(tid, 3, None, 10) for stub in stubs])
    lab.close()


async def turns_in(path: Path) -> dict[str, list[int]]:
    lab = Lab(name=workload.WORKER_NAME, path=path, clock="virtual")
    try:
        workload.bind(lab)
        return {label: sorted(int(k[2:]) for k in lab.storage_of(stub) if k.startswith("t/"))
                for label, stub in workload.stubs(lab).items()}
    finally:
        lab.close()


@pytest.fixture
def two_commits(tmp_path: Path) -> tuple[Path, int, int]:
    """A lab file with turns 1–3 committed (size ``a``), then turns 4–5 (size ``b``); the index
    file is the one written after turn 3, as a crash after a later reopen would leave it."""
    path = tmp_path / "lab.fs"
    asyncio.run(write_turns(path, 1, 3))
    size_a = path.stat().st_size
    stale_index = path.with_name("lab.fs.index").read_bytes()
    asyncio.run(write_turns(path, 4, 2))
    path.with_name("lab.fs.index").write_bytes(stale_index)
    return path, size_a, path.stat().st_size


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_a_torn_last_transaction_is_truncated_on_open_and_earlier_turns_survive(
        two_commits: tuple[Path, int, int], keep: float, caplog: pytest.LogCaptureFixture) -> None:
    path, size_a, size_b = two_commits
    torn_at = size_a + int((size_b - size_a) * keep)
    os.truncate(path, torn_at)
    with caplog.at_level(logging.WARNING, logger="ZODB.FileStorage"):
        turns = asyncio.run(turns_in(path))
    assert all(t[:3] == [1, 2, 3] and set(t) <= {1, 2, 3, 4, 5} for t in turns.values())
    assert all(t == sorted(t) and t == list(range(1, len(t) + 1)) for t in turns.values())
    assert path.with_name("lab.fs.tr0").exists()  # FileStorage kept what it cut off
    assert any(str(path) in r.getMessage() and "truncat" in r.getMessage() for r in caplog.records)
    assert asyncio.run(turns_in(path)) == turns  # and the second open is a plain one


def _append(data: bytes) -> Any:
    def damage(path: Path) -> None:
        with open(path, "ab") as file:
            file.write(data)
    return damage


DAMAGE = {
    "0xff bytes after the last transaction": _append(b"\xff" * 1000),
    "zero bytes after the last transaction": _append(bytes(1000)),
    "a file shorter than FileStorage's magic": lambda path: os.truncate(path, 2),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_file_opens_or_fails_with_a_message_naming_the_file_and_fsrecover(
        two_commits: tuple[Path, int, int], damage: str) -> None:
    path = two_commits[0]
    DAMAGE[damage](path)
    try:
        turns = asyncio.run(turns_in(path))
    except Exception as error:
        assert str(path) in str(error), repr(error)
        assert "python -m ZODB.fsrecover" in str(error), repr(error)  # the command that exists
        return
    assert all(t == [1, 2, 3, 4, 5] for t in turns.values()) or damage.startswith("a file")


def test_a_text_tail_is_cut_off_on_open_and_the_lab_keeps_working(
        two_commits: tuple[Path, int, int]) -> None:
    path = two_commits[0]
    _append(b"garbage\n" * 100)(path)
    assert all(t == [1, 2, 3, 4, 5] for t in asyncio.run(turns_in(path)).values())
    assert path.with_name("lab.fs.tr0").read_bytes() == b"garbage\n" * 100
    asyncio.run(write_turns(path, 6, 1))
    assert all(t == [1, 2, 3, 4, 5, 6] for t in asyncio.run(turns_in(path)).values())


def test_a_random_tail_never_opens_with_wrong_data(tmp_path: Path) -> None:
    """Whatever garbage follows the last transaction, the lab opens with exactly the committed
    turns, or refuses to open (with the message tested above): it never shows other data."""
    base = tmp_path / "base.fs"
    asyncio.run(write_turns(base, 1, 2))
    outcomes: dict[str, int] = defaultdict(int)
    for seed in range(12):
        path = tmp_path / f"seed{seed}" / "lab.fs"
        path.parent.mkdir()
        shutil.copy(base, path)
        _append(random.Random(seed).randbytes(1000))(path)
        try:
            turns = asyncio.run(turns_in(path))
        except Exception as error:
            outcomes[f"raised {type(error).__name__}"] += 1
            continue
        outcomes["opened"] += 1
        assert all(t == [1, 2] for t in turns.values()), (seed, turns)
    assert outcomes["opened"] > 0, outcomes


def test_fsrecover_gives_back_every_committed_turn_of_a_damaged_file(
        two_commits: tuple[Path, int, int]) -> None:
    path = two_commits[0]
    DAMAGE["0xff bytes after the last transaction"](path)
    recovered = path.with_name("recovered.fs")
    result = subprocess.run([sys.executable, "-m", "ZODB.fsrecover", str(path), str(recovered)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1000 bytes removed during recovery" in result.stdout
    turns = asyncio.run(turns_in(recovered))
    assert len(turns) == len(workload.SQL_OBJECTS) + len(workload.KV_OBJECTS)
    assert all(t == [1, 2, 3, 4, 5] for t in turns.values())
