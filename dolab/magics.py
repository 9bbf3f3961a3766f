"""IPython magics (DESIGN.md §10): ``%load_ext dolab``, ``%%durable_object``, ``%%worker``,
``%%wrangler`` and the ``%dolab`` subcommands.

A thin layer (STYLE.md item 10): each magic parses its line, calls the lab and prints one line per
fact. What is kept here belongs to the notebook, not the runtime: which classes a cell defined,
the cell's source (for tracebacks, ``inspect`` and export), and running lab work to completion
from a synchronous line magic.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import re
import shlex
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from IPython.core.async_helpers import get_asyncio_loop
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

import dolab

from . import trace as trace_mod
from .clock import iso
from .config import ConfigError, default_binding_name, parse_toml
from .errors import DatabaseLockedError, UnsafeDatabaseError
from .lab import DEFAULT_PATH, Lab
from .namespace import DurableObjectStub, NamespaceBinding
from .object import DurableObject, WorkerEntrypoint

T = TypeVar("T")
BACKENDS = {"sqlite": "SQLite-backed", "kv": "KV-backed"}
NO_CLASS = ("This cell defines no {base} subclass, so nothing was bound. Write, e.g.:\n\n"
            "    class {example}({base}):\n        ...\n\n"
            "(%load_ext dolab already imported {base}.)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_HEX_ID = re.compile(r"[0-9a-f]{64}")


def load(ipython: InteractiveShell) -> None:
    """Register the magics and put ``lab``, ``env`` and dolab's public names in the namespace.
    An open lab already there is kept (its file is locked: a second lab could not open it)."""
    magics = DolabMagics(ipython)
    ipython.register_magics(magics)
    current = ipython.user_ns.get("lab")
    magics.install(current if isinstance(current, Lab) and not current.closed else _default())


def _default() -> Lab:
    """The default lab; if another kernel holds its file (two lessons open in class), an
    in-memory lab instead of an error, so that Run All still works."""
    try:
        return Lab()
    except DatabaseLockedError:
        print("Note: .dolab/lab.fs is open in another kernel, so this notebook starts with an "
              "in-memory lab (nothing is kept). %dolab new --name N opens a file of its own.")
        return Lab(path=None)
    except (UnsafeDatabaseError, OSError) as error:
        raise UsageError(f"Could not open the lab: {error}\n(%dolab new --memory opens an "
                         "in-memory lab.)") from None


@magics_class
class DolabMagics(Magics):
    """The magics. They act on the lab named ``lab`` in the user namespace."""

    shell: InteractiveShell

    def install(self, lab: Lab) -> None:
        names = {n: getattr(dolab, n) for n in dolab.__all__ if n != "load_ipython_extension"}
        self.shell.push({**names, "lab": lab, "env": lab.env})  # type: ignore[no-untyped-call]

    def current_lab(self) -> Lab:
        lab = self.shell.user_ns.get("lab")
        if not isinstance(lab, Lab):
            raise UsageError("`lab` is not a dolab Lab any more: %dolab new opens a new one.")
        if lab.closed:
            raise UsageError("The lab is closed: %dolab new opens a new one.")
        return lab

    @cell_magic
    def durable_object(self, line: str, cell: str) -> None:
        """``%%durable_object [BINDING] [--storage kv|sqlite]``: run the cell and bind the
        DurableObject class(es) it defines; rerunning it is a code update."""
        __tracebackhide__ = True  # why: the learner's traceback starts at the cell
        args = DURABLE_OBJECT.parse_args(_split(line))
        lab = self.current_lab()
        classes = run_cell(self.shell, cell, DurableObject)
        if args.binding is not None and len(classes) > 1:
            raise UsageError(f"This cell defines {_names(classes)}: one binding name cannot bind "
                             "several classes. Drop the name, or put each class in its own cell.")
        for cls in classes:
            print(bind(lab, args.binding or default_binding_name(cls.__name__), cls, args.storage))
        show_findings(cell, lab)

    @cell_magic
    def worker(self, line: str, cell: str) -> None:
        """``%%worker``: run the cell and make the WorkerEntrypoint it defines the lab's Worker."""
        __tracebackhide__ = True
        WORKER.parse_args(_split(line))
        lab = self.current_lab()
        classes = run_cell(self.shell, cell, WorkerEntrypoint)
        if len(classes) > 1:
            raise UsageError(f"This cell defines {_names(classes)}: a lab has one Worker.")
        lab.worker(classes[0])
        print(f"{classes[0].__name__} is the Worker: lab.fetch() and %dolab fetch go through it.")
        show_findings(cell, lab)

    @cell_magic
    def wrangler(self, line: str, cell: str) -> None:
        """``%%wrangler``: bindings and migrations from wrangler.toml text; the classes come from
        the notebook's namespace."""
        WRANGLER.parse_args(_split(line))
        lab = self.current_lab()
        try:
            config = parse_toml("\n" + cell)  # why: line numbers count the %%wrangler line too
            for text in apply_config(lab, config, self.shell.user_ns):
                print(text)
        except ConfigError as error:
            raise UsageError(f"wrangler.toml: {error}") from None

    @line_magic
    def dolab(self, line: str) -> Any:
        """``%dolab SUBCOMMAND …`` controls the lab; ``%dolab help`` lists the subcommands."""
        args = PARSER.parse_args(_split(line) or ["help"])
        return args.run(self, args)


# ---- cells -------------------------------------------------------------------------------------


def run_cell(shell: Any, cell: str, base: type) -> list[type]:
    """Run the cell body in the user namespace; return the ``base`` subclasses it defined, each
    keeping its source. The cell is plain Python (it is what export writes), compiled as is: a
    blank first line stands for the magic line, so the line numbers in tracebacks, syntax errors
    and findings are the notebook cell's. Errors propagate: the cell fails."""
    __tracebackhide__ = True
    source = "\n" + cell
    filename = shell.compile.cache(source, max(shell.execution_count - 1, 0), raw_code=source)
    code = shell.compile(source, filename, "exec")  # a SyntaxError names the notebook line
    before = dict(shell.user_ns)
    exec(code, shell.user_global_ns, shell.user_ns)  # noqa: S102
    defined = [c for c in _class_statements(source, shell.user_ns)
               if before.get(c.__name__) is not c]
    classes = [c for c in defined if issubclass(c, base) and c is not base]
    if not classes:
        raise UsageError(_no_class(base, defined))
    for cls in classes:
        cls.__dolab_source__ = cell  # type: ignore[attr-defined]  # what export writes
        cls.__dolab_filename__ = filename  # type: ignore[attr-defined]  # linecache has its lines
    return classes


def _class_statements(source: str, namespace: dict[str, Any]) -> list[type]:
    names = dict.fromkeys(n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef))
    return [namespace[n] for n in names if isinstance(namespace.get(n), type)]


def _no_class(base: type, defined: list[type]) -> str:
    text = NO_CLASS.format(base=base.__name__,
                           example="Counter" if base is DurableObject else "Worker")
    other, magic = ((WorkerEntrypoint, "%%worker") if base is DurableObject
                    else (DurableObject, "%%durable_object"))
    found = [c.__name__ for c in defined if issubclass(c, other)]
    return text + (f"\n{', '.join(found)} is a {other.__name__}: use {magic}." if found else "")


def _names(classes: list[type]) -> str:
    return f"{len(classes)} classes ({', '.join(c.__name__ for c in classes)})"


def bind(lab: Lab, name: str, cls: type, storage: str) -> str:
    """``lab.bind``, and say what happened: a new binding, or a code update and how many live
    instances it reset (counted from the trace's reset events)."""
    old = lab.bindings.get(name)
    with _resets(lab) as resets:
        lab.bind(name, cls, storage)
    return _bound(name, None if old is None else old.cls.__name__, lab.bindings[name],
                  resets[name])


def _bound(name: str, old_class: str | None, binding: NamespaceBinding, resets: int) -> str:
    cls = binding.cls.__name__
    if old_class == cls:
        reset = "no live instance to reset" if resets == 0 else \
            f"{resets} live instance{'s' if resets != 1 else ''} reset"
        return f"Updated {cls} (env.{name}): {reset}; storage and alarms kept."
    replacing = f", replacing {old_class}" if old_class else ""
    return f"Bound {cls} as env.{name} ({BACKENDS[binding.backend]}{replacing})."


@contextmanager
def _resets(lab: Lab) -> Iterator[Counter[str]]:
    counts: Counter[str] = Counter()

    def listen(event: trace_mod.Event) -> None:
        if event.kind == trace_mod.RESET:
            counts[event.obj.partition(":")[0]] += 1  # labels are "BINDING:name"

    stop = lab.trace.subscribe(listen)
    try:
        yield counts
    finally:
        stop()


def apply_config(lab: Lab, config: Any, names: dict[str, Any]) -> list[str]:
    """``lab.apply_config`` with one line per binding, and one for the Worker if it changed."""
    if config.name and config.name != lab.name and not lab.bindings:
        lab.name = config.name  # why: ids derive from the Worker's name, as under wrangler dev
    if config.compatibility_date:
        lab.compatibility_date = config.compatibility_date
    before = {name: b.cls.__name__ for name, b in lab.bindings.items()}
    worker = lab.worker_cls
    with _resets(lab) as resets:
        lab.apply_config(config, names)
    lines = [_bound(b.name, before.get(b.name), lab.bindings[b.name], resets[b.name])
             for b in config.bindings]
    if lab.worker_cls is not None and lab.worker_cls is not worker:
        lines.append(f"{lab.worker_cls.__name__} is the Worker.")
    if config.name and config.name != lab.name:
        lines.append(f"Note: ids derive from the lab's name {lab.name!r}, not {config.name!r}; "
                     "run %%wrangler before binding anything, or %dolab new --config FILE.")
    return lines


def show_findings(cell: str, lab: Lab) -> None:
    """Print the pitfall checker's findings (each line names its code); silent without it."""
    try:
        from .checks import check
    except ImportError:  # the checker is optional at runtime
        return
    for finding in check("\n" + cell, bindings=dir(lab.env)):  # namespaces and buckets
        print(finding)


# ---- %dolab subcommands -------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Argument errors become a UsageError that shows the usage line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\n{self.format_usage().strip()}")


def _duration(text: str) -> float:
    """``500ms``, ``10s``, ``2m``, ``1h`` or plain seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: write 500ms, 10s, 2m, 1h or plain seconds")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError:  # an unbalanced quote, e.g. in `%dolab explain can't …`
        return line.split()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run lab work to completion from a synchronous magic. In a kernel the cell already runs in
    the loop, so the loop is made re-entrant with nest-asyncio2 (DESIGN.md §4); in a plain shell
    IPython's own loop runs it (the one its top-level ``await`` uses, so lab timers live there)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = get_asyncio_loop()  # type: ignore[no-untyped-call]
        return loop.run_until_complete(coro)  # type: ignore[no-any-return]
    import nest_asyncio2

    nest_asyncio2.apply(loop)
    return loop.run_until_complete(coro)


def stub_of(lab: Lab, binding: str, name: str) -> DurableObjectStub:
    """The stub for ``name`` (or a 64-hex id) in ``env.BINDING``."""
    if binding not in lab.env:
        bound = ", ".join(sorted(lab.bindings)) or "none yet (use a %%durable_object cell)"
        raise UsageError(f"No binding named {binding!r}. Bound: {bound}.")
    namespace = getattr(lab.env, binding)
    if _HEX_ID.fullmatch(name):
        return namespace.get(namespace.idFromString(name))  # type: ignore[no-any-return]
    return namespace.getByName(name)  # type: ignore[no-any-return]


def _status(m: DolabMagics, a: argparse.Namespace) -> None:
    lab = m.current_lab()
    kind = "virtual" if lab.clock.virtual else "real"
    print(f"Lab {lab.name!r} at {lab.path or 'memory'}, {kind} clock, lab time {iso(lab.now())}")
    for name, binding in lab.bindings.items():
        live = sum(h.instance is not None for h in binding.hosts.values())
        print(f"  env.{name}: {binding.cls.__name__} ({BACKENDS[binding.backend]}), "
              f"{live} live, {len(lab.ids(name))} stored")
    if not lab.bindings:
        print("  No bindings yet: define a class in a %%durable_object cell.")
    worker = lab.worker_cls
    print(f"  Worker: {worker.__name__ if worker else 'none (define one in a %%worker cell)'}")


def _trace(m: DolabMagics, a: argparse.Namespace) -> None:
    events = list(m.current_lab().trace)[-a.n:] if a.n > 0 else []
    for e in events:
        detail = "".join(f" {k}={v!r}" for k, v in e.detail.items())
        print(f"{e.seq:>5} {iso(e.time)} {e.obj} {e.request or '-'} {e.kind}{detail}")
    if not events:
        print("No events in the trace yet.")


def _evict(m: DolabMagics, a: argparse.Namespace) -> None:
    lab = m.current_lab()
    run_sync(lab.evict(stub_of(lab, a.binding, a.name)))
    print(f"Evicted {a.binding}:{a.name}: memory dropped, storage and alarms kept.")


def _advance(m: DolabMagics, a: argparse.Namespace) -> None:
    lab = m.current_lab()
    run_sync(lab.advance(a.duration))
    print(f"Advanced {a.duration:g} s; lab time is {iso(lab.now())}.")


def _fetch(m: DolabMagics, a: argparse.Namespace) -> None:
    lab = m.current_lab()
    headers = dict(a.header) if a.header else None
    url = f"http://localhost{a.url}" if a.url.startswith("/") else a.url
    response = run_sync(lab.fetch(url, method=a.method, headers=headers, body=a.data))
    print(f"{response.status} {response.status_text or _phrase(response.status)}".rstrip())
    body = run_sync(response.text())
    if body:
        print(body)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _storage(m: DolabMagics, a: argparse.Namespace) -> dict[str, Any]:
    lab = m.current_lab()
    return lab.storage_of(stub_of(lab, a.binding, a.name))


def _history(m: DolabMagics, a: argparse.Namespace) -> list[Any]:
    lab = m.current_lab()
    return lab.history(stub_of(lab, a.binding, a.name))


def _export(m: DolabMagics, a: argparse.Namespace) -> Any:
    result = m.current_lab().export(a.directory)
    print(f"Exported a Cloudflare Python Workers project to {a.directory}.")
    return result


def _serve(m: DolabMagics, a: argparse.Namespace) -> Any:
    server = run_sync(m.current_lab().serve(a.port))
    print(f"Serving the Worker on http://127.0.0.1:{server.port}/ while the kernel runs "
          "(keep the result: server = %dolab serve; stop: await server.close()).")
    return server


def _new(m: DolabMagics, a: argparse.Namespace) -> None:
    old = m.shell.user_ns.get("lab")
    if isinstance(old, Lab):
        old.close()  # why: the file is locked while open
    path = None if a.memory else DEFAULT_PATH
    if a.fresh and path is not None:
        for suffix in ("", ".index", ".lock", ".tmp", ".old"):
            Path(path + suffix).unlink(missing_ok=True)
    clock = "virtual" if a.virtual else "real"
    lab = _open(lambda: Lab(name=a.name, path=path, clock=clock, config=a.config,
                            module=m.shell.user_ns if a.config else None))
    m.install(lab)
    print(f"New lab: {lab!r}")


def _open(make: Callable[[], Lab]) -> Lab:
    try:
        return make()
    except (DatabaseLockedError, UnsafeDatabaseError, ConfigError, OSError) as error:
        raise UsageError(f"Could not open the lab: {error}\n(%dolab new --memory opens an "
                         "in-memory lab.)") from None


def _explain(m: DolabMagics, a: argparse.Namespace) -> None:
    from .checks import explain

    print(explain(" ".join(a.text)))


def _check(m: DolabMagics, a: argparse.Namespace) -> None:
    from .checks import check_path

    for path in a.paths:
        try:
            findings = check_path(path, bindings=m.current_lab().bindings)
        except (OSError, SyntaxError) as error:
            raise UsageError(f"Cannot check {path}: {error}") from None
        for finding in findings:
            print(f"{path}: {finding}")
        print(f"{path}: {len(findings)} finding{'s' if len(findings) != 1 else ''}")


def _help(m: DolabMagics, a: argparse.Namespace) -> None:
    print(PARSER.format_help())


def _parser() -> _Parser:
    parser = _Parser(prog="%dolab", add_help=False, description=(
        "Cell magics: %%durable_object [BINDING] [--storage kv|sqlite], %%worker, %%wrangler."))
    sub = parser.add_subparsers(metavar="SUBCOMMAND", required=True)

    def add(name: str, run: Callable[..., Any], text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=text, description=text, add_help=False)
        command.set_defaults(run=run)
        return command

    add("status", _status, "the lab, its bindings and the Worker")
    add("trace", _trace, "the last N trace events").add_argument("n", nargs="?", type=int,
                                                                   default=20, metavar="N")
    _object(add("evict", _evict, "drop an object's instance (storage and alarms stay)"))
    add("advance", _advance, "move lab time forward, running what falls due").add_argument(
        "duration", type=_duration, metavar="DURATION", help="500ms, 10s, 2m, 1h or seconds")
    fetch = add("fetch", _fetch, "send a request through the Worker")
    fetch.add_argument("url", metavar="URL", help="absolute, or a path: /inc is http://localhost/inc")
    fetch.add_argument("-X", "--method", default="GET")
    fetch.add_argument("-H", "--header", action="append", type=_header, metavar="'NAME: VALUE'")
    fetch.add_argument("-d", "--data", help="request body")
    _object(add("storage", _storage, "an object's committed storage"))
    _object(add("history", _history, "an object's committed versions, oldest first"))
    add("export", _export, "write a Cloudflare Python Workers project").add_argument(
        "directory", metavar="DIR")
    add("serve", _serve, "serve the Worker on 127.0.0.1").add_argument(
        "port", nargs="?", type=int, default=8787, metavar="PORT")
    new = add("new", _new, "replace the lab (the old one is closed)")
    new.add_argument("--memory", action="store_true", help="in memory, not .dolab/lab.fs")
    new.add_argument("--virtual", action="store_true", help="the deterministic virtual clock")
    new.add_argument("--fresh", action="store_true", help="delete .dolab/lab.fs first")
    new.add_argument("--name", default="dolab", metavar="N", help="the Worker's name")
    new.add_argument("--config", metavar="FILE", help="a wrangler.toml/.jsonc to apply")
    add("explain", _explain, "explain a Durable Object error message").add_argument(
        "text", nargs="+", metavar="TEXT")
    add("check", _check, "run the pitfall checker on files").add_argument(
        "paths", nargs="+", metavar="FILE")
    add("help", _help, "this help")
    return parser


def _object(command: argparse.ArgumentParser) -> None:
    command.add_argument("binding", metavar="BINDING")
    command.add_argument("name", metavar="NAME", help="the object's name (or 64-hex id)")


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not a header: write 'Name: value'")
    return name.strip(), value.strip()


def _binding(text: str) -> str:
    if not text.isidentifier():
        raise argparse.ArgumentTypeError(
            f"{text!r} cannot name a binding: use letters, digits and _ (e.g. COUNTER)")
    return text


def _durable_object_parser() -> _Parser:
    parser = _Parser(prog="%%durable_object", add_help=False)
    parser.add_argument("binding", nargs="?", type=_binding, metavar="BINDING",
                        help="binding name (default: the class name in UPPER_SNAKE_CASE)")
    parser.add_argument("--storage", choices=("sqlite", "kv"), default="sqlite",
                        help="sqlite (new_sqlite_classes, the default) or kv (new_classes)")
    return parser


PARSER = _parser()
DURABLE_OBJECT = _durable_object_parser()
WORKER = _Parser(prog="%%worker", add_help=False)
WRANGLER = _Parser(prog="%%wrangler", add_help=False)
