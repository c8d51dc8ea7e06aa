"""The anti-cheating metrology engine: vectorised rules over batches of scale transactions, per-scale
state, and evidence a supervisor can read. Pure computation; see :mod:`anti_cheat.engine`."""

from .columns import CHECK, REWEIGH, SALE, Transactions
from .engine import Engine, Findings, Flag
from .facts import ScaleFact, ScaleFacts
from .mpe import MPE_TABLE, mpe_mg
from .rules import RULES, Rule
from .state import EngineState
from .thresholds import DEFAULT, Thresholds

__all__ = [
    "CHECK",
    "DEFAULT",
    "MPE_TABLE",
    "REWEIGH",
    "RULES",
    "SALE",
    "Engine",
    "EngineState",
    "Findings",
    "Flag",
    "Rule",
    "ScaleFact",
    "ScaleFacts",
    "Thresholds",
    "Transactions",
    "mpe_mg",
]
