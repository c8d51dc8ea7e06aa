"""The metrology of non-automatic weighing instruments shared by the registry and the anti-cheat engine.

:data:`MPE_TABLE` holds the maximum permissible errors (OIML R76-1 table 3, JJG 539): at initial
verification, in units of e, by load band; the in-service MPE is twice that. Bands are (upper load limit
in e) per accuracy class; the last band runs to Max. :class:`ScaleFact` is what a verification (检定)
establishes about one scale. The registry judges a verification and exports its facts with these; the
engine judges every sale with them: both read this module, so neither depends on the other. The facts
behind each number are in docs/metrology.md.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

# class: (band upper limits in e, MPE in e for each band), initial verification
MPE_TABLE: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "I": ((50_000, 200_000), (0.5, 1.0, 1.5)),
    "II": ((5_000, 20_000), (0.5, 1.0, 1.5)),
    "III": ((500, 2_000), (0.5, 1.0, 1.5)),
    "IIII": ((50, 200), (0.5, 1.0, 1.5)),
}
IN_SERVICE_FACTOR = 2.0
CLASS_CODES = {name: i for i, name in enumerate(MPE_TABLE)}
#: a verification known without its time (epoch ms): in force from the start of every record
FROM_START = int(np.iinfo(np.int64).min) + 1
# the same table as arrays indexed by class code, for vectorised look-ups
_LIMITS = np.array([limits for limits, _ in MPE_TABLE.values()], dtype=np.int64)  # (classes, 2)
_MPES = np.array([mpes for _, mpes in MPE_TABLE.values()], dtype=np.float64)  # (classes, 3)


def mpe_mg(
    load_mg: npt.NDArray[np.int64],
    e_mg: npt.NDArray[np.int64],
    class_code: npt.NDArray[np.int64],
    *,
    in_service: bool = True,
) -> npt.NDArray[np.float64]:
    """MPE in mg for each load, scale interval and class code (index into :data:`CLASS_CODES`).

    A load exactly on a band limit belongs to the lower band (0 ≤ m ≤ 500 e is ±0.5 e for class III).
    Compared in integers (load vs limit × e), so band edges are exact.
    """
    load = np.abs(load_mg)
    if len(class_code) and (class_code == class_code[0]).all():  # one class (the usual case): scalars
        c = int(class_code[0])
        band = (load > _LIMITS[c, 0] * e_mg).astype(np.intp) + (load > _LIMITS[c, 1] * e_mg)
        result: npt.NDArray[np.float64] = _MPES[c][band] * e_mg
    else:
        limits = _LIMITS[class_code]
        band = (load > limits[:, 0] * e_mg).astype(np.intp) + (load > limits[:, 1] * e_mg)
        result = _MPES[class_code, band] * e_mg
    return result * IN_SERVICE_FACTOR if in_service else result


class ScaleFact(BaseModel):
    """One verification of one scale (all masses in mg or g as named; the coefficient in ADC counts per kg
    of *gross* load on the load receptor)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    coefficient: float = Field(
        gt=0, le=1e9, allow_inf_nan=False, description="calibrated ADC counts per kg of gross load"
    )
    e_mg: int = Field(ge=1, le=10**7, description="verification scale interval e")
    d_mg: int | None = Field(default=None, ge=1, le=10**7, description="actual scale interval d (default: e)")
    max_g: int = Field(default=30_000, ge=1, le=10**7, description="maximum capacity Max")
    accuracy_class: Literal["I", "II", "III", "IIII"] = "III"
    zero_counts: int | None = Field(default=None, ge=0, le=2**40, description="ADC counts of the verified zero")
    calibration_events: int = Field(default=0, ge=0, le=2**53)
    configuration_events: int = Field(default=0, ge=0, le=2**53)
    verification_due_ms: int | None = Field(
        default=None, ge=0, le=2**42, description="when the next verification is due (UTC ms)"
    )
    approved_software_id: str | None = Field(default=None, max_length=64)
    market: str | None = Field(
        default=None, max_length=64, description="the market the scale stands in (for learned prices)"
    )
    verified_ms: int | None = Field(default=None, ge=0, le=2**42, description="when this verification took force")
