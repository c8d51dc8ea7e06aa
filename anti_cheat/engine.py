"""The anti-cheating engine: every rule of :mod:`anti_cheat.rules` over a batch, with per-scale state.

``Engine(facts).score(batch)`` returns a :class:`Findings` table (row, rule, value, limit) for the batch's
transactions and updates the per-scale state; ``findings.flags(batch, facts)`` renders them for people.
Pure computation, no I/O. No Python loop runs per transaction: each rule is a handful of numpy operations
over the whole batch; the stateful rules use grouped integer scans (:mod:`anti_cheat.state`), so a stream
scored in one batch or split into many gives identical findings. :meth:`Engine.save` /
:meth:`Engine.restore` carry the state across a worker restart or to another worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .columns import CHECK, NO_VALUE, REWEIGH, SALE, Transactions
from .facts import ScaleFacts
from .mpe import mpe_mg
from .rules import RULE_INDEX, RULES
from .state import EngineState, Groups, cusum
from .thresholds import DEFAULT, Thresholds

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Flag:
    """One finding, ready for people and for storage."""

    device: str  # the scale the finding is about
    seq: int  # the flagged record's sequence number, in the stream of ``record_device``
    ts: int
    rule: str
    severity: str
    value: float
    limit: float
    reason_en: str
    reason_zh: str
    record_device: str = ""  # the device that sent the flagged record, when not ``device``

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}


@dataclass
class Findings:
    """Flags of one batch as columns: the batch row, the rule (index into RULES), evidence and limit."""

    row: npt.NDArray[np.intp]
    rule: I64
    value: F64
    limit: F64

    def __len__(self) -> int:
        return len(self.row)

    def flags(self, batch: Transactions, facts: ScaleFacts) -> list[Flag]:
        """Render each finding (a loop per flag, not per transaction: flags are few)."""
        out = []
        for r, k, v, lim in zip(
            self.row.tolist(), self.rule.tolist(), self.value.tolist(), self.limit.tolist(), strict=True
        ):
            rule = RULES[k]
            scale, source = int(batch.scale[r]), int(batch.source[r])
            out.append(
                Flag(
                    facts.devices[scale],
                    int(batch.seq[r]),
                    int(batch.ts[r]),
                    rule.id,
                    rule.severity,
                    v,
                    lim,
                    rule.en.format(v=v, l=lim),
                    rule.zh.format(v=v, l=lim),
                    facts.devices[source] if source != scale else "",
                )
            )
        return out


class _Collector:
    def __init__(self) -> None:
        self.parts: list[tuple[npt.NDArray[np.intp], int, F64, F64]] = []

    def add(
        self,
        rule: str,
        hit: npt.NDArray[np.bool_],
        value: npt.NDArray[Any],
        limit: npt.NDArray[Any] | float,
        rows: npt.NDArray[np.intp] | None = None,
    ) -> None:
        idx = np.flatnonzero(hit)
        if len(idx) == 0:
            return
        lim = np.broadcast_to(np.asarray(limit, dtype=np.float64), hit.shape)[idx]
        where = idx if rows is None else rows[idx]
        self.parts.append((where, RULE_INDEX[rule], np.asarray(value, dtype=np.float64)[idx], lim))

    def findings(self) -> Findings:
        if not self.parts:
            return Findings(np.zeros(0, np.intp), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
        row = np.concatenate([p[0] for p in self.parts])
        rule = np.concatenate([np.full(len(p[0]), p[1], dtype=np.int64) for p in self.parts])
        order = np.lexsort((rule, row))  # by row, then rule: deterministic
        return Findings(
            row[order],
            rule[order],
            np.concatenate([p[2] for p in self.parts])[order],
            np.concatenate([p[3] for p in self.parts])[order],
        )


def round_half_up_price(net_mg: I64, price: I64) -> I64:
    """Price in fen of ``net_mg`` at ``price`` fen/kg, rounded half up, in integers."""
    product = net_mg * price
    result: I64 = np.sign(product) * ((np.abs(product) + 500_000) // 1_000_000)
    return result


class Engine:
    """Scores batches against the registry's facts; keeps per-scale state between batches."""

    def __init__(
        self,
        facts: ScaleFacts,
        *,
        thresholds: Thresholds = DEFAULT,
        state: EngineState | None = None,
        stateful: bool = True,
    ) -> None:
        self.facts = facts
        self.t = thresholds
        self.state = state or EngineState()
        self.stateful = stateful  # False: only the per-row rules (for measuring them alone)

    def save(self) -> bytes:
        return self.state.to_bytes(self.facts.devices)

    def restore(self, data: bytes) -> None:
        self.state = EngineState.from_bytes(data, self.facts.index_of)

    def score(self, b: Transactions) -> Findings:
        """Findings for batch ``b``; updates the per-scale state."""
        self.state.ensure(len(self.facts))
        out = _Collector()
        if len(b):
            self._stateless(b, out)
            if self.stateful:
                self._reweigh_cusum(b, out)
                self._coefficient_cusum(b, out)
                self._last_digit(b, out)
        findings = out.findings()
        self._status(b, findings)
        return findings

    # -- one row at a time, vectorised ---------------------------------------------------------------
    def _stateless(self, b: Transactions, out: _Collector) -> None:
        f, t = self.facts, self.t
        known = f.take("known", b.scale).astype(np.bool_)
        e = f.take("e_mg", b.scale).astype(np.int64)
        d = f.take("d_mg", b.scale).astype(np.int64)
        cls = f.take("class_code", b.scale).astype(np.int64)
        max_mg = f.take("max_mg", b.scale).astype(np.int64)
        coef = f.take("coefficient", b.scale).astype(np.float64)
        sale, known_sale = b.kind == SALE, (b.kind == SALE) & known

        diff = b.amount_fen - round_half_up_price(b.net_mg, b.unit_price)
        out.add("price_math", sale & (diff != 0), diff, 0.0)

        implied = (b.raw_counts - b.zero_counts) / coef * 1_000_000
        err = b.net_mg - implied
        half_d = d / 2
        tol = mpe_mg(b.net_mg, e, cls) + half_d
        out.add("coefficient", known_sale & (np.abs(err) > tol), err, tol)

        events = np.abs(b.calibration_events - f.take("calibration_events", b.scale).astype(np.int64)) + np.abs(
            b.configuration_events - f.take("configuration_events", b.scale).astype(np.int64)
        )
        out.add("counters", known_sale & (events > 0), events, 0.0)

        unstable = ~b.stable | (b.stable_ms < t.stability_window_ms)
        out.add("stability", sale & unstable, np.where(b.stable, b.stable_ms, 0), float(t.stability_window_ms))

        has_zero = f.take("has_zero", b.scale).astype(np.bool_)
        offset = np.abs(b.zero_counts - f.take("zero_counts", b.scale).astype(np.int64)) / coef * 1_000_000
        zero_limit = t.zero_range_of_max * max_mg
        out.add("zero_offset", known_sale & has_zero & (offset > zero_limit), offset, zero_limit)

        gross = b.tare_gross_mg
        empty_pan = (gross != NO_VALUE) & (np.abs(gross) * 4 <= e)  # zero is held within ±0.25 e
        out.add("tare_at_zero_gross", known_sale & (b.tare_mg > 0) & empty_pan, b.tare_mg, 0.0)

        tare_limit = t.tare_max_of_max * max_mg
        out.add("tare_implausible", known_sale & (b.tare_mg > tare_limit), b.tare_mg, tare_limit)

        over = max_mg + 9 * e
        out.add("over_max", known_sale & (b.net_mg > over), b.net_mg, over)

        median = self.facts.median_by_code[b.plu].astype(np.float64)
        ratio = np.divide(b.unit_price, median, out=np.ones(len(b)), where=median > 0)
        log_ratio = np.log10(np.maximum(ratio, 1e-9))
        scaled = np.zeros(len(b), dtype=np.bool_)
        for decade in (-1.0, -2.0):  # keyed ×0.1 or ×0.01
            scaled |= np.abs(log_ratio - decade) <= t.price_scaling_log_tolerance
        out.add("price_scaling", sale & (median > 0) & scaled, ratio, 0.0)

        overdue = b.ts - f.take("verification_due_ms", b.scale).astype(np.int64) - t.verification_grace_ms
        out.add("verification_overdue", known_sale & (overdue > 0), overdue / DAY_MS, 0.0)

        rows = np.flatnonzero(b.kind != SALE)  # re-weighs and check weighings: a few per cent of the rows
        if len(rows):
            k, e_r, cls_r, d_r = b.kind[rows], e[rows], cls[rows], half_d[rows]
            ref, error = b.reference_mg[rows], (b.net_mg - b.reference_mg)[rows]
            fair = mpe_mg(ref, e_r, cls_r, in_service=False) + d_r if t.fair_scale_initial_mpe else 0.0
            stall = tol[rows] + fair
            out.add("reweigh_error", (k == REWEIGH) & known[rows] & (error > stall), error, stall, rows=rows)
            check_tol = mpe_mg(ref, e_r, cls_r) + d_r
            out.add(
                "check_error", (k == CHECK) & known[rows] & (np.abs(error) > check_tol), error, check_tol, rows=rows
            )

    # -- over a scale's history ----------------------------------------------------------------------
    def _reweigh_cusum(self, b: Transactions, out: _Collector) -> None:
        rows = np.flatnonzero((b.kind == REWEIGH) & (b.reference_mg > 0))
        if len(rows) == 0:
            return
        g = Groups.of(b.scale[rows])
        ordered = rows[g.order]
        rel = (b.net_mg[ordered] - b.reference_mg[ordered]) * 1_000_000 // b.reference_mg[ordered]
        s = cusum(g, rel - self.t.reweigh_cusum_k_ppm, self.state.reweigh_cusum[g.keys])
        self.state.reweigh_cusum[g.keys] = s[g.ends]
        h = self.t.reweigh_cusum_h_ppm
        out.add("reweigh_cusum", s > h, s, float(h), rows=ordered)

    def _coefficient_cusum(self, b: Transactions, out: _Collector) -> None:
        known = self.facts.take("known", b.scale).astype(np.bool_)
        e = self.facts.take("e_mg", b.scale).astype(np.int64)
        usable = (b.kind == SALE) & known & (b.net_mg >= 200 * e) & (b.raw_counts > b.zero_counts)
        rows = np.flatnonzero(usable)
        if len(rows) == 0:
            return
        g = Groups.of(b.scale[rows])
        ordered = rows[g.order]
        coef = self.facts.take("coefficient", b.scale[ordered]).astype(np.float64)
        implied = (b.raw_counts[ordered] - b.zero_counts[ordered]) / coef * 1_000_000
        ppm = np.rint((b.net_mg[ordered] / implied - 1.0) * 1_000_000).astype(np.int64)
        k, h = self.t.coefficient_cusum_k_ppm, self.t.coefficient_cusum_h_ppm
        hi = cusum(g, ppm - k, self.state.coef_cusum_hi[g.keys])
        lo = cusum(g, -ppm - k, self.state.coef_cusum_lo[g.keys])
        self.state.coef_cusum_hi[g.keys], self.state.coef_cusum_lo[g.keys] = hi[g.ends], lo[g.ends]
        worst = np.maximum(hi, lo)
        out.add("coefficient_cusum", worst > h, worst, float(h), rows=ordered)

    def _last_digit(self, b: Transactions, out: _Collector) -> None:
        known = self.facts.take("known", b.scale).astype(np.bool_)
        rows = np.flatnonzero((b.kind == SALE) & known & (b.net_mg > 0))
        if len(rows) == 0:
            return
        w = self.t.digit_window
        g = Groups.of(b.scale[rows])
        ordered = rows[g.order]
        d = self.facts.take("d_mg", b.scale[ordered]).astype(np.int64)
        digit = (b.net_mg[ordered] // d) % 10
        before = self.state.digit_total[g.keys]
        position = g.cumsum(np.ones(len(ordered), dtype=np.int64), before)  # 1-based count of sales per scale
        window = (position - 1) // w
        scale_of = b.scale[ordered]
        # histogram per (scale, window), seeded with each scale's unfinished window from the state
        key = scale_of * (int(window.max()) + 1) + window
        uniq, inverse = np.unique(key, return_inverse=True)
        hist = np.zeros((len(uniq), 10), dtype=np.int64)
        np.add.at(hist, (inverse, digit), 1)
        first_window = np.searchsorted(uniq, g.keys * (int(window.max()) + 1) + before // w)
        hist[first_window] += self.state.digit_counts[g.keys]
        done = position % w == 0
        expected = w / 10
        chi2 = ((hist[inverse] - expected) ** 2).sum(axis=1) / expected
        limit = self.t.digit_chi2_limit
        out.add("last_digit", done & (chi2 > limit), chi2, limit, rows=ordered)
        last = inverse[g.ends]
        finished = (position[g.ends] % w) == 0
        self.state.digit_counts[g.keys] = np.where(finished[:, None], 0, hist[last])
        self.state.digit_total[g.keys] = position[g.ends]

    def _status(self, b: Transactions, findings: Findings) -> None:
        if len(findings):
            scales = b.scale[findings.row]
            np.add.at(self.state.flag_counts, (scales, findings.rule), 1)
            np.maximum.at(self.state.last_flag_ts, scales, b.ts[findings.row])

    # -- per scale -------------------------------------------------------------------------------------
    def status(self, device: str) -> dict[str, Any]:
        """A supervisor's view of one scale: flags so far by rule, worst severity, last flag time."""
        i = self.facts.index_of(device)
        self.state.ensure(len(self.facts))
        counts = {RULES[k].id: int(n) for k, n in enumerate(self.state.flag_counts[i]) if n}
        order = {"high": 3, "medium": 2, "low": 1}
        worst = max((RULES[RULE_INDEX[r]].severity for r in counts), key=order.__getitem__, default="none")
        return {
            "device": device,
            "risk": worst,
            "flags_by_rule": counts,
            "last_flag_ts": int(self.state.last_flag_ts[i]) or None,
            "reweigh_cusum_ppm": int(self.state.reweigh_cusum[i]),
        }

    def observe_state(self, device: str, record: dict[str, Any]) -> list[Flag]:
        """Rules on a scale's reported state (``scale_state`` record): e ≠ d and unapproved software."""
        i = self.facts.index_of(device)
        flags = []
        seq, ts = int(record.get("seq", 0)), int(record.get("ts", 0))
        if record.get("e_mg") != record.get("d_mg"):
            r = RULES[RULE_INDEX["e_not_d"]]
            v, lim = float(record.get("e_mg", 0)), float(record.get("d_mg", 0))
            flags.append(
                Flag(device, seq, ts, r.id, r.severity, v, lim, r.en.format(v=v, l=lim), r.zh.format(v=v, l=lim))
            )
        approved = self.facts.approved_software[i] if i < len(self.facts.approved_software) else None
        if approved is not None and record.get("software_id") != approved:
            r = RULES[RULE_INDEX["software_id"]]
            flags.append(Flag(device, seq, ts, r.id, r.severity, math.nan, math.nan, r.en, r.zh))
        return flags
