"""Static checks as tests: pyflakes on the whole tree, mypy (strict, pyproject.toml) on dolab/."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.slow
def test_pyflakes_finds_nothing() -> None:
    result = _run("pyflakes", "dolab", "bench", "tests", "tools", "notebooks/build.py")
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.slow
def test_mypy_strict_finds_nothing_in_the_package() -> None:
    result = _run("mypy", "dolab")
    assert result.returncode == 0, result.stdout + result.stderr
