"""The router: the stateless first stage of the scale-out, from Mosquitto into the partitioned stream.

``zhijian ingest route`` holds one persistent MQTT 5 subscription (``zhijian/v1/+/data`` and ``+/reply``,
QoS 1, manual acknowledgements, like the single worker) and publishes every message, bytes untouched,
to the JetStream subject of its device's partition (:mod:`cloud_ingest.nats_stream`). It verifies
nothing that needs state or keys: the workers do (tag, schema, sequences), and keep what they refuse as
dead letters in their partition's state. Guarantees:

- **Nothing lost.** A message's PUBACK goes to Mosquitto only after JetStream's PubAck (stored in the
  stream). A router killed before that leaves the message with Mosquitto, which sends it again to the
  router's persistent session; the same bytes get the same ``Nats-Msg-Id``, so JetStream stores it
  once within its duplicate window. A NATS outage holds messages in flight (retried with backoff) and,
  once ``router_inflight`` are waiting, paho's thread waits, and Mosquitto queues for us.
- **Order per partition** is the order the router received the messages in: publishes go out in order
  on one connection and PUBACKs are sent in order. (A publish that fails and is retried at the edge of
  a NATS outage may land after a later message of the same window; devices' sequence checks tolerate
  that reordering, and docs/scale_out.md says what it means for the anti-cheat state.)
- **Nothing dropped for its content**: a payload larger than the NATS server accepts is cut to just
  over the envelope's limit and sent with the header ``Zhijian-Truncated: <bytes>``, so its worker keeps
  it as an ``oversized`` dead letter, counted; a topic that is not a device's is routed by its raw
  device level and refused (``bad_topic``) by the worker.

Threads: paho's network thread receives; the ``router-nats`` thread runs the asyncio loop that owns the
NATS connection, the in-flight window and the PUBACKs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from device_profiles.envelope import MAX_PAYLOAD_BYTES
from device_profiles.mqtt_reasons import disconnect_words
from device_profiles.topics import parse, subscription

from . import mqtt_properties
from .nats_stream import MSG_ID_HEADER, TOPIC_HEADER, LoopThread, connect, ensure_stream, message_id, subject

__all__ = ["Router", "device_of", "partition_of_key"]
from .nats_stream import partition_of_key
from .settings import IngestSettings

log = logging.getLogger(__name__)
TRUNCATED_HEADER = "Zhijian-Truncated"
_HEADROOM = 4096  # headers and protocol line, below the server's max_payload


class _InFlight:
    __slots__ = ("done", "mid", "qos")

    def __init__(self, mid: int, qos: int) -> None:
        self.mid, self.qos, self.done = mid, qos, False


def device_of(topic_name: str) -> str:
    """The device level of a topic under our subscriptions (the whole topic if it has none)."""
    parts = topic_name.split("/")
    return parts[2] if len(parts) > 2 else topic_name


class Router:
    """Mosquitto → JetStream, acknowledging to Mosquitto only what JetStream has stored."""

    def __init__(self, settings: IngestSettings, partition_key: Callable[[str], str]) -> None:
        self.settings = settings
        self.partition_key = partition_key
        self.partitions = settings.nats_partitions
        self.routed: Counter[int] = Counter()  # messages stored in the stream, by partition
        self.truncated = 0
        self.publish_retries = 0
        self.connected = threading.Event()  # subscribed to Mosquitto and connected to NATS
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(settings.router_inflight)
        self._loop = LoopThread("router-nats")
        self._pending: deque[_InFlight] = deque()  # in MQTT receive order; owned by the loop thread
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._max_payload = 1 << 20
        self._retry_logged = False
        mqtt_properties.install()
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=settings.mqtt_client_id, protocol=mqtt.MQTTv5
        )
        self._client.manual_ack_set(True)
        if settings.mqtt_username:
            self._client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
        self._client.reconnect_delay_set(min_delay=1, max_delay=15)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    @property
    def inflight(self) -> int:
        return len(self._pending)

    def start(self, *, nats_timeout_s: float = 60.0) -> Router:
        """Connect to NATS (the stream created if missing) first, then subscribe to Mosquitto."""
        self._loop.start()
        self._loop.submit(self._connect_nats()).result(nats_timeout_s)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.settings.session_expiry_s
        props.ReceiveMaximum = min(65535, self.settings.router_inflight)
        self._client.connect_async(
            self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30, clean_start=False, properties=props
        )
        self._client.loop_start()
        return self

    async def _connect_nats(self) -> None:
        logged = False
        while True:
            try:
                if self._nc is None:
                    self._nc = await connect(self.settings, f"router-{self.settings.mqtt_client_id}")
                self._js = self._nc.jetstream(publish_async_max_pending=self.settings.router_inflight + 1)
                self.partitions = await ensure_stream(self._js, self.settings)
                break
            except Exception as exc:  # NATS away at our start: wait for it (logged once)
                if not logged:
                    log.warning("router: NATS at %s: %s; retrying every second", self.settings.nats_url, exc)
                    logged = True
                await asyncio.sleep(1.0)
        self._max_payload = self._nc.max_payload

    def stop(self) -> None:
        """Stop receiving, wait (bounded) for what is in flight, disconnect; the session stays with Mosquitto."""
        self._stop.set()
        self._client.disconnect()
        self._client.loop_stop()
        deadline = time.monotonic() + 10
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._nc is not None:
            nc = self._nc
            self._loop.submit(nc.close()).result(10)
        self._loop.stop()

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: Properties | None) -> None:
        if rc.is_failure:
            log.error("broker refused the router's connection: %s", rc)
            return
        client.subscribe([(subscription(kind), 1) for kind in ("data", "reply")])

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _m: int, rcs: list[ReasonCode], _p: Properties | None) -> None:
        if any(r.is_failure for r in rcs):
            log.error("broker refused the router's subscriptions: %s", rcs)
            return
        log.info("router connected to %s:%d and subscribed", self.settings.mqtt_host, self.settings.mqtt_port)
        self.connected.set()

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, flags: mqtt.DisconnectFlags, rc: ReasonCode, _p: Properties | None
    ) -> None:
        if self.connected.is_set() and not self._stop.is_set():
            words = disconnect_words(rc, from_broker=flags.is_disconnect_packet_from_server)
            log.warning("router disconnected from broker: %s; reconnecting", words)
        self.connected.clear()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        # the in-flight window: when full, paho's thread waits here and Mosquitto holds the rest for us
        while not self._slots.acquire(timeout=0.5):
            if self._stop.is_set():
                return  # not acknowledged: Mosquitto sends it again to our session
        entry = _InFlight(msg.mid, msg.qos)
        topic_name, payload = msg.topic, bytes(msg.payload)
        self._loop.call(lambda: self._route(entry, topic_name, payload))

    def _route(self, entry: _InFlight, topic_name: str, payload: bytes) -> None:
        self._pending.append(entry)
        self._loop.loop.create_task(self._publish(entry, topic_name, payload))

    def headers_and_payload(self, topic_name: str, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        """Partition, headers and payload of one MQTT message (pure; also what the tests check)."""
        device = device_of(topic_name)
        parsed = parse(topic_name)
        key = self.partition_key(device) if parsed is not None else device
        headers = {
            # a topic outside our scheme may hold anything MQTT allows (spaces, newlines): quoted for the header
            TOPIC_HEADER: topic_name if parsed is not None else urllib.parse.quote(topic_name, safe="/"),
            MSG_ID_HEADER: message_id(topic_name, payload),
        }
        if len(payload) > self._max_payload - _HEADROOM:
            headers[TRUNCATED_HEADER] = str(len(payload))
            payload = payload[: MAX_PAYLOAD_BYTES + 1]
        return partition_of_key(key, self.partitions), headers, payload

    async def _publish(self, entry: _InFlight, topic_name: str, payload: bytes) -> None:
        partition, headers, body = self.headers_and_payload(topic_name, payload)
        if TRUNCATED_HEADER in headers:
            self.truncated += 1
            log.warning("a %s-byte message on %s is over NATS's limit: sent cut, as evidence", len(payload), topic_name)
        assert self._js is not None
        delay = 0.1
        while True:
            try:
                future = await self._js.publish_async(
                    subject(self.settings.nats_stream, partition), body, headers=dict(headers), wait_stall=5.0
                )
                await asyncio.wait_for(future, timeout=5.0)
                break
            except Exception as exc:  # NATS away or restarting: retried, never dropped
                self.publish_retries += 1
                if not self._retry_logged:
                    log.warning("router: JetStream publish failed (%s); retrying, logged once per outage", repr(exc))
                    self._retry_logged = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        if self._retry_logged and delay == 0.1:
            self._retry_logged = False
            log.info("router: JetStream publishes succeed again")
        self.routed[partition] += 1
        entry.done = True
        while self._pending and self._pending[0].done:  # PUBACKs in receive order
            first = self._pending.popleft()
            self._client.ack(first.mid, first.qos)
            self._slots.release()

    def status(self) -> dict[str, Any]:
        return {
            "connected": self.connected.is_set(),
            "inflight": self.inflight,
            "routed": sum(self.routed.values()),
            "publish_retries": self.publish_retries,
        }
