"""Modbus sensors at a planting base: day/night curves, noise and faults, served by pymodbus' server.

:class:`SensorModel` is one sensor (a unit id) built from its profile's register map: it computes the
physical values for a moment of the (possibly accelerated) simulation clock and writes them into the
registers as the real sensor would. :class:`ModbusSensorServer` puts several models on one bus, over
Modbus TCP or Modbus RTU on a serial port path (see :mod:`firmware_sim.null_modem`).

Faults, settable per channel or per sensor while running: ``stuck`` (the registers freeze),
``out_of_range`` (the registers hold the largest raw value), ``silent`` (the sensor stops answering).
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from device_profiles import Profile
from device_profiles.codecs import modbus_map
from device_profiles.schema import ModbusRegister

ChannelFault = Literal["stuck", "out_of_range"]
_MAX_RAW = {
    "int16": [0x7FFF],
    "uint16": [0xFFFF],
    "int32": [0x7FFF, 0xFFFF],
    "uint32": [0xFFFF, 0xFFFF],
    "float32": [0x7F7F, 0xFFFF],
}


def _day(hour: float) -> float:
    """−1 at 03:00, +1 at 15:00: the daily temperature swing."""
    return math.sin(2 * math.pi * (hour - 9) / 24)


def _sun(hour: float) -> float:
    """0 at night, 1 at noon."""
    return max(0.0, math.sin(math.pi * (hour - 6) / 12)) if 6 <= hour <= 18 else 0.0


# field → (physical value at an hour of the day, noise σ)
CURVES: dict[str, tuple[Callable[[float], float], float]] = {
    "moisture_pct": (lambda h: 32 - 3 * _day(h), 0.2),
    "temperature_c": (lambda h: 18 + 7 * _day(h), 0.1),
    "conductivity_us_cm": (lambda h: 420 + 20 * _day(h), 3.0),
    "ph": (lambda h: 6.5, 0.03),
    "humidity_pct": (lambda h: 70 - 20 * _day(h), 0.5),
    "light_lux": (lambda h: 80_000 * _sun(h), 200.0),
    "co2_ppm": (lambda h: 430 + 60 * (1 - _sun(h)), 4.0),
}


@dataclass
class SensorModel:
    """One simulated Modbus sensor."""

    profile: Profile
    unit_id: int | None = None
    seed: int = 0
    clock: Callable[[], float] = time.time
    faults: dict[str, ChannelFault] = field(default_factory=dict)
    silent: bool = False
    reads: int = 0
    _frozen: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.profile.modbus is None:
            raise ValueError(f"profile {self.profile.id} is not a Modbus sensor")
        self.unit_id = self.unit_id or self.profile.modbus.unit_id
        self.rng = random.Random(self.seed)

    @property
    def registers(self) -> list[ModbusRegister]:
        assert self.profile.modbus is not None
        return self.profile.modbus.registers

    def value(self, reg: ModbusRegister, when: float) -> float:
        """The true physical value of ``reg`` at epoch seconds ``when``, with sensor noise."""
        hour = (when / 3600 + 8) % 24  # China Standard Time
        lo, hi = reg.range
        curve, sigma = CURVES.get(reg.field, (lambda h: (lo + hi) / 2, 0.0))
        value: float = curve(hour) + self.rng.gauss(0, sigma)
        return min(hi, max(lo, value))

    def words(self, reg: ModbusRegister, when: float) -> list[int]:
        """The registers of ``reg`` now, faults applied."""
        fault = self.faults.get(reg.field)
        if fault == "out_of_range":
            return list(_MAX_RAW[reg.raw_type])
        if fault == "stuck" and reg.field in self._frozen:
            return self._frozen[reg.field]
        words = modbus_map.to_registers(reg, self.value(reg, when))
        self._frozen[reg.field] = words
        return words

    def table_size(self) -> int:
        return max(r.address + r.count for r in self.registers)

    async def on_access(
        self, _fc: int, start: int, _address: int, _count: int, registers: list[int], _set: object
    ) -> ExcCodes | None:
        """pymodbus' action hook: refresh the registers before each read."""
        if self.silent:  # no answer at all: the server (ignore_missing_devices) stays quiet, the client times out
            raise NoSuchIdException(f"unit {self.unit_id} is silent")
        self.reads += 1
        now = self.clock()
        for reg in self.registers:
            offset = reg.address - start
            if offset >= 0 and offset + reg.count <= len(registers):
                registers[offset : offset + reg.count] = self.words(reg, now)
        return None

    def sim_device(self) -> SimDevice:
        assert self.unit_id is not None
        return SimDevice(
            id=self.unit_id,
            simdata=[SimData(0, count=self.table_size(), values=0, datatype=DataType.REGISTERS)],
            action=functools.partial(SensorModel.on_access, self),
        )


class ModbusSensorServer:
    """Sensors on one bus, served in a background thread: Modbus TCP on ``port`` or RTU on ``serial_port``."""

    def __init__(
        self,
        sensors: list[SensorModel],
        *,
        tcp_port: int | None = None,
        serial_port: str | None = None,
        baudrate: int = 9600,
    ) -> None:
        if (tcp_port is None) == (serial_port is None):
            raise ValueError("give exactly one of tcp_port and serial_port")
        self.sensors = sensors
        self.tcp_port = tcp_port
        self.serial_port = serial_port
        self.baudrate = baudrate
        self._loop = asyncio.new_event_loop()
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modbus-sim", daemon=True)

    def start(self) -> ModbusSensorServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("Modbus simulator did not start")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        devices = [s.sim_device() for s in self.sensors]
        if self.tcp_port is not None:
            self._server = ModbusTcpServer(devices, address=("127.0.0.1", self.tcp_port), ignore_missing_devices=True)
        else:
            self._server = ModbusSerialServer(
                devices,
                framer=FramerType.RTU,
                port=str(self.serial_port),
                baudrate=self.baudrate,
                ignore_missing_devices=True,
            )
        await self._server.serve_forever(background=True)
        self._ready.set()
        await self._server.serving

    def close(self) -> None:
        if self._server is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(5)  # type: ignore[no-untyped-call]
        self._thread.join(timeout=5)

    def __enter__(self) -> ModbusSensorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
