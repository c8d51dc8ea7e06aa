"""Per-device sequence numbers as the ingest has seen them: replays refused, gaps counted.

A device's sequence numbers only go up (its agent's outbox guarantees it). Redeliveries are normal (QoS 1,
restarts) and are stored again harmlessly, so a message whose records lie *within* ``window`` below the
highest seq seen is accepted. One whose records all lie further back is a replay of old traffic and is
refused (reason ``replayed``). A jump forward leaves a gap; gaps are counted per device and exported,
and are visible in InfluxDB as missing ``seq`` values. The book lives in SQLite next to the spool, saved
after every stored batch, so a worker restart keeps it. With N workers each device belongs to one
partition, so each book sees all of its devices' traffic.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class SequenceBook:
    """Highest seq, gaps and late arrivals per device."""

    def __init__(self, path: str | Path = ":memory:", *, window: int = 100_000) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS device_seq (device TEXT PRIMARY KEY, highest INTEGER NOT NULL,"
            " gaps INTEGER NOT NULL, late INTEGER NOT NULL)"
        )
        self.highest: dict[str, int] = {}
        self.gaps: dict[str, int] = {}
        self.late: dict[str, int] = {}
        for device, highest, gaps, late in self._db.execute("SELECT device, highest, gaps, late FROM device_seq"):
            self.highest[device], self.gaps[device], self.late[device] = highest, gaps, late
        self._dirty: set[str] = set()

    def is_replay(self, device: str, first: int, count: int) -> bool:
        """True if every record of the message lies more than ``window`` below the highest seq seen."""
        highest = self.highest.get(device)
        return highest is not None and first + count - 1 < highest - self.window

    def observe(self, device: str, first: int, count: int) -> None:
        """Note an accepted message's seqs ``first … first+count-1``."""
        last = first + count - 1
        highest = self.highest.get(device)
        if highest is None:
            self.highest[device], self.gaps[device], self.late[device] = last, 0, 0
        elif first > highest + 1:
            self.gaps[device] += first - highest - 1
            self.highest[device] = last
        elif last <= highest:
            self.late[device] += 1  # a redelivery or a late message: stored again, harmlessly
        else:
            self.highest[device] = last
        self._dirty.add(device)

    @property
    def total_gaps(self) -> int:
        return sum(self.gaps.values())

    def save(self) -> None:
        """Persist what changed since the last save."""
        with self._lock:
            rows = [(d, self.highest[d], self.gaps[d], self.late[d]) for d in self._dirty]
            self._dirty.clear()
            if rows:
                self._db.executemany(
                    "INSERT INTO device_seq (device, highest, gaps, late) VALUES (?, ?, ?, ?) ON CONFLICT(device)"
                    " DO UPDATE SET highest = excluded.highest, gaps = excluded.gaps, late = excluded.late",
                    rows,
                )

    def close(self) -> None:
        with self._lock:
            self._db.close()
