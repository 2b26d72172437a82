"""Waiting for what another thread or process does, bounded in time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def until(predicate: Callable[[], Any], timeout: float, what: str = "the condition") -> float:
    """Poll ``predicate`` until it is true; the seconds that took. Fails past ``timeout``."""
    start = time.monotonic()
    while not predicate():
        waited = time.monotonic() - start
        assert waited < timeout, f"{what} was not met within {timeout} s"
        time.sleep(0.01)
    return time.monotonic() - start
