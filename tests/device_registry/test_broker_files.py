"""Broker security files on a real Mosquitto: passwords in mosquitto_passwd's format, the per-device ACL,
and a reload that keeps connected clients."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from device_registry.broker_files import (
    acl_text,
    hash_password,
    password_file_text,
    verify_password,
)
from edge_agent.private_file import write_private
from zhijian_cli.servers import MosquittoServer

pytestmark = pytest.mark.integration


def test_our_hashes_and_mosquitto_passwd_agree(tmp_path: Path) -> None:
    stored = hash_password("s3cret", salt=b"0123456789ab")
    assert stored.startswith("$7$101$") and verify_password(stored, "s3cret") and not verify_password(stored, "x")
    made = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(made), "scale-0001", "s3cret"], check=True)
    theirs = made.read_text().strip().split(":", 1)[1]
    assert verify_password(theirs, "s3cret")
    assert not verify_password("$6$not-ours", "s3cret")


class Client:
    def __init__(self, port: int, user: str, password: str, *subscribe: str) -> None:
        self.messages: queue.Queue[str] = queue.Queue()
        self.refused: str | None = None
        self.connected = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(user, password)
        self.client.on_message = lambda _c, _u, m: self.messages.put(m.topic)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()

        def on_connect(c, _u, _f, reason, _p):
            if reason.is_failure:
                self.refused = str(reason)
                return
            self.connected.set()
            if subscribe:
                c.subscribe([(t, 1) for t in subscribe])
            else:
                subscribed.set()

        self.client.on_connect = on_connect
        self.client.on_disconnect = lambda *_: self.connected.clear()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        deadline = time.monotonic() + 5
        while not (subscribed.is_set() or self.refused) and time.monotonic() < deadline:
            time.sleep(0.02)

    def publish(self, topic: str) -> None:
        self.client.publish(topic, b"{}", qos=1).wait_for_publish(3)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_devices_stay_in_their_namespace_and_reload_keeps_clients(tmp_path: Path) -> None:
    passwords = {"scale-0001": "pw-one", "scale-0002": "pw-two", "zhijian-ingest": "pw-ingest"}
    pw_file, acl_file = tmp_path / "passwd", tmp_path / "acl"
    write_private(pw_file, password_file_text({u: hash_password(p) for u, p in passwords.items()}))
    write_private(acl_file, acl_text())
    config = f"password_file {pw_file}\nacl_file {acl_file}\n"
    with MosquittoServer(tmp_path / "broker", extra_config=config) as broker:
        broker.config_path.write_text(broker.config_text().replace("allow_anonymous true", "allow_anonymous false"))
        broker.stop()
        broker.start()
        ingest = Client(broker.port, "zhijian-ingest", "pw-ingest", "zhijian/v1/+/data")
        a = Client(broker.port, "scale-0001", "pw-one")
        try:
            assert ingest.connected.is_set() and a.connected.is_set()
            a.publish("zhijian/v1/scale-0002/data")  # forged: B's namespace
            a.publish("zhijian/v1/scale-0001/data")  # its own
            assert ingest.messages.get(timeout=5) == "zhijian/v1/scale-0001/data"
            time.sleep(0.5)
            assert ingest.messages.empty(), "a message in another device's namespace reached the ingest"
            wrong = Client(broker.port, "scale-0002", "not-its-password")
            assert wrong.refused and not wrong.connected.is_set()
            wrong.close()
            stranger = Client(broker.port, "scale-0003", "pw-three")
            assert stranger.refused
            stranger.close()
            passwords["scale-0003"] = "pw-three"  # a newly provisioned device
            write_private(pw_file, password_file_text({u: hash_password(p) for u, p in passwords.items()}))
            broker.reload()
            time.sleep(0.5)
            c = Client(broker.port, "scale-0003", "pw-three")
            assert c.connected.is_set(), c.refused
            assert a.connected.is_set() and ingest.connected.is_set()  # nobody was dropped by the reload
            a.publish("zhijian/v1/scale-0001/data")
            assert ingest.messages.get(timeout=5) == "zhijian/v1/scale-0001/data"
            c.close()
        finally:
            a.close()
            ingest.close()
