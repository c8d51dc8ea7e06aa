"""What the ingest's acknowledgements wait for is fsync'ed: the spool, the sequence book, the checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
