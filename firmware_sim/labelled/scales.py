"""Who is in a labelled market: each stall's scale (its model, verification history, honest drift, and the
cheat it runs, if any) and each market's fair scale, drawn from a condition and a seed.

A scale's verification record is what the registry holds; its true coefficient is what the load cell really
does. For an honest scale they differ only by the span drift ``s`` (true = registered × (1 + s)), drawn so
that the error ``s × m`` plus the zero allowance stays within the in-service MPE at every load up to Max.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .conditions import METHODS, Condition
from .goods import COMMODITIES, DAY_MS, HOUR_MS, PERIOD_START_MS, PLU_INDEX, STALL_TYPES, StallType
from .physics import FAIR_CAPACITIES, STALL_CAPACITIES, Capacity, max_span_error

YEAR_MS = 365 * DAY_MS


@dataclass(frozen=True, slots=True)
class Verification:
    """One verification's facts (what the registry records) and the physics in force until the next."""

    verified_ms: int
    coefficient: float  # registered counts per kg
    zero_counts: int
    calibration_events: int
    configuration_events: int
    software_id: str
    span: float  # the scale's relative span error while this verification is in force
    fresh_start: bool = False  # repaired: a new load cell, so a new zero too

    @property
    def true_coefficient(self) -> float:
        return self.coefficient * (1 + self.span)

    def facts(self, cap: Capacity, market: str) -> dict[str, object]:
        return {
            "coefficient": self.coefficient,
            "e_mg": cap.e_mg,
            "d_mg": cap.d_mg,
            "max_g": cap.max_g,
            "accuracy_class": cap.accuracy_class,
            "zero_counts": self.zero_counts,
            "calibration_events": self.calibration_events,
            "configuration_events": self.configuration_events,
            "verification_due_ms": self.verified_ms + YEAR_MS,
            "approved_software_id": self.software_id,
            "market": market,
            "verified_ms": self.verified_ms,
        }


@dataclass(slots=True)
class StallPlan:
    device: str
    market: int
    stall: StallType
    cap: Capacity
    method: str  # "honest" or a cheat method
    cheat: dict[str, float]  # the method's parameters
    sales_per_day: float
    plus: np.ndarray  # commodity indices the stall sells
    plu_weights: np.ndarray
    trays_nominal_g: np.ndarray
    trays_real_g: np.ndarray
    verifications: list[Verification]
    zero_offset_e: float  # where the honest zero sits against the verified one, in e
    small_rate: float
    seq_start: int
    zero_set_start: int


@dataclass(slots=True)
class FairPlan:
    device: str
    market: int
    cap: Capacity
    verification: Verification
    seq_start: int


@dataclass(slots=True)
class MarketPlan:
    stalls: list[StallPlan] = field(default_factory=list)
    fair: list[FairPlan] = field(default_factory=list)
    levels: list[float] = field(default_factory=list)  # price level of each market
    reweigh_rates: list[float] = field(default_factory=list)
    inspection_day: list[int] = field(default_factory=list)


def market_id(m: int) -> str:
    return f"M{m + 1}"


def _honest_span(rng: np.random.Generator, cap: Capacity, edge: bool) -> float:
    bound = max_span_error(cap)
    if edge:  # sitting at 0.8–1.0 × the MPE, reading heavy (the seller's favour)
        return float(rng.uniform(0.8, 1.0) * bound)
    return float(np.clip(rng.normal(0, 0.25), -0.7, 0.7) * bound)


def _capacity(rng: np.random.Generator, stall: StallType, forced: int | None) -> Capacity:
    if forced is not None:
        return STALL_CAPACITIES[forced]
    return STALL_CAPACITIES[int(rng.choice(3, p=np.array(stall.capacities) / sum(stall.capacities)))]


def _cheat_params(rng: np.random.Generator, method: str, days: int) -> dict[str, float]:
    if method == "cheat_chip":
        return {"ratio": rng.uniform(1.1, 1.3), "keyed": float(rng.random() < 0.5)}
    if method == "remote_control":
        return {"ratio": rng.uniform(1.02, 1.2), "p_active": 0.8}
    if method == "recalibration":
        return {"ratio": rng.uniform(1.05, 1.10), "from_day": float(rng.integers(0, min(3, days)))}
    if method == "price_math":
        return {"max_extra_fen": float(rng.integers(1, 51)), "share": 1.0 if rng.random() < 0.5 else 0.6}
    if method == "throw":
        return {"share": rng.uniform(0.3, 0.9)}
    if method == "zero_trick":
        return {"tray_g": rng.uniform(1_300, 2_000)}
    if method == "price_scaling":
        return {"factor": 10.0 if rng.random() < 0.5 else 100.0}
    if method == "preset_base":
        return {"offset_g": 0.0, "zero_key": float(rng.random() < 0.5)}  # offset set by the caller
    return {}


def plan_market(cond: Condition, rng: np.random.Generator) -> MarketPlan:
    """Stalls and fair scales of every market of ``cond``."""
    plan = MarketPlan()
    type_p = np.array([t.share for t in STALL_TYPES])
    for m in range(cond.markets):
        plan.levels.append(float(rng.uniform(0.85, 1.2)))
        plan.reweigh_rates.append(cond.reweigh_rates[m % len(cond.reweigh_rates)])
        plan.inspection_day.append(int(rng.integers(0, cond.days)))
        cap = FAIR_CAPACITIES[m % len(FAIR_CAPACITIES)]
        coef = rng.uniform(300_000, 600_000) / (cap.max_g / 1000)
        fair_v = Verification(
            verified_ms=PERIOD_START_MS - int(rng.uniform(10, 355 - cond.days) * DAY_MS),
            coefficient=round(coef, 3),
            zero_counts=int(rng.integers(80_000, 160_000)),
            calibration_events=int(rng.integers(1, 4)),
            configuration_events=int(rng.integers(2, 8)),
            software_id=cap.software_id,
            span=float(rng.uniform(-0.5, 0.5) * max_span_error(cap, in_service=False)),
        )
        plan.fair.append(FairPlan(f"fair-{market_id(m)}", m, cap, fair_v, int(rng.integers(1, 50_000))))
        methods = [meth for meth in METHODS for _ in range(cond.cheaters_per_market.get(meth, 0))]
        honest = max(0, cond.scales_per_market - len(methods))
        roles = [str(r) for r in rng.permutation(["honest"] * honest + methods)]  # ids say nothing of the truth
        edge = rng.random(len(roles)) < cond.mpe_edge_share
        reverify = rng.random(len(roles)) < cond.reverify_share
        preset_k = 0
        for k, method in enumerate(roles):
            forced: int | None = None
            stall = STALL_TYPES[int(rng.choice(len(STALL_TYPES), p=type_p))]
            cheat = _cheat_params(rng, method, cond.days)
            if method == "zero_trick":
                stall = STALL_TYPES[int(rng.integers(1, 4))]  # meat, fish or fruit on 15 or 30 kg
                forced = int(rng.integers(1, 3))
            elif method == "preset_base":  # on 6, 15 and 30 kg scales in turn
                forced = preset_k % 3
                preset_k += 1
                stall = STALL_TYPES[0] if forced < 2 else STALL_TYPES[2]
                cheat["offset_g"] = rng.uniform(*cond.preset_base_g)
            cap = _capacity(rng, stall, forced)
            plan.stalls.append(
                _stall(
                    rng,
                    cond,
                    m,
                    k,
                    stall,
                    cap,
                    method,
                    cheat,
                    edge=method == "honest" and bool(edge[k]),
                    reverify=method == "honest" and bool(reverify[k]),
                )
            )
    return plan


def _stall(
    rng: np.random.Generator,
    cond: Condition,
    m: int,
    k: int,
    stall: StallType,
    cap: Capacity,
    method: str,
    cheat: dict[str, float],
    *,
    edge: bool,
    reverify: bool,
) -> StallPlan:
    plus = np.array([PLU_INDEX[p] for p in stall.plus])
    chosen = rng.choice(len(plus), size=min(len(plus), int(rng.integers(3, 7))), replace=False)
    if stall.small_factor >= 1:  # herb and spice sellers always have their small goods
        chosen = np.union1d(chosen, [i for i, p in enumerate(plus) if COMMODITIES[p].small])
    plus = plus[np.sort(chosen)]
    weights = rng.uniform(0.5, 2.0, len(plus))
    trays_nominal = np.round(rng.uniform(*stall.trays_g, 3) / 10) * 10
    trays_real = trays_nominal * rng.uniform(1 - 0.03, 1 + 0.03, 3)
    coef = round(float(rng.uniform(300_000, 600_000)) / (cap.max_g / 1000), 3)
    first = Verification(
        verified_ms=PERIOD_START_MS - int(rng.uniform(10, 355 - cond.days) * DAY_MS),  # due after the period
        coefficient=coef,
        zero_counts=int(rng.integers(80_000, 160_000)),
        calibration_events=int(rng.integers(1, 6)),
        configuration_events=int(rng.integers(3, 12)),
        software_id=cap.software_id,
        span=_honest_span(rng, cap, edge),
    )
    verifications = [first]
    if reverify and cond.days >= 2:
        day = int(rng.integers(1, cond.days))
        at = PERIOD_START_MS + day * DAY_MS + int(rng.uniform(12, 14) * HOUR_MS)
        repaired = rng.random() < cond.repair_share
        new_coef = coef * (rng.uniform(0.8, 1.25) if repaired else 1.0)
        span = float(rng.normal(0, 0.05) * max_span_error(cap))  # freshly adjusted
        verifications.append(
            Verification(
                verified_ms=at,
                coefficient=round(new_coef / (1 + span) * (1 + first.span) if not repaired else new_coef, 3),
                zero_counts=int(rng.integers(80_000, 160_000))
                if repaired
                else first.zero_counts + int(rng.integers(-300, 300)),
                calibration_events=first.calibration_events + 1,
                configuration_events=first.configuration_events + int(rng.random() < 0.5),
                software_id=cap.software_id.replace("2.1.0", "2.2.0")
                if rng.random() < cond.new_software_share
                else cap.software_id,
                span=span,
                fresh_start=repaired,
            )
        )
    small = min(1.0, cond.p_small * stall.small_factor) if cond.p_small < 1 else 1.0
    return StallPlan(
        device=f"{market_id(m)}-{stall.name.split()[0][:4]}-{k:03d}",
        market=m,
        stall=stall,
        cap=cap,
        method=method,
        cheat=cheat,
        sales_per_day=float(rng.uniform(*cond.sales_per_day)),
        plus=plus,
        plu_weights=weights / weights.sum(),
        trays_nominal_g=trays_nominal,
        trays_real_g=trays_real,
        verifications=verifications,
        zero_offset_e=float(np.clip(rng.normal(0, 1.5), -4, 4)),
        small_rate=small,
        seq_start=int(rng.integers(1, 50_000)),
        zero_set_start=int(rng.integers(100, 5_000)),
    )
