"""Anti-cheating engine speed: transactions/s for the per-row rules alone and for all rules, per core,
and memory per scale. Columns are generated with numpy (honest-looking sales of --scales scales, 5 %
re-weighs) so the figure is the engine's, not JSON decoding's; the row→column conversion that the
ingest and the CLI do is timed separately.

Goals (issue 5): ≥ 5 M transactions/s per core for the stateless rules, ≥ 1 M for all rules.

    .venv/bin/python benchmarks/anti_cheat_speed.py [--transactions 1000000] [--batch 100000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from machine import describe, median

from anti_cheat import Engine, ScaleFacts, Transactions
from anti_cheat.columns import NO_VALUE
from anti_cheat.engine import round_half_up_price
from device_profiles.metrology import ScaleFact

T0 = 1_764_000_000_000


def make_facts(scales: int) -> ScaleFacts:
    """Scales in 50 markets; one in a hundred re-verified mid-period (two verifications in force in turn)."""
    facts = ScaleFacts()
    for i in range(scales):
        fact = ScaleFact(
            coefficient=20_000.0,
            e_mg=5000,
            zero_counts=120_000,
            calibration_events=3,
            configuration_events=7,
            market=f"market-{i % 50:02d}",
        )
        facts.set(f"scale-{i:06d}", fact)
        if i % 100 == 0:
            facts.set(f"scale-{i:06d}", fact.model_copy(update={"verified_ms": T0 + 3 * 86_400_000}))
    facts.commodity_median = {str(p): 3000 for p in range(1000, 1020)}
    return facts


def make_batch(n: int, scales: int, rng: np.random.Generator, seq0: int) -> Transactions:
    net = rng.integers(20, 3000, n) * 5000
    price = rng.integers(200, 9000, n)
    kind = (rng.random(n) < 0.05).astype(np.int64)  # 5 % re-weighs
    tare = np.where(rng.random(n) < 0.7, rng.integers(2, 400, n) * 1000, 0)  # bags and trays on the pan
    tare_kind = np.where(tare > 0, rng.integers(1, 3, n), NO_VALUE)  # weighed or preset
    none = np.full(n, NO_VALUE)
    return Transactions(
        kind=kind,
        scale=(scale := rng.integers(0, scales, n)),
        source=scale,
        plu=rng.integers(1, 21, n),  # codes of the PLUs 1000-1019
        stable=np.ones(n, dtype=np.int64),
        tare_kind=tare_kind,
        software=none,
        seq=np.arange(seq0, seq0 + n),
        ts=T0 + seq0 * 60 + np.arange(n) * 60,  # a million transactions over about a week
        net_mg=net,
        tare_mg=tare,
        tare_gross_mg=np.where(tare_kind == 1, tare, NO_VALUE),
        unit_price=price,
        amount_fen=round_half_up_price(net, price),
        stable_ms=np.full(n, 800),
        raw_counts=120_000 + (net + tare) // 50,
        zero_counts=np.full(n, 120_000),
        empty_counts=np.full(n, 120_000),
        zero_set_events=np.full(n, 1),
        calibration_events=np.full(n, 3),
        configuration_events=np.full(n, 7),
        reference_mg=np.where(kind == 1, net + rng.integers(-2500, 2500, n), NO_VALUE),
        reported_e_mg=none,
        reported_d_mg=none,
    )


def run(engine: Engine, batches: list[Transactions]) -> float:
    t0 = time.process_time()  # CPU time of this process: one core's worth of work
    for b in batches:
        engine.score(b)
    return sum(len(b) for b in batches) / (time.process_time() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--scales", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {describe()}; OPENBLAS/OMP threads: {os.environ.get('OMP_NUM_THREADS', 'default')}")
    rng = np.random.default_rng(1)
    facts = make_facts(args.scales)
    batches = [make_batch(args.batch, args.scales, rng, k * args.batch) for k in range(args.transactions // args.batch)]
    stateless, full = [], []
    for _ in range(args.runs):  # interleaved, so both see the same machine noise
        stateless.append(run(Engine(facts, stateful=False), batches))
        full.append(run(Engine(facts), batches))
    engine = Engine(facts)
    engine.score(batches[0])
    state_bytes = sum(getattr(engine.state, n).nbytes for n in engine.state._ARRAYS) / len(engine.state)
    fact_bytes = sum(a.nbytes for a in vars(facts).values() if isinstance(a, np.ndarray)) / len(facts)
    rows = [
        {
            "device": f"scale-{i % args.scales:06d}",
            "seq": i,
            "ts": i,
            "plu": "1001",
            "net_mg": 500_000,
            "unit_price_fen_per_kg": 3000,
            "amount_fen": 1500,
            "stable": True,
            "stable_ms": 800,
            "raw_counts": 130_000,
            "zero_counts": 120_000,
            "calibration_events": 3,
            "configuration_events": 7,
        }
        for i in range(100_000)
    ]
    t0 = time.process_time()
    Transactions.from_rows(facts, rows)
    convert = len(rows) / (time.process_time() - t0)
    print(
        f"{args.transactions:,} transactions in batches of {args.batch:,}, {args.scales:,} scales, "
        f"median of {args.runs} runs (CPU time, one core):"
    )
    print(f"  per-row rules only: {median(stateless) / 1e6:.2f} M transactions/s (goal ≥ 5)")
    print(f"  all rules:          {median(full) / 1e6:.2f} M transactions/s (goal ≥ 1)")
    print(f"  rows → columns (ingest/CLI decoding side): {convert / 1e6:.2f} M rows/s")
    print(
        f"  memory per scale: {state_bytes + fact_bytes:.0f} bytes "
        f"(state {state_bytes:.0f}, facts {fact_bytes:.0f}, plus the device id string)"
    )


if __name__ == "__main__":
    main()
