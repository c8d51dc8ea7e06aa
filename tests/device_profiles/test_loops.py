"""Supervised loops: a step that raises is logged once, counted, shown, and the loop goes on."""

from __future__ import annotations

import itertools
import logging
import threading
import time

import pytest

from device_profiles.loops import Loop
from tests.support.waiting import wait_until


def test_a_failing_step_is_counted_logged_once_and_the_loop_recovers(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []
    fail_until = 3

    def step() -> None:
        calls.append(1)
        if len(calls) <= fail_until:
            raise ValueError(f"surprise {len(calls)}")
        time.sleep(0.01)

    loop = Loop("t-step", step, min_backoff_s=0.01, max_backoff_s=0.02)
    with caplog.at_level(logging.ERROR, logger="device_profiles.loops"):
        loop.start()
        assert wait_until(lambda: loop.steps >= 5)
        loop.stop()
    assert not loop.alive
    assert loop.errors == {"ValueError": 3} and loop.error_count == 3
    assert loop.last_error == "ValueError: surprise 3"
    assert not loop.failing  # good steps came after
    assert sum("unexpected ValueError" in r.getMessage() for r in caplog.records) == 1
    status = loop.status()
    assert status["alive"] is False and status["errors"] == 3


def test_status_shows_a_loop_that_keeps_failing() -> None:
    def step() -> None:
        raise OSError("port gone")

    loop = Loop("t-fail", step, min_backoff_s=0.01, max_backoff_s=0.01).start()
    try:
        assert wait_until(lambda: loop.error_count >= 3)
        assert loop.failing and loop.alive and loop.status()["last_error"] == "OSError: port gone"
    finally:
        loop.stop()


def test_backoff_doubles_up_to_its_cap() -> None:
    times: list[float] = []

    def failing() -> None:
        times.append(time.monotonic())
        raise RuntimeError("x")

    loop = Loop("t-backoff", failing, min_backoff_s=0.05, max_backoff_s=0.2).start()
    assert wait_until(lambda: len(times) >= 5)
    loop.stop()
    gaps = [b - a for a, b in itertools.pairwise(times)][:4]
    # a wait is never shorter than asked (load only makes it longer): 0.05, 0.1, 0.2, then capped at 0.2
    for gap, least in zip(gaps, [0.05, 0.1, 0.2, 0.2], strict=True):
        assert gap >= least * 0.99, gaps


def test_a_shared_stop_ends_every_loop() -> None:
    stop = threading.Event()
    loops = [Loop(f"t-{i}", lambda: stop.wait(0.05), stop=stop).start() for i in range(3)]
    assert wait_until(lambda: all(loop.steps >= 2 for loop in loops))
    stop.set()
    for loop in loops:
        loop.join(5)
        assert not loop.alive
