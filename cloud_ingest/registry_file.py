"""Device keys, tags and scale facts as one document: the devices file (for an ingest without a registry),
and the shape the registry's ingest view (:mod:`device_registry.ingest_view`) produces.

Format (``devices.json``)::

    {"devices": {"scale-0001": {"key": "<hex>", "profile": "zj-pcs-30",
                                 "tags": {"district": "futian", "market": "futian-no1", "stall": "A-017"},
                                 "scale": {"coefficient": 20000.0, "e_mg": 5000, "accuracy_class": "III",
                                           "zero_counts": 120000, "calibration_events": 3,
                                           "configuration_events": 7}}},
     "commodity_median": {"1001": 3100}}

``scale`` holds what was read at the device's last verification; devices without it get only the
anti-cheat rules that need no registry facts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from anti_cheat import ScaleFact, ScaleFacts
from device_profiles.envelope import TAG_VALUE_RE
from device_profiles.influx_schema import ENRICHMENT_TAGS

from .errors import IngestError
from .sensor_alerts import Limit


def scale_fact(device: Mapping[str, Any]) -> ScaleFact:
    """A device entry's scale facts (raises pydantic's ValidationError naming the field); the market comes
    from the device's place when the facts do not name it."""
    fact = dict(device["scale"])
    if fact.get("market") is None and device.get("tags", {}).get("market"):
        fact["market"] = str(device["tags"]["market"])
    return ScaleFact(**fact)


class DeviceFile:
    """Keys and facts read from a devices file."""

    def __init__(
        self,
        devices: Mapping[str, Mapping[str, Any]],
        commodity_median: Mapping[str, int] | None = None,
        *,
        with_facts: bool = True,
    ) -> None:
        """``with_facts=False`` skips building :attr:`facts` (a reload that updates an engine's facts in place)."""
        self._keys = {d: bytes.fromhex(v["key"]) for d, v in devices.items() if v.get("key")}
        self._revoked = {d for d, v in devices.items() if v.get("revoked")}
        self._profiles = {d: str(v["profile"]) for d, v in devices.items() if v.get("profile")}
        self._crops = {d: str(v["crop"]) for d, v in devices.items() if "crop" in v}
        self._limits: dict[str, dict[str, dict[str, Any]]] = {
            d: v["limits"] for d, v in devices.items() if "limits" in v
        }
        self._tags = {
            d: {
                k: str(t)
                for k, t in v.get("tags", {}).items()
                if k in ENRICHMENT_TAGS and TAG_VALUE_RE.fullmatch(str(t))
            }
            for d, v in devices.items()
        }
        scales = {d: scale_fact(v) for d, v in devices.items() if "scale" in v} if with_facts else {}
        self.facts = ScaleFacts.from_mapping(scales, commodity_median)

    @classmethod
    def load(cls, path: str | Path) -> DeviceFile:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(doc["devices"], doc.get("commodity_median"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IngestError(f"{path}: not a usable devices file: {exc}") from exc

    def key_for(self, device: str) -> bytes | None:
        return self._keys.get(device)

    def is_revoked(self, device: str) -> bool:
        return device in self._revoked

    def is_known(self, device: str) -> bool:
        return device in self._keys

    def profile_for(self, device: str) -> str | None:
        """The device's profile id, which says what records it may send (None: the file names none)."""
        return self._profiles.get(device)

    def alert_limits(self) -> dict[str, dict[str, Limit]]:
        """Per-base alert limits (``"limits": {"soil.moisture_pct": {"low": 20, "high": 45, …}}``)."""
        return {d: {ch: Limit(**spec) for ch, spec in lim.items()} for d, lim in self._limits.items()}

    def crops(self) -> dict[str, str]:
        """The crop grown at each base that names one (``"crop": "tomato"``)."""
        return self._crops

    def partition_key(self, device: str) -> str:
        """What ingest partitions are cut by: the device's market when the registry knows it."""
        return self._tags.get(device, {}).get("market") or device

    def tags_for(self, device: str) -> dict[str, str]:
        """Where the device is installed (district, market, stall, base, vehicle), for InfluxDB tags."""
        return self._tags.get(device, {})


def write_device_file(
    path: str | Path, devices: Mapping[str, Mapping[str, Any]], commodity_median: Mapping[str, int] | None = None
) -> None:
    """Write a devices file (used by the demo and tests to provision simulated devices)."""
    doc = {"devices": devices, "commodity_median": dict(commodity_median or {})}
    Path(path).write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
