"""The outbox keeps every accepted record through restarts and SIGKILL; seqs never go back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge_agent import Outbox, OutboxFull


def rec(i: int) -> dict:
    return {"type": "weighing", "ts": i, "net_mg": i, "tare_mg": 0, "stable": True}


def test_seqs_are_monotonic_across_reopen_and_deletion(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    seqs = [box.put(rec(i)) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    box.remove_through(5)
    box.close()
    box = Outbox(tmp_path / "o.sqlite")
    assert box.depth == 0 and box.put(rec(6)) == 6


def test_batches_are_consecutive_and_bounded(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    for i in range(10):
        box.put(rec(i))
    batch = box.peek_batch(max_records=4)
    assert [s for s, _ in batch] == [1, 2, 3, 4] and batch[0][1] == rec(0)
    assert len(box.peek_batch(max_records=100, max_bytes=150)) < 10
    box.remove_through(4)
    assert box.depth == 6 and box.peek_batch()[0][0] == 5


def test_a_device_record_is_taken_once(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    assert box.put(rec(1), source="txn", source_id=17) == 1
    assert box.put(rec(1), source="txn", source_id=17) is None  # read again after a crash before the ack
    assert box.put(rec(2), source="txn", source_id=18) == 2
    assert box.depth == 2


def test_quota_refuses_and_counts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", quota_bytes=300)
    taken = 0
    with pytest.raises(OutboxFull):
        for i in range(100):
            box.put(rec(i))
            taken += 1
    assert box.refused == 1 and box.depth == taken
    box.remove_through(10**9)
    assert box.put(rec(1)) is not None  # room again once published


def test_sigkill_loses_nothing_that_put_returned(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    script = textwrap.dedent(f"""
        import sys
        from edge_agent import Outbox
        box = Outbox({str(path)!r})
        i = 0
        while True:
            seq = box.put({{"type": "weighing", "ts": i, "net_mg": i, "tare_mg": 0, "stable": True}})
            print(seq, flush=True)
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    acknowledged = []
    assert proc.stdout is not None
    for line in proc.stdout:
        acknowledged.append(int(line))
        if len(acknowledged) == 300:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    box = Outbox(path)
    stored = [s for s, _ in box.peek_batch(max_records=100_000, max_bytes=10**9)]
    assert set(acknowledged) <= set(stored)
    assert stored == list(range(1, len(stored) + 1))


def test_dead_letters_are_bounded_by_bytes_oldest_evicted(tmp_path) -> None:
    from edge_agent.outbox import Outbox

    box = Outbox(tmp_path / "o.sqlite", dead_letter_quota_bytes=10_000)
    for i in range(100):  # a babbling device: 100 kB of garbage
        box.dead_letter("bad_line", bytes([i]) * 1_000, at_ms=i)
    kept = box.dead_letters()
    assert box.dead_letter_bytes <= 10_000 and len(kept) == 9
    assert [d[0] for _, d in kept] == list(range(91, 100))  # the newest stay
    assert box.dead_letters_evicted == 91
    box.put({"type": "sale"}, source="s")  # records are untouched by the letters' quota
    assert box.depth == 1
    box.close()
    again = Outbox(tmp_path / "o.sqlite", dead_letter_quota_bytes=10_000)
    assert again.dead_letter_bytes == box.dead_letter_bytes  # counted again from disk
