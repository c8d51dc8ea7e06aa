"""The dict-based devices table the dense one replaced (cloud_ingest/registry_file.py before it), kept as
the reference the dense table must answer like, with a mixed fleet (MIXED) to ask both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from anti_cheat import ScaleFacts
from cloud_ingest.device_table import DeviceTable
from cloud_ingest.registry_file import scale_fact
from device_profiles.envelope import TAG_VALUE_RE
from device_profiles.influx_schema import ENRICHMENT_TAGS
from device_profiles.sensor_limits import Limit


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


FACT = {
    "coefficient": 20_000.0,
    "e_mg": 5000,
    "accuracy_class": "III",
    "zero_counts": 120_000,
    "calibration_events": 3,
    "configuration_events": 7,
}


MIXED: dict[str, dict[str, Any]] = {
    "scale-0003": {
        "key": "ab" * 32,
        "profile": "zj-pcs-30",
        "tags": {"district": "futian", "market": "futian-no1", "stall": "A-017"},
        "scale": FACT,
    },
    "scale-0001": {  # facts naming their own market, a software id, a time, no zero, d ≠ e
        "key": "cd" * 32,
        "profile": "zj-pcs-30",
        "tags": {"district": "futian", "market": "futian-no1", "stall": "A-018", "shelf": "7"},
        "scale": {
            **FACT,
            "zero_counts": None,
            "d_mg": 1000,
            "max_g": 15_000,
            "accuracy_class": "II",
            "approved_software_id": "PCS-1.2",
            "market": "luohu-no3",
            "verified_ms": 1_764_000_000_000,
            "verification_due_ms": 1_800_000_000_000,
        },
    },
    "scale-0002": {"key": "ef" * 32, "revoked": True, "tags": {"market": "futian-no1", "stall": "B 1"}},  # bad tag
    "fair-0001": {"key": "01" * 16, "profile": "zj-pcs-30", "tags": {"market": "futian-no1"}, "scale": FACT},
    "base-gw-1": {
        "key": "02" * 32,
        "profile": "soil-rs485",
        "tags": {"district": "nanshan", "base": "base-x"},
        "crop": "tomato",
        "limits": {"soil.moisture_pct": {"low": 25, "high": 40}},
    },
    "veh-1": {"key": "03" * 40, "profile": "rapid-test-vehicle", "tags": {"district": "a,b", "vehicle": "v1"}},
    "registered-only": {"profile": "zj-pcs-30", "tags": {"market": "nanshan-no2", "stall": "C-1"}},
    "秤-7": {"key": "04" * 32, "scale": {**FACT, "e_mg": 2000}},  # no tags, no profile
}


MEDIANS = {"1001": 3100, "1002": 980}
ASKED = [*MIXED, "unknown-9", ""]


def same_answers(dense: DeviceTable, ref: DictDevices) -> None:
    for d in ASKED:
        assert dense.key_for(d) == ref.key_for(d), d
        assert dense.is_revoked(d) == ref.is_revoked(d), d
        assert dense.is_known(d) == ref.is_known(d), d
        assert dense.profile_for(d) == ref.profile_for(d), d
        assert dense.tags_for(d) == ref.tags_for(d), d
        assert dense.partition_key(d) == ref.partition_key(d), d
        assert dense.facts.current(d) == ref.facts.current(d), d
    assert dense.alert_limits() == ref.alert_limits()
    assert dense.crops() == ref.crops()
    assert dense.facts.commodity_median == ref.facts.commodity_median
    names = [d for d in MIXED if "scale" in d.lower() or d.startswith(("fair", "秤"))]
    scale = np.array([dense.facts.index_of(d) for d in names])
    ref_scale = np.array([ref.facts.index_of(d) for d in names])
    ts = np.full(len(names), 1_770_000_000_000)
    got = dense.facts.take_packed(dense.facts.in_force(scale, ts))
    np.testing.assert_array_equal(got, ref.facts.take_packed(ref.facts.in_force(ref_scale, ts)))
