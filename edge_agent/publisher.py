"""Publishes the outbox to MQTT (paho-mqtt, MQTT 5, QoS 1) and removes records only once acknowledged.

- One batch is in flight at a time: the oldest consecutive records of the outbox, at most ``max_records``
  and ``max_bytes``, signed into one envelope. A batch smaller than ``max_records`` waits up to
  ``linger_s`` for more records, so a busy device sends few large messages and a quiet one sends at once.
- When the broker's PUBACK arrives the batch leaves the outbox; if the connection drops first, the same
  records are sent again after reconnecting, with the same seqs, so the cloud stores them once.
- Our own network thread reconnects with capped, jittered exponential backoff (a fleet coming back after a
  broker restart does not reconnect in lockstep), over TLS when a CA is given, with the device's username
  and password, and an optional client certificate.
- Status: a retained ``online`` message on connect and every ``status_interval_s`` (agent version, boot,
  outbox depth, records refused by a full outbox, last error); the broker publishes the retained
  ``offline`` last will if the agent vanishes.
- Commands arriving on the device's ``cmd`` topic are handed to ``on_command``.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from device_profiles import encode
from device_profiles.loops import Loop
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
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = 30
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0


def jittered(delay: float, rng: random.Random) -> float:
    """``delay`` spread over [delay/2, delay] ("equal jitter")."""
    return delay / 2 + rng.random() * delay / 2


class Publisher:
    """Moves one device's outbox to the broker and receives its commands."""

    def __init__(
        self,
        *,
        device_id: str,
        key: bytes,
        boot: str,
        outbox: Outbox,
        broker: BrokerConfig,
        max_records: int = 200,
        max_bytes: int = 128 * 1024,
        linger_s: float = 0.1,
        ack_timeout_s: float = 10.0,
        status_interval_s: float = 30.0,
        on_command: Callable[[dict[str, Any]], None] | None = None,
        status_extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.device_id = device_id
        self._key = key
        self.boot = boot
        self.outbox = outbox
        self.broker = broker
        self.max_records, self.max_bytes, self.linger_s = max_records, max_bytes, linger_s
        self.ack_timeout_s = ack_timeout_s
        self.status_interval_s = status_interval_s
        self.on_command = on_command
        self.status_extra = status_extra
        self.published_records = 0
        self.connects = 0
        self.command_errors = 0
        self.last_error = ""
        self._rng = random.Random()
        self._topics = {k: topic(device_id, k) for k in ("data", "status", "cmd", "reply")}
        self.connected = threading.Event()
        self._stop = threading.Event()
        self.wake = threading.Event()
        self._delay = broker.backoff_min_s
        self._first_connect = True
        self.loops = [
            Loop(f"mqtt-{device_id}", self._network_once, stop=self._stop, max_backoff_s=broker.backoff_max_s),
            Loop(f"publish-{device_id}", self._publish_some, stop=self._stop, min_backoff_s=1.0),
        ]
        self._client = self._make_client()  # after the loops: its last will is a status document

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=self.device_id, protocol=mqtt.MQTTv5
        )
        b = self.broker
        if b.username is not None:
            client.username_pw_set(b.username, b.password)
        if b.ca_file is not None:
            client.tls_set(
                ca_certs=str(b.ca_file),
                certfile=str(b.cert_file) if b.cert_file else None,
                keyfile=str(b.key_file) if b.key_file else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.will_set(self._topics["status"], self.status_payload("offline"), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    # -- status -----------------------------------------------------------------------------------
    def status(self, state: str = "online") -> dict[str, Any]:
        doc: dict[str, Any] = {
            "state": state,
            "device": self.device_id,
            "agent_version": AGENT_VERSION,
            "boot": self.boot,
            "outbox_depth": self.outbox.depth,
            "outbox_refused": self.outbox.refused,
            "published_records": self.published_records,
            "last_error": self.last_error,
            "ts": int(time.time() * 1000),
        }
        threads = {loop.name: loop.status() for loop in self.loops}
        if self.status_extra is not None:
            extra = self.status_extra()
            threads |= extra.pop("threads", {})
            doc.update(extra)
        doc["threads"] = threads
        return doc

    def status_payload(self, state: str = "online") -> bytes:
        return json.dumps(self.status(state), ensure_ascii=False).encode()

    def publish_status(self) -> None:
        if self.connected.is_set():
            self._client.publish(self._topics["status"], self.status_payload(), qos=1, retain=True)

    def reply(self, doc: dict[str, Any]) -> None:
        """Publish a command result or an alert acknowledgement on the reply topic."""
        self._client.publish(self._topics["reply"], json.dumps(doc, ensure_ascii=False).encode(), qos=1)

    # -- callbacks (network thread) ---------------------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: Properties | None
    ) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            log.warning("%s: %s", self.device_id, self.last_error)
            return
        self.connects += 1
        log.info("%s: connected to %s:%d", self.device_id, self.broker.host, self.broker.port)
        client.subscribe(self._topics["cmd"], qos=1)
        client.publish(self._topics["status"], self.status_payload(), qos=1, retain=True)
        self.connected.set()
        self.wake.set()

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: Properties | None
    ) -> None:
        if self.connected.is_set() and not self._stop.is_set():
            log.warning("%s: lost the broker: %s", self.device_id, reason)
            self.last_error = f"disconnected: {reason}"
        self.connected.clear()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        try:
            command = json.loads(msg.payload)
            if not isinstance(command, dict):
                raise ValueError("a command is a JSON object")
        except (ValueError, RecursionError) as exc:
            self.reply({"ok": False, "error": f"bad command: {exc}"})
            return
        if self.on_command is not None:
            threading.Thread(target=self._run_command, args=(command,), name="command", daemon=True).start()

    def _run_command(self, command: dict[str, Any]) -> None:
        """One command on its own thread; a surprise is logged, answered and counted, never silent."""
        assert self.on_command is not None
        try:
            self.on_command(command)
        except Exception as exc:
            self.command_errors += 1
            log.exception("%s: command %r failed", self.device_id, command.get("cmd"))
            self.reply({"id": command.get("id"), "cmd": command.get("cmd"), "ok": False, "error": repr(exc)})

    # -- threads ----------------------------------------------------------------------------------
    def start(self) -> None:
        for loop in self.loops:
            loop.start()

    def stop(self, *, drain_s: float = 0.0) -> None:
        """Stop publishing; with ``drain_s`` first wait up to that long for the outbox to empty."""
        deadline = time.monotonic() + drain_s
        while self.outbox.depth and time.monotonic() < deadline:
            self.wake.set()
            time.sleep(0.05)
        if self.connected.is_set():
            info = self._client.publish(self._topics["status"], self.status_payload("offline"), qos=1, retain=True)
            info.wait_for_publish(2)
        self._stop.set()
        self.wake.set()
        self._client.disconnect()
        for loop in self.loops:
            loop.join(timeout_s=self.ack_timeout_s + 2)
        self._client.loop(timeout=0.1)  # send the DISCONNECT

    def _network_once(self) -> None:
        """One connection: connect, run the network loop until it drops, then back off."""
        try:
            if self._first_connect:
                self._client.connect(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
                self._first_connect = False
            else:
                self._client.reconnect()
        except (OSError, ssl.SSLError, ValueError) as exc:
            self.last_error = f"connect: {exc}"
            log.debug("%s: connect failed: %s", self.device_id, exc)
            self._back_off()
            return
        accepted = False
        try:
            while not self._stop.is_set():
                rc = self._client.loop(timeout=0.2)
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    if not accepted and not self.last_error.startswith("broker refused"):
                        # e.g. a TLS client certificate the broker does not trust: it hangs up before CONNACK
                        self.last_error = (
                            f"the broker closed the connection before accepting it: {mqtt.error_string(rc)}"
                        )
                    break
                if self.connected.is_set():
                    accepted = True
                    self._delay = self.broker.backoff_min_s
        finally:
            self.connected.clear()
        self._back_off()

    def _back_off(self) -> None:
        if not self._stop.is_set():
            self._stop.wait(jittered(self._delay, self._rng))
            self._delay = min(self._delay * 2, self.broker.backoff_max_s)

    def _publish_some(self) -> None:
        """Publish batches until stopped; returns only by raising (the loop logs it and starts it again; the
        outbox keeps the records) or on stop."""
        next_status = time.monotonic() + self.status_interval_s
        while not self._stop.is_set():
            if time.monotonic() >= next_status:
                self.publish_status()
                next_status = time.monotonic() + self.status_interval_s
            if not self.connected.wait(0.2):
                continue
            batch = self.outbox.peek_batch(max_records=self.max_records, max_bytes=self.max_bytes)
            if not batch:
                self.wake.wait(0.2)
                self.wake.clear()
                continue
            if len(batch) < self.max_records and self.linger_s > 0:
                time.sleep(self.linger_s)  # let a burst gather into one message
                batch = self.outbox.peek_batch(max_records=self.max_records, max_bytes=self.max_bytes)
            self._send(batch)

    def _send(self, batch: list[tuple[int, dict[str, Any]]]) -> None:
        payload = encode(
            device=self.device_id,
            boot=self.boot,
            seq=batch[0][0],
            sent_ms=int(time.time() * 1000),
            records=[rec for _, rec in batch],
            key=self._key,
        )
        info = self._client.publish(self._topics["data"], payload, qos=1)
        deadline = time.monotonic() + self.ack_timeout_s
        while info.rc == mqtt.MQTT_ERR_SUCCESS and not _acknowledged(info) and time.monotonic() < deadline:
            if not self.connected.is_set():
                break  # sent again, same seqs, once reconnected
            try:
                info.wait_for_publish(timeout=0.2)
            except (RuntimeError, ValueError):  # the connection dropped while we waited
                break
        if _acknowledged(info):
            self.outbox.remove_through(batch[-1][0])
            self.published_records += len(batch)


def _acknowledged(info: mqtt.MQTTMessageInfo) -> bool:
    """True once the broker acknowledged; paho raises instead of answering False after a disconnect."""
    try:
        return info.is_published()
    except (RuntimeError, ValueError):
        return False
