"""The first anti-cheat rules, on hand-made rows and on the scale simulator's honest and cheating sales."""

from __future__ import annotations

import numpy as np
import pytest

from anti_cheat import ScaleFact, ScaleFacts, columns_from_records, mpe_mg, score
from device_profiles import builtin
from firmware_sim import Cheat, ScaleFirmware


def test_mpe_table_matches_the_worked_example() -> None:
    # METROLOGY.md: e = 5 g, Max = 30 kg: in service ±5 g up to 2.5 kg, ±10 g up to 10 kg, ±15 g up to 30 kg
    loads = np.array([100_000, 2_500_000, 2_505_000, 10_000_000, 10_005_000, 30_000_000])
    e = np.full(6, 5_000)
    cls = np.full(6, 2)  # III
    assert list(mpe_mg(loads, e, cls)) == [5_000, 5_000, 10_000, 10_000, 15_000, 15_000]
    assert list(mpe_mg(loads[:1], e[:1], cls[:1], in_service=False)) == [2_500]


def sales_of(firmware: ScaleFirmware, n: int, seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        firmware.sell(
            ts_ms=1_000 + i,
            plu="1001",
            true_net_mg=int(rng.integers(100, 15_000)) * 1000,
            unit_price_fen_per_kg=int(rng.integers(200, 12_000)),
        )
        for i in range(n)
    ]


def run(firmware: ScaleFirmware, records: list[dict], *, calibration_events: int | None = None):
    facts = ScaleFacts()
    facts.set(
        "scale-1",
        ScaleFact(
            coefficient=firmware.true_coefficient,
            e_mg=5_000,
            calibration_events=calibration_events or firmware.calibration_events,
            configuration_events=firmware.configuration_events,
        ),
    )
    rows = [("scale-1", i, r) for i, r in enumerate(records)]
    return score(columns_from_records(facts, rows), facts)


def test_honest_scale_raises_nothing() -> None:
    fw = ScaleFirmware(builtin("zj-pcs-30"), seed=3)
    assert run(fw, sales_of(fw, 5_000)) == []


@pytest.mark.parametrize(
    ("cheat", "rule"),
    [
        (Cheat("cheat_chip", ratio=1.10), "coefficient"),
        (Cheat("price_math", extra_fen=1), "price_math"),
        (Cheat("throw"), "stability"),
    ],
)
def test_each_visible_cheat_is_caught_on_every_sale(cheat: Cheat, rule: str) -> None:
    fw = ScaleFirmware(builtin("zj-pcs-30"), seed=4, cheat=cheat)
    records = sales_of(fw, 2_000)
    flags = run(fw, records)
    assert {f.seq for f in flags if f.rule == rule} == set(range(len(records)))
    assert {f.rule for f in flags} == {rule}
    assert all(f.reason_en and f.reason_zh for f in flags)


def test_recalibration_shows_in_counters_and_coefficient() -> None:
    fw = ScaleFirmware(builtin("zj-pcs-30"), seed=5, cheat=Cheat("recalibration", ratio=1.075))
    flags = run(fw, sales_of(fw, 500), calibration_events=fw.calibration_events - 1)
    rules = {f.rule for f in flags}
    assert rules == {"counters", "coefficient"}
    assert len([f for f in flags if f.rule == "counters"]) == 500


def test_price_rule_is_exact_integer_arithmetic() -> None:
    fw = ScaleFirmware(builtin("zj-pcs-30"), seed=6)
    rec = fw.sell(ts_ms=1, plu="1", true_net_mg=275_000, unit_price_fen_per_kg=12_300)
    rec.update(net_mg=275_000, amount_fen=3383, raw_counts=rec["zero_counts"] + int(fw.true_coefficient * 0.275))
    assert run(fw, [rec]) == []
    rec["amount_fen"] = 3382  # the float-rounded amount is one fen short
    assert [f.rule for f in run(fw, [rec])] == ["price_math"]


def test_scales_without_facts_get_only_fact_free_rules() -> None:
    fw = ScaleFirmware(builtin("zj-pcs-30"), seed=7, cheat=Cheat("cheat_chip"))
    facts = ScaleFacts()
    rows = [("unknown", i, r) for i, r in enumerate(sales_of(fw, 50))]
    assert score(columns_from_records(facts, rows), facts) == []
