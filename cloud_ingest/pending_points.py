"""Points heard off the batch thread, waiting for the batch thread to write them.

A base's ``ack_alert`` reply arrives on paho's network thread (or the NATS worker's event loop), which
must never wait for InfluxDB; its ``alert_state`` point waits here and goes with the next batch's write
(:meth:`Pipeline.commit`) or between batches (:meth:`Pipeline.flush_pending`), through the spool when
InfluxDB is away. Bounded: past :data:`MAX_POINTS` the oldest are dropped and counted (acknowledgements
are rare; ten thousand waiting means the batch thread has stopped).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

MAX_POINTS = 10_000


class PendingPoints:
    """Line-protocol lines in arrival order; safe from several threads (a deque's appends and pops are)."""

    def __init__(self, max_points: int = MAX_POINTS) -> None:
        self._lines: deque[str] = deque(maxlen=max_points)
        self.dropped = 0

    def put(self, line: str) -> None:
        if len(self._lines) == self._lines.maxlen:
            self.dropped += 1
        self._lines.append(line)

    def take(self) -> list[str]:
        """Every line waiting, oldest first."""
        out = []
        while True:
            try:
                out.append(self._lines.popleft())
            except IndexError:
                return out

    def put_back(self, lines: Sequence[str]) -> None:
        """Lines taken but not written: first again (the newest fall out past the bound, counted)."""
        maxlen = self._lines.maxlen or 0
        self.dropped += max(0, len(self._lines) + len(lines) - maxlen)
        self._lines.extendleft(reversed(lines))

    def __len__(self) -> int:
        return len(self._lines)
