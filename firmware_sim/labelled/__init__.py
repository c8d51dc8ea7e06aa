"""Labelled markets for measuring the anti-cheating engine under the conditions of a real wet market.

:func:`generate` draws a market (several markets' stalls, their fair scales, a week of trading) for a
:class:`Condition` and a seed, as rows of the engine's batch input plus a registry document with verification
history; each row is labelled with the truth. :mod:`.physics` holds the load-cell model, :mod:`.goods` what is
sold and at what price, :mod:`.scales` who is in the market, :mod:`.sales` one stall's week, :mod:`.dataset`
the assembly, :mod:`.evaluation` the scoring of the engine against the labels.
"""

from .conditions import BASE, CONDITIONS, METHODS, Condition, Method, remote_trial
from .dataset import LABELS, LabelledMarket, generate

__all__ = [
    "BASE",
    "CONDITIONS",
    "LABELS",
    "METHODS",
    "Condition",
    "LabelledMarket",
    "Method",
    "generate",
    "remote_trial",
]
