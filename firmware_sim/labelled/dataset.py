"""A labelled market as the engine's batch input: rows in arrival order, the registry document, and what each
scale really does.

Rows use the documented columns of ``zhijian anti-cheat score`` (kinds ``sale``, ``reweigh``, ``check`` and
``state``); a column a row does not have is absent, never zero. Each row also carries labels (:data:`LABELS`),
which :meth:`LabelledMarket.write` keeps out of the engine's input file. Deterministic for a condition and seed.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .conditions import CONDITIONS, Condition
from .goods import COMMODITIES, PHASES, commodity_medians
from .sales import TARE_PRESET, TARE_WEIGHED, Columns, StallWeek, fair_states, stall_week
from .scales import MarketPlan, market_id, plan_market

#: label keys on every row: ``truth`` (the scale's method or "honest"), ``cheated`` (this row carries the
#: cheat), and on sales and re-weighs ``phase`` (morning, afternoon, clearance) and ``true_net_mg``
LABELS = ("truth", "cheated", "phase", "true_net_mg")
KINDS = ("sale", "reweigh", "check", "state")
#: the keys of each kind of row, in order; optional ones are added where the row has them
_KEYS: dict[str, tuple[str, ...]] = {
    "sale": (
        "net_mg",
        "tare_mg",
        "unit_price_fen_per_kg",
        "amount_fen",
        "stable",
        "stable_ms",
        "raw_counts",
        "zero_counts",
        "empty_counts",
        "zero_set_events",
        "calibration_events",
        "configuration_events",
        "software_id",
    ),
    "reweigh": ("net_mg", "tare_mg", "reference_mg"),
    "check": (
        "net_mg",
        "reference_mg",
        "stable_ms",
        "raw_counts",
        "zero_counts",
        "empty_counts",
        "zero_set_events",
        "calibration_events",
        "configuration_events",
        "software_id",
    ),
    "state": ("e_mg", "d_mg", "software_id", "calibration_events", "configuration_events", "zero_set_events"),
}
_TARE_KIND = {TARE_WEIGHED: "weighed", TARE_PRESET: "preset"}


@dataclass
class LabelledMarket:
    """Rows to score (with labels), the registry document they are scored against, and the truth per scale."""

    condition: Condition
    seed: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    registry: dict[str, Any] = field(default_factory=dict)
    truth: dict[str, str] = field(default_factory=dict)  # device → "honest" or the cheat method
    scales: dict[str, dict[str, Any]] = field(default_factory=dict)  # device → what the generator drew for it

    def write(self, directory: Path) -> None:
        """``rows.jsonl`` (engine input only), ``labels.jsonl`` (line by line), ``registry.json``, ``truth.json``."""
        directory.mkdir(parents=True, exist_ok=True)
        with (
            (directory / "rows.jsonl").open("w", encoding="utf-8") as rows,
            (directory / "labels.jsonl").open("w", encoding="utf-8") as labels,
        ):
            for row in self.rows:
                rows.write(json.dumps({k: v for k, v in row.items() if k not in LABELS}, ensure_ascii=False) + "\n")
                labels.write(json.dumps({k: row[k] for k in ("device", "seq", *LABELS) if k in row}) + "\n")
        (directory / "registry.json").write_text(json.dumps(self.registry, indent=1), encoding="utf-8")
        about = {"condition": self.condition.name, "about": self.condition.about, "seed": self.seed}
        doc = {**about, "scales": self.scales}
        (directory / "truth.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")


def generate(condition: str | Condition = "base", *, seed: int = 1) -> LabelledMarket:
    """The labelled market of ``condition`` (a name of :data:`CONDITIONS` or a :class:`Condition`) for ``seed``."""
    cond = CONDITIONS[condition] if isinstance(condition, str) else condition
    key = [seed, zlib.crc32(cond.name.encode())]
    plan = plan_market(cond, np.random.default_rng(key))
    weeks = [stall_week(sp, plan, cond, np.random.default_rng([*key, 1, i])) for i, sp in enumerate(plan.stalls)]
    fair = [fair_states(fp, cond, np.random.default_rng([*key, 2, i])) for i, fp in enumerate(plan.fair)]
    market = LabelledMarket(cond, seed)
    market.rows = _rows(plan, weeks, fair)
    market.registry = _registry(plan)
    for sp in plan.stalls:
        market.truth[sp.device] = sp.method
        market.scales[sp.device] = {
            "method": sp.method,
            "cheat": sp.cheat,
            "market": market_id(sp.market),
            "reweigh_rate": plan.reweigh_rates[sp.market],
            "stall": sp.stall.name,
            "max_g": sp.cap.max_g,
            "e_mg": sp.cap.e_mg,
            "span": [v.span for v in sp.verifications],
            "reverified_ms": sp.verifications[-1].verified_ms if len(sp.verifications) > 1 else None,
        }
    for fp in plan.fair:
        market.truth[fp.device] = "honest"
    return market


def _registry(plan: MarketPlan) -> dict[str, Any]:
    scales: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    for sp in plan.stalls:
        mid = market_id(sp.market)
        scales[sp.device] = sp.verifications[-1].facts(sp.cap, mid)
        history += [{"device": sp.device, **v.facts(sp.cap, mid)} for v in sp.verifications]
    for fp in plan.fair:
        scales[fp.device] = fp.verification.facts(fp.cap, market_id(fp.market))
        history.append({"device": fp.device, **scales[fp.device]})
    history.sort(key=lambda v: (v["verified_ms"], v["device"]))
    return {"scales": scales, "verifications": history, "commodity_median": commodity_medians()}


def _rows(plan: MarketPlan, weeks: list[StallWeek], fair: list[Columns]) -> list[dict[str, Any]]:
    """Every row of the market in arrival order, with each sender's sequence numbers in that order."""
    devices = [sp.device for sp in plan.stalls] + [fp.device for fp in plan.fair]
    truth = [sp.method for sp in plan.stalls] + ["honest"] * len(plan.fair)
    seq_start = np.array([sp.seq_start for sp in plan.stalls] + [fp.seq_start for fp in plan.fair])
    fair_of = np.array([len(plan.stalls) + sp.market for sp in plan.stalls], dtype=np.int64)
    parts: dict[str, list[tuple[int, Columns]]] = {k: [] for k in KINDS}
    for i, week in enumerate(weeks):
        for kind in KINDS:
            cols = getattr(week, kind)
            if cols and len(cols["ts"]):
                parts[kind].append((i, cols))
    for j, cols in enumerate(fair):
        parts["state"].append((len(plan.stalls) + j, cols))
    merged: dict[str, Columns] = {}
    device: dict[str, npt.NDArray[np.int64]] = {}
    for kind, chunks in parts.items():
        keys = set.intersection(*(set(c) for _, c in chunks)) if chunks else set()
        merged[kind] = {k: np.concatenate([c[k] for _, c in chunks]) for k in keys}
        device[kind] = np.concatenate(
            [np.full(len(c["ts"]), i, dtype=np.int64) for i, c in chunks] or [np.zeros(0, np.int64)]
        )
    sender = {k: device[k] for k in KINDS} | {"reweigh": fair_of[device["reweigh"]]}
    # arrival order: by time, then kind, then sender; sequence numbers count each sender's rows in that order
    ts = np.concatenate([merged[k].get("ts", np.zeros(0, np.int64)) for k in KINDS])
    kind_of = np.concatenate([np.full(len(device[k]), n, dtype=np.int64) for n, k in enumerate(KINDS)])
    senders = np.concatenate([sender[k] for k in KINDS])
    order = np.lexsort((senders, kind_of, ts))
    by_sender = order[np.argsort(senders[order], kind="stable")]
    rank = np.empty(len(order), dtype=np.int64)
    sorted_senders = senders[by_sender]
    group_start = np.flatnonzero(np.r_[True, sorted_senders[1:] != sorted_senders[:-1]])
    positions = np.arange(len(by_sender)) - np.repeat(group_start, np.diff(np.r_[group_start, len(by_sender)]))
    rank[by_sender] = positions
    seq = seq_start[senders] + rank
    offsets = np.cumsum([0] + [len(device[k]) for k in KINDS])
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    out: list[dict[str, Any]] = [{}] * len(order)
    for n, kind in enumerate(KINDS):
        span = slice(offsets[n], offsets[n + 1])
        built = _dicts(kind, merged[kind], device[kind], seq[span], devices, truth, fair_of)
        for row, at in zip(built, position[span].tolist(), strict=True):
            out[at] = row
    return out


def _dicts(
    kind: str,
    cols: Columns,
    device: npt.NDArray[np.int64],
    seq: npt.NDArray[np.int64],
    devices: list[str],
    truth: list[str],
    fair_of: npt.NDArray[np.int64],
) -> list[dict[str, Any]]:
    if len(device) == 0:
        return []
    keys = ("device", "kind", "seq", "ts", *_KEYS[kind], "truth", "cheated")
    names = [devices[i] for i in device.tolist()]
    values = [
        names,
        [kind] * len(device),
        seq.tolist(),
        cols["ts"].tolist(),
        *(cols[k].tolist() for k in _KEYS[kind]),
        [truth[i] for i in device.tolist()],
        cols["cheated"].tolist() if "cheated" in cols else [False] * len(device),
    ]
    rows = [dict(zip(keys, v, strict=True)) for v in zip(*values, strict=True)]
    if kind in ("sale", "reweigh"):
        plus = [COMMODITIES[c].plu for c in cols["commodity"].tolist()]
        phases = cols["phase"].tolist()
        true_net = cols["true_net_mg"].tolist()
        tare_kind = cols["tare_kind"].tolist()
        gross = cols["tare_gross_mg"].tolist() if "tare_gross_mg" in cols else None
        for i, row in enumerate(rows):
            row["plu"] = plus[i]
            row["phase"] = PHASES[phases[i]]
            row["true_net_mg"] = true_net[i]
            if tare_kind[i]:
                row["tare_kind"] = _TARE_KIND[tare_kind[i]]
                if gross is not None and tare_kind[i] == TARE_WEIGHED:
                    row["tare_gross_mg"] = gross[i]
    if kind == "reweigh":
        for row, f in zip(rows, fair_of[device].tolist(), strict=True):
            row["source"] = devices[f]
    if kind == "check":
        for row in rows:
            row["tare_mg"] = 0
            row["stable"] = True
    return rows
