"""Export to a Cloudflare Python Workers project: the files, the rewritten imports, the refusals,
dolab's own validation, and Cloudflare's wrangler accepting the result (spec §10–§11)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dolab
from dolab import DurableObject, Lab, WorkerEntrypoint
from dolab.cli import bind_defaults, load_module
from dolab.config import parse_toml
from dolab.export import (
    WRANGLER_VERSION,
    ExportError,
    Source,
    check_with_wrangler,
    export,
    local_wrangler,
    rewrite,
    validate,
)

ROOT = Path(__file__).resolve().parent.parent
CHAT = ROOT / "tests" / "fixtures" / "chat.py"
NO_WRANGLER = (
    "wrangler is not installed in .cache/wrangler: run `bash tools/install-wrangler.sh` (needs "
    "Node.js 20.3+ and npm; `make test` runs it when npm is on PATH). This test does not skip: "
    "CI has Node.js, and the export must be checked by Cloudflare's own tool."
)


@pytest.fixture
def chat() -> Iterator[Lab]:
    """The chat room module, bound as `dolab export tests/fixtures/chat.py` binds it."""
    lab = Lab(name="chat", path=None)
    bind_defaults(lab, load_module(CHAT), str(CHAT))
    yield lab
    lab.close()


def run_cells(lab: Lab, *cells: str) -> dict[str, Any]:
    """Run cells as the magics do: dolab's names, `lab` and `env` injected (`%load_ext dolab`),
    and each class keeps its cell's source."""
    namespace: dict[str, Any] = {n: getattr(dolab, n) for n in dolab.__all__}
    namespace.update(lab=lab, env=lab.env)
    for cell in cells:
        before = dict(namespace)
        exec(compile(cell, "<cell>", "exec"), namespace)  # noqa: S102
        for name, value in namespace.items():
            if isinstance(value, type) and before.get(name) is not value:
                value.__dolab_source__ = cell
    return namespace


def imports_of(code: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for node in ast.parse(code).body:
        if isinstance(node, ast.ImportFrom):
            found.setdefault(node.module or "", set()).update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            found.setdefault("import", set()).update(a.name for a in node.names)
    return found


def no_dolab_left(code: str) -> bool:
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dolab"):
            return False
        if isinstance(node, ast.Import) and any(a.name.startswith("dolab") for a in node.names):
            return False
        if isinstance(node, ast.Name) and node.id == "dolab":
            return False
    return True


# ---- the chat room (a module) --------------------------------------------------------------------


def test_chat_export_writes_a_python_workers_project(chat: Lab, tmp_path: Path) -> None:
    result = export(chat, tmp_path / "out")
    out = tmp_path / "out"
    assert sorted(str(f.relative_to(out)) for f in result.files) == [
        ".gitignore", "README.md", "pyproject.toml", "src/entry.py", "wrangler.toml"]
    config = tomllib.loads((out / "wrangler.toml").read_text())
    assert config == {
        "name": "chat",
        "main": "src/entry.py",
        "compatibility_date": "2026-04-10",
        "compatibility_flags": ["python_workers"],
        "durable_objects": {"bindings": [{"name": "CHAT_ROOM", "class_name": "ChatRoom"}]},
        "migrations": [{"tag": "v1", "new_sqlite_classes": ["ChatRoom"]}],
    }
    assert parse_toml((out / "wrangler.toml").read_text()).backends() == {"ChatRoom": "sqlite"}
    pyproject = tomllib.loads((out / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "chat"
    assert pyproject["project"]["dependencies"] == []
    assert pyproject["dependency-groups"]["dev"] == ["workers-py", "workers-runtime-sdk"]
    readme = (out / "README.md").read_text()
    assert "uv run pywrangler deploy" in readme and "uv run pywrangler dev" in readme
    assert f"npx wrangler@{WRANGLER_VERSION} deploy --dry-run" in readme
    assert "`env.CHAT_ROOM` → `ChatRoom` (SQLite-backed)" in readme


def test_chat_entry_imports_workers_and_js_and_nothing_of_dolab(chat: Lab, tmp_path: Path) -> None:
    export(chat, tmp_path)
    code = (tmp_path / "src" / "entry.py").read_text()
    compile(code, "entry.py", "exec")
    assert no_dolab_left(code)
    imports = imports_of(code)
    assert imports["workers"] == {"DurableObject", "Response", "WorkerEntrypoint"}
    assert imports["js"] == {"WebSocketPair"}
    assert imports["urllib.parse"] == {"parse_qs", "urlsplit"}
    tree = ast.parse(code)
    assert {n.name for n in tree.body if isinstance(n, ast.ClassDef)} == {"ChatRoom", "Chat"}
    assert code.rstrip().endswith("Default = Chat")  # Python Workers' default entrypoint
    assert "WebSocketPair.new().object_values()" in code  # already Python Workers' spelling
    assert 'if __name__' not in code


def test_readme_says_what_dolab_changed(chat: Lab, tmp_path: Path) -> None:
    result = export(chat, tmp_path)
    assert result.notes == [
        "`from dolab import DurableObject, Response, WebSocketPair, WorkerEntrypoint` → "
        "`from workers import DurableObject, Response, WorkerEntrypoint` and "
        "`from js import WebSocketPair`",
        "`Default = Chat` added: Python Workers routes requests to the WorkerEntrypoint named "
        "`Default`.",
    ]
    readme = (tmp_path / "README.md").read_text()
    assert all(f"- {note}" in readme for note in result.notes)


# ---- cells: the names %load_ext dolab injected get their imports ---------------------------------

COUNTER = '''
class Counter(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.count = await self.ctx.storage.get("count") or 0

    async def fetch(self, request):
        if request.headers.get("Upgrade") == "websocket":
            client, server = WebSocketPair()
            self.ctx.acceptWebSocket(server)
            self.ctx.setWebSocketAutoResponse(WebSocketRequestResponsePair("ping", "pong"))
            return Response(None, status=101, web_socket=client)
        await scheduler.wait(10)
        self.count += 1
        self.ctx.storage.put("count", self.count)
        return Response.json({"count": self.count, "at": Date.now()})
'''
WORKER = '''
class Router(WorkerEntrypoint):
    async def fetch(self, request):
        reply = await fetch("https://example.com/")
        return await self.env.COUNTER.getByName(json.dumps(reply.status)).fetch(request)
'''


def test_cells_get_the_imports_of_the_names_they_use(tmp_path: Path) -> None:
    lab = Lab(name="counter", path=None)
    names = run_cells(lab, "import json", COUNTER, WORKER)
    lab.bind("COUNTER", names["Counter"])
    lab.worker(names["Router"])
    result = export(lab, tmp_path)
    code = (tmp_path / "src" / "entry.py").read_text()
    compile(code, "entry.py", "exec")
    assert no_dolab_left(code)
    imports = imports_of(code)
    assert imports["workers"] == {"DurableObject", "Response", "WorkerEntrypoint", "fetch"}
    assert imports["js"] == {"Date", "WebSocketPair", "WebSocketRequestResponsePair", "scheduler"}
    assert imports["import"] == {"json"}  # imported by another cell
    assert "client, server = WebSocketPair.new().object_values()" in code
    assert 'WebSocketRequestResponsePair.new("ping", "pong")' in code
    assert code.rstrip().endswith("Default = Router")
    assert "added `from js import Date, WebSocketPair, WebSocketRequestResponsePair, scheduler` " \
        "(names the notebook provided without an import)" in result.notes
    lab.close()


def test_magic_cells_export_through_the_dolab_magic(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    monkeypatch.chdir(tmp_path)
    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    shell.reset(new_session=False)
    shell.extension_manager.loaded.discard("dolab")
    try:
        for cell in ("%load_ext dolab", "%dolab new --memory",
                     "%%durable_object\n" + COUNTER.lstrip("\n"),
                     "%%worker\nimport json\n" + WORKER.lstrip("\n"), "%dolab export out"):
            result = shell.run_cell(cell)
            assert result.success, result.error_in_exec or result.error_before_exec
        code = (tmp_path / "out" / "src" / "entry.py").read_text()
        assert imports_of(code)["js"] == {"Date", "WebSocketPair", "WebSocketRequestResponsePair",
                                          "scheduler"}
        assert no_dolab_left(code) and "%%" not in code
        validate(tmp_path / "out")
    finally:
        shell.user_ns["lab"].close()


def test_kv_backed_bindings_are_created_by_new_classes(tmp_path: Path) -> None:
    lab = Lab(name="mixed", path=None)
    log = "class Log(DurableObject):\n    pass\n"
    names = run_cells(lab, "import json", COUNTER, log, WORKER)
    lab.bind("COUNTER", names["Counter"])
    lab.bind("LOG", names["Log"], storage="kv")
    lab.worker(names["Router"])
    export(lab, tmp_path)
    config = tomllib.loads((tmp_path / "wrangler.toml").read_text())
    assert config["migrations"] == [
        {"tag": "v1", "new_classes": ["Log"], "new_sqlite_classes": ["Counter"]}]
    lab.close()


# ---- refusals ------------------------------------------------------------------------------------

BAD = '''
import dolab.checks
from dolab import Lab

class Bad(DurableObject):
    async def fetch(self, request):
        stub = env.COUNTER.getByName("x")
        try:
            await lab.fetch("http://x/")
        except DurableObjectReset:
            pass
        dolab.checks.check("x")
        return helper()

%dolab status
await lab.settle()
'''


def test_dolab_only_names_are_refused_with_a_list(tmp_path: Path) -> None:
    lab = Lab(path=None)
    names = run_cells(lab, "import json", WORKER)

    class Bad(DurableObject):
        __dolab_source__ = BAD

    lab.bind("BAD", Bad)
    lab.worker(names["Router"])
    with pytest.raises(ExportError) as caught:
        export(lab, tmp_path / "out")
    found = [(p.line, p.name) for p in caught.value.problems]
    # Lines are the notebook cell's: the %%durable_object line is line 1.
    assert found == [(8, "env"), (10, "lab"), (11, "DurableObjectReset"),
                     (13, "dolab.checks.check"), (14, "helper"), (16, "get_ipython"),
                     (17, "await"), (17, "lab")]
    message = str(caught.value)
    assert message.startswith("Cannot export to Cloudflare")
    assert "the cell defining Bad, line 8: env (the notebook's env is the lab's; inside a " \
        "class use self.env)" in message
    assert "line 14: helper (not defined in this cell" in message
    assert not (tmp_path / "out").exists()  # nothing written
    lab.close()


def test_a_module_keeps_its_script_part_out_and_rewrites_dolab_attributes(tmp_path: Path) -> None:
    module = tmp_path / "app.py"
    module.write_text('''\
import dolab
from dolab import Lab, DurableObject as Base


class Echo(Base):
    async def fetch(self, request):
        return dolab.Response(await request.text())


class Default(dolab.WorkerEntrypoint):
    async def fetch(self, request):
        return await self.env.ECHO.getByName("x").fetch(request)


if __name__ == "__main__":
    lab = Lab()
    lab.bind("ECHO", Echo)
''')
    lab = Lab(name="app", path=None)
    bind_defaults(lab, load_module(module), str(module))
    export(lab, tmp_path / "out")
    code = (tmp_path / "out" / "src" / "entry.py").read_text()
    assert no_dolab_left(code) and "Lab" not in code
    assert imports_of(code)["workers"] == {"DurableObject", "Response", "WorkerEntrypoint"}
    assert "from workers import DurableObject as Base" in code
    assert "return Response(await request.text())" in code
    assert "class Default(WorkerEntrypoint):" in code and "Default = " not in code
    assert (tmp_path / "out" / "wrangler.toml").read_text().count("[[durable_objects.bindings]]") \
        == 1
    lab.close()


def test_rewrite_follows_dolab_attributes_and_module_aliases() -> None:
    rewritten = rewrite(Source("""\
import dolab
from dolab import websocket as w


class A(dolab.DurableObject):
    async def fetch(self, request):
        c, s = dolab.WebSocketPair()
        p = w.WebSocketPair().object_values()
        q = dolab.WebSocketPair.new().object_values()
        r = dolab.WebSocketRequestResponsePair("a", "b")
        return dolab.Response.json({"at": dolab.Date.now()})
""", "m.py", "module"))
    assert rewritten.text.lstrip("\n") == """\
class A(DurableObject):
    async def fetch(self, request):
        c, s = WebSocketPair.new().object_values()
        p = WebSocketPair.new().object_values()
        q = WebSocketPair.new().object_values()
        r = WebSocketRequestResponsePair.new("a", "b")
        return Response.json({"at": Date.now()})
"""
    assert rewritten.needed == {"workers": {"DurableObject", "Response"},
                                "js": {"Date", "WebSocketPair", "WebSocketRequestResponsePair"}}


def test_a_lab_without_a_worker_is_refused(tmp_path: Path) -> None:
    lab = Lab(path=None)
    lab.bind("COUNTER", run_cells(lab, COUNTER)["Counter"])
    with pytest.raises(ExportError, match="no Worker"):
        export(lab, tmp_path)
    lab.close()


# ---- dolab's own validation of the written project ----------------------------------------------


def test_validate_reads_the_project_back_with_dolabs_wrangler_validator(chat: Lab,
                                                                         tmp_path: Path) -> None:
    export(chat, tmp_path)
    toml = tmp_path / "wrangler.toml"
    assert validate(tmp_path).bindings[0].class_name == "ChatRoom"
    toml.write_text(toml.read_text().replace('tag = "v1"\n', ""))
    with pytest.raises(ExportError, match=r'migrations\[0\]\.tag: missing required field "tag"'):
        validate(tmp_path)


def test_validate_wants_every_bound_class_in_entry_py(chat: Lab, tmp_path: Path) -> None:
    export(chat, tmp_path)
    entry = tmp_path / "src" / "entry.py"
    entry.write_text(entry.read_text().replace("class ChatRoom(", "class Room("))
    with pytest.raises(ExportError, match="not exported in your entrypoint file: ChatRoom"):
        validate(tmp_path)
    entry.write_text("def broken(:\n")
    with pytest.raises(ExportError, match="invalid syntax"):
        validate(tmp_path)


# ---- Cloudflare's own check ----------------------------------------------------------------------


def test_the_pinned_wrangler_version_is_the_install_scripts() -> None:
    script = (ROOT / "tools" / "install-wrangler.sh").read_text()
    assert re.search(r'^VERSION="([\d.]+)"$', script, re.MULTILINE)[1] == WRANGLER_VERSION  # type: ignore[index]


def wrangler_command() -> list[str]:
    """The installed pinned wrangler, run without network when the sandbox allows it (the
    dry-run must not need Cloudflare's API or Python packages)."""
    local = local_wrangler()
    if local is None:
        pytest.fail(NO_WRANGLER)
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True,
                                  check=False).returncode == 0:
        return [unshare, "-n", str(local)]
    return [str(local)]


@pytest.mark.slow
def test_wrangler_dry_run_accepts_the_chat_export_offline(chat: Lab, tmp_path: Path) -> None:
    export(chat, tmp_path)
    verdict = check_with_wrangler(tmp_path, wrangler_command())
    assert verdict.ok, str(verdict)
    assert verdict.version == WRANGLER_VERSION
    assert re.search(r"env\.CHAT_ROOM \(ChatRoom\)\s+Durable Object", verdict.output)
    assert "--dry-run: exiting now." in verdict.output
    assert str(verdict).startswith(f"wrangler {WRANGLER_VERSION} deploy --dry-run accepts")


@pytest.mark.slow
def test_wrangler_dry_run_reports_binding_and_migration_errors(chat: Lab, tmp_path: Path) -> None:
    export(chat, tmp_path)
    toml = tmp_path / "wrangler.toml"
    good = toml.read_text()
    toml.write_text(good.replace('tag = "v1"\n', "").replace('class_name = "ChatRoom"\n', ""))
    rejected = check_with_wrangler(tmp_path, wrangler_command())
    assert rejected.returncode == 1 and not rejected.ok
    assert '"migrations[0].tag" is a required field.' in rejected.output
    assert 'binding should have a string "class_name" field.' in rejected.output
    assert rejected.errors and "Processing wrangler.toml configuration" in rejected.errors[0]
    toml.write_text(good.split("[[migrations]]")[0])  # a bound class no migration creates
    warned = check_with_wrangler(tmp_path, wrangler_command())
    assert warned.returncode == 0 and not warned.ok  # only a warning to wrangler; not ok to dolab
    assert "no `migrations` for them" in warned.warnings[0]
    toml.write_text(good.replace('compatibility_flags = ["python_workers"]\n', ""))
    assert "The `python_workers` compatibility flag is required to use Python." \
        in check_with_wrangler(tmp_path, wrangler_command()).output


def test_without_node_the_verdict_says_how_to_get_wrangler(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import dolab.export as export_mod

    monkeypatch.setattr(export_mod, "find_wrangler", lambda: None)
    verdict = check_with_wrangler(tmp_path)
    assert not verdict.ok and verdict.returncode is None
    assert "Node.js/npm was not found" in str(verdict)
    assert "tools/install-wrangler.sh" in str(verdict)


def test_worker_entrypoint_base_is_not_a_binding() -> None:
    # bind_defaults binds the module's own DurableObject subclasses only, not imported bases.
    lab = Lab(path=None)
    bind_defaults(lab, load_module(CHAT), str(CHAT))
    assert sorted(lab.bindings) == ["CHAT_ROOM"]
    assert lab.worker_cls is not None and issubclass(lab.worker_cls, WorkerEntrypoint)
    lab.close()
