"""Group commit in the outbox: concurrent puts share a transaction, and every record keeps its own fate.

Real SQLite files; threads put at once. Where a test needs callers in one group it holds the outbox's
connection lock, so the leader of the first commit waits while the others queue behind it (no sleeps,
no timing asserts).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from edge_agent import Outbox, OutboxFull
from edge_agent.errors import OutboxWriteError
from tests.support.waiting import wait_until


def rec(who: str, i: int, pad: int = 0) -> dict[str, Any]:
    return {"type": "weighing", "ts": i, "net_mg": i, "tare_mg": 0, "stable": True, "who": who, "pad": "x" * pad}


def size(record: dict[str, Any]) -> int:
    """What a record counts against the quota: its compact JSON."""
    return len(json.dumps(record, separators=(",", ":"), ensure_ascii=False))


def stored(box: Outbox) -> dict[int, dict[str, Any]]:
    return dict(box.peek_batch(max_records=10**6, max_bytes=2**40))


def run_all(targets: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors


class HeldCommit:
    """Holds the outbox's connection: the first put leads a commit that waits; later puts queue up."""

    def __init__(self, box: Outbox) -> None:
        self.box = box
        self.threads: list[threading.Thread] = []
        self.outcomes: dict[str, Any] = {}

    def __enter__(self) -> HeldCommit:
        self.box._lock.acquire()
        return self

    def put(self, name: str, record: dict[str, Any], **kwargs: Any) -> None:
        """Start a caller and wait until its record is queued (or leading the held commit)."""
        before = len(self.threads)

        def call() -> None:
            try:
                self.outcomes[name] = self.box.put(record, **kwargs)
            except Exception as exc:
                self.outcomes[name] = exc

        thread = threading.Thread(target=call)
        self.threads.append(thread)
        thread.start()
        if before == 0:
            assert wait_until(lambda: self.box._committing and not self.box._queue, interval_s=0.001), (
                "never: the first put leads"
            )
        else:
            assert wait_until(lambda: len(self.box._queue) == before, interval_s=0.001), f"never: {name} queued"

    def __exit__(self, *exc: object) -> None:
        self.box._lock.release()
        for t in self.threads:
            t.join(60)
        assert not any(t.is_alive() for t in self.threads)


def test_concurrent_puts_store_every_record_once_with_distinct_seqs(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    results: dict[tuple[str, int], int | None] = {}

    def producer(who: str) -> Callable[[], None]:
        def put_all() -> None:
            for i in range(300):
                results[(who, i)] = box.put(rec(who, i))

        return put_all

    run_all([producer(f"p{k}") for k in range(8)])
    seqs = list(results.values())
    assert len(seqs) == 2_400 and None not in seqs and len(set(seqs)) == 2_400
    assert box.depth == 2_400 and box.commits <= 2_400
    on_disk = stored(box)
    assert sorted(on_disk) == sorted(s for s in seqs if s is not None)
    for (who, i), seq in results.items():  # each caller's seq holds that caller's record
        assert seq is not None and on_disk[seq] == rec(who, i)
    assert box.stored_bytes == sum(size(r) for r in on_disk.values())
    box.close()
    again = Outbox(tmp_path / "o.sqlite")
    assert again.depth == 2_400 and again.stored_bytes == box.stored_bytes


def test_dedup_by_source_id_is_exact_under_concurrency(tmp_path: Path) -> None:
    """Two readers of each source take the same device records (a re-read racing the first): each enters
    once, and exactly one caller is told its seq."""
    box = Outbox(tmp_path / "o.sqlite")
    n = 150
    results: list[tuple[str, int, int | None]] = []
    lock = threading.Lock()

    def one_by_one(source: str) -> None:
        for i in range(1, n + 1):
            seq = box.put(rec(source, i), source=source, source_id=i)
            with lock:
                results.append((source, i, seq))

    def in_batches(source: str) -> None:  # put_many shares the same dedup
        for first in range(1, n + 1, 7):
            ids = range(first, min(first + 7, n + 1))
            seqs = box.put_many([(rec(source, i), i) for i in ids], source=source)
            with lock:
                results.extend((source, i, seq) for i, seq in zip(ids, seqs, strict=True))

    sources = [f"scale-{k}" for k in range(6)]
    second = [partial(in_batches if k % 2 else one_by_one, s) for k, s in enumerate(sources)]
    run_all([partial(one_by_one, s) for s in sources] + second)
    told = Counter((source, i) for source, i, seq in results if seq is not None)
    assert told == Counter({(s, i): 1 for s in sources for i in range(1, n + 1)})
    on_disk = stored(box)
    assert len(on_disk) == len(sources) * n == box.depth
    for source, i, seq in results:
        if seq is not None:
            assert on_disk[seq] == rec(source, i)
    assert sorted((r["who"], r["ts"]) for r in on_disk.values()) == sorted(told)


def test_quota_refusal_reaches_the_caller_whose_record_does_not_fit(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", quota_bytes=40_000)
    outcomes: dict[tuple[str, int], int | OutboxFull | None] = {}

    def producer(who: str, pad: int) -> Callable[[], None]:
        def put_all() -> None:
            for i in range(60):
                try:
                    outcomes[(who, i)] = box.put(rec(who, i, pad=(pad * (i + 1)) % 400))
                except OutboxFull as exc:
                    outcomes[(who, i)] = exc

        return put_all

    run_all([producer(f"p{k}", 37 * k + 11) for k in range(8)])
    refused = [key for key, got in outcomes.items() if isinstance(got, OutboxFull)]
    accepted = {key: got for key, got in outcomes.items() if isinstance(got, int)}
    assert refused and accepted and len(refused) + len(accepted) == 480
    assert box.refused == len(refused)
    on_disk = stored(box)
    assert sorted(on_disk) == sorted(accepted.values())
    for (who, i), seq in accepted.items():
        assert on_disk[seq]["who"] == who and on_disk[seq]["ts"] == i
    assert {(r["who"], r["ts"]) for r in on_disk.values()}.isdisjoint(refused)
    assert box.stored_bytes == sum(size(r) for r in on_disk.values()) <= 40_000


def test_callers_queued_during_a_commit_share_the_next_one_each_checked_on_its_own(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", quota_bytes=1_000)
    box.put(rec("old", 0), source="scale-1", source_id=5)
    commits = box.commits
    with HeldCommit(box) as held:
        held.put("leader", rec("leader", 1))
        held.put("big", rec("big", 2, pad=400))  # fits
        held.put("dup", rec("dup", 3), source="scale-1", source_id=5)  # stored before
        held.put("too-big", rec("too-big", 4, pad=600))  # does not fit after "big"
        held.put("small", rec("small", 5), source="scale-1", source_id=6)  # still fits
        held.put("dup-in-group", rec("dup-in-group", 6), source="scale-1", source_id=6)  # "small" has it
    out = held.outcomes
    assert box.commits == commits + 2  # the leader's, then one for the five queued behind it
    assert out["dup"] is None and out["dup-in-group"] is None
    assert isinstance(out["too-big"], OutboxFull) and box.refused == 1
    assert out["small"] == out["big"] + 1  # one transaction, in arrival order
    on_disk = stored(box)
    assert {on_disk[out[name]]["who"] for name in ("leader", "big", "small")} == {"leader", "big", "small"}
    assert box.depth == 4 and len(on_disk) == 4


def test_a_failed_transaction_fails_every_caller_in_it_and_stores_none_of_it(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    other = sqlite3.connect(path)  # a real constraint failure inside the group's transaction
    other.execute(
        "CREATE TRIGGER poison BEFORE INSERT ON records WHEN NEW.body LIKE '%poison%'"
        " BEGIN SELECT RAISE(ABORT, 'poisoned record'); END"
    )
    other.close()
    with HeldCommit(box) as held:
        held.put("leader", rec("leader", 1), source="scale-0", source_id=1)
        for k in range(1, 6):
            who = "poison" if k == 3 else f"r{k}"
            held.put(who, rec(who, k), source=f"scale-{k}", source_id=1)
    out = held.outcomes
    assert isinstance(out.pop("leader"), int)
    assert len(out) == 5
    for got in out.values():  # the poisoned record's caller and the four that shared its transaction
        assert isinstance(got, OutboxWriteError) and isinstance(got.__cause__, sqlite3.IntegrityError)
    assert box.depth == 1 and [r["who"] for r in stored(box).values()] == ["leader"]
    assert box.commits == 1 and box.refused == 0
    assert box.stored_bytes == size(rec("leader", 1))
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER poison")
    db.close()
    for k in (1, 2, 4, 5):  # their source ids were rolled back with them: the records are taken now
        assert box.put(rec(f"r{k}", k), source=f"scale-{k}", source_id=1) is not None
    assert box.put(rec("leader", 1), source="scale-0", source_id=1) is None
    assert box.depth == 5


def test_put_many_stores_in_order_and_stops_at_the_record_that_does_not_fit(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", quota_bytes=1_000)
    assert box.put_many([(rec("a", 1), 1), (rec("a", 1), 1), (rec("a", 2), 2)], source="s") == [1, None, 2]
    assert box.commits == 1
    with pytest.raises(OutboxFull) as full:
        box.put_many([(rec("b", 3), 3), (rec("b", 4, pad=900), 4), (rec("b", 5), 5)], source="s")
    assert full.value.stored == [3] and box.refused == 1
    assert [r["ts"] for r in stored(box).values()] == [1, 2, 3]
    assert box.put(rec("b", 5), source="s", source_id=5) == 4  # the rest was never taken: its id is free
    assert box.put_many([]) == []
