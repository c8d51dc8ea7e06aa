"""Line framing shared by the line-oriented codecs (MT-SICS, NMEA 0183, the rapid-test analyzer)."""

from __future__ import annotations

from ..errors import FrameError


def next_line(buf: bytes | bytearray, *, max_len: int) -> tuple[bytes | None, int]:
    """The first line of ``buf`` without its CR LF (or bare LF): ``(line, consumed)``, or ``(None, 0)``.

    A line longer than ``max_len`` raises ``FrameError('line_too_long')``; when no line end has come yet,
    ``consumed`` is the whole buffer, so a peer that never sends a line end cannot grow it without bound.
    """
    end = buf.find(b"\n")
    if end < 0:
        if len(buf) > max_len:
            raise FrameError("line_too_long", len(buf), f"no line end in {len(buf)} bytes")
        return None, 0
    consumed = end + 1
    line = bytes(buf[: end - 1 if end and buf[end - 1] == 0x0D else end])
    if len(line) > max_len:
        raise FrameError("line_too_long", consumed, f"{len(line)} bytes")
    return line, consumed


def xor_checksum(data: bytes) -> int:
    """XOR of all bytes: the NMEA 0183 checksum of what lies between ``$`` and ``*``."""
    value = 0
    for byte in data:
        value ^= byte
    return value
