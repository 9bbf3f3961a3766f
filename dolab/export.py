"""Export a lab as a Cloudflare Python Workers project (DESIGN.md §12, spec §10–§11).

``export(lab, directory)`` writes::

    directory/
      src/entry.py     the bound classes and the Worker, from their cell or module source
      wrangler.toml    name, main, compatibility_date, python_workers, bindings, migrations
      pyproject.toml   for pywrangler (``uv run pywrangler dev|deploy``)
      README.md        the deploy commands, the bindings, what dolab changed
      .gitignore

The source of a class is its ``%%durable_object``/``%%worker`` cell (``__dolab_source__``), else
the module file that defines it, else the class alone. Imports are *rewritten, and added*:

- ``from dolab import …`` becomes ``from workers import …`` (``DurableObject``,
  ``WorkerEntrypoint``, ``Request``, ``Response``, ``Headers``, ``fetch``) and ``from js import …``
  (``Date``, ``scheduler``, ``WebSocketPair``, ``WebSocketRequestResponsePair``); ``dolab.X`` in
  code becomes ``X``.
- Cells use the names ``%load_ext dolab`` injected without importing them, so the names a
  source uses but never binds (found with :mod:`symtable`) get their import at the top.
- JavaScript classes are constructed with ``.new`` in Python Workers:
  ``WebSocketPair()`` becomes ``WebSocketPair.new().object_values()`` and
  ``WebSocketRequestResponsePair(a, b)`` becomes ``WebSocketRequestResponsePair.new(a, b)``.
- Python Workers' default entrypoint is the class named ``Default``: ``Default = MyWorker`` is
  appended when the Worker has another name.
- A module's ``if __name__ == "__main__":`` block (its script part) is left out.

Code that uses what exists only in dolab or the notebook (``lab``, the notebook's ``env``,
``Lab``, dolab's error classes, ``dolab.checks``…, magics, top-level ``await``) is refused with
an :class:`ExportError` that lists every use.

The written project is checked: ``wrangler.toml`` is read back with :mod:`dolab.config`'s parser
and validator (spec §10.2), ``src/entry.py`` must compile and define every bound class. With
``check=True`` Cloudflare's own tool checks it too: ``wrangler deploy --dry-run`` (see
:func:`check_with_wrangler`).
"""

from __future__ import annotations

import ast
import builtins
import importlib.metadata
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import symtable
import sys
import tempfile
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

from .config import (
    Binding,
    ConfigError,
    Migration,
    WranglerConfig,
    check_module_exports,
    parse_toml,
    to_toml,
)

if TYPE_CHECKING:
    from .lab import Lab

# Cloudflare's wrangler, pinned: the last release that runs on Node.js 20 (4.87.0 needs Node 22).
# tools/install-wrangler.sh installs this version into .cache/wrangler.
WRANGLER_VERSION = "4.86.0"
MAIN = "src/entry.py"
PYTHON_WORKERS = "python_workers"

# Where each platform name comes from in Python Workers (spec §11.1, workers-py's __init__.py).
PLATFORM = {
    "DurableObject": "workers",
    "WorkerEntrypoint": "workers",
    "Request": "workers",
    "Response": "workers",
    "Headers": "workers",
    "fetch": "workers",
    "DurableObjectAbort": "workers.entrypoints",
    "Date": "js",
    "scheduler": "js",
    "WebSocketPair": "js",
    "WebSocketRequestResponsePair": "js",
}
# JavaScript classes: Pyodide constructs them with ``.new(...)``.
JS_CONSTRUCTORS = frozenset({"WebSocketPair", "WebSocketRequestResponsePair"})
IMPORT_ORDER = ("workers", "workers.entrypoints", "js")

# Why a name cannot go to Cloudflare.
LAB_ONLY = "the notebook's lab: it exists only in dolab"
ENV_ONLY = "the notebook's env is the lab's; inside a class use self.env"
RUNTIME_ONLY = "dolab's local runtime"
ERROR_CLASS = ("dolab's error class; on Cloudflare, runtime errors reach Python as JavaScript "
               "errors (pyodide.ffi.JsException) with the same message")
MODULE_ONLY = "dolab's own module"
MAGIC = "an IPython magic or shell command (%… or !…)"
TOP_LEVEL_AWAIT = "top-level await runs only in a notebook"
UNDEFINED = "not defined in {where}: define or import it there"
DOLAB_ONLY_REASONS = {
    "lab": LAB_ONLY,
    "env": ENV_ONLY,
    "Lab": RUNTIME_ONLY,
    "load_ipython_extension": RUNTIME_ONLY,
    "get_ipython": MAGIC,
    "DataCloneError": ERROR_CLASS,
    "DOMException": ERROR_CLASS,
    "DurableObjectError": ERROR_CLASS,
    "DurableObjectOverloaded": ERROR_CLASS,
    "DurableObjectReset": ERROR_CLASS,
    "RangeError": ERROR_CLASS,
}
REFUSED = (
    "Cannot export to Cloudflare: the exported code uses what exists only in dolab or the "
    "notebook:\n{lines}\nMove that code out of the exported cells (into another cell) or "
    "replace it; the classes themselves must only use Cloudflare's names."
)
NO_WORKER = (
    "Cannot export: the lab has no Worker, so nothing on Cloudflare would route requests to the "
    "Durable Objects. Define a WorkerEntrypoint subclass (a %%worker cell, or lab.worker(cls))."
)
NO_SOURCE = (
    "Cannot export {cls}: its source code is not available. Define it in a %%durable_object or "
    "%%worker cell, or in a module file."
)
CLASS_CLASH = (
    "Cannot export: two bound classes are both named {name} (a Worker module has one namespace)."
)
INVALID_PROJECT = "dolab wrote an invalid project in {directory}: {detail}"
NO_NODE = (
    "Cannot run wrangler: Node.js/npm was not found. Install Node.js 20.3 or newer, then run "
    "`bash tools/install-wrangler.sh` (it installs wrangler {version} into .cache/wrangler)."
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_MAIN_GUARD = ("__name__", "__main__")


# ---- results and errors --------------------------------------------------------------------------


class Problem(NamedTuple):
    """One use of a dolab-only name: where (a cell or file), the line, the name, why."""

    where: str
    line: int
    name: str
    reason: str

    def __str__(self) -> str:
        return f"  {self.where}, line {self.line}: {self.name} ({self.reason})"


class ExportError(ValueError):
    """The lab cannot be exported as it is; ``problems`` lists the offending uses, if any."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


@dataclass
class WranglerVerdict:
    """What ``wrangler deploy --dry-run`` said about a project."""

    returncode: int | None
    output: str
    command: list[str]
    version: str | None = None
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Accepted, with no warning (a missing migration is only a warning to wrangler)."""
        return self.returncode == 0 and not self.warnings and not self.errors

    def __str__(self) -> str:
        tool = f"wrangler {self.version}" if self.version else "wrangler"
        if self.returncode is None:
            return "\n".join(self.errors)
        if self.ok:
            return f"{tool} deploy --dry-run accepts the project.\n{self.output.strip()}"
        verdict = "accepts, with warnings," if self.returncode == 0 else "rejects"
        return f"{tool} deploy --dry-run {verdict} the project:\n{self.output.strip()}"


@dataclass
class Export:
    """What ``lab.export(directory)`` wrote."""

    directory: Path
    files: list[Path]
    config: WranglerConfig
    notes: list[str]
    verdict: WranglerVerdict | None = None

    def __repr__(self) -> str:
        names = ", ".join(str(f.relative_to(self.directory)) for f in self.files)
        return f"<Export of {self.config.name!r} to {self.directory}: {names}>"


# ---- the export ---------------------------------------------------------------------------------


def export(lab: Lab, directory: str | os.PathLike[str], *, name: str | None = None,
           config: WranglerConfig | None = None, check: bool = False) -> Export:
    """Write the lab's bound classes and Worker as a Python Workers project in ``directory``.

    ``name`` overrides the Worker's name (default: the lab's); ``config`` is a wrangler
    configuration to keep (its bindings and migrations), as ``dolab export MODULE`` passes the
    module's wrangler.toml; ``check=True`` also runs ``wrangler deploy --dry-run``
    (:attr:`Export.verdict`). Raises :class:`ExportError` for code that cannot go to Cloudflare.
    """
    if lab.worker_cls is None:
        raise ExportError(NO_WORKER)
    _check_class_names(lab)
    entry, notes, dependencies = entry_py(lab)
    wrangler = wrangler_config(lab, name, config)
    root = Path(directory)
    files = _write(root, {
        MAIN: entry,
        "wrangler.toml": to_toml(wrangler),
        "pyproject.toml": pyproject_toml(wrangler.name or lab.name, dependencies),
        "README.md": readme(wrangler, lab, notes),
        ".gitignore": ".wrangler/\npython_modules/\n.venv/\ndist/\n",
    })
    validate(root)
    verdict = check_with_wrangler(root) if check else None
    return Export(root, files, wrangler, notes, verdict)


def _check_class_names(lab: Lab) -> None:
    classes: dict[str, type] = {}
    for cls in [b.cls for b in lab.bindings.values()] + [lab.worker_cls]:
        assert cls is not None
        if classes.setdefault(cls.__name__, cls) is not cls:
            raise ExportError(CLASS_CLASH.format(name=cls.__name__))


def _write(root: Path, contents: dict[str, str]) -> list[Path]:
    files = []
    for relative, text in contents.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        files.append(path)
    return files


# ---- wrangler.toml, pyproject.toml, README -------------------------------------------------------


def wrangler_config(lab: Lab, name: str | None = None,
                    config: WranglerConfig | None = None) -> WranglerConfig:
    """The project's wrangler configuration: ``config``'s bindings and migrations when given, else
    one binding per lab binding and one migration ``v1`` creating each class with its backend."""
    flags = tuple(config.compatibility_flags) if config is not None else ()
    flags = flags if PYTHON_WORKERS in flags else (*flags, PYTHON_WORKERS)
    base = config if config is not None else _generated(lab)
    return WranglerConfig(
        name=name or (config.name if config is not None else None) or lab.name,
        main=MAIN,
        compatibility_date=(config.compatibility_date if config is not None else None)
        or lab.compatibility_date,
        compatibility_flags=flags,
        bindings=base.bindings,
        migrations=base.migrations,
        exports=base.exports,
    )


def _generated(lab: Lab) -> WranglerConfig:
    bindings = tuple(Binding(b.name, b.cls.__name__) for b in lab.bindings.values())
    backends = {b.cls.__name__: b.backend for b in lab.bindings.values()}
    sqlite = tuple(c for c, backend in backends.items() if backend == "sqlite")
    kv = tuple(c for c, backend in backends.items() if backend == "kv")
    migrations = (Migration("v1", new_classes=kv, new_sqlite_classes=sqlite),) if backends else ()
    return WranglerConfig(bindings=bindings, migrations=migrations)


def pyproject_toml(name: str, dependencies: Iterable[str] = ()) -> str:
    """A pyproject.toml for pywrangler, as Cloudflare's python-workers-examples write it."""
    deps = "".join(f'    "{d}",\n' for d in dependencies)
    return (
        "[project]\n"
        f'name = "{name}"\n'
        'version = "0.1.0"\n'
        'description = "Durable Objects exported from a dolab notebook"\n'
        'requires-python = ">=3.12"\n'
        f"dependencies = [\n{deps}]\n"
        "\n"
        "[dependency-groups]\n"
        'dev = [\n    "workers-py",\n    "workers-runtime-sdk",\n]\n'
    )


def readme(config: WranglerConfig, lab: Lab, notes: list[str]) -> str:
    """The project's README: the deploy commands, the bindings, and what dolab changed."""
    backends = config.backends()
    bindings = "\n".join(
        f"- `env.{b.name}` → `{b.class_name}` "
        f"({'SQLite' if backends.get(b.class_name) == 'sqlite' else 'KV'}-backed)"
        for b in config.bindings) or "- (none)"
    changes = "\n".join(f"- {note}" for note in notes) or "- nothing"
    return README.format(name=config.name, worker=lab.worker_cls.__name__ if lab.worker_cls
                         else "?", bindings=bindings, changes=changes, version=WRANGLER_VERSION,
                         main=MAIN)


README = """\
# {name}

A Cloudflare Python Workers project exported by dolab from a lab: the Worker `{worker}` and
its Durable Objects, in `{main}`.

## Run and deploy

Python Workers are built and deployed with `pywrangler`, run through
[uv](https://docs.astral.sh/uv/):

```sh
uv run pywrangler dev       # runs the Worker locally with workerd on http://localhost:8787
uv run pywrangler deploy    # deploys to your Cloudflare account (asks you to log in once)
```

To check the configuration without an account (Node.js 20.3 or newer):

```sh
npx wrangler@{version} deploy --dry-run --outdir dist
```

## Bindings

{bindings}

`wrangler.toml` declares them, with the migration that creates each class. Storage, alarms and
WebSockets start empty on Cloudflare: nothing of the lab's data is exported.

## What dolab changed in the code

{changes}
"""


# ---- src/entry.py -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """The code a class came from. ``kind``: ``"cell"`` (names injected by ``%load_ext dolab``;
    line numbers are the notebook cell's), ``"module"`` (a file) or ``"class"`` (the class
    alone)."""

    text: str
    origin: str
    kind: str
    namespace: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class Rewritten:
    """One source after rewriting: the code, the imports it needs at the top, what changed."""

    text: str
    needed: dict[str, set[str]] = field(default_factory=dict)
    modules: dict[str, str] = field(default_factory=dict)   # local name -> module imported
    notes: list[str] = field(default_factory=list)
    future: list[str] = field(default_factory=list)


def entry_py(lab: Lab) -> tuple[str, list[str], list[str]]:
    """``src/entry.py`` for the lab, the notes for the README, and third-party dependencies."""
    rewritten, problems = [], []
    found = sources(lab)
    for source in found:
        try:
            rewritten.append(rewrite(source))
        except ExportError as error:
            problems += error.problems
    if problems:
        raise ExportError(REFUSED.format(lines="\n".join(map(str, problems))), problems)
    text, notes = _assemble(lab, found, rewritten)
    return text, notes, third_party(text)


def sources(lab: Lab) -> list[Source]:
    """The sources of the bound classes and the Worker, each once, in binding order."""
    found: dict[str, Source] = {}
    for cls in [b.cls for b in lab.bindings.values()] + [lab.worker_cls]:
        if cls is not None:
            source = source_of(cls)
            found.setdefault(source.text, source)
    return list(found.values())


def source_of(cls: type) -> Source:
    """A class's cell, else its module file (when it defines the class at top level), else the
    class's own source."""
    cell = getattr(cls, "__dolab_source__", None)
    if isinstance(cell, str):
        return Source(cell, f"the cell defining {cls.__name__}", "cell", _namespace_of(cls))
    path = getattr(sys.modules.get(cls.__module__), "__file__", None)
    if path and path.endswith(".py") and os.path.isfile(path):
        text = Path(path).read_text(encoding="utf-8")
        if cls.__name__ in _top_level_classes(text):
            return Source(text, os.path.basename(path), "module")
    try:
        return Source(textwrap.dedent(inspect.getsource(cls)), f"the class {cls.__name__}",
                      "class", _namespace_of(cls))
    except (OSError, TypeError):
        raise ExportError(NO_SOURCE.format(cls=cls.__name__)) from None


def _namespace_of(cls: type) -> dict[str, Any]:
    """The globals the class's methods run with (a notebook's namespace, for a cell)."""
    for value in vars(cls).values():
        found = getattr(value, "__globals__", None)
        if isinstance(found, dict):
            return found
    return {}


def _top_level_classes(text: str) -> set[str]:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return set()
    return {node.name for node in tree.body if isinstance(node, ast.ClassDef)}


def _assemble(lab: Lab, found: list[Source], parts: list[Rewritten]) -> tuple[str, list[str]]:
    needed: dict[str, set[str]] = {}
    notes: list[str] = []
    modules: dict[str, str] = {}
    for part in parts:
        for module, names in part.needed.items():
            needed.setdefault(module, set()).update(names)
        modules.update(part.modules)
        notes += [n for n in part.notes if n not in notes]
    origins = "; ".join(s.origin for s in found)
    head = [f"# A Cloudflare Python Workers entry point, exported by dolab from: {origins}."]
    future = sorted({f for part in parts for f in part.future})
    head += [f"from __future__ import {', '.join(future)}"] if future else []
    head += [f"import {m}" if m == name else f"import {m} as {name}"
             for name, m in sorted(modules.items())]
    head += [f"from {m} import {', '.join(sorted(needed[m]))}" for m in IMPORT_ORDER
             if needed.get(m)]
    body = [part.text.strip("\n") for part in parts]
    text = "\n".join(head) + "\n\n\n" + "\n\n\n".join(body) + "\n"
    worker = lab.worker_cls.__name__ if lab.worker_cls is not None else "Default"
    if worker != "Default":
        text += ("\n\n# Python Workers' default entrypoint is the WorkerEntrypoint named Default.\n"
                 f"Default = {worker}\n")
        notes.append(f"`Default = {worker}` added: Python Workers routes requests to the "
                     "WorkerEntrypoint named `Default`.")
    for module in IMPORT_ORDER:
        if needed.get(module):
            notes.append(f"added `from {module} import {', '.join(sorted(needed[module]))}` "
                         "(names the notebook provided without an import)")
    return text, notes


def third_party(text: str) -> list[str]:
    """Distributions for the non-standard modules the code imports (pyproject dependencies)."""
    known = importlib.metadata.packages_distributions()
    found: list[str] = []
    for top in _imported_modules(ast.parse(text)):
        if top in sys.stdlib_module_names or top in ("workers", "js", "pyodide") \
                or top.startswith("_"):
            continue
        dist = (known.get(top) or [top])[0]
        if dist not in found:
            found.append(dist)
    return found


def _imported_modules(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


# ---- rewriting one source -----------------------------------------------------------------------


def rewrite(source: Source) -> Rewritten:
    """Rewrite ``source`` for Python Workers (see the module docstring); raise
    :class:`ExportError` listing every use of a dolab-only name."""
    return _Rewriter(source).run()


class _Edit(NamedTuple):
    start: int
    end: int
    text: str


class _Rewriter:
    """One pass over one source: collects text edits (by UTF-8 offset), the imports the code
    needs at the top, the notes for the README and the problems."""

    def __init__(self, source: Source) -> None:
        self.source = source
        # Cells are numbered as in the notebook: the magic line is line 1 (magics.run_cell too).
        prefix = "\n" if source.kind == "cell" else ""
        self.text = _without_main_guard(prefix + _python(source.text), source.kind)
        self.tree = ast.parse(self.text)
        self.data = self.text.encode("utf-8")
        self.starts = _line_starts(self.data)
        self.parents = {child: node for node in ast.walk(self.tree)
                        for child in ast.iter_child_nodes(node)}
        self.edits: list[_Edit] = []
        self.result = Rewritten("")
        self.problems: list[Problem] = []
        self.platform: dict[str, str] = {}     # local name -> platform name (from dolab imports)
        self.modules: dict[str, str] = {}      # local name -> dolab module path
        self.only: dict[str, str] = {}         # local name -> dolab-only dotted name
        self.star = False
        self.free: set[str] = set()
        self.handled: set[ast.AST] = set()

    def run(self) -> Rewritten:
        self._imports()
        self.free = _free_names(self.text)
        self._check_free_names()
        self._calls()
        self._chains()
        self._top_level_await()
        if self.problems:
            self.problems.sort(key=lambda p: (p.line, p.name))
            raise ExportError(REFUSED.format(lines="\n".join(map(str, self.problems))),
                              self.problems)
        self.result.text = self._apply()
        return self.result

    # ---- positions and edits -------------------------------------------------------------------

    def _offset(self, line: int, column: int) -> int:
        return self.starts[line - 1] + column

    def _span(self, node: ast.AST) -> tuple[int, int]:
        start = self._offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self._offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return start, end

    def _replace(self, node: ast.AST, text: str) -> None:
        self.edits.append(_Edit(*self._span(node), text))

    def _apply(self) -> str:
        data = self.data
        for edit in sorted(self.edits, key=lambda e: e.start, reverse=True):
            data = data[:edit.start] + edit.text.encode("utf-8") + data[edit.end:]
        return data.decode("utf-8")

    def _problem(self, node: ast.AST | None, name: str, reason: str) -> None:
        line = getattr(node, "lineno", 1)
        problem = Problem(self.source.origin, line, name, reason)
        if problem not in self.problems:
            self.problems.append(problem)

    def _need(self, platform: str) -> None:
        self.result.needed.setdefault(PLATFORM[platform], set()).add(platform)

    def _note(self, text: str) -> None:
        if text not in self.result.notes:
            self.result.notes.append(text)

    # ---- imports of dolab ------------------------------------------------------------------------

    def _imports(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                self.result.future += [alias.name for alias in node.names]
                self._remove_statement(node)
            elif isinstance(node, ast.Import) and any(_is_dolab(a.name) for a in node.names):
                self._import(node)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 \
                    and _is_dolab(node.module or ""):
                self._import_from(node)

    def _import(self, node: ast.Import) -> None:
        kept = []
        for alias in node.names:
            if not _is_dolab(alias.name):
                kept.append(_alias_text(alias))
            elif alias.asname:
                self.modules[alias.asname] = alias.name
            else:
                self.modules["dolab"] = "dolab"
        self._rewrite_statement(node, [f"import {', '.join(kept)}"] if kept else [])

    def _import_from(self, node: ast.ImportFrom) -> None:
        module = node.module or "dolab"
        groups: dict[str, list[str]] = {}
        for alias in node.names:
            local = alias.asname or alias.name
            if alias.name == "*":
                self.star = True
            elif alias.name in PLATFORM:
                self.platform[local] = alias.name
                groups.setdefault(PLATFORM[alias.name], []).append(_alias_text(alias))
            elif _is_dolab_module(f"{module}.{alias.name}"):
                self.modules[local] = f"{module}.{alias.name}"
            else:
                self.only[local] = f"{module}.{alias.name}"
        lines = [f"from {m} import {', '.join(groups[m])}" for m in IMPORT_ORDER if m in groups]
        self._rewrite_statement(node, lines)
        if lines:
            original = ast.get_source_segment(self.text, node) or ""
            self._note(f"`{' '.join(original.split())}` → `{'` and `'.join(lines)}`")

    def _rewrite_statement(self, node: ast.stmt, lines: list[str]) -> None:
        """Replace a statement by ``lines`` (at its indentation), or delete it."""
        if not lines:
            self._remove_statement(node)
            return
        start, _ = self._span(node)
        before = self.data[self.starts[node.lineno - 1]:start].decode("utf-8")
        self._replace(node, ("\n" + before if not before.strip() else "; ").join(lines))

    def _remove_statement(self, node: ast.stmt) -> None:
        """Delete a statement: its whole lines when it has them to itself, else ``pass``."""
        start, end = self._span(node)
        line_start = self.starts[node.lineno - 1]
        line_end = self.starts[node.end_lineno] if node.end_lineno is not None \
            and node.end_lineno < len(self.starts) else len(self.data)
        before = self.data[line_start:start].strip()
        after = self.data[end:line_end].split(b"#")[0].strip()
        if before or after or len(self._siblings(node)) == 1:
            self.edits.append(_Edit(start, end, "pass"))
        else:
            self.edits.append(_Edit(line_start, line_end, ""))

    def _siblings(self, node: ast.stmt) -> list[ast.stmt]:
        parent = self.parents.get(node, self.tree)
        for name in ("body", "orelse", "finalbody"):
            block = getattr(parent, name, None)
            if isinstance(block, list) and node in block:
                return block
        return [node]

    # ---- names the code uses ---------------------------------------------------------------------

    def _check_free_names(self) -> None:
        """Names used but never bound: the notebook's (``%load_ext dolab``) or nobody's."""
        for name in sorted(self.free):
            nodes = self._loads(name)
            if name in PLATFORM:
                self._need(name)
            elif name in DOLAB_ONLY_REASONS:
                for node in nodes:
                    self._problem(node, name, DOLAB_ONLY_REASONS[name])
            elif isinstance(self.source.namespace.get(name), ModuleType):
                self._import_module(name, self.source.namespace[name].__name__)
            elif not self.star:
                where = "this cell" if self.source.kind == "cell" else self.source.origin
                for node in nodes:
                    self._problem(node, name, UNDEFINED.format(where=where))
        for local, dotted in self.only.items():
            for node in self._loads(local):
                reason = DOLAB_ONLY_REASONS.get(dotted.rsplit(".", 1)[-1], RUNTIME_ONLY)
                self._problem(node, dotted, reason)

    def _import_module(self, name: str, module: str) -> None:
        """A module an earlier cell imported: imported here too."""
        self.result.modules[name] = module
        statement = f"import {module}" if module == name else f"import {module} as {name}"
        self._note(f"added `{statement}` (imported by another cell)")

    def _loads(self, name: str) -> list[ast.Name]:
        return [n for n in ast.walk(self.tree) if isinstance(n, ast.Name) and n.id == name
                and isinstance(n.ctx, ast.Load)]

    def _platform_of(self, node: ast.expr) -> str | None:
        """The platform name an expression stands for (a local name or a ``dolab.X`` chain)."""
        if isinstance(node, ast.Name):
            if node.id in self.platform:
                return self.platform[node.id]
            return node.id if node.id in self.free and node.id in PLATFORM else None
        chain = _chain(node)
        if chain is None or chain[0] not in self.modules:
            return None
        return _resolve(self.modules[chain[0]], chain[1:])

    # ---- JavaScript constructors -----------------------------------------------------------------

    def _calls(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call):
                platform = self._platform_of(node.func)
                if platform in JS_CONSTRUCTORS:
                    self._constructor(node, platform)

    def _constructor(self, call: ast.Call, platform: str) -> None:
        local = call.func.id if isinstance(call.func, ast.Name) else platform
        if not isinstance(call.func, ast.Name):
            self._need(platform)
        self.handled.add(call.func)
        parent = self.parents.get(call)
        unpacked = not (isinstance(parent, ast.Attribute) and parent.attr == "object_values")
        if platform == "WebSocketPair" and not call.args and not call.keywords and unpacked:
            self._replace(call, f"{local}.new().object_values()")
            self._note("`WebSocketPair()` → `WebSocketPair.new().object_values()` (a JavaScript "
                       "class is constructed with `.new`; the pair is read as a list)")
        else:
            self._replace(call.func, f"{local}.new")
            shown = "()" if platform == "WebSocketPair" else "(…)"
            self._note(f"`{platform}{shown}` → `{platform}.new{shown}` (a JavaScript class is "
                       "constructed with `.new`)")

    # ---- dolab.X in code -------------------------------------------------------------------------

    def _chains(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name) and node.id in self.modules \
                    and isinstance(node.ctx, ast.Load):
                self._chain_from(node)

    def _chain_from(self, root: ast.Name) -> None:
        """Follow ``root.a.b…`` outwards to the platform name it reaches, or report it."""
        node: ast.expr = root
        path = self.modules[root.id]
        while True:
            parent = self.parents.get(node)
            if not (isinstance(parent, ast.Attribute) and parent.value is node):
                self._problem(root, path, MODULE_ONLY)
                return
            if parent.attr in PLATFORM:
                self._platform_chain(parent)
                return
            path = f"{path}.{parent.attr}"
            if not _is_dolab_module(path):
                name = path.rsplit(".", 1)[-1]
                self._problem(root, path, DOLAB_ONLY_REASONS.get(name, MODULE_ONLY))
                return
            node = parent

    def _platform_chain(self, node: ast.Attribute) -> None:
        self._need(node.attr)
        if node not in self.handled:
            self._replace(node, node.attr)
        self._note(f"`dolab.{node.attr}` → `{node.attr}`")

    # ---- what only a notebook runs ---------------------------------------------------------------

    def _top_level_await(self) -> None:
        for node in _outside_functions(self.tree):
            if isinstance(node, (ast.Await, ast.AsyncFor, ast.AsyncWith)):
                self._problem(node, "await", TOP_LEVEL_AWAIT)


def _python(text: str) -> str:
    """The cell as Python: IPython magics (``%x``, ``!x``) become ``get_ipython()`` calls, which
    the rewriter then reports."""
    try:
        ast.parse(text)
        return text
    except SyntaxError:
        pass
    from IPython.core.inputtransformer2 import TransformerManager

    transformed: str = TransformerManager().transform_cell(text)  # type: ignore[no-untyped-call]
    blank = len(text) - len(text.lstrip("\n"))  # kept, so that line numbers stay the cell's
    return "\n" * blank + transformed.lstrip("\n")


def _without_main_guard(text: str, kind: str) -> str:
    """A module's ``if __name__ == "__main__":`` block (no ``else``), blanked line for line so
    that line numbers stay the file's."""
    if kind != "module":
        return text
    lines = text.splitlines(keepends=True)
    for node in ast.parse(text).body:
        if isinstance(node, ast.If) and not node.orelse and _is_main_guard(node.test):
            for index in range(node.lineno - 1, node.end_lineno or node.lineno):
                lines[index] = "\n"
    return "".join(lines)


def _is_main_guard(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = {s.id for s in sides if isinstance(s, ast.Name)}
    values = {s.value for s in sides if isinstance(s, ast.Constant)}
    return names == {_MAIN_GUARD[0]} and values == {_MAIN_GUARD[1]}


def _outside_functions(tree: ast.AST) -> Iterator[ast.AST]:
    for child in ast.iter_child_nodes(tree):
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield child
            yield from _outside_functions(child)


def _free_names(text: str) -> set[str]:
    """Names some scope reads as a global that the module never binds (nor builtins do)."""
    top = symtable.symtable(text, "<export>", "exec")
    bound = {s.get_name() for s in top.get_symbols()
             if s.is_assigned() or s.is_imported() or s.is_namespace()}
    used: set[str] = set()
    for table in _tables(top):
        for symbol in table.get_symbols():
            global_ = table is top or symbol.is_global()
            if symbol.is_referenced() and global_:
                used.add(symbol.get_name())
            if symbol.is_declared_global() and symbol.is_assigned():
                bound.add(symbol.get_name())
    return {n for n in used - bound if not hasattr(builtins, n) and not _is_dunder(n)}


def _tables(table: symtable.SymbolTable) -> Iterator[symtable.SymbolTable]:
    yield table
    for child in table.get_children():
        yield from _tables(child)


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _is_dolab(module: str) -> bool:
    return module == "dolab" or module.startswith("dolab.")


def _is_dolab_module(dotted: str) -> bool:
    try:
        return importlib.util.find_spec(dotted) is not None
    except (ImportError, ValueError):
        return False


def _alias_text(alias: ast.alias) -> str:
    return f"{alias.name} as {alias.asname}" if alias.asname else alias.name


def _chain(node: ast.expr) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]``; None for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def _resolve(path: str, attrs: list[str]) -> str | None:
    """The platform name ``path.attrs…`` stands for when it ends with one (``dolab.Response``,
    ``dolab.websocket.WebSocketPair``); None for anything else (``dolab.Response.json``)."""
    for index, attr in enumerate(attrs):
        if attr in PLATFORM:
            return attr if index == len(attrs) - 1 else None
        path = f"{path}.{attr}"
        if not _is_dolab_module(path):
            return None
    return None


def _line_starts(data: bytes) -> list[int]:
    starts = [0]
    for index, byte in enumerate(data):
        if byte == 0x0A:
            starts.append(index + 1)
    return starts


# ---- checking the written project ---------------------------------------------------------------


def validate(directory: str | os.PathLike[str]) -> WranglerConfig:
    """Read the project back: wrangler.toml through dolab's parser and validator (spec §10.2:
    field types, unknown keys, migrations), every bound class created by a migration and
    defined at the top of ``src/entry.py``, which must compile. Raises :class:`ExportError`."""
    root = Path(directory)
    toml_path = root / "wrangler.toml"
    try:
        config = parse_toml(toml_path.read_text(encoding="utf-8"), str(toml_path))
        config.backends()
        if PYTHON_WORKERS not in config.compatibility_flags or config.main != MAIN:
            raise ConfigError(f'needs main = "{MAIN}" and the {PYTHON_WORKERS} flag',
                              file=str(toml_path))
        entry = root / MAIN
        code = entry.read_text(encoding="utf-8")
        compile(code, str(entry), "exec")
        check_module_exports(config, _top_level_names(code), MAIN)
    except (ConfigError, SyntaxError, OSError) as error:
        raise ExportError(INVALID_PROJECT.format(directory=root, detail=error)) from error
    return config


def _top_level_names(code: str) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(code).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


# ---- Cloudflare's own check: wrangler deploy --dry-run ------------------------------------------


def find_wrangler() -> list[str] | None:
    """The command that runs wrangler: ``$DOLAB_WRANGLER``, the pinned copy in
    ``.cache/wrangler`` (this checkout's, or the current directory's), a ``wrangler`` on PATH,
    or ``npx --yes wrangler@<pinned>``; None without Node.js."""
    explicit = os.environ.get("DOLAB_WRANGLER")
    if explicit:
        return [explicit]
    for base in (Path(__file__).resolve().parent.parent, Path.cwd()):
        local = base / ".cache" / "wrangler" / "node_modules" / ".bin" / "wrangler"
        if local.is_file():
            return [str(local)]
    on_path = shutil.which("wrangler")
    if on_path:
        return [on_path]
    npx = shutil.which("npx")
    return [npx, "--yes", f"wrangler@{WRANGLER_VERSION}"] if npx else None


def local_wrangler() -> Path | None:
    """The pinned copy installed by tools/install-wrangler.sh, if it is there."""
    local = Path(__file__).resolve().parent.parent / ".cache" / "wrangler" / "node_modules" \
        / ".bin" / "wrangler"
    return local if local.is_file() else None


def check_with_wrangler(directory: str | os.PathLike[str], command: Sequence[str] | None = None,
                        timeout: float = 300.0) -> WranglerVerdict:
    """Run ``wrangler deploy --dry-run`` on the project (offline: it validates the configuration
    and bundles ``src/`` without contacting Cloudflare). ``command`` is how to run wrangler
    (default :func:`find_wrangler`)."""
    base = list(command) if command is not None else find_wrangler()
    if base is None:
        return WranglerVerdict(None, "", [], errors=[NO_NODE.format(version=WRANGLER_VERSION)])
    with tempfile.TemporaryDirectory(prefix="dolab-wrangler-") as scratch:
        env = _wrangler_env(scratch)
        args = [*base, "deploy", "--dry-run", "--outdir", os.path.join(scratch, "dist")]
        try:
            done = subprocess.run(args, cwd=directory, env=env, capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            return WranglerVerdict(None, "", args, errors=[f"Cannot run wrangler: {error}"])
        version = _wrangler_version(base, env)
    output = _ANSI.sub("", done.stdout + done.stderr)
    return WranglerVerdict(done.returncode, output, args, version,
                           _blocks(output, "[WARNING]"), _blocks(output, "[ERROR]"))


def _wrangler_env(scratch: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "WRANGLER_SEND_METRICS": "false",   # no telemetry
        "WRANGLER_HIDE_BANNER": "true",     # no banner, so no update check against npm
        "WRANGLER_LOG_PATH": os.path.join(scratch, "logs"),
        "NO_COLOR": "1",
        "FORCE_COLOR": "0",
    })
    return env


def _wrangler_version(base: list[str], env: dict[str, str]) -> str | None:
    # An installed wrangler's bin resolves to node_modules/wrangler/bin/wrangler.js.
    package = Path(base[-1]).resolve().parent.parent / "package.json"
    if package.is_file():
        match = re.search(r'"version":\s*"([^"]+)"', package.read_text(encoding="utf-8"))
        if match:
            return match.group(1)
    try:
        done = subprocess.run([*base, "--version"], env=env, capture_output=True, text=True,
                              timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"\d+\.\d+\.\d+", done.stdout)
    return match.group(0) if match else None


def _blocks(output: str, tag: str) -> list[str]:
    """The messages wrangler printed under ``▲ [WARNING]`` or ``✘ [ERROR]`` headers."""
    found: list[str] = []
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if tag in line:
            block = [line.split(tag, 1)[1].strip()]
            for follow in lines[index + 1:]:
                if follow and not follow.startswith(" "):
                    break
                block.append(follow.strip())
            found.append("\n".join(b for b in block if b))
    return found


__all__ = [
    "PLATFORM",
    "WRANGLER_VERSION",
    "Export",
    "ExportError",
    "Problem",
    "Source",
    "WranglerVerdict",
    "check_with_wrangler",
    "entry_py",
    "export",
    "find_wrangler",
    "local_wrangler",
    "pyproject_toml",
    "readme",
    "rewrite",
    "source_of",
    "sources",
    "validate",
    "wrangler_config",
]

