"""Toledo continuous output: a one-way stream of fixed-size frames. Pure functions, no I/O.

Frame (17 bytes, 18 with the checksum)::

    STX SWA SWB SWC  w w w w w w  t t t t t t  CR  [CHK]
                     displayed weight, tare: 6 ASCII digits each, no decimal point

- SWA bits 0–2: decimal point (0: ×100, 1: ×10, 2: ×1, 3: 0.1, … 7: 0.00001); bits 3–4: increment ×1/×2/×5.
- SWB bit 0 net, 1 negative, 2 out of range, 3 motion, 4 kg (else lb), 6 not zeroed at power-up.
- SWC bit 0 grams (overrides kg/lb), bit 3 print request, bit 4 expanded display.
- CHK: two's complement of the 7-bit sum of every previous byte, STX and CR included.

The decoder resynchronises on STX: bytes before an STX are reported as ``garbage`` and dropped; a
frame whose body is malformed is dropped up to the next STX that may start a frame, so a real frame
hidden behind it is still found, and a run of bytes that cannot start a frame (say, a line full of
STX) is one ``bad_frame``, not one per byte. Time is linear in the buffer: each STX is looked at once
per rejection, over at most 17 bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ..errors import FrameError

STX, CR = 0x02, 0x0D
BODY_LEN = 17  # STX to CR inclusive
_DP_EXPONENT = (2, 1, 0, -1, -2, -3, -4, -5)
_INCREMENT = {1: 1, 2: 2, 3: 5}
_MG_PER = {"kg": 1_000_000, "g": 1_000}
LB_IN_MG = 453_592.37
# what _plausible_prefix accepts, for a whole frame start: fixed length, so a search stays linear
_FRAME_START_RE = re.compile(rb"\x02[\x20-\x3f\x60-\x7f]{3}[0-9]{12}")


@dataclass(frozen=True, slots=True)
class ToledoFrame:
    """One decoded frame. ``weight`` and ``tare`` are the raw digit values; see :meth:`weight_mg`."""

    weight: int
    tare: int
    decimal_code: int
    increment: int
    net: bool
    negative: bool
    out_of_range: bool
    motion: bool
    unit: Literal["kg", "g", "lb"]
    not_zeroed: bool = False
    print_request: bool = False
    expanded: bool = False

    def _to_mg(self, digits: int) -> int:
        exponent = _DP_EXPONENT[self.decimal_code]
        if self.unit == "lb":
            return round(digits * 10.0**exponent * LB_IN_MG)
        scaled = digits * _MG_PER[self.unit]
        factor: int = 10 ** abs(exponent)
        return scaled * factor if exponent >= 0 else scaled // factor

    @property
    def weight_mg(self) -> int:
        """Displayed weight in mg, signed."""
        mg = self._to_mg(self.weight)
        return -mg if self.negative else mg

    @property
    def tare_mg(self) -> int:
        return self._to_mg(self.tare)


def checksum(body: bytes) -> int:
    """Two's complement of the 7-bit sum of ``body``."""
    return -sum(body) & 0x7F


def decode(buf: bytes | bytearray, *, with_checksum: bool = True) -> tuple[ToledoFrame | None, int]:
    """The first frame in ``buf``: ``(frame, consumed)``, ``(None, 0)`` if incomplete, or FrameError."""
    start = buf.find(STX)
    if start < 0:
        if buf:
            raise FrameError("garbage", len(buf), f"{len(buf)} bytes without STX")
        return None, 0
    if start > 0:
        raise FrameError("garbage", start, f"{start} bytes before STX")
    size = BODY_LEN + (1 if with_checksum else 0)
    if len(buf) < size:
        # a complete-looking frame may only be judged when whole, but a malformed prefix can be refused now
        if not _plausible_prefix(bytes(buf)):
            raise FrameError("bad_frame", _next_start(buf), "malformed frame start")
        return None, 0
    frame = bytes(buf[:size])
    if not _plausible_prefix(frame[:BODY_LEN]) or frame[BODY_LEN - 1] != CR:
        raise FrameError("bad_frame", _next_start(buf), repr(frame))
    if with_checksum and frame[BODY_LEN] != checksum(frame[:BODY_LEN]):
        raise FrameError("bad_checksum", size, f"got {frame[BODY_LEN]:#04x}, want {checksum(frame[:BODY_LEN]):#04x}")
    swa, swb, swc = frame[1], frame[2], frame[3]
    if swa & 0x18 == 0:
        raise FrameError("bad_frame", _next_start(buf), "SWA increment bits are 0")
    unit: Literal["kg", "g", "lb"] = "g" if swc & 0x01 else ("kg" if swb & 0x10 else "lb")
    return (
        ToledoFrame(
            weight=int(frame[4:10]),
            tare=int(frame[10:16]),
            decimal_code=swa & 0x07,
            increment=_INCREMENT[(swa >> 3) & 0x03],
            net=bool(swb & 0x01),
            negative=bool(swb & 0x02),
            out_of_range=bool(swb & 0x04),
            motion=bool(swb & 0x08),
            unit=unit,
            not_zeroed=bool(swb & 0x40),
            print_request=bool(swc & 0x08),
            expanded=bool(swc & 0x10),
        ),
        size,
    )


def _next_start(buf: bytes | bytearray) -> int:
    """Where the next frame may start after the bad one at 0: its STX, or the end of ``buf``."""
    found = _FRAME_START_RE.search(buf, 1)
    if found is not None:
        return found.start()
    # the pattern needs 16 bytes: a start cut off by the end of the buffer is looked for by hand
    for at in range(max(1, len(buf) - 15), len(buf)):
        if buf[at] == STX and _plausible_prefix(bytes(buf[at:])):
            return at
    return len(buf)


def _plausible_prefix(data: bytes) -> bool:
    """STX, three status bytes with bit 5 set, then ASCII digits, as far as ``data`` goes."""
    if any(b & 0x20 == 0 or b & 0x80 for b in data[1:4]):
        return False
    digits = data[4:16]
    return all(0x30 <= b <= 0x39 for b in digits)


def encode(frame: ToledoFrame, *, with_checksum: bool = True) -> bytes:
    """Bytes of ``frame`` as an indicator sends them."""
    if not (0 <= frame.weight < 1_000_000 and 0 <= frame.tare < 1_000_000):
        raise ValueError("weight and tare must fit six digits")
    inc_code = {v: k for k, v in _INCREMENT.items()}[frame.increment]
    swa = 0x20 | frame.decimal_code | inc_code << 3
    swb = 0x20 | frame.net | frame.negative << 1 | frame.out_of_range << 2 | frame.motion << 3
    swb |= (frame.unit == "kg") << 4 | frame.not_zeroed << 6
    swc = 0x20 | (frame.unit == "g") | frame.print_request << 3 | frame.expanded << 4
    body = bytes([STX, swa, swb, swc]) + f"{frame.weight:06d}{frame.tare:06d}".encode() + bytes([CR])
    return body + bytes([checksum(body)]) if with_checksum else body
