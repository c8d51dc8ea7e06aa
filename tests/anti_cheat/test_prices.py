"""Reference prices learned per market, commodity and day: split-invariant, robust, used by price_scaling."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from anti_cheat import Engine, ScaleFacts, Transactions
from anti_cheat.prices import DAY_MS, PriceBook, bin_price
from device_profiles.metrology import ScaleFact

T0 = 1_764_000_000_000 - 8 * 3_600_000  # a market-day boundary (UTC+8 midnight) is a multiple of DAY_MS
KW = {"min_sales": 3, "day_offset_ms": 8 * 3_600_000}


def stream(seed: int, n: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    market = rng.integers(0, 3, n).astype(np.int64)
    plu = rng.integers(1, 4, n).astype(np.int64)
    day = np.sort(rng.integers(0, 5, n))
    late = rng.random(n) < 0.05  # a few sales arrive after the next day began
    day = np.where(late, np.maximum(day - 1, 0), day)
    ts = T0 + day * DAY_MS + rng.integers(0, DAY_MS, n)
    price = (1000 * (1 + market) * plu * rng.uniform(0.7, 1.3, n)).astype(np.int64)
    return market, plu, ts, price


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(1, 399), max_size=6))
def test_the_references_do_not_depend_on_how_the_stream_is_split(seed: int, cuts: list[int]) -> None:
    market, plu, ts, price = stream(seed, 400)
    whole = PriceBook().observe(market, plu, ts, price, **KW)
    book, parts = PriceBook(), []
    bounds = [0, *sorted(set(cuts)), 400]
    for a, b in itertools.pairwise(bounds):
        parts.append(book.observe(market[a:b], plu[a:b], ts[a:b], price[a:b], **KW))
    assert np.concatenate(parts).tolist() == whole.tolist()


def test_the_first_day_has_no_reference_and_the_next_day_has_the_median() -> None:
    n = 50
    market, plu = np.zeros(2 * n, np.int64), np.ones(2 * n, np.int64)
    ts = np.r_[np.full(n, T0 + 3_600_000), np.full(n, T0 + DAY_MS + 3_600_000)]
    price = np.r_[np.linspace(2000, 4000, n).astype(np.int64), np.full(n, 100)]  # day 2: a clearance at 1/30
    ref = PriceBook().observe(market, plu, ts, price, **KW)
    assert (ref[:n] == -1).all()
    learned = bin_price(ref[n:])
    assert np.all(np.abs(learned / 3000 - 1) < 0.06)  # day 1's median, not day 2's clearance


def facts() -> ScaleFacts:
    f = ScaleFacts()
    for i in range(20):
        f.set(f"s-{i}", ScaleFact(coefficient=20_000.0, e_mg=5000, zero_counts=120_000, market="cheap-market"))
    f.commodity_median = {"1001": 3000}  # the city's list price: ten times what this market charges
    return f


def sale(i: int, k: int, day: int, price: int, *, net: int = 1_000_000, shown_factor: int = 1) -> dict:
    return {
        "device": f"s-{i}",
        "seq": k,
        "ts": T0 + day * DAY_MS + 9 * 3_600_000 + k * 1000,
        "plu": "1001",
        "net_mg": net * shown_factor,
        "tare_mg": 0,
        "unit_price_fen_per_kg": price,
        "amount_fen": round(net * shown_factor * price / 1_000_000),
        "raw_counts": 120_000 + round(20 * net / 1000),
        "zero_counts": 120_000,
    }


def test_a_market_priced_far_below_the_list_is_learned_and_a_key_in_there_is_caught() -> None:
    f = facts()
    engine = Engine(f)

    def key_in(seq: int, day: int) -> dict:  # a tenth of the market's 3.00 yuan/kg, weight shown ×10
        return sale(3, seq, day, 30, shown_factor=10)

    # day 0: the market sells at 3.00 yuan/kg, a tenth of the city's list: honest sales (counts agree) are
    # not flagged, and a key-in at 0.30 is a hundredth of the list, not the tenth its weight shows: missed
    rows = [sale(k % 20, k, 0, 300) for k in range(40)] + [key_in(100, 0)]
    batch = Transactions.from_rows(f, rows)
    assert "price_scaling" not in {fl.rule for fl in engine.score(batch).flags(batch, f)}
    # day 1: against the market's own price learned from day 0, the same key-in is caught; a clearance at a
    # fifth with the weight true is not
    rows = [sale(k % 20, 200 + k, 1, 300) for k in range(40)] + [key_in(300, 1), sale(4, 301, 1, 60)]
    batch = Transactions.from_rows(f, rows)
    got = {(fl.seq, fl.rule) for fl in engine.score(batch).flags(batch, f)}
    assert (300, "price_scaling") in got and not any(seq != 300 for seq, _ in got)
