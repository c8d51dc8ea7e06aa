"""The guarantee that makes a flag an accusation: an honest scale whose every error stays within its
in-service MPE raises no tolerance-based flag, whatever the sign pattern of its errors, over long
sequences with containers on the pan, both tare kinds, small sales, a fair scale of its own class and
check weighings. The statistics count in units of each weighing's tolerance with a slack of one whole
tolerance, so this holds by construction; the test keeps it so."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from anti_cheat import Engine, ScaleFacts, Transactions
from anti_cheat.engine import round_half_up_price
from device_profiles.metrology import ScaleFact, mpe_mg

TOLERANCE_RULES = {"coefficient", "coefficient_cusum", "reweigh_error", "reweigh_cusum", "check_error"}
ZERO, FAIR_E = 120_000, 2_000  # the fair scale: class III, 15 kg × 2 g


def mpe(load_mg: float, e_mg: int) -> float:
    return float(mpe_mg(np.array([round(load_mg)]), np.array([e_mg]), np.array([2]))[0])


def quantise(mg: float, d: int) -> int:
    return round(mg / d) * d


patterns = st.sampled_from(["all_plus", "all_minus", "alternating", "random", "bursts"])


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([(6_000, 2_000), (15_000, 5_000), (30_000, 10_000)]),  # Max g, e mg
    patterns,
    st.floats(0.0, 1.0),  # how much of its MPE the scale uses
    st.integers(0, 2**32 - 1),
)
def test_an_honest_scale_within_its_mpe_never_raises_a_tolerance_flag(
    scale: tuple[int, int], pattern: str, share: float, seed: int
) -> None:
    max_g, e = scale
    rng = np.random.default_rng(seed)
    coef = float(rng.integers(18_000, 22_000))
    facts = ScaleFacts()
    facts.set("stall", ScaleFact(coefficient=coef, e_mg=e, max_g=max_g, zero_counts=ZERO))
    facts.set("fair", ScaleFact(coefficient=20_000.0, e_mg=FAIR_E, max_g=15_000))
    rows: list[dict] = []
    for k in range(300):
        sign = {
            "all_plus": 1.0,
            "all_minus": -1.0,
            "alternating": (-1.0) ** k,
            "random": rng.uniform(-1, 1),
            "bursts": 1.0 if (k // 25) % 2 else -1.0,
        }[pattern]
        goods = int(rng.choice([rng.integers(2, 21) * e, rng.integers(20, max_g * 1000 // 3 // e) * e]))
        goods += int(rng.integers(0, e))  # true masses are not multiples of e
        container = int(rng.choice([0, rng.integers(2_000, 8_001), rng.integers(60_000, 400_001)]))
        kind = "preset" if rng.random() < 0.5 else "weighed"
        gross = goods + container
        shown = gross + sign * share * mpe(gross, e)  # the indication before rounding, within the MPE
        raw = ZERO + round(coef * shown / 1e6 + rng.uniform(-2, 2))  # the counts the indication came from
        gross_d = quantise((raw - ZERO) / coef * 1e6, e)
        if container and kind == "weighed":
            tare = quantise(container + sign * share * mpe(container, e), e)  # the same scale, same error sign
        else:
            tare = container  # a preset tare keyed at the container's mass
        net = gross_d - tare
        price = int(rng.integers(200, 9000))
        rows.append(
            {
                "device": "stall",
                "seq": k,
                "ts": 1_764_000_000_000 + k * 60_000,
                "net_mg": net,
                "tare_mg": tare,
                "tare_kind": kind if container else None,
                "unit_price_fen_per_kg": price,
                "amount_fen": int(round_half_up_price(np.array([net]), np.array([price]))[0]),
                "stable": True,
                "stable_ms": 800,
                "raw_counts": raw,
                "zero_counts": ZERO,
            }
        )
        fair_sign = rng.choice([-1.0, 1.0]) if pattern == "random" else -sign  # the worst case: opposite
        fair = quantise(goods + fair_sign * share * mpe(goods, FAIR_E), FAIR_E)
        rows.append(
            {"kind": "reweigh", "device": "stall", "source": "fair", "seq": 10_000 + k,
             "ts": rows[-1]["ts"] + 30_000, "net_mg": net, "tare_mg": tare,
             "tare_kind": kind if container else None, "reference_mg": fair}
        )  # fmt: skip
        if k % 30 == 0:
            weight = int(rng.choice([500_000, 2_000_000, 5_000_000])) * max_g // 30_000
            rows.append(
                {"kind": "check", "device": "stall", "seq": 20_000 + k, "ts": rows[-1]["ts"] + 1,
                 "net_mg": quantise(weight + sign * share * mpe(weight, e), e), "reference_mg": weight}
            )  # fmt: skip
    batch = Transactions.from_rows(facts, rows)
    flags = [fl for fl in Engine(facts).score(batch).flags(batch, facts) if fl.rule in TOLERANCE_RULES]
    assert flags == []


def test_the_same_stream_beyond_its_mpe_is_flagged() -> None:
    """The property above is not empty: 30 % beyond the MPE, consistently, is caught."""
    facts = ScaleFacts()
    facts.set("stall", ScaleFact(coefficient=20_000.0, e_mg=5_000, zero_counts=ZERO))
    rows = []
    for k in range(40):
        goods = 1_000_000 + k * 5_000
        claimed = quantise(goods + 1.3 * 2 * (mpe(goods, 5_000) + 2_500), 5_000)
        rows.append({"kind": "reweigh", "device": "stall", "seq": k, "ts": k, "net_mg": claimed,
                     "reference_mg": quantise(goods, 5_000)})  # fmt: skip
    batch = Transactions.from_rows(facts, rows)
    rules = {fl.rule for fl in Engine(facts).score(batch).flags(batch, facts)}
    assert {"reweigh_error", "reweigh_cusum"} <= rules
