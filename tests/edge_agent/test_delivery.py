"""End-to-end delivery bookkeeping (pure): what is in flight, and when a batch is sent again."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_profiles import EnvelopeError
from device_profiles.acks import decode_ack, encode_ack, merge_ranges
from edge_agent.delivery import InFlight


def test_a_batch_is_in_flight_until_acknowledged() -> None:
    f = InFlight(timeout_s=30)
    f.sent(1, 10, now=0)
    f.sent(11, 20, now=1)
    assert f.records == 20 and f.cursor == 20 and f.due(now=5) is None
    f.acknowledged([(1, 10)], now=6)
    assert [(x.first, x.last) for x in f.flights] == [(11, 20)]
    f.acknowledged([(11, 20)], now=7)
    assert len(f) == 0 and f.cursor == 20


def test_an_overtaken_batch_is_sent_again_at_once() -> None:
    f = InFlight(timeout_s=30)
    f.sent(1, 10, now=0)  # lost on the way (an ACL refusal upstream, a broker crash)
    f.sent(11, 20, now=1)
    f.acknowledged([(11, 20)], now=2)
    due = f.due(now=2)
    assert due is not None and (due.first, due.last) == (1, 10)
    f.sent(1, 10, now=3)  # the resend: same seqs, one more attempt
    assert f.flights[0].attempts == 2 and f.due(now=3) is None and f.resends == 1


def test_silence_probes_with_the_oldest_batch_only_and_backs_off() -> None:
    f = InFlight(timeout_s=30, max_timeout_s=100)
    for i in range(5):
        f.sent(i * 10 + 1, i * 10 + 10, now=0)
    assert f.due(now=29) is None
    probe = f.due(now=30)
    assert probe is not None and probe.first == 1
    f.sent(1, 10, now=30)
    assert f.due(now=31) is None  # the others wait: the broker holds them while the cloud is away
    assert f.due(now=89) is None and f.due(now=90) is not None  # 60 s after the second attempt
    f.sent(1, 10, now=90)
    f.sent(1, 10, now=190)  # capped at 100 s
    assert f.flights[0].due_at == 290


def test_a_reconnect_makes_everything_in_flight_due() -> None:
    f = InFlight(timeout_s=30)
    f.sent(1, 10, now=0)
    f.sent(11, 20, now=0)
    f.reconnected(now=1)
    first = f.due(now=1)
    assert first is not None and first.first == 1
    f.sent(1, 10, now=1)
    second = f.due(now=1)
    assert second is not None and second.first == 11


def test_a_partial_acknowledgement_splits_a_batch() -> None:
    f = InFlight(timeout_s=30)
    f.sent(1, 10, now=0)
    f.acknowledged([(3, 4), (8, 8)], now=1)
    assert [(x.first, x.last) for x in f.flights] == [(1, 2), (5, 7), (9, 10)]


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), max_size=20))
def test_merged_ranges_cover_the_same_seqs(pairs: list[tuple[int, int]]) -> None:
    ranges = [(min(a, b), max(a, b)) for a, b in pairs]
    merged = merge_ranges(ranges)
    covered = {s for a, b in ranges for s in range(a, b + 1)}
    assert {s for a, b in merged for s in range(a, b + 1)} == covered
    assert all(b1 + 1 < a2 for (_, b1), (a2, _) in itertools.pairwise(merged))
    assert decode_ack(encode_ack(ranges)) == merged


@given(
    st.lists(st.tuples(st.integers(1, 200), st.integers(1, 20)), min_size=1, max_size=15),
    st.lists(st.tuples(st.integers(1, 220), st.integers(0, 20)), max_size=15),
)
def test_in_flight_never_holds_an_acknowledged_seq(batches, acks) -> None:
    f = InFlight(timeout_s=30)
    sent: set[int] = set()
    for first, n in batches:
        if any(s in sent for s in range(first, first + n)):
            continue
        f.sent(first, first + n - 1, now=0)
        sent |= set(range(first, first + n))
    acked: set[int] = set()
    for i, (first, n) in enumerate(acks):
        f.acknowledged([(first, first + n)], now=i)
        acked |= set(range(first, first + n + 1))
    flying = {s for x in f.flights for s in range(x.first, x.last + 1)}
    assert flying == sent - acked


@pytest.mark.parametrize(
    "payload",
    [b"", b"[]", b'{"v":2,"ranges":[]}', b'{"v":1,"ranges":[[5,3]]}', b'{"v":1,"ranges":[[1,"2"]]}', b"[" * 5000],
)
def test_a_bad_acknowledgement_is_refused(payload: bytes) -> None:
    with pytest.raises(EnvelopeError):
        decode_ack(payload)
