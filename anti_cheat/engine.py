"""The anti-cheating engine: every rule of :mod:`anti_cheat.rules` over a batch, with per-scale state.

``Engine(facts).score(batch)`` returns a :class:`Findings` table (row, rule, value, limit) for the batch's
transactions and updates the per-scale state; ``findings.flags(batch, facts)`` renders them for people.
Pure computation, no I/O. No Python loop runs per transaction: each rule is a handful of numpy operations
over the whole batch; the stateful rules use grouped integer scans (:mod:`anti_cheat.state`), so a stream
scored in one batch or split into many gives identical findings. :meth:`Engine.save` /
:meth:`Engine.restore` carry the state across a worker restart or to another worker.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from device_profiles.metrology import FROM_START, mpe_mg

from .columns import CHECK, NO_VALUE, REWEIGH, SALE, STATE, WEIGHED, Transactions
from .evidence import NEVER_VERIFIED, VERIFICATION_FAILED, VERIFICATION_LAPSED, describe
from .facts import NEVER, ScaleFacts
from .prices import PriceBook, bin_price
from .rules import RULE_INDEX, RULES
from .state import EngineState, Groups, cusum, run_lengths
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
    #: the evidence in human terms (:mod:`anti_cheat.evidence`; None where the rule is not about a mass)
    evidence_g: float | None = None
    evidence_pct: float | None = None
    receipt_g: float | None = None
    reference_g: float | None = None
    limit_g: float | None = None
    sales: int = 1  # sales (or re-weighs) behind the finding

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}


@dataclass
class Findings:
    """Flags of one batch as columns: the batch row, the rule (index into RULES), evidence and limit."""

    row: npt.NDArray[np.intp]
    rule: I64
    value: F64
    limit: F64
    sales: I64 = field(default_factory=lambda: np.zeros(0, np.int64))  # sales behind each finding

    def __len__(self) -> int:
        return len(self.row)

    def flags(self, batch: Transactions, facts: ScaleFacts) -> list[Flag]:
        """Render each finding, with its evidence in grams and % (a loop per flag, not per transaction:
        flags are few)."""
        out = []
        sales = self.sales.tolist() if len(self.sales) == len(self.row) else [1] * len(self.row)
        for r, k, v, lim, n in zip(
            self.row.tolist(), self.rule.tolist(), self.value.tolist(), self.limit.tolist(), sales, strict=True
        ):
            rule = RULES[k]
            scale, source = int(batch.scale[r]), int(batch.source[r])
            ev = describe(
                rule.id,
                v,
                lim,
                net_mg=int(batch.net_mg[r]),
                reference_mg=int(batch.reference_mg[r]),
                tare_mg=int(batch.tare_mg[r]),
                max_mg=int(facts.max_mg[facts.latest[scale]]),
                sales=n,
                en=rule.en.format(v=v, l=lim),
                zh=rule.zh.format(v=v, l=lim),
            )
            out.append(
                Flag(
                    facts.devices[scale],
                    int(batch.seq[r]),
                    int(batch.ts[r]),
                    rule.id,
                    rule.severity,
                    v,
                    lim,
                    ev.en,
                    ev.zh,
                    facts.devices[source] if source != scale else "",
                    ev.evidence_g,
                    ev.evidence_pct,
                    ev.receipt_g,
                    ev.reference_g,
                    ev.limit_g,
                    ev.sales,
                )
            )
        return out


class _Collector:
    def __init__(self, judged: I64) -> None:
        self.parts: list[tuple[npt.NDArray[np.intp], int, F64, F64, I64]] = []
        self.judged = judged

    def add(
        self,
        rule: str,
        has: npt.NDArray[np.bool_],
        hit: npt.NDArray[np.bool_],
        value: npt.NDArray[Any],
        limit: npt.NDArray[Any] | float,
        rows: npt.NDArray[np.intp] | None = None,
        sales: npt.NDArray[Any] | int = 1,
    ) -> None:
        """Flag the rows where ``has`` (the rule's columns and facts are there) and ``hit``; ``sales``:
        how many sales stand behind each finding (a history's length for the stateful rules)."""
        self.judged[RULE_INDEX[rule]] += int(np.count_nonzero(has))
        idx = np.flatnonzero(has & hit)
        if len(idx) == 0:
            return
        lim = np.broadcast_to(np.asarray(limit, dtype=np.float64), hit.shape)[idx]
        n = np.broadcast_to(np.asarray(sales, dtype=np.int64), hit.shape)[idx]
        where = idx if rows is None else rows[idx]
        self.parts.append((where, RULE_INDEX[rule], np.asarray(value, dtype=np.float64)[idx], lim, n))

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
            np.concatenate([p[4] for p in self.parts])[order],
        )


def round_half_up_price(net_mg: I64, price: I64) -> I64:
    """Price in fen of ``net_mg`` at ``price`` fen/kg, rounded half up, in integers."""
    product = net_mg * price
    if product.min(initial=0) >= 0:  # the usual case: no refunds in the batch
        positive: I64 = (product + 500_000) // 1_000_000
        return positive
    result: I64 = np.sign(product) * ((np.abs(product) + 500_000) // 1_000_000)
    return result


def _has(column: I64) -> npt.NDArray[np.bool_]:
    result: npt.NDArray[np.bool_] = column != NO_VALUE
    return result


def _or0(column: I64) -> I64:
    result: I64 = np.where(column != NO_VALUE, column, 0)
    return result


_DIGITS = np.array([1, 2, 3, 4, 6, 7, 8, 9])  # the last digits the uniformity test counts


def _mpe_around(indicated: I64, e: I64, cls: I64) -> F64:
    """The in-service MPE for a true load the indication may stand for: the MPE is judged at the true
    load, which lies within the indication ± MPE (at most 3 e), so near a band edge the larger band counts."""
    return mpe_mg(np.abs(indicated) + 3 * e, e, cls)


@dataclass
class _InForce:
    """The facts of the verification in force for each row, gathered once per batch."""

    version: npt.NDArray[np.intp]
    known: npt.NDArray[np.bool_]
    e: I64
    d: I64
    cls: I64
    max_mg: I64
    coef: F64
    has_zero: npt.NDArray[np.bool_]
    zero: I64
    calibrations: I64
    configurations: I64
    due_ms: I64
    software: I64
    mg_per_count: F64 = field(default_factory=lambda: np.zeros(0))  # 1e6 / coefficient
    noise_mg: F64 = field(default_factory=lambda: np.zeros(0))  # the counts' noise allowance, in mg
    net: I64 = field(default_factory=lambda: np.zeros(0, np.int64))  # net_mg, 0 where absent
    tare: I64 = field(default_factory=lambda: np.zeros(0, np.int64))  # tare_mg, 0 where absent
    counts: tuple[F64, F64, npt.NDArray[np.bool_]] | None = None  # Engine._counts_tolerance, once per batch
    groups: Groups | None = None  # every row, grouped by the verification in force (for the histories)
    reweighs: tuple[npt.NDArray[np.bool_], F64] | None = None  # re-weigh rows judged and their tolerance

    @classmethod
    def of(cls, facts: ScaleFacts, version: npt.NDArray[np.intp]) -> _InForce:
        packed = facts.take_packed(version)
        col = dict(zip(ScaleFacts.PACKED, packed, strict=True))
        return cls(
            version,
            col["known"].astype(np.bool_),
            col["e_mg"],
            col["d_mg"],
            col["class_code"],
            col["max_mg"],
            facts.take("coefficient", version),
            col["has_zero"].astype(np.bool_),
            col["zero_counts"],
            col["calibration_events"],
            col["configuration_events"],
            col["verification_due_ms"],
            col["approved_code"],
        )


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
        self.prices = PriceBook()
        self.stateful = stateful  # False: only the per-row rules (for measuring them alone)
        #: rows each rule has looked at (had its columns and facts), since the engine started
        self.judged: I64 = np.zeros(len(RULES), dtype=np.int64)

    def save(self) -> bytes:
        """The per-scale state and the learned prices, for :meth:`restore`."""
        buf = io.BytesIO()
        np.savez(
            buf,
            state=np.frombuffer(self.state.to_bytes(self.facts.devices), dtype=np.uint8),
            prices=np.frombuffer(self.prices.to_bytes(self.facts), dtype=np.uint8),
        )
        return buf.getvalue()

    def restore(self, data: bytes) -> None:
        """Take over a :meth:`save` (also one of an engine older than learned prices)."""
        with np.load(io.BytesIO(data)) as saved:
            files = set(saved.files)
            parts = {name: saved[name].tobytes() for name in ("state", "prices") if name in files}
        if "state" not in parts:  # an EngineState save on its own
            self.state = EngineState.from_bytes(data, self.facts.index_of)
            return
        self.state = EngineState.from_bytes(parts["state"], self.facts.index_of)
        self.prices = PriceBook.from_bytes(parts["prices"], self.facts)

    def rules_run(self) -> dict[str, int]:
        """Rows judged per rule since the engine started (0: the input never had the rule's columns)."""
        return {rule.id: int(n) for rule, n in zip(RULES, self.judged, strict=True)}

    def score(self, b: Transactions) -> Findings:
        """Findings for batch ``b``; updates the per-scale state."""
        out = _Collector(self.judged)
        if len(b):
            version = self.facts.in_force(b.scale, b.ts, b.calibration_events, b.configuration_events)
            f = _InForce.of(self.facts, version)
            f.net, f.tare = _or0(b.net_mg), _or0(b.tare_mg)
            f.mg_per_count = 1_000_000 / f.coef
            f.noise_mg = np.maximum(self.t.counts_noise * f.mg_per_count, self.t.counts_noise_e * f.e)
            self._per_row(b, f, out)
            self._price_scaling(b, f, out)
            if self.stateful:
                self._start_histories(b, f)
                self._reweigh_cusum(b, f, out)
                self._coefficient_cusum(b, f, out)
                if self.t.digit_test:
                    self._last_digit(b, f, out)
                self._zero_jump(b, f, out)
                self._unverified_in_use(b, f, out)
        findings = out.findings()
        self._status(b, findings)
        return findings

    def flag_rows(self, rows: Iterable[Mapping[str, Any]]) -> list[Flag]:
        """Flags of one batch given as dict rows (the keys of :mod:`anti_cheat.columns`), in arrival order:
        for callers that hold rows, not columns (evaluations, files)."""
        batch = Transactions.from_rows(self.facts, rows)
        return self.score(batch).flags(batch, self.facts)

    # -- physics shared by several rules -------------------------------------------------------------
    def _counts_tolerance(self, b: Transactions, f: _InForce) -> tuple[F64, F64, npt.NDArray[np.bool_]]:
        """(indicated gross − the gross the counts measure, its tolerance, rows that have both) in mg.

        The load cell measures everything on the load receptor, goods and container: the indicated gross
        is net + tare, whatever the tare's kind. The tolerance is the in-service MPE at that gross, half a d
        of rounding, and the counts' own noise."""
        if f.counts is None:
            has = (b.kind == SALE) & f.known & _has(b.raw_counts) & _has(b.zero_counts) & _has(b.net_mg)
            gross = f.net + f.tare
            implied = (_or0(b.raw_counts) - _or0(b.zero_counts)) * f.mg_per_count
            tol = _mpe_around(gross, f.e, f.cls) + f.d / 2 + f.noise_mg
            f.counts = (gross - implied, tol, has)
        return f.counts

    # -- one row at a time, vectorised ---------------------------------------------------------------
    def _per_row(self, b: Transactions, f: _InForce, out: _Collector) -> None:
        t = self.t
        sale = b.kind == SALE
        known_sale = sale & f.known
        net, tare = f.net, f.tare
        gross = net + tare

        has = sale & _has(b.amount_fen) & _has(b.unit_price) & _has(b.net_mg)
        diff = _or0(b.amount_fen) - round_half_up_price(net, _or0(b.unit_price))
        out.add("price_math", has, diff != 0, diff, 0.0)

        err, tol, has = self._counts_tolerance(b, f)
        out.add("coefficient", has, np.abs(err) > tol, err, tol)

        has = ((b.kind == SALE) | (b.kind == STATE)) & f.known
        has &= _has(b.calibration_events) & _has(b.configuration_events)
        events = np.abs(_or0(b.calibration_events) - f.calibrations) + np.abs(
            _or0(b.configuration_events) - f.configurations
        )
        out.add("counters", has, events > 0, events, 0.0)

        has = sale & (_has(b.stable) | _has(b.stable_ms))
        unstable = (b.stable == 0) | (_has(b.stable_ms) & (b.stable_ms < t.stability_window_ms))
        shown = np.where((b.stable == 0) | ~_has(b.stable_ms), 0, b.stable_ms)
        out.add("stability", has, unstable, shown, float(t.stability_window_ms))

        zero = _or0(b.zero_counts)
        has = known_sale & f.has_zero & _has(b.zero_counts)
        offset = np.abs(zero - f.zero) * f.mg_per_count
        zero_limit = t.zero_range_of_max * f.max_mg
        out.add("zero_offset", has, offset > zero_limit, offset, zero_limit)

        has = known_sale & _has(b.empty_counts) & _has(b.zero_counts)
        empty = (_or0(b.empty_counts) - zero) * f.mg_per_count
        empty_limit = t.zero_empty_band_e * f.e + f.noise_mg
        # one-sided: an empty pan reading above zero means the zero lies below the empty pan, and that
        # mass is added to every sale (below zero, the customer gains)
        out.add("zero_empty", has, empty > empty_limit, empty, empty_limit)

        has = known_sale & (b.tare_kind == WEIGHED) & _has(b.tare_gross_mg) & (tare > 0)
        empty_pan = np.abs(_or0(b.tare_gross_mg)) * 4 <= f.e  # zero is held within ±0.25 e
        out.add("tare_at_zero_gross", has, empty_pan, tare, 0.0)

        has = known_sale & _has(b.tare_mg)
        tare_limit = t.tare_max_of_max * f.max_mg
        out.add("tare_implausible", has, tare > tare_limit, tare, tare_limit)

        has = known_sale & _has(b.net_mg)
        over = f.max_mg + 9 * f.e
        out.add("over_max", has, gross > over, gross, over)

        overdue = b.ts - f.due_ms - t.verification_grace_ms
        has = known_sale & (f.due_ms != np.iinfo(np.int64).max)  # a due date on record
        out.add("verification_overdue", has, overdue > 0, overdue / DAY_MS, 0.0)

        has = f.known & _has(b.software) & (b.software > 0) & (f.software > 0)
        out.add("software_id", has, b.software != f.software, np.full(len(b), math.nan), math.nan)

        has = (b.kind == STATE) & _has(b.reported_e_mg) & _has(b.reported_d_mg)
        out.add("e_not_d", has, b.reported_e_mg != b.reported_d_mg, b.reported_e_mg, b.reported_d_mg)

        self._reweigh_and_check(b, f, out)

    def _reweigh_tolerance(self, b: Transactions, f: _InForce, rows: npt.NDArray[np.intp]) -> F64:
        """Receipt − fair reading that two honest scales can produce: the stall's in-service MPE at the
        gross it weighed (receipt net + tare: at least the MPE for the net, which R76 applies at every
        tare), the fair scale's own in-service MPE at its reading (its own class, e and d; the stall's when
        the fair scale has no facts), the rounding of every reading (d/2 each: the stall's gross and weighed
        tare, the fair scale's gross and the bag it tares), and, for a preset tare, the spread of real
        containers around the keyed value (a bag keyed at 5 g weighs 2–8 g)."""
        tare = f.tare[rows]
        stall_gross = f.net[rows] + tare
        weighed = (tare > 0) & (b.tare_kind[rows] == WEIGHED)  # a weighed tare is a second rounded reading
        keyed = (tare > 0) & ~weighed  # a preset tare (or one of unknown kind): the real container varies
        container = np.where(keyed, np.maximum(f.e[rows], tare * self.t.preset_tare_spread), 0)
        stall = _mpe_around(stall_gross, f.e[rows], f.cls[rows]) + f.d[rows] / 2 * (1 + weighed) + container
        fair_version = self.facts.in_force(b.source[rows], b.ts[rows])
        own = self.facts.take("known", fair_version) & (b.source[rows] != b.scale[rows])
        fe = np.where(own, self.facts.take("e_mg", fair_version), f.e[rows])
        fd = np.where(own, self.facts.take("d_mg", fair_version), f.d[rows])
        fcls = np.where(own, self.facts.take("class_code", fair_version), f.cls[rows])
        fair = _mpe_around(b.reference_mg[rows], fe, fcls) + fd  # its gross and the bag it tares: 2 × d/2
        result: F64 = stall + fair
        return result

    def _reweighs(self, b: Transactions, f: _InForce) -> tuple[npt.NDArray[np.bool_], F64]:
        """The re-weigh rows that can be judged, and each one's tolerance (0 elsewhere); once per batch, for
        ``reweigh_error`` and ``reweigh_cusum``."""
        if f.reweighs is None:
            usable = f.known & _has(b.net_mg) & _has(b.reference_mg)
            mask = (b.kind == REWEIGH) & usable & (b.reference_mg > 0)
            tol = np.zeros(len(b))
            rows = np.flatnonzero(mask)
            if len(rows):
                tol[rows] = self._reweigh_tolerance(b, f, rows)
            f.reweighs = (mask, tol)
        return f.reweighs

    def _reweigh_and_check(self, b: Transactions, f: _InForce, out: _Collector) -> None:
        mask, tolerance = self._reweighs(b, f)
        rows = np.flatnonzero(mask)
        if len(rows):
            error = (b.net_mg - b.reference_mg)[rows]
            tol = tolerance[rows]
            out.add("reweigh_error", np.ones(len(rows), np.bool_), error > tol, error, tol, rows=rows)
        usable = f.known & _has(b.net_mg) & _has(b.reference_mg)
        rows = np.flatnonzero((b.kind == CHECK) & usable)
        if len(rows):
            error = (b.net_mg - b.reference_mg)[rows]
            tol = mpe_mg(b.reference_mg[rows], f.e[rows], f.cls[rows]) + f.d[rows] / 2
            out.add("check_error", np.ones(len(rows), np.bool_), np.abs(error) > tol, error, tol, rows=rows)

    # -- prices learned from the market ---------------------------------------------------------------
    def _price_scaling(self, b: Transactions, f: _InForce, out: _Collector) -> None:
        t = self.t
        rows = np.flatnonzero((b.kind == SALE) & _has(b.unit_price) & (b.unit_price > 0))
        if len(rows) == 0:
            return
        price, plu = b.unit_price[rows], b.plu[rows]
        prior = self.facts.median_by_code[plu].astype(np.float64)
        if self.stateful:
            market = self.facts.market_code[b.scale[rows]]
            learned = self.prices.observe(
                market,
                plu,
                b.ts[rows],
                price,
                min_sales=t.price_reference_min_sales,
                day_offset_ms=t.market_day_offset_ms,
            )
            reference = np.where(learned >= 0, bin_price(learned), prior)
        else:
            reference = prior
        has = reference > 0
        ratio = price / np.where(has, reference, 1.0)
        log_ratio = np.log10(np.maximum(ratio, 1e-9))
        decade = np.rint(log_ratio)
        scaled = ((decade == -1) | (decade == -2)) & (np.abs(log_ratio - decade) <= t.price_scaling_log_tolerance)
        # where the counts are reported, the weight shown must be scaled up by the same decade
        err, _tol, counted = self._counts_tolerance(b, f)
        counted = counted[rows]
        implied_net = (f.net - err)[rows]  # the net the counts measure
        weight_decade = np.log10(np.maximum(f.net[rows], 1) / np.maximum(implied_net, 1.0))
        # without counts a price alone cannot tell a key-in from a clearance or a stall's own PLU numbering:
        # the rule runs only where the counts show the weight scaled up by the same decade
        corroborated = np.abs(weight_decade + decade) <= t.price_scaling_log_tolerance
        out.add("price_scaling", has & counted, scaled & corroborated, ratio, 0.0, rows=rows)

    # -- over a scale's history since its verification -------------------------------------------------
    def _start_histories(self, b: Transactions, f: _InForce) -> None:
        """Group the rows by the verification in force; a scale whose rows bring a verification newer than
        the one its history belongs to starts its history again (CUSUMs, digit window, last zero)."""
        f.groups = Groups.of(f.version.astype(np.int64))
        versions = f.groups.keys[self.facts.known[f.groups.keys]]
        if len(versions) == 0:
            return
        scales, since = self.facts.v_scale[versions], self.facts.v_from_ms[versions]
        touched, inverse = np.unique(scales, return_inverse=True)
        newest = np.full(len(touched), NO_VALUE, dtype=np.int64)
        np.maximum.at(newest, inverse, since)
        rows = self.state.rows(touched)
        newer = newest > self.state.since_ms[rows]
        self.state.reset_rows(rows[newer])
        self.state.since_ms[rows[newer]] = newest[newer]

    def _histories(self, f: _InForce, mask: npt.NDArray[np.bool_]) -> tuple[Groups, I64, npt.NDArray[np.bool_]]:
        """The rows where ``mask``, grouped by the verification in force, each group's scale's state row,
        and whether the group is the scale's current history (an older verification's rows start from
        nothing and leave no state)."""
        assert f.groups is not None
        g = f.groups.subset(f.version.astype(np.int64), mask)
        at = self.state.rows(self.facts.v_scale[g.keys])
        current = self.facts.v_from_ms[g.keys] == self.state.since_ms[at]
        return g, at, current

    def _cusum_step(self, milli: F64) -> I64:
        """A CUSUM's step for errors in thousandths of their tolerance: less the slack (one tolerance), and
        at most ``cusum_step_cap_milli`` so that one gross error alone does not make a persistent alarm
        (the per-row rule flags it)."""
        step = np.floor(np.minimum(milli, self.t.cusum_step_cap_milli)).astype(np.int64)
        result: I64 = step - self.t.cusum_slack_milli
        return result

    def _reweigh_cusum(self, b: Transactions, f: _InForce, out: _Collector) -> None:
        mask, tolerance = self._reweighs(b, f)
        if not mask.any():
            return
        g, at, current = self._histories(f, mask)
        ordered = g.order
        tol = tolerance[ordered]
        error = (b.net_mg - b.reference_mg)[ordered]
        y = self._cusum_step(error * 1000 / tol)
        s = cusum(g, y, np.where(current, self.state.reweigh_cusum[at], 0))
        run = run_lengths(g, s, np.where(current, self.state.reweigh_run[at], 0))
        self.state.reweigh_cusum[at[current]] = s[g.ends][current]
        self.state.reweigh_run[at[current]] = run[g.ends][current]
        h = self.t.reweigh_cusum_h_milli
        hit = s > h
        out.add("reweigh_cusum", np.ones(len(ordered), np.bool_), hit, s / 1000, h / 1000, rows=ordered, sales=run)

    def _coefficient_cusum(self, b: Transactions, f: _InForce, out: _Collector) -> None:
        err, tol, has = self._counts_tolerance(b, f)
        if not has.any():
            return
        g, at, current = self._histories(f, has)
        ordered = g.order
        # in units of the tolerance at the gross, like the per-row rule: a real scale's firmware linearises
        # and compensates, so counts / coefficient and the indication may differ within the MPE honestly
        units = err[ordered] * 1000 / tol[ordered]
        hi = cusum(g, self._cusum_step(units), np.where(current, self.state.coef_cusum_hi[at], 0))
        lo = cusum(g, self._cusum_step(-units), np.where(current, self.state.coef_cusum_lo[at], 0))
        self.state.coef_cusum_hi[at[current]] = hi[g.ends][current]
        self.state.coef_cusum_lo[at[current]] = lo[g.ends][current]
        worst = np.maximum(hi, lo)
        run = run_lengths(g, worst, np.where(current, self.state.coef_run[at], 0))
        self.state.coef_run[at[current]] = run[g.ends][current]
        h = self.t.coefficient_cusum_h_milli
        every = np.ones(len(ordered), np.bool_)
        out.add("coefficient_cusum", every, worst > h, worst / 1000, h / 1000, rows=ordered, sales=run)

    def _last_digit(self, b: Transactions, f: _InForce, out: _Collector) -> None:
        # only sales of at least digit_min_d d: below that the last digit of a smooth mass distribution is
        # not uniform (a handful of herbs is 2–20 e)
        # and without the digits 0 and 5, where portions of round weight land (一斤 = 500 g, 250 g, 100 g)
        last = (f.net // np.maximum(f.d, 1)) % 10
        mask = (b.kind == SALE) & f.known & (f.net >= self.t.digit_min_d * f.d) & (last % 5 != 0)
        if not mask.any():
            return
        w = self.t.digit_window
        g, at, current = self._histories(f, mask)
        ordered = g.order
        digit = (b.net_mg[ordered] // f.d[ordered]) % 10
        before = np.where(current, self.state.digit_total[at], 0)
        position = g.cumsum(np.ones(len(ordered), dtype=np.int64), before)  # 1-based count of sales per history
        window = (position - 1) // w
        width = int(window.max()) + 1
        group = np.arange(len(g.keys), dtype=np.int64)
        # histogram per (history, window), seeded with each current history's unfinished window
        key = g.group_of.astype(np.int64) * width + window  # non-decreasing in grouped order
        new = np.r_[True, key[1:] != key[:-1]]
        uniq, inverse = key[new], np.cumsum(new) - 1
        hist = np.zeros((len(uniq), 10), dtype=np.int64)
        np.add.at(hist, (inverse, digit), 1)
        first_window = np.searchsorted(uniq, group * width + before // w)
        hist[first_window] += np.where(current[:, None], self.state.digit_counts[at], 0)
        done = np.flatnonzero(position % w == 0)  # a window completes: one row in w
        expected = w / len(_DIGITS)
        chi2 = ((hist[inverse[done]][:, _DIGITS] - expected) ** 2).sum(axis=1) / expected
        limit = self.t.digit_chi2_limit
        out.add("last_digit", np.ones(len(done), np.bool_), chi2 > limit, chi2, limit, rows=ordered[done], sales=w)
        last = inverse[g.ends]
        finished = (position[g.ends] % w) == 0
        counts = np.where(finished[:, None], 0, hist[last])
        self.state.digit_counts[at[current]] = counts[current]
        self.state.digit_total[at[current]] = position[g.ends][current]

    def _zero_jump(self, b: Transactions, f: _InForce, out: _Collector) -> None:
        mask = (b.kind == SALE) & f.known & _has(b.zero_counts)
        if not mask.any():
            return
        g, at, current = self._histories(f, mask)
        ordered = g.order
        zero, events = b.zero_counts[ordered], b.zero_set_events[ordered]
        previous = np.r_[np.int64(NO_VALUE), zero[:-1]]
        previous[g.starts] = np.where(current, self.state.last_zero[at], NO_VALUE)
        previous_events = np.r_[np.int64(NO_VALUE), events[:-1]]
        previous_events[g.starts] = np.where(current, self.state.last_zero_events[at], NO_VALUE)
        ts = b.ts[ordered]
        previous_ts = np.r_[np.int64(0), ts[:-1]]
        previous_ts[g.starts] = np.where(current, self.state.last_zero_ts[at], 0)
        self.state.last_zero[at[current]] = zero[g.ends][current]
        self.state.last_zero_events[at[current]] = events[g.ends][current]
        self.state.last_zero_ts[at[current]] = ts[g.ends][current]
        # judged only where the scale reports its zero settings (without them a power-on zero looks the same)
        has = _has(previous) & _has(events) & _has(previous_events) & (events == previous_events)
        moved = (zero - _or0(previous)) * f.mg_per_count[ordered]
        hours = np.clip(ts - previous_ts, 0, None) / 3_600_000
        limit = (self.t.zero_jump_band_e + self.t.zero_drift_e_per_hour * hours) * f.e[ordered] + f.noise_mg[ordered]
        out.add("zero_jump", has, np.abs(moved) > limit, moved, limit, rows=ordered)

    def _unverified_in_use(self, b: Transactions, f: _InForce, out: _Collector) -> None:
        """A scale selling without a valid verification: none on record or the latest failed (the registry's
        word, :attr:`ScaleFacts.unverified_from_ms`), or the one in force past its due date. One finding per
        scale and market day (its first such sale), not one per sale: a flag accuses a vendor, and the
        day's count of such sales in the batch goes with it as ``sales``."""
        sale = b.kind == SALE
        since = self.facts.unverified_from_ms[b.scale]
        said = sale & (b.ts >= since)
        lapsed = sale & f.known & (f.due_ms != NEVER) & (b.ts > f.due_ms + self.t.verification_grace_ms)
        hit = said | lapsed
        cause = np.where(said, np.where(since == FROM_START, NEVER_VERIFIED, VERIFICATION_FAILED), VERIFICATION_LAPSED)
        start = np.where(said, since, f.due_ms)
        days = np.where(cause == NEVER_VERIFIED, math.nan, (b.ts - np.where(hit, start, b.ts)) / DAY_MS)
        first = np.zeros(len(b), np.bool_)
        count = np.zeros(len(b), np.int64)
        rows = np.flatnonzero(hit)
        if len(rows):
            day = np.clip((b.ts[rows] + self.t.market_day_offset_ms) // DAY_MS, 0, (1 << 21) - 1)
            _, at, n = np.unique((b.scale[rows] << 21) | day, return_index=True, return_counts=True)
            rows, day = rows[at], day[at]  # each scale's first such sale of each day in the batch
            state_rows = self.state.rows(b.scale[rows])
            new = day > self.state.unverified_day[state_rows]  # not flagged that day by an earlier batch
            np.maximum.at(self.state.unverified_day, state_rows[new], day[new])
            first[rows[new]] = True
            count[rows[new]] = n[new]
        out.add("unverified_in_use", sale, first, days, cause, sales=count)

    def _status(self, b: Transactions, findings: Findings) -> None:
        if len(findings):
            rows = self.state.rows(b.scale[findings.row])
            np.add.at(self.state.flag_counts, (rows, findings.rule), 1)
            np.maximum.at(self.state.last_flag_ts, rows, b.ts[findings.row])

    # -- per scale -------------------------------------------------------------------------------------
    def status(self, device: str) -> dict[str, Any]:
        """A supervisor's view of one scale: flags so far by rule, worst severity, last flag time."""
        i = self.state.row(self.facts.index_of(device))
        counts = {RULES[k].id: int(n) for k, n in enumerate(self.state.flag_counts[i]) if n}
        order = {"high": 3, "medium": 2, "low": 1}
        worst = max((RULES[RULE_INDEX[r]].severity for r in counts), key=order.__getitem__, default="none")
        return {
            "device": device,
            "risk": worst,
            "flags_by_rule": counts,
            "last_flag_ts": int(self.state.last_flag_ts[i]) or None,
            "reweigh_cusum_tolerances": int(self.state.reweigh_cusum[i]) / 1000,
        }

    def observe_state(self, device: str, record: dict[str, Any]) -> list[Flag]:
        """Rules on a scale's reported state (a ``scale_state`` record): e ≠ d, unapproved software, seals."""
        state = {**record, "type": "scale_state", "ts": int(record.get("ts", 0))}
        batch = Transactions.from_records(self.facts, [(device, int(record.get("seq", 0)), state)])
        return self.score(batch).flags(batch, self.facts)
