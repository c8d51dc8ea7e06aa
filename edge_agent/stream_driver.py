"""Devices that talk on their own: a Toledo continuous indicator, a GPS receiver, a rapid-test analyzer.

:class:`StreamReader` owns the port (any pyserial URL) and a
:class:`~device_profiles.codecs.frame_buffer.FrameBuffer` through which a codec from
:mod:`device_profiles.codecs` turns bytes into frames. Bad frames are dropped, counted per reason (the
first of each reason logged with the last frames), and the stream goes on; a line silent for longer
than ``silence_s`` raises :class:`DeviceTimeout` (the agent logs the device as gone).
The three ``*Records`` classes turn frames into contract records.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import serial

from device_profiles import EnvelopeError, Profile, check_record
from device_profiles.codecs import nmea, rapid_test, toledo
from device_profiles.codecs.frame_buffer import Frame, FrameBuffer
from device_profiles.schema import SerialSettings

from .errors import DeviceError, DeviceTimeout

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BUFFER = 64 * 1024  # codecs bound their frames far below this; it is a second fence


class StreamReader(Generic[T]):
    """Reads frames of one kind from a serial stream."""

    def __init__(
        self,
        url: str,
        decode: Callable[[bytearray], tuple[T | None, int]],
        *,
        serial_settings: SerialSettings,
        silence_s: float = 5.0,
    ) -> None:
        self.url = url
        self.settings = serial_settings
        self.silence_s = silence_s
        self._port: serial.Serial | None = None
        self._frames: FrameBuffer[T] = FrameBuffer(decode, max_bytes=MAX_BUFFER)
        self._last_byte = time.monotonic()
        self._logged: set[str] = set()

    @property
    def frame_errors(self) -> Counter[str]:
        """Bad frames dropped, per reason (``overflow`` when the buffer limit was reached)."""
        return self._frames.errors

    def open(self) -> None:
        s = self.settings
        try:
            self._port = serial.serial_for_url(
                self.url, baudrate=s.baudrate, bytesize=s.bytesize, parity=s.parity, stopbits=s.stopbits, timeout=0.05
            )
        except (serial.SerialException, OSError) as exc:
            raise DeviceError(f"cannot open {self.url}: {exc}") from exc
        self._frames.clear()
        self._last_byte = time.monotonic()

    def close(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None

    def frames(self, *, wait_s: float = 0.2) -> list[T]:
        """Frames decoded from what arrives within ``wait_s``."""
        if self._port is None:
            self.open()
        assert self._port is not None
        deadline = time.monotonic() + wait_s
        out: list[T] = []
        try:
            while time.monotonic() < deadline:
                chunk = self._port.read(max(1, min(self._port.in_waiting, 4096)))
                if chunk:
                    self._last_byte = time.monotonic()
                    out += self._drain(chunk)
                elif time.monotonic() - self._last_byte > self.silence_s:
                    raise DeviceTimeout(f"{self.url}: silent for {self.silence_s:g} s")
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise DeviceError(f"{self.url}: {exc}") from exc
        return out

    def _drain(self, chunk: bytes) -> list[T]:
        out: list[T] = []
        for item in self._frames.receive(chunk):
            if isinstance(item, Frame):
                out.append(item.value)
            elif item.reason not in self._logged:  # once per reason: a noisy line must not flood the log
                self._logged.add(item.reason)
                log.info("%s: dropping bad frames (%s); recent: %s", self.url, item.error, self._frames.dump())
        return out


class ToledoRecords:
    """``weighing`` records from a continuous stream: one per new stable weight, and one per print request."""

    def __init__(self, profile: Profile) -> None:
        assert profile.toledo is not None
        self.with_checksum = profile.toledo.checksum
        self._last_stable: tuple[int, int] | None = None

    def decode(self, buf: bytearray) -> tuple[toledo.ToledoFrame | None, int]:
        return toledo.decode(buf, with_checksum=self.with_checksum)

    def records(self, frames: list[toledo.ToledoFrame], *, ts_ms: int) -> list[dict[str, Any]]:
        out = []
        for f in frames:
            if f.out_of_range:
                continue
            key = (f.weight_mg, f.tare_mg)
            if (not f.motion and key != self._last_stable) or f.print_request:
                self._last_stable = key if not f.motion else self._last_stable
                out.append(
                    {
                        "type": "weighing",
                        "ts": ts_ms,
                        "net_mg": f.weight_mg,
                        "tare_mg": f.tare_mg,
                        "stable": not f.motion,
                    }
                )
            elif f.motion:
                self._last_stable = None  # the load changed: the next stable weight is new
        return out


class GpsRecords:
    """``gps`` records from NMEA sentences (see :class:`device_profiles.codecs.nmea.FixAssembler`)."""

    def __init__(self, profile: Profile) -> None:
        assert profile.nmea is not None
        self.assembler = nmea.FixAssembler(profile.nmea.talkers)

    @staticmethod
    def decode(buf: bytearray) -> tuple[Any, int]:
        return nmea.decode(buf)

    def records(self, frames: list[Any], *, ts_ms: int) -> list[dict[str, Any]]:
        del ts_ms  # GPS time is the vehicle's trusted clock
        return [r for r in (self.assembler.feed(s) for s in frames) if r is not None]


class RapidTestRecords:
    """``rapid_test`` records from the analyzer's result lines; invalid ones are returned as rejects."""

    def __init__(self, profile: Profile) -> None:
        assert profile.rapid_test is not None
        self.spec = profile.rapid_test
        self.rejected: list[tuple[str, dict[str, Any]]] = []

    def decode(self, buf: bytearray) -> tuple[dict[str, Any] | None, int]:
        return rapid_test.decode(buf, self.spec)

    def records(self, frames: list[dict[str, Any]], *, ts_ms: int) -> list[dict[str, Any]]:
        out = []
        for rec in frames:
            rec.setdefault("ts", ts_ms)
            try:
                check_record(rec)
            except EnvelopeError as exc:
                self.rejected.append((str(exc), rec))
                continue
            out.append(rec)
        return out
