"""A real kernel (this venv's ipykernel, headless): what a notebook stores survives a kernel
restart, pending alarm included (tests/fixtures/kernel_restart.ipynb, run by nbclient; its lab is
`.dolab/lab.fs` in a temp dir, on the real clock); `%dolab` line magics, which run lab work from
the kernel's running loop with nest-asyncio2, keep every queued cell running ("Run All"); and
alarms fire while the kernel is idle.
"""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parent / "fixtures" / "kernel_restart.ipynb"
KERNEL = "dolab-test-venv"


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A kernelspec for this venv's Python, installed into a temp JUPYTER_PATH."""
    prefix = tmp_path_factory.mktemp("jupyter")
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix),
                    "--name", KERNEL], check=True, capture_output=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
        patch.setenv("JUPYTER_RUNTIME_DIR", str(prefix / "runtime"))
        patch.setenv("JUPYTER_PLATFORM_DIRS", "1")
        yield KERNEL


def text_of(cell: Any) -> str:
    """What a cell printed or displayed, errors included (as "Name: message")."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.data.get("text/plain", "") + "\n")
        elif output.output_type == "error":
            parts.append(f"{output.ename}: {output.evalue}\n")
    return "".join(parts)


def line_after(texts: list[str], prefix: str) -> str:
    found = [line[len(prefix):] for text in texts for line in text.splitlines()
             if line.startswith(prefix)]
    assert len(found) == 1, (prefix, texts)
    return found[0].strip()


async def test_storage_and_pending_alarm_survive_a_kernel_restart(kernel_name: str,
                                                                  tmp_path: Path) -> None:
    nb = nbformat.read(FIXTURE, as_version=4)
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=120, allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    async with client.async_setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.metadata.get("dolab") == "restart-kernel":
                await client.km.restart_kernel()
                await client.kc.wait_for_ready(timeout=60)
            elif cell.cell_type == "code":
                await client.async_execute_cell(cell, index)
    texts = [text_of(c) for c in nb.cells if c.cell_type == "code"]
    assert (tmp_path / ".dolab" / "lab.fs").exists()
    assert texts[1] == "Bound Reminder as env.REMINDER (SQLite-backed).\n"   # before the restart
    assert texts[2] == "Front is the Worker: lab.fetch() and %dolab fetch go through it.\n"
    assert texts[4].startswith("Advanced 1 s; lab time is ")
    assert texts[5] == "200 OK\nremembered: buy milk\n"
    assert ast.literal_eval(texts[6]) == {"text": "buy milk"}
    assert texts[8] == "Bound Reminder as env.REMINDER (SQLite-backed).\n"   # a new kernel
    due_before = float(line_after(texts, "alarm before restart:"))
    assert due_before > (time.time() + 23 * 3600) * 1000  # a day ahead: pending throughout
    assert line_after(texts, "after restart:") == "buy milk"
    assert float(line_after(texts, "alarm after restart:")) == due_before  # still pending
    assert ast.literal_eval(texts[10]) == {"text": "buy milk"}


COUNTER = """\
%%durable_object
class Counter(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.n = await self.ctx.storage.get("n") or 0

    async def add(self):
        self.n += 1
        self.ctx.storage.put("n", self.n)
        return self.n

    async def remind(self, seconds):
        await self.ctx.storage.setAlarm(Date.now() + seconds * 1000)

    async def alarm(self, alarm_info=None):
        self.ctx.storage.put("fired", True)
"""
REENTRANT = "import asyncio\nprint('re-entrant loop:', hasattr(asyncio.get_running_loop(), " \
            "'_nest_patched'))"


@pytest.fixture
async def kernel(kernel_name: str, tmp_path: Path) -> AsyncIterator[Any]:
    """A kernel client (this venv's kernel, cwd ``tmp_path``), ready."""
    manager = AsyncKernelManager(kernel_name=kernel_name)
    await manager.start_kernel(cwd=str(tmp_path))
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        yield client
    finally:
        client.stop_channels()
        await manager.shutdown_kernel(now=True)


async def test_line_magics_keep_queued_cells_running(kernel: Any) -> None:
    """As JupyterLab's Run All does, send every cell before the first one finishes: each gets
    its reply and output (nest-asyncio 1.6.0 dropped the queued ones under ipykernel 7)."""
    cells = ["%load_ext dolab\n%dolab new --memory --virtual", COUNTER,
             "print(await env.COUNTER.getByName('a').add())",
             "%dolab advance 10s",
             "print(await env.COUNTER.getByName('a').add())",
             "%dolab advance 500ms",
             "%dolab storage COUNTER a",
             REENTRANT]
    replies, outputs = await execute(kernel, cells)
    assert [r["content"]["status"] for r in replies] == ["ok"] * len(cells)
    assert outputs == [
        "New lab: <Lab 'dolab' at memory, virtual clock, bindings: []>\n",
        "Bound Counter as env.COUNTER (SQLite-backed).\n",
        "1\n",
        "Advanced 10 s; lab time is 2026-01-01T00:00:10.000Z.\n",
        "2\n",
        "Advanced 0.5 s; lab time is 2026-01-01T00:00:10.500Z.\n",
        "{'n': 2}\n",
        "re-entrant loop: True\n",  # the magics made it so, with nest-asyncio2
    ]


async def test_alarms_fire_while_the_kernel_is_idle(kernel: Any) -> None:
    """The real clock's timers are the kernel loop's: nothing needs to run for them to fire."""
    _, outputs = await execute(kernel, [
        "%load_ext dolab\n%dolab new --memory", COUNTER,
        "await env.COUNTER.getByName('a').remind(1.5)", "%dolab storage COUNTER a"])
    assert outputs[-1] == "{}\n"
    await asyncio.sleep(3.0)  # the kernel is idle
    _, outputs = await execute(kernel, ["%dolab storage COUNTER a"])
    assert outputs == ["{'fired': True}\n"]


async def execute(client: Any, cells: list[str]) -> tuple[list[Any], list[str]]:
    """Send every cell at once (queued, as Run All does); the replies in order, and each cell's
    stream, result and error text read from iopub until every request is idle."""
    sent = [client.execute(code) for code in cells]
    replies = []
    while len(replies) < len(sent):
        reply = await client.get_shell_msg(timeout=60)
        if reply["parent_header"].get("msg_id") in sent:  # not a stray kernel_info reply
            replies.append(reply)
    assert [r["parent_header"]["msg_id"] for r in replies] == sent
    outputs = {m: "" for m in sent}
    pending = set(sent)
    while pending:
        msg = await client.get_iopub_msg(timeout=60)
        parent, content = msg["parent_header"].get("msg_id"), msg["content"]
        if parent not in outputs:
            continue
        if msg["msg_type"] == "stream":
            outputs[parent] += content["text"]
        elif msg["msg_type"] == "execute_result":
            outputs[parent] += content["data"]["text/plain"] + "\n"
        elif msg["msg_type"] == "error":
            outputs[parent] += f"{content['ename']}: {content['evalue']}\n"
        elif msg["msg_type"] == "status" and content["execution_state"] == "idle":
            pending.discard(parent)
    return replies, [outputs[m] for m in sent]
