"""How well the anti-cheating engine catches each cheat method, on labelled simulated markets.

For fixed seeds, firmware_sim generates markets of honest scales and scales cheating in each way of
shared/domain/METROLOGY.md, at the magnitudes reported there, with customers re-weighing at the fair
scale; the engine scores them in arrival order, in batches. Printed per method:

- recall: share of the method's sales that got at least one flag (a remote control leaves no trace in a
  sale, so its figure that counts is the next one);
- scales caught within 50 re-weighs: share of the method's scales flagged (any rule, any row) before
  their 51st re-weigh — the goal for remote control and re-calibration;
- delay: median over the method's scales of the transactions (sales + re-weighs) until the first flag;
and overall: precision (flagged rows that belong to cheating scales) and false positives per 10 000
honest rows. Goals (issue 5): recall ≥ 0.99 for methods visible in the record, ≥ 0.9 within 50
re-weighs for remote control and re-calibration, ≤ 1 false positive per 10 000 honest transactions.

    .venv/bin/python benchmarks/anti_cheat_eval.py [--seeds 3] [--sales 400]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

from machine import describe

from anti_cheat import Engine, ScaleFacts, Transactions
from firmware_sim.labelled_market import MAGNITUDES, generate

BATCH = 5_000


def evaluate(seed: int, sales: int, reweigh_rate: float) -> dict[str, dict[str, float]]:
    market = generate(seed=seed, sales_per_scale=sales, reweigh_rate=reweigh_rate)
    facts = ScaleFacts.from_mapping(market.registry["scales"], market.registry["commodity_median"])
    engine = Engine(facts)
    flagged: set[tuple[str, int]] = set()
    for start in range(0, len(market.rows), BATCH):
        chunk = market.rows[start : start + BATCH]
        batch = Transactions.from_rows(facts, chunk)
        flagged.update((f.device, f.seq) for f in engine.score(batch).flags(batch, facts))
    rows_of: dict[str, int] = defaultdict(int)
    hits_of: dict[str, int] = defaultdict(int)
    first_flag: dict[str, int] = {}
    reweighs_before_flag: dict[str, int] = {}
    seen: dict[str, int] = defaultdict(int)
    reweighs: dict[str, int] = defaultdict(int)
    for row in market.rows:
        device, truth = row["device"], row["truth"]
        seen[device] += 1
        reweighs[device] += row["kind"] == "reweigh"
        hit = (device, row["seq"]) in flagged
        if row["kind"] == "sale" or truth == "honest":  # recall over sales; false positives over every row
            rows_of[truth] += 1
            hits_of[truth] += hit
        if hit:
            first_flag.setdefault(device, seen[device])
            reweighs_before_flag.setdefault(device, reweighs[device])
    results: dict[str, dict[str, float]] = {}
    for method in ["honest", *MAGNITUDES]:
        scales = [d for d, t in market.truth.items() if t == method]
        within50 = sum(1 for d in scales if d in reweighs_before_flag and reweighs_before_flag[d] <= 50)
        delays = [first_flag[d] for d in scales if d in first_flag]
        results[method] = {
            "rows": rows_of[method],
            "hits": hits_of[method],
            "scales": len(scales),
            "caught_50": within50,
            "delay": statistics.median(delays) if delays else float("nan"),
            "missed_scales": len(scales) - len(delays),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sales", type=int, default=400, help="sales per scale")
    parser.add_argument("--reweigh-rate", type=float, default=0.05)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    started = time.perf_counter()
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    delays: dict[str, list[float]] = defaultdict(list)
    for seed in range(1, args.seeds + 1):
        for method, r in evaluate(seed, args.sales, args.reweigh_rate).items():
            for key in ("rows", "hits", "scales", "caught_50", "missed_scales"):
                totals[method][key] += r[key]
            delays[method].append(r["delay"])
    print(
        f"{args.seeds} seeds, {args.sales} sales per scale, re-weigh rate {args.reweigh_rate:.0%}, "
        f"{time.perf_counter() - started:.1f} s"
    )
    print(f"{'method':16} {'sales':>8} {'recall':>8} {'caught≤50 re-weighs':>20} {'median delay':>13}")
    for method in MAGNITUDES:
        t = totals[method]
        median_delay = statistics.median(delays[method])
        print(
            f"{method:16} {int(t['rows']):>8} {t['hits'] / t['rows']:>8.3f} "
            f"{t['caught_50'] / t['scales']:>20.2f} {median_delay:>13.1f}"
        )
    honest = totals["honest"]
    cheating_hits = sum(totals[m]["hits"] for m in MAGNITUDES)
    precision = cheating_hits / (cheating_hits + honest["hits"]) if cheating_hits + honest["hits"] else float("nan")
    print(f"precision (flagged rows that are cheating scales'): {precision:.4f}")
    print(
        f"false positives per 10 000 honest rows: {honest['hits'] / honest['rows'] * 10_000:.2f} "
        f"({int(honest['hits'])} of {int(honest['rows'])})"
    )


if __name__ == "__main__":
    main()
