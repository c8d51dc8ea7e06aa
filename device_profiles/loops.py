"""Supervised background loops: the one way every long-running thread of Zhijian is started and stopped.

A :class:`Loop` is a named daemon thread that calls one ``step`` function over and over until stopped.
A step that raises does not end the thread: the error is logged once per kind with its traceback,
counted, kept as :attr:`Loop.last_error` for status files and metrics, and the loop goes on after a
backoff that doubles up to ``max_backoff_s`` (and resets after a good step). So a surprise in one
device's reader, a publisher or the ingest's batcher is visible, and recovered, instead of a thread
that silently ends while its status still says "up".

Only :class:`Exception` is caught: ``KeyboardInterrupt`` and ``SystemExit`` still end the thread. The
step decides its own pacing (it may wait on :attr:`Loop.stopping`); a step should return regularly, so a
stop takes effect. Pure standard library, no I/O of its own: it lives in the bottom package because the
edge agent and the cloud ingest both run their threads this way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Loop:
    """A named background thread running ``step()`` repeatedly, under supervision."""

    def __init__(
        self,
        name: str,
        step: Callable[[], object],
        *,
        stop: threading.Event | None = None,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.name = name
        self._step = step
        self.stopping = stop or threading.Event()
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.errors: Counter[str] = Counter()  # by exception class
        self.last_error = ""
        self.steps = 0
        self.last_step_at = time.monotonic()  # when a step last returned normally
        self._failing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def dead(self) -> bool:
        """True if the thread was started and has ended (a stop, or an error that is not an Exception)."""
        return self._thread.ident is not None and not self._thread.is_alive()

    @property
    def failing(self) -> bool:
        """True while the last step raised (cleared by the next good step)."""
        return self._failing

    def start(self) -> Loop:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the loop to stop and wait up to ``timeout_s`` for its current step to end."""
        self.stopping.set()
        self.join(timeout_s)

    def join(self, timeout_s: float = 10.0) -> None:
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def status(self) -> dict[str, Any]:
        """What status files and metrics show of this loop."""
        return {
            "alive": self.alive,
            "failing": self._failing,
            "errors": self.error_count,
            "last_error": self.last_error,
            "idle_s": round(time.monotonic() - self.last_step_at, 1),
        }

    def _run(self) -> None:
        backoff = self.min_backoff_s
        while not self.stopping.is_set():
            try:
                self._step()
            except Exception as exc:
                kind = type(exc).__name__
                if not self.errors[kind]:
                    log.error(
                        "%s: unexpected %s; the loop goes on (logged once per kind)", self.name, kind, exc_info=exc
                    )
                self.errors[kind] += 1
                self.last_error = f"{kind}: {exc!s:.200}"
                self._failing = True
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            if self._failing:
                log.info("%s: recovered after %d error(s)", self.name, self.error_count)
                self._failing = False
            backoff = self.min_backoff_s
            self.steps += 1
            self.last_step_at = time.monotonic()
