"""Modbus sensors: RTU over pseudo-terminals and TCP, against our simulator and pymodbus' own server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from device_profiles import builtin, check_record
from edge_agent.modbus_driver import ModbusBus, ModbusSensor
from firmware_sim.modbus_sensor import ModbusSensorServer, SensorModel
from firmware_sim.null_modem import NullModem
from zhijian_cli.servers import free_port

SOIL, AIR = builtin("soil-rs485"), builtin("air-rs485")


@pytest.fixture(params=["rtu", "tcp"])
def bus_with_sensors(request) -> Iterator[tuple[ModbusBus, SensorModel, SensorModel]]:
    soil, air = SensorModel(SOIL, seed=1), SensorModel(AIR, seed=2)
    if request.param == "rtu":
        with NullModem() as modem, ModbusSensorServer([soil, air], serial_port=modem.port_a):
            bus = ModbusBus(modem.port_b, serial=SOIL.serial, timeout_s=0.3, retries=1)
            yield bus, soil, air
            bus.close()
    else:
        port = free_port()
        with ModbusSensorServer([soil, air], tcp_port=port):
            bus = ModbusBus(f"tcp://127.0.0.1:{port}", timeout_s=0.3, retries=1)
            yield bus, soil, air
            bus.close()


def test_two_sensors_on_one_bus_give_valid_readings(bus_with_sensors) -> None:
    bus, soil, air = bus_with_sensors
    for profile in (SOIL, AIR):
        records = ModbusSensor(profile, bus).poll(ts_ms=1_764_000_000_000)
        assert len(records) == 1
        check_record(records[0])
        assert set(records[0]) == {"type", "ts"} | {r.field for r in profile.modbus.registers}
    assert soil.reads == 1 and air.reads == 1


def test_faults_become_fault_records_not_readings(bus_with_sensors) -> None:
    bus, soil, air = bus_with_sensors
    air.faults["co2_ppm"] = "out_of_range"
    records = ModbusSensor(AIR, bus).poll(ts_ms=5)
    assert "co2_ppm" not in records[0]
    assert records[1] == {
        "type": "sensor_fault",
        "ts": 5,
        "channel": "co2_ppm",
        "fault": "out_of_range",
        "raw": 65535.0,
        "detail": "range 0…5000 ppm",
    }
    soil.silent = True
    records = ModbusSensor(SOIL, bus).poll(ts_ms=6)
    assert [(r["channel"], r["fault"]) for r in records] == [("all", "timeout")]
    soil.silent = False
    assert ModbusSensor(SOIL, bus).poll(ts_ms=7)[0]["type"] == "soil"  # the bus recovers


def test_a_stuck_channel_is_reported_after_the_profile_count(bus_with_sensors) -> None:
    bus, soil, _ = bus_with_sensors
    soil.faults["ph"] = "stuck"
    sensor = ModbusSensor(SOIL, bus)
    stuck_after = SOIL.modbus.stuck_after
    results = [sensor.poll(ts_ms=i) for i in range(stuck_after + 1)]
    assert all("ph" in r[0] for r in results[: stuck_after - 1])
    assert "ph" not in results[stuck_after - 1][0]
    assert results[stuck_after][1]["fault"] == "stuck"


def test_concurrent_polls_on_one_bus_are_serialised(bus_with_sensors) -> None:
    bus, soil, air = bus_with_sensors
    sensors = [ModbusSensor(SOIL, bus), ModbusSensor(AIR, bus)]
    results: list[list[dict]] = []

    def poll_many(sensor: ModbusSensor) -> None:
        for i in range(15):
            results.append(sensor.poll(ts_ms=i))

    threads = [threading.Thread(target=poll_many, args=(s,)) for s in sensors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 30
    assert all(r[0]["type"] in ("soil", "air") and len(r) == 1 for r in results), "a garbled or lost reply"
    assert bus.failures == 0 and soil.reads == 15 and air.reads == 15


def test_against_pymodbus_own_server_with_fixed_registers() -> None:
    # Registers as a vendor's data sheet gives them, encoded by hand: humidity 65.3 %RH, −12.5 °C,
    # CO2 812 ppm, light 100 000 lx as a 32-bit value, high word first.
    registers = [653, 0xFF83, 812, 0x0001, 0x86A0]
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict = {}

    async def serve() -> None:
        server = ModbusTcpServer(
            [SimDevice(id=2, simdata=[SimData(0, values=registers, datatype=DataType.REGISTERS)])],
            address=("127.0.0.1", port),
        )
        holder["server"] = server
        await server.serve_forever(background=True)
        started.set()
        await server.serving

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    assert started.wait(5)
    try:
        bus = ModbusBus(f"tcp://127.0.0.1:{port}", timeout_s=0.5, retries=0)
        (record,) = ModbusSensor(AIR, bus).poll(ts_ms=1)
        assert record == {
            "type": "air",
            "ts": 1,
            "humidity_pct": 65.3,
            "temperature_c": -12.5,
            "co2_ppm": 812,
            "light_lux": 100_000,
        }
        bus.close()
    finally:
        asyncio.run_coroutine_threadsafe(holder["server"].shutdown(), loop).result(5)
        thread.join(5)
