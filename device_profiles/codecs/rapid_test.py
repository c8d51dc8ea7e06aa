"""The rapid-test analyzer's line format. Pure functions, no I/O.

One line per channel result: ``$<prefix>,<v1>,<v2>,…*hh`` CR LF, values in the order of the profile's
``rapid_test.fields``, ``hh`` the XOR of the bytes between ``$`` and ``*`` (as in NMEA). Text values may
not contain ``,``, ``*`` or ``$``; booleans do not occur; an empty value means "not given".
The line is UTF-8, so sample names may be Chinese.
"""

from __future__ import annotations

from typing import Any

from ..errors import FrameError
from ..records import RECORD_TYPES
from ..schema import RapidTestSpec
from .lines import next_line, xor_checksum

MAX_LINE = 400
_FIELDS = RECORD_TYPES["rapid_test"].fields


def decode(buf: bytes | bytearray, spec: RapidTestSpec) -> tuple[dict[str, Any] | None, int]:
    """The first result line in ``buf`` as a ``rapid_test`` record (not yet range-checked)."""
    raw, consumed = next_line(buf, max_len=MAX_LINE)
    if raw is None:
        return None, 0
    start, star = raw.find(b"$"), raw.rfind(b"*")
    if start < 0 or star < start or len(raw) != star + 3:
        raise FrameError("bad_line", consumed, repr(raw[:60]))
    body = raw[start + 1 : star]
    try:
        if int(raw[star + 1 :], 16) != xor_checksum(body):
            raise FrameError("bad_checksum", consumed, repr(raw[:60]))
        parts = body.decode("utf-8").split(",")
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError("bad_line", consumed, repr(raw[:60])) from exc
    if parts[0] != spec.prefix:
        raise FrameError("foreign_line", consumed, parts[0][:20])
    if len(parts) != len(spec.fields) + 1:
        raise FrameError("bad_line", consumed, f"{len(parts) - 1} values, profile names {len(spec.fields)}")
    record: dict[str, Any] = {"type": "rapid_test"}
    for name, text in zip(spec.fields, parts[1:], strict=True):
        if text == "":
            continue
        kind = "int" if name == "ts" else _FIELDS[name].kind
        try:
            record[name] = int(text) if kind == "int" else float(text) if kind == "float" else text
        except ValueError as exc:
            raise FrameError("bad_value", consumed, f"{name}={text!r}") from exc
    return record, consumed


def encode(record: dict[str, Any], spec: RapidTestSpec) -> bytes:
    """The line an analyzer sends for ``record``."""
    values = []
    for name in spec.fields:
        value = record.get(name)
        text = "" if value is None else str(value)
        if any(c in text for c in ",*$\r\n"):
            raise ValueError(f"{name} may not contain , * $ or line ends: {text!r}")
        values.append(text)
    body = ",".join([spec.prefix, *values]).encode("utf-8")
    return b"$" + body + f"*{xor_checksum(body):02X}\r\n".encode("ascii")


def verdict(delta_a0: float, delta_at: float, spec: RapidTestSpec) -> tuple[float, str]:
    """Inhibition % and result per GB/T 5009.199-2003 and the profile's thresholds.

    ``invalid`` when the control's absorbance change is below ``min_control_delta_a0`` (the enzyme was not
    active enough for the test to mean anything).
    """
    if delta_a0 < spec.min_control_delta_a0:
        return 0.0, "invalid"
    inhibition = round((delta_a0 - delta_at) / delta_a0 * 100.0, 2)
    if inhibition >= spec.positive_pct:
        return inhibition, "positive"
    if inhibition >= spec.suspect_pct:
        return inhibition, "suspect"
    return inhibition, "negative"
