from __future__ import annotations

from typing import AsyncIterator

import pytest

from dolab import Lab


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    """An in-memory lab on the virtual clock, worker name "my-worker" (the spec's test vectors)."""
    instance = Lab(name="my-worker", path=None, clock="virtual")
    yield instance
    await instance.settle()
    instance.close()

# Fixture notebooks of the browser tests are inputs, not lessons: nbval must not collect them.
collect_ignore_glob = ["e2e/fixtures/*"]
