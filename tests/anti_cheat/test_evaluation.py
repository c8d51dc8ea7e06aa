"""The labelled markets are physically self-consistent and honestly labelled, and the engine meets issue 12's
goals on a small one (``benchmarks/anti_cheat_eval.py`` measures ≥ 200 stalls × 7 days, three seeds, per
condition)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from anti_cheat import Engine, ScaleFacts
from firmware_sim.labelled import BASE, CONDITIONS, METHODS, generate
from firmware_sim.labelled.evaluation import goals, measure, score
from firmware_sim.labelled.physics import STALL_CAPACITIES, amount_fen, max_span_error, mpe_mg

#: every condition of a real market at once, small: keyed tares, re-verifications, checks, price changes
SMALL = replace(
    BASE,
    name="small",
    markets=2,
    scales_per_market=30,
    days=2,
    reweigh_rates=(0.05,),
    reverify_share=0.25,
    check_share=1.0,
    p_afternoon=0.8,
    p_clearance=0.5,
    cheaters_per_market=dict.fromkeys(METHODS, 1),
)


@pytest.fixture(scope="module")
def market():
    return generate(SMALL, seed=1)


def in_force(market) -> Any:
    history: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for v in market.registry["verifications"]:
        history[v["device"]].append(v)

    def facts(device: str, ts: int) -> dict[str, Any]:
        versions = sorted(history[device], key=lambda v: v["verified_ms"])
        return [v for v in versions if v["verified_ms"] <= ts][-1]

    return facts


def rows_of(market, kind: str, truth: str | None = None) -> list[dict[str, Any]]:
    return [r for r in market.rows if r["kind"] == kind and (truth is None or r["truth"] == truth)]


def test_every_condition_is_present(market) -> None:
    sales = rows_of(market, "sale")
    assert {r.get("tare_kind") for r in sales} == {None, "weighed", "preset"}
    assert {r["phase"] for r in sales} == {"morning", "afternoon", "clearance"}
    assert any(s["reverified_ms"] for s in market.scales.values())
    assert {s["max_g"] for s in market.scales.values()} == {c.max_g for c in STALL_CAPACITIES}
    small = [r for r in sales if r["true_net_mg"] <= 20 * market.registry["scales"][r["device"]]["e_mg"]]
    assert len(small) > 0.05 * len(sales)
    assert rows_of(market, "check") and rows_of(market, "reweigh") and rows_of(market, "state")
    assert set(market.truth.values()) == {"honest", *METHODS}


def test_rows_are_engine_input_in_arrival_order(market) -> None:
    ScaleFacts.from_document(market.registry)  # the registry document validates
    ts = [r["ts"] for r in market.rows]
    assert ts == sorted(ts)
    last: dict[str, int] = {}
    keys = set()
    for r in market.rows:
        sender = r.get("source") or r["device"]
        assert r["seq"] > last.get(sender, -1)
        last[sender] = r["seq"]
        keys.add((r["device"], sender, r["seq"]))
        assert None not in r.values()  # absent, never null
        assert r["device"] in market.registry["scales"]
    assert len(keys) == len(market.rows)
    for r in rows_of(market, "reweigh"):
        assert r["source"] == f"fair-{market.registry['scales'][r['device']]['market']}"


def test_honest_display_is_the_counts_within_rounding(market) -> None:
    """The load cell counts the gross load: (raw − zero) / coefficient is net + tare, whatever the tare."""
    facts = in_force(market)
    for r in rows_of(market, "sale", "honest") + rows_of(market, "check", "honest"):
        f = facts(r["device"], r["ts"])
        implied = (r["raw_counts"] - r["zero_counts"]) * 1e6 / f["coefficient"]
        assert abs(r["net_mg"] + r["tare_mg"] - implied) <= f["d_mg"] / 2 + 1e-6
        if r.get("tare_kind") == "weighed":
            assert r["tare_gross_mg"] == r["tare_mg"]


def test_honest_errors_stay_within_the_in_service_mpe(market) -> None:
    facts = in_force(market)
    untared = [r for r in rows_of(market, "sale", "honest") if "tare_kind" not in r]
    for r in untared + rows_of(market, "check", "honest"):
        f = facts(r["device"], r["ts"])
        true = r["reference_mg"] if r["kind"] == "check" else r["true_net_mg"]
        assert abs(r["net_mg"] - true) <= mpe_mg(true, f["e_mg"]) + f["d_mg"] / 2
    edge = generate(replace(SMALL, name="edge", mpe_edge_share=1.0, days=1), seed=2)
    for device, s in edge.scales.items():
        cap = next(c for c in STALL_CAPACITIES if c.max_g == s["max_g"])
        bound = max_span_error(cap)
        assert all(abs(span) <= bound for span in s["span"])
        if s["method"] == "honest" and not s["reverified_ms"]:
            assert 0.8 * bound <= s["span"][0], device  # at its MPE, reading heavy


def test_honest_zero_moves_only_by_zero_tracking(market) -> None:
    facts = in_force(market)
    last: dict[str, dict[str, Any]] = {}
    for r in rows_of(market, "sale", "honest"):
        f = facts(r["device"], r["ts"])
        quarter_e = f["coefficient"] * f["e_mg"] / 1e6 / 4
        assert abs(r["empty_counts"] - r["zero_counts"]) <= quarter_e
        before = last.get(r["device"])
        if before is not None and before["zero_set_events"] == r["zero_set_events"]:
            assert abs(r["zero_counts"] - before["zero_counts"]) <= quarter_e
        last[r["device"]] = r


def test_cheats_carry_their_signature(market) -> None:
    facts = in_force(market)
    cheated: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows_of(market, "sale"):
        assert not (r["truth"] == "honest" and r["cheated"])
        if r["cheated"]:
            cheated[r["truth"]].append(r)
    assert set(cheated) == set(METHODS)
    for method, rows in cheated.items():
        for r in rows:
            f = facts(r["device"], r["ts"])
            gross_from_counts = (r["raw_counts"] - r["zero_counts"]) * 1e6 / f["coefficient"]
            off = abs(r["net_mg"] + r["tare_mg"] - gross_from_counts) > f["d_mg"] / 2 + 1e-6
            empty_off = (r["empty_counts"] - r["zero_counts"]) * 1e6 / f["coefficient"]
            if method in ("cheat_chip", "recalibration", "price_scaling"):
                assert off, method  # the display left the counts
            if method in ("remote_control", "zero_trick", "preset_base", "throw", "price_math"):
                assert not off, method  # counts and display agree
            if method == "recalibration":
                assert r["calibration_events"] == f["calibration_events"] + 1
            if method == "throw":
                assert not r["stable"] or r["stable_ms"] < 400
            if method == "price_math":
                assert r["amount_fen"] > int(amount_fen(np.int64(r["net_mg"]), np.int64(r["unit_price_fen_per_kg"])))
            if method == "preset_base":
                assert 50_000 - f["d_mg"] <= empty_off <= 150_000 + f["d_mg"]
            if method == "zero_trick":
                assert 1_300_000 - f["d_mg"] <= empty_off <= 2_000_000 + f["d_mg"]
    for r in rows_of(market, "sale", "honest"):
        assert r["stable"] and r["stable_ms"] >= 400


def test_a_seed_gives_one_market() -> None:
    cond = replace(SMALL, name="tiny", markets=1, scales_per_market=12, days=1)
    assert generate(cond, seed=4).rows == generate(cond, seed=4).rows
    assert generate(cond, seed=4).rows != generate(cond, seed=5).rows
    assert generate(cond, seed=4).registry == generate(cond, seed=4).registry


def test_every_condition_generates() -> None:
    for name, cond in CONDITIONS.items():
        m = generate(cond.scaled(scales=36, days=1), seed=3)
        assert m.rows and any(r["cheated"] for r in m.rows), name


def test_the_engine_meets_the_goals_on_a_small_market(market) -> None:
    """Issue 12's done-when goals (FP ≤ 1 per 10 000 honest rows; recall per sale ≥ 0.99 / ≥ 0.9 for preset
    base) and every remote-control scale caught by the end, on a small base-like market."""
    fig = measure(market, score(market, Engine(ScaleFacts.from_document(market.registry)).flag_rows))
    missed = [f"{g.what}: {g.value:.4f} (goal {g.target})" for g in goals(fig, "base") if not g.met]
    assert not missed, missed
    rc = fig.methods["remote_control"]
    assert rc.caught == rc.scales
    assert fig.unmatched_flags == 0
