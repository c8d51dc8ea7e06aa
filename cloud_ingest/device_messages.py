"""What the ingest says to devices and hears back besides data, for both workers (MQTT and NATS).

- An alert is published retained on its subject's ``alert`` topic, so a stall's or base's screen shows it
  when it connects; a planting base's alert also goes to the base's ``cmd`` topic, for its agent to sound
  and confirm.
- A device's command reply may carry ``{"ack_alert": {"alert_id": …}}``: that closes (or marks
  acknowledged) the alert it names, and the acknowledgement goes to the case outbox, for the registry's
  case of that alert (docs/cases.md), and as an ``alert_state`` point (state acknowledged, actor the
  base's ``by``) to the pipeline, which writes it with the next batch or between batches: the network
  thread never waits for InfluxDB. A reply that is not JSON is counted as ``bad_reply``.
- End-to-end acknowledgements (:class:`DeviceAcks`): which of a device's seqs the cloud has for good, one
  QoS 1 message per device and interval covering every batch stored meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Mapping

import paho.mqtt.client as mqtt

from device_profiles.acks import encode_ack
from device_profiles.records import MAX_SAFE_INT
from device_profiles.topics import topic, valid_device_id

from .case_outbox import base_ack_event
from .derived_points import alert_state_line
from .pipeline import Pipeline
from .rapid_tests import Alert

log = logging.getLogger(__name__)


def publish_alert(client: mqtt.Client, alert: Alert) -> None:
    if not valid_device_id(alert.subject):
        return
    doc = alert.as_dict()
    payload = json.dumps(doc, ensure_ascii=False).encode()
    client.publish(topic(alert.subject, "alert"), payload, qos=1, retain=True)
    if alert.kind.startswith("sensor_"):
        command = {"id": alert.id, "cmd": "alert", "args": doc}
        client.publish(topic(alert.subject, "cmd"), json.dumps(command, ensure_ascii=False).encode(), qos=1)


def take_reply(pipeline: Pipeline, device: str, payload: bytes) -> bool:
    """A device's command reply; True when it acknowledged one of its alerts."""
    try:
        doc = json.loads(payload)
        ack = doc.get("ack_alert") if isinstance(doc, dict) else None
        alert_id = ack.get("alert_id") if isinstance(ack, dict) else None
    except (ValueError, RecursionError):
        pipeline.rejected["bad_reply"] += 1
        return False
    channel = pipeline.alert_book.acknowledge(device, alert_id) if isinstance(alert_id, str) else None
    if isinstance(alert_id, str) and channel is not None and isinstance(ack, dict):
        log.info("%s acknowledged alert %s", device, alert_id)
        by, ts = ack.get("by"), ack.get("ts")
        actor = by.strip()[:200] if isinstance(by, str) and by.strip() else device
        pipeline.note_state(
            alert_state_line(
                alert_id,
                "sensor_fault" if channel.startswith("fault.") else "sensor_threshold",
                "medium",  # what sensor_alerts gives both kinds
                pipeline.tags_for(device),
                state="acknowledged",
                actor=actor,
                # when the ingest heard it, not the base's clock: after the opening point whatever that says
                ts_ms=int(time.time() * 1000),
            )
        )
        if pipeline.case_outbox is not None:
            pipeline.case_outbox.put(
                [
                    base_ack_event(
                        device,
                        alert_id,
                        by=by if isinstance(by, str) else "",
                        ts_ms=ts if type(ts) is int and 0 <= ts <= MAX_SAFE_INT else None,
                    )
                ]
            )
        return True
    return False


class DeviceAcks:
    """Tell each device which of its seqs the cloud now has for good: one QoS 1 message per device,
    ``{"v":1,"ranges":[[first,last],…]}``, on its ``ack`` topic, for the batches stored in the last
    ``interval_s`` (one publish per batch and device was 7 % of the CPU at one record per message).

    Both workers use it; safe from several threads (the NATS worker's partitions)."""

    def __init__(self, client: mqtt.Client, interval_s: float) -> None:
        self._client = client
        self.interval_s = interval_s
        self.sent = 0  # acknowledgement messages published
        self._pending: dict[str, list[tuple[int, int]]] = {}  # stored, not yet told to the device
        self._sent_at = time.monotonic()
        self._infos: list[mqtt.MQTTMessageInfo] = []  # the last flush's publishes
        self._lock = threading.Lock()

    def add(self, acks: Mapping[str, list[tuple[int, int]]], *, now: bool = False) -> None:
        """Note what a batch stored; publish what waits once the interval has passed (or ``now``)."""
        with self._lock:
            for device, ranges in acks.items():
                self._pending.setdefault(device, []).extend(ranges)
            due = time.monotonic() - self._sent_at >= self.interval_s
            if not self._pending or not (now or due):
                return
            pending, self._pending = self._pending, {}
            self._infos = [
                self._client.publish(topic(device, "ack"), encode_ack(ranges), qos=1)
                for device, ranges in pending.items()
            ]
            self.sent += len(pending)
            self._sent_at = time.monotonic()

    def flush(self, *, now: bool = False) -> None:
        """Publish what waits, if the interval has passed (or ``now``)."""
        self.add({}, now=now)

    def wait_published(self, connected: threading.Event, *, timeout_s: float) -> None:
        """Until the broker has the last acknowledgements sent (PUBACK), or ``timeout_s``, or disconnected."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            infos, self._infos = self._infos, []
        for info in infos:
            while not info.is_published() and connected.is_set() and time.monotonic() < deadline:
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(timeout=0.2)
