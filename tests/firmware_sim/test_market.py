"""The demo market: customers buy in bags and trays at realistic rates, with weighed and preset tares and some
small sales; one stall of each cheat method; re-weighs at the fair scale report the receipt's tare."""

from __future__ import annotations

import random
from collections import Counter
from itertools import pairwise

import pytest

from device_profiles import builtin, check_record
from firmware_sim import CHEAT_KINDS, Market, draw_purchase
from firmware_sim.purchases import COMMODITIES, SMALL_COMMODITIES, commodity_medians


def test_purchases_come_in_containers_at_the_markets_rates() -> None:
    rng = random.Random(1)
    purchases = [draw_purchase(rng) for _ in range(20_000)]
    kinds = Counter(p.tare_kind for p in purchases)
    assert kinds[None] / len(purchases) == pytest.approx(0.3, abs=0.02)  # ≈70 % in a container …
    assert kinds["preset"] / (kinds["preset"] + kinds["weighed"]) == pytest.approx(0.5, abs=0.02)  # … half PT
    bags = [p for p in purchases if p.container.startswith("film bag")]
    trays = [p for p in purchases if p.container and not p.container.startswith("film bag")]
    assert {p.container_mg // 1000 for p in bags} <= set(range(2, 9)) and len(bags) > len(trays) > 0
    assert min(p.container_mg for p in trays) >= 60_000 and max(p.container_mg for p in trays) <= 400_000
    small = {plu for plu, *_ in SMALL_COMMODITIES}
    assert sum(p.plu in small for p in purchases) / len(purchases) == pytest.approx(0.2, abs=0.02)
    assert all(100_000 <= p.true_net_mg <= 500_000 for p in purchases if p.plu in small)  # 20–100 e at e = 5 g
    assert set(commodity_medians()) == {plu for plu, *_ in (*COMMODITIES, *SMALL_COMMODITIES)}


def test_the_market_sells_with_tares_and_the_fair_scale_subtracts_the_receipts_tare() -> None:
    market = Market(builtin("zj-pcs-30"), n_scales=10, seed=5, reweigh_rate=0.3).start()
    try:
        assert [s.cheat.kind if s.cheat else "honest" for s in market.stalls[:8]] == list(CHEAT_KINDS)
        assert market.stalls[8].cheat is None and market.fair.firmware.profile.id == "zj-fair-15"
        for k in range(600):
            market.tick(ts_ms=1_764_000_000_000 + k * 1000)
        sales = [t for s in market.stalls for t in s.firmware.pending]
        reweighs = list(market.fair.firmware.pending)
        assert len(sales) == 600 and len(reweighs) > 120
        assert {t.get("tare_kind") for t in sales} == {None, "weighed", "preset"}
        for t in sales:
            check_record({"type": "sale", **t})
        by_txn = {(s.device_id, t["txn"]): t for s in market.stalls for t in s.firmware.pending}
        honest = {s.device_id for s in market.stalls if s.cheat is None}
        for r in reweighs:
            check_record({"type": "reweigh", **r})
            sale = by_txn[(r["stall_device"], r["sale_txn"])]
            assert (r["claimed_mg"], r["claimed_tare_mg"]) == (sale["net_mg"], sale["tare_mg"])
            if r["stall_device"] in honest:  # both scales honest: the nets of one load agree within their errors
                assert abs(r["net_mg"] - r["claimed_mg"]) <= 5_000 + 2_000 + 2_500 + 1_000
        # vendors press ZERO now and then: the counter steps, the zero stays where it was (the pan is empty)
        pressed = [
            (a, b)
            for s in market.stalls
            if s.cheat is None
            for a, b in pairwise(s.firmware.pending)
            if b["zero_set_events"] > a["zero_set_events"]
        ]
        assert pressed and all(abs(b["zero_counts"] - a["zero_counts"]) <= 25 for a, b in pressed)
    finally:
        market.close()
