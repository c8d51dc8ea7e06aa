"""What the ingest says to devices and hears back besides data, for both workers (MQTT and NATS).

- An alert is published retained on its subject's ``alert`` topic, so a stall's or base's screen shows it
  when it connects; a planting base's alert also goes to the base's ``cmd`` topic, for its agent to sound
  and confirm.
- A device's command reply may carry ``{"ack_alert": {"alert_id": …}}``: that closes (or marks
  acknowledged) the alert it names, and the acknowledgement goes to the case outbox, for the registry's
  case of that alert (docs/cases.md). A reply that is not JSON is counted as ``bad_reply``.
"""

from __future__ import annotations

import json
import logging

import paho.mqtt.client as mqtt

from device_profiles.records import MAX_SAFE_INT
from device_profiles.topics import topic, valid_device_id

from .case_outbox import base_ack_event
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
    if isinstance(alert_id, str) and pipeline.alert_book.acknowledge(device, alert_id):
        log.info("%s acknowledged alert %s", device, alert_id)
        if pipeline.case_outbox is not None and isinstance(ack, dict):
            by, ts = ack.get("by"), ack.get("ts")
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
