"""FrameBuffer: raw bytes per frame, stream order, counted rejections, the ring, the byte bound."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_profiles import FrameError
from device_profiles.codecs import mtsics, toledo
from device_profiles.codecs.frame_buffer import DUMP_BYTES, CodecContractError, Decode, Frame, FrameBuffer, Rejected
from tests.support.codec_harness import feed


def test_frames_keep_their_own_bytes_and_rejections_come_in_stream_order() -> None:
    fb = FrameBuffer(mtsics.decode)
    items = fb.receive(b'XSW A "fw 2.1"\n\xff\r\nS S 1.000 kg\r\n\r\nS')
    assert [type(i) for i in items] == [Frame, Rejected, Frame, Rejected]
    first, bad, second, empty = items
    assert isinstance(first, Frame) and first.raw == b'XSW A "fw 2.1"\n' and first.value.values == ("fw 2.1",)
    assert isinstance(second, Frame) and second.raw == b"S S 1.000 kg\r\n"
    assert isinstance(bad, Rejected) and bad.reason == "not_ascii" and bad.raw == b"\xff\r\n"
    assert isinstance(empty, Rejected) and empty.reason == "empty_line"
    assert fb.errors == {"not_ascii": 1, "empty_line": 1}
    assert fb.pending == b"S"
    assert [label for label, _ in fb.recent] == ["frame", "not_ascii", "frame", "empty_line"]
    assert "not_ascii b'\\xff\\r\\n'" in fb.dump()
    assert fb.feed(b" S 2.000 kg\r\n")[0].raw == b"S S 2.000 kg\r\n"  # the pending head completes the line


def test_the_ring_keeps_only_the_last_frames() -> None:
    fb = FrameBuffer(mtsics.decode, ring=3)
    fb.feed(b"".join(f"XTA A {i}\r\n".encode() for i in range(10)))
    assert [raw for _, raw in fb.recent] == [b"XTA A 7\r\n", b"XTA A 8\r\n", b"XTA A 9\r\n"]


def test_a_rejection_keeps_a_bounded_sample_of_what_it_dropped() -> None:
    fb = FrameBuffer(mtsics.decode)
    (bad,) = fb.receive(b"X" * 5000)  # no line end: refused as soon as it is longer than a line
    assert isinstance(bad, Rejected) and bad.reason == "line_too_long"
    assert bad.error.consumed == 5000 and bad.raw == b"X" * DUMP_BYTES
    assert fb.pending == b""


def never_complete(buf: bytearray) -> tuple[None, int]:
    """A codec that never makes a frame and never refuses one: only the buffer's bound stops it."""
    return None, 0


def test_overflow_is_counted_and_the_buffer_never_holds_more_than_its_bound() -> None:
    fb: FrameBuffer[None] = FrameBuffer(never_complete, max_bytes=100)
    assert fb.receive(b"a" * 100) == [] and len(fb.pending) == 100  # exactly full is still allowed
    (over,) = fb.receive(b"b")
    assert isinstance(over, Rejected) and over.reason == "overflow" and over.error.consumed == 100
    assert fb.pending == b"b"
    items = fb.receive(b"c" * 1000)  # a large chunk is taken in slices, never all at once
    assert [i.reason for i in items if isinstance(i, Rejected)] == ["overflow"] * 10
    assert len(fb.pending) == 1001 - 1000
    assert fb.errors == {"overflow": 11} and fb.overflow_bytes == 1100


def test_frames_in_a_chunk_larger_than_the_bound_are_all_decoded() -> None:
    frame = toledo.encode(
        toledo.ToledoFrame(
            weight=1275,
            tare=0,
            decimal_code=5,
            increment=5,
            net=False,
            negative=False,
            out_of_range=False,
            motion=False,
            unit="kg",
        )
    )
    fb = FrameBuffer(toledo.decode, max_bytes=len(frame) * 2)
    frames = fb.feed(frame * 100)
    assert len(frames) == 100 and fb.errors == {} and fb.pending == b""


def refuses_nothing(buf: bytearray) -> tuple[None, int]:
    raise FrameError("bad", 0)  # a refusal that drops nothing would loop forever


@pytest.mark.parametrize(
    "decode",
    [
        lambda buf: (None, 1),  # incomplete, but consumed
        lambda buf: ("frame", 0),  # a frame of no bytes would loop forever
        lambda buf: ("frame", len(buf) + 1),
        refuses_nothing,
    ],
)
def test_a_codec_breaking_its_contract_is_our_error_not_an_endless_loop(decode: Decode[Any]) -> None:
    with pytest.raises(CodecContractError):
        FrameBuffer(decode).feed(b"abc")


def test_clear_forgets_pending_bytes_but_not_the_counts() -> None:
    fb = FrameBuffer(mtsics.decode)
    fb.feed(b"\r\nS S 1.0")
    fb.clear()
    assert fb.pending == b"" and fb.errors == {"empty_line": 1}
    assert fb.feed(b" kg\r\n")[0].raw == b" kg\r\n"


@given(st.lists(st.binary(max_size=80), max_size=20))
def test_every_byte_ends_in_a_frame_a_rejection_or_pending_whatever_the_chunks(chunks: list[bytes]) -> None:
    fb = FrameBuffer(mtsics.decode, max_bytes=600)
    for chunk in chunks:
        feed(fb, chunk)  # checks the accounting
        assert len(fb.pending) <= fb.max_bytes
