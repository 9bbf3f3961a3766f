"""The writer process of the crash test: ``python crash_writer.py LAB_FS SEED [REOPEN_EVERY]``.

It opens ``Lab(path=LAB_FS, clock="virtual")`` and runs batches of concurrent turns (see
``workload.py``) forever, printing ``ready`` once open and, for each turn, one line

    ack <object> <tid>

only after ``await stub.turn(...)`` returned, that is after the output gate released the result,
so the turn is durable. The parent kills it with SIGKILL at a random moment. With REOPEN_EVERY > 0
it closes and reopens the lab every that many batches (a clean close writes ``lab.fs.index``, so
a later crash leaves an index older than the file's tail).
"""

from __future__ import annotations

import asyncio
import random
import sys

import workload  # beside this script, which Python puts first on sys.path

from dolab import Date, Lab


async def turn(stub: object, label: str, tid: int, rng: random.Random) -> None:
    nkeys = rng.randint(1, 8)
    alarm_ms = None
    if rng.random() < 0.3:
        alarm_ms = int(Date.now()) + int(workload.ALARM_BASE_S * 1000) + tid
    pad = rng.choice((0, 0, 200, 4000))  # grows the SQL image, so some commits take longer
    await stub.turn(tid, nkeys, alarm_ms, pad)  # type: ignore[attr-defined]
    sys.stdout.write(f"ack {label} {tid}\n")
    sys.stdout.flush()


def open_lab(path: str) -> tuple[Lab, dict[str, object]]:
    lab = Lab(name=workload.WORKER_NAME, path=path, clock="virtual")
    workload.bind(lab)
    return lab, workload.stubs(lab)


async def main(path: str, seed: int, reopen_every: int) -> None:
    rng = random.Random(seed)
    lab, stubs = open_lab(path)
    labels = sorted(stubs)
    print("ready", flush=True)
    tid = batches = 0
    while True:
        calls = []
        for _ in range(rng.randint(1, 12)):
            tid += 1
            label = rng.choice(labels)
            calls.append(turn(stubs[label], label, tid, rng))
        await asyncio.gather(*calls)
        batches += 1
        if reopen_every and batches % reopen_every == 0:
            lab.close()
            lab, stubs = open_lab(path)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0))
