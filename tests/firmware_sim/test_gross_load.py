"""The scale's physics: the load cell measures the gross load, tares are weighed or preset, the zero is
tracked and every zero-setting counted, an honest drift shows only against the true mass, and the preset
base trick (预留底数) leaves its signature in the zero and the empty pan."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles import amount_fen, builtin, check_record
from device_profiles.codecs import mtsics
from firmware_sim import Cheat, Purchase, ScaleFirmware, draw_purchase

PROFILE = builtin("zj-pcs-30")
E = D = 5_000  # mg, zj-pcs-30
COEF = 20_000.0  # counts per kg


def counts_mg(txn: dict, coefficient: float, counts: int | None = None) -> float:
    """The load the counts measure, in mg, with ``coefficient`` (the calibrated one unless said)."""
    return ((txn["raw_counts"] if counts is None else counts) - txn["zero_counts"]) / coefficient * 1_000_000


def gross(txn: dict) -> int:
    return txn["net_mg"] + txn["tare_mg"]


@settings(max_examples=300, deadline=None)
@given(
    goods_g=st.integers(20, 25_000),
    container_mg=st.integers(0, 400_000),
    tare_kind=st.sampled_from([None, "weighed", "preset"]),
    preset_g=st.integers(0, 400),
    span_ppm=st.integers(-10_000, 10_000),
    seed=st.integers(0, 10_000),
)
def test_honest_counts_measure_the_gross_indication_within_half_d(
    goods_g: int, container_mg: int, tare_kind, preset_g: int, span_ppm: int, seed: int
) -> None:
    fw = ScaleFirmware(PROFILE, seed=seed, coefficient=COEF, span_error=span_ppm / 1e6)
    txn = fw.sell(
        ts_ms=1,
        plu="1001",
        true_net_mg=goods_g * 1000,
        unit_price_fen_per_kg=2_000,
        container_mg=container_mg,
        tare_kind=tare_kind,
        preset_tare_mg=preset_g * 1000,
    )
    check_record({"type": "sale", **txn})
    # the scale computes its gross indication from the counts, whatever the tare and the drift
    assert abs(counts_mg(txn, fw.true_coefficient) - gross(txn)) <= D / 2 + 1
    assert txn["amount_fen"] == amount_fen(txn["net_mg"], 2_000)
    # the indication errs from the true gross by the load's reading error (≤ e/2), rounding and the drift
    true_gross = goods_g * 1000 + container_mg
    assert abs(gross(txn) - true_gross * (1 + span_ppm / 1e6)) <= E / 2 + D / 2 + 1
    if tare_kind is None:
        assert "tare_kind" not in txn and "tare_gross_mg" not in txn and txn["tare_mg"] == 0
    # the empty pan just before: at the zero within ±0.25 e
    assert abs(txn["empty_counts"] - txn["zero_counts"]) <= 0.25 * E * COEF / 1e6


def test_a_weighed_tare_is_the_containers_indication_and_a_preset_tare_is_keyed_with_the_pan_empty() -> None:
    fw = ScaleFirmware(PROFILE, seed=5, coefficient=COEF, noise_sigma_e=0)
    t = fw.sell(
        ts_ms=1, plu="1", true_net_mg=500_000, unit_price_fen_per_kg=1000, container_mg=203_000, tare_kind="weighed"
    )
    assert (t["tare_kind"], t["tare_mg"], t["tare_gross_mg"], t["net_mg"]) == ("weighed", 205_000, 205_000, 500_000)
    assert counts_mg(t, COEF) == pytest.approx(705_000, abs=D / 2)  # goods and tray on the load cell
    pt = fw.sell(
        ts_ms=2,
        plu="1",
        true_net_mg=500_000,
        unit_price_fen_per_kg=1000,
        container_mg=7_600,
        tare_kind="preset",
        preset_tare_mg=5_000,
    )
    # a keyed 5 g for a bag of 7.6 g: the customer pays 2.6 g of bag, rounded away into d
    assert (pt["tare_kind"], pt["tare_mg"], pt["tare_gross_mg"]) == ("preset", 5_000, 0)
    assert gross(pt) == 510_000 and pt["net_mg"] == 505_000
    assert counts_mg(pt, COEF) == pytest.approx(507_600, abs=20)
    bare = fw.sell(ts_ms=3, plu="1", true_net_mg=500_000, unit_price_fen_per_kg=1000, container_mg=4_000)
    assert bare["net_mg"] == 505_000 and bare["tare_mg"] == 0 and "tare_kind" not in bare  # the bag sold as goods
    with pytest.raises(ValueError, match="tare_kind"):
        fw.sell(ts_ms=4, plu="1", true_net_mg=1, unit_price_fen_per_kg=1, tare_kind="keyed")  # type: ignore[arg-type]


def test_an_honest_drift_moves_counts_and_indication_together_and_shows_only_against_the_true_mass() -> None:
    """Once the simulator scaled the display alone, so an honest drift looked like a cheat chip."""
    drift = 0.003  # +0.3 %: 10 kg reads 10.030 kg
    fw = ScaleFirmware(PROFILE, seed=6, coefficient=COEF, span_error=drift, noise_sigma_e=0)
    txn = fw.sell(
        ts_ms=1, plu="1", true_net_mg=9_800_000, unit_price_fen_per_kg=1000, container_mg=200_000, tare_kind="preset",
        preset_tare_mg=200_000,
    )  # fmt: skip
    assert gross(txn) == 10_030_000
    assert counts_mg(txn, fw.true_coefficient) == pytest.approx(10_030_000, abs=D / 2)  # the calibrated coefficient
    assert fw.coefficient == fw.true_coefficient  # nothing was re-calibrated


def test_zero_tracking_is_tiny_and_every_zero_setting_is_counted() -> None:
    fw = ScaleFirmware(PROFILE, seed=7, coefficient=COEF, zero_set_events=40)
    rng = random.Random(7)
    sales = [draw_purchase(rng).sell_on(fw, ts_ms=k) for k in range(300)]
    assert {s["zero_set_events"] for s in sales} == {40}  # an honest vendor who never pressed ZERO
    steps = [abs(b["zero_counts"] - a["zero_counts"]) for a, b in pairwise(sales)]
    assert max(steps) <= 0.1 * E * COEF / 1e6  # tracking follows a slow creep: a few counts, not grams
    assert all(abs(s["empty_counts"] - s["zero_counts"]) <= 0.25 * E * COEF / 1e6 for s in sales)
    for command, expected in (("Z", 41), ("ZI", 42), ("@", 43)):
        reply = fw.respond(mtsics.Line((command,)))
        assert reply.startswith(b"Z A" if command != "@" else b"I4 A")
        assert fw.sell(ts_ms=1, plu="1", true_net_mg=100_000, unit_price_fen_per_kg=1)["zero_set_events"] == expected
    fw.zero()  # the ZERO key
    assert fw.zero_set_events == 44


def test_preset_base_jumps_the_zero_per_customer_and_the_empty_pan_reads_the_base() -> None:
    base = 120_000
    fw = ScaleFirmware(PROFILE, seed=8, coefficient=COEF, cheat=Cheat("preset_base", base_mg=base), noise_sigma_e=0)
    rng = random.Random(8)
    sales, cheated, goods = [], [], []
    for k in range(400):
        goods.append(rng.randint(200, 2_000) * 1000)
        sales.append(Purchase("3001", "tomato", 800, goods[-1]).sell_on(fw, ts_ms=k))
        cheated.append(fw.last_cheated)
    base_counts = base * COEF / 1e6
    assert 0.4 < sum(cheated) / len(cheated) < 0.6  # base_share 0.5: about every other customer
    for prev, sale, on in zip(sales, sales[1:], cheated[1:], strict=False):
        empty_reading = sale["empty_counts"] - sale["zero_counts"]
        assert empty_reading == pytest.approx(base_counts if on else 0, abs=0.25 * E * COEF / 1e6)
        jumped = abs(sale["zero_counts"] - prev["zero_counts"]) > 0.5 * E * COEF / 1e6
        assert jumped == (sale["zero_set_events"] > prev["zero_set_events"])  # each toggle is a zero-setting
    toggles = sales[-1]["zero_set_events"] - sales[0]["zero_set_events"]
    assert toggles > 100
    # the customer pays for the base (the counts agree with the indication, both 120 g above the goods);
    # the others are served honestly
    for sale, on, true_mg in zip(sales, cheated, goods, strict=True):
        assert counts_mg(sale, COEF) == pytest.approx(gross(sale), abs=D / 2)
        assert sale["net_mg"] - true_mg == pytest.approx(base if on else 0, abs=D / 2)


@pytest.mark.parametrize("kind", ["zero_trick", "preset_base"])
def test_a_weighed_tare_cancels_a_zero_offset(kind: str) -> None:
    fw = ScaleFirmware(PROFILE, seed=9, cheat=Cheat(kind, base_mg=100_000, base_share=1.0), noise_sigma_e=0)
    txn = fw.sell(
        ts_ms=1, plu="1", true_net_mg=1_000_000, unit_price_fen_per_kg=1, container_mg=200_000, tare_kind="weighed"
    )
    assert txn["net_mg"] == 1_000_000 and not fw.last_cheated
    bare = fw.sell(ts_ms=2, plu="1", true_net_mg=1_000_000, unit_price_fen_per_kg=1)
    offset = 1_500_000 if kind == "zero_trick" else 100_000
    assert bare["net_mg"] == 1_000_000 + offset and fw.last_cheated
    assert (bare["empty_counts"] - bare["zero_counts"]) == pytest.approx(offset * fw.coefficient / 1e6, abs=20)


@pytest.mark.parametrize(
    ("kind", "indication_over_counts"),
    [("cheat_chip", 1.2), ("remote_control", 1.0), ("recalibration", 1.2)],
)
def test_weight_cheats_act_on_the_gross_with_a_container(kind: str, indication_over_counts: float) -> None:
    fw = ScaleFirmware(PROFILE, seed=10, coefficient=COEF, cheat=Cheat(kind, ratio=1.2), noise_sigma_e=0)
    for tare_kind in ("weighed", "preset"):
        txn = fw.sell(
            ts_ms=1, plu="1", true_net_mg=2_000_000, unit_price_fen_per_kg=1000, container_mg=300_000,
            tare_kind=tare_kind, preset_tare_mg=300_000,
        )  # fmt: skip
        assert gross(txn) == pytest.approx(2_300_000 * 1.2, abs=D / 2)  # every cheat: 20 % on the gross
        # the coefficient of record sees the counts of the gross load; only the chip and the re-calibration
        # make the indication disagree with it
        assert gross(txn) / counts_mg(txn, fw.true_coefficient) == pytest.approx(indication_over_counts, rel=2e-3)
        if kind == "recalibration":
            assert counts_mg(txn, fw.coefficient) == pytest.approx(gross(txn), abs=D / 2)


def test_the_firmware_is_deterministic_per_seed() -> None:
    def run(seed: int) -> list[dict]:
        fw = ScaleFirmware(PROFILE, seed=seed, cheat=Cheat("preset_base"))
        rng = random.Random(seed)
        return [draw_purchase(rng).sell_on(fw, ts_ms=k) for k in range(50)]

    assert run(3) == run(3) and run(3) != run(4)
