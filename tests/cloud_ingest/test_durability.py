"""What the ingest's acknowledgements wait for is fsync'ed: the spool, the sequence book, the checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cloud_ingest.dead_letters import DeadLetters
from cloud_ingest.sensor_alerts import AlertBook
from cloud_ingest.sequences import SequenceBook
from cloud_ingest.spool import Spool
from cloud_ingest.state_store import StateStore, import_earlier_files, open_store
from device_profiles import EnvelopeError


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


def test_the_state_file_commits_through_a_synced_log(tmp_path: Path, fsyncs: list[str]) -> None:
    book = SequenceBook(tmp_path / "ingest_state.sqlite")
    try:
        assert book._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert book._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL: the log fsync'ed per commit
        assert fsyncs == [str(tmp_path)]  # and the new file's directory entry
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
    settings = IngestSettings(
        engine_state_path=state, state_save_interval_s=3600, batch_max_messages=1, broker_inflight_messages=4
    )
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
    worker._batch_once()  # none waits, half the broker's window unacknowledged: saved and acknowledged now
    assert acked == [1, 2] and state.exists()
    worker._queue.put(Message(3))  # type: ignore[arg-type]
    worker._batch_once()  # none waits, but the broker's window is far from full: the interval holds
    assert acked == [1, 2]
    assert pipeline.rejected["bad_topic"] == 3
    influx.close()


def _commits(db: object, save: object) -> list[str]:
    """The transaction statements a save runs (an autocommit statement would be a commit of its own)."""
    statements: list[str] = []
    db.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    save()  # type: ignore[operator]
    db.set_trace_callback(None)  # type: ignore[attr-defined]
    kinds = [s.split()[0] for s in statements]
    return [k for k in kinds if k in ("BEGIN", "COMMIT", "ROLLBACK")] + [
        "autocommit" for k in kinds if k == "INSERT" and "BEGIN" not in kinds
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
        assert book._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL, in WAL mode
        assert _commits(book._db, book.save) == []  # nothing changed since: nothing written
        restarted = AlertBook(tmp_path / "alerts.sqlite")
        assert len(restarted._state) == 50
        restarted._db.close()
    finally:
        book._db.close()


def _books(path: Path | StateStore) -> tuple[SequenceBook, AlertBook, DeadLetters]:
    return SequenceBook(path), AlertBook(path), DeadLetters(path)


def test_a_batch_is_one_commit_of_every_book_and_the_checkpoint(tmp_path: Path) -> None:
    """Sequences, alerts, dead letters and the anti-cheat checkpoint of one batch: one transaction of the
    one state file (one fsync of its log), as `zhijian ingest run` builds the pipeline."""
    from anti_cheat import Engine, ScaleFacts
    from cloud_ingest import InfluxClient, Pipeline
    from cloud_ingest.pipeline import Prepared

    store = open_store(tmp_path / "ingest_state.sqlite")
    sequences, alerts, letters = _books(store)
    influx = InfluxClient("http://127.0.0.1:9", "unused")
    pipeline = Pipeline(
        key_for=lambda _d: None,
        engine=Engine(ScaleFacts()),
        store=influx,
        spool=Spool(),
        sequences=sequences,
        alert_book=alerts,
        dead_letters=letters,
    )
    for i in range(100):
        sequences.observe(f"scale-{i:04d}", 1, 10, list(range(10)))
    alerts.observe_batch([(f"base-{i:03d}", 1, {"type": "soil", "ts": 1_000, "moisture_pct": 5.0}) for i in range(20)])
    pipeline.dead_letters.add("zhijian/v1/scale-0001/data", "bad_tag", "forged", b"{}")
    assert _commits(store.db, lambda: pipeline.commit(Prepared([], [], [], []), checkpoint=True)) == [
        "BEGIN",
        "COMMIT",
    ]
    assert store.checkpoint() == pipeline.engine.save()
    assert store.db.execute("SELECT COUNT(*) FROM device_seq").fetchone() == (100,)
    assert store.db.execute("SELECT COUNT(*) FROM channel").fetchone() == (20,)
    assert store.db.execute("SELECT COUNT(*) FROM dead_letter").fetchone() == (1,)
    assert _commits(store.db, sequences.save) == []  # nothing left unsaved
    influx.close()
    for book in (sequences, alerts, letters):
        book.close()


def test_a_rolled_back_batch_is_written_by_the_next_save(tmp_path: Path) -> None:
    store = open_store(tmp_path / "ingest_state.sqlite")
    sequences, alerts, letters = _books(store)
    sequences.observe("scale-0001", 1, 3, [11, 12, 13])
    alerts.observe_batch([("base-001", 1, {"type": "soil", "ts": 1_000, "moisture_pct": 5.0})])
    letters.add("zhijian/v1/scale-0001/data", "bad_tag", "forged", b"{}")
    with pytest.raises(RuntimeError), store.transaction():
        sequences.save()
        alerts.save()
        letters.flush()
        raise RuntimeError("the disk is full")
    assert store.db.execute("SELECT COUNT(*) FROM device_seq").fetchone() == (0,)
    assert letters.kept_bytes == {}
    with store.transaction():
        sequences.save()
        alerts.save()
        letters.flush()
    assert store.db.execute("SELECT digest FROM record_digest ORDER BY seq").fetchall() == [(11,), (12,), (13,)]
    assert store.db.execute("SELECT COUNT(*) FROM channel").fetchone() == (1,)
    assert letters.rows() == [("zhijian/v1/scale-0001/data", "bad_tag", b"{}")]
    for book in (sequences, alerts, letters):
        book.close()


def test_the_files_of_an_earlier_version_are_imported_once(tmp_path: Path) -> None:
    """An ingest upgraded in place finds sequences.sqlite, alerts.sqlite, dead_letters.sqlite and
    anti_cheat_state.npz beside its new state file: their content moves in, the files are kept as *.imported."""
    from cloud_ingest import IngestSettings

    old_seq, old_alerts, old_letters = (
        SequenceBook(tmp_path / "sequences.sqlite"),
        AlertBook(tmp_path / "alerts.sqlite"),
        DeadLetters(tmp_path / "dead_letters.sqlite"),
    )
    old_seq.observe("scale-0001", 1, 2, [21, 22])
    old_seq.save()
    old_alerts.observe_batch([("base-001", 1, {"type": "soil", "ts": 1_000, "moisture_pct": 5.0})])
    old_alerts.save()
    old_letters.add("zhijian/v1/scale-0001/data", "bad_tag", "forged", b"evidence")
    for book in (old_seq, old_alerts, old_letters):
        book.close()
    (tmp_path / "anti_cheat_state.npz").write_bytes(b"engine state")

    settings = IngestSettings(state_path=tmp_path / "ingest_state.sqlite")
    store = open_store(settings.state_path)
    imported = import_earlier_files(store, settings)
    assert sorted(p.name for p in imported) == [
        "alerts.sqlite",
        "anti_cheat_state.npz",
        "dead_letters.sqlite",
        "sequences.sqlite",
    ]
    sequences, alerts, letters = _books(store)
    assert sequences.highest == {"scale-0001": 2}
    with pytest.raises(EnvelopeError, match="conflicting_replay"):  # the digests came along
        sequences.check("scale-0001", 1, [{"type": "sale", "net_mg": 1}])
    assert len(alerts._state) == 1
    assert letters.rows() == [("zhijian/v1/scale-0001/data", "bad_tag", b"evidence")]
    assert store.checkpoint() == b"engine state"
    assert sorted(p.name for p in tmp_path.glob("*.imported")) == [f"{p.name}.imported" for p in sorted(imported)]
    assert import_earlier_files(store, settings) == []  # once
    for book in (sequences, alerts, letters):
        book.close()


def test_the_worker_restores_the_checkpoint_from_the_state_file(tmp_path: Path) -> None:
    from anti_cheat import Engine, ScaleFacts
    from cloud_ingest import InfluxClient, IngestSettings, IngestWorker, Pipeline

    open_store(tmp_path / "ingest_state.sqlite").put_checkpoint(b"the saved state")
    influx = InfluxClient("http://127.0.0.1:9", "unused")
    pipeline = Pipeline(
        key_for=lambda _d: None,
        engine=Engine(ScaleFacts()),
        store=influx,
        sequences=SequenceBook(tmp_path / "ingest_state.sqlite"),
    )
    restored: list[bytes] = []
    pipeline.engine.restore = restored.append  # type: ignore[method-assign]
    worker = IngestWorker(IngestSettings(mqtt_port=9, state_path=tmp_path / "ingest_state.sqlite"), pipeline)
    worker.start()
    try:
        assert restored == [b"the saved state"]
    finally:
        worker.stop()
        influx.close()


def test_digests_kept_before_the_upgrade_still_tell_redeliveries_from_conflicts(tmp_path: Path) -> None:
    """An earlier ingest kept ``legacy_record_digest``: the same record again is a redelivery, other
    content under the same seq is still a conflict."""
    from cloud_ingest.sequences import legacy_record_digest, record_digest

    record = {"type": "sale", "ts": 1_764_000_000_000, "net_mg": 1_250_000, "plu": "1001", "stable": True}
    assert record_digest(record) != legacy_record_digest(record)
    book = SequenceBook(tmp_path / "ingest_state.sqlite")
    book.observe("scale-0001", 5, 1, [legacy_record_digest(record)])
    book.save()
    assert book.check("scale-0001", 5, [dict(record)]) == [record_digest(record)]
    with pytest.raises(EnvelopeError, match="conflicting_replay"):
        book.check("scale-0001", 5, [{**record, "net_mg": 1_000_000}])
    lone = {**record, "plu": "\ud800"}  # orjson refuses a lone surrogate: the legacy digest, every time
    assert record_digest(lone) == legacy_record_digest(lone)
    book.close()


def test_a_device_gets_one_acknowledgement_for_the_batches_of_an_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches stored within ``device_ack_interval_s`` are acknowledged to a device in one message, with
    every range of them; what waits is sent once the interval has passed, and at stop."""
    from anti_cheat import Engine, ScaleFacts
    from cloud_ingest import InfluxClient, IngestSettings, IngestWorker, Pipeline
    from device_profiles.acks import decode_ack

    clock = [100.0]
    monkeypatch.setattr("cloud_ingest.device_messages.time.monotonic", lambda: clock[0])
    influx = InfluxClient("http://127.0.0.1:9", "unused")
    pipeline = Pipeline(key_for=lambda _d: None, engine=Engine(ScaleFacts()), store=influx, spool=Spool())
    worker = IngestWorker(IngestSettings(device_ack_interval_s=0.5), pipeline)
    sent: list[tuple[str, list[tuple[int, int]]]] = []
    worker._client.publish = lambda t, p, qos: sent.append((t, decode_ack(p)))  # type: ignore[method-assign]
    worker.acks._sent_at = clock[0]
    worker.acks.add({"scale-0001": [(1, 10)], "scale-0002": [(1, 1)]})
    clock[0] += 0.2
    worker.acks.add({"scale-0001": [(11, 20)]})
    assert sent == []  # within the interval: waiting
    clock[0] += 0.4
    worker.acks.add({"scale-0001": [(30, 30)]})
    assert sorted(sent) == [
        ("zhijian/v1/scale-0001/ack", [(1, 20), (30, 30)]),
        ("zhijian/v1/scale-0002/ack", [(1, 1)]),
    ]
    worker.acks.add({"scale-0003": [(5, 6)]})
    worker.acks.flush(now=True)  # as at stop
    assert sent[-1] == ("zhijian/v1/scale-0003/ack", [(5, 6)]) and worker.acks.sent == 3
    influx.close()


def test_checkpoints_of_a_large_fleet_come_no_more_often_than_twenty_times_their_cost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from anti_cheat import Engine, ScaleFacts
    from cloud_ingest import InfluxClient, IngestSettings, IngestWorker, Pipeline

    clock = [1000.0]
    monkeypatch.setattr("cloud_ingest.worker.time.monotonic", lambda: clock[0])
    influx = InfluxClient("http://127.0.0.1:9", "unused")
    pipeline = Pipeline(key_for=lambda _d: None, engine=Engine(ScaleFacts()), store=influx, spool=Spool())
    worker = IngestWorker(IngestSettings(state_save_interval_s=2), pipeline)
    worker._last_save, worker._save_cost_s = clock[0], 0.05
    clock[0] += 2.0
    assert worker._checkpoint_due()  # a cheap save: every 2 s
    worker._save_cost_s = 0.5  # 100 000 scales or so
    assert not worker._checkpoint_due()
    clock[0] += 8.0
    assert worker._checkpoint_due() and worker._checkpoint_due(force=True)
    influx.close()


def test_going_back_to_an_earlier_version_and_forward_again_merges_and_overwrites_nothing(tmp_path: Path) -> None:
    """The outside review's case: upgraded, then the earlier version ran again on fresh files of its own,
    then upgraded again. Its dead letters are added (none of the state file's replaced), a device's highest
    seq is the larger, each copy of the earlier files is kept, and no file is imported twice."""
    from cloud_ingest import IngestSettings

    settings = IngestSettings(state_path=tmp_path / "ingest_state.sqlite")

    def earlier_run(letters: list[bytes], highest: int) -> None:
        seq, dead = SequenceBook(tmp_path / "sequences.sqlite"), DeadLetters(tmp_path / "dead_letters.sqlite")
        seq.observe("scale-0001", 1, highest, list(range(highest)))
        seq.save()
        for payload in letters:
            dead.add("zhijian/v1/scale-0009/data", "bad_tag", "forged", payload)
        seq.close()
        dead.close()

    earlier_run([b"first evidence"], highest=50)
    store = open_store(settings.state_path)
    assert len(import_earlier_files(store, settings)) == 2
    sequences, letters = SequenceBook(store), DeadLetters(store)
    sequences.observe("scale-0001", 51, 50, list(range(50)))  # the new version moves on to seq 100
    sequences.save()
    letters.add("zhijian/v1/scale-0009/data", "bad_tag", "forged", b"second evidence")
    letters.flush()
    earlier_run([b"rolled back 0", b"rolled back 1"], highest=20)  # back, on fresh files
    assert len(import_earlier_files(store, settings)) == 2
    assert [p for _, _, p in letters.rows()] == [
        b"first evidence",
        b"second evidence",
        b"rolled back 0",
        b"rolled back 1",
    ]
    assert store.db.execute("SELECT highest FROM device_seq WHERE device = 'scale-0001'").fetchone() == (100,)
    assert sorted(p.name for p in tmp_path.glob("*.imported*")) == [
        "dead_letters.sqlite.imported",
        "dead_letters.sqlite.imported.2",
        "sequences.sqlite.imported",
        "sequences.sqlite.imported.2",
    ]
    for book in (sequences, letters):
        book.close()
