"""Rejected payloads in the operator's log: the first at once, with its detail, then one summary a minute.

A reason logged once per process lifetime hid everything after the first (the hundredth unknown device
looked like the first); a line per payload would flood the log when a misconfigured scale resends every
second. So the first rejection of a quiet spell is logged with its detail, and the rest are counted by reason
and device and logged as one line when the interval has passed::

    12 payloads rejected in the last minute: unknown_device ×12 from scale-0010

The counters by reason (the metrics) and the dead letters (every payload, kept) are not affected.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from device_profiles.topics import parse

SHOWN_DEVICES = 3  # per reason; the rest are counted


def _device(topic_name: str) -> str:
    found = parse(topic_name)
    return found[0] if found else "?"


def _span(seconds: float) -> str:
    if seconds == 60:
        return "the last minute"
    if seconds % 60 == 0:
        return f"the last {seconds / 60:g} minutes"
    return f"the last {seconds:g} s"


class RejectionLog:
    """Counts rejections by (reason, device) and logs them as summaries every ``interval_s``."""

    def __init__(
        self, logger: logging.Logger, *, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.log = logger
        self.interval_s = interval_s
        self.clock = clock
        self._pending: Counter[tuple[str, str]] = Counter()
        self._window_start: float | None = None  # when the first rejection of the current window came

    def add(self, topic_name: str, reason: str, detail: str) -> None:
        """One rejected payload; logged at once if the log has been quiet for an interval, else counted."""
        now = self.clock()
        self.flush(now)
        if self._window_start is None:
            self._window_start = now
            self.log.warning(
                "rejected a payload on %s: %s: %s (further rejections summarised every %s)",
                topic_name,
                reason,
                detail,
                _span(self.interval_s).removeprefix("the last "),
            )
            return
        self._pending[(reason, _device(topic_name))] += 1

    def flush(self, now: float | None = None) -> None:
        """Log the summary if its interval has passed (called on every rejection and by the batch loop, so a
        summary comes out even when the rejections stop)."""
        now = self.clock() if now is None else now
        if self._window_start is None or now - self._window_start < self.interval_s:
            return
        # a window with more rejections than its first opens another; one without ends the spell, and the
        # next rejection is logged at once again
        self._window_start = now if self._pending else None
        if self._pending:
            self.log.warning(self.summary())
        self._pending.clear()

    def summary(self) -> str:
        """``"12 payloads rejected in the last minute: unknown_device ×12 from scale-0010"``."""
        by_reason: dict[str, Counter[str]] = {}
        for (reason, device), n in self._pending.items():
            by_reason.setdefault(reason, Counter())[device] += n
        parts = []
        for reason, devices in sorted(by_reason.items(), key=lambda kv: -sum(kv[1].values())):
            top = devices.most_common(SHOWN_DEVICES)
            named = ", ".join(d if len(devices) == 1 else f"{d} ×{n}" for d, n in top)
            more = len(devices) - len(top)
            parts.append(f"{reason} ×{sum(devices.values())} from {named}" + (f" and {more} more" if more else ""))
        total = sum(self._pending.values())
        noun = "payload" if total == 1 else "payloads"
        return f"{total} {noun} rejected in {_span(self.interval_s)}: " + "; ".join(parts)
