"""How records become InfluxDB points (line protocol). Pure functions, no I/O.

- measurement: the record type (``sale``, ``scale_state``, ``soil``, …);
- tags: ``device``, the enrichment tags the ingest adds from the registry (district, market, stall,
  base, vehicle), and the record fields marked ``tag`` in :mod:`device_profiles.records`;
- fields: every other record field, plus ``seq`` (integer) so a point names its record;
- timestamp, nanosecond precision: ``ts × 1 000 000 + seq mod 1 000 000``.

Why that timestamp: InfluxDB identifies a point by (measurement, tag set, timestamp). A record's identity
is (device, seq), and the record's ``ts`` never changes between retries, so a redelivered record lands on
the same point and overwrites it with the same values (exactly-once in effect). Two distinct records of
one device get distinct timestamps even with equal ``ts``, unless their seqs differ by a multiple of a
million *and* their ``ts`` are equal to the millisecond, which would take a device with a frozen clock a
million records. Keeping seq out of the tags keeps series cardinality at one per device and type.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .records import COMMON_TAGS, RECORD_TYPES, RecordType

SEQ_SLOTS = 1_000_000
#: Registry tags a point may carry besides ``device``: where the device is. Kept to these few, each of
#: bounded cardinality (a city has thousands of stalls, not millions), so series stay manageable.
ENRICHMENT_TAGS = ("district", "market", "stall", "base", "vehicle")
# a backslash ends up before the space or comma that follows a tag value, and InfluxDB 1.x then reads the two
# as one escaped character ("invalid tag format", the whole write refused): a tag value's backslash is written
# as the fullwidth reverse solidus U+FF3C. Devices cannot send one (their tag fields refuse it); the registry's
# names and vendors can.
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": "", "\r": "", "\\": "\uff3c"})
_STR_ESCAPES = str.maketrans({'"': r"\"", "\\": "\\\\", "\n": r"\n"})


def point_time_ns(ts_ms: int, seq: int) -> int:
    """The point timestamp (ns) of the record with identity seq taken at ts_ms."""
    return ts_ms * 1_000_000 + seq % SEQ_SLOTS


def escape_tag(value: str) -> str:
    """Escape a tag key or value (commas, equals signs and spaces)."""
    return value.translate(_TAG_ESCAPES)


def format_field(value: Any) -> str:
    """A line-protocol field value: integers get ``i``, strings are quoted, booleans are t/f."""
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return '"' + str(value).translate(_STR_ESCAPES) + '"'


@dataclass(frozen=True, slots=True)
class _Layout:
    """A record type's line, laid out once: which fields are tags, and each field's ``name=`` prefix."""

    measurement: str
    tags: tuple[tuple[str, str], ...]  # (field name, escaped key)
    fields: tuple[tuple[str, str, bool], ...]  # (field name, "name=", a float field)


def _layout(rtype: RecordType) -> _Layout:
    tags = tuple((n, escape_tag(n)) for n, spec in rtype.fields.items() if spec.tag)
    fields = tuple((n, f"{n}=", spec.kind == "float") for n, spec in rtype.fields.items() if not spec.tag)
    return _Layout(rtype.measurement, tags, fields)


_LAYOUTS = {name: _layout(rtype) for name, rtype in RECORD_TYPES.items()}


def _where(device: str, extra_tags: Mapping[str, str]) -> list[tuple[str, str]]:
    """The tags every line of a device carries, as (key, ``key=value`` escaped) sorted by key; empty values
    left out."""
    tags = {"device": device, **extra_tags}
    return sorted((k, f"{escape_tag(k)}={escape_tag(v)}") for k, v in tags.items() if v)


def _line(
    device: str, seq: int, record: Mapping[str, Any], where: list[tuple[str, str]], keys: frozenset[str] | set[str]
) -> str:
    layout = _LAYOUTS[record["type"]]
    tags = where
    if layout.tags:
        tags = list(where)
        for name, key in layout.tags:
            value = record.get(name)
            if value is None or value == "":
                continue
            text = str(value)
            if name in keys:  # a record tag named like a place tag wins over it, as in a dict
                tags = [t for t in tags if t[0] != name]
            if text:
                tags.append((name, f"{key}={escape_tag(text)}"))
        tags.sort()  # by key: keys are distinct
    fields = [f"seq={seq}i"]
    for name, prefix, is_float in layout.fields:
        value = record.get(name)
        if value is None:
            continue
        if is_float:
            # a float field keeps its type when a device sends 20 instead of 20.0 (InfluxDB refuses type changes)
            fields.append(prefix + repr(float(value)))
        elif type(value) is int:
            fields.append(f"{prefix}{value}i")
        else:
            fields.append(prefix + format_field(value))
    tag_text = ",".join(t[1] for t in tags)
    return f"{layout.measurement},{tag_text} {','.join(fields)} {record['ts'] * 1_000_000 + seq % SEQ_SLOTS}"


def record_line(device: str, seq: int, record: Mapping[str, Any], extra_tags: Mapping[str, str] = {}) -> str:
    """One line of line protocol for a validated record."""
    return _line(device, seq, record, _where(device, extra_tags), {"device", *extra_tags})


@functools.lru_cache(maxsize=65_536)
def _device_tags(device: str, extra: tuple[tuple[str, str], ...]) -> tuple[list[tuple[str, str]], frozenset[str]]:
    """A device's escaped, sorted tags and their keys, remembered for the devices that send now (escaping
    and sorting them again for each message was 40 % of the line protocol's cost at one record per message)."""
    return _where(device, dict(extra)), frozenset(("device", *(k for k, _ in extra)))


def envelope_lines(
    device: str, first_seq: int, records: Iterable[Mapping[str, Any]], extra_tags: Mapping[str, str] = {}
) -> list[str]:
    """Lines for all records of one envelope (the device's tags escaped once for all of them)."""
    where, keys = _device_tags(device, tuple(extra_tags.items()))
    return [_line(device, first_seq + i, rec, where, keys) for i, rec in enumerate(records)]


def tag_keys(record_type: str) -> tuple[str, ...]:
    """The tag keys a point of ``record_type`` may carry (registry enrichment tags excluded)."""
    rtype = RECORD_TYPES[record_type]
    return COMMON_TAGS + tuple(n for n, s in rtype.fields.items() if s.tag)
