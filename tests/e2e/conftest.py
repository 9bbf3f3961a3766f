"""Fixtures for the browser tests: a real JupyterLab server and headless Chromium (Playwright).

- `jupyterlab` -> LabServer (.url, .token, .root, .api(), .lab_url(), .sessions())
- `browser`    -> playwright.sync_api.Browser
- `page`       -> a fresh BrowserContext + Page per test (closed afterwards; on failure a
                  screenshot goes to test-output/e2e/FAILED-<test>.png)

Both `jupyterlab` and `browser` live for the whole tests/e2e package ("package" scope: one of
each per run, torn down when the last e2e test is done). They are not session-scoped because
Playwright's sync API marks its event loop as running in the main thread between calls; an
asyncio test (pytest-asyncio) or nbval notebook collected after tests/e2e in the same session
would then fail with "Cannot run the event loop while another loop is running". For the same
reason the tests in tests/e2e must be plain `def` functions (collection refuses `async def`).

Set DOLAB_E2E_KEEP_TMP=1 to keep the server's tmp dir (root copy, Jupyter dirs, server log).
"""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .lab_page import PROJECT_ROOT, screenshot
from .lab_server import LabServer, start_lab

# The fixture notebooks are opened by the tests, not collected (e.g. by `--nbval`).
collect_ignore = ["fixtures"]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

_E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Every test under tests/e2e is a browser test, whether or not its module says so; and a
    # sync one: pytest-asyncio cannot run a coroutine while Playwright's sync API is alive.
    for item in items:
        if _E2E_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)
            if inspect.iscoroutinefunction(getattr(item, "obj", None)):
                raise pytest.UsageError(
                    f"{item.nodeid}: tests under tests/e2e must be plain `def` functions "
                    "(Playwright's sync API is in use), not `async def`"
                )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    # Let fixtures see whether the test failed (item.rep_setup / rep_call / rep_teardown).
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


def system_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="package")
def jupyterlab() -> Iterator[LabServer]:
    tmp = Path(tempfile.mkdtemp(prefix="dolab-e2e-lab-"))
    try:
        lab = start_lab(PROJECT_ROOT, tmp)  # stops what it started if it fails
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        yield lab
    finally:
        lab.stop()
        if os.environ.get("DOLAB_E2E_KEEP_TMP"):
            print(f"\n[e2e] lab tmp dir kept: {tmp} (server log: {lab.log_path})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        kwargs: dict[str, Any] = {"headless": True, "args": CHROMIUM_ARGS, "timeout": 60_000}
        exe = system_chromium()
        if exe:
            kwargs["executable_path"] = exe
        # launch() gives the browser a fresh temporary user data dir (deleted on close).
        b = pw.chromium.launch(**kwargs)
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


@pytest.fixture
def page(browser: Any, jupyterlab: LabServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context and page. Kernels started during the test are shut down after it;
    on failure, a screenshot and the browser console errors are reported."""
    kernels_before = {k["id"] for k in jupyterlab.api("GET", "/api/kernels")}
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    context.set_default_navigation_timeout(60_000)
    pg = context.new_page()
    console: list[str] = []
    pg.on(
        "console",
        lambda m: console.append(f"console.{m.type}: {m.text}") if m.type == "error" else None,
    )
    pg.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    try:
        yield pg
    finally:
        failed = any(
            getattr(getattr(request.node, f"rep_{w}", None), "failed", False)
            for w in ("setup", "call")
        )
        if failed:
            try:
                shot = screenshot(pg, f"FAILED-{request.node.name}")
                print(f"\n[e2e] screenshot of the failure: {shot}")
            except Exception as e:  # noqa: BLE001 - best effort
                print(f"\n[e2e] no screenshot: {e!r}")
            if console:
                print("[e2e] browser console errors:\n  " + "\n  ".join(console[-30:]))
            print(f"[e2e] server log tail:\n{jupyterlab.log_tail(30)}")
        try:
            context.close()
        finally:
            jupyterlab.shutdown_kernels(keep=kernels_before)
