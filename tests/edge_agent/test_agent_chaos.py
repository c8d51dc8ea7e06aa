"""Chaos with a real broker: SIGKILL the agent while sales flow, stop the broker, fill the outbox quota.

Every test checks the same thing from the receiving side: each sale the scale made reaches the broker,
under one seq, and new seqs arrive in order.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device_profiles import decode
from device_profiles.acks import encode_ack
from edge_agent import Agent, BrokerConfig, MtSicsSource
from tests.support.seller import PROFILE, Seller
from tests.support.waiting import wait_until
from zhijian_cli.servers import MosquittoServer, free_port

pytestmark = pytest.mark.integration
OUTAGE_S = float(os.environ.get("ZHIJIAN_CHAOS_OUTAGE_S", "20"))  # ZHIJIAN_CHAOS_OUTAGE_S=600 for a long one


class Receiver:
    """Subscribes to every device's data topic, decodes what arrives and acknowledges it end to end."""

    def __init__(self, port: int, keys: dict[str, bytes]) -> None:
        self.keys = keys
        self.by_seq: dict[int, dict] = {}
        self.new_seqs: list[int] = []
        self.messages = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="chaos-rx", protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe("zhijian/v1/+/data", qos=1)
        self.client.reconnect_delay_set(0.2, 1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600  # a persistent session: the broker keeps it across its restart
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_message(self, client, _u, msg) -> None:
        device = msg.topic.split("/")[2]
        env = decode(msg.payload, topic_device=device, key_for=self.keys.get)
        # acknowledge as the ingest does once records are durable (here: in memory, which is all this test needs)
        client.publish(f"zhijian/v1/{device}/ack", encode_ack([(env.seqs[0], env.seqs[-1])]), qos=1)
        with self._lock:
            self.messages += 1
            for seq, rec in zip(env.seqs, env.records, strict=True):
                if seq in self.by_seq:
                    assert self.by_seq[seq] == rec, "one seq, two different records"
                    continue
                self.by_seq[seq] = rec
                self.new_seqs.append(seq)

    def sale_txns(self) -> list[int]:
        with self._lock:
            return [r["txn"] for r in self.by_seq.values() if r["type"] == "sale"]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def check_complete(receiver: Receiver, sold: int) -> None:
    txns = receiver.sale_txns()
    missing = sorted(set(range(1, sold + 1)) - set(txns))
    assert sorted(txns) == list(range(1, sold + 1)), f"missing sales: {missing[:20]}"
    assert len(txns) == len(set(txns)), "a sale was stored under two seqs"
    assert receiver.new_seqs == sorted(receiver.new_seqs), "new records arrived out of order"


def test_sigkill_the_agent_repeatedly_loses_nothing(mosquitto, tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    seller = Seller()
    bundle = tmp_path / "scale-0042.yaml"
    bundle.write_text(
        yaml.safe_dump(
            {
                "device_id": "scale-0042",
                "key_hex": key.hex(),
                "state_dir": str(tmp_path / "state"),
                "broker": {"host": "127.0.0.1", "port": mosquitto.port},
                "sources": [{"profile": "zj-pcs-30", "port": seller.server.port}],
            }
        )
    )
    receiver = Receiver(mosquitto.port, {"scale-0042": key})
    argv = [sys.executable, "-m", "zhijian_cli", "agent", "run", "--config", str(bundle)]
    log = (tmp_path / "agent.log").open("wb")
    seller.selling.set()
    try:

        def states() -> int:
            return sum(r["type"] == "scale_state" for r in list(receiver.by_seq.values()))

        for i in range(6):
            agent = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
            # killed at some moment after it has read the scale (a condition, not a guess at a busy machine's pace)
            assert wait_until(lambda n=i: states() >= n + 1, 60), f"agent start {i + 1} sent no scale_state"
            time.sleep(0.1 + 0.3 * (i % 3))
            agent.send_signal(signal.SIGKILL)
            agent.wait()
        seller.selling.clear()
        agent = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        assert wait_until(lambda: len(receiver.sale_txns()) >= seller.sold, 60), (
            f"{len(receiver.sale_txns())} of {seller.sold} sales arrived"
        )

        def status() -> dict:
            out = subprocess.run(
                [sys.executable, "-m", "zhijian_cli", "agent", "status", "--config", str(bundle), "--json"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            return json.loads(out) if out.startswith("{") else {}

        # the status file is rewritten every second: wait for one written after the drain
        assert wait_until(lambda: status().get("outbox_depth") == 0, 10), status()
        doc = status()
        assert doc["running"] and doc["device"] == "scale-0042"
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(20) == 0
    finally:
        if agent.poll() is None:  # a failed assertion above must not leave an agent running
            agent.kill()
            agent.wait()
        receiver.close()
        seller.close()
    assert seller.sold > 200
    check_complete(receiver, seller.sold)
    states = [r for r in receiver.by_seq.values() if r["type"] == "scale_state"]
    assert len(states) == 7  # one per agent start


def start_agent(tmp_path: Path, port: int, seller: Seller, key: bytes, **kw) -> Agent:
    return Agent(
        device_id="scale-0043",
        key=key,
        sources=[MtSicsSource(PROFILE, seller.server.port)],
        outbox_path=tmp_path / "outbox.sqlite",
        status_path=tmp_path / "status.json",
        broker=BrokerConfig(port=port, backoff_max_s=2.0),
        poll_interval_s=0.01,
        **kw,
    ).start()


def test_broker_outage_backlog_drains_after_it_returns(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    broker = MosquittoServer(tmp_path / "broker").start()
    seller = Seller()
    receiver = Receiver(broker.port, {"scale-0043": key})
    agent = start_agent(tmp_path, broker.port, seller, key)
    try:
        seller.selling.set()
        time.sleep(2)
        broker.stop()
        time.sleep(OUTAGE_S)
        backlog = agent.outbox.depth
        seller.selling.clear()
        broker = MosquittoServer(tmp_path / "broker", port=broker.port).start()
        started = time.monotonic()
        assert wait_until(lambda: len(receiver.sale_txns()) >= seller.sold, 60)
        drain_s = time.monotonic() - started
    finally:
        agent.stop(drain_s=5)
        receiver.close()
        seller.close()
        broker.stop()
    assert backlog > OUTAGE_S * 10, f"only {backlog} records waited during the outage"
    print(f"outage {OUTAGE_S:g} s: {backlog} records waited, delivered {drain_s:.1f} s after the broker returned")
    check_complete(receiver, seller.sold)


def test_full_quota_leaves_sales_on_the_scale_and_counts_refusals(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    port = free_port()  # no broker there yet
    seller = Seller(period_s=0.01)
    agent = start_agent(tmp_path, port, seller, key, outbox_quota_bytes=8 * 1024)
    broker = None
    try:
        seller.selling.set()
        assert wait_until(lambda: agent.outbox.refused > 0, 20)
        seller.selling.clear()
        time.sleep(1.5)
        assert agent.outbox.stored_bytes <= 8 * 1024
        with seller.lock:
            kept_on_scale = len(seller.firmware.pending)
        assert kept_on_scale > 0 and agent.taken + kept_on_scale - 1 >= seller.sold  # -1: the scale_state
        status = json.loads((tmp_path / "status.json").read_text())
        assert status["outbox_refused"] > 0
        broker = MosquittoServer(tmp_path / "broker", port=port).start()
        receiver = Receiver(port, {"scale-0043": key})
        assert wait_until(lambda: len(receiver.sale_txns()) >= seller.sold, 60)
        receiver.close()
    finally:
        agent.stop()
        seller.close()
        if broker is not None:
            broker.stop()
    check_complete(receiver, seller.sold)
