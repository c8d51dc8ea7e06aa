"""Labelled markets for measuring the anti-cheating engine: honest scales and every cheat method at the
magnitudes reported in ``shared/domain/METROLOGY.md``, with customers re-weighing at the fair scale.

Each row is an engine input row (see :mod:`anti_cheat.columns`) plus ``truth``: ``honest`` or the cheat
method of the scale it concerns. Deterministic for a seed. Transactions from all scales are interleaved
in time, as an ingest would see them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from device_profiles import Profile, builtin

from .market import COMMODITIES, Market
from .scale import Cheat, CheatKind, ScaleFirmware

#: magnitudes per method (METROLOGY.md "How cheating shows up in data")
MAGNITUDES: dict[CheatKind, list[dict[str, Any]]] = {
    "cheat_chip": [{"ratio": 1.10}, {"ratio": 1.20}, {"ratio": 1.30}],
    "remote_control": [{"ratio": 1.10}, {"ratio": 1.15}, {"ratio": 1.20}],  # 2 kg reads 2.2–2.4 kg
    "recalibration": [{"ratio": 1.05}, {"ratio": 1.075}, {"ratio": 1.10}],  # 2.1–2.2 instead of 2.0
    "price_math": [{"extra_fen": 1}, {"extra_fen": 10}, {"extra_fen": 50}],
    "throw": [{}],
    "zero_trick": [{"zero_offset_mg": 1_300_000}, {"zero_offset_mg": 2_000_000}],
    "price_scaling": [{"price_factor": 10}, {"price_factor": 100}],
}


@dataclass
class LabelledMarket:
    """Rows to score, the registry they are scored against, and what each scale really does."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    registry: dict[str, Any] = field(default_factory=dict)
    truth: dict[str, str] = field(default_factory=dict)  # device → "honest" or the cheat method


def generate(
    *,
    honest_scales: int = 60,
    scales_per_method: int = 12,
    sales_per_scale: int = 400,
    reweigh_rate: float = 0.05,
    seed: int = 2026,
    profile: Profile | None = None,
) -> LabelledMarket:
    """A market: ``honest_scales`` honest ones and ``scales_per_method`` for each cheat method."""
    profile = profile or builtin("zj-pcs-30")
    assert profile.metrology is not None
    rng = random.Random(seed)
    market = LabelledMarket()
    medians = Market.commodity_medians()
    plan: list[tuple[str, Cheat | None]] = [(f"honest-{i:04d}", None) for i in range(honest_scales)]
    for method, variants in MAGNITUDES.items():
        for i in range(scales_per_method):
            plan.append((f"{method.replace('_', '-')}-{i:04d}", Cheat(method, **variants[i % len(variants)])))
    fair = ScaleFirmware(profile, seed=seed ^ 0x5A5A)
    e = profile.metrology.e_mg
    streams: list[list[dict[str, Any]]] = []
    scales: dict[str, Any] = {}
    for n, (device, cheat) in enumerate(plan):
        fw = ScaleFirmware(
            profile,
            seed=seed * 7919 + n,
            coefficient=float(rng.randint(18_000, 22_000)),
            zero_counts=rng.randint(100_000, 140_000),
            calibration_events=rng.randint(1, 5),
            configuration_events=rng.randint(3, 12),
            cheat=cheat,
            span_error=rng.uniform(-0.001, 0.001),  # calibration drift, well within the in-service MPE
        )
        truth = cheat.kind if cheat else "honest"
        market.truth[device] = truth
        scales[device] = {
            "coefficient": fw.true_coefficient,
            "e_mg": e,
            "d_mg": profile.metrology.d_mg,
            "max_g": profile.metrology.max_g,
            "accuracy_class": profile.metrology.accuracy_class,
            "zero_counts": fw.verified_zero_counts,
            "calibration_events": fw.calibration_events - (1 if truth == "recalibration" else 0),
            "configuration_events": fw.configuration_events,
        }
        stream: list[dict[str, Any]] = []
        for k in range(sales_per_scale):
            plu, _name, lo, hi, g_lo, g_hi = rng.choice(COMMODITIES)
            true_mg = rng.randint(g_lo, g_hi) * 1000
            sale = fw.sell(
                ts_ms=0, plu=plu, true_net_mg=true_mg, unit_price_fen_per_kg=rng.randint(lo // 10, hi // 10) * 10
            )
            fw.pending.clear()  # the generator is the agent: nothing waits on the scale
            stream.append({**sale, "device": device, "seq": k, "truth": truth, "kind": "sale"})
            if rng.random() < reweigh_rate:
                fair_mg, _ = fair.reading(true_mg)
                stream.append(
                    {
                        "kind": "reweigh",
                        "device": device,
                        "seq": 1_000_000 + k,
                        "ts": 0,
                        "plu": plu,
                        "net_mg": sale["net_mg"],
                        "reference_mg": fair_mg,
                        "truth": truth,
                    }
                )
        streams.append(stream)
    # interleave the scales' streams in time, keeping each scale's own order
    t = 1_764_000_000_000
    cursors = [0] * len(streams)
    live = [i for i, s in enumerate(streams) if s]
    while live:
        i = rng.choice(live)
        row = streams[i][cursors[i]]
        row["ts"] = t
        t += rng.randint(50, 400)
        market.rows.append(row)
        cursors[i] += 1
        if cursors[i] == len(streams[i]):
            live.remove(i)
    market.registry = {"scales": scales, "commodity_median": medians}
    return market
