"""Reliability (issue 10): bad input at every boundary gets a clear error and changes nothing, and
an untrusted ``lab.fs`` is refused without running anything (DESIGN.md §5 "Loading never runs
foreign code").

A bug found here is first recorded as an ``xfail(strict=True)`` test whose reason says what goes
wrong; the marker goes when the fix lands.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import transaction
import ZODB
import ZODB.FileStorage

import dolab.lab
from dolab import (
    DataCloneError, DOMException, DurableObject, Lab, RangeError, Response, WebSocketPair,
    WorkerEntrypoint, scheduler,
)
from dolab.errors import DatabaseLockedError, UnsafeDatabaseError

# ---- a store object used throughout --------------------------------------------------------------


class Box(DurableObject):
    constructed = 0

    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        type(self).constructed += 1

    async def put(self, key: Any, value: Any) -> None:
        await self.ctx.storage.put(key, value)

    async def put_entries(self, entries: dict[str, Any]) -> None:
        await self.ctx.storage.put(entries)

    async def get(self, key: str) -> Any:
        return await self.ctx.storage.get(key)

    async def delete(self, keys: Any) -> Any:
        return await self.ctx.storage.delete(keys)

    async def put_lambda(self) -> None:
        self.ctx.storage.put("f", lambda: 1)

    async def insert(self, *row: Any) -> None:
        sql = self.ctx.storage.sql
        sql.exec("CREATE TABLE IF NOT EXISTS t (a, b)")
        sql.exec("INSERT INTO t VALUES (?, ?)", *row)

    async def rows(self) -> list[list[Any]]:
        return [list(r) for r in self.ctx.storage.sql.exec("SELECT a, b FROM t").raw()]

    async def nap(self, seconds: float) -> str:
        await scheduler.wait(seconds * 1000)
        return "woke"

    async def fetch(self, request: Any) -> Response:
        return Response(request.url)


class KvBox(Box):
    """The same object, KV-backed (another class: one class is one namespace)."""


@pytest.fixture
def box(lab: Lab) -> Any:
    Box.constructed = 0
    lab.bind("BOX", Box)
    lab.bind("KVBOX", KvBox, storage="kv")
    return lab.env.BOX.getByName("b")


# ---- the lab's own arguments ---------------------------------------------------------------------

BAD_WRANGLER = 'name = "w"\n[[durable_objects.bindings]\nname = "BOX"\n'


def test_a_malformed_wrangler_file_is_named_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "wrangler.toml"
    config.write_text(BAD_WRANGLER)
    labs_before = list(dolab.lab._current_lab)
    try:
        with pytest.raises(ValueError, match=r"wrangler\.toml:2:\d+: invalid TOML"):
            Lab(path=None, config=config)
    finally:
        _close_leaked(labs_before)


def _close_leaked(labs_before: list[Lab]) -> None:
    """Close any lab a failed Lab() left registered (the next test checks there is none)."""
    for leaked in [lab for lab in dolab.lab._current_lab if lab not in labs_before]:
        leaked.close()


@pytest.mark.parametrize("bad", ["config", "clock"])
def test_a_lab_that_fails_to_open_leaves_its_file_unlocked(tmp_path: Path, bad: str) -> None:
    path, config = tmp_path / "lab.fs", tmp_path / "wrangler.toml"
    config.write_text(BAD_WRANGLER)
    labs_before = list(dolab.lab._current_lab)
    try:
        with pytest.raises(ValueError):
            if bad == "config":
                Lab(path=path, config=config)
            else:
                Lab(path=path, clock="wall")
        assert dolab.lab._current_lab == labs_before
        Lab(path=path).close()
    finally:
        _close_leaked(labs_before)


@pytest.mark.parametrize("kind", ["empty", "directory"])
def test_a_path_that_is_not_a_file_is_refused_clearly(tmp_path: Path, kind: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = "" if kind == "empty" else str(tmp_path)
    with pytest.raises(ValueError, match="lab.fs"):
        Lab(path=path)
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize(("call", "error", "says"), [
    (lambda lab: lab.bind("X", object), TypeError, "extends DurableObject"),
    (lambda lab: lab.bind("X", Box, storage="redis"), ValueError, '"sqlite"'),
    (lambda lab: lab.worker(Box), TypeError, "WorkerEntrypoint"),
])
def test_bad_lab_controls_are_refused_and_bind_nothing(call: Callable[[Lab], Any],
                                                       error: type, says: str) -> None:
    lab = Lab(path=None, clock="virtual")
    try:
        with pytest.raises(error, match=says):
            call(lab)
        assert (lab.bindings, lab.worker_cls, dir(lab.env)) == ({}, None, [])
    finally:
        lab.close()


async def test_advance_refuses_to_go_back(lab: Lab) -> None:
    now = lab.now()
    with pytest.raises(ValueError, match="forward only"):
        await lab.advance(-1)
    assert lab.now() == now


@pytest.mark.parametrize("control", ["settle", "advance"])
async def test_settle_and_advance_return_while_a_call_waits_on_lab_time(
        lab: Lab, box: Any, control: str) -> None:
    napping = asyncio.ensure_future(box.nap(10))
    await asyncio.sleep(0)
    step = lab.settle() if control == "settle" else lab.advance(1)
    try:
        await asyncio.wait_for(step, timeout=1)
    finally:
        assert await napping == "woke"


# ---- ids and stubs -------------------------------------------------------------------------------


@pytest.mark.parametrize(("make", "says"), [
    (lambda ns: ns.idFromName(123), "expects a string name, got int"),
    (lambda ns: ns.idFromName(None), "expects a string name, got NoneType"),
    (lambda ns: ns.getByName(b"room"), "expects a string name, got bytes"),
    (lambda ns: ns.idFromString("abc"), "must be 64 hex digits"),
    (lambda ns: ns.idFromString(None), "must be 64 hex digits"),
    (lambda ns: ns.idFromString(" " + "0" * 63), "must be 64 hex digits"),
    (lambda ns: ns.get("0" * 64), "get() expects a DurableObjectId"),
    (lambda ns: ns.get(None), "get() expects a DurableObjectId"),
])
async def test_invalid_ids_are_type_errors_that_create_nothing(
        lab: Lab, box: Any, make: Callable[[Any], Any], says: str) -> None:
    with pytest.raises(TypeError) as info:
        make(lab.env.BOX)
    assert says in str(info.value)
    assert lab.bindings["BOX"].hosts == {} and Box.constructed == 0


async def test_an_id_of_another_namespace_reaches_nothing(lab: Lab, box: Any) -> None:  # B10
    other = lab.env.KVBOX.idFromName("b").toString()
    with pytest.raises(TypeError, match="^Durable Object ID is not valid for this namespace.$"):
        lab.env.BOX.idFromString(other)
    assert lab.bindings["BOX"].hosts == {}


async def test_two_bindings_of_one_class_reach_one_instance(lab: Lab) -> None:
    class Counter(DurableObject):
        def __init__(self, ctx: Any, env: Any) -> None:
            super().__init__(ctx, env)
            self.calls = 0

        async def call(self) -> int:
            self.calls += 1
            return self.calls

    lab.bind("FIRST", Counter)
    lab.bind("SECOND", Counter)
    first, second = lab.env.FIRST.getByName("x"), lab.env.SECOND.getByName("x")
    assert first.id.equals(second.id)  # one class, one namespace (spec §2.1)
    assert [await first.call(), await second.call(), await first.call()] == [1, 2, 3]
    with pytest.raises(ValueError, match="Counter"):
        lab.bind("THIRD", Counter, storage="kv")


# ---- values that cannot be cloned ----------------------------------------------------------------


@pytest.mark.parametrize(("argument", "error"), [
    (lambda: 1, DataCloneError),
    (object(), DataCloneError),
    (Box, DataCloneError),
    ((1, 2), TypeError),
    (bytearray(b"x"), TypeError),
    ({"nested": [1, {"deeper": object()}]}, DataCloneError),
])
async def test_an_uncloneable_rpc_argument_never_reaches_the_object(
        lab: Lab, box: Any, argument: Any, error: type) -> None:
    with pytest.raises(error):
        await box.put("k", argument)
    assert Box.constructed == 0 and lab.storage_of(box) == {}


async def test_an_uncloneable_value_is_not_stored(lab: Lab, box: Any) -> None:
    await box.put("k", "before")
    with pytest.raises(DataCloneError, match="could not be cloned"):
        await box.put_lambda()
    assert lab.storage_of(box) == {"k": "before"} and await box.get("k") == "before"


# ---- storage limits: the refused write changes nothing -------------------------------------------


@pytest.mark.parametrize(("backend", "write", "says"), [
    ("kv", ("put", "k" * 2049, 1), "Keys cannot be larger than 2048 bytes"),
    ("kv", ("put", "big", "x" * 131_102), "Values cannot be larger than 131072 bytes"),
    ("kv", ("put_entries", {"a": 2, "k" * 2049: 1}), "A key of size 2049"),
    ("kv", ("put_entries", {"a": 2, "big": "x" * 131_102}), "A value of size 131107"),
    ("kv", ("put_entries", {f"n{i}": i for i in range(129)}), "129 pairs were provided"),
    ("kv", ("delete", [f"n{i}" for i in range(129)]), "129 pairs were provided"),
    ("sqlite", ("put", "huge", "x" * 2_097_152), "2097152 bytes (2 MB)"),
    ("sqlite", ("put_entries", {"a": 2, "huge": "x" * 2_097_152}), "2097152 bytes (2 MB)"),
])
async def test_an_oversized_write_is_refused_and_changes_nothing(
        lab: Lab, box: Any, backend: str, write: tuple[Any, ...], says: str) -> None:
    stub = box if backend == "sqlite" else lab.env.KVBOX.getByName("b")
    await stub.put_entries({"a": 1, "n0": 0})
    with pytest.raises(RangeError) as info:
        await getattr(stub, write[0])(*write[1:])
    assert says in str(info.value)
    assert lab.storage_of(stub) == {"a": 1, "n0": 0}
    assert await stub.get("a") == 1  # nor in the write buffer


@pytest.mark.parametrize("bad", [[1, 2], {"a": 1}, {1}, 2**60])  # 2**60: beyond ±2**53
async def test_a_bad_sql_binding_inserts_nothing(lab: Lab, box: Any, bad: Any) -> None:
    await box.insert(1, "one")
    with pytest.raises(TypeError, match="^SQL b"):
        await box.insert(bad, 2)
    assert await box.rows() == [[1, "one"]]


# ---- fetch takes http(s) URLs only ---------------------------------------------------------------


@pytest.mark.parametrize("url", ["ftp://x", "ws://x/chat", "wss://x/chat", "gopher://x/"])
async def test_fetch_refuses_urls_that_are_not_http(lab: Lab, box: Any, url: str) -> None:
    with pytest.raises(TypeError, match=r"^Fetch API cannot load: "):
        await box.fetch(url)
    assert Box.constructed == 0


async def test_http_and_https_urls_are_fetched(box: Any) -> None:
    for url in ("http://x/a", "https://x/b"):
        assert await (await box.fetch(url)).text() == url


# ---- WebSockets ----------------------------------------------------------------------------------


class Socket(DurableObject):
    async def fetch(self, request: Any) -> Response:
        client, server = WebSocketPair()
        self.ctx.acceptWebSocket(server)
        server.serializeAttachment({"v": 1})
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws: Any, message: Any) -> None:
        try:
            if message == "close 999":
                ws.close(999, "bad")
            elif message == "big attachment":
                ws.serializeAttachment("x" * 20_000)
            elif message == "send a dict":
                ws.send({"not": "a message"})
            else:
                ws.send(f"echo {message} {ws.deserializeAttachment()}")
                return
        except Exception as error:
            ws.send(f"{type(error).__name__}: {error}")


class Front(WorkerEntrypoint):
    async def fetch(self, request: Any) -> Any:
        return await self.env.SOCKET.getByName("s").fetch(request)


@pytest.mark.parametrize(("message", "says"), [
    ("close 999", "DOMException: Invalid WebSocket close code: 999."),
    ("big attachment", "RuntimeError: A WebSocket 'attachment' cannot be larger than 16384 "
                       "bytes.'attachment' was 20005 bytes."),
    ("send a dict", "TypeError: WebSocket send() takes a str or bytes, not dict."),
])
async def test_bad_socket_calls_leave_the_socket_and_its_attachment_as_they_were(
        lab: Lab, message: str, says: str) -> None:
    lab.bind("SOCKET", Socket)
    lab.worker(Front)
    client = await lab.connect("ws://s/")
    client.send(message)
    assert await client.receive() == says
    await lab.hibernate(lab.env.SOCKET.getByName("s"))
    client.send("hi")
    assert await client.receive() == "echo hi {'v': 1}"
    assert not client.closed


async def test_a_bad_client_close_code_keeps_the_connection(lab: Lab) -> None:
    lab.bind("SOCKET", Socket)
    lab.worker(Front)
    client = await lab.connect("ws://s/")
    for code in (999, 1005, 5000, "1000"):
        with pytest.raises((DOMException, TypeError)):
            client.close(code)
    client.send("still")
    assert await client.receive() == "echo still {'v': 1}"


# ---- %%durable_object cells ----------------------------------------------------------------------


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "nocolor"
    fresh = not InteractiveShell.initialized()
    ipython = InteractiveShell.instance(config=config)  # the process's one shell (test_magics')
    if fresh:
        ipython.ipython_dir = str(tmp_path / "ipython")
    monkeypatch.chdir(tmp_path)
    ipython.reset(new_session=False)
    ipython.extension_manager.loaded.discard("dolab")
    assert not ipython.run_cell("%load_ext dolab").error_in_exec
    yield ipython
    lab = ipython.user_ns.get("lab")
    if isinstance(lab, Lab):
        lab.close()


def _cell_error(shell: Any, cell: str) -> BaseException:
    result = shell.run_cell(cell, store_history=True)
    error = result.error_before_exec or result.error_in_exec
    assert error is not None, "the cell should have failed"
    return error  # type: ignore[no-any-return]


def test_a_cell_with_a_syntax_error_binds_nothing_and_names_the_line(shell: Any) -> None:
    error = _cell_error(shell, "%%durable_object\nclass Broken(DurableObject:\n    pass\n")
    assert isinstance(error, SyntaxError) and error.lineno == 2
    assert dir(shell.user_ns["env"]) == [] and "Broken" not in shell.user_ns
    assert not shell.run_cell("%%durable_object\nclass Fixed(DurableObject):\n    pass\n"
                              ).error_in_exec
    assert dir(shell.user_ns["env"]) == ["FIXED"]


def test_an_empty_cell_is_a_usage_error(shell: Any) -> None:
    from IPython.core.error import UsageError

    error = _cell_error(shell, "%%durable_object\n")
    assert isinstance(error, UsageError) and "cell body is empty" in str(error)


@pytest.mark.parametrize(("cell", "line"), [
    ("%%durable_object\n\n\nclass T(DurableObject):\n    def f(self)\n        pass\n", 5),
    ("%%durable_object\nclass T(DurableObject):\n    def f(self):\n        return 1\n  x = 1\n", 5),
])
def test_the_error_of_a_cell_names_its_notebook_line(shell: Any, cell: str, line: int) -> None:
    error = _cell_error(shell, cell)
    assert isinstance(error, SyntaxError) and error.lineno == line


# ---- untrusted files -----------------------------------------------------------------------------
#
# The attacker's tool is plain ZODB (no class factory): it stores objects whose pickles name
# dangerous globals, inside an otherwise valid dolab file. Each payload, if ever called, creates
# the marker file.


def _payloads(marker: Path) -> dict[str, Any]:
    class Reduce:
        def __init__(self, call: Any, *args: Any) -> None:
            self.call, self.args = call, args

        def __reduce__(self) -> tuple[Any, ...]:
            return self.call, self.args

    evil = types.ModuleType("tests.evil_module")
    exec("class Payload:\n    def __init__(self, path):\n        open(path, 'w').close()\n",
         evil.__dict__)
    evil.Payload.__module__ = "tests.evil_module"
    return {
        "posix.system": Reduce(os.system, f"touch {marker}"),
        "builtins.eval": Reduce(eval, f"open({str(marker)!r}, 'w').close()"),
        "builtins.exec": Reduce(exec, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.Popen": Reduce(subprocess.Popen, ["touch", str(marker)]),
        "tests.evil_module.Payload": (evil, Reduce(evil.Payload, str(marker))),
    }


PAYLOADS = ["posix.system", "builtins.eval", "builtins.exec", "subprocess.Popen",
            "tests.evil_module.Payload"]
PLACES = ["root mapping", "lab root", "object's KV bucket", "object's SQL image"]


async def _seed(path: Path) -> tuple[str, str]:
    lab = Lab(path=path, clock="virtual")
    lab.bind("BOX", Box)
    stub = lab.env.BOX.getByName("b")
    await stub.put("k", "v")
    await stub.insert(1, "one")
    lab.close()
    return stub._binding.key, stub.id.toString()


def craft(tmp_path: Path, place: str, payload_name: str) -> tuple[Path, Path]:
    """A valid lab file with one payload planted at ``place``; returns (file, marker)."""
    path, marker = tmp_path / "crafted.fs", tmp_path / "pwned"
    ns_key, id_hex = asyncio.run(_seed(path))
    payload = _payloads(marker)[payload_name]
    if isinstance(payload, tuple):  # the module must be importable while the file is written
        module, payload = payload
        sys.modules[module.__name__] = module
    try:
        _plant(path, place, payload, ns_key, id_hex)
    finally:
        sys.modules.pop("tests.evil_module", None)
    assert not marker.exists()
    return path, marker


def _plant(path: Path, place: str, payload: Any, ns_key: str, id_hex: str) -> None:
    db = ZODB.DB(ZODB.FileStorage.FileStorage(str(path)))
    manager = transaction.TransactionManager()
    root = db.open(transaction_manager=manager).root()
    record = root["dolab"].namespaces[ns_key].objects[id_hex]
    if place == "root mapping":
        root["extra"] = payload
    elif place == "lab root":
        root["dolab"].lab_time = payload
    elif place == "object's KV bucket":
        record.kv["evil"] = payload
    else:
        record.sql.image = payload
    manager.commit()
    db.close()


async def _use(path: Path) -> list[BaseException]:
    """Open the crafted file and use it every way a learner might; return the errors raised."""
    errors: list[BaseException] = []
    try:
        lab = Lab(path=path, clock="virtual")
    except Exception as error:
        return [error]
    try:
        steps: list[Callable[[], Any]] = [
            lambda: lab.bind("BOX", Box),
            lambda: lab.storage_of(lab.env.BOX.getByName("b")),
            lambda: lab.env.BOX.getByName("b").get("k"),
            lambda: lab.env.BOX.getByName("b").rows(),
            lambda: lab.history(lab.env.BOX.getByName("b")),
            lambda: lab.pack(),
        ]
        for step in steps:
            try:
                result = step()
                if asyncio.iscoroutine(result) or hasattr(result, "__await__"):
                    await result
            except Exception as error:
                errors.append(error)
    finally:
        lab.close()
    return errors


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("place", PLACES)
def test_a_crafted_file_runs_nothing_and_imports_nothing(tmp_path: Path, place: str,
                                                         payload: str) -> None:
    path, marker = craft(tmp_path, place, payload)
    modules = set(sys.modules)
    errors = asyncio.run(_use(path))
    assert not marker.exists()
    assert not any(m.startswith(("tests", "subprocess")) for m in set(sys.modules) - modules)
    assert errors, "the payload was loaded without complaint"


def test_a_payload_in_the_root_mapping_is_refused_when_the_lab_opens(tmp_path: Path) -> None:
    path, marker = craft(tmp_path, "root mapping", "posix.system")
    with pytest.raises(UnsafeDatabaseError, match=r"^Refusing to load posix\.system from the lab"):
        Lab(path=path)
    assert not marker.exists()
    Lab(path=tmp_path / "other.fs").close()  # the refused lab let go of everything


@pytest.mark.parametrize("place", PLACES[1:])
def test_a_payload_below_the_root_is_refused_with_dolabs_message(tmp_path: Path,
                                                                 place: str) -> None:
    path, marker = craft(tmp_path, place, "posix.system")
    errors = asyncio.run(_use(path))
    assert errors and all(isinstance(e, UnsafeDatabaseError) or "Refusing to load posix.system"
                          in str(e) for e in errors), [repr(e) for e in errors]
    assert not marker.exists()


def _rewrite_root(path: Path, prefix: bytes) -> None:
    """Put raw pickle opcodes in front of the root record's state (a hand-made payload)."""
    import io
    import pickle

    from ZODB.Connection import TransactionMetaData
    from ZODB.utils import z64

    storage = ZODB.FileStorage.FileStorage(str(path))
    data, serial = storage.load(z64)
    stream = io.BytesIO(data)
    pickle.Unpickler(stream).load()  # the class pickle: PersistentMapping
    split = stream.tell()
    assert data[split:split + 2] == b"\x80\x03"
    meta = TransactionMetaData()
    storage.tpc_begin(meta)
    storage.store(z64, serial, data[:split] + b"\x80\x03" + prefix + data[split + 2:], "", meta)
    storage.tpc_vote(meta)
    storage.tpc_finish(meta)
    storage.close()


def test_a_crafted_file_cannot_reach_module_globals(tmp_path: Path) -> None:
    import BTrees.OOBTree

    path = tmp_path / "lab.fs"
    Lab(path=path).close()
    _rewrite_root(path, b"cBTrees.OOBTree\n__dict__\nVdolab_planted\nI01\ns0")
    try:
        with pytest.raises(UnsafeDatabaseError, match="BTrees.OOBTree.__dict__"):
            Lab(path=path).close()
    finally:
        planted = BTrees.OOBTree.__dict__.pop("dolab_planted", None)
    assert planted is None


def test_a_hand_made_reduce_in_the_root_is_refused(tmp_path: Path) -> None:
    path, marker = tmp_path / "lab.fs", tmp_path / "pwned"
    Lab(path=path).close()
    command = f"touch {marker}".encode()
    _rewrite_root(path, b"cposix\nsystem\n(V" + command + b"\ntR0")
    with pytest.raises(UnsafeDatabaseError, match="posix.system"):
        Lab(path=path)
    assert not marker.exists()


def test_a_crafted_index_file_runs_nothing(tmp_path: Path) -> None:
    import pickle

    path, marker = tmp_path / "lab.fs", tmp_path / "pwned"
    asyncio.run(_seed(path))

    class Index:
        def __reduce__(self) -> tuple[Any, ...]:
            return os.system, (f"touch {marker}",)

    path.with_name("lab.fs.index").write_bytes(pickle.dumps(Index(), protocol=3))
    try:
        lab = Lab(path=path)
    except UnsafeDatabaseError as error:
        assert "lab.fs.index" in str(error)
    else:
        lab.bind("BOX", Box)
        assert lab.storage_of(lab.env.BOX.getByName("b")) == {"k": "v"}
        lab.close()
    assert not marker.exists()


def test_opening_a_file_that_names_a_user_module_does_not_import_it(tmp_path: Path) -> None:
    path, marker = craft(tmp_path, "root mapping", "tests.evil_module.Payload")
    before = set(sys.modules)
    with pytest.raises(UnsafeDatabaseError, match=r"tests\.evil_module\.Payload"):
        Lab(path=path)
    assert "tests.evil_module" not in sys.modules and "tests" not in set(sys.modules) - before
    assert not marker.exists()


def test_a_locked_file_is_named_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "lab.fs"
    first = Lab(path=path)
    try:
        size = path.stat().st_size
        with pytest.raises(DatabaseLockedError, match=str(path)):
            Lab(path=path)
        assert path.stat().st_size == size
    finally:
        first.close()
