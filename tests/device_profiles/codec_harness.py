"""Feeding a codec the three ways of shared/STYLE.md: whole, byte by byte, with trailing garbage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from device_profiles import FrameError

Decode = Callable[[bytearray], tuple[Any, int]]


def drain(decode: Decode, buf: bytearray) -> tuple[list[Any], list[str]]:
    """Decode all complete frames, dropping bad ones; returns (frames, error reasons). Leaves the tail."""
    frames: list[Any] = []
    errors: list[str] = []
    while buf:
        try:
            frame, used = decode(buf)
        except FrameError as exc:
            assert 0 < exc.consumed <= len(buf), "a FrameError must consume part of the buffer"
            errors.append(exc.reason)
            del buf[: exc.consumed]
            continue
        if frame is None:
            assert used == 0
            break
        assert 0 < used <= len(buf)
        frames.append(frame)
        del buf[:used]
    return frames, errors


def three_ways(decode: Decode, stream: bytes, tail: bytes) -> list[Any]:
    """Frames of ``stream`` fed whole, byte by byte, and followed by an incomplete ``tail`` (which must stay)."""
    whole, errors = drain(decode, bytearray(stream))
    assert errors == []
    buf, one_by_one = bytearray(), []
    for byte in stream:
        buf.append(byte)
        got, errs = drain(decode, buf)
        assert errs == []
        one_by_one += got
    assert one_by_one == whole and buf == b""
    buf = bytearray(stream + tail)
    with_tail, errs = drain(decode, buf)
    assert errs == [] and with_tail == whole and buf == tail
    return whole


def never_crashes(decode: Decode, data: bytes) -> None:
    """Arbitrary bytes give frames or FrameError, never another exception, and always make progress."""
    drain(decode, bytearray(data))
