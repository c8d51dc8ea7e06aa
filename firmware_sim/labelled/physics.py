"""The physics of a price-computing scale, as the labelled markets model it (docs/anti_cheat.md, "Physics and
units": the load cell measures the gross load).

The load cell counts everything on the load receptor, goods and container: ``counts = empty + true_coefficient ×
gross_kg + noise``. The scale computes its indication from the counts with its own (registered) coefficient:
``gross = round_d((counts − zero) / coefficient)``, ``net = gross − tare``. An honest scale's span drift changes
the true counts per kg, so display and counts stay consistent and the error shows only against true mass.

The MPE table is written here again, on purpose, rather than imported from :mod:`anti_cheat`: the generator is
the engine's examiner and must not share its code. Everything is in mg, counts and fen; numpy over a scale's
sales.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

#: OIML R76-1 / JJG 539: per class, the band upper limits in e and the MPE in e of each band, at initial
#: verification; in service the MPE is twice that.
MPE_BANDS: dict[str, tuple[tuple[int, int], tuple[float, float, float]]] = {
    "I": ((50_000, 200_000), (0.5, 1.0, 1.5)),
    "II": ((5_000, 20_000), (0.5, 1.0, 1.5)),
    "III": ((500, 2_000), (0.5, 1.0, 1.5)),
    "IIII": ((50, 200), (0.5, 1.0, 1.5)),
}
IN_SERVICE = 2.0
ADC_NOISE_COUNTS = 2.0  # σ of one load-cell reading
ZERO_BAND_E = 0.25  # zero is held within ±0.25 e [law]


@dataclass(frozen=True, slots=True)
class Capacity:
    """A scale model's metrology: Max, e = d, class, and the software id it was type-approved with."""

    max_g: int
    e_mg: int
    model: str
    accuracy_class: str = "III"

    @property
    def d_mg(self) -> int:
        return self.e_mg  # e = d on price-computing scales

    @property
    def max_mg(self) -> int:
        return self.max_g * 1000

    @property
    def software_id(self) -> str:
        return f"{self.model} FW 2.1.0"


#: stall scales: 6 kg / 2 g, 15 kg / 5 g, 30 kg / 10 g (n = 3 000 each)
STALL_CAPACITIES = (
    Capacity(6_000, 2_000, "ZJ-PCS-6"),
    Capacity(15_000, 5_000, "ZJ-PCS-15"),
    Capacity(30_000, 10_000, "ZJ-PCS-30"),
)
#: fair scales (公平秤): finer than the stalls' scales, each with its own facts
FAIR_CAPACITIES = (
    Capacity(15_000, 2_000, "ZJ-FAIR-15"),
    Capacity(6_000, 1_000, "ZJ-FAIR-6"),
    Capacity(30_000, 5_000, "ZJ-FAIR-30"),
)


def mpe_mg(load_mg: npt.ArrayLike, e_mg: int, accuracy_class: str = "III", *, in_service: bool = True) -> F64:
    """The MPE in mg at each load (a load on a band limit belongs to the lower band)."""
    (lo, hi), (m0, m1, m2) = MPE_BANDS[accuracy_class]
    load = np.abs(np.asarray(load_mg, dtype=np.float64))
    mpe = np.where(load <= lo * e_mg, m0, np.where(load <= hi * e_mg, m1, m2)) * e_mg
    result: F64 = mpe * (IN_SERVICE if in_service else 1.0)
    return result


def max_span_error(cap: Capacity, *, allowance_e: float = ZERO_BAND_E + 0.05, in_service: bool = True) -> float:
    """The largest relative span error s for which ``s × m + allowance`` stays within the MPE at every load m
    up to Max (the allowance covers the zero error within ±0.25 e and the ADC noise).

    The MPE is constant within a band and ``s × m`` grows with m, so the worst load of a band is its upper limit.
    """
    (lo, hi), _ = MPE_BANDS[cap.accuracy_class]
    edges = np.array([lo * cap.e_mg, hi * cap.e_mg, cap.max_mg], dtype=np.float64)
    edges = edges[edges <= cap.max_mg]
    room = mpe_mg(edges, cap.e_mg, cap.accuracy_class, in_service=in_service) - allowance_e * cap.e_mg
    return float(np.min(room / edges))


def quantise(mg: npt.ArrayLike, d_mg: int) -> I64:
    """Round to the interval d, half up (the indication's digit)."""
    result: I64 = (np.floor(np.asarray(mg, dtype=np.float64) / d_mg + 0.5) * d_mg).astype(np.int64)
    return result


def indication_mg(raw: I64, zero: I64, coefficient: F64 | float) -> F64:
    """What the counts mean in mg for a scale computing with ``coefficient`` counts per kg (before rounding)."""
    result: F64 = np.asarray((raw - zero) * 1_000_000.0 / coefficient, dtype=np.float64)
    return result


def counts(empty: F64, true_coefficient: F64 | float, load_mg: F64, noise: F64) -> I64:
    """Load-cell counts with ``load_mg`` on the pan (goods and container) over an empty pan reading ``empty``."""
    result: I64 = np.rint(empty + true_coefficient * load_mg / 1_000_000.0 + noise).astype(np.int64)
    return result


def amount_fen(net_mg: I64, price_fen_per_kg: I64) -> I64:
    """weight × unit price rounded half up to the fen, in integers (0.275 kg × 12 300 fen/kg = 3 383 fen)."""
    product = net_mg * price_fen_per_kg
    result: I64 = np.sign(product) * ((np.abs(product) + 500_000) // 1_000_000)
    return result
