"""The anti-cheat engine: every rule at its edges, honest data raises nothing, batch splitting and
save/restore change nothing, and the scale simulator's cheats are caught."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anti_cheat import Engine, ScaleFacts, Thresholds, Transactions
from anti_cheat.engine import round_half_up_price
from device_profiles.metrology import ScaleFact, mpe_mg
from firmware_sim import Cheat, ScaleFirmware
from tests.support.engine_rows import COEF, PROFILE, ZERO, counts, facts, facts_for, honest_stream, mixed_stream, row


def rules_for(rows: list[dict], f: ScaleFacts | None = None) -> list[tuple[int, str]]:
    f = facts() if f is None else f
    batch = Transactions.from_rows(f, rows)
    return [(fl.seq, fl.rule) for fl in Engine(f).score(batch).flags(batch, f)]


def test_mpe_table_band_edges_and_in_service_doubling() -> None:
    e = 5000
    loads = np.array([0, 500 * e, 500 * e + 1, 2000 * e, 2000 * e + 1, 6000 * e])
    es, cls = np.full(6, e), np.full(6, 2)
    assert list(mpe_mg(loads, es, cls, in_service=False)) == [2500, 2500, 5000, 5000, 7500, 7500]
    assert list(mpe_mg(loads, es, cls)) == [5000, 5000, 10_000, 10_000, 15_000, 15_000]
    # docs/anti_cheat.md: e = 5 g, Max = 30 kg: in service ±5 g up to 2.5 kg, ±10 g up to 10 kg, ±15 g up to 30 kg
    assert list(mpe_mg(np.array([2_500_000, 10_000_000, 30_000_000]), np.full(3, e), np.full(3, 2))) == [
        5000,
        10_000,
        15_000,
    ]
    class_ii = mpe_mg(np.array([5000 * 100, 5001 * 100]), np.full(2, 100), np.full(2, 1), in_service=False)
    assert list(class_ii) == [50, 100]


def test_price_vector_and_rule() -> None:
    assert round_half_up_price(np.array([275_000]), np.array([12_300]))[0] == 3383  # 33.825 → 33.83 yuan
    ok = row(net_mg=275_000, unit_price_fen_per_kg=12_300, amount_fen=3383)
    assert rules_for([ok]) == []
    assert rules_for([{**ok, "amount_fen": 3382}]) == [(1, "price_math")]


def test_coefficient_tolerance_is_the_mpe_at_the_gross_load_plus_half_d_and_noise() -> None:
    net = 2_000_000  # 400 e: in-service MPE 5 g, plus 2.5 g of rounding and the noise allowance (0.2 e = 1 g)
    assert rules_for([row(net_mg=net, raw_counts=counts(net - 8_400))]) == []
    assert rules_for([row(net_mg=net, raw_counts=counts(net - 8_600))]) == [(1, "coefficient")]


def test_counts_measure_the_gross_so_a_tray_on_the_pan_is_no_evidence() -> None:
    # 1.5 kg of fish on a 400 g tray, either tare kind: the counts see 1.9 kg, the receipt says 1.5 kg net
    for kind in ("weighed", "preset"):
        tray = row(net_mg=1_500_000, tare_mg=400_000, tare_kind=kind, tare_gross_mg=400_000)
        assert rules_for([tray]) == []
    # the counts compared with the net alone would be 400 g out; compared with the gross they are right, and
    # a display 10 % heavy than the counts is still caught
    chip = row(net_mg=1_500_000, tare_mg=400_000, raw_counts=counts(round(1_900_000 / 1.1)))
    assert rules_for([chip]) == [(1, "coefficient")]


@pytest.mark.parametrize(
    ("over", "rule"),
    [
        ({"calibration_events": 4}, "counters"),
        ({"configuration_events": 8}, "counters"),
        ({"stable": False}, "stability"),
        ({"stable_ms": 399}, "stability"),
        ({"tare_mg": 6_000_001}, "tare_implausible"),
        ({"tare_mg": 50_000, "tare_kind": "weighed", "tare_gross_mg": 1_250}, "tare_at_zero_gross"),
        ({"ts": 2_000_000_000_001}, "verification_overdue"),
        ({"empty_counts": ZERO + round(COEF * 0.05)}, "zero_empty"),  # the empty pan reads 50 g
    ],
)
def test_each_stateless_rule(over: dict, rule: str) -> None:
    expected = [(1, rule)]
    if rule == "verification_overdue":  # and, once that market day, the scale is in use unverified
        expected.append((1, "unverified_in_use"))
    assert rules_for([row(**over)]) == expected


@pytest.mark.parametrize("factor", [10, 100])
def test_price_keyed_at_a_decade_with_the_weight_shown_scaled_up(factor: int) -> None:
    # 1 kg shown at 30.00/factor yuan/kg, while the counts see 1 kg / factor: scaling (and the counts rule)
    price = 3000 // factor
    scaled = row(unit_price_fen_per_kg=price, amount_fen=price, raw_counts=counts(1_000_000 // factor))
    assert {"price_scaling", "coefficient"} <= {r for _, r in rules_for([scaled])}
    # without counts the price alone cannot tell a key-in from a clearance: the rule does not run
    alone = {k: v for k, v in scaled.items() if k not in ("raw_counts", "zero_counts")}
    f = facts()
    engine = Engine(f)
    batch = Transactions.from_rows(f, [alone])
    assert engine.score(batch).flags(batch, f) == [] and engine.rules_run()["price_scaling"] == 0


def test_edges_that_do_not_flag() -> None:
    assert (
        rules_for(
            [
                row(stable_ms=400),
                row(seq=2, tare_mg=6_000_000),
                row(seq=3, unit_price_fen_per_kg=1500, amount_fen=1500),
                row(seq=4, tare_mg=50_000, tare_kind="weighed", tare_gross_mg=1_251),  # a bowl: more than e/4
                row(seq=5, tare_mg=50_000, tare_kind="preset", tare_gross_mg=0),  # a keyed PT is legal
                row(seq=6, tare_mg=50_000, tare_gross_mg=0),  # the tare's kind unknown: not judged
                # a clearance at a tenth of the price, weight true (the counts agree): no scaling
                row(seq=7, unit_price_fen_per_kg=300, amount_fen=300),
                row(seq=8, empty_counts=ZERO + round(COEF * 0.002)),  # 2 g of tracking: within e/2
            ]
        )
        == []
    )


def test_zero_offset_beyond_four_percent_of_max() -> None:
    limit_counts = round(COEF * 1.2)  # 4 % of 30 kg = 1.2 kg
    shifted = lambda c: row(zero_counts=ZERO - c, raw_counts=ZERO - c + round(COEF))  # noqa: E731
    assert rules_for([shifted(limit_counts - 10)]) == []
    assert rules_for([shifted(limit_counts + 10)]) == [(1, "zero_offset")]


def test_zero_jumping_between_sales_without_a_zero_setting() -> None:
    base = round(COEF * 0.08)  # 80 g: far below 4 % of Max, far above zero tracking
    honest = [row(seq=k, zero_counts=ZERO + k % 2, raw_counts=counts(1_000_000) + k % 2) for k in range(4)]
    assert rules_for(honest) == []
    toggled = [
        row(seq=k, zero_counts=ZERO - base * (k % 2), raw_counts=counts(1_000_000) - base * (k % 2), zero_set_events=7)
        for k in range(4)
    ]
    assert rules_for(toggled) == [(1, "zero_jump"), (2, "zero_jump"), (3, "zero_jump")]
    # without the zero-setting count the rule cannot tell a power-on zero from a jump: not judged
    assert rules_for([{k: v for k, v in r.items() if k != "zero_set_events"} for r in toggled]) == []
    # the scale says it set zero in between (ZERO key, power-on): the jump itself is excused ...
    excused = [{**r, "zero_set_events": k} for k, r in enumerate(toggled)]
    assert rules_for(excused) == []
    # ... but an empty pan reading 80 g against that zero is not
    caught = [{**r, "empty_counts": ZERO} for r in excused]
    assert rules_for(caught) == [(1, "zero_empty"), (3, "zero_empty")]


def test_over_max_catches_a_weight_shown_times_100() -> None:
    net = 100_000_000  # 100 kg on a 30 kg scale
    assert "over_max" in {r for _, r in rules_for([row(net_mg=net, raw_counts=ZERO + round(COEF * 1.0))])}


def reweigh(seq: int, claimed: int, fair: int, **over) -> dict:
    return {
        "kind": "reweigh",
        "device": "scale-1",
        "seq": seq,
        "ts": 1_764_000_000_000,
        "net_mg": claimed,
        "reference_mg": fair,
        **over,
    }


def test_reweigh_and_check_weighing() -> None:
    # 2 kg (400 e): the stall's in-service MPE 5 g + 2.5 g of rounding, the fair scale (no facts of its
    # own here: the stall's) 5 g + 2 × 2.5 g (its gross and the bag it tares): 17.5 g
    good = reweigh(1, 2_000_000, 1_983_000)
    short = reweigh(2, 2_000_000, 1_981_000)
    assert rules_for([good, short]) == [(2, "reweigh_error")]
    check_ok = {"kind": "check", "net_mg": 10_005_000, "reference_mg": 10_000_000}
    check_bad = {"kind": "check", "seq": 2, "net_mg": 9_987_000, "reference_mg": 10_000_000}
    assert rules_for([row(**check_ok), row(**check_bad)]) == [(2, "check_error")]


def test_unknown_scales_get_only_fact_free_rules() -> None:
    f = ScaleFacts()
    assert rules_for([row(calibration_events=99, amount_fen=1)], f) == [(1, "price_math")]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_honest_scales_raise_no_flag(seed: int) -> None:
    f = facts_for()
    batch = Transactions.from_rows(f, honest_stream(600, seed))
    assert Engine(f).score(batch).flags(batch, f) == []


def as_tuples(engine: Engine, rows: list[dict], cuts: list[int]) -> list[tuple]:
    out = []
    bounds = [0, *sorted(cuts), len(rows)]
    for a, b in itertools.pairwise(bounds):
        batch = Transactions.from_rows(engine.facts, rows[a:b])
        out += [(fl.device, fl.seq, fl.rule, fl.value) for fl in engine.score(batch).flags(batch, engine.facts)]
    return sorted(out)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 1000), st.lists(st.integers(0, 1300), max_size=8))
def test_batch_splitting_and_save_restore_change_nothing(seed: int, cuts: list[int]) -> None:
    rows = mixed_stream(seed)
    cuts = [c for c in cuts if c < len(rows)]
    whole = as_tuples(Engine(facts_for(4)), rows, [])
    assert whole, "the mixed stream must raise flags for the test to mean anything"
    assert as_tuples(Engine(facts_for(4)), rows, cuts) == whole
    first = Engine(facts_for(4))
    half = len(rows) // 2
    part1 = as_tuples(first, rows[:half], [])
    second = Engine(facts_for(4))
    second.restore(first.save())  # a restarted or second worker
    assert sorted(part1 + as_tuples(second, rows[half:], [])) == whole


def test_cusum_catches_a_small_short_weight_within_50_reweighs() -> None:
    f = facts_for(1)
    engine = Engine(f)
    rng = np.random.default_rng(3)
    rows = []
    for k in range(50):  # a 2 % short weight: below the per-weighing tolerance at small loads? no: CUSUM adds up
        ref = int(rng.integers(200, 2000)) * 1000
        rows.append(
            {
                "kind": "reweigh",
                "device": "scale-0",
                "seq": k,
                "ts": k,
                "net_mg": round(ref * 1.02 / 5000) * 5000,
                "reference_mg": ref,
            }
        )
    batch = Transactions.from_rows(f, rows)
    found = [fl for fl in engine.score(batch).flags(batch, f) if fl.rule == "reweigh_cusum"]
    assert found and found[0].seq < 50
    assert engine.status("scale-0")["risk"] == "high"


def test_last_digit_test_flags_readings_piled_on_one_digit() -> None:
    f = facts_for(1)
    rows = [
        row(
            device="scale-0",
            seq=k,
            net_mg=(103 + 10 * k) * 5000,
            raw_counts=ZERO + round(COEF * (103 + 10 * k) * 5000 / 1e6),
            amount_fen=None,
        )
        for k in range(200)
    ]
    for r in rows:
        r.pop("amount_fen")
        r["amount_fen"] = int(round_half_up_price(np.array([r["net_mg"]]), np.array([3000]))[0])
    assert rules_for(rows, f) == [], "off by default: honest portions cluster near round weights"
    batch = Transactions.from_rows(f, rows)
    engine = Engine(f, thresholds=Thresholds(digit_test=True))
    assert [fl.rule for fl in engine.score(batch).flags(batch, f)] == ["last_digit"]
    small = Transactions.from_rows(f, [row(device="scale-0", seq=500, net_mg=15 * 5000)])  # under 100 d: not counted
    assert engine.score(small).flags(small, f) == []


def test_reported_state_rules() -> None:
    f = facts_for(1)
    f.set("scale-0", f.current("scale-0").model_copy(update={"approved_software_id": "ZJ-PCS-FW 2.1.0 crc=5A3C"}))
    engine = Engine(f)
    ok = {"e_mg": 5000, "d_mg": 5000, "software_id": "ZJ-PCS-FW 2.1.0 crc=5A3C", "seq": 1, "ts": 1}
    assert engine.observe_state("scale-0", ok) == []
    bad = {**ok, "d_mg": 1000, "software_id": "ZJ-PCS-FW 2.1.0 crc=0000"}
    flags = engine.observe_state("scale-0", bad)
    assert [fl.rule for fl in flags] == ["e_not_d", "software_id"]
    assert flags[0].as_dict()["reason_zh"].startswith("检定分度值")


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        ("cheat_chip", "coefficient"),
        ("price_math", "price_math"),
        ("throw", "stability"),
        ("zero_trick", "zero_offset"),
        ("price_scaling", "price_scaling"),
    ],
)
def test_simulated_cheats_are_caught_on_every_sale(kind: str, rule: str) -> None:
    f = facts_for(1)
    fw = ScaleFirmware(PROFILE, seed=4, coefficient=COEF, zero_counts=ZERO, cheat=Cheat(kind, ratio=1.1))
    rng = np.random.default_rng(5)
    rows = [
        {
            **fw.sell(ts_ms=k, plu="1001", true_net_mg=int(rng.integers(200, 9000)) * 1000, unit_price_fen_per_kg=3000),
            "device": "scale-0",
            "seq": k,
        }
        for k in range(300)
    ]
    got = rules_for(rows, f)
    assert {seq for seq, r in got if r == rule} == set(range(300))


def test_refunds_round_half_away_from_zero_and_classes_mix_in_one_batch() -> None:
    assert round_half_up_price(np.array([-275_000, 275_000]), np.array([12_300, 12_300])).tolist() == [-3383, 3383]
    # class II (code 1) and class III (code 2) in one array: each by its own band limits
    got = mpe_mg(np.array([600 * 100, 600 * 100]), np.array([100, 100]), np.array([1, 2]), in_service=False)
    assert got.tolist() == [50.0, 100.0]


def test_an_engine_restores_a_state_saved_without_prices_and_counts_rules_run() -> None:
    f = facts()
    old = Engine(f)
    batch = Transactions.from_rows(f, [row(calibration_events=4)])
    old.score(batch)
    fresh = Engine(f)
    fresh.restore(old.state.to_bytes(f.devices))  # a save from before the engine learned prices
    assert fresh.status("scale-1")["flags_by_rule"] == {"counters": 1}
    ran = old.rules_run()
    assert ran["counters"] == 1 and ran["e_not_d"] == 0  # no state row: e ≠ d never ran


def test_the_per_row_engine_judges_prices_against_the_prior_only() -> None:
    f = facts()
    scaled = row(unit_price_fen_per_kg=30, amount_fen=30, raw_counts=counts(10_000))
    batch = Transactions.from_rows(f, [scaled])
    assert "price_scaling" in {fl.rule for fl in Engine(f, stateful=False).score(batch).flags(batch, f)}


def test_a_clock_off_near_a_reverification_is_judged_by_the_counters_it_carries() -> None:
    f = ScaleFacts()
    old = ScaleFact(coefficient=COEF, e_mg=5000, zero_counts=ZERO, calibration_events=3, configuration_events=7)
    t = 1_764_000_000_000
    f.set("scale-1", old)
    f.set("scale-1", old.model_copy(update={"coefficient": 21_000.0, "calibration_events": 4, "verified_ms": t}))
    late_clock = row(ts=t - 2 * 3_600_000, calibration_events=4, raw_counts=ZERO + 21_000)  # new facts, clock 2 h slow
    early_clock = row(seq=2, ts=t + 3_600_000, calibration_events=3)  # old facts, clock 1 h fast
    assert rules_for([late_clock, early_clock], f) == []
    # counters of neither verification are a broken seal, whatever the clock
    assert rules_for([row(seq=3, ts=t + 60_000, calibration_events=9, raw_counts=ZERO + 21_000)], f) == [
        (3, "counters")
    ]
