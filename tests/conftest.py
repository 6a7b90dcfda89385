"""Shared test fixtures: stamina in test mode, a deadline-based `wait_for`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import stamina

REALWORLD = Path(__file__).resolve().parents[2] / "shared" / "realworld"


@pytest.fixture(autouse=True)
def _stamina_testing() -> Iterator[None]:
    stamina.set_testing(True, attempts=3)
    yield
    stamina.set_testing(False)


def wait_for(condition: Callable[[], object], *, timeout_seconds: float, what: str = "") -> None:
    """Check `condition` until it is true or the deadline passes; the pause lives here alone."""
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout_seconds}s: {what or condition!r}")
        time.sleep(0.02)
