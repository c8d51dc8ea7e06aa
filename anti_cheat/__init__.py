"""The anti-cheating metrology engine: vectorised rules over batches of scale transactions.

Pure computation; the ingest calls :func:`score` on every batch. See :mod:`anti_cheat.engine`.
"""

from .engine import Flag, SaleColumns, ScaleFact, ScaleFacts, columns_from_records, score
from .mpe import MPE_TABLE, mpe_mg

__all__ = [
    "MPE_TABLE",
    "Flag",
    "SaleColumns",
    "ScaleFact",
    "ScaleFacts",
    "columns_from_records",
    "mpe_mg",
    "score",
]
