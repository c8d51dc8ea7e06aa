"""The end-to-end acknowledgement: the cloud tells a device which of its records it has for good.

Sent by the ingest on ``zhijian/v1/<device>/ack`` (QoS 1, not retained) once the batches holding the
records are durable, one message per device for the batches of the last ``device_ack_interval_s``::

    {"v":1,"ranges":[[41,57],[60,60]]}

Each range ``[first, last]`` covers seqs (inclusive) that are in InfluxDB, in the ingest's on-disk spool,
or kept in its dead letters as refused (its tag held, so the device did send it; sending it again would
be refused again). Seqs the cloud did not take (a forged tag, a device it does not know yet) are not
named: the agent keeps them and sends them again. Pure functions, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from .errors import EnvelopeError
from .records import MAX_SAFE_INT

ACK_VERSION = 1
MAX_RANGES = 10_000


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping, non-adjacent ranges covering the same seqs."""
    out: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def encode_ack(ranges: Iterable[tuple[int, int]]) -> bytes:
    """The acknowledgement of ``ranges`` (merged)."""
    return json.dumps({"v": ACK_VERSION, "ranges": merge_ranges(ranges)}, separators=(",", ":")).encode()


def decode_ack(payload: bytes) -> list[tuple[int, int]]:
    """The merged ranges of an acknowledgement; raises ``EnvelopeError('bad_envelope')`` if it is not one."""
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise EnvelopeError("malformed_json", f"acknowledgement: {exc}") from exc
    ranges = doc.get("ranges") if isinstance(doc, dict) and doc.get("v") == ACK_VERSION else None
    if not isinstance(ranges, list) or len(ranges) > MAX_RANGES:
        raise EnvelopeError("bad_envelope", "an acknowledgement is {'v': 1, 'ranges': [[first, last], …]}")
    out = []
    for item in ranges:
        if not (isinstance(item, list) and len(item) == 2 and all(type(x) is int for x in item)):
            raise EnvelopeError("bad_envelope", f"acknowledgement range {item!r:.40} is not [first, last]")
        first, last = item
        if not 0 <= first <= last <= MAX_SAFE_INT:
            raise EnvelopeError("bad_envelope", f"acknowledgement range {item!r:.40} is out of order or range")
        out.append((first, last))
    return merge_ranges(out)
