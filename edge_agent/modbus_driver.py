"""Modbus sensors through pymodbus: RTU on an RS-485 bus (any pyserial URL) or TCP through a gateway.

One :class:`ModbusBus` per physical bus or gateway; every request on it holds the bus lock, so requests
to the several unit ids sharing an RS-485 line never overlap. pymodbus does the framing, CRCs, timeouts
and a bounded number of retries; its errors are translated to :class:`DeviceError` here.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlparse

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusException

from device_profiles import Profile
from device_profiles.codecs.modbus_map import ReadBlock
from device_profiles.schema import SerialSettings

from .errors import DeviceError, DeviceTimeout
from .sensor_reading import SensorReader

log = logging.getLogger(__name__)


class ModbusBus:
    """A Modbus line: ``tcp://host:port`` for a TCP gateway, else a serial port or pyserial URL for RTU."""

    def __init__(self, url: str, *, serial: SerialSettings | None = None, timeout_s: float = 1.0, retries: int = 2):
        self.url = url
        self._lock = threading.Lock()
        self.requests = 0
        self.failures = 0
        self._client: ModbusTcpClient | ModbusSerialClient
        if url.startswith("tcp://"):
            parsed = urlparse(url)
            self._client = ModbusTcpClient(
                parsed.hostname or "127.0.0.1", port=parsed.port or 502, timeout=timeout_s, retries=retries
            )
        else:
            s = serial or SerialSettings()
            self._client = ModbusSerialClient(
                url,
                baudrate=s.baudrate,
                bytesize=s.bytesize,
                parity=s.parity,
                stopbits=s.stopbits,
                timeout=timeout_s,
                retries=retries,
            )

    def close(self) -> None:
        with self._lock:
            self._client.close()  # type: ignore[no-untyped-call]

    def read(self, unit_id: int, block: ReadBlock) -> list[int]:
        """Read one block of registers from ``unit_id``; raises DeviceTimeout or DeviceError."""
        with self._lock:
            self.requests += 1
            try:
                if not self._client.connected and not self._client.connect():
                    raise DeviceTimeout(f"{self.url}: cannot connect")
                read = (
                    self._client.read_holding_registers
                    if block.table == "holding"
                    else self._client.read_input_registers
                )
                response = read(block.start, count=block.count, device_id=unit_id)
            except ModbusException as exc:
                self.failures += 1
                raise DeviceTimeout(f"{self.url} unit {unit_id}: {exc}") from exc
            except DeviceError:
                self.failures += 1
                raise
        if response.isError():
            self.failures += 1
            raise DeviceError(f"{self.url} unit {unit_id}: exception response {response}")
        registers = list(response.registers)
        if len(registers) != block.count:
            raise DeviceError(f"{self.url} unit {unit_id}: {len(registers)} registers, asked {block.count}")
        return registers


class ModbusSensor:
    """One sensor (a unit id on a bus) read according to its profile."""

    def __init__(self, profile: Profile, bus: ModbusBus, *, unit_id: int | None = None) -> None:
        if profile.modbus is None:
            raise ValueError(f"profile {profile.id} is not a Modbus sensor")
        self.profile = profile
        self.bus = bus
        self.unit_id = unit_id or profile.modbus.unit_id
        self.reader = SensorReader(profile.modbus)

    def poll(self, *, ts_ms: int) -> list[dict[str, Any]]:
        """A reading and fault records; a sensor that does not answer gives a ``timeout`` fault."""
        try:
            words = {block: self.bus.read(self.unit_id, block) for block in self.reader.blocks}
        except DeviceError as exc:
            log.debug("%s: %s", self.bus.url, exc)
            return self.reader.timeout(ts_ms=ts_ms, detail=str(exc))
        return self.reader.records(words, ts_ms=ts_ms)
