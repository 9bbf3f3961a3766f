"""Helpers that drive the JupyterLab UI with Playwright's sync API.

Typical test::

    open_notebook(page, jupyterlab, "fixtures/smoke.ipynb")
    run_all(page)
    wait_all_cells_ran(page)
    expect(notebook(page).locator(".jp-OutputArea-output").first).to_contain_text("...")

Selectors (JupyterLab 4.x):
- the notebook being driven: the `.jp-NotebookPanel` of the current main-area tab
  (`notebook(page)`); each `open_notebook` uses a fresh workspace, so it is the only one.
- kernel idle: the toolbar's execution indicator `.jp-Notebook-ExecutionIndicator` has
  `data-status="idle"`, the toolbar kernel name is not "No Kernel", and the server's
  `/api/sessions` reports the notebook's kernel `execution_state == "idle"`.
- Run menu: the menu bar item with role `menuitem` and name "Run" in `#jp-menu-panel`; it opens
  `.lm-Menu#jp-mainmenu-run`, whose entry `li.lm-Menu-item` labelled "Run All Cells" has
  `data-command="runmenu:run-all"` (not `notebook:run-all-cells`).
- execution prompts: `.jp-CodeCell .jp-InputArea-prompt` reads `[ ]:`, `[*]:` or `[12]:`.
"""

from __future__ import annotations

import re
import time
import uuid
from urllib.parse import quote
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playwright.sync_api import Locator, Page, expect

if TYPE_CHECKING:
    from .lab_server import LabServer

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = PROJECT_ROOT / "test-output" / "e2e"
DEFAULT_TIMEOUT = 60.0  # seconds, for every wait in these helpers

NOTEBOOK = "#jp-main-dock-panel .jp-NotebookPanel:not(.lm-mod-hidden)"


class LabUIError(AssertionError):
    """The lab did not reach the expected state; the message says what it showed instead."""


def notebook(page: Page) -> Locator:
    """The notebook panel of the current main-area tab."""
    return page.locator(NOTEBOOK).first


def code_cells(page: Page) -> Locator:
    return notebook(page).locator(".jp-Notebook .jp-Cell.jp-CodeCell")


def cell(page: Page, index: int) -> Locator:
    """The index-th cell (all cell types, 0-based) of the current notebook."""
    return notebook(page).locator(".jp-Notebook .jp-Cell").nth(index)


def outputs(page: Page, index: int) -> Locator:
    """The outputs of the index-th cell (all cell types, 0-based)."""
    return cell(page, index).locator(".jp-OutputArea-output")


# -- dialogs ---------------------------------------------------------------------------------


def dismiss_dialogs(page: Page) -> list[str]:
    """Accept any open JupyterLab dialog (e.g. "Select Kernel": accept keeps the default kernel).

    Returns the titles of the dialogs it closed.
    """
    closed: list[str] = []
    for _ in range(5):
        dialog = page.locator(".jp-Dialog")
        if dialog.count() == 0:
            break
        title = dialog.first.locator(".jp-Dialog-header").inner_text(timeout=5_000).strip()
        button = dialog.first.locator(".jp-Dialog-button.jp-mod-accept")
        if button.count():
            button.first.click(timeout=5_000)
        else:
            page.keyboard.press("Escape")
        closed.append(title)
        page.wait_for_timeout(200)
    return closed


# -- open ------------------------------------------------------------------------------------


def open_notebook(
    page: Page, lab: LabServer, relpath: str, timeout: float = DEFAULT_TIMEOUT
) -> Locator:
    """Open `relpath` (relative to the server root, e.g. "fixtures/smoke.ipynb") in a fresh
    workspace, accept a kernel-selection dialog if one shows up, and wait until the notebook's
    kernel is idle. Returns the notebook panel locator.
    """
    workspace = f"e2e-{uuid.uuid4().hex[:8]}"
    page.goto(
        lab.lab_url(f"workspaces/{workspace}/tree/{quote(relpath)}", reset=""),
        timeout=timeout * 1000,
        wait_until="domcontentloaded",
    )
    deadline = time.monotonic() + timeout
    indicator = notebook(page).locator(".jp-Notebook-ExecutionIndicator")
    kernel_name = notebook(page).locator(".jp-KernelName, .jp-Toolbar-kernelName")
    last = "page not loaded"
    while True:
        dismiss_dialogs(page)
        ui_status = (
            indicator.first.get_attribute("data-status", timeout=2_000)
            if indicator.count()
            else None
        )
        name = kernel_name.first.inner_text(timeout=2_000).strip() if kernel_name.count() else ""
        server_status = lab.kernel_state(relpath)
        last = f"indicator={ui_status!r} kernel_name={name!r} server={server_status!r}"
        if (
            ui_status == "idle"
            and server_status == "idle"
            and name
            and "no kernel" not in name.lower()
        ):
            break
        if time.monotonic() > deadline:
            raise LabUIError(f"kernel of {relpath} not idle after {timeout:.0f}s: {last}")
        page.wait_for_timeout(250)
    # the cells are rendered
    expect(notebook(page).locator(".jp-Notebook .jp-Cell").first).to_be_visible(
        timeout=timeout * 1000
    )
    return notebook(page)


# -- run -------------------------------------------------------------------------------------


def click_menu(page: Page, menu: str, item: str, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Click the top menu `menu` (e.g. "Run"), then its entry labelled `item` (e.g. "Run All
    Cells"), with the mouse. Waits for the entry to be enabled first."""
    t = timeout * 1000
    bar_item = page.locator("#jp-menu-panel").get_by_role("menuitem", name=menu, exact=True)
    label = page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(item)}$"))
    entry = page.locator(".lm-Menu.lm-MenuBar-menu li.lm-Menu-item").filter(has=label)
    bar_item.click(timeout=t)
    expect(entry).to_be_visible(timeout=t)
    expect(entry).not_to_have_class(re.compile(r"\blm-mod-disabled\b"), timeout=t)
    entry.click(timeout=t)
    expect(entry).to_be_hidden(timeout=t)


def run_all(page: Page, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Run → Run All Cells, by clicking the menu items (the entry's command is
    `runmenu:run-all`, which delegates to `notebook:run-all-cells` for the current notebook)."""
    # activate the notebook's tab, so that the Run menu acts on this notebook
    page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current").first.click(
        timeout=timeout * 1000
    )
    click_menu(page, "Run", "Run All Cells", timeout)


def _cell_states(page: Page) -> dict[str, Any]:
    return notebook(page).evaluate(
        """(panel) => {
            const cells = [...panel.querySelectorAll('.jp-Notebook .jp-Cell.jp-CodeCell')];
            const out = {total: cells.length, done: 0, running: 0, unrun: [], stderr: [],
                         status: panel.querySelector('.jp-Notebook-ExecutionIndicator')
                                      ?.getAttribute('data-status') ?? null};
            cells.forEach((c, i) => {
                const prompt = (c.querySelector('.jp-InputArea-prompt')?.textContent ?? '').trim();
                const src = (c.querySelector('.jp-InputArea-editor .cm-content')?.textContent
                             ?? '').trim();
                if (/\\[\\*\\]/.test(prompt)) out.running += 1;
                else if (/\\[\\d+\\]/.test(prompt)) out.done += 1;
                else if (src === '') out.done += 1;  // Lab never sends empty cells
                else out.unrun.push({index: i, prompt});
                // tracebacks and stderr streams both render as this mime type
                const stderr = '[data-mime-type="application/vnd.jupyter.stderr"]';
                c.querySelectorAll('.jp-OutputArea-output' + stderr).forEach((e) =>
                    out.stderr.push({index: i, text: e.textContent.slice(0, 500)}));
            });
            return out;
        }"""
    )


def wait_all_cells_ran(page: Page, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """Wait until no `[*]` prompt remains, every non-empty code cell shows an execution number
    and the kernel is idle. Fails early (after 3 quiet seconds) when Run All stopped at an
    error and left cells unrun. Returns the final state: {"total", "done", "running", "unrun",
    "stderr": [{"index": code-cell index, "text": tracebacks and stderr output}], "status"}."""
    deadline = time.monotonic() + timeout
    stalled_since: float | None = None
    state: dict[str, Any] = {}
    while True:
        state = _cell_states(page)
        if (
            state["total"] > 0
            and state["running"] == 0
            and not state["unrun"]
            and state["status"] == "idle"
        ):
            return state
        now = time.monotonic()
        if state["running"] == 0 and state["unrun"] and state["status"] == "idle":
            stalled_since = stalled_since or now
            if now - stalled_since > 3.0:
                raise LabUIError(f"Run All stopped with cells left unrun: {state}")
        else:
            stalled_since = None
        if now > deadline:
            raise LabUIError(f"cells still running/unrun after {timeout:.0f}s: {state}")
        page.wait_for_timeout(250)


# -- artefacts -------------------------------------------------------------------------------


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot to test-output/e2e/<name>.png (project root); returns it."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "screenshot"
    path = SCREENSHOT_DIR / f"{safe}.png"
    page.screenshot(path=str(path), full_page=True, timeout=30_000)
    return path
