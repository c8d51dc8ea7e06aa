"""The ingest's dead letters stay within their byte quotas: a flooding device evicts only its own oldest,
the biggest sender pays when the total is reached, and the counts survive a restart."""

from __future__ import annotations

from pathlib import Path

from cloud_ingest.dead_letters import DeadLetters


def topic(device: str) -> str:
    return f"zhijian/v1/{device}/data"


def test_a_flood_evicts_only_the_flooders_own_letters(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path / "d.sqlite", device_quota_bytes=50_000, total_quota_bytes=10**9)
    dead.add(topic("scale-0002"), "bad_tag", "x", b"evidence of scale-0002")
    dead.flush()
    for _ in range(10):  # 1 MB from one device
        for _ in range(100):
            dead.add(topic("scale-0001"), "bad_record", "y", b"g" * 1_000)
        dead.flush()
    assert dead.kept_bytes["scale-0001"] <= 50_000
    assert dead.evicted["scale-0001"] > 900 and "scale-0002" not in dead.evicted
    assert (topic("scale-0002"), "bad_tag", b"evidence of scale-0002") in dead.rows()
    assert Path(tmp_path / "d.sqlite").stat().st_size < 2_000_000


def test_the_total_quota_takes_from_the_biggest_sender(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path / "d.sqlite", device_quota_bytes=10**6, total_quota_bytes=30_000)
    for i in range(40):  # about 42 kB from scale-0001, 8.5 kB from scale-0003
        dead.add(topic("scale-0001"), "bad_record", "", b"a" * 1_000)
        if i % 5 == 0:
            dead.add(topic("scale-0003"), "bad_record", "", b"b" * 1_000)
        dead.flush()
    assert dead.total_bytes <= 30_000
    assert dead.evicted["scale-0001"] > 0 and dead.evicted["scale-0003"] == 0
    kept = DeadLetters(tmp_path / "d.sqlite")
    assert kept.kept_bytes == dead.kept_bytes  # sizes are counted again from disk


def test_any_text_is_kept(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path / "d.sqlite")
    dead.add(topic("scale-0001"), "unprocessable", "detail with a lone \ud800 surrogate", b"\xff\xfe")
    assert dead.rows() == [(topic("scale-0001"), "unprocessable", b"\xff\xfe")]
