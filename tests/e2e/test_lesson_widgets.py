"""Lesson 01 in a real JupyterLab: Run All from the menu, then the live widgets show the run."""
from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from .lab_page import code_cells, open_notebook, outputs, run_all, screenshot, wait_all_cells_ran
from .lab_server import LabServer

T = 60_000
DASHBOARD_CELL = 9       # the cell that displays lab.show() in notebooks/src/01-tour.py
EXPECTED_BARS = 110      # every request of the lesson: 56 Worker requests + 54 object events


def test_tour_runs_all_and_the_dashboard_shows_it(page: Any, jupyterlab: LabServer) -> None:
    open_notebook(page, jupyterlab, "notebooks/01-tour.ipynb")
    run_all(page)
    state = wait_all_cells_ran(page, timeout=120)
    assert code_cells(page).count() == 8
    assert not any("[*]" in prompt for prompt in state.get("prompts", []))

    dashboard = outputs(page, DASHBOARD_CELL)
    expect(dashboard.locator(".dolab-tl-bar")).to_have_count(EXPECTED_BARS, timeout=T)
    inspector = dashboard.locator(".dolab-inspector")
    expect(inspector).to_contain_text("count", timeout=T)
    expect(inspector).to_contain_text("51", timeout=T)
    cards = dashboard.locator(".dolab-so-card")
    expect(cards).to_have_count(3, timeout=T)
    expect(cards.first).to_contain_text("count=51", timeout=T)
    dashboard.first.scroll_into_view_if_needed()
    screenshot(page, "lesson-01-dashboard")


def test_run_all_passes_cells_that_raise_on_purpose_and_sync_magics(
        page: Any, jupyterlab: LabServer) -> None:
    """Lesson 11 has cells tagged raises-exception and `%dolab fetch`, a synchronous magic that
    runs a coroutine inside the kernel's loop (nest-asyncio2): Run All must reach the end."""
    open_notebook(page, jupyterlab, "notebooks/11-workers-and-wrangler.ipynb")
    run_all(page)
    wait_all_cells_ran(page, timeout=120)
    last = code_cells(page).last
    expect(last.locator(".jp-OutputArea-output")).to_contain_text("✗", timeout=T)
    screenshot(page, "lesson-11-run-all")
