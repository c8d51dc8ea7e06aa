"""Small MQTT clients for tests: publish one signed sale as a device would, and ask the broker whether it
holds a session for a client id.
"""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device_profiles.envelope import encode
from device_profiles.records import EXAMPLE_SALE
from tests.support.envelopes import BOOT
from tests.support.waiting import wait_until


def publish(port: int, device: str, key: bytes, seq: int) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"pub-{device}-{seq}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    payload = encode(
        device=device,
        boot=BOOT,
        seq=seq,
        sent_ms=int(time.time() * 1000),
        records=[{**EXAMPLE_SALE, "txn": seq, "ts": 1_764_000_000_000 + seq}],
        key=key,
    )
    client.publish(f"zhijian/v1/{device}/data", payload, qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def session_present(port: int, client_id: str, auth: tuple[str, str] | None = None) -> bool:
    """Whether the broker holds a session for ``client_id`` (connecting as it with clean_start=False, then
    leaving with a session that expires at once, so the probe leaves nothing behind either)."""
    flags: list[bool] = []
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if auth is not None:
        client.username_pw_set(*auth)
    client.on_connect = lambda _c, _u, f, _r, _p: flags.append(f.session_present)
    client.connect("127.0.0.1", port, clean_start=False)
    client.loop_start()
    try:
        assert wait_until(lambda: bool(flags), 30)
    finally:
        client.disconnect()
        client.loop_stop()
    return flags[0]
