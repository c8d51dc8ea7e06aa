"""The durable outbox: every record is on disk before the driver tells the device it was taken.

SQLite in WAL mode with ``synchronous=FULL``: once :meth:`Outbox.put` returns, the record survives a
SIGKILL or a power cut. Sequence numbers come from ``AUTOINCREMENT``, which SQLite never reuses, even
after rows are deleted, so a device's seq only goes up across restarts. A record leaves the outbox only
through :meth:`Outbox.acknowledge`, which the publisher calls when the cloud acknowledges it (see
:mod:`edge_agent.delivery` for the states in between), or :meth:`Outbox.remove_through` in the
broker-only delivery mode. Removals commit without an fsync of their own: the next record's commit
syncs them. A power cut before that brings acknowledged records back, to be sent again with their seqs,
which the cloud stores once; it never loses one.

Full policy: when the stored bytes reach the quota, :meth:`Outbox.put` raises :class:`OutboxFull` and
counts a refusal. The driver then does not acknowledge the record to the device, whose own memory keeps
it, so nothing accepted is ever given up here. A record the device sent that breaks the contract is kept
in the ``dead_letter`` table with its reason instead; dead letters have their own byte quota
(``dead_letter_quota_bytes``), past which the oldest are evicted and counted, so a device babbling
garbage cannot fill the disk or push out the records.

Re-taking: a device record may be read twice if the agent dies between storing it and acknowledging it
to the device. ``put(..., source_id=n)`` stores the device's own record number in the same transaction
and ignores a number it already has, so each device record enters the outbox once.

Group commit: the reader threads of an agent's sources put at the same time, and what a record costs is
the fsync of its commit. Callers of :meth:`Outbox.put` and :meth:`Outbox.put_many` that arrive while a
commit is in progress queue up; when it ends, the first of them leads one transaction for everything
queued (each record still checked on its own, in arrival order: its ``source_id``, the quota) and one
fsync, then hands every caller its own result. A caller returns only once the transaction holding its
record is committed, so "on disk when ``put`` returns" holds as before; a caller alone commits at once,
as before. If the transaction fails, every caller in it gets :class:`OutboxWriteError` and none of its
records is stored.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import OutboxFull, OutboxWriteError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, at_ms INTEGER);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letter (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, reason TEXT NOT NULL, data BLOB NOT NULL
);
"""


class _Write:
    """One caller's records in a group commit, and what became of them (a plain class: it is made per put)."""

    __slots__ = ("done", "error", "full_at", "items", "results", "signalled", "wake")

    def __init__(self, items: list[tuple[str, str, int | None]]) -> None:
        self.items = items  # (encoded record, source, source_id), in the caller's order
        self.results: list[int | None] = []  # a seq, or None for a record stored before
        self.full_at: int | None = None  # stored bytes when a record did not fit: it and the rest were not stored
        self.error: BaseException | None = None  # the transaction failed: nothing of it is stored
        self.done = False
        self.wake: threading.Lock | None = None  # made for a caller that waits, released to wake it
        self.signalled = False  # released and not yet taken by the caller


def _signal(write: _Write) -> None:
    """Wake ``write``'s caller (under the queue's lock): done, or the next commit is free to lead."""
    if write.wake is not None and not write.signalled:
        write.signalled = True
        write.wake.release()


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode  # one, not one per put


class Outbox:
    """A device's on-disk queue of records awaiting the cloud's acknowledgement."""

    def __init__(
        self, path: str | Path, *, quota_bytes: int = 64 * 1024 * 1024, dead_letter_quota_bytes: int = 8 * 1024 * 1024
    ) -> None:
        self.path = Path(path)
        self.quota_bytes = quota_bytes
        self.dead_letter_quota_bytes = dead_letter_quota_bytes
        self.refused = 0
        self.dead_letters_evicted = 0
        self.commits = 0  # transactions that stored records (one per group commit)
        self._lock = threading.Lock()  # the connection
        self._group = threading.Lock()  # the queue of writes and whether a commit is in progress
        self._queue: list[_Write] = []
        self._committing = False
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
        """Store ``record`` durably; its seq, or None if ``source_id`` of ``source`` was stored before.

        Raises :class:`OutboxFull` (and counts a refusal) if it does not fit, :class:`OutboxWriteError` if
        the transaction failed."""
        return self._write([(_encode(record), source, source_id)])[0]

    def put_many(
        self, records: Iterable[tuple[Mapping[str, Any], int | None]], *, source: str = ""
    ) -> list[int | None]:
        """Store ``(record, source_id)`` pairs of ``source`` in order, in one commit; their results as
        :meth:`put` returns them. At a record that does not fit, that one and the rest are not stored:
        :class:`OutboxFull` is raised with the results of those before it (stored) in ``stored``."""
        items = [(_encode(record), source, source_id) for record, source_id in records]
        return self._write(items) if items else []

    def _write(self, items: list[tuple[str, str, int | None]]) -> list[int | None]:
        """Queue ``items``; lead the next commit if none is in progress, else wait for the one that takes
        them. Returns or raises only once they are committed (or their transaction failed).

        Each waiting caller has its own lock to be woken by, so a commit wakes the callers it served and
        the first one queued behind it (which leads next), not every waiting thread."""
        write = _Write(items)
        with self._group:
            self._queue.append(write)
            leader = not self._committing
            if not leader:
                write.wake = wake = threading.Lock()
                wake.acquire()
            self._committing = True
        while not leader:
            # the timeout only matters if the caller woken to lead next was interrupted: another leads
            woken = wake.acquire(timeout=1.0)
            with self._group:
                if woken:
                    write.signalled = False
                if write.done:
                    break
                leader = not self._committing
                self._committing = True
        if leader:
            with self._group:
                group, self._queue = self._queue, []
            try:
                self._commit(group)
            finally:
                with self._group:
                    self._committing = False
                    for each in group:
                        each.done = True
                        if each is not write:
                            _signal(each)
                    if self._queue:
                        _signal(self._queue[0])
        if write.error is not None:
            if leader and not isinstance(write.error, Exception):
                raise write.error  # KeyboardInterrupt, SystemExit: this thread's own
            raise OutboxWriteError(f"the outbox could not store the record: {write.error!r}") from write.error
        if write.full_at is not None:
            raise OutboxFull(f"outbox at {write.full_at} of {self.quota_bytes} bytes", stored=write.results)
        return write.results

    def _commit(self, group: list[_Write]) -> None:
        """Store every write of ``group`` in one transaction; the outcome goes into each write."""
        with self._lock:
            execute, quota = self._db.execute, self.quota_bytes
            stored, added, refused = self._bytes, 0, 0
            try:
                execute("BEGIN IMMEDIATE")
                at_ms = int(time.time() * 1000)
                for write in group:
                    results = write.results
                    for body, source, source_id in write.items:
                        if stored + len(body) > quota:
                            write.full_at = stored
                            refused += 1
                            break
                        if source_id is not None:  # the transaction sees its own earlier rows
                            key = f"last_id:{source}"
                            row = execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
                            if row is not None and source_id <= row[0]:
                                results.append(None)
                                continue
                            execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, source_id))
                        results.append(
                            execute("INSERT INTO records (body, at_ms) VALUES (?, ?)", (body, at_ms)).lastrowid
                        )
                        stored += len(body)
                        added += 1
                execute("COMMIT")
            except BaseException as exc:
                try:
                    if self._db.in_transaction:
                        execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the connection is broken; the error that broke it is the one to report
                for write in group:
                    write.results, write.full_at, write.error = [], None, exc
                return
            self._bytes = stored
            self._depth += added
            self.refused += refused
            self.commits += 1

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
        self.acknowledge([(0, seq)])

    def acknowledge(self, ranges: list[tuple[int, int]]) -> int:
        """Forget the records in the seq ranges the cloud has for good; how many there were.

        Committed without waiting for the disk (``synchronous=NORMAL`` for this transaction): the next
        record's commit or a checkpoint syncs it with everything before it. A power cut before that brings
        the records back, and they are sent again with the same seqs, which the cloud stores once; waiting
        for an fsync per acknowledgement only took turns with the records' own."""
        with self._lock:
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
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
            finally:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._db.execute("PRAGMA synchronous=FULL")
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
