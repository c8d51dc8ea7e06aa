"""A batch of scale transactions as numpy columns: the engine's input.

Three kinds of row share the columns (``kind``): a ``SALE`` at a stall's scale; a ``REWEIGH`` of goods
bought there, at the market's fair scale (``net_mg`` what the stall claimed, ``reference_mg`` what the
fair scale showed); a ``CHECK`` weighing with a known test weight (``net_mg`` indicated, ``reference_mg``
the weight's mass). ``scale`` is always the dense index of the stall's scale in :class:`ScaleFacts`.
Columns a kind does not have hold 0. Rows are in arrival order; the engine keeps that order per scale.

Input columns for anyone scoring their own data (JSONL keys, CSV headers):

| column | unit | meaning |
|---|---|---|
| ``device`` | | the stall scale's id |
| ``kind`` | | ``sale`` (default), ``reweigh`` or ``check`` |
| ``seq`` | | the record's sequence number (any increasing number per device) |
| ``ts`` | ms | UTC epoch milliseconds |
| ``plu`` | | commodity code |
| ``net_mg``, ``tare_mg`` | mg | registered net weight and tare (for ``reweigh``/``check``: what the scale claimed) |
| ``tare_gross_mg`` | mg | optional: gross weight on the pan when the tare was taken |
| ``unit_price_fen_per_kg``, ``amount_fen`` | fen/kg, fen | unit price and price charged |
| ``stable``, ``stable_ms`` | bool, ms | stable flag at commit, and for how long it had been stable |
| ``raw_counts``, ``zero_counts`` | counts | load-cell ADC counts at commit and of the zero |
| ``calibration_events``, ``configuration_events`` | | the sealed event counters |
| ``reference_mg`` | mg | ``reweigh``: the fair scale's reading; ``check``: the test weight |
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from .facts import ScaleFacts

I64 = npt.NDArray[np.int64]
SALE, REWEIGH, CHECK = 0, 1, 2
NO_VALUE = np.iinfo(np.int64).min  # an optional column the row does not have
KINDS = {"sale": SALE, "reweigh": REWEIGH, "check": CHECK}
_INT_COLUMNS = (
    "seq",
    "ts",
    "net_mg",
    "tare_mg",
    "tare_gross_mg",
    "unit_price",
    "amount_fen",
    "stable_ms",
    "raw_counts",
    "zero_counts",
    "calibration_events",
    "configuration_events",
    "reference_mg",
)
_SOURCE = {"unit_price": "unit_price_fen_per_kg"}
#: integer input columns, by their names in files (the table above)
INTEGER_INPUTS = frozenset(_SOURCE.get(c, c) for c in _INT_COLUMNS)
#: every input column, by its name in files
INPUT_COLUMNS = ("device", "source", "kind", "plu", "stable", *(_SOURCE.get(c, c) for c in _INT_COLUMNS))


@dataclass
class Transactions:
    """Columns of one batch."""

    kind: I64
    scale: I64
    source: I64  # dense index of the device that sent the row (the fair scale for a re-weigh); seq is its
    plu: I64  # commodity code from ScaleFacts.plu_code
    stable: npt.NDArray[np.bool_]
    seq: I64
    ts: I64
    net_mg: I64
    tare_mg: I64
    tare_gross_mg: I64  # gross on the pan when the tare was taken; NO_VALUE when not reported
    unit_price: I64
    amount_fen: I64
    stable_ms: I64
    raw_counts: I64
    zero_counts: I64
    calibration_events: I64
    configuration_events: I64
    reference_mg: I64

    def __len__(self) -> int:
        return len(self.seq)

    def take(self, rows: npt.NDArray[np.intp] | slice) -> Transactions:
        """The rows ``rows`` as a new batch."""
        return Transactions(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    @classmethod
    def from_rows(cls, facts: ScaleFacts, rows: Iterable[Mapping[str, Any]]) -> Transactions:
        """Columns from dict rows with the keys of the module table (devices get dense indices)."""
        rows = list(rows)
        n = len(rows)

        def ints(name: str) -> I64:
            key = _SOURCE.get(name, name)
            default = NO_VALUE if name == "tare_gross_mg" else 0
            return np.fromiter(
                (int(v) if (v := r.get(key)) is not None else default for r in rows), dtype=np.int64, count=n
            )

        return cls(
            kind=np.fromiter((KINDS[r.get("kind") or "sale"] for r in rows), dtype=np.int64, count=n),
            scale=np.fromiter((facts.index_of(r["device"]) for r in rows), dtype=np.int64, count=n),
            source=np.fromiter((facts.index_of(r.get("source") or r["device"]) for r in rows), dtype=np.int64, count=n),
            plu=np.fromiter((facts.plu_code(str(r.get("plu") or "")) for r in rows), dtype=np.int64, count=n),
            stable=np.fromiter((bool(r.get("stable", True)) for r in rows), dtype=np.bool_, count=n),
            **{name: ints(name) for name in _INT_COLUMNS},
        )

    @classmethod
    def from_records(cls, facts: ScaleFacts, rows: Iterable[tuple[str, int, Mapping[str, Any]]]) -> Transactions:
        """Columns from contract records ``(device, seq, record)``: sales, re-weighs and check weighings."""
        flat: list[dict[str, Any]] = []
        for device, seq, rec in rows:
            kind = rec["type"]
            if kind == "sale":
                flat.append({**rec, "device": device, "seq": seq})
            elif kind == "reweigh":
                flat.append(
                    {
                        "kind": "reweigh",
                        "device": rec["stall_device"],
                        "source": device,
                        "seq": seq,
                        "ts": rec["ts"],
                        "plu": rec.get("plu"),
                        "net_mg": rec["claimed_mg"],
                        "reference_mg": rec["net_mg"],
                    }
                )
            elif kind == "check_weighing":
                flat.append(
                    {
                        "kind": "check",
                        "device": rec["scale_device"],
                        "source": device,
                        "seq": seq,
                        "ts": rec["ts"],
                        "net_mg": rec["indicated_mg"],
                        "reference_mg": rec["reference_mg"],
                    }
                )
        return cls.from_rows(facts, flat)
