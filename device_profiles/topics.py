"""The MQTT topic scheme.

Every device owns one namespace, ``zhijian/v1/<device_id>/``, so that a Mosquitto ACL pattern on the
device's username (``pattern write zhijian/v1/%u/data``) is enough to stop a device from writing as
another. Device ids are therefore restricted to characters that are safe in a topic level and in a
username: lower-case letters, digits and ``-``, 3 to 64 characters, starting with a letter or digit.

| topic                          | direction        | retained | carries                                        |
|--------------------------------|------------------|----------|------------------------------------------------|
| ``zhijian/v1/<id>/data``       | device → cloud   | no       | envelopes of records (QoS 1)                   |
| ``zhijian/v1/<id>/status``     | device → cloud   | yes      | online/offline status JSON, also the last will |
| ``zhijian/v1/<id>/cmd``        | cloud → device   | no       | commands (report status, flush, interval, …)   |
| ``zhijian/v1/<id>/reply``      | device → cloud   | no       | command results and alert acknowledgements     |
| ``zhijian/v1/<id>/alert``      | cloud → anyone   | yes      | the open alert about this device, if any       |
| ``zhijian/v1/<id>/ack``        | cloud → device   | no       | which seqs the cloud has for good (QoS 1)      |
"""

from __future__ import annotations

import re
from typing import Literal

ROOT = "zhijian/v1"
TopicKind = Literal["data", "status", "cmd", "reply", "alert", "ack"]
TOPIC_KINDS: tuple[TopicKind, ...] = ("data", "status", "cmd", "reply", "alert", "ack")
DEVICE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")


def valid_device_id(device_id: str) -> bool:
    """True if ``device_id`` is usable as a topic level and a broker username."""
    return DEVICE_ID_RE.fullmatch(device_id) is not None


def topic(device_id: str, kind: TopicKind) -> str:
    """The topic of ``kind`` in the namespace of ``device_id``."""
    if not valid_device_id(device_id):
        raise ValueError(f"invalid device id {device_id!r}: want {DEVICE_ID_RE.pattern}")
    return f"{ROOT}/{device_id}/{kind}"


def subscription(kind: TopicKind, *, share_group: str | None = None) -> str:
    """A filter matching ``kind`` for every device, optionally as an MQTT 5 shared subscription."""
    base = f"{ROOT}/+/{kind}"
    return f"$share/{share_group}/{base}" if share_group else base


def parse(topic_name: str) -> tuple[str, TopicKind] | None:
    """``(device_id, kind)`` of a topic in our scheme, or None for any other topic."""
    parts = topic_name.split("/")
    if len(parts) != 4 or f"{parts[0]}/{parts[1]}" != ROOT:
        return None
    device_id, kind = parts[2], parts[3]
    if not valid_device_id(device_id):
        return None
    for known in TOPIC_KINDS:
        if kind == known:
            return device_id, known
    return None


def acl_lines() -> list[str]:
    """Mosquitto ACL patterns that confine each device (username = device id) to its namespace."""
    return [
        f"pattern write {ROOT}/%u/data",
        f"pattern write {ROOT}/%u/status",
        f"pattern write {ROOT}/%u/reply",
        f"pattern read {ROOT}/%u/cmd",
        f"pattern read {ROOT}/%u/alert",
        f"pattern read {ROOT}/%u/ack",
    ]
