"""The agent on a real broker: commands and replies, TLS with client certificates, status and last will."""

from __future__ import annotations

import json
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from device_profiles import builtin
from device_registry.local_ca import LocalCA
from edge_agent import Agent, BrokerConfig, ModbusBus, ModbusSource, MtSicsSource, Outbox, Publisher
from firmware_sim import PtyLineServer, ScaleFirmware
from firmware_sim.modbus_sensor import ModbusSensorServer, SensorModel
from zhijian_cli.servers import MosquittoServer, TlsListener, free_port

pytestmark = pytest.mark.integration
SCALE = builtin("zj-pcs-30")


class Watcher:
    """A client that listens on some topics and can send commands."""

    def __init__(self, port: int, *topics: str) -> None:
        self.messages: queue.Queue[tuple[str, dict]] = queue.Queue()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, json.loads(m.payload)))
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(5)

    def next(self, topic: str, timeout_s: float = 10.0, where=lambda doc: True) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                got_topic, doc = self.messages.get(timeout=0.2)
            except queue.Empty:
                continue
            if got_topic == topic and where(doc):
                return doc
        raise AssertionError(f"nothing on {topic} within {timeout_s} s")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def scale_port():
    lock = threading.Lock()
    with PtyLineServer(ScaleFirmware(SCALE, seed=1).respond, lock=lock, name="s") as server:
        yield server.port


def test_commands_are_answered_on_the_reply_topic(mosquitto, tmp_path: Path, scale_port: str) -> None:
    sensor_port = free_port()
    with ModbusSensorServer([SensorModel(builtin("soil-rs485"))], tcp_port=sensor_port):
        source = ModbusSource(builtin("soil-rs485"), ModbusBus(f"tcp://127.0.0.1:{sensor_port}"), interval_s=60)
        agent = Agent(
            device_id="base-0001",
            key=secrets.token_bytes(32),
            sources=[MtSicsSource(SCALE, scale_port), source],
            outbox_path=tmp_path / "o.sqlite",
            broker=BrokerConfig(port=mosquitto.port),
            publisher_options={"delivery": "broker"},  # no ingest here to acknowledge: flush waits for PUBACKs
        ).start()
        watcher = Watcher(mosquitto.port, "zhijian/v1/base-0001/reply")
        try:
            assert agent.publisher.connected.wait(10)

            def ask(doc: dict) -> dict:
                watcher.client.publish("zhijian/v1/base-0001/cmd", json.dumps(doc), qos=1)
                return watcher.next("zhijian/v1/base-0001/reply", where=lambda r: r.get("id") == doc.get("id"))

            status = ask({"id": "1", "cmd": "status"})
            assert status["ok"] and status["status"]["device"] == "base-0001" and "sources" in status["status"]
            assert ask({"id": "2", "cmd": "flush", "args": {"timeout_s": 5}}) == {
                "id": "2",
                "cmd": "flush",
                "ok": True,
                "outbox_depth": 0,
            }
            assert ask({"id": "3", "cmd": "set_interval", "args": {"seconds": 5}})["ok"]
            assert source.interval_s == 5
            bad = ask({"id": "4", "cmd": "set_interval", "args": {"seconds": 0}})
            assert not bad["ok"] and "between" in bad["error"]
            ack = ask({"id": "5", "cmd": "ack_alert", "args": {"alert_id": "A-17", "by": "base manager Li"}})
            assert ack["ack_alert"]["alert_id"] == "A-17" and agent.alerts_acknowledged[0]["by"] == "base manager Li"
            assert not ask({"id": "6", "cmd": "reboot"})["ok"]
            watcher.client.publish("zhijian/v1/base-0001/cmd", b"{not json", qos=1)
            assert "bad command" in watcher.next("zhijian/v1/base-0001/reply")["error"]
        finally:
            watcher.close()
            agent.stop()


def test_tls_with_client_certificates(tmp_path: Path, scale_port: str) -> None:
    other_scale = PtyLineServer(ScaleFirmware(SCALE, seed=2).respond, lock=threading.Lock(), name="s2").start()
    ca, other_ca = LocalCA(tmp_path / "ca"), LocalCA(tmp_path / "other", name="someone else")
    server = ca.issue("broker", hosts=("127.0.0.1", "localhost"))
    tls_port = free_port()
    listener = TlsListener(
        port=tls_port, ca_file=ca.cert_path, cert_file=server.cert, key_file=server.key, require_certificate=True
    )
    with MosquittoServer(tmp_path / "broker", tls=listener) as broker:
        watcher = Watcher(broker.port, "zhijian/v1/+/data")
        good, forged = ca.issue("scale-0101", client=True), other_ca.issue("scale-0102", client=True)
        agents = [
            Agent(
                device_id=device,
                key=secrets.token_bytes(32),
                sources=[MtSicsSource(SCALE, port)],
                outbox_path=tmp_path / f"{device}.sqlite",
                broker=BrokerConfig(
                    port=tls_port, ca_file=ca.cert_path, cert_file=cert.cert, key_file=cert.key, backoff_max_s=1
                ),
            )
            for device, cert, port in (("scale-0101", good, scale_port), ("scale-0102", forged, other_scale.port))
        ]
        for a in agents:
            a.start()
        try:
            doc = watcher.next("zhijian/v1/scale-0101/data", timeout_s=15)
            assert doc["records"][0]["type"] == "scale_state"
            assert no_delay(agents[0].publisher)  # on the TLS socket too
            time.sleep(2)
            assert not agents[1].publisher.connected.is_set() and agents[1].publisher.connects == 0
            assert agents[1].outbox.depth >= 1  # kept, waiting for a connection that the broker refuses
            assert agents[1].publisher.last_error
        finally:
            watcher.close()
            for a in agents:
                a.stop()
            other_scale.close()


def test_status_is_retained_and_the_last_will_says_offline(mosquitto, tmp_path: Path, scale_port: str) -> None:
    bundle = tmp_path / "scale-0201.yaml"
    bundle.write_text(
        yaml.safe_dump(
            {
                "device_id": "scale-0201",
                "key_hex": secrets.token_hex(32),
                "state_dir": str(tmp_path / "state"),
                "broker": {"host": "127.0.0.1", "port": mosquitto.port, "keepalive_s": 2},
                "sources": [{"profile": "zj-pcs-30", "port": scale_port}],
            }
        )
    )
    agent = subprocess.Popen(
        [sys.executable, "-m", "zhijian_cli", "agent", "run", "--config", str(bundle)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        watcher = Watcher(mosquitto.port, "zhijian/v1/scale-0201/status")
        online = watcher.next("zhijian/v1/scale-0201/status", where=lambda d: d["state"] == "online")
        assert online["agent_version"] and len(online["boot"]) == 32 and "outbox_depth" in online
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        offline = watcher.next("zhijian/v1/scale-0201/status", timeout_s=10, where=lambda d: d["state"] == "offline")
        assert offline["device"] == "scale-0201"
        watcher.close()
        late = Watcher(mosquitto.port, "zhijian/v1/scale-0201/status")  # retained: a newcomer sees it at once
        assert late.next("zhijian/v1/scale-0201/status", timeout_s=3)["state"] == "offline"
        late.close()
    finally:
        agent.kill()


def test_username_and_password_from_the_bundle(tmp_path: Path, scale_port: str) -> None:
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "scale-0301", "s3cret-pass"], check=True)
    config = f"password_file {passwd}\n"
    with MosquittoServer(tmp_path / "broker", extra_config=config) as broker:
        broker.config_path.write_text(broker.config_text().replace("allow_anonymous true", "allow_anonymous false"))
        broker.stop()
        broker.start()
        agents = [
            Agent(
                device_id="scale-0301",
                key=secrets.token_bytes(32),
                sources=[MtSicsSource(SCALE, scale_port)],
                outbox_path=tmp_path / f"{i}.sqlite",
                broker=BrokerConfig(port=broker.port, username="scale-0301", password=pw, backoff_max_s=1),
            )
            for i, pw in enumerate(("s3cret-pass", "wrong"))
        ]
        agents[0].start()
        try:
            assert agents[0].publisher.connected.wait(10)
            agents[0].stop()
            agents[1].start()
            time.sleep(2)
            assert agents[1].publisher.connects == 0
            assert "refused" in agents[1].publisher.last_error
        finally:
            for a in agents:
                a.stop()


def no_delay(publisher: Publisher) -> bool:
    sock = publisher._client.socket()
    assert isinstance(sock, socket.socket)
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def test_packets_go_out_at_once(mosquitto, tmp_path: Path) -> None:
    """Nagle's algorithm off: with it, each PUBACK for a cloud acknowledgement held the next batch back
    until the broker's delayed ACK (a drain 5 times slower than PUBACK-only delivery)."""
    outbox = Outbox(tmp_path / "o.sqlite")
    publisher = Publisher(
        device_id="scale-0301",
        key=secrets.token_bytes(32),
        boot="0" * 32,
        outbox=outbox,
        broker=BrokerConfig(port=mosquitto.port),
    )
    publisher.start()
    try:
        assert publisher.connected.wait(10)
        assert no_delay(publisher)
    finally:
        publisher.stop()
        outbox.close()


def test_reconnect_delays_are_jittered_and_capped() -> None:
    import random

    from edge_agent.publisher import jittered

    rng = random.Random(1)
    delays = [jittered(8.0, rng) for _ in range(1000)]
    assert 4.0 <= min(delays) < 4.2 and 7.8 < max(delays) <= 8.0
    assert len({round(d, 2) for d in delays}) > 300  # spread over the range, not in lockstep
