"""Transactions and scale facts for the anti-cheat tests: an honest sale row whose counts measure the gross
(net + tare), verified facts, honest streams from the firmware simulator, and a stream mixing cheats."""

from __future__ import annotations

import numpy as np

from anti_cheat import ScaleFacts
from anti_cheat.engine import round_half_up_price
from device_profiles import builtin
from device_profiles.metrology import ScaleFact
from firmware_sim import Cheat, ScaleFirmware

PROFILE = builtin("zj-pcs-30")
COEF, ZERO = 20_000.0, 120_000


def facts(**over) -> ScaleFacts:
    f = ScaleFacts()
    fact = dict(
        coefficient=COEF,
        e_mg=5000,
        max_g=30_000,
        zero_counts=ZERO,
        calibration_events=3,
        configuration_events=7,
        verification_due_ms=2_000_000_000_000,
    )
    fact.update(over)
    f.set("scale-1", ScaleFact(**fact))
    f.commodity_median = {"1001": 3000}
    return f


def counts(gross_mg: int) -> int:
    return ZERO + round(COEF * gross_mg / 1_000_000)


def row(**over) -> dict:
    """An honest sale: the counts measure the gross, net + tare."""
    net = over.get("net_mg", 1_000_000)
    tare = over.get("tare_mg", 0)
    base = {
        "device": "scale-1",
        "seq": 1,
        "ts": 1_764_000_000_000,
        "plu": "1001",
        "net_mg": net,
        "tare_mg": 0,
        "unit_price_fen_per_kg": 3000,
        "stable": True,
        "stable_ms": 800,
        "raw_counts": counts(net + tare),
        "zero_counts": ZERO,
        "calibration_events": 3,
        "configuration_events": 7,
    }
    base.update(over)
    base.setdefault(
        "amount_fen", int(round_half_up_price(np.array([base["net_mg"]]), np.array([base["unit_price_fen_per_kg"]]))[0])
    )
    return base


def honest_stream(n: int, seed: int, scales: int = 3) -> list[dict]:
    rng = np.random.default_rng(seed)
    firmwares = [ScaleFirmware(PROFILE, seed=seed + i, coefficient=COEF, zero_counts=ZERO) for i in range(scales)]
    rows = []
    for k in range(n):
        i = int(rng.integers(scales))
        txn = firmwares[i].sell(
            ts_ms=1_764_000_000_000 + k,
            plu="1001",
            true_net_mg=int(rng.integers(100, 15_000)) * 1000,
            unit_price_fen_per_kg=int(rng.integers(2500, 3500)),
        )
        rows.append({**txn, "device": f"scale-{i}", "seq": k})
        if rng.random() < 0.05:  # the customer re-weighs at the fair scale
            rows.append(
                {
                    "kind": "reweigh",
                    "device": f"scale-{i}",
                    "seq": k + 10**6,
                    "ts": txn["ts"] + 60_000,
                    "net_mg": txn["net_mg"],
                    "reference_mg": txn["net_mg"] + int(rng.integers(-2500, 2501)),
                }
            )
    return rows


def facts_for(scales: int = 3) -> ScaleFacts:
    f = ScaleFacts()
    for i in range(scales):
        f.set(
            f"scale-{i}",
            ScaleFact(coefficient=COEF, e_mg=5000, zero_counts=ZERO, calibration_events=3, configuration_events=7),
        )
    f.commodity_median = {"1001": 3000}
    return f


def mixed_stream(seed: int) -> list[dict]:
    rows = honest_stream(500, seed, scales=2)
    rng = np.random.default_rng(seed + 1)
    cheat = ScaleFirmware(PROFILE, seed=seed, coefficient=COEF, zero_counts=ZERO, cheat=Cheat("remote_control", 1.01))
    throw = ScaleFirmware(PROFILE, seed=seed + 7, coefficient=COEF, zero_counts=ZERO, cheat=Cheat("throw"))
    for k in range(400):
        fw, name = (cheat, "scale-2") if k % 2 else (throw, "scale-3")
        true_mg = int(rng.integers(500, 5000)) * 1000
        txn = fw.sell(ts_ms=1_764_000_100_000 + k, plu="1001", true_net_mg=true_mg, unit_price_fen_per_kg=3000)
        rows.append({**txn, "device": name, "seq": 2_000_000 + k})
        rows.append(
            {
                "kind": "reweigh",
                "device": name,
                "seq": 3_000_000 + k,
                "ts": txn["ts"],
                "net_mg": txn["net_mg"],
                "reference_mg": true_mg,
            }
        )
    order = np.random.default_rng(seed).permutation(len(rows))
    return [rows[i] for i in order]
