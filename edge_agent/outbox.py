"""The durable outbox: every record is on disk before the driver tells the device it was taken.

SQLite in WAL mode with ``synchronous=FULL``: once :meth:`Outbox.put` returns, the record survives a
SIGKILL or a power cut. Sequence numbers come from ``AUTOINCREMENT``, which SQLite never reuses, even
after rows are deleted, so a device's seq only goes up across restarts. A record leaves the outbox only
through :meth:`Outbox.acknowledge`, which the publisher calls when the cloud acknowledges it (see
:mod:`edge_agent.delivery` for the states in between), or :meth:`Outbox.remove_through` in the
broker-only delivery mode.

Full policy: when the stored bytes reach the quota, :meth:`Outbox.put` raises :class:`OutboxFull` and
counts a refusal. The driver then does not acknowledge the record to the device, whose own memory keeps
it, so nothing accepted is ever given up here. A record the device sent that breaks the contract is kept
in the ``dead_letter`` table with its reason instead; dead letters have their own byte quota
(``dead_letter_quota_bytes``), past which the oldest are evicted and counted, so a device babbling
garbage cannot fill the disk or push out the records.

Re-taking: a device record may be read twice if the agent dies between storing it and acknowledging it
to the device. ``put(..., source_id=n)`` stores the device's own record number in the same transaction
and ignores a number it already has, so each device record enters the outbox once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import OutboxFull

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, at_ms INTEGER);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letter (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, reason TEXT NOT NULL, data BLOB NOT NULL
);
"""


class Outbox:
    """A device's on-disk queue of records awaiting the broker's acknowledgement."""

    def __init__(
        self, path: str | Path, *, quota_bytes: int = 64 * 1024 * 1024, dead_letter_quota_bytes: int = 8 * 1024 * 1024
    ) -> None:
        self.path = Path(path)
        self.quota_bytes = quota_bytes
        self.dead_letter_quota_bytes = dead_letter_quota_bytes
        self.refused = 0
        self.dead_letters_evicted = 0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        if "at_ms" not in {row[1] for row in self._db.execute("PRAGMA table_info(records)")}:
            self._db.execute("ALTER TABLE records ADD COLUMN at_ms INTEGER")  # an outbox from before acks
        row = self._db.execute("SELECT COALESCE(SUM(LENGTH(body)), 0), COUNT(*) FROM records").fetchone()
        self._bytes, self._depth = int(row[0]), int(row[1])
        row = self._db.execute("SELECT COALESCE(SUM(LENGTH(data) + LENGTH(reason)), 0) FROM dead_letter").fetchone()
        self.dead_letter_bytes = int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def depth(self) -> int:
        """Records waiting."""
        return self._depth

    @property
    def stored_bytes(self) -> int:
        return self._bytes

    def put(self, record: Mapping[str, Any], *, source: str = "", source_id: int | None = None) -> int | None:
        """Store ``record``; its seq, or None if ``source_id`` of ``source`` was stored before."""
        body = json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        with self._lock:
            if self._bytes + len(body) > self.quota_bytes:
                self.refused += 1
                raise OutboxFull(f"outbox at {self._bytes} of {self.quota_bytes} bytes")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if source_id is not None:
                    key = f"last_id:{source}"
                    row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
                    if row is not None and source_id <= row[0]:
                        self._db.execute("ROLLBACK")
                        return None
                    self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, source_id))
                cur = self._db.execute(
                    "INSERT INTO records (body, at_ms) VALUES (?, ?)", (body, int(time.time() * 1000))
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._bytes += len(body)
            self._depth += 1
            assert cur.lastrowid is not None
            return cur.lastrowid

    def peek_batch(
        self, *, after: int = 0, through: int | None = None, max_records: int = 100, max_bytes: int = 128 * 1024
    ) -> list[tuple[int, dict[str, Any]]]:
        """The oldest records above seq ``after`` (and at most ``through``) with consecutive seqs, bounded by
        count and encoded size."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, body FROM records WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (after, through if through is not None else 2**63 - 1, max_records),
            ).fetchall()
        batch: list[tuple[int, dict[str, Any]]] = []
        size = 0
        for seq, body in rows:
            if batch and (seq != batch[-1][0] + 1 or size + len(body) > max_bytes):
                break
            batch.append((seq, json.loads(body)))
            size += len(body) + 1
        return batch

    def remove_through(self, seq: int) -> None:
        """Forget every record up to and including ``seq`` (the broker has them)."""
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(SUM(LENGTH(body)), 0), COUNT(*) FROM records WHERE seq <= ?", (seq,)
            ).fetchone()
            self._db.execute("DELETE FROM records WHERE seq <= ?", (seq,))
            self._bytes -= int(row[0])
            self._depth -= int(row[1])

    def acknowledge(self, ranges: list[tuple[int, int]]) -> int:
        """Forget the records in the seq ranges the cloud has for good; how many there were."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            removed = freed = 0
            for first, last in ranges:
                row = self._db.execute(
                    "SELECT COALESCE(SUM(LENGTH(body)), 0), COUNT(*) FROM records WHERE seq BETWEEN ? AND ?",
                    (first, last),
                ).fetchone()
                self._db.execute("DELETE FROM records WHERE seq BETWEEN ? AND ?", (first, last))
                freed += int(row[0])
                removed += int(row[1])
            self._db.execute("COMMIT")
            self._bytes -= freed
            self._depth -= removed
            return removed

    def oldest_age_s(self) -> float:
        """How long the oldest record has waited for the cloud (0 when the outbox is empty)."""
        with self._lock:
            row = self._db.execute("SELECT at_ms FROM records ORDER BY seq LIMIT 1").fetchone()  # by the index
        return max(0.0, time.time() - row[0] / 1000) if row and row[0] else 0.0

    def dead_letter(self, reason: str, data: bytes, *, at_ms: int) -> None:
        """Keep bytes from the device that could not become a record, with the reason; evict the oldest
        letters past the dead-letter quota (counted in :attr:`dead_letters_evicted`)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT INTO dead_letter (at_ms, reason, data) VALUES (?, ?, ?)", (at_ms, reason, data))
            self.dead_letter_bytes += len(data) + len(reason)
            while self.dead_letter_bytes > self.dead_letter_quota_bytes:
                oldest = self._db.execute(
                    "SELECT id, LENGTH(data) + LENGTH(reason) FROM dead_letter ORDER BY id LIMIT 1"
                ).fetchone()
                if oldest is None:
                    break
                self._db.execute("DELETE FROM dead_letter WHERE id = ?", (oldest[0],))
                self.dead_letter_bytes -= int(oldest[1])
                self.dead_letters_evicted += 1
            self._db.execute("COMMIT")

    def dead_letters(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return [(r, bytes(d)) for r, d in self._db.execute("SELECT reason, data FROM dead_letter ORDER BY id")]
