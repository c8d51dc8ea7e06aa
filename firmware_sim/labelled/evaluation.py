"""Scoring the anti-cheating engine on labelled markets, and the figures and goals of issue 12.

:func:`score` feeds a market's rows (labels removed) in arrival order in batches to a judge, the engine's
``Engine.flag_rows`` (the caller builds the engine, so firmware_sim imports nothing of the engine: the
simulator and the engine it measures stand side by side on the contract), and matches every flag back to
the row it is about; :func:`measure` turns that into :class:`Figures` (per method recall per sale, per scale
share caught and delay, remote-control scales caught within 50 re-weighs per re-weigh rate, precision, false
positives per 10 000 honest rows by rule), which add up over seeds;
:func:`goals` says which of the done-when goals they meet.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .conditions import METHODS
from .dataset import LABELS, LabelledMarket

BATCH_ROWS = 5_000
WITHIN_REWEIGHS = 50
RowKey = tuple[str, str, int]  # (scale, sending device, seq)


class FlagLike(Protocol):
    """What :func:`score` reads of a flag (``anti_cheat.Flag`` has it)."""

    @property
    def device(self) -> str: ...
    @property
    def record_device(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def rule(self) -> str: ...


Judge = Callable[[list[dict[str, Any]]], Iterable[FlagLike]]  # one batch of rows → its flags


@dataclass
class Scored:
    """The rules that flagged each row (by row index)."""

    rules: dict[int, set[str]] = field(default_factory=dict)
    unmatched_flags: int = 0  # flags naming no row of the market


def score(market: LabelledMarket, judge: Judge, *, batch_rows: int = BATCH_ROWS) -> Scored:
    """Flags of ``judge`` (a fresh engine on ``market.registry``) over the market's rows (labels removed) in
    arrival order, matched to rows."""
    scored = Scored()
    rows = [{k: v for k, v in r.items() if k not in LABELS} for r in market.rows]
    where: dict[RowKey, int] = {(r["device"], r.get("source") or r["device"], r["seq"]): i for i, r in enumerate(rows)}
    for start in range(0, len(rows), batch_rows):
        for flag in judge(rows[start : start + batch_rows]):
            at = where.get((flag.device, flag.record_device or flag.device, flag.seq))
            if at is None:
                scored.unmatched_flags += 1
            else:
                scored.rules.setdefault(at, set()).add(flag.rule)
    return scored


@dataclass
class MethodFigures:
    cheated_sales: int = 0
    cheated_hits: int = 0
    discounted_sales: int = 0  # cheated sales at an afternoon or clearance price
    discounted_hits: int = 0
    scales: int = 0
    caught: int = 0  # flagged on or after its first cheated row
    delays: list[int] = field(default_factory=list)  # sales from the first cheated one to the first flag
    delay_hours: list[float] = field(default_factory=list)
    by_rate: dict[float, list[int]] = field(default_factory=dict)  # re-weigh rate → [scales, caught within 50]
    reweighs_to_flag: list[int] = field(default_factory=list)

    def merge(self, o: MethodFigures) -> None:
        for name in ("cheated_sales", "cheated_hits", "discounted_sales", "discounted_hits", "scales", "caught"):
            setattr(self, name, getattr(self, name) + getattr(o, name))
        self.delays += o.delays
        self.delay_hours += o.delay_hours
        self.reweighs_to_flag += o.reweighs_to_flag
        for rate, (n, k) in o.by_rate.items():
            mine = self.by_rate.setdefault(rate, [0, 0])
            mine[0] += n
            mine[1] += k

    @property
    def recall(self) -> float:
        return self.cheated_hits / self.cheated_sales if self.cheated_sales else float("nan")

    @property
    def discounted_recall(self) -> float:
        return self.discounted_hits / self.discounted_sales if self.discounted_sales else float("nan")


@dataclass
class Figures:
    """What one or more labelled markets of a condition measured."""

    markets: int = 0
    rows: int = 0
    honest_rows: int = 0
    honest_flagged: int = 0
    fp_by_rule: Counter[str] = field(default_factory=Counter)
    honest_devices: int = 0
    honest_devices_flagged: int = 0
    flagged_rows: int = 0
    flagged_cheating: int = 0  # flagged rows of cheating scales
    unmatched_flags: int = 0
    methods: dict[str, MethodFigures] = field(default_factory=lambda: {m: MethodFigures() for m in METHODS})

    def merge(self, o: Figures) -> None:
        for name in (
            "markets",
            "rows",
            "honest_rows",
            "honest_flagged",
            "honest_devices",
            "honest_devices_flagged",
            "flagged_rows",
            "flagged_cheating",
            "unmatched_flags",
        ):
            setattr(self, name, getattr(self, name) + getattr(o, name))
        self.fp_by_rule.update(o.fp_by_rule)
        for m, f in o.methods.items():
            self.methods.setdefault(m, MethodFigures()).merge(f)

    @property
    def fp_per_10k(self) -> float:
        return self.honest_flagged / self.honest_rows * 10_000 if self.honest_rows else float("nan")

    @property
    def precision(self) -> float:
        return self.flagged_cheating / self.flagged_rows if self.flagged_rows else float("nan")


def measure(market: LabelledMarket, scored: Scored) -> Figures:
    """Figures of one market: a pass over the rows in arrival order, then one over the scales."""
    fig = Figures(markets=1, rows=len(market.rows), unmatched_flags=scored.unmatched_flags)
    flagged_devices, found = _over_rows(market, scored, fig)
    for device, truth in market.truth.items():
        if truth == "honest":
            fig.honest_devices += 1
            fig.honest_devices_flagged += device in flagged_devices
            continue
        mf = fig.methods[truth]
        mf.scales += 1
        slot = mf.by_rate.setdefault(market.scales[device]["reweigh_rate"], [0, 0])
        slot[0] += 1
        if device in found:
            delay, hours, n_reweighs = found[device]
            mf.caught += 1
            mf.delays.append(delay)
            mf.delay_hours.append(hours)
            mf.reweighs_to_flag.append(n_reweighs)
            slot[1] += n_reweighs <= WITHIN_REWEIGHS
    return fig


def _over_rows(
    market: LabelledMarket, scored: Scored, fig: Figures
) -> tuple[set[str], dict[str, tuple[int, float, int]]]:
    """Row counts into ``fig``; the honest devices flagged, and per cheating scale its first flag on or after
    its first cheated row: (sales since that row, hours since, re-weighs of the scale until then)."""
    flagged_devices: set[str] = set()
    onset: dict[str, int] = {}  # ts of the scale's first cheated row
    sales_since: dict[str, int] = defaultdict(int)
    reweighs: dict[str, int] = defaultdict(int)
    found: dict[str, tuple[int, float, int]] = {}
    for i, row in enumerate(market.rows):
        device, honest, kind = row["device"], row["truth"] == "honest", row["kind"]
        rules = scored.rules.get(i)
        reweighs[device] += kind == "reweigh"
        if rules:
            fig.flagged_rows += 1
            fig.flagged_cheating += not honest
        if honest:
            fig.honest_rows += 1
            if rules:
                fig.honest_flagged += 1
                fig.fp_by_rule.update(rules)
                flagged_devices.add(device)
            continue
        if row["cheated"]:
            onset.setdefault(device, row["ts"])
        if kind == "sale":
            sales_since[device] += device in onset
            if row["cheated"]:
                mf = fig.methods[row["truth"]]
                mf.cheated_sales += 1
                mf.cheated_hits += bool(rules)
                if row.get("phase", "morning") != "morning":
                    mf.discounted_sales += 1
                    mf.discounted_hits += bool(rules)
        if rules and device in onset and device not in found:
            hours = (row["ts"] - onset[device]) / 3_600_000
            found[device] = (max(1, sales_since[device]), hours, reweighs[device])
    return flagged_devices, found


@dataclass(frozen=True)
class Goal:
    what: str
    value: float
    target: str
    met: bool


#: methods whose every cheated sale must be flagged (issue 12, done when)
RECALL_99 = ("cheat_chip", "recalibration", "throw", "price_math", "price_scaling")


def goals(fig: Figures, condition: str) -> list[Goal]:
    """The done-when goals of issue 12 against ``fig`` (one condition, any number of seeds); the remote-control
    goal is judged on :func:`firmware_sim.labelled.conditions.remote_trial` markets (:func:`trial_goals`)."""
    limit = 1.0 if condition == "base" else 2.0
    out = [Goal("false positives per 10 000 honest rows", fig.fp_per_10k, f"≤ {limit:g}", fig.fp_per_10k <= limit)]
    for m in RECALL_99:
        r = fig.methods[m].recall
        out.append(Goal(f"recall per sale, {m}", r, "≥ 0.99", r >= 0.99))
    r = fig.methods["price_scaling"].discounted_recall
    out.append(Goal("recall per sale, price_scaling at discounted prices", r, "≥ 0.99", r >= 0.99))
    r = fig.methods["preset_base"].recall
    out.append(Goal("recall per sale, preset_base", r, "≥ 0.9", r >= 0.9))
    return out


def trial_goals(fig: Figures, rate: float) -> list[Goal]:
    """Remote-control scales caught within 50 re-weighs at ``rate``, and no false alarms on a long honest run."""
    n, k = fig.methods["remote_control"].by_rate.get(rate, [0, 0])
    share = k / n if n else float("nan")
    return [
        Goal(f"remote_control caught within {WITHIN_REWEIGHS} re-weighs", share, "≥ 0.9", share >= 0.9),
        Goal("false positives per 10 000 honest rows", fig.fp_per_10k, "≤ 2", fig.fp_per_10k <= 2),
    ]


def median(values: list[int] | list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")
