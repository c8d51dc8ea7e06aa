"""Evidence in grams and %, the sales behind a flag, and the ``unverified_in_use`` rule (one flag per scale and
market day, not one per sale)."""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from anti_cheat import Engine, ScaleFacts, Transactions
from anti_cheat.columns import NO_VALUE
from anti_cheat.evidence import NEVER_VERIFIED, VERIFICATION_FAILED, VERIFICATION_LAPSED, describe
from anti_cheat.facts import NEVER
from anti_cheat.state import Groups, run_lengths
from device_profiles.metrology import FROM_START, ScaleFact
from tests.support.engine_rows import COEF, ZERO, counts, facts, facts_for, mixed_stream, row

DAY = 86_400_000
T0 = 1_764_000_000_000  # 2025-11-24 16:00 UTC: market day starts at 16:00 UTC (local midnight)


def flags_of(rows: list[dict], f: ScaleFacts, engine: Engine | None = None):
    batch = Transactions.from_rows(f, rows)
    return (engine or Engine(f)).score(batch).flags(batch, f)


def reweigh(seq: int, net: int, ref: int, ts: int = T0) -> dict:
    return {"kind": "reweigh", "device": "scale-1", "seq": seq, "ts": ts, "net_mg": net, "reference_mg": ref}


def test_a_reweigh_flag_reads_in_grams_and_percent() -> None:
    (flag,) = [fl for fl in flags_of([reweigh(1, 500_000, 482_000)], facts()) if fl.rule == "reweigh_error"]
    assert (flag.evidence_g, flag.receipt_g, flag.reference_g, flag.sales) == (18.0, 500.0, 482.0, 1)
    assert flag.evidence_pct == 3.73 and flag.limit_g is not None and 0 < flag.limit_g < 18
    assert flag.reason_en.startswith("re-weighed on the fair scale: 482 g against 500 g on the receipt, 18 g (3.73 %)")
    assert "公平秤复秤 482 克，小票 500 克，短少 18 克" in flag.reason_zh
    assert flag.value == 18_000  # the rule's own units stay as they were


def test_a_persistent_short_weight_names_the_reweighs_behind_it() -> None:
    f = facts()
    rows = [reweigh(k, 1_000_000, 970_000, T0 + k) for k in range(12)]  # 30 g short each
    found = [fl for fl in flags_of(rows, f) if fl.rule == "reweigh_cusum"]
    assert found, "a persistent short weight must build up to an alarm"
    assert [fl.sales for fl in found] == list(range(found[0].sales, found[0].sales + len(found)))
    assert found[0].sales >= 2 and found[0].evidence_g == 30.0 and found[0].limit_g is None
    assert found[0].reason_en.startswith(f"{found[0].sales} re-weighs in a row on the fair scale")


def test_coefficient_flag_says_what_the_load_cell_measured() -> None:
    chip = row(net_mg=1_100_000, raw_counts=counts(1_000_000))
    (flag,) = flags_of([chip], facts())
    assert flag.rule == "coefficient" and flag.evidence_g == 100.0 and flag.evidence_pct == 10.0
    assert (flag.receipt_g, flag.reference_g) == (1100.0, 1000.0)
    assert "showed 1100 g where its load cell measured 1000 g: +100 g (10 %" in flag.reason_en


def test_runs_of_a_cusum_restart_at_zero_and_carry_across_batches() -> None:
    g = Groups.of(np.array([0, 0, 0, 0, 1, 1, 1], dtype=np.int64))
    s = np.array([0, 5, 7, 0, 3, 4, 0], dtype=np.int64)
    assert run_lengths(g, s, np.array([0, 0], dtype=np.int64)).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert run_lengths(g, s, np.array([9, 4], dtype=np.int64)).tolist() == [0, 1, 2, 0, 5, 6, 0]
    empty = np.zeros(0, dtype=np.int64)
    assert len(run_lengths(Groups.of(empty), empty, empty)) == 0


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 1000), st.lists(st.integers(0, 1300), max_size=5))
def test_the_sales_behind_each_flag_do_not_depend_on_batches(seed: int, cuts: list[int]) -> None:
    rows = mixed_stream(seed)

    def run(engine: Engine, parts: list[int]) -> list[tuple]:
        out = []
        for a, b in itertools.pairwise([0, *sorted(c for c in parts if c < len(rows)), len(rows)]):
            out += [(fl.seq, fl.rule, fl.sales, fl.evidence_g) for fl in flags_of(rows[a:b], engine.facts, engine)]
        return sorted(out)

    whole = run(Engine(facts_for(4)), [])
    assert any(s > 1 for _, _, s, _ in whole)
    assert run(Engine(facts_for(4)), cuts) == whole


def test_describe_every_kind_of_evidence() -> None:
    none = NO_VALUE

    def ev(rule: str, value: float, limit: float, net: int = 1_000_000, ref: int = none, tare: int = 0, mx: int = 0):
        return describe(
            rule, value, limit, net_mg=net, reference_mg=ref, tare_mg=tare, max_mg=mx, sales=1, en="E", zh="Z"
        )

    check = ev("check_error", 6_000, 5_000, net=2_006_000, ref=2_000_000)
    assert (check.evidence_g, check.evidence_pct, check.limit_g) == (6.0, 0.3, 5.0)
    assert check.en == "check weighing with a 2000 g test weight read 2006 g: +6 g (0.3 %, MPE 5 g)"
    assert ev("zero_empty", 50_000, 6_000).en == "the empty pan reads +50 g: 5 % of this 1000 g sale (limit 6 g)"
    assert ev("zero_jump", -20_000, 11_000).zh.startswith("零点未经置零移动 -20 克")
    offset = ev("zero_offset", 1_500_000, 1_200_000, mx=30_000_000)
    assert (offset.evidence_g, offset.evidence_pct, offset.limit_g) == (1500.0, 5.0, 1200.0)
    assert offset.en == "the zero lies 1500 g from the verified zero (5 % of Max), limit 1200 g"
    assert offset.zh == "零点偏离检定零点 1500 克（最大秤量的 5 %），限 1200 克"
    assert ev("tare_at_zero_gross", 50_000, 0.0).limit_g is None
    over = ev("over_max", 40_000_000, 30_045_000)  # no Max known: no share of it
    assert over.evidence_pct is None and over.en == "gross weight 40000 g exceeds Max + 9 e = 30045 g"
    price = ev("price_math", 50, 0.0)
    assert price.en == "the amount charged differs from weight × unit price by +0.50 yuan" and "+0.50 元" in price.zh
    assert ev("reweigh_error", 18_000, 5_000).en == "E"  # no fair reading in the row: the rule's own words
    assert ev("reweigh_error", 18_000, 5_000, net=none, ref=482_000).receipt_g is None
    plain = ev("stability", 1, 0.0, net=none)
    assert (plain.evidence_g, plain.receipt_g, plain.en, plain.zh) == (None, None, "E", "Z")
    assert ev("unverified_in_use", math.nan, NEVER_VERIFIED).en == "selling with no verification on record"
    assert ev("unverified_in_use", 3.0, VERIFICATION_FAILED).en == "selling 3 days after failing its verification"
    lapsed = ev("unverified_in_use", 40.0, VERIFICATION_LAPSED)
    assert lapsed.en == "selling 40 days after its verification was due" and "40 天" in lapsed.zh
    assert ev("check_error", 1, 1, net=0, ref=0).evidence_pct is None  # a zero reference is none: the rule's words


def test_describe_a_zero_weight_and_an_unknown_figure() -> None:
    zero = describe(
        "zero_empty", 5, 1, net_mg=0, reference_mg=NO_VALUE, tare_mg=NO_VALUE, max_mg=0, sales=1, en="", zh=""
    )
    assert zero.evidence_pct is None and "? % of this 0 g sale" in zero.en


def sales(ts: int, n: int = 1, device: str = "scale-1", seq: int = 1) -> list[dict]:
    return [row(device=device, seq=seq + k, ts=ts + k) for k in range(n)]


def unverified(f: ScaleFacts, **scales: int) -> None:
    f.set_unverified(
        np.array([d.replace("_", "-").encode() for d in scales], dtype=np.bytes_), np.array(list(scales.values()))
    )


def test_a_scale_never_verified_is_flagged_once_per_market_day() -> None:
    f = ScaleFacts()
    unverified(f, scale_9=FROM_START)
    engine = Engine(f)
    first = flags_of(sales(T0, 5, "scale-9"), f, engine)
    assert [(fl.rule, fl.seq, fl.sales, fl.severity) for fl in first] == [("unverified_in_use", 1, 5, "medium")]
    assert first[0].reason_en == "selling with no verification on record" and math.isnan(first[0].value)
    assert flags_of(sales(T0 + 3_600_000, 3, "scale-9", 10), f, engine) == []  # the same day: no flood
    restarted = Engine(f)
    restarted.restore(engine.save())  # a worker restart does not flag the day again
    assert flags_of(sales(T0 + 7_200_000, 1, "scale-9", 20), f, restarted) == []
    next_day = flags_of(sales(T0 + DAY, 2, "scale-9", 30), f, restarted)
    assert [(fl.seq, fl.sales) for fl in next_day] == [(30, 2)]
    assert Engine(f).judged.sum() == 0 and restarted.rules_run()["unverified_in_use"] == 3


def test_a_failed_verification_flags_the_sales_after_it_and_a_passed_one_clears_it() -> None:
    f = facts()
    unverified(f, scale_1=T0 + 1_000)
    engine = Engine(f)
    assert flags_of(sales(T0), f, engine) == []  # before it failed: the verification in force held
    (flag,) = flags_of(sales(T0 + 2 * DAY, 1, seq=5), f, engine)
    assert (flag.rule, flag.reason_en, flag.limit) == (
        "unverified_in_use",
        "selling 2 days after failing its verification",
        1,
    )
    unverified(f)  # re-verified: the registry names it no more
    assert flags_of(sales(T0 + 3 * DAY, 1, seq=9), f, engine) == []
    assert f.unverified_from_ms[f.index_of("scale-1")] == NEVER


def test_a_lapsed_verification_is_flagged_per_day_and_many_scales_in_one_batch() -> None:
    f = facts(verification_due_ms=T0 - 40 * DAY)
    for i in range(2, 40):  # more scales than the facts' first capacity, none verified
        f.index_of(f"scale-{i}")
    unverified(f, **{f"scale_{i}": FROM_START for i in range(2, 40)})
    rows = (
        sales(T0, 2) + [r for i in range(2, 40) for r in sales(T0 + DAY, 1, f"scale-{i}")] + sales(T0 + DAY, 1, seq=7)
    )
    found = [fl for fl in flags_of(rows, f) if fl.rule == "unverified_in_use"]
    assert len(found) == 2 + 38
    lapsed = [fl for fl in found if fl.device == "scale-1"]
    assert [(fl.seq, fl.sales) for fl in lapsed] == [(1, 2), (7, 1)]
    assert lapsed[0].reason_en == "selling 40 days after its verification was due"


def test_set_unverified_adds_scales_it_did_not_know() -> None:
    f = ScaleFacts()
    unverified(f, scale_new=FROM_START)
    assert f.unverified_from_ms[f.index_of("scale-new")] == FROM_START
    big = ScaleFacts()
    for i in range(40):
        big.set(f"s-{i}", ScaleFact(coefficient=COEF, e_mg=5000, zero_counts=ZERO))
    assert (big.unverified_from_ms[: len(big)] == NEVER).all()
