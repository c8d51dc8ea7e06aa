"""Devices that send what they like to `zhijian ingest run` on a seeded registry: their keys, their MQTT
connections, and signed envelopes (also hand-written ones).
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device_profiles.envelope import encode
from device_profiles.records import EXAMPLE_SALE
from device_registry.credentials import derive_integrity_key
from tests.support.envelopes import BOOT, resign_text
from tests.support.ingest_process import IngestProcess, state_config
from tests.support.registry import KEY_SECRET
from zhijian_cli.servers import InfluxServer, MosquittoServer

DEVICES = {  # device: (profile, market, stall)
    "scale-0001": ("zj-pcs-30", "futian-no1", "A-017"),
    "fair-0001": ("zj-fair-30", "futian-no1", "FAIR"),
    "scale-0002": ("zj-pcs-30", "nanshan-no2", "A-017"),
}


def key(device: str) -> bytes:
    return derive_integrity_key(KEY_SECRET, device, 1)


class Ingest(IngestProcess):
    """`zhijian ingest run` on the registry, restartable on the same on-disk state; its dead letters."""

    def __init__(
        self, registry: str, mosquitto: MosquittoServer, influxd: InfluxServer, tmp_path: Path, **settings: object
    ) -> None:
        key_file = tmp_path / "registry.key"
        key_file.write_text(KEY_SECRET.hex())
        self.db = f"hostile_{tmp_path.name}"
        super().__init__(
            state_config(
                tmp_path,
                "ingest",
                MQTT_PORT=mosquitto.port,
                INFLUX_URL=influxd.url,
                INFLUX_DB=self.db,
                REGISTRY_URL=registry,
                KEY_SECRET_FILE=key_file,
                MQTT_CLIENT_ID=f"ingest-{tmp_path.name}",
                **settings,
            )
        )
        self.dead_path = tmp_path / "ingest" / "ingest_state.sqlite"

    def start(self) -> Ingest:
        super().start()
        self.wait_connected()
        return self

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def dead_letters(self) -> Counter[str]:
        return Counter(reason for _, reason, _ in self.dead_rows())

    def dead_rows(self) -> list[tuple[str, str, int]]:
        """(device, reason, size) of every kept dead letter."""
        if not self.dead_path.exists():
            return []
        with sqlite3.connect(self.dead_path) as db:
            return list(db.execute("SELECT device, reason, size FROM dead_letter ORDER BY id"))


class Device:
    """A device's MQTT connection; publishes and waits for each PUBACK."""

    def __init__(self, port: int, device: str) -> None:
        self.device = device
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"hostile-{device}")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, payload: bytes) -> None:
        self.client.publish(f"zhijian/v1/{self.device}/data", payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def sale(seq: int, **over: object) -> dict[str, object]:
    return {**EXAMPLE_SALE, "txn": seq, "ts": 1_764_000_000_000 + seq % 10**9, **over}


def signed(device: str, seq: int, records: list[dict[str, object]]) -> bytes:
    return encode(device=device, boot=BOOT, seq=seq, sent_ms=int(time.time() * 1000), records=records, key=key(device))


def signed_text(device: str, text: str) -> bytes:
    """An envelope written by hand (escapes such as ``\\ud800`` kept as written), signed with the device's key."""
    return resign_text(text.encode(), key(device))
