"""Build the lessons: notebooks/src/NN-topic.py (cells marked with ``# %%``) → executed
notebooks/NN-topic.ipynb, committed with their outputs and checked by ``pytest --nbval``.

    python notebooks/build.py            # every lesson
    python notebooks/build.py 05 08      # lessons whose name starts with 05 or 08

Cell markers: ``# %%`` code, ``# %% [markdown]`` markdown (lines start with ``# ``), and
``# %% tags=["raises-exception"]`` for a cell that shows an error on purpose.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
MARKER = re.compile(r"^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def parse(source: str) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    cells: list[tuple[bool, list[str], list[str]]] = []
    for line in source.splitlines():
        match = MARKER.match(line)
        if match:
            tags = json.loads(match["tags"]) if match["tags"] else []
            cells.append((bool(match["md"]), tags, []))
        elif cells:
            cells[-1][2].append(line)
    for markdown, tags, lines in cells:
        text = "\n".join(lines).strip("\n")
        if markdown:
            text = "\n".join(re.sub(r"^# ?", "", l) for l in text.splitlines())
            cell = nbformat.v4.new_markdown_cell(text)
        else:
            cell = nbformat.v4.new_code_cell(text)
        if tags:
            cell.metadata["tags"] = tags
        notebook.cells.append(cell)
    return notebook


def build(src: Path) -> float:
    notebook = parse(src.read_text())
    started = time.perf_counter()
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    elapsed = time.perf_counter() - started
    target = HERE / (src.stem + ".ipynb")
    nbformat.write(notebook, target)
    return elapsed


def main(argv: list[str]) -> int:
    sources = sorted((HERE / "src").glob("*.py"))
    if argv:
        sources = [s for s in sources if any(s.name.startswith(a) for a in argv)]
    for src in sources:
        print(f"{src.stem}: {build(src):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
