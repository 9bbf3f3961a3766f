"""A real JupyterLab server for the browser tests, isolated from the user's Jupyter set-up.

`start_lab(project_root, tmp)` copies `notebooks/` and `tests/e2e/fixtures/` into `tmp/root`
(so a run never modifies committed notebooks), starts `<sys.executable> -m jupyterlab` on
127.0.0.1 with a random token and Jupyter config/data/runtime dirs under `tmp`, and waits until
`/api/status` answers. `LabServer.stop()` shuts the kernels down, then the server, and kills
whatever is left (by pid, only processes this module started or their kernels).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STARTUP_TIMEOUT = 60.0
_IGNORE = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", ".dolab", "*.fs*", "*.pyc")

# JupyterLab settings that keep the UI quiet and offline: no news/update toasts (they would ask
# "Would you like to receive official Jupyter news?" and fetch a feed from the internet).
_USER_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


@dataclass
class LabServer:
    url: str  # base URL, no trailing slash, e.g. http://127.0.0.1:40123
    token: str
    root: Path  # the server's root_dir: contains notebooks/ and fixtures/
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes]
    _log_file: Any = field(repr=False, default=None)

    # -- REST helpers -------------------------------------------------------------------------
    def api(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        """Call the Jupyter REST API (`path` like "/api/sessions"); returns decoded JSON or None."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def lab_url(self, path: str = "", **query: str) -> str:
        """URL of a page of the lab UI, e.g. lab_url("tree/fixtures/smoke.ipynb")."""
        q = urllib.parse.urlencode({**query, "token": self.token})
        return f"{self.url}/lab/{path.lstrip('/')}?{q}"

    def sessions(self) -> list[dict[str, Any]]:
        return list(self.api("GET", "/api/sessions"))

    def kernel_state(self, relpath: str) -> str | None:
        """Server-side execution_state of the kernel of the notebook at `relpath`, if any."""
        for s in self.sessions():
            if s.get("path") == relpath and s.get("kernel"):
                return str(s["kernel"].get("execution_state"))
        return None

    def shutdown_kernels(self, keep: set[str] | None = None) -> None:
        """Shut down every running kernel whose id is not in `keep` (best effort)."""
        try:
            kernels = self.api("GET", "/api/kernels")
        except (OSError, urllib.error.URLError):
            return
        for k in kernels:
            if keep and k["id"] in keep:
                continue
            try:
                self.api("DELETE", f"/api/kernels/{k['id']}", timeout=15)
            except (OSError, urllib.error.URLError):
                pass

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "<no log>"

    # -- teardown -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop kernels and server; never raises, never hangs for long."""
        descendants = _descendants(self.proc.pid)
        try:
            if self.proc.poll() is None:
                self.shutdown_kernels()
                descendants |= _descendants(self.proc.pid)
                try:
                    self.api("POST", "/api/shutdown", timeout=5)
                except (OSError, urllib.error.URLError):
                    pass
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.terminate()
                    try:
                        self.proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        self.proc.kill()
                        self.proc.wait(timeout=10)
        finally:
            # Kernels run in sessions of their own; kill any that survived, by pid.
            for pid in descendants:
                _kill_pid(pid)
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendants(pid: int) -> set[int]:
    """All live descendant pids of `pid` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return set()
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        # the command name may contain spaces/parens: ppid is the 2nd field after the last ')'
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _prepare_root(project_root: Path, tmp: Path) -> Path:
    root = tmp / "root"
    root.mkdir(parents=True)
    for src, name in [
        (project_root / "notebooks", "notebooks"),
        (project_root / "tests" / "e2e" / "fixtures", "fixtures"),
    ]:
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=_IGNORE)
        else:
            (root / name).mkdir()
    return root


def _isolated_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    cfg, data, runtime = tmp / "jupyter-config", tmp / "jupyter-data", tmp / "jupyter-runtime"
    for d in (cfg, data, runtime, tmp / "ipython"):
        d.mkdir(parents=True, exist_ok=True)
    for rel, settings in _USER_SETTINGS.items():
        p = cfg / "lab" / "user-settings" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(settings, indent=1))
    # The user's dirs are replaced; the environment's share/jupyter (sys.prefix: the widgets'
    # labextensions, the python3 kernelspec) and etc/jupyter (server extensions) stay on the
    # search path, since jupyter_core always appends them.
    env.update(
        JUPYTER_CONFIG_DIR=str(cfg),
        JUPYTER_DATA_DIR=str(data),
        JUPYTER_RUNTIME_DIR=str(runtime),
        JUPYTERLAB_SETTINGS_DIR=str(cfg / "lab" / "user-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(cfg / "lab" / "workspaces"),
        IPYTHONDIR=str(tmp / "ipython"),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
        # first on PATH: this environment's scripts, so "python"/"pip" in a kernel are ours
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)]),
    )
    for var in ("JUPYTER_TOKEN", "JUPYTER_PORT", "JUPYTERHUB_API_TOKEN", "JUPYTER_PREFER_ENV_PATH"):
        env.pop(var, None)
    return env


def start_lab(project_root: Path, tmp: Path, timeout: float = STARTUP_TIMEOUT) -> LabServer:
    tmp.mkdir(parents=True, exist_ok=True)
    root = _prepare_root(project_root, tmp)
    env = _isolated_env(tmp)
    token = secrets.token_hex(24)
    port = _free_port()
    # `python -m jupyterlab` == `jupyter lab`, but cannot pick up a jupyter-lab script of another
    # environment that happens to come first on PATH.
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.open_browser=False",
        "--ServerApp.terminals_enabled=False",
        # offline: no news feed, no update check, no PyPI queries by the extension manager
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]  # fmt: skip
    log_path = tmp / "jupyterlab.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed in LabServer.stop()
    proc = subprocess.Popen(
        cmd,
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a Ctrl+C in the terminal goes to pytest, which stops us
    )
    lab = LabServer(
        url=f"http://127.0.0.1:{port}",
        token=token,
        root=root,
        port=port,
        log_path=log_path,
        proc=proc,
        _log_file=log_file,
    )
    try:
        _wait_ready(lab, timeout)
    except BaseException:
        lab.stop()
        raise
    return lab


def _wait_ready(lab: LabServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if lab.proc.poll() is not None:
            raise RuntimeError(
                f"jupyter lab exited with code {lab.proc.returncode}:\n{lab.log_tail()}"
            )
        try:
            with urllib.request.urlopen(
                f"{lab.url}/api/status?token={lab.token}", timeout=2
            ) as resp:
                if resp.status == 200:
                    json.loads(resp.read())
                    return
        except (OSError, urllib.error.URLError, ValueError) as e:
            last = e
        time.sleep(0.2)
    raise TimeoutError(
        f"jupyter lab did not answer /api/status within {timeout:.0f}s ({last!r}):\n"
        f"{lab.log_tail()}"
    )
