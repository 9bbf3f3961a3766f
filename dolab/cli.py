"""The ``dolab`` command (DESIGN.md §12)::

    dolab lab [ARGS…]                          JupyterLab on the lessons (python -m jupyterlab)
    dolab serve MODULE [--port P] [--host H]   serve MODULE's Worker on 127.0.0.1 (HTTP, WebSockets)
    dolab export MODULE --out DIR [--check]    write a Cloudflare Python Workers project
    dolab check PATH… [--format json]          the pitfall checker (dolab.checks)
    dolab explain TEXT                         explain a Durable Object error message

A MODULE is a Python file that defines Durable Object classes and a WorkerEntrypoint. Its
bindings come from a wrangler.toml (or .jsonc/.json) beside it, or ``--config FILE``; without
one, each DurableObject subclass it defines is bound under its default name (``ChatRoom`` →
``env.CHAT_ROOM``) with SQLite storage.

Exit status: 0 on success; 1 when ``export --check`` finds wrangler rejecting the project (and
as ``dolab.checks`` says for ``check``/``explain``); 2 for bad input (a module that does not
load, a configuration or code that cannot be exported).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import signal
import sys
from pathlib import Path
from types import ModuleType

from . import __version__
from .config import ConfigError, WranglerConfig, default_binding_name, load
from .lab import Lab
from .object import DurableObject, WorkerEntrypoint

CONFIG_NAMES = ("wrangler.toml", "wrangler.jsonc", "wrangler.json")
NO_WORKER = "{path} defines no WorkerEntrypoint subclass: nothing would answer requests."
MANY_WORKERS = ("{path} defines several WorkerEntrypoint subclasses ({names}); name the one to "
                "serve Default.")
NO_NOTEBOOKS = ("No notebooks/ folder here or beside the dolab package: run `dolab lab` from the "
                "repository.")


class CliError(Exception):
    """A problem with the command's input: printed on stderr, exit status 2."""


def main(argv: list[str] | None = None) -> int:
    """Run the ``dolab`` command; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("check", "explain"):
        from .checks import main as checks_main  # its own parser, help and exit statuses

        return checks_main(args)
    if args[:1] == ["lab"] and args[1:2] not in (["-h"], ["--help"]):
        args = ["lab", "--", *args[1:]]  # JupyterLab's own options pass through untouched
    try:
        parsed = PARSER.parse_args(args)
    except SystemExit as exit_:  # --help, --version, usage errors: argparse has printed them
        return int(exit_.code or 0)
    try:
        return int(parsed.run(parsed))
    except CliError as error:
        print(f"dolab {parsed.command}: {error}", file=sys.stderr)
        return 2


# ---- loading a MODULE ---------------------------------------------------------------------------


def load_module(path: str | os.PathLike[str]) -> ModuleType:
    """Import a Python file as a module (its folder first on ``sys.path``, for its siblings)."""
    file = Path(path)
    if not file.is_file():
        raise CliError(f"{file}: no such file")
    name = "dolab_module_" + re.sub(r"\W", "_", file.stem)
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise CliError(f"{file}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = str(file.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise CliError(f"{file} failed to load: {type(error).__name__}: {error}") from error
    return module


def config_for(module_path: str | os.PathLike[str], explicit: str | None) -> Path | None:
    """``--config FILE``, else a wrangler configuration beside the module, else None."""
    if explicit is not None:
        return Path(explicit)
    folder = Path(module_path).resolve().parent
    return next((folder / n for n in CONFIG_NAMES if (folder / n).is_file()), None)


def lab_for(module_path: str, config: Path | None, db: str | None = None,
            name: str | None = None) -> Lab:
    """A lab hosting the module: configured by ``config``, or with default bindings."""
    module = load_module(module_path)
    try:
        if config is not None:
            lab = Lab(path=db, config=config, module=module)
        else:
            lab = Lab(name=name or worker_name(module_path), path=db)
            bind_defaults(lab, module, module_path)
    except ConfigError as error:
        raise CliError(str(error)) from None
    if lab.worker_cls is None:
        lab.close()
        raise CliError(NO_WORKER.format(path=module_path))
    return lab


def bind_defaults(lab: Lab, module: ModuleType, path: str) -> None:
    """Bind each DurableObject subclass the module defines under its default name (SQLite), and
    make its WorkerEntrypoint the Worker."""
    defined = [v for v in vars(module).values()
               if isinstance(v, type) and v.__module__ == module.__name__]
    for cls in defined:
        if issubclass(cls, DurableObject):
            lab.bind(default_binding_name(cls.__name__), cls)
    workers = [c for c in defined if issubclass(c, WorkerEntrypoint)]
    chosen = [c for c in workers if c.__name__ == "Default"] or workers
    if len(chosen) > 1:
        names = ", ".join(c.__name__ for c in workers)
        raise CliError(MANY_WORKERS.format(path=path, names=names))
    if chosen:
        lab.worker(chosen[0])


def worker_name(module_path: str) -> str:
    """A Worker name from the file name: lower case, letters, digits and dashes."""
    stem = re.sub(r"[^a-z0-9-]+", "-", Path(module_path).stem.lower()).strip("-")
    return stem or "dolab"


# ---- subcommands --------------------------------------------------------------------------------


def run_lab(args: argparse.Namespace) -> int:
    """Replace this process with JupyterLab on the lessons."""
    folder = next((p for p in (Path("notebooks"), Path(__file__).resolve().parent.parent
                               / "notebooks") if p.is_dir()), None)
    if folder is None:
        raise CliError(NO_NOTEBOOKS)
    extra = args.jupyter_args[1:] if args.jupyter_args[:1] == ["--"] else args.jupyter_args
    command = [sys.executable, "-m", "jupyterlab", str(folder), *extra]
    os.execv(sys.executable, command)
    return 0  # not reached: execv does not return


def run_serve(args: argparse.Namespace) -> int:
    lab = lab_for(args.module, config_for(args.module, args.config), args.db)
    return asyncio.run(_serve_until_stopped(lab, args.port, args.host))


async def _serve_until_stopped(lab: Lab, port: int, host: str) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        server = await lab.serve(port=port, host=host)
    except OSError as error:
        lab.close()
        raise CliError(f"cannot listen on {host}:{port}: {error}") from None
    worker = lab.worker_cls.__name__ if lab.worker_cls else "?"
    bindings = ", ".join(f"env.{n} ({b.cls.__name__})" for n, b in lab.bindings.items())
    print(f"Serving {worker} ({bindings or 'no bindings'}) on {server.url}  (Ctrl-C stops)",
          flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()
        lab.close()
    return 0


def run_export(args: argparse.Namespace) -> int:
    from .export import ExportError, export

    config_path = config_for(args.module, args.config)
    config = _load_config(config_path)
    lab = lab_for(args.module, config_path, None, args.name)
    try:
        result = export(lab, args.out, name=args.name, config=config, check=args.check)
    except ExportError as error:
        raise CliError(str(error)) from None
    finally:
        lab.close()
    print(f"Exported {result.config.name!r} to {result.directory}:")
    for file in result.files:
        print(f"  {file.relative_to(result.directory)}")
    if result.verdict is None:
        return 0
    print(result.verdict)
    return 0 if result.verdict.ok else 1


def _load_config(path: Path | None) -> WranglerConfig | None:
    if path is None:
        return None
    try:
        return load(path)
    except (ConfigError, OSError) as error:
        raise CliError(str(error)) from None


def _help_only(args: argparse.Namespace) -> int:  # pragma: no cover - main() routes them first
    return 0


# ---- the parser ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dolab", description="Cloudflare Durable Objects in Python: lessons, local "
        "serving, export to Cloudflare Python Workers.")
    parser.add_argument("--version", action="version", version=f"dolab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lab = sub.add_parser("lab", help="open JupyterLab on the lessons (notebooks/)",
                         description="Run `python -m jupyterlab notebooks/`; extra arguments go "
                         "to JupyterLab.")
    lab.add_argument("jupyter_args", nargs=argparse.REMAINDER, metavar="ARGS")
    lab.set_defaults(run=run_lab)

    serve = sub.add_parser("serve", help="serve MODULE's Worker over HTTP and WebSockets",
                           description="Serve the Worker of MODULE (a .py file) with its Durable "
                           "Objects on 127.0.0.1 until Ctrl-C.")
    _module_arguments(serve)
    serve.add_argument("--port", type=int, default=8787, help="0 picks a free port (default 8787)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1); any other address "
                       "exposes the lab to the network and prints a warning")
    serve.add_argument("--db", metavar="FILE",
                       help="keep the objects' storage in this ZODB file (default: in memory)")
    serve.set_defaults(run=run_serve)

    export = sub.add_parser("export", help="write MODULE as a Cloudflare Python Workers project",
                            description="Write src/entry.py, wrangler.toml, pyproject.toml and "
                            "README.md for MODULE's Worker and Durable Objects.")
    _module_arguments(export)
    export.add_argument("--out", required=True, metavar="DIR", help="the project folder")
    export.add_argument("--name", help="the Worker's name (default: the config's, or the file's)")
    export.add_argument("--check", action="store_true",
                        help="also run `wrangler deploy --dry-run` (needs Node.js) and show its "
                        "verdict")
    export.set_defaults(run=run_export)

    helps = {"check": "find Durable Object pitfalls in Python files (dolab check --help)",
             "explain": "explain a Durable Object error message (dolab explain --help)"}
    for name, text in helps.items():
        command = sub.add_parser(name, help=text, add_help=False)
        command.add_argument("rest", nargs=argparse.REMAINDER)
        command.set_defaults(run=_help_only)
    return parser


def _module_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("module", metavar="MODULE",
                         help="a .py file defining DurableObject classes and a WorkerEntrypoint")
    command.add_argument("--config", metavar="FILE",
                         help="wrangler.toml/.jsonc (default: one beside MODULE, if any)")


PARSER = _parser()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
