"""A bounded hand-off from paho's network thread to the batcher, cheaper than :class:`queue.Queue`.

``queue.Queue.put`` takes a lock and notifies a condition for every message: 5 % of the ingest's CPU at
one record per message (``benchmarks/ingest_shipped.py --profile``). Here a put is a deque append (atomic
in CPython), and the lock-taking events are touched only when a side actually waits: the batcher when
nothing is left, paho's thread when the hand-off is full (then the broker holds messages back: MQTT flow
control, nothing dropped). One producer and one consumer; the method names and exceptions are
``queue.Queue``'s.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Handoff(Generic[T]):
    """``put`` from one thread, ``get`` from another; at most ``maxsize`` items wait."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._filled = threading.Event()  # set while items may wait
        self._room = threading.Event()  # set while there is room
        self._room.set()

    def put(self, item: T, timeout: float | None = None) -> None:
        """Append ``item``; if full, wait up to ``timeout`` for room, then :class:`queue.Full`."""
        while len(self._items) >= self.maxsize:
            self._room.clear()
            if len(self._items) < self.maxsize:
                break
            if not self._room.wait(timeout):
                raise queue.Full
        self._items.append(item)
        if not self._filled.is_set():
            self._filled.set()

    def get_nowait(self) -> T:
        try:
            item = self._items.popleft()
        except IndexError:
            raise queue.Empty from None
        if not self._room.is_set() and len(self._items) < self.maxsize:
            self._room.set()
        return item

    def get(self, timeout: float | None = None) -> T:
        """The oldest item, waiting up to ``timeout`` for one, then :class:`queue.Empty`."""
        while True:
            try:
                return self.get_nowait()
            except queue.Empty:
                pass
            self._filled.clear()
            if self._items:  # put between the pop and the clear: it is there
                continue
            if not self._filled.wait(timeout):
                return self.get_nowait()  # one last look; raises queue.Empty

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items
