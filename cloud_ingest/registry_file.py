"""Device keys, tags and scale facts as one document: the devices file (for an ingest without a registry),
and the shape the registry's ingest view (:mod:`device_registry.ingest_view`) produces.

Format (``devices.json``)::

    {"devices": {"scale-0001": {"key": "<hex>", "profile": "zj-pcs-30",
                                 "tags": {"district": "futian", "market": "futian-no1", "stall": "A-017"},
                                 "scale": {"coefficient": 20000.0, "e_mg": 5000, "accuracy_class": "III",
                                           "zero_counts": 120000, "calibration_events": 3,
                                           "configuration_events": 7}}},
     "commodity_median": {"1001": 3100},
     "places": [{"kind": "market", "id": "futian-no1", "name": "Futian No. 1", "district": "futian",
                 "lat": 22.5431, "lon": 114.0579}]}

A device entry may say ``"unverified": "none"`` (a scale with no verification on record) or the UTC ms its
latest verification failed (the registry's view writes both); ``places`` (optional) are the registry's
places for the ingest's ``place`` points (``kind``: district, market, stall or base; ``id``: a stall's
code, with its ``market``; ``name``, ``district``, WGS-84 ``lat``/``lon`` or null, a stall's ``vendor`` and
``licence``).

``scale`` holds what was read at the device's last verification; devices without it get only the
anti-cheat rules that need no registry facts.

The file is read as a stream, one device entry at a time, into a :class:`DeviceTable` (no document of
the whole file in memory: a million devices are 350 MB of JSON); :func:`file_revision` names its
content, for the ingest's snapshot of the table (:mod:`cloud_ingest.device_snapshot`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from device_profiles.metrology import ScaleFact

from .device_table import DeviceRows, DeviceTable
from .errors import IngestError

CHUNK = 1 << 20  # characters read at a time
HEAD = 1 << 20  # bytes of each end of a devices file in its revision
_WS = " \t\r\n"


def scale_fact(device: Mapping[str, Any]) -> ScaleFact:
    """A device entry's scale facts (raises pydantic's ValidationError naming the field); the market comes
    from the device's place when the facts do not name it."""
    fact = dict(device["scale"])
    if fact.get("market") is None and device.get("tags", {}).get("market"):
        fact["market"] = str(device["tags"]["market"])
    return ScaleFact(**fact)


class DeviceFile(DeviceTable):
    """Keys and facts of a devices file (or of a mapping in its format, for tests and small fleets)."""

    def __init__(
        self,
        devices: Mapping[str, Mapping[str, Any]],
        commodity_median: Mapping[str, int] | None = None,
        *,
        with_facts: bool = True,
        places: list[dict[str, Any]] | None = None,
    ) -> None:
        """``with_facts=False`` skips building :attr:`facts` (a reload that updates an engine's facts in place)."""
        rows = DeviceRows()
        for device, entry in devices.items():
            rows.add(device, entry)
        rows.places = list(places or [])
        super().__init__(**rows.parts(commodity_median, with_facts=with_facts))

    @classmethod
    def load(cls, path: str | Path) -> DeviceTable:
        """The devices of the file at ``path``, read entry by entry."""
        try:
            rows, medians = DeviceRows(), {}
            with Path(path).open(encoding="utf-8") as f:
                for name, value in _entries(f):
                    if name == "commodity_median":
                        medians = {str(k): int(v) for k, v in value.items()}
                    elif name == "places":
                        rows.places = [dict(p) for p in value]
                    else:
                        rows.add(name, value)
            return rows.build(medians)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IngestError(f"{path}: not a usable devices file: {exc}") from exc


def file_revision(path: str | Path) -> str:
    """Names a devices file's content without reading all of it (a start must not read 350 MB, perhaps
    from a cold disk, to learn that nothing changed): its size, inode, modification and change times (the
    change time moves with every write and cannot be set back by a copy tool), and a SHA-256 of its first
    and last MiB."""
    with Path(path).open("rb") as f:
        st = os.fstat(f.fileno())
        digest = hashlib.sha256(f.read(HEAD))
        if st.st_size > HEAD:
            f.seek(max(HEAD, st.st_size - HEAD))
            digest.update(f.read(HEAD))
    return f"file:{st.st_size}:{st.st_ino}:{st.st_mtime_ns}:{st.st_ctime_ns}:{digest.hexdigest()[:32]}"


class _Stream:
    """A JSON text read in chunks; :meth:`value` decodes the next value without the whole text."""

    def __init__(self, f: TextIO) -> None:
        self._f, self.buf, self.pos, self._eof = f, "", 0, False
        self._decoder = json.JSONDecoder()

    def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = self._f.read(CHUNK)
        self._eof = not chunk
        self.buf, self.pos = self.buf[self.pos :] + chunk, 0
        return bool(chunk)

    def skip_ws(self) -> str:
        """The next character that is not white space ("" at the end)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def expect(self, chars: str) -> str:
        c = self.skip_ws()
        if not c or c not in chars:
            raise ValueError(f"expected one of {chars!r} at character {self.pos} of a chunk, found {c!r}")
        self.pos += 1
        return c

    def value(self) -> Any:
        self.skip_ws()
        while True:
            if len(self.buf) - self.pos < CHUNK // 4:  # a number cut at the chunk's end would decode short
                self._fill()
            try:
                value, end = self._decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                if not self._fill():
                    raise
                continue
            self.pos = end
            return value


def _entries(f: TextIO) -> Iterator[tuple[str, Any]]:
    """(device id, entry) for each device of the file, and ("commodity_median", prices) and ("places", list)
    where the file has them."""
    s = _Stream(f)
    s.expect("{")
    if s.skip_ws() == "}":
        raise KeyError("devices")
    seen_devices = False
    while True:
        key = s.value()
        s.expect(":")
        if key == "devices":
            seen_devices = True
            s.expect("{")
            if s.skip_ws() == "}":
                s.pos += 1
            else:
                while True:
                    device = s.value()
                    s.expect(":")
                    entry = s.value()
                    if not isinstance(device, str) or not isinstance(entry, dict):
                        raise TypeError(f"device {device!r}: an entry must be an object")
                    yield device, entry
                    if s.expect(",}") == "}":
                        break
        elif key in ("commodity_median", "places"):
            yield key, s.value()
        else:
            s.value()
        if s.expect(",}") == "}":
            break
    if s.skip_ws():
        raise ValueError("extra data after the devices document")
    if not seen_devices:
        raise KeyError("devices")


def write_device_file(
    path: str | Path,
    devices: Mapping[str, Mapping[str, Any]],
    commodity_median: Mapping[str, int] | None = None,
    places: list[dict[str, Any]] | None = None,
) -> None:
    """Write a devices file (used by the demo and tests to provision simulated devices)."""
    doc: dict[str, Any] = {"devices": devices, "commodity_median": dict(commodity_median or {})}
    if places:
        doc["places"] = places
    Path(path).write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
