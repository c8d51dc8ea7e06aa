"""Signed envelopes as a device sends them, for tests of every layer that reads them: a key, a boot id,
an example sale, payloads signed over their exact bytes (also hand-written ones), and a pipeline on a real
InfluxDB that knows the key.
"""

from __future__ import annotations

import json

from anti_cheat import Engine, ScaleFacts
from cloud_ingest import InfluxClient, Pipeline
from device_profiles import encode
from device_profiles.envelope import sign
from device_profiles.metrology import ScaleFact
from device_profiles.records import EXAMPLE_SALE

KEY = b"k" * 32
BOOT = "0123456789abcdef0123456789abcdef"


def sale(**over):
    return {**EXAMPLE_SALE, **over}


def payload(records=None, device="scale-0001", key=KEY, **over) -> bytes:
    doc = {
        "device": device,
        "boot": BOOT,
        "seq": 10,
        "sent_ms": 1_764_000_000_500,
        "records": records if records is not None else [sale()],
        **over,
    }
    return encode(key=key, **doc)


def keys(device: str) -> bytes | None:
    return KEY if device == "scale-0001" else None


def resign(doc: dict) -> bytes:
    return resign_text(json.dumps(doc, separators=(",", ":")).encode())


def resign_text(text: bytes, key: bytes = KEY) -> bytes:
    """A JSON object's exact text, signed as an agent would (escapes such as ``\\ud800`` kept as written)."""
    body = text[:-1]
    return body + b',"tag":"' + sign(key, body).encode() + b'"}'


TOPIC = "zhijian/v1/scale-0001/data"


def make(influx: InfluxClient) -> Pipeline:
    facts = ScaleFacts()
    facts.set(
        "scale-0001",
        ScaleFact(coefficient=20_000.0, e_mg=5_000, calibration_events=3, configuration_events=7),
    )
    return Pipeline(key_for=keys, engine=Engine(facts), store=influx)
