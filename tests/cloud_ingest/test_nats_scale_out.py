"""The NATS JetStream scale-out with real processes: `zhijian ingest route` and N `zhijian ingest run` with
ZHIJIAN_TRANSPORT=nats, on a private nats-server, Mosquitto and influxd.

- 1, 2 and 3 workers store the same sales and raise the same flags as one in-process pipeline fed the
  messages in order; each worker receives only the messages of the partitions it owns;
- a SIGKILLed worker's partitions are taken by the others within a bound, and nothing is lost or doubled;
- a NATS restart under load loses nothing;
- every device is told end to end which of its seqs are stored (coalesced acknowledgements, as the
  single worker sends them).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from anti_cheat import Engine
from cloud_ingest import DeviceFile, InfluxClient, Pipeline, write_device_file
from cloud_ingest.nats_stream import partition_of_key
from device_profiles import builtin, encode
from device_profiles.acks import decode_ack, merge_ranges
from firmware_sim import Cheat, ScaleFirmware
from tests.support.envelopes import BOOT
from tests.support.waiting import wait_until
from zhijian_cli.servers import InfluxServer, MosquittoServer, NatsServer, free_port

pytestmark = pytest.mark.integration
PARTITIONS = 8
LEASE_S = 6.0  # generous: a lease must outlive a busy machine's stalls, or partitions move mid-test
MARKETS = [f"market-{m:02d}" for m in range(8)]
SALES = 40  # per scale


@dataclass
class Fleet:
    """Scales (some cheating) and one fair scale per market, and their signed messages in publish order."""

    facts: dict[str, Any] = field(default_factory=dict)
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    sales: int = 0


def make_fleet() -> Fleet:
    profile = builtin("zj-pcs-30")
    cheats = [None, Cheat("cheat_chip"), Cheat("remote_control", ratio=1.02), Cheat("throw")]
    fleet = Fleet()
    scales: dict[str, tuple[ScaleFirmware, bytes, str]] = {}
    for m, market in enumerate(MARKETS):
        for s in range(3):
            device = f"scale-{m:02d}{s:02d}"
            fw = ScaleFirmware(profile, seed=m * 10 + s, cheat=cheats[(m + s) % len(cheats)])
            key = secrets.token_bytes(32)
            scales[device] = (fw, key, market)
            fleet.facts[device] = {
                "key": key.hex(),
                "tags": {"market": market},
                "scale": {
                    "coefficient": fw.true_coefficient,
                    "e_mg": 5000,
                    "zero_counts": fw.verified_zero_counts,
                    "calibration_events": 3,
                    "configuration_events": 7,
                },
            }
        fleet.facts[f"fair-{m:04d}"] = {"key": secrets.token_bytes(32).hex(), "tags": {"market": market}}
    fair_seq = dict.fromkeys(MARKETS, 1)
    for k in range(1, SALES + 1):
        for device, (fw, key, market) in scales.items():
            true_mg = (500 + 37 * k) * 1000
            sold = fw.sell(ts_ms=1_764_000_000_000 + k, plu="1001", true_net_mg=true_mg, unit_price_fen_per_kg=3000)
            fw.pending.clear()
            record = {"type": "sale", **sold}
            payload = encode(device=device, boot=BOOT, seq=k, sent_ms=1, records=[record], key=key)
            fleet.messages.append((device, payload))
            fleet.sales += 1
            if k % 4 == 0:
                fair = f"fair-{MARKETS.index(market):04d}"
                seq = fair_seq[market]
                reweigh = {
                    "type": "reweigh",
                    "ts": sold["ts"],
                    "txn": seq,
                    "stall_device": device,
                    "claimed_mg": sold["net_mg"],
                    "net_mg": true_mg,
                }
                fair_key = bytes.fromhex(fleet.facts[fair]["key"])
                payload = encode(device=fair, boot=BOOT, seq=seq, sent_ms=1, records=[reweigh], key=fair_key)
                fleet.messages.append((fair, payload))
                fair_seq[market] += 1
    return fleet


FLEET = make_fleet()


def results(client: InfluxClient) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    flags = sorted((r["device"], r["rule"], r["seq"]) for r in client.rows("SELECT * FROM flag"))
    sales = sorted((r["device"], r["seq"], r["net_mg"]) for r in client.rows("SELECT * FROM sale"))
    return flags, sales


@pytest.fixture(scope="module")
def reference(influxd: InfluxServer) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """What one pipeline stores and flags, fed every message in publish order."""
    client = InfluxClient(influxd.url, "nats_reference")
    client.create_database()
    devices = DeviceFile(FLEET.facts)
    pipeline = Pipeline(key_for=devices.key_for, engine=Engine(devices.facts), store=client, tags_for=devices.tags_for)
    topics = [(f"zhijian/v1/{d}/data", p) for d, p in FLEET.messages]
    for i in range(0, len(topics), 200):
        pipeline.process(topics[i : i + 200])
    assert not pipeline.rejected
    ref = results(client)
    assert len(ref[1]) == FLEET.sales
    assert {rule for _, rule, _ in ref[0]} >= {"coefficient", "reweigh_cusum"}, ref[0]
    client.close()
    return ref


SERVER_STARTING = (httpx.HTTPError, ValueError, KeyError)  # a health endpoint not answering yet


class AckListener:
    """What devices are told on their ``ack`` topics: the seqs the cloud has for good, per device."""

    def __init__(self, port: int) -> None:
        self.ranges: dict[str, list[tuple[int, int]]] = {}
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe("zhijian/v1/+/ack", qos=1)
        assert subscribed.wait(30)

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        device = msg.topic.split("/")[2]
        with self._lock:
            self.ranges[device] = merge_ranges(self.ranges.get(device, []) + decode_ack(msg.payload))

    def covers(self, highest: dict[str, int]) -> bool:
        with self._lock:
            return all(self.ranges.get(d) == [(1, last)] for d, last in highest.items())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Cluster:
    """A router and workers as processes, one stream, one InfluxDB database."""

    def __init__(self, tmp: Path, name: str, mosquitto: MosquittoServer, nats: NatsServer, influxd: InfluxServer):
        self.tmp, self.name = tmp, name
        devices = tmp / f"{name}-devices.json"
        write_device_file(devices, FLEET.facts)
        self.env = {
            **os.environ,
            "ZHIJIAN_MQTT_PORT": str(mosquitto.port),
            "ZHIJIAN_NATS_URL": nats.url,
            "ZHIJIAN_NATS_STREAM": name.upper(),
            "ZHIJIAN_NATS_PARTITIONS": str(PARTITIONS),
            "ZHIJIAN_NATS_LEASE_S": str(LEASE_S),
            "ZHIJIAN_NATS_CHECKPOINT_MAX_S": "1",
            "ZHIJIAN_INFLUX_URL": influxd.url,
            "ZHIJIAN_INFLUX_DB": f"nats_{name}",
            "ZHIJIAN_DEVICES_FILE": str(devices),
        }
        self.influx = InfluxClient(influxd.url, f"nats_{name}")
        self.influx.create_database()
        self.mqtt_port = mosquitto.port
        self.router: subprocess.Popen[bytes] | None = None
        self.workers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        self._logs: list[Any] = []

    def _spawn(self, what: str, command: str, **env: str) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        log = (self.tmp / f"{self.name}-{what}.log").open("ab")
        self._logs.append(log)
        argv = [sys.executable, "-m", "zhijian_cli", "ingest", command]
        extra = {"ZHIJIAN_METRICS_PORT": str(port), **env}
        proc = subprocess.Popen(argv, env={**self.env, **extra}, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp)
        return proc, port

    def start_router(self) -> None:
        self.router, self.router_port = self._spawn("router", "route", ZHIJIAN_MQTT_CLIENT_ID=f"router-{self.name}")
        assert wait_until(
            lambda: self.health(self.router_port)["connected"], 30, interval_s=0.2, ignoring=SERVER_STARTING
        ), "not within 30 s: router subscribed"

    def start_worker(self, wid: str) -> None:
        state = self.tmp / f"{self.name}-{wid}"
        self.workers[wid] = self._spawn(
            wid,
            "run",
            ZHIJIAN_TRANSPORT="nats",
            ZHIJIAN_NATS_WORKER_ID=wid,
            ZHIJIAN_MQTT_CLIENT_ID=f"{self.name}-{wid}",
            ZHIJIAN_NATS_STATE_DIR=str(state),
        )

    def health(self, port: int) -> dict[str, Any]:
        doc: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        return doc

    def owned(self) -> dict[str, list[int]]:
        return {wid: self.health(port)["partitions"] for wid, (_, port) in self.workers.items()}

    def balanced(self) -> bool:
        owned = self.owned()
        share = -(-PARTITIONS // len(owned))
        taken = [p for ps in owned.values() for p in ps]
        return sorted(taken) == list(range(PARTITIONS)) and all(len(ps) <= share for ps in owned.values())

    def partition_messages(self, wid: str) -> dict[int, int]:
        text = httpx.get(f"http://127.0.0.1:{self.workers[wid][1]}/metrics", timeout=5).text
        out = {}
        for line in text.splitlines():
            if line.startswith("zhijian_ingest_partition_messages_total{"):
                label, value = line.split("}")
                out[int(label.split('"')[1])] = int(float(value))
        return out

    def publish(self, messages: list[tuple[str, bytes]], *, pace_s: float = 0.0, every: int = 20) -> None:
        pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.max_inflight_messages_set(200)
        pub.connect("127.0.0.1", self.mqtt_port)
        pub.loop_start()
        infos = []
        for i, (device, payload) in enumerate(messages):
            infos.append(pub.publish(f"zhijian/v1/{device}/data", payload, qos=1))
            if pace_s and i % every == every - 1:
                time.sleep(pace_s)
        for info in infos:
            info.wait_for_publish(60)
        pub.loop_stop()
        pub.disconnect()

    def stored_sales(self) -> tuple[int, int]:
        rows = self.influx.rows("SELECT seq FROM sale GROUP BY device")
        return len(rows), len({(r["device"], r["seq"]) for r in rows})

    def all_stored(self) -> bool:
        return self.stored_sales() == (FLEET.sales, FLEET.sales)

    def kill(self, wid: str) -> None:
        proc, _ = self.workers.pop(wid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def close(self) -> None:
        procs = [p for p, _ in self.workers.values()] + ([self.router] if self.router else [])
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in self._logs:
            log.close()
        self.workers, self.router, self._logs = {}, None, []


@pytest.fixture
def cluster(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    mosquitto: MosquittoServer,
    nats_server: NatsServer,
    influxd: InfluxServer,
) -> Iterator[Any]:
    made: list[Cluster] = []

    def make(name: str, nats: NatsServer | None = None) -> Cluster:
        made.append(Cluster(tmp_path, name, mosquitto, nats or nats_server, influxd))
        return made[-1]

    yield make
    for c in made:
        c.close()
        c.influx.close()


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_n_workers_store_and_flag_what_one_pipeline_does(cluster: Any, reference: Any, workers: int) -> None:
    c = cluster(f"same_{workers}")
    for i in range(workers):
        c.start_worker(f"w{i}")
    c.start_router()
    assert wait_until(c.balanced, 40, interval_s=0.2, ignoring=SERVER_STARTING), (
        f"not within 40 s: {workers} workers sharing {PARTITIONS} partitions"
    )
    owned = c.owned()
    acks = AckListener(c.mqtt_port)
    c.publish(FLEET.messages)
    assert wait_until(c.all_stored, 50, interval_s=0.2, ignoring=SERVER_STARTING), "not within 50 s: every sale stored"
    highest: dict[str, int] = {}
    for device, _ in FLEET.messages:
        highest[device] = highest.get(device, 0) + 1  # one record a message, seqs from 1
    assert wait_until(lambda: acks.covers(highest), 30), "every device told that all its seqs are stored"
    acks.close()
    time.sleep(1.0)  # the last batches' flags are in the same writes; let any stragglers land
    assert results(c.influx) == reference
    assert c.owned() == owned, "no partition moved during the run"
    expected: dict[int, int] = {}
    devices = DeviceFile(FLEET.facts)
    for device, _ in FLEET.messages:
        p = partition_of_key(devices.partition_key(device), PARTITIONS)
        expected[p] = expected.get(p, 0) + 1
    got: dict[int, int] = {}
    for wid, parts in owned.items():
        received = c.partition_messages(wid)
        assert set(received) <= set(parts), f"{wid} received messages of partitions it does not own"
        got |= received
    assert got == expected, "each message received once, by its partition's owner"


def test_a_sigkilled_workers_partitions_move_and_nothing_is_lost(cluster: Any, reference: Any) -> None:
    c = cluster("sigkill")
    for i in range(3):
        c.start_worker(f"w{i}")
    c.start_router()
    assert wait_until(c.balanced, 40, interval_s=0.2, ignoring=SERVER_STARTING), (
        "not within 40 s: 3 workers sharing the partitions"
    )
    half = len(FLEET.messages) // 2
    feeder = threading.Thread(target=c.publish, args=(FLEET.messages[half:],), kwargs={"pace_s": 0.01})
    c.publish(FLEET.messages[:half])
    feeder.start()
    victim = max(c.owned().items(), key=lambda kv: len(kv[1]))[0]
    time.sleep(0.5)
    c.kill(victim)
    killed_at = time.monotonic()
    assert wait_until(c.balanced, LEASE_S * 3 + 10, interval_s=0.2, ignoring=SERVER_STARTING), (
        f"not within {LEASE_S * 3 + 10} s: the survivors own every partition"
    )
    moved_s = time.monotonic() - killed_at
    feeder.join()
    assert wait_until(c.all_stored, 50, interval_s=0.2, ignoring=SERVER_STARTING), (
        "not within 50 s: every sale stored once"
    )
    time.sleep(1.0)
    assert results(c.influx) == reference
    assert moved_s <= LEASE_S * 3 + 10
    print(f"partitions of the killed worker taken over in {moved_s:.1f} s (lease {LEASE_S:g} s)")


def test_a_nats_restart_loses_nothing(cluster: Any, reference: Any, tmp_path: Path) -> None:
    nats = NatsServer(tmp_path / "nats-restart").start()
    try:
        c = cluster("restart", nats)
        for i in range(2):
            c.start_worker(f"w{i}")
        c.start_router()
        assert wait_until(c.balanced, 40, interval_s=0.2, ignoring=SERVER_STARTING), (
            "not within 40 s: 2 workers sharing the partitions"
        )
        # about 7 s of publishing; NATS away for longer than a lease from the 2nd second
        feeder = threading.Thread(target=c.publish, args=(FLEET.messages,), kwargs={"pace_s": 0.02, "every": 5})
        feeder.start()
        time.sleep(1.5)
        nats.stop()
        time.sleep(LEASE_S + 1)
        nats.start()
        feeder.join()
        assert wait_until(c.all_stored, 55, interval_s=0.2, ignoring=SERVER_STARTING), (
            "not within 55 s: every sale stored once"
        )
        time.sleep(1.0)
        assert results(c.influx) == reference
        c.close()
    finally:
        nats.stop()


def test_a_sigkilled_router_loses_nothing_and_its_resends_are_stored_once(cluster: Any, reference: Any) -> None:
    """Mosquitto sends again what the router had not acknowledged; the same bytes get the same Nats-Msg-Id, so
    the stream holds every message once: the workers receive exactly as many messages as were published."""
    c = cluster("router_kill")
    for i in range(2):
        c.start_worker(f"w{i}")
    c.start_router()
    assert wait_until(c.balanced, 40, interval_s=0.2, ignoring=SERVER_STARTING), (
        "not within 40 s: 2 workers sharing the partitions"
    )
    feeder = threading.Thread(target=c.publish, args=(FLEET.messages,), kwargs={"pace_s": 0.02, "every": 10})
    feeder.start()
    for _ in range(2):
        time.sleep(1.0)
        assert c.router is not None
        c.router.send_signal(signal.SIGKILL)
        c.router.wait()
        c.start_router()
    feeder.join()
    assert wait_until(c.all_stored, 50, interval_s=0.2, ignoring=SERVER_STARTING), (
        "not within 50 s: every sale stored once"
    )
    time.sleep(1.0)
    assert results(c.influx) == reference
    received = sum(n for wid in c.workers for n in c.partition_messages(wid).values())
    assert received == len(FLEET.messages)
