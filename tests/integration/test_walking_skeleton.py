"""Walking skeleton: simulated MT-SICS scale on a pty → edge agent → Mosquitto → ingest → InfluxDB.

Real Mosquitto and influxd processes, real serial bytes over a pseudo-terminal.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import pytest

from anti_cheat import Engine
from cloud_ingest import DeviceFile, InfluxClient, IngestSettings, IngestWorker, Pipeline
from device_profiles import amount_fen, builtin
from edge_agent import Agent, BrokerConfig, MtSicsSource
from firmware_sim.pty_link import PtyLineServer
from firmware_sim.scale import ScaleFirmware
from tests.support.waiting import wait_until
from zhijian_cli.servers import MosquittoServer

pytestmark = pytest.mark.integration


def test_sales_travel_from_serial_line_to_influxdb(
    mosquitto: MosquittoServer, influx: InfluxClient, tmp_path: Path
) -> None:
    n_sales = 60
    profile = builtin("zj-pcs-30")
    device, key = "scale-0001", secrets.token_bytes(32)
    firmware = ScaleFirmware(profile, seed=7, noise_sigma_e=0.0)
    lock = threading.Lock()
    devices = DeviceFile(
        {
            device: {
                "key": key.hex(),
                "scale": {
                    "coefficient": firmware.coefficient,
                    "e_mg": 5000,
                    "calibration_events": 3,
                    "configuration_events": 7,
                },
            }
        }
    )
    pipeline = Pipeline(key_for=devices.key_for, engine=Engine(devices.facts), store=influx)
    settings = IngestSettings(mqtt_port=mosquitto.port, mqtt_client_id=f"ingest-{tmp_path.name}", batch_max_ms=50)
    worker = IngestWorker(settings, pipeline).start()
    assert worker.connected.wait(10)
    sold = []
    with PtyLineServer(firmware.respond, lock=lock, name=device) as pty:
        agent = Agent(
            device_id=device,
            key=key,
            sources=[MtSicsSource(profile, pty.port)],
            outbox_path=tmp_path / "outbox.sqlite",
            broker=BrokerConfig(port=mosquitto.port),
            poll_interval_s=0.02,
        ).start()
        try:
            t0 = 1_764_000_000_000
            for i in range(n_sales):
                with lock:
                    # the first sale is the contract's test vector: 0.275 kg × 123.00 yuan/kg
                    price = 12_300 if i == 0 else 800 + 37 * i
                    mass = 275_000 if i == 0 else 150_000 + 9_973 * i
                    # equal timestamps in pairs: distinct records must still not collide
                    sold.append(
                        firmware.sell(
                            ts_ms=t0 + (i // 2) * 1000,
                            plu=f"P{i % 7}",
                            true_net_mg=mass,
                            unit_price_fen_per_kg=price,
                        )
                    )
            assert wait_until(lambda: pipeline.accepted_records >= n_sales + 1), (
                f"only {pipeline.accepted_records} records arrived; rejected {dict(pipeline.rejected)}"
            )
        finally:
            agent.stop(drain_s=2)
            worker.stop(end_session=True)
    rows = influx.rows("SELECT * FROM sale")
    assert len(rows) == n_sales
    by_txn = {r["txn"]: r for r in rows}
    for s in sold:
        row = by_txn[s["txn"]]
        assert row["device"] == device
        assert (row["net_mg"], row["amount_fen"], row["unit_price_fen_per_kg"]) == (
            s["net_mg"],
            s["amount_fen"],
            s["unit_price_fen_per_kg"],
        )
        assert row["amount_fen"] == amount_fen(row["net_mg"], row["unit_price_fen_per_kg"])
    first = by_txn[1]  # the contract's test vector, end to end: 0.275 kg × 123.00 yuan/kg = 33.83 yuan
    assert (first["net_mg"], first["unit_price_fen_per_kg"], first["amount_fen"]) == (275_000, 12_300, 3383)
    assert [r["seq"] for r in influx.rows("SELECT seq FROM scale_state")] == [1]
    assert influx.rows("SELECT count(*) FROM flag") == []  # an honest scale raises no flag
    assert pipeline.rejected == {}
