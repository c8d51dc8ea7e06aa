"""How well the anti-cheating engine judges realistic labelled markets, condition by condition (issue 12).

For each condition of ``firmware_sim.labelled`` (a realistic base market and one variant per stress: all
sales small, keyed tares, honest scales at their MPE in the seller's favour, 1 % re-weighs, heavy price
changes, many re-verifications, preset-base offsets) and each seed, a market of ≥ 200 stalls × 7 days is
generated as rows of the engine's batch input with a registry document (verification history, fair scales'
own facts); a fresh engine scores the rows in arrival order in batches of 5 000. Printed per condition:

- per method: recall per sale over the sales that carry the cheat (price_scaling also at discounted prices),
  share of scales caught (a flag on or after the first cheated row) and the median delay to the first flag
  (sales from the first cheated sale, and hours); for remote_control: the share caught within 50 re-weighs
  at each market's re-weigh rate;
- precision (flagged rows of cheating scales over all flagged rows), honest devices flagged, false positives
  per 10 000 honest rows overall and by rule;
- the done-when goals of issue 12 with PASS/FAIL.

    .venv/bin/python benchmarks/anti_cheat_eval.py [--seeds 3] [--scales 240] [--days 7] [--conditions base,…]
    .venv/bin/python benchmarks/anti_cheat_eval.py --quick            # 1 seed, 80 stalls × 3 days
    .venv/bin/python benchmarks/anti_cheat_eval.py --write /tmp/markets --conditions base --seeds 1
    zhijian anti-cheat score /tmp/markets/base-seed1/rows.jsonl --registry /tmp/markets/base-seed1/registry.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from machine import describe

from anti_cheat import Engine, ScaleFacts
from firmware_sim.labelled import CONDITIONS, METHODS, Condition, remote_trial
from firmware_sim.labelled.dataset import generate
from firmware_sim.labelled.evaluation import (
    WITHIN_REWEIGHS,
    Figures,
    Goal,
    goals,
    measure,
    median,
    score,
    trial_goals,
)

TRIAL_RATES = (0.01, 0.03)


def run_condition(cond: Condition, args: argparse.Namespace) -> Figures:
    name = cond.name
    total = Figures()
    started = time.perf_counter()
    for seed in range(1, args.seeds + 1):
        market = generate(cond, seed=seed)
        if args.write:
            market.write(Path(args.write) / f"{name}-seed{seed}")
        total.merge(
            measure(
                market,
                score(market, Engine(ScaleFacts.from_document(market.registry)).flag_rows, batch_rows=args.batch),
            )
        )
    stalls = cond.markets * cond.scales_per_market
    print(
        f"\n== {name}: {cond.about} — {args.seeds} seed(s) × {stalls} stalls × {cond.days} days, "
        f"{total.rows:,} rows, {time.perf_counter() - started:.1f} s"
    )
    report(total)
    return total


def _fmt(x: float, spec: str = ".3f") -> str:
    return "—" if x != x else format(x, spec)  # NaN: nothing to measure


def report(fig: Figures) -> None:
    print(
        f"{'method':15} {'cheated sales':>13} {'recall':>7} {'discounted':>10} {'scales caught':>13} "
        f"{'median delay':>12} {'(hours)':>8}"
    )
    for m in METHODS:
        f = fig.methods[m]
        if not f.scales:
            continue
        print(
            f"{m:15} {f.cheated_sales:>13,} {_fmt(f.recall):>7} {_fmt(f.discounted_recall):>10} "
            f"{f'{f.caught}/{f.scales}':>13} {_fmt(median(f.delays), '.0f'):>12} "
            f"{_fmt(median(f.delay_hours), '.1f'):>8}"
        )
    rc = fig.methods["remote_control"]
    rates = ", ".join(f"{rate:.0%}: {k}/{n}" for rate, (n, k) in sorted(rc.by_rate.items()))
    print(
        f"remote_control caught within {WITHIN_REWEIGHS} re-weighs (or by the period's end) by re-weigh rate: "
        f"{rates}; median re-weighs to the first flag {_fmt(median(rc.reweighs_to_flag), '.0f')}"
    )
    by_rule = ", ".join(f"{rule} {n}" for rule, n in fig.fp_by_rule.most_common()) or "none"
    print(
        f"precision {_fmt(fig.precision, '.4f')}; honest devices flagged {fig.honest_devices_flagged} of "
        f"{fig.honest_devices}; false positives per 10 000 honest rows {_fmt(fig.fp_per_10k, '.2f')} "
        f"({fig.honest_flagged} of {fig.honest_rows:,}; by rule: {by_rule})"
    )
    if fig.unmatched_flags:
        print(f"flags naming no row of the market: {fig.unmatched_flags}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--scales", type=int, default=240, help="stalls per market, over all its sub-markets")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument(
        "--conditions", default=",".join(CONDITIONS), help="comma-separated, of: " + ", ".join(CONDITIONS)
    )
    parser.add_argument("--batch", type=int, default=5_000, help="rows per engine batch")
    parser.add_argument("--no-trials", action="store_true", help="skip the remote-control trials")
    parser.add_argument("--trial-stalls", type=int, default=60, help="stalls of each remote-control trial")
    parser.add_argument("--quick", action="store_true", help="1 seed, 80 stalls × 3 days, trials of 24 stalls")
    parser.add_argument("--write", metavar="DIR", help="also write each market (rows.jsonl, registry.json, labels)")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.scales, args.days, args.trial_stalls = 1, 80, 3, 24
    names = [n.strip() for n in args.conditions.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONDITIONS]
    if unknown:
        parser.error(f"unknown condition(s) {', '.join(unknown)}; known: {', '.join(CONDITIONS)}")
    print(f"machine: {describe()}")
    started = time.perf_counter()
    judged: list[tuple[str, Goal]] = []
    for name in names:
        fig = run_condition(CONDITIONS[name].scaled(scales=args.scales, days=args.days), args)
        judged += [(name, g) for g in goals(fig, name)]
    for rate in TRIAL_RATES if not args.no_trials else ():
        trial = remote_trial(rate, within_reweighs=WITHIN_REWEIGHS, stalls=args.trial_stalls)
        fig = run_condition(trial, args)
        judged += [(trial.name, g) for g in trial_goals(fig, rate)]
    print(f"\n== goals (issue 12, done when), {args.seeds} seed(s), {time.perf_counter() - started:.0f} s in all")
    for name, g in judged:
        print(f"{'PASS' if g.met else 'FAIL'}  {name:18} {g.what:54} {_fmt(g.value, '.4f'):>8}  {g.target}")
    failed = sum(not g.met for _, g in judged)
    print(f"{failed} of {len(judged)} goals not met" if failed else f"all {len(judged)} goals met")


if __name__ == "__main__":
    main()
