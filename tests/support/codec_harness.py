"""Feeding a codec the three ways of shared/STYLE.md (whole, byte by byte, with trailing garbage), through
the same :class:`FrameBuffer` the drivers and simulators use, checking that every byte is accounted for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from device_profiles.codecs.frame_buffer import Frame, FrameBuffer, Rejected

Decode = Callable[[bytearray], tuple[Any, int]]


def feed(fb: FrameBuffer[Any], data: bytes) -> tuple[list[Frame[Any]], list[str]]:
    """Feed ``data`` to ``fb``: (frames, error reasons in order); checks that no byte is lost or invented."""
    before = len(fb.pending)
    items = fb.receive(data)
    frames = [i for i in items if isinstance(i, Frame)]
    rejected = [i for i in items if isinstance(i, Rejected)]
    used = sum(len(f.raw) for f in frames) + sum(r.error.consumed for r in rejected)
    assert used + len(fb.pending) == before + len(data), "bytes lost or invented"
    assert all(r.raw and len(r.raw) <= r.error.consumed for r in rejected)
    return frames, [r.reason for r in rejected]


def drain(decode: Decode, data: bytes | bytearray) -> tuple[list[Any], list[str]]:
    """Decode all complete frames of ``data``, dropping bad ones: (frames, error reasons)."""
    frames, errors = feed(FrameBuffer(decode), bytes(data))
    return [f.value for f in frames], errors


def three_ways(decode: Decode, stream: bytes, tail: bytes) -> list[Any]:
    """Frames of ``stream`` fed whole, byte by byte, and followed by an incomplete ``tail`` (which must stay)."""
    whole_fb = FrameBuffer(decode)
    whole, errors = feed(whole_fb, stream)
    assert errors == [] and whole_fb.pending == b""
    assert b"".join(f.raw for f in whole) == stream, "each frame keeps exactly its own bytes"
    values = [f.value for f in whole]
    fb, one_by_one = FrameBuffer(decode), []
    for byte in stream:
        got, errs = feed(fb, bytes([byte]))
        assert errs == []
        one_by_one += got
    assert one_by_one == whole and fb.pending == b""
    fb = FrameBuffer(decode)
    with_tail, errs = feed(fb, stream + tail)
    assert errs == [] and with_tail == whole and fb.pending == tail
    return values


def never_crashes(decode: Decode, data: bytes) -> None:
    """Arbitrary bytes give frames or FrameError, never another exception, and always make progress."""
    feed(FrameBuffer(decode), data)
