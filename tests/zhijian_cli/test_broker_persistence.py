"""The generated Mosquitto config persists sessions: one made a moment before the broker is SIGKILLed
survives once the next autosave (every second, by time) has written it."""

from __future__ import annotations

import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.mqtt_clients import session_present
from tests.support.waiting import wait_until
from zhijian_cli.servers import MosquittoServer

pytestmark = pytest.mark.integration


def test_a_session_survives_a_broker_crash_a_moment_after_it_was_made(tmp_path: Path) -> None:
    broker = MosquittoServer(tmp_path / "broker").start()
    try:
        db = broker.state_dir / "mosquitto.db"
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="keeper", protocol=mqtt.MQTTv5)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        subscribed: list[int] = []
        client.on_subscribe = lambda *_: subscribed.append(1)
        client.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
        client.loop_start()
        client.subscribe("zhijian/v1/+/data", qos=1)
        assert wait_until(lambda: bool(subscribed), 30)
        made = time.time()
        client.disconnect()
        client.loop_stop()
        # the next autosave after the session was made (by time: at most a second or two later)
        assert wait_until(lambda: db.exists() and db.stat().st_mtime > made + 0.1, 30)
        broker.kill()
        broker.start()
        assert session_present(broker.port, "keeper")
    finally:
        broker.stop()
