"""What the ingest's acknowledgements wait for is fsync'ed: the spool, the sequence book, the checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cloud_ingest.sensor_alerts import AlertBook
from cloud_ingest.sequences import SequenceBook
from cloud_ingest.spool import Spool


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths fsync'ed from Python (SQLite's own fsyncs happen in C and are not seen here)."""
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return synced


def test_the_spool_commits_through_a_synced_log(tmp_path: Path, fsyncs: list[str]) -> None:
    spool = Spool(tmp_path / "spool.sqlite")
    try:
        assert spool._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert spool._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL: the log fsync'ed per commit
        assert fsyncs == [str(tmp_path)]  # and the new file's directory entry
    finally:
        spool.close()


def test_the_sequence_book_syncs_its_journal_and_directory(tmp_path: Path, fsyncs: list[str]) -> None:
    book = SequenceBook(tmp_path / "sequences.sqlite")
    try:
        assert book._db.execute("PRAGMA synchronous").fetchone() == (3,)  # EXTRA
        assert fsyncs == [str(tmp_path)]
    finally:
        book.close()


def test_the_checkpoint_is_on_disk_before_anything_is_acknowledged(tmp_path: Path, fsyncs: list[str]) -> None:
    """The worker (not started: no broker needed) saves the anti-cheat state, file and directory fsync'ed,
    and only then acknowledges what it holds."""
    from anti_cheat import Engine, ScaleFacts
    from cloud_ingest import InfluxClient, IngestSettings, IngestWorker, Pipeline

    state = tmp_path / "anti_cheat_state.npz"
    influx = InfluxClient("http://127.0.0.1:9", "unused")
    pipeline = Pipeline(key_for=lambda _d: None, engine=Engine(ScaleFacts()), store=influx, spool=Spool())
    worker = IngestWorker(IngestSettings(engine_state_path=state), pipeline)

    class Message:
        mid, qos = 7, 1

    worker._unacked.append(Message())  # type: ignore[arg-type]
    order: list[str] = []
    worker._client.ack = lambda mid, qos: order.append(f"ack after {len(fsyncs)} fsyncs") or 0  # type: ignore[method-assign]
    worker._checkpoint(force=True)
    assert fsyncs == [str(tmp_path / ".anti_cheat_state.npz.tmp"), str(tmp_path)]
    assert order == ["ack after 2 fsyncs"] and state.exists()
    influx.close()


def test_acknowledgements_wait_for_the_interval_only_while_messages_keep_coming(tmp_path: Path) -> None:
    """The broker sends no more than its inflight window until we acknowledge: after a batch that leaves
    nothing waiting, the state is saved and the batch acknowledged at once, not at the interval."""
    from anti_cheat import Engine, ScaleFacts
    from cloud_ingest import InfluxClient, IngestSettings, IngestWorker, Pipeline

    state = tmp_path / "anti_cheat_state.npz"
    influx = InfluxClient("http://127.0.0.1:9", "unused")
    pipeline = Pipeline(key_for=lambda _d: None, engine=Engine(ScaleFacts()), store=influx, spool=Spool())
    settings = IngestSettings(engine_state_path=state, state_save_interval_s=3600, batch_max_messages=1)
    worker = IngestWorker(settings, pipeline)

    class Message:
        topic, payload, qos = "not/ours", b"{}", 1  # a dead letter: nothing for InfluxDB

        def __init__(self, mid: int) -> None:
            self.mid = mid

    acked: list[int] = []
    worker._client.ack = lambda mid, qos: acked.append(mid) or 0  # type: ignore[method-assign]
    for mid in (1, 2):
        worker._queue.put(Message(mid))  # type: ignore[arg-type]
    worker._batch_once()  # another message waits: the interval holds
    assert acked == [] and not state.exists()
    worker._batch_once()  # none waits: saved and acknowledged now
    assert acked == [1, 2] and state.exists()
    assert pipeline.rejected["bad_topic"] == 2
    influx.close()


def _commits(db: object, save: object) -> list[str]:
    """The transaction statements a save runs (an autocommit statement would be a commit of its own)."""
    statements: list[str] = []
    db.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    save()  # type: ignore[operator]
    db.set_trace_callback(None)  # type: ignore[attr-defined]
    return [s for s in statements if s.split()[0] in ("BEGIN", "COMMIT", "ROLLBACK")] + [
        "autocommit" for s in statements if s.startswith("INSERT") and "BEGIN" not in statements
    ]


def test_a_batch_from_many_devices_is_one_fsynced_commit_of_the_sequence_book(tmp_path: Path) -> None:
    book = SequenceBook(tmp_path / "sequences.sqlite")
    try:
        for i in range(200):
            book.observe(f"scale-{i:04d}", 1, 10, list(range(10)))
        assert _commits(book._db, book.save) == ["BEGIN", "COMMIT"]
    finally:
        book.close()


def test_a_batch_from_many_bases_is_one_fsynced_commit_of_the_alert_book(tmp_path: Path) -> None:
    book = AlertBook(tmp_path / "alerts.sqlite")
    try:
        rows = [(f"base-{i:03d}", 1, {"type": "soil", "ts": 1_000, "moisture_pct": 5.0}) for i in range(50)]
        book.observe_batch(rows)  # 50 bases start a breach: 50 channels change
        assert _commits(book._db, book.save) == ["BEGIN", "COMMIT"]
        assert book._db.execute("PRAGMA synchronous").fetchone() == (3,)  # EXTRA
        assert _commits(book._db, book.save) == []  # nothing changed since: nothing written
        restarted = AlertBook(tmp_path / "alerts.sqlite")
        assert len(restarted._state) == 50
        restarted._db.close()
    finally:
        book._db.close()
