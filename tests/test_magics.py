"""The magics, in an in-process IPython shell: `%load_ext dolab`, `%%durable_object`, `%%worker`,
`%%wrangler` and every `%dolab` subcommand.

Cells run with `shell.run_cell` (top-level `await` runs on IPython's own loop, as in a terminal);
each test works in a temp directory, so `.dolab/lab.fs` is created there, and closes its lab.
"""

from __future__ import annotations

import importlib.util
import inspect
import linecache
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from traitlets.config import Config

import dolab
from dolab import Lab
from dolab.magics import PARSER, _duration

COUNTER = '''\
%%durable_object
class Counter(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.calls = 0                      # memory: lost on reset or eviction
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.count = await self.ctx.storage.get("count") or 0

    async def increment(self):
        self.calls += 1
        self.count += 1
        self.ctx.storage.put("count", self.count)
        return [self.count, self.calls]

    async def remind(self, seconds):
        await self.ctx.storage.setAlarm(Date.now() + seconds * 1000)
        return await self.ctx.storage.getAlarm()

    async def reminder(self):
        return await self.ctx.storage.getAlarm()

    async def alarm(self, alarm_info=None):
        self.ctx.storage.put("alarmed", True)

    async def boom(self):
        return 1 / 0
'''

WORKER = '''\
%%worker
class Worker(WorkerEntrypoint):
    async def fetch(self, request):
        stub = self.env.COUNTER.getByName("from-worker")
        count, _ = await stub.increment()
        return Response(f"{request.method} count={count}")
'''


@pytest.fixture(scope="module")
def ipython(tmp_path_factory: pytest.TempPathFactory) -> InteractiveShell:
    config = Config()
    config.HistoryManager.enabled = False  # no history database, no saving thread
    config.InteractiveShell.colors = "nocolor"
    shell = InteractiveShell.instance(config=config)
    shell.ipython_dir = str(tmp_path_factory.mktemp("ipython"))
    return shell


@pytest.fixture
def shell(ipython: InteractiveShell, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """A shell with a fresh namespace and `%load_ext dolab` run in ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    ipython.reset(new_session=False)
    ipython.extension_manager.loaded.discard("dolab")
    ok(ipython, "%load_ext dolab")
    yield ipython
    lab = ipython.user_ns.get("lab")
    if isinstance(lab, Lab):
        lab.close()


def run(shell: InteractiveShell, code: str) -> ExecutionResult:
    return shell.run_cell(code, store_history=True)


def ok(shell: InteractiveShell, code: str) -> Any:
    result = run(shell, code)
    if result.error_before_exec or result.error_in_exec:
        raise AssertionError(f"cell failed: {result.error_before_exec or result.error_in_exec!r}")
    return result.result


def usage_error(shell: InteractiveShell, code: str) -> str:
    error = run(shell, code).error_in_exec
    assert isinstance(error, UsageError), f"expected a UsageError, got {error!r}"
    return str(error)


def virtual(shell: InteractiveShell) -> None:
    ok(shell, "%dolab new --memory --virtual")


# ---- %load_ext dolab ---------------------------------------------------------------------------


def test_load_ext_puts_the_default_lab_env_and_public_names(shell: InteractiveShell,
                                                            tmp_path: Path) -> None:
    lab = shell.user_ns["lab"]
    assert isinstance(lab, Lab)
    assert (lab.path, lab.clock.virtual) == (".dolab/lab.fs", False)
    assert (tmp_path / ".dolab" / "lab.fs").exists()
    assert shell.user_ns["env"] is lab.env
    public = set(dolab.__all__) - {"load_ipython_extension"}
    assert {n: shell.user_ns[n] for n in public} == {n: getattr(dolab, n) for n in public}
    assert "load_ipython_extension" not in shell.user_ns
    assert {"durable_object", "worker", "wrangler"} <= set(shell.magics_manager.magics["cell"])
    assert "dolab" in shell.magics_manager.magics["line"]


def test_load_ext_keeps_an_open_lab_already_in_the_namespace(shell: InteractiveShell) -> None:
    lab = shell.user_ns["lab"]
    shell.extension_manager.loaded.discard("dolab")
    ok(shell, "%load_ext dolab")
    assert shell.user_ns["lab"] is lab and not lab.closed


# ---- %%durable_object --------------------------------------------------------------------------


def test_durable_object_binds_the_class_and_says_so(shell: InteractiveShell,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    ok(shell, COUNTER)
    assert capsys.readouterr().out == "Bound Counter as env.COUNTER (SQLite-backed).\n"
    assert ok(shell, 'await env.COUNTER.getByName("a").increment()') == [1, 1]
    assert ok(shell, 'await env.COUNTER.getByName("a").increment()') == [2, 2]


def test_durable_object_takes_a_binding_name_and_storage(shell: InteractiveShell,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    ok(shell, COUNTER.replace("%%durable_object", "%%durable_object TALLY --storage kv"))
    assert capsys.readouterr().out == "Bound Counter as env.TALLY (KV-backed).\n"
    assert shell.user_ns["lab"].bindings["TALLY"].backend == "kv"
    assert ok(shell, 'await env.TALLY.getByName("a").increment()') == [1, 1]


def test_default_binding_is_upper_snake_case_for_every_class_of_the_cell(
        shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    ok(shell, "%%durable_object\nclass ChatRoom(DurableObject):\n    pass\n"
              "class HTTPProxy(DurableObject):\n    pass\n")
    assert capsys.readouterr().out.splitlines() == [
        "Bound ChatRoom as env.CHAT_ROOM (SQLite-backed).",
        "Bound HTTPProxy as env.HTTP_PROXY (SQLite-backed).",
    ]


def test_rerunning_the_cell_is_a_code_update(shell: InteractiveShell,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    ok(shell, COUNTER)
    ok(shell, 'old = env.COUNTER.getByName("a")')
    ok(shell, "await old.increment()")
    assert ok(shell, "await old.increment()") == [2, 2]
    due = ok(shell, "await old.remind(3600)")
    capsys.readouterr()
    ok(shell, COUNTER)
    assert capsys.readouterr().out == (
        "Updated Counter (env.COUNTER): 1 live instance reset; storage and alarms kept.\n")
    result = run(shell, "await old.increment()")
    assert str(result.error_in_exec) == "Durable Object reset because its code was updated."
    ok(shell, 'new = env.COUNTER.getByName("a")')
    assert ok(shell, "await new.increment()") == [3, 1]  # storage kept, memory reset
    assert ok(shell, "await new.reminder()") == due      # the alarm too


def test_rerun_with_nothing_live_says_so(shell: InteractiveShell,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    ok(shell, COUNTER)
    ok(shell, COUNTER)
    assert capsys.readouterr().out.splitlines()[-1] == (
        "Updated Counter (env.COUNTER): no live instance to reset; storage and alarms kept.")


def test_binding_a_different_class_under_a_name_says_what_it_replaced(
        shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    ok(shell, "%%durable_object ROOM\nclass Lobby(DurableObject):\n    pass\n")
    ok(shell, "%%durable_object ROOM\nclass ChatRoom(DurableObject):\n    pass\n")
    assert capsys.readouterr().out.splitlines()[-1] == (
        "Bound ChatRoom as env.ROOM (SQLite-backed, replacing Lobby).")


def test_the_class_keeps_its_cell_source_and_filename(shell: InteractiveShell) -> None:
    ok(shell, COUNTER)
    cls = shell.user_ns["Counter"]
    assert cls.__dolab_source__ == COUNTER.split("\n", 1)[1]
    assert cls.increment.__code__.co_filename == cls.__dolab_filename__
    assert "self.count += 1" in inspect.getsource(cls.increment)
    lines = linecache.getlines(cls.__dolab_filename__)
    assert lines[0] == "\n"  # stands for the %%durable_object line
    assert [l.rstrip("\n") for l in lines[1:]] == COUNTER.split("\n")[1:-1]


def test_line_numbers_are_the_notebook_cells(shell: InteractiveShell) -> None:
    ok(shell, COUNTER)
    cls = shell.user_ns["Counter"]
    assert cls.boom.__code__.co_firstlineno == COUNTER.split("\n").index("    async def boom(self):") + 1


def test_an_error_while_defining_points_at_the_cell_line(shell: InteractiveShell) -> None:
    cell = "%%durable_object\nclass Broken(DurableObject):\n    limit = undefined_name\n"
    error = run(shell, cell).error_in_exec
    assert isinstance(error, NameError)
    last = traceback.extract_tb(error.__traceback__)[-1]
    assert (last.lineno, last.line) == (3, "limit = undefined_name")
    assert linecache.getline(last.filename, 3).strip() == "limit = undefined_name"
    assert "BROKEN" not in shell.user_ns["env"]


def test_a_traceback_from_a_method_points_at_the_defining_cell(shell: InteractiveShell) -> None:
    ok(shell, COUNTER)
    error = run(shell, "Counter.boom(None).send(None)").error_in_exec  # a direct call
    assert isinstance(error, ZeroDivisionError)
    last = traceback.extract_tb(error.__traceback__)[-1]
    assert last.filename == shell.user_ns["Counter"].__dolab_filename__
    assert (last.lineno, last.line) == (COUNTER.split("\n").index("        return 1 / 0") + 1,
                                        "return 1 / 0")


def test_a_traceback_through_a_stub_points_at_the_defining_cell(shell: InteractiveShell) -> None:
    ok(shell, COUNTER)
    error = run(shell, 'await env.COUNTER.getByName("a").boom()').error_in_exec
    assert isinstance(error, ZeroDivisionError)
    last = traceback.extract_tb(error.__traceback__)[-1]
    assert last.filename == shell.user_ns["Counter"].__dolab_filename__


def test_findings_of_the_checker_are_shown_with_their_code(
        shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    cell = ("%%durable_object\nimport asyncio\n\nclass Later(DurableObject):\n"
            "    async def ping(self):\n        await asyncio.sleep(60)\n"
            '        self.ctx.storage.put("pinged", True)\n')
    ok(shell, cell)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Bound Later as env.LATER (SQLite-backed)."
    assert out[1].startswith("line 6: timer-instead-of-alarm: ")  # the notebook cell's line 6
    assert any("fix:" in line for line in out[2:])


def test_correct_code_shows_no_findings(shell: InteractiveShell,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    ok(shell, COUNTER)
    assert capsys.readouterr().out.count("\n") == 1


@pytest.mark.parametrize(("cell", "line"), [
    ("%%durable_object\nclass A(DurableObject):\n    def f(self)\n        pass\n", 3),
    ("%%durable_object\n\n\nclass A(DurableObject):\n    def f(self)\n        pass\n", 5),
    ("%%durable_object\nclass A(DurableObject):\n    def f(self):\n        return 1\n  x = 1\n", 5),
])
def test_a_syntax_error_names_the_notebook_line(shell: InteractiveShell, cell: str,
                                                line: int) -> None:
    error = run(shell, cell).error_in_exec
    assert isinstance(error, SyntaxError) and error.lineno == line
    assert "A" not in shell.user_ns and "A" not in shell.user_ns["env"]


def test_a_cell_without_a_durable_object_is_a_usage_error(shell: InteractiveShell) -> None:
    message = usage_error(shell, "%%durable_object\nclass Counter:\n    pass\n")
    assert message.startswith("This cell defines no DurableObject subclass, so nothing was bound.")
    assert "class Counter(DurableObject):" in message


def test_a_worker_in_a_durable_object_cell_says_which_magic_to_use(
        shell: InteractiveShell) -> None:
    message = usage_error(shell, WORKER.replace("%%worker", "%%durable_object"))
    assert message.endswith("Worker is a WorkerEntrypoint: use %%worker.")


@pytest.mark.parametrize(("line", "says"), [
    ("%%durable_object --storage redis", "argument --storage: invalid choice: 'redis'"),
    ("%%durable_object --bogus", "unrecognized arguments: --bogus"),
    ("%%durable_object COUNTER EXTRA", "unrecognized arguments: EXTRA"),
    ("%%durable_object my-counter", "'my-counter' cannot name a binding"),
])
def test_a_bad_option_is_a_usage_error(shell: InteractiveShell, line: str, says: str) -> None:
    assert says in usage_error(shell, COUNTER.replace("%%durable_object", line))
    assert "COUNTER" not in shell.user_ns["env"]


def test_one_binding_name_cannot_bind_two_classes(shell: InteractiveShell) -> None:
    message = usage_error(shell, "%%durable_object ROOM\nclass A(DurableObject):\n    pass\n"
                                 "class B(DurableObject):\n    pass\n")
    assert "This cell defines 2 classes (A, B)" in message


def test_a_closed_lab_is_a_usage_error(shell: InteractiveShell) -> None:
    ok(shell, "lab.close()")
    assert "The lab is closed: %dolab new opens a new one." in usage_error(shell, COUNTER)


# ---- %%worker and %%wrangler ---------------------------------------------------------------------


def test_worker_binds_the_cells_worker_entrypoint(shell: InteractiveShell,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    ok(shell, COUNTER)
    ok(shell, WORKER)
    assert capsys.readouterr().out.splitlines()[-1] == (
        "Worker is the Worker: lab.fetch() and %dolab fetch go through it.")
    assert shell.user_ns["lab"].worker_cls is shell.user_ns["Worker"]
    response = ok(shell, 'await lab.fetch("http://do/")')
    assert ok(shell, "await _.text()") == "GET count=1" and response.status == 200


def test_worker_cell_without_a_worker_is_a_usage_error(shell: InteractiveShell) -> None:
    message = usage_error(shell, COUNTER.replace("%%durable_object", "%%worker"))
    assert "This cell defines no WorkerEntrypoint subclass" in message
    assert message.endswith("Counter is a DurableObject: use %%durable_object.")


def test_worker_findings_name_a_missing_binding(shell: InteractiveShell,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    ok(shell, WORKER)
    out = capsys.readouterr().out
    assert "missing-binding" in out and "line 4" in out


WRANGLER = '''\
%%wrangler
name = "my-worker"
compatibility_date = "2026-04-01"

[[durable_objects.bindings]]
name = "TALLY"
class_name = "Counter"

[[migrations]]
tag = "v1"
new_classes = ["Counter"]
'''


def test_wrangler_configures_bindings_from_the_namespace(shell: InteractiveShell,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    virtual(shell)
    ok(shell, COUNTER.split("\n", 1)[1])  # a plain cell defines the class
    capsys.readouterr()
    ok(shell, WRANGLER)
    assert capsys.readouterr().out == "Bound Counter as env.TALLY (KV-backed).\n"
    lab = shell.user_ns["lab"]
    assert (lab.name, lab.compatibility_date) == ("my-worker", "2026-04-01")
    assert ok(shell, 'await env.TALLY.getByName("a").increment()') == [1, 1]
    capsys.readouterr()
    ok(shell, WRANGLER)
    assert capsys.readouterr().out == (
        "Updated Counter (env.TALLY): 1 live instance reset; storage and alarms kept.\n")


def test_wrangler_errors_name_the_cells_line(shell: InteractiveShell) -> None:
    bad = WRANGLER.replace('class_name = "Counter"', "class_name = 3")
    message = usage_error(shell, bad)
    assert message.startswith("wrangler.toml: line 7: durable_objects.bindings[0].class_name:")
    broken = usage_error(shell, "%%wrangler\nname = \n")
    assert broken.startswith("wrangler.toml: line 2:")


def test_wrangler_names_a_class_the_notebook_lacks(shell: InteractiveShell) -> None:
    message = usage_error(shell, WRANGLER)
    assert "Counter" in message and "not exported" in message


# ---- %dolab ------------------------------------------------------------------------------------


def test_status_lists_the_lab_bindings_and_worker(shell: InteractiveShell,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    virtual(shell)
    ok(shell, COUNTER)
    ok(shell, 'await env.COUNTER.getByName("a").increment()')
    capsys.readouterr()
    ok(shell, "%dolab status")
    assert capsys.readouterr().out.splitlines() == [
        "Lab 'dolab' at memory, virtual clock, lab time 2026-01-01T00:00:00.000Z",
        "  env.COUNTER: Counter (SQLite-backed), 1 live, 1 stored",
        "  Worker: none (define one in a %%worker cell)",
    ]


def test_trace_prints_the_last_events(shell: InteractiveShell,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    virtual(shell)
    capsys.readouterr()
    ok(shell, "%dolab trace")
    assert capsys.readouterr().out == "No events in the trace yet.\n"
    ok(shell, COUNTER)
    ok(shell, 'await env.COUNTER.getByName("a").increment()')
    capsys.readouterr()
    ok(shell, "%dolab trace 3")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[-1].split()[2:5] == ["COUNTER:a", "r1", "finished"]


def test_evict_drops_memory_and_keeps_storage(shell: InteractiveShell,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    virtual(shell)
    ok(shell, COUNTER)
    ok(shell, 'stub = env.COUNTER.getByName("a")')
    ok(shell, "await stub.increment()")
    capsys.readouterr()
    ok(shell, "%dolab evict COUNTER a")
    assert capsys.readouterr().out == (
        "Evicted COUNTER:a: memory dropped, storage and alarms kept.\n")
    assert ok(shell, "await stub.increment()") == [2, 1]


def test_objects_can_be_named_by_their_hex_id(shell: InteractiveShell) -> None:
    virtual(shell)
    ok(shell, COUNTER)
    ok(shell, "stub = env.COUNTER.get(env.COUNTER.newUniqueId())")
    ok(shell, "await stub.increment()")
    hex_id = ok(shell, "stub.id.toString()")
    assert ok(shell, f"%dolab storage COUNTER {hex_id}") == {"count": 1}


def test_advance_moves_lab_time_and_runs_due_alarms(shell: InteractiveShell,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    virtual(shell)
    ok(shell, COUNTER)
    ok(shell, 'await env.COUNTER.getByName("a").remind(30)')
    capsys.readouterr()
    ok(shell, "%dolab advance 1m")
    assert capsys.readouterr().out == "Advanced 60 s; lab time is 2026-01-01T00:01:00.000Z.\n"
    assert ok(shell, "%dolab storage COUNTER a") == {"alarmed": True}
    ok(shell, "%dolab advance 500ms")
    assert "lab time is 2026-01-01T00:01:00.500Z" in capsys.readouterr().out


@pytest.mark.parametrize(("text", "seconds"), [
    ("500ms", 0.5), ("10s", 10), ("2m", 120), ("1h", 3600), ("7", 7), ("1.5", 1.5), ("0.25h", 900),
])
def test_durations(text: str, seconds: float) -> None:
    assert _duration(text) == seconds


@pytest.mark.parametrize("text", ["10x", "-1", "s", "ten seconds"])
def test_a_bad_duration_is_a_usage_error(shell: InteractiveShell, text: str) -> None:
    message = usage_error(shell, f"%dolab advance '{text}'")
    assert "is not a duration: write 500ms, 10s, 2m, 1h or plain seconds" in message
    assert "usage: %dolab advance DURATION" in message


def test_fetch_goes_through_the_worker(shell: InteractiveShell,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    virtual(shell)
    ok(shell, COUNTER)
    ok(shell, WORKER)
    capsys.readouterr()
    ok(shell, "%dolab fetch /")
    ok(shell, "%dolab fetch -X POST http://example.com/inc")
    assert capsys.readouterr().out.splitlines() == ["200 OK", "GET count=1",
                                                    "200 OK", "POST count=2"]


def test_fetch_sends_headers_and_a_body(shell: InteractiveShell,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    virtual(shell)
    ok(shell, "%%worker\nclass Echo(WorkerEntrypoint):\n    async def fetch(self, request):\n"
              "        body = await request.text()\n"
              "        return Response(f\"{request.headers.get('x-room')} {body}\", status=201)\n")
    capsys.readouterr()
    ok(shell, "%dolab fetch -X PUT -H 'X-Room: lobby' -d 'hello there' http://do/echo")
    assert capsys.readouterr().out == "201 Created\nlobby hello there\n"
    assert "'nope' is not a header: write 'Name: value'" in usage_error(
        shell, "%dolab fetch -H nope /")


def test_worker_and_wrangler_take_no_arguments(shell: InteractiveShell) -> None:
    assert usage_error(shell, WORKER.replace("%%worker", "%%worker NAME")) == (
        "unrecognized arguments: NAME\nusage: %%worker")
    assert usage_error(shell, WRANGLER.replace("%%wrangler", "%%wrangler --env x")).startswith(
        "unrecognized arguments: --env x")


def test_fetch_without_a_worker_says_how_to_add_one(shell: InteractiveShell) -> None:
    error = run(shell, "%dolab fetch /").error_in_exec
    assert isinstance(error, RuntimeError) and "%%worker" in str(error)


def test_storage_and_history_return_committed_data(shell: InteractiveShell) -> None:
    virtual(shell)
    ok(shell, COUNTER)
    ok(shell, 'stub = env.COUNTER.getByName("a")')
    ok(shell, "await stub.increment()")
    ok(shell, "await stub.increment()")
    assert ok(shell, "%dolab storage COUNTER a") == {"count": 2}
    assert ok(shell, "%dolab storage COUNTER nobody") == {}
    history = ok(shell, "%dolab history COUNTER a")
    assert [(v.request, v.kv) for v in history] == [("r1", {"count": 1}), ("r2", {"count": 2})]


def test_an_unknown_binding_is_a_usage_error(shell: InteractiveShell) -> None:
    assert usage_error(shell, "%dolab storage COUNTER a") == (
        "No binding named 'COUNTER'. Bound: none yet (use a %%durable_object cell).")
    ok(shell, COUNTER)
    assert usage_error(shell, "%dolab evict COUNTR a") == (
        "No binding named 'COUNTR'. Bound: COUNTER.")


def test_missing_arguments_show_the_subcommands_usage(shell: InteractiveShell) -> None:
    message = usage_error(shell, "%dolab evict COUNTER")
    assert message == ("the following arguments are required: NAME\n"
                       "usage: %dolab evict BINDING NAME")


def test_new_replaces_the_lab_and_closes_the_old_one(shell: InteractiveShell,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    old = shell.user_ns["lab"]
    capsys.readouterr()
    ok(shell, "%dolab new --memory --virtual --name my-worker")
    lab = shell.user_ns["lab"]
    assert old.closed and lab is not old and shell.user_ns["env"] is lab.env
    assert (lab.name, lab.path, lab.clock.virtual) == ("my-worker", None, True)
    assert capsys.readouterr().out == (
        "New lab: <Lab 'my-worker' at memory, virtual clock, bindings: []>\n")


def test_new_reopens_the_file_and_fresh_deletes_it(shell: InteractiveShell) -> None:
    ok(shell, COUNTER)
    ok(shell, 'await env.COUNTER.getByName("a").increment()')
    ok(shell, "%dolab new")
    ok(shell, COUNTER)
    assert ok(shell, "%dolab storage COUNTER a") == {"count": 1}
    ok(shell, "%dolab new --fresh")
    ok(shell, COUNTER)
    assert ok(shell, "%dolab storage COUNTER a") == {}


def test_new_with_a_config_file(shell: InteractiveShell, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "wrangler.toml").write_text(WRANGLER.split("\n", 1)[1])
    ok(shell, COUNTER.split("\n", 1)[1])
    ok(shell, "%dolab new --memory --config wrangler.toml")
    lab = shell.user_ns["lab"]
    assert lab.name == "my-worker" and lab.bindings["TALLY"].backend == "kv"
    assert "missing.toml" in usage_error(shell, "%dolab new --memory --config missing.toml")


def test_new_on_a_locked_file_is_a_usage_error(shell: InteractiveShell) -> None:
    ok(shell, "%dolab new --memory")  # releases .dolab/lab.fs
    other = Lab()  # as another kernel would hold it
    try:
        message = usage_error(shell, "%dolab new")
    finally:
        other.close()
    assert message.startswith("Could not open the lab: ")
    assert message.endswith("(%dolab new --memory opens an in-memory lab.)")


def test_explain_explains_an_error_message(shell: InteractiveShell,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    ok(shell, "%dolab explain Durable Object reset because its code was updated.")
    out = capsys.readouterr().out
    assert "cause:" in out and "fix:" in out and "lesson:" in out


def test_explain_takes_text_with_a_lone_quote(shell: InteractiveShell,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    ok(shell, "%dolab explain it can't be")
    assert capsys.readouterr().out  # not a shlex error


def test_check_runs_the_checker_on_files(shell: InteractiveShell, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "later.py").write_text(
        "import asyncio\nfrom dolab import DurableObject\n\nclass Later(DurableObject):\n"
        "    async def ping(self):\n        await asyncio.sleep(60)\n")
    ok(shell, "%dolab check later.py")
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("later.py: line 6: timer-instead-of-alarm:")
    assert out[-1] == "later.py: 1 finding"
    assert usage_error(shell, "%dolab check nowhere.py").startswith("Cannot check nowhere.py:")


def test_help_lists_every_subcommand(shell: InteractiveShell,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    ok(shell, "%dolab help")
    helped = capsys.readouterr().out
    ok(shell, "%dolab")
    assert capsys.readouterr().out == helped
    for name in ("status", "trace", "evict", "advance", "fetch", "storage", "history", "export",
                 "serve", "new", "explain", "check", "help", "%%durable_object", "%%worker",
                 "%%wrangler"):
        assert name in helped


def test_an_unknown_subcommand_is_a_usage_error(shell: InteractiveShell) -> None:
    message = usage_error(shell, "%dolab bogus")
    assert message.startswith("argument SUBCOMMAND: invalid choice: 'bogus' (choose from")


def test_every_subcommand_routes_to_a_function() -> None:
    commands = PARSER._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(commands) == {"status", "trace", "evict", "advance", "fetch", "storage", "history",
                             "export", "serve", "new", "explain", "check", "help"}
    assert all(callable(p.get_default("run")) for p in commands.values())


needs_export = pytest.mark.skipif(importlib.util.find_spec("dolab.export") is None,
                                  reason="dolab.export is not written yet")
needs_serve = pytest.mark.skipif(importlib.util.find_spec("dolab.serve") is None,
                                 reason="dolab.serve is not written yet")


@needs_export
def test_export_writes_a_project(shell: InteractiveShell, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    ok(shell, COUNTER)
    ok(shell, WORKER)
    capsys.readouterr()
    ok(shell, "%dolab export out")
    assert capsys.readouterr().out.startswith("Exported a Cloudflare Python Workers project to out")
    assert (tmp_path / "out" / "wrangler.toml").exists()
    assert "class Counter(DurableObject)" in (tmp_path / "out" / "src" / "entry.py").read_text()


@needs_serve
def test_serve_starts_a_server(shell: InteractiveShell,
                               capsys: pytest.CaptureFixture[str]) -> None:
    ok(shell, COUNTER)
    ok(shell, WORKER)
    server = ok(shell, "server = %dolab serve 0\nserver")
    assert server.port > 0
    assert f"http://127.0.0.1:{server.port}/" in capsys.readouterr().out
    ok(shell, "await server.close()")


def test_load_ext_falls_back_to_memory_when_another_kernel_holds_the_file(
        ipython: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Two lessons open at once in class: the second kernel still gets a working lab."""
    import subprocess
    import sys

    monkeypatch.chdir(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c",
                               "from dolab import Lab; import time; Lab(); print('open', "
                               "flush=True); time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        ipython.reset(new_session=False)
        ipython.extension_manager.loaded.discard("dolab")
        ok(ipython, "%load_ext dolab")
        lab = ipython.user_ns["lab"]
        assert isinstance(lab, Lab) and lab.path is None
        assert "open in another kernel" in capsys.readouterr().out
        lab.close()
    finally:
        holder.kill()
        holder.wait()
