"""The MQTT payload envelope: encoding, integrity tag and validation. Pure functions, no I/O.

A payload is one UTF-8 JSON object, written compactly, whose last member is the integrity tag::

    {"v":1,"device":"scale-0001","boot":"9f1c…","seq":41,"sent_ms":1764050000123,
     "records":[{"type":"sale","ts":1764050000000,…},…],"tag":"<64 hex digits>"}

- ``v``: schema version (:data:`SCHEMA_VERSION`); ``device``: the device id, equal to the topic's;
- ``boot``: a random id the agent draws at each start (32 hex digits), so a restart is visible;
- ``seq``: the per-device sequence number of the first record; record *i* has ``seq + i``. Sequence
  numbers never go back for a device, across restarts of its agent;
- ``sent_ms``: when the agent sent it (UTC epoch ms); each record has its own ``ts``;
- ``tag``: HMAC-SHA256 with the device's key over **every byte of the payload before** ``,"tag":"``,
  hex encoded. The tag is always the last 74 bytes (``,"tag":"`` + 64 hex + ``"}``), so a verifier
  needs no canonical JSON: it checks the exact bytes that were sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import EnvelopeError, IntegrityError
from .records import MAX_SAFE_INT, MAX_TS_MS, RECORD_TYPES, RecordType
from .topics import valid_device_id

SCHEMA_VERSION = 1
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_RECORDS = 1_000
_TAG_SUFFIX_LEN = len(',"tag":"') + 64 + len('"}')
_TAG_SUFFIX_RE = re.compile(rb',"tag":"([0-9a-f]{64})"\}\Z')
_BOOT_RE = re.compile(r"^[0-9a-f]{32}$")
#: Values of tag fields: no white space, commas, equals signs, quotes or backslashes (line-protocol safe).
TAG_VALUE_RE = re.compile(r'[^\s,="\\]*')
#: What no string of the contract may hold: lone surrogates (``"\ud800"`` is valid JSON text but not
#: Unicode: it cannot be written as UTF-8) and control characters.
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_CONTROL_RE = re.compile("[\x00-\x1f\x7f]")
#: The members of an envelope; any other member is refused (the schema version says what a payload holds).
ENVELOPE_MEMBERS = frozenset({"v", "device", "boot", "seq", "sent_ms", "records", "tag"})

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded, verified and validated payload."""

    version: int
    device: str
    boot: str
    seq: int
    sent_ms: int
    records: list[Record]

    @property
    def seqs(self) -> range:
        """The sequence numbers of the records, in order."""
        return range(self.seq, self.seq + len(self.records))


def key_fingerprint(key: bytes) -> str:
    """16 hex digits identifying an integrity key without revealing it (compared at provisioning)."""
    return hashlib.sha256(key).hexdigest()[:16]


def sign(key: bytes, signed_part: bytes) -> str:
    """The hex integrity tag of ``signed_part`` under ``key``."""
    return hmac.new(key, signed_part, hashlib.sha256).hexdigest()


def encode(
    *, device: str, boot: str, seq: int, sent_ms: int, records: Sequence[Mapping[str, Any]], key: bytes
) -> bytes:
    """Encode and sign a payload. ``records`` must already follow the record contract."""
    body = json.dumps(
        {
            "v": SCHEMA_VERSION,
            "device": device,
            "boot": boot,
            "seq": seq,
            "sent_ms": sent_ms,
            "records": records,
        },
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode()
    signed = body[:-1]  # without the closing brace; the tag member closes the object
    return signed + b',"tag":"' + sign(key, signed).encode() + b'"}'


def decode(
    payload: bytes,
    *,
    topic_device: str,
    key_for: Callable[[str], bytes | None],
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> Envelope:
    """Check a payload received on ``topic_device``'s data topic and return its envelope.

    Checks, in this order: size, tag presence, key known, tag, JSON, envelope fields, device id,
    records. Raises :class:`EnvelopeError` (or :class:`IntegrityError`) with a reason code.
    The tag is checked before the JSON is parsed, so forged payloads cost no parsing.
    """
    if len(payload) > max_bytes:
        raise EnvelopeError("oversized", f"{len(payload)} bytes > {max_bytes}")
    match = _TAG_SUFFIX_RE.search(payload, max(0, len(payload) - _TAG_SUFFIX_LEN))
    if match is None:
        raise IntegrityError("missing_tag", "payload does not end with the integrity tag member")
    key = key_for(topic_device)
    if key is None:
        raise EnvelopeError("unknown_device", topic_device)
    signed = payload[: match.start()]
    if not hmac.compare_digest(sign(key, signed).encode(), match.group(1)):
        raise IntegrityError("bad_tag", f"tag does not match for device {topic_device}")
    try:
        doc = json.loads(payload)
    except RecursionError as exc:  # an envelope nests three levels; the C parser gives up near a thousand
        raise EnvelopeError("bad_json", "nested too deeply") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise EnvelopeError("malformed_json", str(exc)) from exc
    return validate(doc, topic_device=topic_device)


def validate(doc: Any, *, topic_device: str) -> Envelope:
    """Validate a parsed payload object (tag already checked)."""
    if not isinstance(doc, dict):
        raise EnvelopeError("malformed_json", "payload is not a JSON object")
    if not doc.keys() <= ENVELOPE_MEMBERS:
        extra = sorted(doc.keys() - ENVELOPE_MEMBERS)[:3]
        raise EnvelopeError("bad_envelope", f"unknown members {', '.join(map(repr, extra)):.80}")
    version = doc.get("v")
    if type(version) is not int:
        raise EnvelopeError("bad_envelope", "v must be an integer")
    if version != SCHEMA_VERSION:
        raise EnvelopeError("schema_version", f"v={version}, this ingest speaks v={SCHEMA_VERSION}")
    device = doc.get("device")
    if not isinstance(device, str) or not valid_device_id(device):
        raise EnvelopeError("bad_envelope", "device must be a valid device id")
    if device != topic_device:
        raise EnvelopeError("device_mismatch", f"payload says {device!r}, topic says {topic_device!r}")
    boot = doc.get("boot")
    if not isinstance(boot, str) or _BOOT_RE.fullmatch(boot) is None:
        raise EnvelopeError("bad_envelope", "boot must be 32 lower-case hex digits")
    seq, sent_ms = doc.get("seq"), doc.get("sent_ms")
    if type(seq) is not int or not 0 <= seq <= MAX_SAFE_INT:
        raise EnvelopeError("bad_envelope", "seq must be a non-negative integer")
    if type(sent_ms) is not int or not 0 <= sent_ms <= MAX_SAFE_INT:
        raise EnvelopeError("bad_envelope", "sent_ms must be a non-negative integer")
    records = doc.get("records")
    if not isinstance(records, list) or not 1 <= len(records) <= MAX_RECORDS:
        raise EnvelopeError("bad_envelope", f"records must be a list of 1 to {MAX_RECORDS} records")
    for i, rec in enumerate(records):
        check_record(rec, where=f"records[{i}]")
    return Envelope(version, device, boot, seq, sent_ms, records)


def check_record(rec: Any, *, where: str = "record") -> RecordType:
    """Check one record against :data:`RECORD_TYPES`; raises ``EnvelopeError('bad_record')``."""
    if not isinstance(rec, dict):
        raise EnvelopeError("bad_record", f"{where} is not an object")
    type_name = rec.get("type")
    rtype = RECORD_TYPES.get(type_name) if isinstance(type_name, str) else None
    if rtype is None:
        raise EnvelopeError("bad_record", f"{where}.type {rec.get('type')!r} is not a record type")
    ts = rec.get("ts")
    if type(ts) is not int or not 0 <= ts <= MAX_TS_MS:
        raise EnvelopeError("bad_record", f"{where}.ts must be UTC epoch milliseconds before 2100")
    for name in rec:
        if name not in rtype.fields and name not in ("type", "ts"):
            raise EnvelopeError("bad_record", f"{where}.{name} is not a field of {rtype.name}")
    for name, spec in rtype.fields.items():
        value = rec.get(name)
        if value is None:
            if spec.required:
                raise EnvelopeError("bad_record", f"{where}.{name} is required")
            continue
        kind = spec.kind
        if kind == "int":
            ok = type(value) is int
        elif kind == "float":
            ok = type(value) is int or (type(value) is float and math.isfinite(value))
        elif kind == "str":
            ok = (
                isinstance(value, str)
                and len(value) <= spec.max_len
                and (not spec.tag or TAG_VALUE_RE.fullmatch(value) is not None)
            )
        else:
            ok = type(value) is bool
        if not ok:
            raise EnvelopeError("bad_record", f"{where}.{name} must be {spec.kind}, got {value!r:.40}")
        if kind == "str" and not value.isprintable():  # fast for the usual text; then look closer
            _check_text(value, f"{where}.{name}")
        if spec.choices and value not in spec.choices:
            raise EnvelopeError("bad_record", f"{where}.{name} must be one of {', '.join(spec.choices)}")
        if kind in ("int", "float") and (
            (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max)
        ):
            raise EnvelopeError(
                "bad_record", f"{where}.{name}={value} outside [{spec.min}, {spec.max}] {spec.unit}".rstrip()
            )
    return rtype


def _check_text(value: str, where: str) -> None:
    """Text must be Unicode that UTF-8 can carry, without control characters."""
    if _SURROGATE_RE.search(value) is not None:
        raise EnvelopeError("bad_json", f"{where} holds a lone surrogate (not Unicode text)")
    if _CONTROL_RE.search(value) is not None:
        raise EnvelopeError("bad_record", f"{where} holds a control character")
