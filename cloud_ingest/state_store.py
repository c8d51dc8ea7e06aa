"""The ingest's state in one SQLite file, made durable in one transaction per batch.

The sequence book, the planting-base alert book, the dead letters and the anti-cheat checkpoint each
keep their tables here (``ZHIJIAN_STATE_PATH``, ``ingest_state.sqlite``). :meth:`StateStore.transaction`
nests: each book's own save opens one, and the pipeline wraps a batch's saves in an outer one, so a batch
costs one commit (one fsync of the write-ahead log) however many books it changed, and a crash leaves
either all of a batch's state or none of it. The file is in WAL mode with ``synchronous=FULL``: a commit
is on disk when it returns, and readers (``zhijian ingest dead-letters``) never block the ingest.

A book given a path of its own (tests, an operator's ``ZHIJIAN_SEQUENCE_PATH``) gets a store of its own:
:func:`open_store` hands out one store per file within a process.

A book writes inside :meth:`transaction` and passes :meth:`after_commit` what to forget once the commit
has happened (and :meth:`on_rollback` what to put back if it does not); if the transaction rolls back,
nothing is forgotten and the next save writes it again.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from device_profiles.durable import fsync_directory

if TYPE_CHECKING:
    from .settings import IngestSettings

log = logging.getLogger(__name__)

MEMORY = ":memory:"


class StateStore:
    """One SQLite connection, its lock and a transaction that nests."""

    def __init__(self, path: str | Path = MEMORY) -> None:
        self.path = str(path)
        self.lock = threading.RLock()
        new = self.path != MEMORY and not Path(self.path).exists()
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        if new:  # before any table: the file gives back what dead-letter evictions free
            self.db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # in WAL mode: the log fsync'ed at every commit
        self.db.execute("PRAGMA journal_size_limit=16777216")  # the log cut back to 16 MiB after a checkpoint
        self.db.execute("CREATE TABLE IF NOT EXISTS engine_checkpoint (id INTEGER PRIMARY KEY, state BLOB NOT NULL)")
        if new:
            fsync_directory(Path(self.path).resolve().parent)  # the new file's own entry, once
        self._depth = 0
        self._after: list[Callable[[], None]] = []
        self._undo: list[Callable[[], None]] = []
        self.users = 0  # books holding it (open_store counts them, close releases one)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error); inside another, part of the outer one."""
        with self.lock:
            outer = self._depth == 0
            if outer:
                self.db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self.db
            except BaseException:
                self._depth -= 1
                if outer:
                    self.db.execute("ROLLBACK")
                    self._after.clear()
                    undo, self._undo = self._undo, []
                    for restore in reversed(undo):
                        restore()
                raise
            self._depth -= 1
            if outer:
                self.db.execute("COMMIT")
                self._undo.clear()
                after, self._after = self._after, []
                for forget in after:
                    forget()

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    def after_commit(self, forget: Callable[[], None]) -> None:
        """Run ``forget`` once the current (outermost) transaction has committed; never if it rolls back."""
        if self._depth == 0:
            forget()
        else:
            self._after.append(forget)

    def on_rollback(self, restore: Callable[[], None]) -> None:
        """Run ``restore`` if the current (outermost) transaction rolls back (memory put back as it was)."""
        if self._depth > 0:
            self._undo.append(restore)

    def put_checkpoint(self, state: bytes) -> None:
        """The anti-cheat engine's state (:meth:`anti_cheat.Engine.save`), replacing the last one."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO engine_checkpoint (id, state) VALUES (1, ?)", (state,))

    def checkpoint(self) -> bytes | None:
        with self.lock:
            row = self.db.execute("SELECT state FROM engine_checkpoint WHERE id = 1").fetchone()
        return bytes(row[0]) if row else None

    def close(self) -> None:
        """Release one user's hold; the connection closes with the last."""
        with _open_lock:
            self.users -= 1
            if self.users > 0:
                return
            if _open.get(self.path) is self:
                del _open[self.path]
        with self.lock:
            self.db.close()


#: the files an earlier version kept beside the spool, and the table each holds
EARLIER_FILES = {
    "sequences.sqlite": ("device_seq", "record_digest"),
    "alerts.sqlite": ("channel",),
    "dead_letters.sqlite": ("dead_letter",),
}
EARLIER_CHECKPOINT = "anti_cheat_state.npz"


def import_earlier_files(store: StateStore, settings: IngestSettings) -> list[Path]:
    """Move an earlier version's state files (beside the state file, where that version's defaults put
    them) into ``store``: each is copied in one transaction that also records it as imported (by name,
    size and modification time: a file is never imported twice, even after a crash before its rename),
    then renamed ``*.imported`` (``*.imported.2``, … : an earlier copy is never overwritten). A book the
    settings still give a file of its own is left there. Merging, not replacing: dead letters get new
    ids (none of the state file's is overwritten), a device's highest seq, gaps and late counts are the
    larger of both, digests and alert rows the file's (an earlier version that ran last saw them last).
    Returns what was imported."""
    folder = Path(store.path).parent
    own = {
        "sequences.sqlite": settings.sequence_path,
        "alerts.sqlite": settings.alert_path,
        "dead_letters.sqlite": settings.dead_letter_path,
    }
    done: list[Path] = []
    if store.path == MEMORY:
        return done
    store.db.execute("CREATE TABLE IF NOT EXISTS imported_file (name TEXT, size INTEGER, mtime_ns INTEGER)")
    for name, tables in EARLIER_FILES.items():
        path = folder / name
        if own[name] is not None or not path.is_file():
            continue
        seen = (name, path.stat().st_size, path.stat().st_mtime_ns)
        with store.lock:
            if store.db.execute(
                "SELECT 1 FROM imported_file WHERE name = ? AND size = ? AND mtime_ns = ?", seen
            ).fetchone():
                log.warning("%s was imported before; left as it is", path)
                continue
            store.db.execute("ATTACH DATABASE ? AS earlier", (str(path),))
            try:
                with store.transaction() as db:
                    for table in tables:
                        if db.execute(
                            "SELECT 1 FROM earlier.sqlite_master WHERE type = 'table' AND name = ?", (table,)
                        ).fetchone():
                            _copy_table(db, table)
                    db.execute("INSERT INTO imported_file VALUES (?, ?, ?)", seen)
            finally:
                store.db.execute("DETACH DATABASE earlier")
        path.rename(_free_name(path, ".imported"))
        done.append(path)
    checkpoint = folder / EARLIER_CHECKPOINT
    if settings.engine_state_path is None and checkpoint.is_file():
        if store.checkpoint() is None:
            store.put_checkpoint(checkpoint.read_bytes())
            checkpoint.rename(_free_name(checkpoint, ".imported"))
            done.append(checkpoint)
        else:
            log.warning(
                "%s not imported: %s has an anti-cheat checkpoint of its own (the file is left as it is)",
                checkpoint,
                store.path,
            )
    if done:
        fsync_directory(folder)
        log.info("imported the state of an earlier version into %s: %s", store.path, ", ".join(p.name for p in done))
    return done


def _free_name(path: Path, suffix: str) -> Path:
    """``path`` + ``suffix``, or with ``.2``, ``.3``, … after it: the first name not taken."""
    candidate, n = path.with_name(path.name + suffix), 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}{suffix}.{n}")
    return candidate


#: how rows of an earlier file merge into the state file's table
_MERGE = {
    "dead_letter": "INSERT INTO main.dead_letter ({cols}) SELECT {cols} FROM earlier.dead_letter ORDER BY id",
    "device_seq": "INSERT INTO main.device_seq ({cols}) SELECT {cols} FROM earlier.device_seq WHERE true"
    " ON CONFLICT(device) DO UPDATE SET highest = MAX(highest, excluded.highest),"
    " gaps = MAX(gaps, excluded.gaps), late = MAX(late, excluded.late)",
}


def _copy_table(db: sqlite3.Connection, table: str) -> None:
    """``earlier.<table>`` into ``main.<table>`` (created like it when missing), the columns both have."""
    if not db.execute("SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone():
        sql = db.execute("SELECT sql FROM earlier.sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
        db.execute(sql[0])
    ours = {row[1] for row in db.execute(f"PRAGMA main.table_info({table})")}
    theirs = [row[1] for row in db.execute(f"PRAGMA earlier.table_info({table})")]
    shared = [c for c in theirs if c in ours and not (table == "dead_letter" and c == "id")]  # new ids
    cols = ", ".join(shared)
    default = "INSERT OR REPLACE INTO main.{table} ({cols}) SELECT {cols} FROM earlier.{table}"
    db.execute(_MERGE.get(table, default).format(table=table, cols=cols))


_open: dict[str, StateStore] = {}
_open_lock = threading.Lock()


def open_store(path: str | Path | StateStore = MEMORY) -> StateStore:
    """The process's store for the file at ``path`` (a new one for ``:memory:``), or ``path`` if it is one."""
    with _open_lock:
        if isinstance(path, StateStore):
            store = path
        elif str(path) == MEMORY:
            store = StateStore()
        else:
            key = str(Path(path).resolve())
            store = _open.get(key) or _open.setdefault(key, StateStore(key))
        store.users += 1
        return store
