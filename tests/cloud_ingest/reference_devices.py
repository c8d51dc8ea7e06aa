"""The dict-based devices table the dense one replaced (cloud_ingest/registry_file.py before it), kept as
the reference the dense table must answer like."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from anti_cheat import ScaleFacts
from cloud_ingest.registry_file import scale_fact
from cloud_ingest.sensor_alerts import Limit
from device_profiles.envelope import TAG_VALUE_RE
from device_profiles.influx_schema import ENRICHMENT_TAGS


class DictDevices:
    """The devices file as it was read before the dense table: dicts per device, a ScaleFact each."""

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
