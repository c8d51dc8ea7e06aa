"""Maximum permissible errors of non-automatic weighing instruments (OIML R76-1, JJG 539), as tables.

MPE at initial verification, in units of e, by load band; the in-service MPE is twice that.
Bands are (upper load limit in e) per accuracy class; the last band runs to Max.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# class: (band upper limits in e, MPE in e for each band), initial verification
MPE_TABLE: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "I": ((50_000, 200_000), (0.5, 1.0, 1.5)),
    "II": ((5_000, 20_000), (0.5, 1.0, 1.5)),
    "III": ((500, 2_000), (0.5, 1.0, 1.5)),
    "IIII": ((50, 200), (0.5, 1.0, 1.5)),
}
IN_SERVICE_FACTOR = 2.0
CLASS_CODES = {name: i for i, name in enumerate(MPE_TABLE)}


def mpe_mg(
    load_mg: npt.NDArray[np.int64],
    e_mg: npt.NDArray[np.int64],
    class_code: npt.NDArray[np.int64],
    *,
    in_service: bool = True,
) -> npt.NDArray[np.float64]:
    """MPE in mg for each load, scale interval and class code (index into :data:`CLASS_CODES`)."""
    load_e = np.abs(load_mg) / e_mg
    out = np.empty(load_mg.shape, dtype=np.float64)
    for name, code in CLASS_CODES.items():
        limits, mpes = MPE_TABLE[name]
        rows = class_code == code
        if rows.any():
            band = np.searchsorted(np.asarray(limits, dtype=np.float64), load_e[rows], side="left")
            out[rows] = np.asarray(mpes)[band] * e_mg[rows]
    return out * (IN_SERVICE_FACTOR if in_service else 1.0)
