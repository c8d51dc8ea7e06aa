"""The hand-off between paho's thread and the batcher: order kept, nothing lost, bounded, no missed wake-up."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from cloud_ingest.handoff import Handoff


def test_a_producer_and_a_consumer_pass_everything_in_order_through_a_small_bound() -> None:
    handoff: Handoff[int] = Handoff(maxsize=7)
    n = 200_000
    got: list[int] = []

    def consume() -> None:
        while len(got) < n:
            try:
                got.append(handoff.get(timeout=5))
            except queue.Empty:
                return

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(n):
        handoff.put(i, timeout=30)
        assert handoff.qsize() <= 7
    consumer.join(60)
    assert got == list(range(n))


def test_full_waits_then_refuses_and_empty_waits_then_refuses() -> None:
    handoff: Handoff[str] = Handoff(maxsize=2)
    handoff.put("a")
    handoff.put("b")
    started = time.monotonic()
    with pytest.raises(queue.Full):
        handoff.put("c", timeout=0.2)
    assert time.monotonic() - started >= 0.19
    assert [handoff.get_nowait(), handoff.get(timeout=1)] == ["a", "b"]
    assert handoff.empty()
    with pytest.raises(queue.Empty):
        handoff.get(timeout=0.1)
    with pytest.raises(queue.Empty):
        handoff.get_nowait()


def test_a_waiting_consumer_wakes_for_an_item_put_later() -> None:
    handoff: Handoff[int] = Handoff(maxsize=10)
    threading.Timer(0.2, handoff.put, (42,)).start()
    assert handoff.get(timeout=30) == 42


def test_a_full_producer_wakes_when_the_consumer_takes_one() -> None:
    handoff: Handoff[int] = Handoff(maxsize=1)
    handoff.put(1)
    threading.Timer(0.2, handoff.get_nowait).start()
    handoff.put(2, timeout=30)
    assert handoff.get_nowait() == 2
