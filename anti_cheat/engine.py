"""The batch interface of the anti-cheating engine, and its first rules.

``score(sales, facts)`` takes a batch of scale transactions as numpy columns plus per-scale facts from
the registry (what was read at the last verification) and returns the flags, as rows. It is pure: no I/O.
Rules here are stateless and vectorised; each cites its fact in ``shared/domain/METROLOGY.md``:

- ``price_math``: amount ≠ round-half-up(net × unit price) to the fen, in integers (price computation);
- ``coefficient``: the net weight implied by the load-cell counts, (raw − zero) / calibrated coefficient,
  differs from the registered net weight by more than the in-service MPE at that load plus half a d of
  rounding (cheat chips; WO2020206853A1);
- ``counters``: the calibration or configuration event counter differs from the one recorded at the last
  verification (seals and audit counters);
- ``stability``: registered without the stable flag or sooner than 400 ms of stability (throw trick).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .mpe import CLASS_CODES, mpe_mg

I64 = npt.NDArray[np.int64]
STABILITY_WINDOW_MS = 400  # [law] stable within ±1 d for at least 0.4 s before registering


@dataclass(frozen=True, slots=True)
class ScaleFact:
    """What the registry knows about one scale from its last verification."""

    coefficient: float
    e_mg: int
    accuracy_class: str = "III"
    calibration_events: int = 0
    configuration_events: int = 0


@dataclass
class SaleColumns:
    """A batch of sale records as columns; ``scale`` indexes :attr:`ScaleFacts.devices`."""

    scale: I64
    seq: I64
    ts: I64
    net_mg: I64
    unit_price: I64
    amount_fen: I64
    stable: npt.NDArray[np.bool_]
    stable_ms: I64
    raw_counts: I64
    zero_counts: I64
    calibration_events: I64
    configuration_events: I64

    def __len__(self) -> int:
        return len(self.seq)


@dataclass
class ScaleFacts:
    """Per-scale facts in arrays indexed by a dense scale index; unknown scales have no facts."""

    devices: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    known: list[bool] = field(default_factory=list)
    coefficient: list[float] = field(default_factory=list)
    e_mg: list[int] = field(default_factory=list)
    class_code: list[int] = field(default_factory=list)
    calibration_events: list[int] = field(default_factory=list)
    configuration_events: list[int] = field(default_factory=list)

    def index_of(self, device: str) -> int:
        """The dense index of ``device``, adding it (without facts) if new."""
        i = self.index.get(device)
        if i is None:
            i = self.index[device] = len(self.devices)
            self.devices.append(device)
            self.known.append(False)
            self.coefficient.append(1.0)
            self.e_mg.append(1)
            self.class_code.append(CLASS_CODES["III"])
            self.calibration_events.append(0)
            self.configuration_events.append(0)
        return i

    def set(self, device: str, fact: ScaleFact) -> None:
        i = self.index_of(device)
        self.known[i] = True
        self.coefficient[i] = fact.coefficient
        self.e_mg[i] = fact.e_mg
        self.class_code[i] = CLASS_CODES[fact.accuracy_class]
        self.calibration_events[i] = fact.calibration_events
        self.configuration_events[i] = fact.configuration_events


def columns_from_records(facts: ScaleFacts, rows: list[tuple[str, int, dict[str, Any]]]) -> SaleColumns:
    """Columns for ``(device, seq, sale record)`` rows (records already validated)."""

    def col(name: str) -> I64:
        return np.fromiter((r[2][name] for r in rows), dtype=np.int64, count=len(rows))

    return SaleColumns(
        scale=np.fromiter((facts.index_of(r[0]) for r in rows), dtype=np.int64, count=len(rows)),
        seq=np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows)),
        ts=col("ts"),
        net_mg=col("net_mg"),
        unit_price=col("unit_price_fen_per_kg"),
        amount_fen=col("amount_fen"),
        stable=np.fromiter((r[2]["stable"] for r in rows), dtype=np.bool_, count=len(rows)),
        stable_ms=col("stable_ms"),
        raw_counts=col("raw_counts"),
        zero_counts=col("zero_counts"),
        calibration_events=col("calibration_events"),
        configuration_events=col("configuration_events"),
    )


@dataclass(frozen=True, slots=True)
class Flag:
    """One finding about one transaction."""

    device: str
    seq: int
    ts: int
    rule: str
    severity: str
    value: float
    limit: float
    reason_en: str
    reason_zh: str


def score(sales: SaleColumns, facts: ScaleFacts) -> list[Flag]:
    """Flags for a batch of sales. Rows of scales without registry facts get only fact-free rules."""
    if len(sales) == 0:
        return []
    known = np.asarray(facts.known, dtype=np.bool_)[sales.scale]
    coef = np.asarray(facts.coefficient, dtype=np.float64)[sales.scale]
    e_mg = np.asarray(facts.e_mg, dtype=np.int64)[sales.scale]
    cls = np.asarray(facts.class_code, dtype=np.int64)[sales.scale]

    product = sales.net_mg * sales.unit_price
    expected = np.sign(product) * ((np.abs(product) + 500_000) // 1_000_000)
    price_diff = sales.amount_fen - expected

    implied_mg = (sales.raw_counts - sales.zero_counts) / coef * 1_000_000
    weight_err = sales.net_mg - implied_mg
    tolerance = mpe_mg(sales.net_mg, e_mg, cls) + e_mg / 2

    cal_diff = sales.calibration_events - np.asarray(facts.calibration_events, dtype=np.int64)[sales.scale]
    conf_diff = sales.configuration_events - np.asarray(facts.configuration_events, dtype=np.int64)[sales.scale]

    rules: list[tuple[str, str, npt.NDArray[np.bool_], npt.NDArray[Any], npt.NDArray[Any], str, str]] = [
        (
            "price_math",
            "high",
            price_diff != 0,
            price_diff,
            np.zeros(len(sales)),
            "amount differs from weight × unit price by {v:+.0f} fen",
            "金额与重量×单价相差 {v:+.0f} 分",
        ),
        (
            "coefficient",
            "high",
            known & (np.abs(weight_err) > tolerance),
            weight_err,
            tolerance,
            "weight differs from load-cell counts by {v:+.0f} mg (limit ±{l:.0f} mg)",
            "显示重量与传感器计数相差 {v:+.0f} 毫克（限 ±{l:.0f} 毫克）",
        ),
        (
            "counters",
            "high",
            known & ((cal_diff != 0) | (conf_diff != 0)),
            cal_diff * 1000 + conf_diff,
            np.zeros(len(sales)),
            "calibration/configuration counter changed since verification",
            "标定/配置计数器在检定后发生变化",
        ),
        (
            "stability",
            "medium",
            ~sales.stable | (sales.stable_ms < STABILITY_WINDOW_MS),
            sales.stable_ms,
            np.full(len(sales), STABILITY_WINDOW_MS),
            "weight registered after {v:.0f} ms of stability (needs {l:.0f} ms)",
            "重量稳定 {v:.0f} 毫秒即被记录（应不少于 {l:.0f} 毫秒）",
        ),
    ]
    flags: list[Flag] = []
    for rule, severity, hit, value, limit, en, zh in rules:
        for i in np.flatnonzero(hit):
            v, lim = float(value[i]), float(limit[i])
            flags.append(
                Flag(
                    device=facts.devices[int(sales.scale[i])],
                    seq=int(sales.seq[i]),
                    ts=int(sales.ts[i]),
                    rule=rule,
                    severity=severity,
                    value=v,
                    limit=lim,
                    reason_en=en.format(v=v, l=lim),
                    reason_zh=zh.format(v=v, l=lim),
                )
            )
    return flags
