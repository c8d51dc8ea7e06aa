"""Publishes the outbox to MQTT (paho-mqtt, MQTT 5, QoS 1); records leave it only once the cloud has them.

- A batch is the oldest consecutive records not yet sent, at most ``max_records`` and ``max_bytes``,
  signed into one envelope; one batch is published at a time. A batch smaller than ``max_records`` waits
  up to ``linger_s`` for more records, so a busy device sends few large messages and a quiet one at once.
- Delivery ``cloud`` (the default): a PUBACK without a failure reason makes the batch *in flight*; it
  leaves the outbox when the ingest's acknowledgement on the device's ``ack`` topic names its seqs
  (after they are in InfluxDB, the ingest's spool or its dead letters). Batches in flight are sent again,
  same seqs, when the connection comes back, when a later batch is acknowledged first, or (the oldest
  only, as a probe) after ``cloud_ack_timeout_s`` doubling per attempt: :mod:`edge_agent.delivery`.
  Delivery ``broker``: the PUBACK alone removes the batch (for a broker with no Zhijian ingest behind it,
  and for measuring what the end-to-end acknowledgement costs).
- A PUBACK with a failure reason (0x87 not authorised: an ACL refusal) is a failure: the records stay,
  the reason is logged once (and once when publishes are accepted again), counted and shown in the
  status, and the batch is retried after a growing pause.
- Our own network loop reconnects with capped, jittered exponential backoff (a fleet coming back after a
  broker restart does not reconnect in lockstep), over TLS when a CA is given, with the device's username
  and password, and an optional client certificate.
- Status: a retained ``online`` message on connect and every ``status_interval_s`` (agent version, boot,
  outbox depth, records in flight, age of the oldest record, refusals, last error); the broker publishes
  the retained ``offline`` last will if the agent vanishes.
- Commands arriving on the device's ``cmd`` topic are handed to ``on_command``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from device_profiles import EnvelopeError, encode
from device_profiles.acks import decode_ack, merge_ranges
from device_profiles.loops import Loop
from device_profiles.mqtt_reasons import disconnect_words
from device_profiles.topics import topic

from .delivery import InFlight
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
        delivery: Literal["cloud", "broker"] = "cloud",
        cloud_ack_timeout_s: float = 30.0,
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
        self.delivery = delivery
        self.in_flight = InFlight(timeout_s=cloud_ack_timeout_s)
        self._flight_lock = threading.Lock()  # the network thread acknowledges, the publish loop sends
        self._puback: dict[int, ReasonCode] = {}
        self._acks: list[tuple[int, int]] = []  # acknowledged by the cloud, not yet removed from the outbox
        self.published_records = 0
        self.acknowledged_records = 0
        self.refused_publishes = 0
        self._refusal = ""  # the failure reason of the last PUBACK, until one succeeds again
        self._refusal_pause = 1.0
        self.connects = 0
        self.command_errors = 0
        self.last_error = ""
        self._rng = random.Random()
        self._topics = {k: topic(device_id, k) for k in ("data", "status", "cmd", "reply", "ack")}
        self.connected = threading.Event()
        self._stop = threading.Event()
        self.wake = threading.Event()
        self._delay = broker.backoff_min_s
        self._unreachable_since: float | None = None  # when the broker stopped answering (logged once)
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
        client.on_publish = self._on_publish
        client.on_socket_open = _no_delay
        return client

    # -- status -----------------------------------------------------------------------------------
    def status(self, state: str = "online") -> dict[str, Any]:
        doc: dict[str, Any] = {
            "state": state,
            "device": self.device_id,
            "agent_version": AGENT_VERSION,
            "boot": self.boot,
            "delivery": self.delivery,
            "outbox_depth": self.outbox.depth,
            "outbox_refused": self.outbox.refused,
            "in_flight_records": self.in_flight.records,
            "oldest_record_age_s": round(self.outbox.oldest_age_s(), 1),
            "published_records": self.published_records,
            "acknowledged_records": self.acknowledged_records,
            "refused_publishes": self.refused_publishes,
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
        if self._unreachable_since is not None:
            log.info(
                "%s: broker reached again after %.0f s", self.device_id, time.monotonic() - self._unreachable_since
            )
            self._unreachable_since = None
        with self._flight_lock:
            self.in_flight.reconnected(time.monotonic())  # the broker may have lost what it held
        topics = [(self._topics["cmd"], 1)]
        if self.delivery == "cloud":  # with broker delivery the PUBACK decides; acknowledgements are not ours
            topics.append((self._topics["ack"], 1))
        client.subscribe(topics)
        client.publish(self._topics["status"], self.status_payload(), qos=1, retain=True)
        self.connected.set()
        self.wake.set()

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, flags: mqtt.DisconnectFlags, reason: ReasonCode, _p: Properties | None
    ) -> None:
        if self.connected.is_set() and not self._stop.is_set():
            words = disconnect_words(reason, from_broker=flags.is_disconnect_packet_from_server)
            log.warning("%s: lost the broker: %s; reconnecting, records stay in the outbox", self.device_id, words)
            self.last_error = f"disconnected: {words}"
        self.connected.clear()

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, reason: ReasonCode, _p: Properties | None) -> None:
        if reason.is_failure:  # only failures are kept: the publish loop looks its batch up
            self._puback[mid] = reason
            if len(self._puback) > 1_000:  # refused status or reply messages nobody looks up
                self._puback.pop(next(iter(self._puback)))

    def _on_ack(self, payload: bytes) -> None:
        """The cloud's acknowledgement ``{"v":1,"ranges":[[first,last],…]}``: those records are durable."""
        try:
            ranges = decode_ack(payload)
        except EnvelopeError as exc:
            log.warning("%s: unreadable acknowledgement (%s): %r", self.device_id, exc, payload[:80])
            return
        with self._flight_lock:  # applied by the publish loop: the network thread never waits on the disk
            self._acks.extend(ranges)
        self.wake.set()

    def _apply_acks(self) -> None:
        """Remove what the cloud acknowledged since the last time, in one outbox commit."""
        with self._flight_lock:
            ranges, self._acks = merge_ranges(self._acks), []
        if not ranges:
            return
        removed = self.outbox.acknowledge(ranges)
        with self._flight_lock:
            self.in_flight.acknowledged(ranges, time.monotonic())
        self.acknowledged_records += removed

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self._topics["ack"]:
            self._on_ack(bytes(msg.payload))
            return
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
            with contextlib.suppress(RuntimeError, ValueError):  # the broker went away meanwhile: stop anyway
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
            if self._unreachable_since is None:  # once per outage, and once more when it is reached
                self._unreachable_since = time.monotonic()
                log.warning(
                    "%s: broker %s:%d unreachable (%s); retrying after %g s, doubling to %g s (jittered);"
                    " logged again when reached",
                    self.device_id,
                    self.broker.host,
                    self.broker.port,
                    exc,
                    self._delay,
                    self.broker.backoff_max_s,
                )
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
            self._apply_acks()  # also while disconnected: acknowledged records leave the outbox
            if not self.connected.wait(0.2):
                continue
            batch = self._next_batch()
            if not batch:
                self.wake.wait(0.2)
                self.wake.clear()
                continue
            self._send(batch)

    def _next_batch(self) -> list[tuple[int, dict[str, Any]]]:
        """A batch in flight that is due again, else the next records not sent yet (lingering for more)."""
        if self.delivery == "broker":
            batch = self.outbox.peek_batch(max_records=self.max_records, max_bytes=self.max_bytes)
            if batch and len(batch) < self.max_records and self.linger_s > 0:
                time.sleep(self.linger_s)  # let a burst gather into one message
                batch = self.outbox.peek_batch(max_records=self.max_records, max_bytes=self.max_bytes)
            return batch
        with self._flight_lock:
            flight = self.in_flight.due(time.monotonic())
            cursor = self.in_flight.cursor
        if flight is not None:  # all of it, in one message, as it was sent the first time
            batch = self.outbox.peek_batch(
                after=flight.first - 1, through=flight.last, max_records=flight.last - flight.first + 1, max_bytes=2**31
            )
            if batch:
                return batch
            with self._flight_lock:  # acknowledged meanwhile
                self.in_flight.acknowledged([(flight.first, flight.last)], time.monotonic())
            return []
        batch = self.outbox.peek_batch(after=cursor, max_records=self.max_records, max_bytes=self.max_bytes)
        if batch and len(batch) < self.max_records and self.linger_s > 0:
            time.sleep(self.linger_s)
            batch = self.outbox.peek_batch(after=cursor, max_records=self.max_records, max_bytes=self.max_bytes)
        return batch

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
        if not _acknowledged(info):
            return
        reason = self._puback.pop(info.mid, None)
        if reason is not None and reason.is_failure:
            self._refused(reason, len(batch))
            return
        if self._refusal:
            log.info("%s: the broker accepts our publishes again (refused before: %s)", self.device_id, self._refusal)
            self._refusal, self._refusal_pause = "", 1.0
        first, last = batch[0][0], batch[-1][0]
        if self.delivery == "broker":
            self.outbox.remove_through(last)
        else:
            with self._flight_lock:
                self.in_flight.sent(first, last, time.monotonic())
        self.published_records += len(batch)

    def _refused(self, reason: ReasonCode, records: int) -> None:
        """A PUBACK with a failure reason: nothing was delivered; keep the records and retry after a pause."""
        self.refused_publishes += 1
        text = (
            f"the broker refused our publish: {reason} (0x{reason.value:02x}); {records} record(s) stay in the outbox"
        )
        if self._refusal != str(reason):
            log.error("%s: %s", self.device_id, text)
            self._refusal = str(reason)
        self.last_error = text
        self._stop.wait(self._refusal_pause)
        self._refusal_pause = min(self._refusal_pause * 2, 60.0)


def _no_delay(_c: mqtt.Client, _u: object, sock: object) -> None:
    """Send each packet at once: paho leaves Nagle's algorithm on, which holds a segment shorter than the
    MSS while sent bytes are unacknowledged. The PUBACK we return for each of the cloud's acknowledgements
    then held back the next batch (all of it on loopback, its last segment elsewhere) until the broker's
    delayed ACK: about 20 ms a batch, a drain of 7 500 records/s instead of 38 000 on the development
    machine (agent_throughput.py). PUBACK-only delivery receives no acknowledgements and never waited."""
    if isinstance(sock, socket.socket):  # an ssl.SSLSocket is one too
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _acknowledged(info: mqtt.MQTTMessageInfo) -> bool:
    """True once the broker acknowledged; paho raises instead of answering False after a disconnect."""
    try:
        return info.is_published()
    except (RuntimeError, ValueError):
        return False
