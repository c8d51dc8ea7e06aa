"""The engine on a small labelled market meets the issue's quality goals (the benchmark measures more)."""

from __future__ import annotations

from anti_cheat import Engine, ScaleFacts, Transactions
from firmware_sim.labelled_market import MAGNITUDES, generate


def test_goals_on_a_small_labelled_market() -> None:
    market = generate(honest_scales=20, scales_per_method=4, sales_per_scale=150, seed=11)
    facts = ScaleFacts.from_mapping(market.registry["scales"], market.registry["commodity_median"])
    engine = Engine(facts)
    flagged: set[tuple[str, int]] = set()
    for start in range(0, len(market.rows), 3000):
        batch = Transactions.from_rows(facts, market.rows[start : start + 3000])
        flagged |= {(f.device, f.seq) for f in engine.score(batch).flags(batch, facts)}
    honest = [r for r in market.rows if r["truth"] == "honest"]
    assert sum((r["device"], r["seq"]) in flagged for r in honest) == 0
    for method in MAGNITUDES:
        sales = [r for r in market.rows if r["truth"] == method and r["kind"] == "sale"]
        recall = sum((r["device"], r["seq"]) in flagged for r in sales) / len(sales)
        scales = {d for d, t in market.truth.items() if t == method}
        caught = {d for d, _ in flagged if d in scales}
        if method == "remote_control":
            assert caught == scales  # by the re-weighs, at the fair scale
        else:
            assert recall >= 0.99, f"{method}: recall {recall:.3f}"
