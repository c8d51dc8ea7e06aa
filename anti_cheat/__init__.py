"""The anti-cheating metrology engine: vectorised rules over batches of scale transactions, per-scale
state, and evidence a supervisor can read. Pure computation; see :mod:`anti_cheat.engine`. The MPE table
and :class:`ScaleFact` (a verification's facts) are the contract's, in :mod:`device_profiles.metrology`."""

from .columns import CHECK, REWEIGH, SALE, Transactions
from .engine import Engine, Findings, Flag
from .facts import ScaleFacts
from .rules import RULES, Rule
from .state import EngineState
from .thresholds import DEFAULT, Thresholds

__all__ = [
    "CHECK",
    "DEFAULT",
    "REWEIGH",
    "RULES",
    "SALE",
    "Engine",
    "EngineState",
    "Findings",
    "Flag",
    "Rule",
    "ScaleFacts",
    "Thresholds",
    "Transactions",
]
