"""A batch of scale transactions as numpy columns: the engine's input.

Four kinds of row share the columns (``kind``): a ``SALE`` at a stall's scale; a ``REWEIGH`` of goods
bought there, at the market's fair scale (``net_mg`` and ``tare_mg`` what the stall's receipt says,
``reference_mg`` what the fair scale showed, ``source`` the fair scale); a ``CHECK`` weighing with a known
test weight (``net_mg`` indicated, ``reference_mg`` the weight's mass); a ``STATE`` row, the scale's own
report of its metrological identity (e, d, software id, counters). ``scale`` is always the dense index of
the scale the row is about. Rows are in arrival order; the engine keeps that order per scale.

A column a row does not have holds :data:`NO_VALUE`, never 0: a rule runs only on rows that have its
columns (a file without load-cell counts is not judged by the counts rules, and the summary says so).

Input columns for anyone scoring their own data (JSONL keys, CSV headers):

| column | unit | meaning |
|---|---|---|
| ``device`` | | the scale the row is about (for a re-weigh: the stall's scale) |
| ``source`` | | the device that sent the row, if not ``device`` (the fair scale of a re-weigh) |
| ``kind`` | | ``sale`` (default), ``reweigh``, ``check`` or ``state`` |
| ``seq`` | | the record's sequence number (increasing per sending device) |
| ``ts`` | ms | UTC epoch milliseconds (required) |
| ``plu`` | | commodity code |
| ``net_mg``, ``tare_mg`` | mg | net weight and tare (``reweigh``: the stall's receipt; ``check``: indicated) |
| ``tare_kind`` | | ``weighed`` (T: the container tared on the pan) or ``preset`` (PT: keyed or from the PLU) |
| ``tare_gross_mg`` | mg | gross on the pan when a weighed tare was taken |
| ``unit_price_fen_per_kg``, ``amount_fen`` | fen/kg, fen | unit price and price charged |
| ``stable``, ``stable_ms`` | bool, ms | stable flag at commit, and for how long it had been stable |
| ``raw_counts``, ``zero_counts`` | counts | load-cell ADC counts at commit (the *gross* load) and of the zero |
| ``empty_counts`` | counts | counts with the pan empty just before the goods went on |
| ``zero_set_events`` | | the scale's count of zero-setting operations (ZERO key, power-on zero) |
| ``calibration_events``, ``configuration_events`` | | the sealed event counters |
| ``software_id`` | | the software id the scale reports |
| ``e_mg``, ``d_mg`` | mg | ``state``: the e and d the scale reports |
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
SALE, REWEIGH, CHECK, STATE = 0, 1, 2, 3
NO_VALUE = np.iinfo(np.int64).min  # a column the row does not have
KINDS = {"sale": SALE, "reweigh": REWEIGH, "check": CHECK, "state": STATE}
WEIGHED, PRESET = 1, 2
TARE_KINDS = {"weighed": WEIGHED, "preset": PRESET, "T": WEIGHED, "PT": PRESET}
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
    "empty_counts",
    "zero_set_events",
    "calibration_events",
    "configuration_events",
    "reference_mg",
    "reported_e_mg",
    "reported_d_mg",
)
_SOURCE = {"unit_price": "unit_price_fen_per_kg", "reported_e_mg": "e_mg", "reported_d_mg": "d_mg"}
#: integer input columns, by their names in files (the table above)
INTEGER_INPUTS = frozenset(_SOURCE.get(c, c) for c in _INT_COLUMNS)
_MASS, _EVENTS, _COUNTS = (-(10**10), 10**10), (0, 2**53), (0, 2**40)
#: the range each integer input may take (by its name in files): beyond it a value is an error, not a
#: number to compute with (10 t, 2100, 1 000 000 yuan/kg; every product the rules form fits 64 bits)
INPUT_BOUNDS: dict[str, tuple[int, int]] = {
    "seq": (0, 2**53),
    "ts": (0, 4_102_444_800_000),
    "net_mg": _MASS,
    "tare_mg": _MASS,
    "tare_gross_mg": _MASS,
    "reference_mg": _MASS,
    "unit_price_fen_per_kg": (0, 10**8),
    "amount_fen": (-(10**12), 10**12),
    "stable_ms": (0, 10**7),
    "raw_counts": _COUNTS,
    "zero_counts": _COUNTS,
    "empty_counts": _COUNTS,
    "zero_set_events": _EVENTS,
    "calibration_events": _EVENTS,
    "configuration_events": _EVENTS,
    "e_mg": (1, 10**7),
    "d_mg": (1, 10**7),
}
#: every input column, by its name in files
INPUT_COLUMNS = (
    "device",
    "source",
    "kind",
    "plu",
    "stable",
    "tare_kind",
    "software_id",
    *(_SOURCE.get(c, c) for c in _INT_COLUMNS),
)


class InputRowError(ValueError):
    """A row the engine cannot take (an unknown kind or tare kind, no device, no time)."""


@dataclass
class Transactions:
    """Columns of one batch."""

    kind: I64
    scale: I64
    source: I64  # dense index of the device that sent the row (the fair scale for a re-weigh); seq is its
    plu: I64  # commodity code from ScaleFacts.plu_code
    stable: I64  # 1 stable, 0 not, NO_VALUE not reported
    tare_kind: I64  # WEIGHED, PRESET, or NO_VALUE
    software: I64  # ScaleFacts.software_code of the reported software id, or NO_VALUE
    seq: I64
    ts: I64
    net_mg: I64
    tare_mg: I64
    tare_gross_mg: I64
    unit_price: I64
    amount_fen: I64
    stable_ms: I64
    raw_counts: I64
    zero_counts: I64
    empty_counts: I64
    zero_set_events: I64
    calibration_events: I64
    configuration_events: I64
    reference_mg: I64
    reported_e_mg: I64
    reported_d_mg: I64

    def __len__(self) -> int:
        return len(self.seq)

    def take(self, rows: npt.NDArray[np.intp] | slice) -> Transactions:
        """The rows ``rows`` as a new batch."""
        return Transactions(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    @classmethod
    def from_rows(cls, facts: ScaleFacts, rows: Iterable[Mapping[str, Any]]) -> Transactions:
        """Columns from dict rows with the keys of the module table (devices get dense indices).

        Raises :class:`InputRowError` for a row without ``device`` or ``ts``, or with an unknown ``kind``
        or ``tare_kind``; a missing optional column is :data:`NO_VALUE`."""
        rows = list(rows)
        n = len(rows)

        def ints(name: str) -> I64:
            key = _SOURCE.get(name, name)
            return np.fromiter(
                (int(v) if (v := r.get(key)) is not None else NO_VALUE for r in rows), dtype=np.int64, count=n
            )

        def code(table: Mapping[str, int], key: str, r: Mapping[str, Any]) -> int:
            value = r.get(key)
            if value is None or value == "":
                return NO_VALUE
            try:
                return table[value]
            except KeyError:
                raise InputRowError(f"{key}={value!r}: expected one of {', '.join(table)}") from None

        def device(r: Mapping[str, Any]) -> int:
            name = r.get("device")
            if not name:
                raise InputRowError("a row has no device")
            return facts.index_of(str(name))

        def stable(r: Mapping[str, Any]) -> int:
            value = r.get("stable")
            return NO_VALUE if value is None else int(bool(value))

        def software(r: Mapping[str, Any]) -> int:
            value = r.get("software_id")
            return NO_VALUE if value is None else facts.software_code(str(value))

        try:
            batch = cls(
                kind=np.fromiter((code(KINDS, "kind", r) if r.get("kind") else SALE for r in rows), np.int64, count=n),
                scale=np.fromiter((device(r) for r in rows), dtype=np.int64, count=n),
                source=np.fromiter(
                    (facts.index_of(str(r.get("source") or r["device"])) for r in rows), dtype=np.int64, count=n
                ),
                plu=np.fromiter((facts.plu_code(str(r.get("plu") or "")) for r in rows), dtype=np.int64, count=n),
                stable=np.fromiter((stable(r) for r in rows), dtype=np.int64, count=n),
                tare_kind=np.fromiter((code(TARE_KINDS, "tare_kind", r) for r in rows), dtype=np.int64, count=n),
                software=np.fromiter((software(r) for r in rows), dtype=np.int64, count=n),
                **{name: ints(name) for name in _INT_COLUMNS},
            )
        except OverflowError as exc:  # an integer beyond 64 bits
            raise InputRowError(f"a value is out of range: {exc}") from None
        for name in _INT_COLUMNS:
            key = _SOURCE.get(name, name)
            lo, hi = INPUT_BOUNDS[key]
            values = getattr(batch, name)
            bad = (values != NO_VALUE) & ((values < lo) | (values > hi))
            if bad.any():
                raise InputRowError(f"{key}={int(values[bad][0])} is out of range [{lo}, {hi}]")
        if n and (batch.ts == NO_VALUE).any():
            raise InputRowError("a row has no ts (UTC milliseconds)")
        batch.seq[batch.seq == NO_VALUE] = 0
        return batch

    @classmethod
    def from_records(cls, facts: ScaleFacts, rows: Iterable[tuple[str, int, Mapping[str, Any]]]) -> Transactions:
        """Columns from contract records ``(device, seq, record)``: sales, re-weighs, check weighings and
        scale states; other record types are skipped."""
        return cls.from_rows(facts, rows_of_records(rows))


def rows_of_records(records: Iterable[tuple[str, int, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Input rows (the keys of the table above) of contract records ``(device, seq, record)``: what
    :meth:`Transactions.from_records` scores, and what a file for ``zhijian anti-cheat score`` holds.
    Sales, re-weighs, check weighings and scale states; other record types are skipped."""
    flat: list[dict[str, Any]] = []
    for device, seq, rec in records:
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
                    "tare_mg": rec.get("claimed_tare_mg"),
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
        elif kind == "scale_state":
            flat.append({**rec, "kind": "state", "device": device, "seq": seq})
    return flat
