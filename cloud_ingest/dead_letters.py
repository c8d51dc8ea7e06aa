"""The ingest's dead letters: every refused payload, bytes and all, with its reason, within byte quotas.

A dead letter is evidence (a forged tag, a scale sending out-of-range sales), so it is kept, but a device
that floods bad payloads must neither fill the disk nor push out what other devices left. So:

- each device (the one the topic names; the broker's ACL makes that the sender) has a byte quota
  (``device_quota_bytes``): past it, that device's *own* oldest dead letters are evicted;
- all dead letters together have a quota (``total_quota_bytes``): past it, the oldest dead letter of the
  device holding the most bytes is evicted, so the biggest sender pays first.

Evictions are counted per device (exported as a metric, logged once per device). Letters are buffered in
memory and written by :meth:`DeadLetters.flush` in one transaction (the pipeline flushes before a batch is
acknowledged), so a flood of bad payloads costs one disk sync per batch, not one per payload.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

from device_profiles.topics import parse

log = logging.getLogger(__name__)

NO_DEVICE = "(none)"  # letters whose topic names no device (a bad topic, the spool, derived points)
_ROW_OVERHEAD = 64  # bytes per row besides topic, detail and payload, roughly what SQLite spends


def _device_of(topic: str) -> str:
    parsed = parse(topic)
    return parsed[0] if parsed is not None else NO_DEVICE


class DeadLetters:
    """Refused payloads with their reason, in SQLite, bounded by bytes per device and in total."""

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        device_quota_bytes: int = 16 * 1024 * 1024,
        total_quota_bytes: int = 1024 * 1024 * 1024,
    ) -> None:
        self.device_quota_bytes = device_quota_bytes
        self.total_quota_bytes = total_quota_bytes
        self.evicted: Counter[str] = Counter()  # per device
        self.kept_bytes: Counter[str] = Counter()  # per device
        self._pending: list[tuple[int, str, str, str, str, bytes, int]] = []
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS dead_letter (id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER,"
            " topic TEXT, reason TEXT, detail TEXT, payload BLOB)"
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(dead_letter)")}
        if "device" not in columns:  # a store from before quotas: add what they need
            self._db.execute("ALTER TABLE dead_letter ADD COLUMN device TEXT NOT NULL DEFAULT ''")
            self._db.execute("ALTER TABLE dead_letter ADD COLUMN size INTEGER NOT NULL DEFAULT 0")
            for row_id, topic, detail, payload in self._db.execute(
                "SELECT id, topic, detail, payload FROM dead_letter"
            ).fetchall():
                size = len(topic or "") + len(detail or "") + len(payload or b"") + _ROW_OVERHEAD
                self._db.execute(
                    "UPDATE dead_letter SET device = ?, size = ? WHERE id = ?", (_device_of(topic), size, row_id)
                )
        self._db.execute("CREATE INDEX IF NOT EXISTS dead_letter_device ON dead_letter (device, id)")
        for device, size in self._db.execute("SELECT device, SUM(size) FROM dead_letter GROUP BY device"):
            self.kept_bytes[device] = int(size)

    @property
    def total_bytes(self) -> int:
        return sum(self.kept_bytes.values())

    def add(self, topic: str, reason: str, detail: str, payload: bytes) -> None:
        """Keep one refused payload (written at the next :meth:`flush`)."""
        topic = _printable(topic)
        detail = _printable(detail[:500])
        size = len(topic) + len(detail) + len(payload) + _ROW_OVERHEAD
        with self._lock:
            self._pending.append((int(time.time() * 1000), topic, _device_of(topic), reason, detail, payload, size))

    def flush(self) -> None:
        """Write buffered letters in one transaction and evict what exceeds the quotas."""
        with self._lock:
            if not self._pending:
                return
            rows, self._pending = self._pending, []
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO dead_letter (at_ms, topic, device, reason, detail, payload, size)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                for row in rows:
                    self.kept_bytes[row[2]] += row[6]
                for device in {row[2] for row in rows}:
                    if self.kept_bytes[device] > self.device_quota_bytes:
                        self._evict(device, self.kept_bytes[device] - self.device_quota_bytes)
                while self.total_bytes > self.total_quota_bytes:
                    biggest, _ = self.kept_bytes.most_common(1)[0]
                    self._evict(biggest, self.total_bytes - self.total_quota_bytes)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._pending = rows + self._pending
                raise

    def _evict(self, device: str, excess: int) -> None:
        """Delete ``device``'s oldest letters until ``excess`` bytes are gone (at least one letter)."""
        freed, ids, after = 0, [], -1
        while freed < excess:
            chunk = self._db.execute(
                "SELECT id, size FROM dead_letter WHERE device = ? AND id > ? ORDER BY id LIMIT 256", (device, after)
            ).fetchall()
            if not chunk:
                break
            for row_id, size in chunk:
                ids.append((row_id,))
                freed += size
                after = row_id
                if freed >= excess:
                    break
        self._db.executemany("DELETE FROM dead_letter WHERE id = ?", ids)
        if not self.evicted[device]:
            log.warning("dead letters of %s exceed their quota; evicting its oldest (logged once)", device)
        self.evicted[device] += len(ids)
        self.kept_bytes[device] -= freed
        if self.kept_bytes[device] <= 0:
            del self.kept_bytes[device]

    def rows(self) -> list[tuple[str, str, bytes]]:
        """Every kept letter as (topic, reason, payload), oldest first (flushes first)."""
        self.flush()
        with self._lock:
            return [
                (t, r, bytes(p))
                for t, r, p in self._db.execute("SELECT topic, reason, payload FROM dead_letter ORDER BY id")
            ]

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._db.close()


def _printable(text: str) -> str:
    """Text SQLite can store whatever it holds (a lone surrogate becomes an escape)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
