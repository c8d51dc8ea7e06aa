"""The spool: line-protocol batches that InfluxDB could not take yet, on disk, replayed in order.

While InfluxDB is down, the ingest keeps acknowledging messages to the broker once their lines are in the
spool (SQLite, WAL, ``synchronous=FULL``: fsync'ed, durable when :meth:`Spool.append` returns; the
file's directory entry is fsync'ed when it is opened), so memory stays
bounded under any outage. Once anything is spooled, later batches are spooled behind it too, so points
reach InfluxDB in arrival order. When the spool is at its byte quota :meth:`Spool.append` raises
:class:`SpoolFull`: the ingest then stops acknowledging and the broker keeps the messages; nothing is
dropped.
"""

from __future__ import annotations

import gzip
import sqlite3
import threading
from pathlib import Path

from device_profiles.durable import fsync_directory

from .errors import IngestError


class SpoolFull(IngestError):
    """The spool is at its byte quota."""


class Spool:
    """A FIFO of line-protocol batches in a SQLite file."""

    def __init__(self, path: str | Path = ":memory:", *, quota_bytes: int = 1 << 30) -> None:
        self.quota_bytes = quota_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # in WAL mode: the log fsync'ed at every commit
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS batch (id INTEGER PRIMARY KEY AUTOINCREMENT, lines INTEGER NOT NULL,"
            " data BLOB NOT NULL)"
        )
        if str(path) != ":memory:":
            fsync_directory(Path(path).resolve().parent)  # SQLite syncs the directory for its log, not for the file
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(lines), 0), COALESCE(SUM(LENGTH(data)), 0) FROM batch")
        self.batches, self.lines, self.bytes = (int(v) for v in row.fetchone())

    def append(self, lines: list[str]) -> None:
        """Keep ``lines`` until InfluxDB takes them; raises SpoolFull at the quota."""
        data = gzip.compress("\n".join(lines).encode(), compresslevel=1)
        with self._lock:
            if self.bytes + len(data) > self.quota_bytes:
                raise SpoolFull(f"spool at {self.bytes} of {self.quota_bytes} bytes")
            self._db.execute("INSERT INTO batch (lines, data) VALUES (?, ?)", (len(lines), data))
            self.batches += 1
            self.lines += len(lines)
            self.bytes += len(data)

    def oldest(self) -> tuple[int, list[str]] | None:
        """The oldest batch: ``(id, lines)``, or None when empty."""
        with self._lock:
            row = self._db.execute("SELECT id, data FROM batch ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return None
        return int(row[0]), gzip.decompress(row[1]).decode().split("\n")

    def remove(self, batch_id: int) -> None:
        """Forget a batch InfluxDB has taken."""
        with self._lock:
            row = self._db.execute("SELECT lines, LENGTH(data) FROM batch WHERE id = ?", (batch_id,)).fetchone()
            if row is None:
                return
            self._db.execute("DELETE FROM batch WHERE id = ?", (batch_id,))
            self.batches -= 1
            self.lines -= int(row[0])
            self.bytes -= int(row[1])

    def close(self) -> None:
        with self._lock:
            self._db.close()
