"""End-to-end delivery at the edge: which records are in flight to the cloud, and when to send them again.

A record leaves the outbox only when **the cloud** acknowledges it (the ingest's ``ack`` message, sent
once the record is in InfluxDB, in the ingest's spool, or kept there as a dead letter), never on the
broker's PUBACK alone: a broker keeps its queues in memory between autosaves, so what it has
acknowledged can still vanish. This module is the bookkeeping, pure and without I/O; the publisher
owns the MQTT side and the outbox owns the records. The life of a record::

    waiting ──send, PUBACK ok──▶ in flight ──cloud ack──▶ removed from the outbox
       ▲                            │
       └── resend (same seqs) ◀─────┘  on reconnect, on a later batch's ack, or on timeout
    waiting ──PUBACK with a failure reason (say 0x87 not authorised)──▶ waiting (retried, reason shown)

When an in-flight batch is sent again:

- after a reconnect, every in-flight batch: the broker may have lost what it held;
- when the cloud acknowledges a batch sent *later*, every batch sent before it: the cloud takes a
  device's messages in order, so the older one was lost on the way (an ACL refusal, a broker crash,
  a worker's partition moving);
- when the cloud says nothing for ``timeout_s``, only the *oldest* batch, as a probe, with the timeout
  doubling per attempt up to ``max_timeout_s``: while the ingest is down the broker holds the rest, and
  re-sending everything every half minute would only pile copies into its queue.

Resends carry the same seqs; storage is idempotent by (device, seq), so a copy that arrives twice is
one point.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise


@dataclass
class Flight:
    """One batch on its way: seqs ``first … last`` (some may have been acknowledged since)."""

    first: int
    last: int
    sent_at: float
    due_at: float
    attempts: int = 1
    early: bool = False  # made due before its timeout: reconnected, or overtaken by a later batch's ack


class InFlight:
    """Batches sent and not yet acknowledged by the cloud, oldest first."""

    def __init__(self, *, timeout_s: float = 30.0, max_timeout_s: float = 900.0) -> None:
        self.timeout_s = timeout_s
        self.max_timeout_s = max_timeout_s
        self.flights: list[Flight] = []
        self.cursor = 0  # highest seq sent since the outbox was opened: new batches start above it
        self.resends = 0

    def __len__(self) -> int:
        return len(self.flights)

    @property
    def records(self) -> int:
        """Seqs in flight (an upper bound once some are acknowledged out of order)."""
        return sum(f.last - f.first + 1 for f in self.flights)

    def sent(self, first: int, last: int, now: float) -> None:
        """A batch the broker accepted (PUBACK without a failure reason)."""
        for flight in self.flights:
            if flight.first == first and flight.last == last:  # a resend of a batch in flight
                flight.attempts += 1
                flight.sent_at = now
                flight.due_at = now + min(self.timeout_s * 2 ** (flight.attempts - 1), self.max_timeout_s)
                flight.early = False
                self.resends += 1
                return
        self.flights.append(Flight(first, last, now, now + self.timeout_s))
        self.flights.sort(key=lambda f: f.first)
        self.cursor = max(self.cursor, last)

    def acknowledged(self, ranges: list[tuple[int, int]], now: float) -> None:
        """The cloud has these seqs for good: forget them, and make older batches due."""
        acked_sent_at = None
        kept: list[Flight] = []
        for flight in self.flights:
            pieces = _subtract(flight.first, flight.last, ranges)
            if len(pieces) != 1 or pieces[0] != (flight.first, flight.last):
                acked_sent_at = max(acked_sent_at or flight.sent_at, flight.sent_at)
            kept += [Flight(a, b, flight.sent_at, flight.due_at, flight.attempts, flight.early) for a, b in pieces]
        if acked_sent_at is not None:
            for flight in kept:
                if flight.sent_at < acked_sent_at:  # overtaken: lost on the way
                    flight.due_at, flight.early = min(flight.due_at, now), True
        self.flights = kept

    def reconnected(self, now: float) -> None:
        """The connection was lost and is back: whatever was in flight may be lost."""
        for flight in self.flights:
            flight.due_at, flight.early = min(flight.due_at, now), True

    def due(self, now: float) -> Flight | None:
        """The batch to send again now, if any: one overtaken or reconnected, else the oldest on timeout."""
        for flight in self.flights:
            if flight.early and flight.due_at <= now:
                return flight
        if self.flights and self.flights[0].due_at <= now:
            return self.flights[0]
        return None

    def forget(self) -> None:
        """After a restart nothing is known to be in flight: everything in the outbox is sent again."""
        self.flights.clear()
        self.cursor = 0


def _subtract(first: int, last: int, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``first … last`` minus the seqs in ``ranges``, as ranges."""
    pieces = [(first, last)]
    for a, b in ranges:
        nxt = []
        for p, q in pieces:
            if b < p or a > q:
                nxt.append((p, q))
                continue
            if p < a:
                nxt.append((p, a - 1))
            if b < q:
                nxt.append((b + 1, q))
        pieces = nxt
    return pieces


def ranges_of(seqs: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted ``seqs``."""
    if not seqs:
        return []
    out = [(seqs[0], seqs[0])]
    for a, b in pairwise(seqs):
        if b == a + 1:
            out[-1] = (out[-1][0], b)
        else:
            out.append((b, b))
    return out
