"""Scale facts of a whole fleet as columns, for :meth:`anti_cheat.ScaleFacts.from_columns`: one row per
device (rows without facts marked), built from plain mappings or registry rows without one pydantic
object per device, and validated vectorised with the bounds of :class:`device_profiles.metrology.ScaleFact` (read from
its fields, so the two cannot drift apart). An error names the device and the field, as ScaleFact's do.

An entry that is not plain (a string where a number belongs, an unknown field, a missing one) goes
through ScaleFact itself, so its coercions and its error messages are exactly the model's.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import annotated_types as at
import numpy as np
import numpy.typing as npt

from device_profiles.metrology import CLASS_CODES, ScaleFact

I64 = npt.NDArray[np.int64]
NONE = np.iinfo(np.int64).min  # an optional integer the entry leaves out
INTS = (
    "e_mg",
    "d_mg",
    "max_g",
    "zero_counts",
    "calibration_events",
    "configuration_events",
    "verification_due_ms",
    "verified_ms",
)
_FIELDS = frozenset(ScaleFact.model_fields)
_OPTIONAL = frozenset(n for n, f in ScaleFact.model_fields.items() if not f.is_required() and f.default is None)
_DEFAULTS = {n: f.default for n, f in ScaleFact.model_fields.items() if not f.is_required() and f.default is not None}
_CLASS_NAMES = list(CLASS_CODES)


class FactError(ValueError):
    """A device's scale facts break a bound of :class:`ScaleFact` (the message names device and field)."""


def _bounds(name: str) -> tuple[float, bool, float]:
    """(lower bound, whether it is strict, upper bound) of a numeric ScaleFact field (each has both)."""
    meta = ScaleFact.model_fields[name].metadata
    ge = [float(m.ge) for m in meta if isinstance(m, at.Ge)]  # type: ignore[arg-type]
    gt = [float(m.gt) for m in meta if isinstance(m, at.Gt)]  # type: ignore[arg-type]
    (hi,) = [float(m.le) for m in meta if isinstance(m, at.Le)]  # type: ignore[arg-type]
    (lo,) = ge or gt
    return lo, bool(gt), hi


def _max_length(name: str) -> int:
    return next(m.max_length for m in ScaleFact.model_fields[name].metadata if isinstance(m, at.MaxLen))


@dataclass
class FactColumns:
    """Per-device facts (row ``i`` is device ``i`` of the index they go with); absent optionals are NONE."""

    has: npt.NDArray[np.bool_]
    coefficient: npt.NDArray[np.float64]
    ints: dict[str, I64]  # the INTS fields
    class_code: npt.NDArray[np.int8]
    software: npt.NDArray[np.int32]  # code in ``software_ids`` (0: none)
    market: npt.NDArray[np.int32]  # code in ``markets`` (0: none)
    software_ids: list[str]
    markets: list[str]

    def __len__(self) -> int:
        return len(self.has)

    def take(self, order: npt.NDArray[np.intp]) -> FactColumns:
        """The rows in ``order`` (e.g. sorted by device id)."""
        return FactColumns(
            self.has[order],
            self.coefficient[order],
            {n: c[order] for n, c in self.ints.items()},
            self.class_code[order],
            self.software[order],
            self.market[order],
            self.software_ids,
            self.markets,
        )

    def validate(self, name_of: Callable[[int], str]) -> None:
        """Raise :class:`FactError` naming the first device whose facts break a bound."""
        has = self.has
        bad = has & ~np.isfinite(self.coefficient)
        self._raise_first(bad, name_of, "coefficient", self.coefficient, "must be a finite number")
        checks: list[tuple[str, npt.NDArray[Any]]] = [("coefficient", self.coefficient), *self.ints.items()]
        for name, col in checks:
            lo, strict, hi = _bounds(name)
            given = has if col.dtype.kind == "f" else has & (col != NONE)
            low = col <= lo if strict else col < lo
            self._raise_first(given & low, name_of, name, col, f"must be {'>' if strict else '≥'} {lo:g}")
            self._raise_first(given & (col > hi), name_of, name, col, f"must be ≤ {hi:g}")
        for name, codes, table in (("approved_software_id", self.software, self.software_ids),
                                   ("market", self.market, self.markets)):  # fmt: skip
            limit = _max_length(name)
            long = np.array([len(s) > limit for s in table], dtype=np.bool_)
            self._raise_first(has & long[codes], name_of, name, codes, f"at most {limit} characters", table)

    @staticmethod
    def _raise_first(
        bad: npt.NDArray[np.bool_],
        name_of: Callable[[int], str],
        name: str,
        col: npt.NDArray[Any],
        why: str,
        table: list[str] | None = None,
    ) -> None:
        if bad.any():
            row = int(np.argmax(bad))
            value = table[int(col[row])] if table is not None else col[row].item()
            raise FactError(f"{name_of(row)}: scale.{name}: {why} (got {value!r})")

    def fact(self, row: int) -> ScaleFact:
        """Row ``row`` as a ScaleFact (for the few devices a registry reload changes)."""
        ints = {n: int(c[row]) for n, c in self.ints.items() if c[row] != NONE}
        return ScaleFact(
            coefficient=float(self.coefficient[row]),
            accuracy_class=_CLASS_NAMES[int(self.class_code[row])],
            approved_software_id=self.software_ids[int(self.software[row])] or None,
            market=self.markets[int(self.market[row])] or None,
            **ints,
        )


class FactRows:
    """Collects facts device by device into compact arrays (no object per device); :meth:`build` gives
    the columns. Rows are added in the order of the devices they belong to."""

    def __init__(self) -> None:
        self._has = bytearray()
        self._coefficient = array("d")
        self._ints = {n: array("q") for n in INTS}
        self._class = array("b")
        self._software = array("i")
        self._market = array("i")
        self._software_codes: dict[str, int] = {"": 0}
        self._market_codes: dict[str, int] = {"": 0}

    def __len__(self) -> int:
        return len(self._has)

    def skip(self) -> None:
        """A device without facts."""
        self._has.append(0)
        self._coefficient.append(1.0)
        for col in self._ints.values():
            col.append(NONE)
        self._class.append(CLASS_CODES["III"])
        self._software.append(0)
        self._market.append(0)

    def add(self, fact: Mapping[str, Any], market: str | None = None) -> None:
        """A device's facts as a mapping of ScaleFact fields (``market`` when the mapping names none);
        raises pydantic's ValidationError for an entry ScaleFact refuses (bounds are checked later)."""
        if not (_FIELDS.issuperset(fact) and self._append(fact, market)):
            self._append(ScaleFact(**fact).model_dump(), market)  # the model's coercions and errors
            # (a model dump is always plain: it is appended)

    def _append(self, fact: Mapping[str, Any], market: str | None) -> bool:
        coefficient = fact.get("coefficient")
        cls = fact.get("accuracy_class", "III")
        software, mkt = fact.get("approved_software_id"), fact.get("market")
        if not isinstance(coefficient, float | int) or type(coefficient) is bool or cls not in CLASS_CODES:
            return False
        if not (software is None or type(software) is str) or not (mkt is None or type(mkt) is str):
            return False
        values = []
        for name in INTS:
            v = fact.get(name, _DEFAULTS.get(name))
            if type(v) is not int and not (v is None and name in _OPTIONAL):
                return False
            values.append(NONE if v is None else v)
        if any(not -(2**63) <= v < 2**63 for v in values):
            return False  # ScaleFact names the bound
        self._has.append(1)
        self._coefficient.append(float(coefficient))
        for col, v in zip(self._ints.values(), values, strict=True):
            col.append(v)
        self._class.append(CLASS_CODES[cls])
        self._software.append(self._software_codes.setdefault(software or "", len(self._software_codes)))
        market = mkt or market
        self._market.append(self._market_codes.setdefault(market or "", len(self._market_codes)))
        return True

    def build(self) -> FactColumns:
        return FactColumns(
            np.frombuffer(self._has, dtype=np.bool_).copy(),
            np.frombuffer(self._coefficient, dtype=np.float64).copy(),
            {n: np.frombuffer(c, dtype=np.int64).copy() for n, c in self._ints.items()},
            np.frombuffer(self._class, dtype=np.int8).copy(),
            np.frombuffer(self._software, dtype=np.int32).copy(),
            np.frombuffer(self._market, dtype=np.int32).copy(),
            list(self._software_codes),
            list(self._market_codes),
        )
