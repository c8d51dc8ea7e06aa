"""Waiting on a condition in tests, the one way: poll until it holds or a generous deadline passes.

Tests wait on what they need to see (a message stored, a process connected), never for a fixed time; the
deadline only bounds a test that would otherwise hang, so it is set far above what a loaded machine
takes (the default 30 s), and it is not a measurement.
"""

from __future__ import annotations

import time
from collections.abc import Callable

DEFAULT_TIMEOUT_S = 30.0


def wait_until(
    predicate: Callable[[], object],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    *,
    interval_s: float = 0.1,
    ignoring: tuple[type[Exception], ...] = (),
) -> bool:
    """Whether ``predicate()`` became true within ``timeout_s`` (it is asked once more at the deadline, so a
    slow poll never misses a condition that holds by then). Exceptions of the ``ignoring`` types count as
    "not yet" (a server still starting); any other propagates. Use as ``assert wait_until(...), "what"``."""
    deadline = time.monotonic() + timeout_s
    while True:
        last_try = time.monotonic() >= deadline
        try:
            if predicate():
                return True
        except ignoring:
            pass
        if last_try:
            return False
        time.sleep(interval_s)
