"""Planting-base alerts: duration, hysteresis, faults, acknowledgement, restart; and the round trip
through a real broker to the base's agent and back."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest

from anti_cheat import Engine, ScaleFacts
from cloud_ingest import DeviceFile, InfluxClient, IngestSettings, IngestWorker, Pipeline
from cloud_ingest.sensor_alerts import AlertBook
from device_profiles import builtin
from device_profiles.sensor_limits import Limit
from edge_agent import Agent, BrokerConfig, ModbusBus, ModbusSource
from firmware_sim.modbus_sensor import ModbusSensorServer, SensorModel
from zhijian_cli.servers import MosquittoServer, free_port

T0 = 1_764_000_000_000


def soil(ts_s: float, moisture: float) -> dict:
    return {"type": "soil", "ts": T0 + int(ts_s * 1000), "moisture_pct": moisture}


def test_a_breach_must_last_and_hysteresis_stops_flapping(tmp_path: Path) -> None:
    book = AlertBook(tmp_path / "alerts.sqlite")
    book.limits["base-1"] = {"soil.moisture_pct": Limit(20, 45, hysteresis=2, min_duration_s=600)}
    assert book.observe("base-1", 1, soil(0, 18)) == []  # breach starts
    assert book.observe("base-1", 2, soil(300, 19)) == []  # 5 min: not yet
    (alert,) = book.observe("base-1", 3, soil(600, 19))  # 10 min: alert
    assert alert.kind == "sensor_threshold" and alert.detail["side"] == "low" and alert.subject == "base-1"
    assert book.observe("base-1", 4, soil(900, 21)) == []  # back above 20 but not by the 2 % margin
    assert book.observe("base-1", 5, soil(1200, 17)) == []  # still the same open alert: no second one
    assert book.acknowledge("base-1", alert.id)
    assert len(book.open_alerts()) == 1  # acknowledged, but the condition has not cleared
    assert book.observe("base-1", 6, soil(1500, 23)) == []  # cleared by the margin: closed
    assert book.open_alerts() == []
    book.save()  # the batch is durable: its state goes to disk
    restarted = AlertBook(tmp_path / "alerts.sqlite")
    restarted.limits = book.limits
    assert restarted.observe("base-1", 7, soil(2000, 10)) == []
    assert len(restarted.observe("base-1", 8, soil(2700, 10))) == 1  # a new breach, a new alert


def test_faults_alert_at_once_and_once(tmp_path: Path) -> None:
    book = AlertBook()
    fault = {"type": "sensor_fault", "ts": T0, "channel": "ph", "fault": "stuck"}
    (alert,) = book.observe("base-1", 1, fault)
    assert book.observe("base-1", 2, {**fault, "ts": T0 + 60_000}) == []
    assert book.acknowledge("base-1", alert.id) and book.open_alerts() == []
    assert not book.acknowledge("base-1", "no-such-alert")


@pytest.mark.integration
def test_alert_reaches_the_base_and_its_acknowledgement_comes_back(
    mosquitto: MosquittoServer, influx: InfluxClient, tmp_path: Path
) -> None:
    key = secrets.token_bytes(32)
    files = DeviceFile({"base-0007": {"key": key.hex()}})
    pipeline = Pipeline(
        key_for=files.key_for,
        engine=Engine(ScaleFacts()),
        store=influx,
        alert_book=AlertBook(tmp_path / "alerts.sqlite"),
    )
    worker = IngestWorker(
        IngestSettings(mqtt_port=mosquitto.port, mqtt_client_id="alerts-ingest", batch_max_ms=50), pipeline
    ).start()
    sensor = SensorModel(builtin("soil-rs485"))
    sensor.faults["ph"] = "out_of_range"
    port = free_port()
    with ModbusSensorServer([sensor], tcp_port=port):
        agent = Agent(
            device_id="base-0007",
            key=key,
            outbox_path=tmp_path / "o.sqlite",
            broker=BrokerConfig(port=mosquitto.port),
            sources=[ModbusSource(builtin("soil-rs485"), ModbusBus(f"tcp://127.0.0.1:{port}"), interval_s=0.5)],
        ).start()
        try:
            deadline = time.monotonic() + 15
            while not agent.open_alerts and time.monotonic() < deadline:
                time.sleep(0.1)
            (alert_id,) = agent.open_alerts
            assert agent.open_alerts[alert_id]["kind"] == "sensor_fault"
            assert [a for _, _, a in pipeline.alert_book.open_alerts()] == [alert_id]
            # the base manager acknowledges on the platform; it reaches the gateway, which confirms upwards
            agent.handle_command({"id": "op-1", "cmd": "ack_alert", "args": {"alert_id": alert_id, "by": "Li"}})
            deadline = time.monotonic() + 10
            while worker.acknowledged_alerts == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert worker.acknowledged_alerts == 1 and pipeline.alert_book.open_alerts() == []
            rows = influx.rows("SELECT * FROM alert")
            assert rows and rows[0]["kind"] == "sensor_fault" and json.dumps(rows[0])
        finally:
            agent.stop()
            worker.stop(end_session=True)


def test_limits_come_from_the_base_then_its_crop_then_the_defaults() -> None:
    book = AlertBook()
    book.crops = {"base-rice": "rice", "base-veg": "leafy"}
    book.limits = {"base-veg": {"soil.moisture_pct": Limit(10, 90)}}
    assert book.limit("base-rice", "soil.moisture_pct").low == 35  # paddy: wet soil is normal
    assert book.limit("base-veg", "soil.moisture_pct").low == 10  # the base's own limit wins
    assert book.limit("base-veg", "air.temperature_c").high == 30  # the crop's
    assert book.limit("base-other", "soil.moisture_pct").low == 20  # the default
    assert book.limit("base-other", "soil.no_such_field") is None
