"""What the agent reads records from: one :class:`Source` per device on a port or bus.

A source's :meth:`~Source.take` returns records together with a way to confirm them; the agent confirms
each only after the outbox has stored it. Only the MT-SICS scale needs the confirmation (``XTA``: the
scale may then forget the sale); polled and streaming devices have nothing to confirm.
"""

from __future__ import annotations

import base64
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Protocol

from device_profiles import Profile

from .modbus_driver import ModbusBus, ModbusSensor
from .mtsics_driver import BadTransaction, MtSicsScale
from .stream_driver import GpsRecords, RapidTestRecords, StreamReader, ToledoRecords


def evidence(source: str, record_type: str, reason: str, data: bytes, *, txn: int | None = None) -> dict[str, Any]:
    """A ``raw_evidence`` record: what the device sent that is not a valid record, with why (the exact bytes)."""
    record: dict[str, Any] = {
        "type": "raw_evidence",
        "ts": int(time.time() * 1000),
        "source": _text(source, 80),
        "record_type": re.sub(r"[^a-z0-9_]", "_", record_type.lower())[:32] or "unknown",  # an InfluxDB tag
        "reason": _text(reason, 200),
        "bytes_b64": base64.b64encode(data[:3_072]).decode(),
    }
    if txn is not None:
        record["txn"] = txn
    return record


def _text(value: str, limit: int) -> str:
    """Printable ASCII within ``limit`` (what a contract string may hold)."""
    return "".join(c if c.isprintable() else "?" for c in value.encode("ascii", "backslashreplace").decode())[:limit]


@dataclass(frozen=True, slots=True)
class Taken:
    """A record read from a device; ``source_id`` is the device's own number for it, if it has one."""

    record: dict[str, Any]
    source_id: int | None = None


class Source(ABC):
    """A device the agent reads."""

    name: str
    dead_letters: list[tuple[str, bytes]]

    @abstractmethod
    def take(self) -> list[Taken]:
        """Records available now (may wait briefly). Raises DeviceError when the device is unreachable."""

    def confirm(self, taken: Taken) -> None:
        """The outbox has ``taken``; tell the device if it keeps records until told."""
        del taken

    @abstractmethod
    def close(self) -> None:
        """Release the port."""

    def frame_errors(self) -> dict[str, int]:
        """Bytes from the device that no frame could be made of, counted by reason (shown in the status)."""
        return {}

    def set_interval(self, seconds: float) -> None:
        """Change how often a polled device is read (ignored by devices that send on their own)."""
        del seconds


class MtSicsSource(Source):
    """A price-computing scale: its state once per connection, then every transaction, confirmed by XTA."""

    def __init__(self, profile: Profile, url: str, *, name: str = "") -> None:
        self.scale = MtSicsScale(profile, url)
        self.name = name or f"{profile.id}@{url}"
        self.dead_letters = []
        self._state_sent = False

    def take(self) -> list[Taken]:
        out: list[Taken] = []
        if not self.scale.is_open or not self._state_sent:
            self._state_sent = False
            out.append(Taken(self.scale.read_state(ts_ms=int(time.time() * 1000))))
            self._state_sent = True
        try:
            record = self.scale.take_transaction()
        except BadTransaction as exc:
            if exc.txn is None:  # bytes no transaction can be named by: they stay here, counted
                self.dead_letters.append((str(exc), exc.line))
                return out
            # evidence goes to the cloud like any record: into the outbox first, then the scale forgets it
            kind = self.scale.spec.transaction_record
            out.append(Taken(evidence(self.name, kind, str(exc), exc.line, txn=exc.txn), exc.txn))
            return out
        if record is not None:
            out.append(Taken(record, int(record["txn"])))
        return out

    def confirm(self, taken: Taken) -> None:
        if taken.source_id is not None:
            self.scale.ack_transaction(taken.source_id)

    def frame_errors(self) -> dict[str, int]:
        return dict(self.scale.frame_errors)

    def close(self) -> None:
        self.scale.close()
        self._state_sent = False


class ModbusSource(Source):
    """A Modbus sensor polled every ``interval_s``."""

    def __init__(self, profile: Profile, bus: ModbusBus, *, unit_id: int | None = None, interval_s: float = 60.0):
        self.sensor = ModbusSensor(profile, bus, unit_id=unit_id)
        self.name = f"{profile.id}#{self.sensor.unit_id}@{bus.url}"
        self.interval_s = interval_s
        self.dead_letters = []
        self._next = 0.0

    def take(self) -> list[Taken]:
        wait = self._next - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, 0.2))
            return []
        self._next = time.monotonic() + self.interval_s
        return [Taken(r) for r in self.sensor.poll(ts_ms=int(time.time() * 1000))]

    def set_interval(self, seconds: float) -> None:
        self.interval_s = seconds
        self._next = min(self._next, time.monotonic() + seconds)

    def close(self) -> None:
        self.sensor.bus.close()


class _Converter(Protocol):
    def decode(self, buf: bytearray) -> tuple[Any, int]: ...

    def records(self, frames: list[Any], *, ts_ms: int) -> list[dict[str, Any]]: ...


class StreamSource(Source):
    """A device that sends on its own: Toledo continuous, NMEA, the rapid-test analyzer."""

    def __init__(self, profile: Profile, url: str, *, silence_s: float = 10.0) -> None:
        converters: dict[str, type[ToledoRecords | GpsRecords | RapidTestRecords]] = {
            "toledo-continuous": ToledoRecords,
            "nmea-0183": GpsRecords,
            "zj-rapid-test": RapidTestRecords,
        }
        if profile.protocol not in converters or profile.serial is None:
            raise ValueError(f"profile {profile.id} is not a streaming serial device")
        self.converter: _Converter = converters[profile.protocol](profile)
        self.reader: StreamReader[Any] = StreamReader(
            url, self.converter.decode, serial_settings=profile.serial, silence_s=silence_s
        )
        self.name = f"{profile.id}@{url}"
        self.dead_letters = []

    def take(self) -> list[Taken]:
        frames = self.reader.frames(wait_s=0.2)
        records = self.converter.records(frames, ts_ms=int(time.time() * 1000))
        rejected = getattr(self.converter, "rejected", None)
        if rejected:  # results that break the contract: uploaded as evidence, not kept here
            records += [
                evidence(self.name, str(rec.get("type", "")), reason, repr(rec).encode()) for reason, rec in rejected
            ]
            rejected.clear()
        return [Taken(r) for r in records]

    def frame_errors(self) -> dict[str, int]:
        return dict(self.reader.frame_errors)

    def close(self) -> None:
        self.reader.close()
