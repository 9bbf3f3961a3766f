"""Stress tests: crash consistency (SIGKILLed writers), load, and serving.

``DOLAB_STRESS_TRIALS`` sets the crash trials (default 10, as ``make test`` runs them;
``make stress`` runs 100). Each test adds its numbers to the ``stress_report`` fixture, and the
terminal summary prints them even under ``-q``, e.g.::

    ---------------------------- dolab stress ----------------------------
    crash: 100 trials, 21034 acknowledged writes checked, lost 0, partial 0 (…)
"""

from __future__ import annotations

import pytest

_REPORT = pytest.StashKey[dict[str, str]]()


@pytest.fixture
def stress_report(request: pytest.FixtureRequest) -> dict[str, str]:
    """A dict of summary lines by topic; the terminal summary prints it."""
    return request.config.stash.setdefault(_REPORT, {})


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    report = config.stash.get(_REPORT, None)
    if not report:
        return
    terminalreporter.write_sep("-", "dolab stress")
    for topic in sorted(report):
        terminalreporter.write_line(f"{topic}: {report[topic]}")
