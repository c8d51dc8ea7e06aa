"""Publishes the outbox to MQTT (paho-mqtt, MQTT 5, QoS 1) and removes records only once acknowledged.

One batch is in flight at a time: the oldest consecutive records of the outbox, signed into one envelope.
When the broker's PUBACK arrives the batch leaves the outbox; if the connection drops first, the same
records are sent again after reconnecting (with the same seqs, so the cloud stores them once).
The device's status topic carries a retained ``online`` message with the outbox depth, and the broker
publishes the retained ``offline`` last will if the agent vanishes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from device_profiles import encode
from device_profiles.topics import topic

from .outbox import Outbox

log = logging.getLogger(__name__)
AGENT_VERSION = "0.1.0"


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerConfig:
    """Where and as whom to connect."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30


class Publisher:
    """Moves one device's outbox to the broker."""

    def __init__(
        self,
        *,
        device_id: str,
        key: bytes,
        boot: str,
        outbox: Outbox,
        broker: BrokerConfig,
        max_records: int = 100,
        ack_timeout_s: float = 10.0,
    ) -> None:
        self.device_id = device_id
        self._key = key
        self.boot = boot
        self.outbox = outbox
        self.broker = broker
        self.max_records = max_records
        self.ack_timeout_s = ack_timeout_s
        self.published_records = 0
        self.last_error = ""
        self._data_topic = topic(device_id, "data")
        self._status_topic = topic(device_id, "status")
        self._connected = threading.Event()
        self._stop = threading.Event()
        self.wake = threading.Event()
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv5
        )
        if broker.username is not None:
            self._client.username_pw_set(broker.username, broker.password)
        self._client.will_set(self._status_topic, self._status("offline"), qos=1, retain=True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._thread = threading.Thread(target=self._run, name=f"publish-{device_id}", daemon=True)

    def _status(self, state: str) -> bytes:
        return json.dumps(
            {
                "state": state,
                "agent_version": AGENT_VERSION,
                "boot": self.boot,
                "outbox_depth": self.outbox.depth,
                "outbox_refused": self.outbox.refused,
                "last_error": self.last_error,
                "ts": int(time.time() * 1000),
            }
        ).encode()

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: Properties | None
    ) -> None:
        if reason.is_failure:
            self.last_error = f"connect refused: {reason}"
            log.warning("%s: broker refused the connection: %s", self.device_id, reason)
            return
        log.info("%s: connected to %s:%d", self.device_id, self.broker.host, self.broker.port)
        client.publish(self._status_topic, self._status("online"), qos=1, retain=True)
        self._connected.set()
        self.wake.set()

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: Properties | None
    ) -> None:
        if self._connected.is_set():
            log.info("%s: disconnected from broker: %s", self.device_id, reason)
        self._connected.clear()

    def start(self) -> None:
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
        self._client.loop_start()
        self._thread.start()

    def stop(self, *, drain_s: float = 0.0) -> None:
        """Stop publishing; with ``drain_s`` first wait up to that long for the outbox to empty."""
        deadline = time.monotonic() + drain_s
        while self.outbox.depth and time.monotonic() < deadline:
            self.wake.set()
            time.sleep(0.05)
        self._stop.set()
        self.wake.set()
        self._thread.join(timeout=self.ack_timeout_s + 1)
        if self._connected.is_set():
            self._client.publish(self._status_topic, self._status("offline"), qos=1, retain=True).wait_for_publish(2)
        self._client.disconnect()
        self._client.loop_stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._connected.wait(0.2):
                continue
            batch = self.outbox.peek_batch(max_records=self.max_records)
            if not batch:
                self.wake.wait(0.2)
                self.wake.clear()
                continue
            payload = encode(
                device=self.device_id,
                boot=self.boot,
                seq=batch[0][0],
                sent_ms=int(time.time() * 1000),
                records=[rec for _, rec in batch],
                key=self._key,
            )
            info = self._client.publish(self._data_topic, payload, qos=1)
            try:
                info.wait_for_publish(timeout=self.ack_timeout_s)
            except (RuntimeError, ValueError) as exc:
                self.last_error = f"publish: {exc}"
                time.sleep(0.2)
                continue
            if info.is_published():
                self.outbox.remove_through(batch[-1][0])
                self.published_records += len(batch)
