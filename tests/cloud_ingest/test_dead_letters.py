"""The ingest's dead letters stay within their byte quotas: a flooding device evicts only its own oldest,
the biggest sender pays when the total is reached, and the counts survive a restart. An operator reads
them (filtered, in order) while the ingest writes, and marks replays, also in stores written before."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cloud_ingest import IngestError
from cloud_ingest.dead_letters import NO_DEVICE, DeadLetterFile, DeadLetters, LetterQuery


def topic(device: str) -> str:
    return f"zhijian/v1/{device}/data"


def test_a_flood_evicts_only_the_flooders_own_letters(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path / "d.sqlite", device_quota_bytes=50_000, total_quota_bytes=10**9)
    dead.add(topic("scale-0002"), "bad_tag", "x", b"evidence of scale-0002")
    dead.flush()
    for n in range(10):  # 1 MB from one device, each payload its own
        for k in range(100):
            dead.add(topic("scale-0001"), "bad_record", "y", b"g" * 1_000 + b"%d-%d" % (n, k))
        dead.flush()
    assert dead.kept_bytes["scale-0001"] <= 50_000
    assert dead.evicted["scale-0001"] > 900 and "scale-0002" not in dead.evicted
    assert (topic("scale-0002"), "bad_tag", b"evidence of scale-0002") in dead.rows()
    assert Path(tmp_path / "d.sqlite").stat().st_size < 2_000_000


def test_the_total_quota_takes_from_the_biggest_sender(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path / "d.sqlite", device_quota_bytes=10**6, total_quota_bytes=30_000)
    for i in range(40):  # about 42 kB from scale-0001, 8.5 kB from scale-0003
        dead.add(topic("scale-0001"), "bad_record", "", b"a" * 1_000 + b"%d" % i)
        if i % 5 == 0:
            dead.add(topic("scale-0003"), "bad_record", "", b"b" * 1_000 + b"%d" % i)
        dead.flush()
    assert dead.total_bytes <= 30_000
    assert dead.evicted["scale-0001"] > 0 and dead.evicted["scale-0003"] == 0
    kept = DeadLetters(tmp_path / "d.sqlite")
    assert kept.kept_bytes == dead.kept_bytes  # sizes are counted again from disk


def test_any_text_is_kept(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path / "d.sqlite")
    dead.add(topic("scale-0001"), "unprocessable", "detail with a lone \ud800 surrogate", b"\xff\xfe")
    assert dead.rows() == [(topic("scale-0001"), "unprocessable", b"\xff\xfe")]


def test_an_operator_reads_what_the_running_ingest_writes_and_marks_replays(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path / "d.sqlite")  # the ingest, open all along
    dead.add(topic("scale-0001"), "bad_tag", "tag mismatch", b'{"v":1}')
    dead.add(topic("scale-0002"), "unknown_device", "scale-0002", b"\x00\xff")
    dead.add("(spool)", "store_rejected", "400", b"sale,device=x v=1i 1")
    dead.flush()
    with DeadLetterFile(tmp_path / "d.sqlite") as store:
        first, second, spooled = store.letters()
        assert (first.device, first.reason, first.detail, first.payload) == (
            "scale-0001",
            "bad_tag",
            "tag mismatch",
            b'{"v":1}',
        )
        assert first.replayable and second.replayable and not spooled.replayable
        assert spooled.device == NO_DEVICE and first.replayed_at_ms is None
        assert [x.id for x in store.letters(LetterQuery(device="scale-0002"))] == [second.id]
        assert [x.id for x in store.letters(LetterQuery(reason="bad_tag"))] == [first.id]
        assert [x.id for x in store.letters(LetterQuery(ids=(second.id, spooled.id), limit=1))] == [second.id]
        assert list(store.letters(LetterQuery(since_ms=first.at_ms + 60_000))) == []
        assert store.counts(LetterQuery(limit=1)) == {"bad_tag": 1, "unknown_device": 1, "store_rejected": 1}
        store.mark_replayed([second.id], at_ms=1_764_000_000_000)
        assert store.letter(second.id).replayed_at_ms == 1_764_000_000_000  # type: ignore[union-attr]
        assert store.letter(99) is None
    dead.add(topic("scale-0002"), "bad_tag", "", b"again")  # the ingest writes on: the operator's mark stays
    dead.flush()
    assert len(dead.rows()) == 4
    with DeadLetterFile(tmp_path / "d.sqlite") as store:
        assert [x.replayed_at_ms for x in store.letters()] == [None, 1_764_000_000_000, None, None]


def test_letters_are_read_in_chunks_in_order(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path / "d.sqlite")
    for i in range(700):
        dead.add(topic(f"scale-{i % 3:04d}"), "bad_record", str(i), b"x")
    dead.flush()
    with DeadLetterFile(tmp_path / "d.sqlite") as store:
        assert [x.detail for x in store.letters()] == [str(i) for i in range(700)]
        assert [x.detail for x in store.letters(LetterQuery(device="scale-0001", limit=300))] == [
            str(i) for i in range(1, 700, 3)
        ][:300]


def test_a_store_from_before_quotas_and_replays_reads_and_takes_marks(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE dead_letter (id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER,"
            " topic TEXT, reason TEXT, detail TEXT, payload BLOB)"
        )
        db.execute(
            "INSERT INTO dead_letter (at_ms, topic, reason, detail, payload) VALUES (1, ?, 'bad_tag', '', ?)",
            (topic("scale-0007"), b"abc"),
        )
    with DeadLetterFile(path) as store:
        (letter,) = store.letters()
        assert (letter.device, letter.replayed_at_ms, letter.size) == (
            "scale-0007",
            None,
            len(topic("scale-0007")) + 3 + 64,
        )
        store.mark_replayed([letter.id], at_ms=5)
        assert store.letter(letter.id).replayed_at_ms == 5  # type: ignore[union-attr]
    dead = DeadLetters(path)  # the ingest opens it later: migrates the rest, keeps the mark
    assert dead.rows() == [(topic("scale-0007"), "bad_tag", b"abc")]
    with DeadLetterFile(path) as store:
        assert store.letter(letter.id).replayed_at_ms == 5  # type: ignore[union-attr]


def test_no_store_or_not_a_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="no dead-letter store"):
        DeadLetterFile(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()
    (tmp_path / "junk").write_bytes(b"not sqlite" * 100)
    with pytest.raises(IngestError, match="not a dead-letter store"):
        DeadLetterFile(tmp_path / "junk")


def test_on_disk_the_store_stays_near_its_quota_whatever_the_batch(tmp_path: Path) -> None:
    """An outside review measured 439 MB on disk (file and WAL) for 5 MB of live letters after a flood of
    1 500 payloads of 250 kB in one batch."""
    path = tmp_path / "d.sqlite"
    dead = DeadLetters(path, device_quota_bytes=1_000_000)
    for i in range(1_500):  # one batch: 375 MB offered
        dead.add(topic("scale-0101"), "bad_record", "", b"x" * 250_000 + b"%d" % i)
    dead.flush()
    for n in range(20):  # then 20 more batches of 5 MB
        for k in range(20):
            dead.add(topic("scale-0101"), "bad_record", "", b"y" * 250_000 + b"%d-%d" % (n, k))
        dead.flush()
    on_disk = sum(p.stat().st_size for p in tmp_path.iterdir() if p.name.startswith("d.sqlite"))
    assert dead.kept_bytes["scale-0101"] <= 1_000_000
    assert dead.evicted["scale-0101"] == 1_500 + 400 - len(dead.rows())
    assert on_disk < 25_000_000, on_disk  # the quota, the 16 MiB WAL limit and some pages


def test_a_letter_larger_than_any_payload_keeps_its_start(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path / "d.sqlite")
    dead.add(topic("scale-0001"), "oversized", "too big", b"z" * 1_000_000)
    ((_, _, payload),) = dead.rows()
    assert len(payload) == 256 * 1024


def test_the_same_refusal_again_is_counted_not_kept_twice(tmp_path: Path) -> None:
    """A message refused, committed, then redelivered after a crash (not yet acknowledged to the broker) is
    refused again: one letter, counted twice, its bytes charged once to the device's quota."""
    from cloud_ingest.dead_letters import DeadLetters

    letters = DeadLetters(tmp_path / "ingest_state.sqlite")
    letters.add("zhijian/v1/scale-0001/data", "bad_tag", "forged", b"payload A")
    letters.flush()
    charged = letters.kept_bytes["scale-0001"]
    letters.add("zhijian/v1/scale-0001/data", "bad_tag", "forged", b"payload A")  # the redelivery
    letters.add("zhijian/v1/scale-0001/data", "bad_tag", "forged", b"payload B")
    letters.add("zhijian/v1/scale-0001/data", "bad_tag", "forged", b"payload B")  # twice in one batch
    letters.add("zhijian/v1/scale-0001/data", "oversized", "x", b"payload A")  # another reason: its own letter
    letters.flush()
    rows = letters._db.execute("SELECT payload, reason, times FROM dead_letter ORDER BY id").fetchall()
    assert rows == [(b"payload A", "bad_tag", 2), (b"payload B", "bad_tag", 2), (b"payload A", "oversized", 1)]
    assert letters.kept_bytes["scale-0001"] < 4 * charged
    with DeadLetterFile(tmp_path / "ingest_state.sqlite") as store:  # an operator sees it, then replays letter 1
        seen = [(letter.times, letter.last_at_ms is not None) for letter in store.letters()]
        assert seen == [(2, True), (2, True), (1, False)]
        store.mark_replayed([1], at_ms=5)
    letters.add("zhijian/v1/scale-0001/data", "bad_tag", "forged", b"payload A")  # refused again after the replay
    letters.flush()
    assert letters._db.execute("SELECT COUNT(*) FROM dead_letter WHERE payload = ?", (b"payload A",)).fetchone() == (3,)
    letters.close()
