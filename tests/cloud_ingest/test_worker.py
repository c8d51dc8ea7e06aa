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
from collections import Counter
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from anti_cheat import Engine, ScaleFacts
from cloud_ingest import DeviceFile, InfluxClient, IngestSettings, IngestWorker, Pipeline, write_device_file
from cloud_ingest.metrics import MetricsServer
from cloud_ingest.sequences import SequenceBook
from cloud_ingest.spool import Spool
from device_profiles import builtin, encode
from device_profiles.envelope import sign
from device_profiles.records import EXAMPLE_RAPID_TEST, EXAMPLE_REWEIGH
from firmware_sim import Cheat, ScaleFirmware
from tests.support.envelopes import BOOT, sale
from tests.support.waiting import wait_until
from zhijian_cli.servers import InfluxServer, MosquittoServer

pytestmark = pytest.mark.integration
OUTAGE_S = float(os.environ.get("ZHIJIAN_CHAOS_OUTAGE_S", "20"))  # ZHIJIAN_CHAOS_OUTAGE_S=600 for a long one
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


def worker_for(tmp_path: Path, mqtt_port: int, influx: InfluxClient, **kw) -> IngestWorker:
    files = DeviceFile({d: {"key": k.hex()} for d, k in KEYS.items()})
    pipeline = Pipeline(
        key_for=files.key_for, engine=Engine(ScaleFacts()), store=influx, spool=Spool(tmp_path / "spool.sqlite")
    )
    kw.setdefault("mqtt_client_id", f"ingest-{tmp_path.name}")
    settings = IngestSettings(mqtt_port=mqtt_port, batch_max_ms=50, **kw)
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


def test_health_says_stalled_when_messages_wait_and_nothing_is_stored(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    """InfluxDB away and the spool full: the worker is connected, but /health must not say all is well."""
    files = DeviceFile({d: {"key": k.hex()} for d, k in KEYS.items()})
    dead = InfluxClient("http://127.0.0.1:9", "x", retries=0, timeout_s=0.5)
    pipeline = Pipeline(
        key_for=files.key_for,
        engine=Engine(ScaleFacts()),
        store=dead,
        spool=Spool(tmp_path / "s.sqlite", quota_bytes=1),
    )
    settings = IngestSettings(
        mqtt_port=mosquitto.port, mqtt_client_id=f"stall-{tmp_path.name}", batch_max_ms=50, health_stall_s=1.0
    )
    worker = IngestWorker(settings, pipeline).start()
    metrics = MetricsServer(worker, port=0).start()
    try:
        assert worker.connected.wait(10)
        assert httpx.get(f"http://127.0.0.1:{metrics.port}/health").status_code == 200
        load = Load(mosquitto.port).start()
        time.sleep(0.5)
        load.stop()

        def unhealthy() -> bool:
            return httpx.get(f"http://127.0.0.1:{metrics.port}/health").status_code == 503

        assert wait_until(unhealthy, 30)
        doc = httpx.get(f"http://127.0.0.1:{metrics.port}/health").json()
        assert doc["connected"] is True and "held" in doc["problem"], doc
        assert doc["threads"]["ingest-batcher"]["alive"] is True
        assert "zhijian_ingest_stalled 1.0" in httpx.get(f"http://127.0.0.1:{metrics.port}/metrics").text
    finally:
        metrics.close()
        worker.stop(end_session=True)


def test_influxdb_down_under_load_loses_nothing(mosquitto: MosquittoServer, tmp_path: Path) -> None:
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


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_broker_restart_loses_nothing(influx: InfluxClient, tmp_path: Path, protocol: str) -> None:
    """Either MQTT version of the ingest's own connection keeps its session across a broker restart."""
    broker = MosquittoServer(tmp_path / "broker").start()
    worker = worker_for(tmp_path, broker.port, influx, mqtt_protocol=protocol)
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
        "ZHIJIAN_STATE_PATH": str(tmp_path / "ingest_state.sqlite"),
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


@pytest.mark.parametrize(("share_group", "kept"), [("", True), ("ingest", False)])
def test_which_subscriptions_survive_a_broker_restart(
    influx: InfluxClient, tmp_path: Path, share_group: str, kept: bool
) -> None:
    """Why the ingest does not use shared subscriptions on Mosquitto 2.0: records published while the
    broker restarted and the worker was away reach a plain persistent subscription, not a shared one."""
    broker = MosquittoServer(tmp_path / "broker").start()
    worker = worker_for(tmp_path, broker.port, influx, share_group=share_group)
    assert worker.connected.wait(10)
    worker.stop()  # away for a while; its persistent session stays
    broker.stop()
    broker.start()
    load = Load(broker.port, per_second=100).start()
    assert wait_until(lambda: load.sent >= 50, 20)
    load.stop()
    worker = worker_for(tmp_path, broker.port, influx, share_group=share_group)
    try:
        got = wait_until(lambda: stored(influx)[1] == load.sent, 10)
        assert got is kept, (stored(influx), load.sent)
    finally:
        worker.stop(end_session=True)
        broker.stop()


def test_two_partitioned_workers_store_and_flag_what_one_does(
    mosquitto: MosquittoServer, influxd: InfluxServer, tmp_path: Path
) -> None:
    profile = builtin("zj-pcs-30")
    cheats = [None, Cheat("cheat_chip"), Cheat("remote_control", ratio=1.02), Cheat("throw"), None]
    firmwares = {
        d: ScaleFirmware(profile, seed=i, cheat=c) for i, (d, c) in enumerate(zip(DEVICES, cheats, strict=True))
    }
    facts: dict = {
        d: {
            "key": KEYS[d].hex(),
            "scale": {
                "coefficient": fw.true_coefficient,
                "e_mg": 5000,
                "zero_counts": fw.verified_zero_counts,
                "calibration_events": 3,
                "configuration_events": 7,
            },
        }
        for d, fw in firmwares.items()
    }
    # two fair scales of one market re-weigh alternately; by device id they would fall in different
    # partitions (CRC-32 parity of fair-0001 and fair-0004 differs), by market they meet one worker
    fairs = {"fair-0001": secrets.token_bytes(32), "fair-0004": secrets.token_bytes(32)}
    markets = {
        "scale-0001": "market-a",
        "scale-0002": "market-a",
        "scale-0003": "market-a",
        "scale-0004": "m1",
        "scale-0005": "m1",
        "fair-0001": "market-a",
        "fair-0004": "market-a",
    }
    for fair, key in fairs.items():
        facts[fair] = {"key": key.hex()}
    for device, market in markets.items():
        facts[device]["tags"] = {"market": market}
    payloads = []
    fair_seq = {f: 1 for f in fairs}
    for k in range(1, 121):
        for d, fw in firmwares.items():
            sold = fw.sell(
                ts_ms=1_764_000_000_000 + k, plu="1001", true_net_mg=(500 + 37 * k) * 1000, unit_price_fen_per_kg=3000
            )
            fw.pending.clear()
            payloads.append(
                (d, encode(device=d, boot=BOOT, seq=k, sent_ms=1, records=[{"type": "sale", **sold}], key=KEYS[d]))
            )
            if k % 4 == 0:
                fair = "fair-0001" if k % 8 else "fair-0004"
                reweigh = {
                    "type": "reweigh",
                    "ts": sold["ts"],
                    "txn": fair_seq[fair],
                    "stall_device": d,
                    "claimed_mg": sold["net_mg"],
                    "net_mg": (500 + 37 * k) * 1000,
                }
                payloads.append(
                    (
                        fair,
                        encode(
                            device=fair, boot=BOOT, seq=fair_seq[fair], sent_ms=1, records=[reweigh], key=fairs[fair]
                        ),
                    )
                )
                fair_seq[fair] += 1

    def run(db: str, partitions: int) -> list[list[tuple]]:
        client = InfluxClient(influxd.url, db)
        client.create_database()
        device_file = DeviceFile(facts)
        workers = []
        for k in range(partitions):
            pipeline = Pipeline(
                key_for=device_file.key_for,
                engine=Engine(DeviceFile(facts).facts),
                store=client,
                spool=Spool(tmp_path / f"{db}-{k}.sqlite"),
            )
            settings = IngestSettings(
                mqtt_port=mosquitto.port,
                mqtt_client_id=f"{db}-{k}",
                partition=k,
                partitions=partitions,
                batch_max_ms=50,
            )
            worker = IngestWorker(settings, pipeline)
            worker.partition_key = device_file.partition_key
            workers.append(worker.start())
        assert all(w.connected.wait(10) for w in workers)
        pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        for device, payload in payloads:
            pub.publish(f"zhijian/v1/{device}/data", payload, qos=1).wait_for_publish(5)
        pub.loop_stop()
        assert wait_until(lambda: sum(w.pipeline.received for w in workers) == len(payloads), 30)
        time.sleep(0.5)
        for w in workers:
            w.stop(end_session=True)
            assert not w.pipeline.rejected
        flags = sorted((r["device"], r["rule"], r["seq"]) for r in client.rows("SELECT * FROM flag"))
        sales = sorted((r["device"], r["seq"], r["net_mg"]) for r in client.rows("SELECT * FROM sale"))
        client.close()
        return [flags, sales]

    one, two = run("one_worker", 1), run("two_workers", 2)
    assert len(one[1]) == 5 * 120
    assert {rule for _, rule, _ in one[0]} >= {"coefficient", "stability", "reweigh_cusum"}
    assert two == one


def test_a_restarted_worker_continues_the_anti_cheat_state(
    mosquitto: MosquittoServer, influxd: InfluxServer, tmp_path: Path
) -> None:
    state = tmp_path / "engine.npz"
    t0 = 1_764_000_000_000
    facts = {
        "scale-0001": {
            "key": KEYS["scale-0001"].hex(),
            "scale": {"coefficient": 20_000.0, "e_mg": 5000, "calibration_events": 3, "configuration_events": 7},
        },
        "fair-0001": {"key": KEYS["scale-0002"].hex()},
    }
    reweighs = [
        encode(
            device="fair-0001",
            boot=BOOT,
            seq=k,
            sent_ms=1,
            key=KEYS["scale-0002"],
            records=[
                {
                    "type": "reweigh",
                    "ts": t0 + k,
                    "txn": k,
                    "stall_device": "scale-0001",
                    "claimed_mg": 1_030_000,
                    "net_mg": 1_000_000,
                }
            ],
        )  # 30 g short vs a 17.5 g tolerance: 0.71 tolerance of excess each, the CUSUM alarms from the 5th
        for k in range(1, 9)
    ]

    def run(db: str, payloads: list[bytes], path: Path | None) -> list[int]:
        client = InfluxClient(influxd.url, db)
        client.create_database()
        pipeline = Pipeline(key_for=DeviceFile(facts).key_for, engine=Engine(DeviceFile(facts).facts), store=client)
        worker = IngestWorker(
            IngestSettings(mqtt_port=mosquitto.port, mqtt_client_id=f"{db}-w", batch_max_ms=20, engine_state_path=path),
            pipeline,
        ).start()
        assert worker.connected.wait(10)
        pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        for p in payloads:
            pub.publish("zhijian/v1/fair-0001/data", p, qos=1).wait_for_publish(5)
        pub.loop_stop()
        assert wait_until(lambda: worker.pipeline.received == len(payloads), 10)
        worker.stop(end_session=True)
        seqs = sorted(r["seq"] for r in client.rows("SELECT * FROM flag WHERE \"rule\" = 'reweigh_cusum'"))
        client.close()
        return seqs

    whole = run("cusum_whole", reweighs, None)
    assert whole == [5, 6, 7, 8], "the persistent short weight must build up to an alarm"
    first = run("cusum_split", reweighs[:3], state)  # nothing flagged yet: the CUSUM is still climbing
    second = run("cusum_split", reweighs[3:], state)  # a new worker, restored from the saved state
    assert first + second == whole


def test_overload_waits_in_the_broker_and_nothing_is_dropped(
    mosquitto: MosquittoServer, influx: InfluxClient, tmp_path: Path
) -> None:
    """Devices offering far more than the worker takes (here: while it is away, 20× Mosquitto's default
    queue of 1 000 messages): the broker queues for the persistent session and everything is stored."""
    worker = worker_for(tmp_path, mosquitto.port, influx)
    assert worker.connected.wait(10)
    worker.stop()
    pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.max_inflight_messages_set(500)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    n = 20_000
    infos = []
    for i in range(n):
        device = DEVICES[i % len(DEVICES)]
        seq = i // len(DEVICES) + 1
        payload = encode(
            device=device,
            boot=BOOT,
            seq=seq,
            sent_ms=1,
            records=[sale(txn=seq, ts=1_764_000_000_000 + seq)],
            key=KEYS[device],
        )
        infos.append(pub.publish(f"zhijian/v1/{device}/data", payload, qos=1))
    for info in infos:
        info.wait_for_publish(30)
    pub.loop_stop()
    worker = worker_for(tmp_path, mosquitto.port, influx)
    try:
        assert wait_until(lambda: stored(influx) == (n, n), 120), stored(influx)
    finally:
        worker.stop(end_session=True)


def test_every_rejection_reason_through_the_broker(
    mosquitto: MosquittoServer, influx: InfluxClient, tmp_path: Path
) -> None:
    from cloud_ingest.senders import SenderRules
    from device_profiles import REJECT_REASONS
    from tests.support.envelopes import KEY, payload, resign, resign_text

    market = {"market": "m1"}
    files = DeviceFile(
        {
            "scale-0001": {"key": KEY.hex(), "profile": "zj-pcs-30", "tags": market},
            "scale-0009": {"key": KEY.hex(), "revoked": True},
            "fair-0001": {"key": KEY.hex(), "profile": "zj-fair-30", "tags": market},
            "scale-0300": {"key": KEY.hex(), "profile": "zj-pcs-30", "tags": {"market": "m2"}},
            "scale-0500": {"key": KEY.hex(), "profile": "zj-pcs-30", "tags": market},
            "van-0001": {"key": KEY.hex(), "profile": "zj-rt-12", "tags": {"vehicle": "rt-van-01"}},
        }
    )

    def tags_for(device: str) -> dict[str, str]:
        if device == "scale-0500":  # a bug of ours that only this device's messages meet
            raise KeyError("registry view lost its tags")
        return files.tags_for(device)

    pipeline = Pipeline(
        key_for=files.key_for,
        engine=Engine(ScaleFacts()),
        store=influx,
        revoked=files.is_revoked,
        tags_for=tags_for,
        sequences=SequenceBook(window=10, max_ahead=1_000),
        senders=SenderRules(profile_for=files.profile_for, tags_for=files.tags_for, known=files.is_known),
    )
    worker = IngestWorker(
        IngestSettings(mqtt_port=mosquitto.port, mqtt_client_id="reasons", batch_max_ms=20), pipeline
    ).start()
    ok = "zhijian/v1/scale-0001/data"
    fair = "zhijian/v1/fair-0001/data"
    reweigh = {**EXAMPLE_REWEIGH, "stall_device": "scale-0300"}
    van = "zhijian/v1/van-0001/data"
    positive = EXAMPLE_RAPID_TEST  # a positive pesticide result, about the stall whose scale is scale-0001
    signed_sale = payload()[: -len(',"tag":"') - 64 - 2]
    deep = b'{"v":1,"device":"scale-0001","x":' + b"[" * 5_000 + b"]" * 5_000 + b"}"
    cases = [
        ("zhijian/v1/Not_A_Device/data", payload(), "bad_topic"),
        (ok, b"{" + b" " * 300_000 + b"}", "oversized"),
        (ok, b'{"v":1}', "missing_tag"),
        ("zhijian/v1/scale-0404/data", payload(device="scale-0404"), "unknown_device"),
        ("zhijian/v1/scale-0009/data", payload(device="scale-0009"), "revoked_device"),
        (ok, payload()[:-3] + b'0"}', "bad_tag"),
        (ok, b'{"v":1,"device":' + b',"tag":"' + sign(KEY, b'{"v":1,"device":').encode() + b'"}', "malformed_json"),
        (ok, resign_text(signed_sale.replace(b'"plu":"1001"', b'"plu":"\\ud800"') + b"}"), "bad_json"),
        (ok, resign_text(deep), "bad_json"),
        (ok, resign({"v": "1"}), "bad_envelope"),
        (ok, resign({"v": 2}), "schema_version"),
        (ok, payload(device="scale-0002"), "device_mismatch"),
        (ok, payload(records=[sale(net_mg="heavy")]), "bad_record"),
        (ok, payload(records=[{**reweigh, "stall_device": "scale-0001"}]), "record_not_allowed"),
        (fair, payload(device="fair-0001", records=[reweigh]), "foreign_reference"),
        (fair, payload(device="fair-0001", records=[{**reweigh, "stall_device": "fair-0001"}]), "foreign_reference"),
        (van, payload(device="van-0001", records=[{**positive, "source_id": "no-such-stall"}]), "foreign_reference"),
        (van, payload(device="van-0001", records=[{**positive, "source_id": "evil\\"}]), "foreign_reference"),
        (van, payload(device="van-0001", records=[{**positive, "source_id": "fair-0001"}]), "foreign_reference"),
        ("zhijian/v1/scale-0500/data", payload(device="scale-0500"), "unprocessable"),
        (ok, payload(seq=100), None),  # accepted: raises the highest seq to 100
        (ok, payload(seq=5), "replayed"),
        (ok, payload(seq=2**52), "seq_out_of_range"),
        (ok, payload(seq=100, records=[sale(net_mg=27_500, amount_fen=338)]), "conflicting_replay"),
        (ok, payload(seq=100), None),  # the same content again: harmless
        (ok, payload(seq=101), None),  # the highest did not move with 2**52: the next seq is accepted
        (van, payload(device="van-0001", records=[positive]), None),  # a sample from a known stall: accepted
    ]
    assert {reason for _, _, reason in cases if reason} == REJECT_REASONS
    pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        assert worker.connected.wait(10)
        replies = [b"[" * 100_000, b"\xff\xfe not UTF-8"]  # replies are parsed on paho's network thread
        for raw in replies:
            pub.publish("zhijian/v1/scale-0001/reply", raw, qos=1).wait_for_publish(5)
        for topic_name, raw, _ in cases:
            pub.publish(topic_name, raw, qos=1).wait_for_publish(5)
            time.sleep(0.05)  # in order, each in its own batch
        expected = dict(Counter(reason for _, _, reason in cases if reason)) | {"bad_reply": len(replies)}
        assert wait_until(lambda: dict(worker.pipeline.rejected) == expected, 30), dict(worker.pipeline.rejected)
        assert wait_until(lambda: worker.pipeline.accepted_records == 4, 10)
        assert sorted(r["seq"] for r in influx.rows("SELECT seq, net_mg FROM sale")) == [100, 101]
        assert {r["net_mg"] for r in influx.rows("SELECT seq, net_mg FROM sale")} == {275_000}
        kept = [reason for _, reason, _ in worker.pipeline.dead_letters.rows()]
        assert Counter(kept) == Counter({r: n for r, n in expected.items() if r != "bad_reply"})  # replies: counted
    finally:
        pub.loop_stop()
        worker.stop(end_session=True)


def test_acknowledgements_waiting_at_stop_reach_every_device(
    mosquitto: MosquittoServer, influx: InfluxClient, tmp_path: Path
) -> None:
    """A clean stop sends what waits for the acknowledgement interval, to each of many devices, and the
    broker has all of it before the worker disconnects (paho's own limit of 20 in flight dropped the rest)."""
    from device_profiles.acks import decode_ack

    devices = [f"scale-{i:04d}" for i in range(100, 220)]
    keys = {d: secrets.token_bytes(32) for d in devices}
    files = DeviceFile({d: {"key": k.hex()} for d, k in keys.items()})
    pipeline = Pipeline(key_for=files.key_for, engine=Engine(ScaleFacts()), store=influx, spool=Spool())
    settings = IngestSettings(
        mqtt_port=mosquitto.port, mqtt_client_id=f"stop-{tmp_path.name}", batch_max_ms=50, device_ack_interval_s=3600
    )
    worker = IngestWorker(settings, pipeline).start()
    acks: dict[str, list[tuple[int, int]]] = {}
    watcher = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    watcher.on_message = lambda _c, _u, m: acks.setdefault(m.topic.split("/")[2], decode_ack(m.payload))
    watcher.connect("127.0.0.1", mosquitto.port)
    watcher.subscribe("zhijian/v1/+/ack", qos=1)
    watcher.loop_start()
    try:
        assert worker.connected.wait(30)
        publisher = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        publisher.connect("127.0.0.1", mosquitto.port)
        publisher.loop_start()
        for d in devices:
            payload = encode(device=d, boot=BOOT, seq=1, sent_ms=1, records=[sale(txn=1)], key=keys[d])
            publisher.publish(f"zhijian/v1/{d}/data", payload, qos=1).wait_for_publish(10)
        publisher.loop_stop()
        assert wait_until(lambda: pipeline.records_by_type["sale"] == len(devices), 60)
        assert acks == {}  # the interval holds them
    finally:
        worker.stop(end_session=True)
    try:
        assert wait_until(lambda: len(acks) == len(devices), 30), len(acks)
        assert all(ranges == [(1, 1)] for ranges in acks.values())
    finally:
        watcher.loop_stop()
        watcher.disconnect()
