"""Wait for a condition with a deadline (never a bare sleep as synchronisation)."""

from __future__ import annotations

import time
from collections.abc import Callable


class Timeout(AssertionError):
    pass


def poll(what: str, check: Callable[[], bool], deadline_s: float, interval_s: float = 0.05) -> None:
    end = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > end:
            raise Timeout(f"timed out after {deadline_s:.0f}s waiting for {what}")
        time.sleep(interval_s)
