"""A single labelled market sized by scales and sales, for tests that need a small one: the realistic base
condition of :mod:`firmware_sim.labelled` (bags and trays on the load cell, weighed and keyed tares, drift within
the MPE, price changes, fair scale) with every cheat method, in one market at one re-weigh rate.

The conditions, the evaluation and the physics live in :mod:`firmware_sim.labelled`; this keeps the older
entry point's arguments.
"""

from __future__ import annotations

import math
from dataclasses import replace

from .labelled import BASE, LABELS, METHODS, LabelledMarket
from .labelled import generate as generate_condition

__all__ = ["LABELS", "METHODS", "LabelledMarket", "generate"]


def generate(
    *,
    honest_scales: int = 60,
    scales_per_method: int = 12,
    sales_per_scale: int = 400,
    reweigh_rate: float = 0.05,
    seed: int = 2026,
) -> LabelledMarket:
    """One market: ``honest_scales`` honest stalls and ``scales_per_method`` for each cheat method, about
    ``sales_per_scale`` sales each (at most 100 a day), ``reweigh_rate`` of customers re-weighing."""
    days = max(1, math.ceil(sales_per_scale / 100))
    per_day = sales_per_scale / days
    cond = replace(
        BASE,
        name="single",
        about="one market sized by scales and sales",
        markets=1,
        scales_per_market=honest_scales + scales_per_method * len(METHODS),
        days=days,
        sales_per_day=(per_day, per_day),
        reweigh_rates=(reweigh_rate,),
        cheaters_per_market=dict.fromkeys(METHODS, scales_per_method),
    )
    return generate_condition(cond, seed=seed)
