"""The demo's field devices besides the market: a planting base and a rapid-test vehicle.

- ``base-0001``: a soil and an air sensor sharing one RS-485 line (Modbus RTU over a null-modem pair of
  pseudo-terminals), read by the base gateway's agent every few seconds.
- ``vehicle-0001``: a GNSS receiver driving a loop through Futian, Shenzhen (NMEA over a pty) and a
  12-channel rapid-test analyzer (its line format over a pty) that tests samples from the market's stalls.
"""

from __future__ import annotations

import random
import threading
from contextlib import ExitStack
from pathlib import Path

from device_profiles import builtin
from edge_agent import Agent, BrokerConfig, ModbusBus, ModbusSource, StreamSource
from firmware_sim.modbus_sensor import ModbusSensorServer, SensorModel
from firmware_sim.null_modem import NullModem
from firmware_sim.stream_devices import GnssReceiver, RapidTestAnalyzer, Route

BASE_ID, VEHICLE_ID = "base-0001", "vehicle-0001"
FUTIAN_LOOP = [(22.5431, 114.0579), (22.5470, 114.0650), (22.5400, 114.0700), (22.5360, 114.0610)]
SAMPLES = [
    ("韭菜 leek", "leafy"),
    ("菠菜 spinach", "leafy"),
    ("豇豆 cowpea", "legume"),
    ("芹菜 celery", "stem"),
    ("番茄 tomato", "fruit"),
    ("黄瓜 cucumber", "fruit"),
]


def start_base(stack: ExitStack, data_dir: Path, key: bytes, broker: BrokerConfig, *, interval_s: float) -> Agent:
    soil_p, air_p = builtin("soil-rs485"), builtin("air-rs485")
    modem = stack.enter_context(NullModem())
    server = ModbusSensorServer([SensorModel(soil_p, seed=11), SensorModel(air_p, seed=12)], serial_port=modem.port_a)
    stack.enter_context(server)
    bus = ModbusBus(modem.port_b, serial=soil_p.serial, timeout_s=0.5)
    agent = Agent(
        device_id=BASE_ID,
        key=key,
        broker=broker,
        outbox_path=data_dir / f"outbox-{BASE_ID}.sqlite",
        sources=[ModbusSource(soil_p, bus, interval_s=interval_s), ModbusSource(air_p, bus, interval_s=interval_s)],
    ).start()
    stack.callback(agent.stop, drain_s=3)
    return agent


class Sampler:
    """The vehicle's crew: every ``period_s`` a batch of samples from the market's stalls into the analyzer."""

    def __init__(self, analyzer: RapidTestAnalyzer, stalls: list[str], *, period_s: float, seed: int) -> None:
        self.analyzer, self.stalls, self.period_s = analyzer, stalls, period_s
        self.rng = random.Random(seed)
        self.tested = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            batch = []
            for _ in range(self.rng.randint(4, 12)):
                self.tested += 1
                name, category = self.rng.choice(SAMPLES)
                residue = self.rng.choice([0.05, 0.1, 0.15, 0.2, 0.45, 0.65])  # mostly clean, some not
                batch.append(
                    {
                        "sample_id": f"S{self.tested:05d}",
                        "name": name,
                        "category": category,
                        "source_id": self.rng.choice(self.stalls),
                        "residue": residue,
                    }
                )
            self.analyzer.run(batch)


def start_vehicle(
    stack: ExitStack, data_dir: Path, key: bytes, broker: BrokerConfig, *, stalls: list[str], sample_every_s: float
) -> Agent:
    gps_p, rt_p = builtin("gps-nmea"), builtin("zj-rt-12")
    receiver = stack.enter_context(GnssReceiver(gps_p, Route(FUTIAN_LOOP, speed_kmh=25), seed=21))
    analyzer = stack.enter_context(RapidTestAnalyzer(rt_p, seed=22))
    sampler = Sampler(analyzer, stalls, period_s=sample_every_s, seed=23).start()
    stack.callback(sampler.close)
    agent = Agent(
        device_id=VEHICLE_ID,
        key=key,
        broker=broker,
        outbox_path=data_dir / f"outbox-{VEHICLE_ID}.sqlite",
        sources=[StreamSource(gps_p, receiver.port), StreamSource(rt_p, analyzer.port, silence_s=3600)],
    ).start()
    stack.callback(agent.stop, drain_s=3)
    return agent
