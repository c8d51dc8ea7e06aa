"""The ingest's dead letters: every refused payload, bytes and all, with its reason, within byte quotas.

A dead letter is evidence (a forged tag, a scale sending out-of-range sales), so it is kept, but a device
that floods bad payloads must neither fill the disk nor push out what other devices left. So:

- each device (the one the topic names; the broker's ACL makes that the sender) has a byte quota
  (``device_quota_bytes``): past it, that device's *own* oldest dead letters are evicted;
- all dead letters together have a quota (``total_quota_bytes``): past it, the oldest dead letter of the
  device holding the most bytes is evicted, so the biggest sender pays first.

The same refusal again (same reason, topic, detail and bytes: a message the broker redelivers because
the ingest crashed after keeping its letter and before acknowledging it, or a device sending one bad
payload over and over) is counted on the letter already kept (``times``, ``last_at_ms``), not kept
twice; after an operator's replay, a refusal of it is a new letter.

Evictions are counted per device (exported as a metric, logged once per device). Letters are buffered in
memory and written by :meth:`DeadLetters.flush` in one transaction (the pipeline flushes before a batch is
acknowledged), so a flood of bad payloads costs one disk sync per batch, not one per payload.

Operators read the store while the ingest runs (:class:`DeadLetterFile`, behind ``zhijian ingest
dead-letters``): the file is in WAL mode, so a reader never blocks the ingest's writes nor sees half a
batch, and the one thing an operator writes — ``replayed_at``, when a letter was published again for the
ingest to judge anew — is a short transaction of its own. A replayed letter is kept: it stays evidence
until its quota evicts it.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_profiles.envelope import MAX_PAYLOAD_BYTES
from device_profiles.topics import parse

from .errors import IngestError
from .state_store import StateStore, open_store

log = logging.getLogger(__name__)

#: (at_ms, topic, device, reason, detail, payload, size, digest): a letter waiting to be written
_Row = tuple[int, str, str, str, str, bytes, int, bytes]
MAX_LETTER_BYTES = MAX_PAYLOAD_BYTES  # the largest payload the contract admits; beyond it only the start is kept
NO_DEVICE = "(none)"  # letters whose topic names no device (a bad topic, the spool, derived points)
_ROW_OVERHEAD = 64  # bytes per row besides topic, detail and payload, roughly what SQLite spends


def _device_of(topic: str) -> str:
    parsed = parse(topic)
    return parsed[0] if parsed is not None else NO_DEVICE


class DeadLetters:
    """Refused payloads with their reason, in SQLite, bounded by bytes per device and in total."""

    def __init__(
        self,
        path: str | Path | StateStore = ":memory:",
        *,
        device_quota_bytes: int = 16 * 1024 * 1024,
        total_quota_bytes: int = 1024 * 1024 * 1024,
    ) -> None:
        self.device_quota_bytes = device_quota_bytes
        self.total_quota_bytes = total_quota_bytes
        self.evicted: Counter[str] = Counter()  # per device
        self.kept_bytes: Counter[str] = Counter()  # per device
        self._pending: list[_Row] = []
        self._freed_since_vacuum = 0
        # the store's file gives back what evictions free (auto_vacuum=INCREMENTAL), and its WAL is cut back
        # to 16 MiB after each checkpoint: on disk it stays near the quota, not near the largest batch; in WAL
        # mode `zhijian ingest dead-letters` reads while we write
        self.store = open_store(path)
        self._lock = self.store.lock
        self._db = self.store.db
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
        if "replayed_at" not in columns:  # when an operator last published it again (None: never)
            self._db.execute("ALTER TABLE dead_letter ADD COLUMN replayed_at INTEGER")
        if "digest" not in columns:  # the same refusal again (a redelivery after a crash) is counted, not kept twice
            self._db.execute("ALTER TABLE dead_letter ADD COLUMN digest BLOB")
            self._db.execute("ALTER TABLE dead_letter ADD COLUMN times INTEGER NOT NULL DEFAULT 1")
            self._db.execute("ALTER TABLE dead_letter ADD COLUMN last_at_ms INTEGER")
        # once replayed, a letter leaves the index: what the ingest refuses again after a replay is a new letter
        self._db.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS dead_letter_unreplayed ON dead_letter (digest) WHERE replayed_at IS NULL"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS dead_letter_device ON dead_letter (device, id)")
        for device, size in self._db.execute("SELECT device, SUM(size) FROM dead_letter GROUP BY device"):
            self.kept_bytes[device] = int(size)

    @property
    def total_bytes(self) -> int:
        return sum(self.kept_bytes.values())

    def add(self, topic: str, reason: str, detail: str, payload: bytes) -> None:
        """Keep one refused payload (written at the next :meth:`flush`); beyond the contract's largest payload
        only its first :data:`MAX_LETTER_BYTES` are kept, and the detail says so."""
        topic = _printable(topic)
        detail = _printable(detail[:500])
        if len(payload) > MAX_LETTER_BYTES:
            detail = f"{detail} (first {MAX_LETTER_BYTES} of {len(payload)} bytes kept)"
            payload = payload[:MAX_LETTER_BYTES]
        size = len(topic) + len(detail) + len(payload) + _ROW_OVERHEAD
        what = b"\0".join((reason.encode(), topic.encode(), detail.encode("utf-8", "surrogatepass"), payload))
        digest = hashlib.blake2b(what, digest_size=16).digest()
        with self._lock:
            self._pending.append(
                (int(time.time() * 1000), topic, _device_of(topic), reason, detail, payload, size, digest)
            )

    def flush(self) -> None:
        """Write buffered letters in one transaction and evict what exceeds the quotas."""
        with self._lock:
            if not self._pending:
                return
            rows, self._pending = self._trimmed(self._pending), []
            kept, evicted = self.kept_bytes.copy(), self.evicted.copy()
            try:
                with self.store.transaction() as db:
                    new = self._again(db, rows)
                    for row in new:
                        self.kept_bytes[row[2]] += row[6]
                    for device in {row[2] for row in rows}:
                        if self.kept_bytes[device] > self.device_quota_bytes:
                            self._evict(device, self.kept_bytes[device] - self.device_quota_bytes)
                    while self.total_bytes > self.total_quota_bytes:
                        biggest, _ = self.kept_bytes.most_common(1)[0]
                        self._evict(biggest, self.total_bytes - self.total_quota_bytes)
            except BaseException:
                self._put_back(rows, kept, evicted)
                raise
            self.store.on_rollback(lambda: self._put_back(rows, kept, evicted))  # the outer transaction's
            if self._freed_since_vacuum > 4 * 1024 * 1024 and not self.store.in_transaction:
                self._db.execute("PRAGMA incremental_vacuum")
                self._freed_since_vacuum = 0

    def _again(self, db: sqlite3.Connection, rows: list[_Row]) -> list[_Row]:
        """Write ``rows``: each refusal once (same reason, topic, detail and bytes: a message redelivered after a
        crash, a flood of one payload), a letter already kept (and not replayed since) counting it again
        (``times``, ``last_at_ms``) instead of a second copy. Returns the rows written as new letters."""
        first: dict[bytes, _Row] = {}
        times: Counter[bytes] = Counter()
        for row in rows:
            first.setdefault(row[7], row)
            times[row[7]] += 1
        kept: set[bytes] = set()
        digests = list(first)
        for i in range(0, len(digests), 500):
            chunk = digests[i : i + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT digest FROM dead_letter WHERE replayed_at IS NULL AND digest IN ({marks})"  # noqa: S608
            kept.update(d for (d,) in db.execute(query, chunk))
        new = [row for d, row in first.items() if d not in kept]
        db.executemany(
            "INSERT INTO dead_letter (at_ms, topic, device, reason, detail, payload, size, digest)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            new,
        )
        again = [(times[d] - (d not in kept), rows[-1][0], d) for d in first if times[d] - (d not in kept)]
        db.executemany(
            "UPDATE dead_letter SET times = times + ?, last_at_ms = ? WHERE digest = ? AND replayed_at IS NULL", again
        )
        return new

    def _put_back(self, rows: list[_Row], kept: Counter[str], evicted: Counter[str]) -> None:
        """Rolled back: the letters wait for the next flush, the counts as they were."""
        self._pending = rows + self._pending
        self.kept_bytes, self.evicted = kept, evicted

    def _trimmed(self, rows: list[_Row]) -> list[_Row]:
        """``rows`` without those that could only be written to be evicted at once: per device, the newest
        that fit its quota (at least one). A flood of large letters never passes through the disk."""
        room: dict[str, int] = {}
        kept: list[_Row] = []
        for row in reversed(rows):
            device, size = row[2], row[6]
            left = room.setdefault(device, self.device_quota_bytes)
            if size <= left or left == self.device_quota_bytes:
                room[device] = left - size
                kept.append(row)
            else:
                room[device] = 0
                if not self.evicted[device]:
                    log.warning("dead letters of %s exceed their quota; evicting its oldest (logged once)", device)
                self.evicted[device] += 1
        return kept[::-1]

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
        self._freed_since_vacuum += freed
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
        self.store.close()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One kept letter, as an operator reads it (times in UTC epoch milliseconds)."""

    id: int
    at_ms: int
    topic: str
    device: str  # the device the topic names, or NO_DEVICE
    reason: str
    detail: str
    payload: bytes  # exactly the bytes that were refused
    size: int  # what it counts against the quotas
    replayed_at_ms: int | None  # when it was last published again; None: never
    times: int = 1  # how often this refusal came (a redelivery, one payload over and over)
    last_at_ms: int | None = None  # when it last came, if more than once

    @property
    def replayable(self) -> bool:
        """True if it came on a device's data topic, so publishing it there again has the ingest judge it anew
        (not so for lines refused from the spool, ``(spool)``, derived points, ``(derived)``, or bad topics)."""
        parsed = parse(self.topic)
        return parsed is not None and parsed[1] == "data"


@dataclass(frozen=True, slots=True, kw_only=True)
class LetterQuery:
    """Which letters: all the given conditions hold (``ids`` empty: any id); oldest first."""

    ids: tuple[int, ...] = ()
    device: str | None = None
    reason: str | None = None
    since_ms: int | None = None  # at_ms >= since_ms
    until_ms: int | None = None  # at_ms < until_ms
    limit: int | None = None

    def where(self) -> tuple[str, list[object]]:
        clauses: list[str] = []
        args: list[object] = []
        if self.ids:
            clauses.append(f"id IN ({', '.join('?' * len(self.ids))})")
            args += self.ids
        for clause, value in (
            ("device = ?", self.device),
            ("reason = ?", self.reason),
            ("at_ms >= ?", self.since_ms),
            ("at_ms < ?", self.until_ms),
        ):
            if value is not None:
                clauses.append(clause)
                args.append(value)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


class DeadLetterFile:
    """A dead-letter store opened by an operator, possibly while the ingest that owns it is writing to it.

    Reads never change the file (a store from before ``replayed_at`` reads as never replayed);
    :meth:`mark_replayed` adds that column if needed and writes in one short transaction."""

    _CHUNK = 256  # letters read per query: bounded memory, and no read transaction held for long

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise IngestError(f"{self.path}: no dead-letter store (ZHIJIAN_STATE_PATH)")
        self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        try:
            self._columns = {row[1] for row in self._db.execute("PRAGMA table_info(dead_letter)")}
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise IngestError(f"{self.path}: not a dead-letter store ({exc})") from exc
        if not self._columns:
            self._db.close()
            raise IngestError(f"{self.path}: not a dead-letter store (no dead_letter table)")

    def __enter__(self) -> DeadLetterFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def _select(self) -> str:
        device = "device" if "device" in self._columns else "''"
        size = "size" if "size" in self._columns else "0"
        replayed = "replayed_at" if "replayed_at" in self._columns else "NULL"
        times = "times" if "times" in self._columns else "1"
        last = "last_at_ms" if "last_at_ms" in self._columns else "NULL"
        # only column names we chose: no value is ever formatted into SQL
        return (
            f"SELECT id, at_ms, topic, {device}, reason, detail, payload, {size}, {replayed}, {times}, {last}"  # noqa: S608
            " FROM dead_letter"
        )

    def letters(self, query: LetterQuery = LetterQuery()) -> Iterator[DeadLetter]:
        """The letters ``query`` selects, oldest first, read in chunks."""
        where, args = query.where()
        left = query.limit
        after = -1
        while left is None or left > 0:
            chunk = min(self._CHUNK, left) if left is not None else self._CHUNK
            glue = " AND " if where else " WHERE "
            rows = self._db.execute(
                f"{self._select()}{where}{glue}id > ? ORDER BY id LIMIT ?", [*args, after, chunk]
            ).fetchall()
            for row in rows:
                yield _letter(row)
            if len(rows) < chunk:
                return
            after = rows[-1][0]
            if left is not None:
                left -= len(rows)

    def letter(self, letter_id: int) -> DeadLetter | None:
        return next(self.letters(LetterQuery(ids=(letter_id,))), None)

    def last_id(self) -> int:
        """The highest id written so far (0 if none): letters written later have higher ids."""
        return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM dead_letter").fetchone()[0])

    def counts(self, query: LetterQuery = LetterQuery()) -> Counter[str]:
        """Letters per reason among all that ``query`` selects (its limit aside)."""
        where, args = query.where()
        rows = self._db.execute(f"SELECT reason, COUNT(*) FROM dead_letter{where} GROUP BY reason", args)  # noqa: S608
        return Counter({reason: int(n) for reason, n in rows})

    def mark_replayed(self, ids: Iterable[int], at_ms: int | None = None) -> None:
        """Record that these letters were published again (now, unless ``at_ms``); they stay kept."""
        stamp = int(time.time() * 1000) if at_ms is None else at_ms
        if "replayed_at" not in self._columns:
            try:
                self._db.execute("ALTER TABLE dead_letter ADD COLUMN replayed_at INTEGER")
            except sqlite3.OperationalError as exc:  # the ingest, starting meanwhile, added it first
                if "duplicate column" not in str(exc):
                    raise
            self._columns.add("replayed_at")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("UPDATE dead_letter SET replayed_at = ? WHERE id = ?", [(stamp, i) for i in ids])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise


def _letter(row: Any) -> DeadLetter:  # a row of DeadLetterFile._select()
    row_id, at_ms, topic, device, reason, detail, payload, size, replayed, times, last_at_ms = row
    topic, detail, payload = topic or "", detail or "", bytes(payload or b"")
    return DeadLetter(
        id=row_id,
        at_ms=at_ms or 0,
        topic=topic,
        device=device or _device_of(topic),
        reason=reason,
        detail=detail,
        payload=payload,
        size=size or len(topic) + len(detail) + len(payload) + _ROW_OVERHEAD,
        replayed_at_ms=replayed,
        times=times or 1,
        last_at_ms=last_at_ms,
    )


def _printable(text: str) -> str:
    """Text SQLite can store whatever it holds (a lone surrogate becomes an escape)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
