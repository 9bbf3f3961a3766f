"""The lessons and the pitfall checker agree (issue 11): in the committed notebooks, every
finding printed beneath a cell stands under a "The wrong way" or "Exercise" heading, and each
lesson's wrong way shows the finding it teaches. nbval re-runs the notebooks, so these outputs
are what the checker says today."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
FINDING = re.compile(r"^line \d+: ([a-z-]+):", re.MULTILINE)
TAUGHT = {
    "02-why-not-kv": "kv-for-state",
    "03-one-instance-per-id": "new-id-per-request",
    "04-no-external-locks": "external-coordination",
    "05-input-gates": "await-between-read-and-write",
    "07-initialization": "storage-read-per-request",
    "08-alarms-vs-timers": "timer-instead-of-alarm",
    "09-storage-limits": "oversized-value",
    "11-workers-and-wrangler": "missing-binding",
}
LESSONS = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


def findings_by_section(stem: str) -> list[tuple[str, str]]:
    """(heading, code) for each finding printed in the notebook's outputs."""
    cells = json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text())["cells"]
    heading, found = "", []
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            heading = next((l for l in source.splitlines() if l.startswith("## ")), heading)
            continue
        for output in cell.get("outputs", []):
            for code in FINDING.findall("".join(output.get("text", ""))):
                found.append((heading, code))
    return found


def test_every_lesson_is_committed_with_its_source() -> None:
    sources = sorted(p.stem for p in (NOTEBOOKS / "src").glob("*.py"))
    assert LESSONS == sources and len(LESSONS) == 13


@pytest.mark.parametrize("stem", LESSONS)
def test_findings_appear_only_under_the_wrong_way_or_the_exercise(stem: str) -> None:
    for heading, code in findings_by_section(stem):
        assert heading.startswith(("## The wrong way", "## Exercise")), (stem, heading, code)


@pytest.mark.parametrize("stem", sorted(TAUGHT))
def test_the_wrong_way_shows_the_finding_it_teaches(stem: str) -> None:
    wrong = {code for heading, code in findings_by_section(stem)
             if heading.startswith("## The wrong way")}
    assert TAUGHT[stem] in wrong, (stem, wrong)


@pytest.mark.parametrize("stem", LESSONS)
def test_every_code_cell_was_executed(stem: str) -> None:
    cells = json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text())["cells"]
    assert all(c["execution_count"] for c in cells if c["cell_type"] == "code")
