"""environment.yml, pyproject.toml and the README agree; CI runs the README's command."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[ ]", r.strip(), maxsplit=1)[0].lower() for r in requirements}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _environment_pip() -> list[str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("  - pip:")
    return [line.strip()[2:] for line in lines[start + 1:] if line.startswith("      - ")]


def test_environment_yml_lists_the_same_dependencies_as_pyproject() -> None:
    project = _pyproject()["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    assert set(_environment_pip()) == wanted


def test_readme_explains_every_runtime_dependency() -> None:
    readme = (ROOT / "README.md").read_text().lower()
    for name in _names(_pyproject()["project"]["dependencies"]):
        assert name in readme, f"README does not say why {name} is a dependency"


def test_readme_shows_the_two_commands_and_the_differences() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    assert "## Differences from Cloudflare" in readme


def test_ci_runs_exactly_make_test() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    assert script.strip().splitlines()[-1] == "make test"
