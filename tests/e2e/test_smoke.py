"""Smoke test of the harness: JupyterLab opens a notebook, Run All from the menu, outputs render
(plain text, an ipywidgets slider, an anywidget)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from .lab_page import (
    code_cells,
    notebook,
    open_notebook,
    outputs,
    run_all,
    screenshot,
    wait_all_cells_ran,
)
from .lab_server import LabServer

pytestmark = pytest.mark.browser

T = 60_000  # ms


def test_smoke_run_all_renders_outputs(page: Any, jupyterlab: LabServer) -> None:
    open_notebook(page, jupyterlab, "fixtures/smoke.ipynb")
    expect(code_cells(page)).to_have_count(3)

    run_all(page)
    state = wait_all_cells_ran(page)
    assert state["done"] == 3 and not state["stderr"], state
    prompts = code_cells(page).locator(".jp-InputArea-prompt").all_inner_texts()
    prompts = [p.strip() for p in prompts]
    assert prompts == ["[1]:", "[2]:", "[3]:"], prompts

    # cell 1 (index 1; index 0 is markdown): the print
    expect(outputs(page, 1)).to_contain_text("smoke: kernel says 42", timeout=T)

    # cell 2: the ipywidgets slider, rendered by the @jupyter-widgets labextension
    slider = outputs(page, 2).locator(".jupyter-widgets.widget-slider")
    expect(slider).to_be_visible(timeout=T)
    expect(slider.locator(".widget-readout")).to_have_text("7", timeout=T)
    expect(slider).to_contain_text("seven")

    # cell 3: the anywidget's ESM ran in the page and rendered its span
    span = outputs(page, 3).locator("span.dolab-smoke")
    expect(span).to_have_text("hello from anywidget", timeout=T)

    # nothing fell back to a text repr (a missing widget manager shows "IntSlider(value=7...)")
    text_reprs = notebook(page).locator(".jp-OutputArea-output").filter(has_text="IntSlider(")
    expect(text_reprs).to_have_count(0)
    screenshot(page, "smoke")
