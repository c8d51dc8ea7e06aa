"""The ingest with real Mosquitto and influxd: metrics and health, and chaos — SIGKILL a worker under load,
stop InfluxDB for a minute, restart the broker — after which every record is stored exactly once."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from anti_cheat import Engine, ScaleFacts
from cloud_ingest import DeviceFile, InfluxClient, IngestSettings, IngestWorker, Pipeline, write_device_file
from cloud_ingest.metrics import MetricsServer
from cloud_ingest.spool import Spool
from device_profiles import encode
from tests.device_profiles.test_envelope import BOOT, sale
from zhijian_cli.servers import InfluxServer, MosquittoServer

pytestmark = pytest.mark.integration
OUTAGE_S = float(os.environ.get("ZHIJIAN_CHAOS_OUTAGE_S", "60"))
DEVICES = [f"scale-{i:04d}" for i in range(1, 6)]
KEYS = {d: secrets.token_bytes(32) for d in DEVICES}


class Load:
    """Devices publishing one signed sale per message, QoS 1, round robin, until stopped."""

    def __init__(self, port: int, *, per_second: float = 200) -> None:
        self.sent = 0
        self.period = 1 / per_second
        self._stop = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="load", protocol=mqtt.MQTTv5
        )
        self.client.reconnect_delay_set(0.1, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            device = DEVICES[self.sent % len(DEVICES)]
            seq = self.sent // len(DEVICES) + 1
            payload = encode(
                device=device,
                boot=BOOT,
                seq=seq,
                sent_ms=int(time.time() * 1000),
                records=[sale(txn=seq, ts=1_764_000_000_000 + seq)],
                key=KEYS[device],
            )
            info = self.client.publish(f"zhijian/v1/{device}/data", payload, qos=1)
            published = False
            with contextlib.suppress(RuntimeError, ValueError):  # paho raises these while disconnected
                info.wait_for_publish(2)
                published = info.is_published()
            if published:  # counted only once the broker has it (PUBACK)
                self.sent += 1
            # else: the broker is away; the same record is sent again next tick (same seq: stored once)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.client.loop_stop()
        self.client.disconnect()


def stored(influx: InfluxClient) -> tuple[int, int]:
    """(points, distinct (device, seq)) of sales in the database."""
    rows = influx.rows("SELECT seq FROM sale GROUP BY device")
    return len(rows), len({(r["device"], r["seq"]) for r in rows})


def wait_until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def worker_for(tmp_path: Path, mqtt_port: int, influx: InfluxClient, **kw) -> IngestWorker:
    files = DeviceFile({d: {"key": k.hex()} for d, k in KEYS.items()})
    pipeline = Pipeline(
        key_for=files.key_for, engine=Engine(ScaleFacts()), store=influx, spool=Spool(tmp_path / "spool.sqlite")
    )
    settings = IngestSettings(
        mqtt_port=mqtt_port,
        mqtt_client_id=f"ingest-{tmp_path.name}",
        share_group=f"g-{tmp_path.name}",
        batch_max_ms=50,
        **kw,
    )
    return IngestWorker(settings, pipeline).start()


def test_metrics_and_health(mosquitto: MosquittoServer, influx: InfluxClient, tmp_path: Path) -> None:
    worker = worker_for(tmp_path, mosquitto.port, influx)
    metrics = MetricsServer(worker, port=0).start()
    try:
        assert worker.connected.wait(10)
        load = Load(mosquitto.port).start()
        time.sleep(1)
        load.stop()
        bad = encode(device="scale-0001", boot=BOOT, seq=1, sent_ms=1, records=[sale()], key=b"w" * 32)
        load.client.reconnect()
        publisher = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        publisher.connect("127.0.0.1", mosquitto.port)
        publisher.loop_start()
        publisher.publish("zhijian/v1/scale-0001/data", bad, qos=1).wait_for_publish(5)
        publisher.loop_stop()
        assert wait_until(lambda: worker.pipeline.rejected["bad_tag"] == 1, 10)
        assert wait_until(lambda: worker.pipeline.records_by_type["sale"] == load.sent, 10)
        text = httpx.get(f"http://127.0.0.1:{metrics.port}/metrics").text
        assert f'zhijian_ingest_records_accepted_total{{type="sale"}} {float(load.sent)}' in text
        assert 'zhijian_ingest_rejected_total{reason="bad_tag"} 1.0' in text
        assert "zhijian_ingest_batch_seconds_bucket" in text and "zhijian_ingest_connected 1.0" in text
        health = httpx.get(f"http://127.0.0.1:{metrics.port}/health")
        assert health.status_code == 200 and health.json()["connected"] is True
    finally:
        metrics.close()
        worker.stop(end_session=True)


def test_influxdb_down_for_a_minute_under_load_loses_nothing(mosquitto: MosquittoServer, tmp_path: Path) -> None:
    server = InfluxServer(tmp_path / "influx").start()
    influx = InfluxClient(server.url, "outage", retries=1, timeout_s=2)
    influx.create_database()
    worker = worker_for(tmp_path, mosquitto.port, influx)
    try:
        assert worker.connected.wait(10)
        load = Load(mosquitto.port).start()
        time.sleep(2)
        server.stop()
        time.sleep(OUTAGE_S)
        spooled = worker.pipeline.spool.lines
        server.start()
        time.sleep(2)
        load.stop()
        assert wait_until(lambda: worker.pipeline.spool.lines == 0, 60)
        assert wait_until(lambda: stored(influx) == (load.sent, load.sent), 30), (stored(influx), load.sent)
    finally:
        worker.stop(end_session=True)
        influx.close()
        server.stop()
    assert spooled > OUTAGE_S * 100, f"only {spooled} points waited in the spool"
    print(f"InfluxDB away {OUTAGE_S:g} s: {spooled} points spooled, all {load.sent} stored once afterwards")


def test_broker_restart_loses_nothing(influx: InfluxClient, tmp_path: Path) -> None:
    broker = MosquittoServer(tmp_path / "broker").start()
    worker = worker_for(tmp_path, broker.port, influx)
    try:
        assert worker.connected.wait(10)
        load = Load(broker.port).start()
        time.sleep(2)
        broker.stop()
        time.sleep(2)
        broker.start()
        time.sleep(3)
        load.stop()
        assert wait_until(lambda: stored(influx) == (load.sent, load.sent), 30), (stored(influx), load.sent)
    finally:
        worker.stop(end_session=True)
        broker.stop()


def test_sigkill_the_worker_repeatedly_stores_every_record_once(
    mosquitto: MosquittoServer, influxd: InfluxServer, tmp_path: Path
) -> None:
    devices = tmp_path / "devices.json"
    write_device_file(devices, {d: {"key": k.hex()} for d, k in KEYS.items()})
    env = {
        **os.environ,
        "ZHIJIAN_MQTT_PORT": str(mosquitto.port),
        "ZHIJIAN_INFLUX_URL": influxd.url,
        "ZHIJIAN_INFLUX_DB": "sigkill",
        "ZHIJIAN_DEVICES_FILE": str(devices),
        "ZHIJIAN_METRICS_PORT": "0",
        "ZHIJIAN_MQTT_CLIENT_ID": "ingest-sigkill",
        "ZHIJIAN_SPOOL_PATH": str(tmp_path / "spool.sqlite"),
        "ZHIJIAN_DEAD_LETTER_PATH": str(tmp_path / "dead.sqlite"),
        "ZHIJIAN_BATCH_MAX_MS": "50",
    }
    argv = [sys.executable, "-m", "zhijian_cli", "ingest", "run"]
    log = (tmp_path / "ingest.log").open("wb")
    influx = InfluxClient(influxd.url, "sigkill")
    worker = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    assert wait_until(lambda: "ingest connected" in (tmp_path / "ingest.log").read_text(), 15)
    load = Load(mosquitto.port).start()
    try:
        for i in range(5):
            time.sleep(0.8 + 0.3 * (i % 3))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            worker = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(1)
        load.stop()
        assert wait_until(lambda: stored(influx) == (load.sent, load.sent), 60), (stored(influx), load.sent)
        print(json.dumps({"sent": load.sent, "stored": stored(influx)}))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)
        influx.close()
    assert load.sent > 500
