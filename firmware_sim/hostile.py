"""A hostile (or badly broken) device's payloads: valid envelopes mutated, then signed with the device's key.

Signing after mutating is the worst case: the integrity tag holds, so only the contract stands between
these bytes and the ingest. The mutations, each drawn with its own probability:

- ``bytes``: arbitrary bytes (0–400), signed;
- ``flip``: a valid envelope's text with bytes flipped, inserted, deleted or duplicated, signed;
- ``value``: one member of the envelope or of a record replaced by a hostile JSON value (lone surrogates,
  control characters, long strings, deep nesting, huge or negative integers, NaN and infinities, wrong
  types), or an unknown member added;
- ``seq``: a well-formed envelope whose seq plays games (far ahead, far back, an earlier seq again with
  other content);
- ``unsigned``: a mutated text left with the valid envelope's tag.

Deterministic for a seed, fast enough to draw a million payloads a minute, no I/O.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

from device_profiles.envelope import encode, sign
from device_profiles.records import EXAMPLE_SALE, MAX_SAFE_INT

BOOT = "0123456789abcdef0123456789abcdef"
KINDS = ("bytes", "flip", "value", "seq", "unsigned")
_TAG_LEN = len(',"tag":"') + 64 + len('"}')


def sign_text(text: bytes, key: bytes) -> bytes:
    """A JSON object's exact text (ending in ``}``) with the integrity tag appended as an agent would."""
    body = text[:-1] if text.endswith(b"}") else text
    return body + b',"tag":"' + sign(key, body).encode() + b'"}'


def _hostile_values(rng: random.Random) -> Any:
    depth = rng.choice([2, 10, 100, 1_000])
    choices: list[Any] = [
        "\ud800",
        "a\udfffb",
        "\x00",
        "tab\there",
        "x" * rng.choice([65, 1_000, 10_000]),
        "\u2028",
        "\U0001f600",
        "",
        2**63,
        -(2**63) - 1,
        MAX_SAFE_INT + 1,
        -1,
        10**30,
        float("nan"),
        float("inf"),
        -float("inf"),
        1e308,
        -0.0,
        True,
        None,
        {},
        [],
        {"type": "sale"},
        "[" * depth,  # text, not nesting: a string full of brackets
    ]
    return rng.choice(choices)


_RAW = "\u0001raw\u0001"  # stands for a JSON text spliced in after encoding (nesting json.dumps refuses)


class HostilePayloads:
    """An endless stream of hostile payloads from one device (``kind``, ``payload``)."""

    def __init__(self, device: str, key: bytes, *, seed: int = 0, first_seq: int = 1) -> None:
        self.device = device
        self.key = key
        self.rng = random.Random(seed)
        self.seq = first_seq

    def valid(self, seq: int | None = None, **over: Any) -> bytes:
        """A valid sale envelope (the next seq unless given)."""
        if seq is None:
            seq, self.seq = self.seq, self.seq + 1
        record = {**EXAMPLE_SALE, "txn": seq % 1_000_000, "ts": 1_764_000_000_000 + seq % 10**9, **over}
        return encode(device=self.device, boot=BOOT, seq=seq, sent_ms=1_764_000_000_000, records=[record], key=self.key)

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        while True:
            yield self.next()

    def next(self) -> tuple[str, bytes]:
        kind = self.rng.choice(KINDS)
        return kind, getattr(self, f"_{kind}")()

    def _bytes(self) -> bytes:
        n = self.rng.randrange(0, 400)
        return sign_text(self.rng.randbytes(n), self.key)

    def _mutated_text(self) -> bytes:
        text = bytearray(self.valid(seq=self.rng.randrange(1, 10_000))[:-_TAG_LEN] + b"}")
        for _ in range(self.rng.randrange(1, 6)):
            at = self.rng.randrange(len(text))
            op = self.rng.randrange(4)
            if op == 0:
                text[at] ^= 1 << self.rng.randrange(8)
            elif op == 1:
                text.insert(at, self.rng.randrange(256))
            elif op == 2 and len(text) > 2:
                del text[at]
            else:
                end = min(len(text), at + self.rng.randrange(1, 40))
                text[at:at] = text[at:end]
        return bytes(text)

    def _flip(self) -> bytes:
        return sign_text(self._mutated_text(), self.key)

    def _unsigned(self) -> bytes:
        good = self.valid(seq=self.rng.randrange(1, 10_000))
        return self._mutated_text()[:-1] + good[-_TAG_LEN:]

    def _value(self) -> bytes:
        doc: dict[str, Any] = json.loads(self.valid(seq=self.rng.randrange(1, 10_000))[:-_TAG_LEN] + b"}")
        record = doc["records"][0]
        target = doc if self.rng.random() < 0.3 else record
        name = self.rng.choice([*target, "extra"])
        nested = self.rng.random() < 0.15
        target[name] = _RAW if nested else _hostile_values(self.rng)
        if self.rng.random() < 0.05:
            doc["records"] = [record] * self.rng.choice([0, 1_001])
        # ensure_ascii keeps lone surrogates as \\u escapes (what a hostile device would write)
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=True)
        if nested:
            depth = self.rng.choice([2, 10, 100, 1_000, 5_000])
            text = text.replace(json.dumps(_RAW), "[" * depth + "0" + "]" * depth)
        return sign_text(text.encode(), self.key)

    def _seq(self) -> bytes:
        game = self.rng.randrange(3)
        if game == 0:
            return self.valid(seq=self.rng.choice([2**52, MAX_SAFE_INT, self.seq + 10**7]))
        if game == 1:
            return self.valid(seq=max(0, self.seq - self.rng.randrange(1, 50)), net_mg=self.rng.randrange(10**6))
        return self.valid(seq=self.rng.randrange(0, 3))
