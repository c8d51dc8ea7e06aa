"""What the registry knows about each scale, in arrays indexed by a dense scale index.

A scale's facts are what was read at its last verification (检定): class, Max, e, d, the calibrated
coefficient and zero, the sealed event counters, the approved software id, the date the next verification
is due. Scales the registry does not know still get an index; rules that need facts skip them.
Commodity medians (fen per kg, per PLU) come from the market's published prices or yesterday's sales.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .mpe import CLASS_CODES

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, kw_only=True, slots=True)
class ScaleFact:
    """One scale's registry entry."""

    coefficient: float
    e_mg: int
    d_mg: int | None = None
    max_g: int = 30_000
    accuracy_class: str = "III"
    zero_counts: int | None = None
    calibration_events: int = 0
    configuration_events: int = 0
    verification_due_ms: int | None = None
    approved_software_id: str | None = None


class ScaleFacts:
    """Per-scale facts as growable numpy arrays."""

    _INT_FIELDS = (
        "e_mg",
        "d_mg",
        "max_mg",
        "class_code",
        "zero_counts",
        "calibration_events",
        "configuration_events",
        "verification_due_ms",
    )

    def __init__(self) -> None:
        self.devices: list[str] = []
        self.index: dict[str, int] = {}
        self.approved_software: list[str | None] = []
        self._medians: dict[str, int] = {}
        self.plu_codes: dict[str, int] = {"": 0}
        self.median_by_code: I64 = np.zeros(1, dtype=np.int64)
        self._n = 0
        cap = 16
        self.known = np.zeros(cap, dtype=np.bool_)
        self.has_zero = np.zeros(cap, dtype=np.bool_)
        self.coefficient = np.ones(cap, dtype=np.float64)
        self.e_mg: I64 = np.zeros(cap, dtype=np.int64)
        self.d_mg: I64 = np.zeros(cap, dtype=np.int64)
        self.max_mg: I64 = np.zeros(cap, dtype=np.int64)
        self.class_code: I64 = np.zeros(cap, dtype=np.int64)
        self.zero_counts: I64 = np.zeros(cap, dtype=np.int64)
        self.calibration_events: I64 = np.zeros(cap, dtype=np.int64)
        self.configuration_events: I64 = np.zeros(cap, dtype=np.int64)
        self.verification_due_ms: I64 = np.zeros(cap, dtype=np.int64)

    def __len__(self) -> int:
        return self._n

    @property
    def commodity_median(self) -> dict[str, int]:
        """Median unit price (fen/kg) per commodity code, from the market's published prices."""
        return self._medians

    @commodity_median.setter
    def commodity_median(self, medians: dict[str, int]) -> None:
        self._medians = dict(medians)
        for plu in self._medians:
            self.plu_code(plu)
        for plu, code in self.plu_codes.items():
            self.median_by_code[code] = self._medians.get(plu, 0)

    def plu_code(self, plu: str) -> int:
        """A dense code for a commodity, so rules look medians up in an array."""
        code = self.plu_codes.get(plu)
        if code is None:
            code = self.plu_codes[plu] = len(self.plu_codes)
            if code == len(self.median_by_code):
                self.median_by_code = np.r_[self.median_by_code, np.zeros(len(self.median_by_code), np.int64)]
            self.median_by_code[code] = self._medians.get(plu, 0)
        return code

    def _grow(self) -> None:
        cap = len(self.known) * 2
        for name in ("known", "has_zero", "coefficient", *self._INT_FIELDS):
            old = getattr(self, name)
            new = np.zeros(cap, dtype=old.dtype) if name != "coefficient" else np.ones(cap, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    @classmethod
    def from_mapping(
        cls, scales: Mapping[str, Mapping[str, Any]], commodity_median: Mapping[str, int] | None = None
    ) -> ScaleFacts:
        """Facts from plain data: ``{device: {ScaleFact fields}}`` and ``{plu: fen per kg}``."""
        facts = cls()
        for device, fact in scales.items():
            facts.set(device, ScaleFact(**fact))
        facts.commodity_median = {str(k): int(v) for k, v in (commodity_median or {}).items()}
        return facts

    def index_of(self, device: str) -> int:
        """The dense index of ``device``, adding it (without facts) if new."""
        i = self.index.get(device)
        if i is None:
            if self._n == len(self.known):
                self._grow()
            i = self.index[device] = self._n
            self._n += 1
            self.devices.append(device)
            self.approved_software.append(None)
            self.e_mg[i] = self.d_mg[i] = 1
            self.class_code[i] = CLASS_CODES["III"]
            self.verification_due_ms[i] = np.iinfo(np.int64).max
        return i

    def set(self, device: str, fact: ScaleFact) -> None:
        i = self.index_of(device)
        self.known[i] = True
        self.coefficient[i] = fact.coefficient
        self.e_mg[i] = fact.e_mg
        self.d_mg[i] = fact.d_mg or fact.e_mg
        self.max_mg[i] = fact.max_g * 1000
        self.class_code[i] = CLASS_CODES[fact.accuracy_class]
        self.has_zero[i] = fact.zero_counts is not None
        self.zero_counts[i] = fact.zero_counts or 0
        self.calibration_events[i] = fact.calibration_events
        self.configuration_events[i] = fact.configuration_events
        self.verification_due_ms[i] = fact.verification_due_ms or np.iinfo(np.int64).max
        self.approved_software[i] = fact.approved_software_id

    def take(self, name: str, rows: I64) -> npt.NDArray[np.generic]:
        """Column ``name`` gathered for the scale index of each row."""
        values: npt.NDArray[np.generic] = getattr(self, name)[rows]
        return values
