"""The conditions of a real market a labelled evaluation runs under, and the cheat methods it plants.

A :class:`Condition` is data: the realistic base market (bags and trays on the load cell, weighed and keyed
tares, honest drift within the in-service MPE, small sales, price changes, mid-period re-verifications, fair
scales with their own facts, re-weigh rates of 1, 3 and 5 % by market) and one variant per condition that
stresses one of those. Every condition plants every cheat method, so recall is measured under each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ..scale import CHEAT_KINDS, CheatKind

Method = CheatKind
#: every cheat method, at the magnitudes reported (docs/anti_cheat.md "Cheat methods"):
#: cheat_chip: display × 1.1–1.3, counts not; half of them keyed on and off, off after each power-on.
#: remote_control: the load-cell signal itself × 1.02–1.2, for 80 % of customers (off for inspectors).
#: recalibration: the scale's coefficient changed so it reads × 1.05–1.10, calibration counter stepped, no
#: verification; from a power-on on day 0–2.
#: price_math: +1 to +50 fen on the amount, on all sales or 60 % of them.
#: throw: 30–90 % of sales committed unstable or after less than 0.4 s, reading 0–30 % high while moving.
#: zero_trick: a 1.3–2 kg tray, part of the verified load receptor, left out of the zero (15 and 30 kg scales).
#: price_scaling: unit price keyed × 0.1 or × 0.01 (rounded up to the fen) and every weight shown × 10 / × 100;
#: the counts are true.
#: preset_base: zero set 50–150 g below the empty pan (预留底数), toggled per customer; half with the ZERO key
#: (the zero-setting counter steps), half by a hidden function (it does not).
METHODS: tuple[Method, ...] = CHEAT_KINDS  # the simulator's, by the same names


@dataclass(frozen=True, kw_only=True, slots=True)
class Condition:
    """Knobs of a labelled market. Shares are of sales unless named otherwise."""

    name: str
    about: str
    markets: int = 4
    scales_per_market: int = 60
    days: int = 7
    sales_per_day: tuple[float, float] = (60, 140)  # a stall's mean number of sales per day, drawn per stall
    reweigh_rates: tuple[float, ...] = (0.01, 0.03, 0.03, 0.05)  # per market, cycled
    p_small: float = 0.15  # sales of 2–20 e (times the stall type's factor)
    p_container: float = 0.7  # sales in a film bag, tray or basket
    p_bag: float = 0.6  # of the container sales, in a film bag
    p_preset: float = 0.5  # of the container sales, with a keyed preset tare (PT) rather than a weighed one (T)
    mpe_edge_share: float = 0.15  # honest scales drifting to 0.8–1.0 × their in-service MPE, seller's favour
    p_afternoon: float = 0.5  # vendor-days with an afternoon discount
    discount: tuple[float, float] = (0.1, 0.3)
    p_clearance: float = 0.25  # vendor-days with a closing clearance of perishables
    clearance: tuple[float, float] = (0.1, 0.3)  # × the morning price
    reverify_share: float = 0.05  # honest scales re-verified mid-period
    repair_share: float = 0.3  # of those, repaired (new load cell: coefficient and zero change a lot)
    new_software_share: float = 0.3  # of those, with a firmware update (a new approved software id)
    power_cycles_per_day: float = 0.15  # mid-day power cycles (power-on zero) per stall
    check_share: float = 0.3  # stalls an inspector checks with test weights, on one day per market
    cheaters_per_market: dict[str, int] = field(
        default_factory=lambda: {m: 3 if m == "remote_control" else 2 for m in METHODS}
    )
    preset_base_g: tuple[float, float] = (50.0, 150.0)

    def scaled(self, *, scales: int | None = None, days: int | None = None) -> Condition:
        """The same condition with about ``scales`` stalls in all and ``days`` days; the cheaters per market
        shrink in proportion (at least one per method), so honest stalls stay the majority."""
        if scales is None:
            return replace(self, days=self.days if days is None else days)
        per_market = max(1, scales // self.markets)
        share = per_market / self.scales_per_market
        cheaters = {m: max(1, round(n * share)) for m, n in self.cheaters_per_market.items()}
        return replace(
            self,
            scales_per_market=max(per_market, sum(cheaters.values()) + 1),
            days=self.days if days is None else days,
            cheaters_per_market=cheaters,
        )


BASE = Condition(name="base", about="realistic market: all conditions at their usual rates")
CONDITIONS: dict[str, Condition] = {
    c.name: c
    for c in (
        BASE,
        replace(BASE, name="small_sales", about="every sale 2–20 e (herbs, chillies)", p_small=1.0),
        replace(
            BASE,
            name="keyed_tares",
            about="80 % of sales in a container, all with a keyed tare",
            p_container=0.8,
            p_preset=1.0,
        ),
        replace(
            BASE, name="mpe_edge", about="every honest scale at 0.8–1.0 × MPE, seller's favour", mpe_edge_share=1.0
        ),
        replace(BASE, name="reweigh_1pct", about="1 % of customers re-weigh, in every market", reweigh_rates=(0.01,)),
        replace(
            BASE,
            name="price_changes",
            about="every day discounted, clearance on 80 % of vendor-days",
            p_afternoon=1.0,
            p_clearance=0.8,
        ),
        replace(
            BASE,
            name="reverifications",
            about="40 % of honest scales re-verified mid-period",
            reverify_share=0.4,
            repair_share=0.5,
        ),
        replace(
            BASE,
            name="preset_base",
            about="8 preset-base scales per market, 50–150 g, on 6, 15 and 30 kg",
            cheaters_per_market={**BASE.cheaters_per_market, "preset_base": 8},
        ),
    )
}


def remote_trial(rate: float, *, within_reweighs: int = 50, stalls: int = 60) -> Condition:
    """Remote-control scales among honest ones at one re-weigh rate, for long enough that each sees
    ``within_reweighs`` re-weighs (a week at 1 % gives a stall about 7): the remote-control goal is judged here."""
    mean_sales = sum(BASE.sales_per_day) / 2
    per_market = max(2, stalls // 2)
    return replace(
        BASE,
        name=f"remote_trial_{rate:.0%}",
        about=f"remote controls at {rate:.0%} re-weighs, until each had about {within_reweighs} re-weighs",
        markets=2,
        scales_per_market=per_market,
        days=math.ceil(1.3 * within_reweighs / (rate * mean_sales)),
        reweigh_rates=(rate,),
        cheaters_per_market={"remote_control": per_market // 3},
    )
