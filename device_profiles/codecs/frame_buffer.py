"""The receive buffer every codec is drained through: bytes in, frames with their raw bytes out. No I/O.

A :class:`FrameBuffer` wraps one codec's ``decode(buf) -> (frame | None, consumed)``. Guarantees:

- **Order and accounting.** :meth:`FrameBuffer.receive` returns, in stream order, every frame decoded
  (a :class:`Frame`: the value and the exact bytes it was decoded from) and every rejected run of bytes
  (a :class:`Rejected`: the codec's :class:`~device_profiles.errors.FrameError` and the dropped bytes). Every
  byte fed ends in exactly one frame, one rejection, or :attr:`FrameBuffer.pending`.
- **Bounded.** At most ``max_bytes`` bytes wait for the rest of a frame. When a codec cannot make a frame
  of that many bytes, they are dropped as an ``overflow`` rejection: counted in :attr:`errors` and in
  :attr:`overflow_bytes`, never dropped silently. A frame may therefore be at most ``max_bytes`` long.
- **Counted.** :attr:`errors` counts rejections per reason; :attr:`recent` keeps the last ``ring``
  frames and rejections (label and raw bytes) so that a driver can dump them when something goes wrong.
- **A codec that breaks its contract** (consumes nothing, or more than it was given) raises
  :class:`CodecContractError` instead of looping forever or losing bytes: that is our bug, not the peer's.

It holds no lock: one reader owns one buffer. Logging is the caller's (it knows the device).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..errors import FrameError

T = TypeVar("T")
Decode = Callable[[bytearray], tuple[T | None, int]]
DUMP_BYTES = 4096  # rejected bytes kept per rejection: a whole line as evidence, bounded for a flood


@dataclass(frozen=True, slots=True)
class Frame(Generic[T]):
    """A decoded frame and the bytes it was decoded from (terminator included)."""

    value: T
    raw: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    """Bytes the codec refused; ``raw`` holds the first :data:`DUMP_BYTES` of the ``error.consumed`` dropped."""

    error: FrameError
    raw: bytes

    @property
    def reason(self) -> str:
        return self.error.reason


class CodecContractError(RuntimeError):
    """A decode function returned a ``consumed`` outside the buffer (a bug in the codec, not the peer)."""


class FrameBuffer(Generic[T]):
    """Bytes of one stream waiting to become frames of one codec."""

    def __init__(self, decode: Decode[T], *, max_bytes: int = 64 * 1024, ring: int = 16) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self._decode = decode
        self.max_bytes = max_bytes
        self.errors: Counter[str] = Counter()
        self.overflow_bytes = 0
        self.recent: deque[tuple[str, bytes]] = deque(maxlen=ring)
        self._buf = bytearray()

    @property
    def pending(self) -> bytes:
        """Bytes received that are not yet a whole frame."""
        return bytes(self._buf)

    def clear(self) -> None:
        """Forget pending bytes (a new connection, or a new request whose old replies do not matter)."""
        self._buf.clear()

    def feed(self, data: bytes | bytearray = b"") -> list[Frame[T]]:
        """The frames completed by ``data``; rejections are only counted and kept in :attr:`recent`."""
        return [item for item in self.receive(data) if isinstance(item, Frame)]

    def receive(self, data: bytes | bytearray = b"") -> list[Frame[T] | Rejected]:
        """Frames and rejections completed by ``data``, in stream order."""
        out: list[Frame[T] | Rejected] = []
        view = memoryview(data)
        pos = 0
        while True:
            room = self.max_bytes - len(self._buf)
            if room == 0 and pos < len(view):
                out.append(self._overflow())
                room = self.max_bytes
            # never more than max_bytes held: feed a large chunk in slices and drain after each
            piece = view[pos : pos + room]
            self._buf += piece
            pos += len(piece)
            self._drain(out)
            if pos >= len(view):
                return out

    def dump(self) -> str:
        """The last frames and rejections, oldest first, for a log line."""
        return "; ".join(f"{label} {raw!r}" for label, raw in self.recent)

    def _drain(self, out: list[Frame[T] | Rejected]) -> None:
        buf = self._buf
        while buf:
            try:
                value, used = self._decode(buf)
            except FrameError as exc:
                if not 0 < exc.consumed <= len(buf):
                    raise CodecContractError(f"FrameError consumed {exc.consumed} of {len(buf)} bytes") from exc
                rejected = Rejected(exc, bytes(buf[: min(exc.consumed, DUMP_BYTES)]))
                del buf[: exc.consumed]
                self.errors[exc.reason] += 1
                self.recent.append((exc.reason, rejected.raw))
                out.append(rejected)
                continue
            if value is None:
                if used != 0:
                    raise CodecContractError(f"incomplete frame but consumed {used}")
                return
            if not 0 < used <= len(buf):
                raise CodecContractError(f"frame consumed {used} of {len(buf)} bytes")
            frame = Frame(value, bytes(buf[:used]))
            del buf[:used]  # a bytearray drops its head in O(1): draining stays linear
            self.recent.append(("frame", frame.raw))
            out.append(frame)

    def _overflow(self) -> Rejected:
        size = len(self._buf)
        error = FrameError("overflow", size, f"{size} bytes without a frame")
        rejected = Rejected(error, bytes(self._buf[:DUMP_BYTES]))
        self._buf.clear()
        self.errors["overflow"] += 1
        self.overflow_bytes += size
        self.recent.append(("overflow", rejected.raw))
        return rejected
