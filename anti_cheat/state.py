"""Per-scale state of the stateful rules, in arrays indexed by the dense scale index, and the grouped
(segmented) array operations that update it for a whole batch without a Python loop per row.

Everything is integer arithmetic, so scoring a stream in one batch or in many gives identical results.
CUSUM uses Page's recursion s_t = max(0, s_{t-1} + y_t) in closed form: with C_t = s_0 + Σ_{i≤t} y_i,
s_t = C_t − min(0, min_{j≤t} C_j), computed per scale with a grouped cumulative sum and minimum.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from .columns import NO_VALUE
from .rules import RULES

I64 = npt.NDArray[np.int64]


def stable_argsort(keys: I64) -> npt.NDArray[np.intp]:
    """``np.argsort(keys, kind="stable")``, in linear time (numpy's radix sort) when the keys fit 16 bits."""
    if len(keys) and keys.min() >= 0 and keys.max() < 1 << 16:
        return np.argsort(keys.astype(np.uint16), kind="stable")
    return np.argsort(keys, kind="stable")


@dataclass
class Groups:
    """Rows grouped by scale, arrival order kept within each group."""

    order: npt.NDArray[np.intp]  # rows in grouped order
    keys: I64  # the scale of each group
    starts: npt.NDArray[np.intp]  # first position of each group in ``order``
    group_of: npt.NDArray[np.intp]  # group number of each position in ``order``

    @classmethod
    def of(cls, scale: I64) -> Groups:
        order = stable_argsort(scale)
        return cls.from_sorted(order, scale[order])

    @classmethod
    def from_sorted(cls, order: npt.NDArray[np.intp], s: I64) -> Groups:
        """Groups from rows already in grouped order (``s``: their keys, sorted)."""
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if len(s) else np.zeros(0, dtype=np.intp)
        group_of = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(s)]))
        keys: I64 = s[starts] if len(s) else s
        return cls(order, keys, starts, group_of)

    def subset(self, keys_of_rows: I64, rows: npt.NDArray[np.bool_]) -> Groups:
        """The same grouping restricted to the rows where ``rows`` (a mask over the original rows), without
        sorting again: order within each group is kept."""
        order = self.order[rows[self.order]]
        return Groups.from_sorted(order, keys_of_rows[order])

    @property
    def ends(self) -> npt.NDArray[np.intp]:
        """Last position of each group."""
        ends: npt.NDArray[np.intp] = np.r_[self.starts[1:], len(self.order)] - 1
        return ends

    def cumsum(self, y: I64, initial: I64) -> I64:
        """Per-group running sum of ``y`` (in grouped order), starting from ``initial`` per group."""
        cs = np.cumsum(y)
        before = np.r_[0, cs][self.starts]  # cumulative sum before each group starts
        result: I64 = cs - before[self.group_of] + initial[self.group_of]
        return result

    def cummin(self, c: I64) -> I64:
        """Per-group running minimum of ``c`` (in grouped order)."""
        if len(c) == 0:
            return c
        span = int(c.max() - c.min()) + 1
        if span * (len(self.starts) + 1) < 2**62:
            # later groups are shifted below every earlier value, so the running minimum restarts per group
            shift = self.group_of.astype(np.int64) * span
            result: I64 = np.minimum.accumulate(c - shift) + shift
            return result
        out = np.empty_like(c)
        for a, b in zip(self.starts, self.ends, strict=True):  # ranges too wide to shift in int64
            out[a : b + 1] = np.minimum.accumulate(c[a : b + 1])
        return out


def cusum(groups: Groups, y: I64, s0: I64) -> I64:
    """Page's CUSUM s_t = max(0, s_{t-1} + y_t) per group, from per-group start values ``s0``."""
    c = groups.cumsum(y, s0)
    return c - np.minimum(groups.cummin(c), 0)


def run_lengths(groups: Groups, s: I64, carry: I64) -> I64:
    """Per position (grouped order), how many steps the CUSUM ``s`` has been above zero (0 where it stands
    at zero): the weighings behind an alarm. ``carry``: each group's run before the batch."""
    n = len(s)
    if n == 0:
        return s
    idx = np.arange(n, dtype=np.int64)
    start = groups.starts[groups.group_of].astype(np.int64)
    # the last position where the CUSUM stood at zero; before the batch, a virtual one ``carry`` back
    marks = np.where(s == 0, idx, start - 1 - carry[groups.group_of])
    span = n + int(carry.max()) + 2  # later groups shifted above every earlier mark: the maximum restarts
    shift = groups.group_of.astype(np.int64) * span
    last = np.maximum.accumulate(marks + shift) - shift
    result: I64 = idx - last
    return result


@dataclass
class EngineState:
    """What the stateful rules remember per scale, one row per scale a batch has scored: a fleet of a
    million registered scales of which a few thousand sell pays for the few thousand (~300 bytes each),
    and its checkpoint holds those rows only. :meth:`rows` maps the facts' scale indexes to rows, giving
    new scales theirs."""

    reweigh_cusum: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    coef_cusum_hi: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    coef_cusum_lo: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    digit_counts: I64 = field(default_factory=lambda: np.zeros((0, 10), dtype=np.int64))
    digit_total: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    flag_counts: I64 = field(default_factory=lambda: np.zeros((0, len(RULES)), dtype=np.int64))
    last_flag_ts: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: the previous sale's zero reference and zero-setting count (NO_VALUE: none yet)
    last_zero: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    last_zero_events: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    last_zero_ts: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: the verification (its ``verified_ms``) the history above belongs to; a newer one starts it again
    since_ms: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: weighings since each CUSUM last stood at zero (the sales behind an alarm, for the evidence)
    reweigh_run: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    coef_run: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: the last market day (days since the epoch, local) a scale was flagged as in use unverified
    unverified_day: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    #: the row of each scale index (-1: none yet) and the scale of each row
    row_of: npt.NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    scale_of: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    n_rows: int = 0

    _ARRAYS = (
        "reweigh_cusum",
        "coef_cusum_hi",
        "coef_cusum_lo",
        "digit_counts",
        "digit_total",
        "flag_counts",
        "last_flag_ts",
        "last_zero",
        "last_zero_events",
        "last_zero_ts",
        "since_ms",
        "reweigh_run",
        "coef_run",
        "unverified_day",
    )
    #: what a scale's history starts from (0 for the others)
    _FILL: ClassVar[dict[str, int]] = {
        "last_zero": NO_VALUE,
        "last_zero_events": NO_VALUE,
        "since_ms": NO_VALUE,
        "unverified_day": NO_VALUE,
    }
    #: what a new verification starts again (flag counts and the last flag stay: they are the scale's record)
    _HISTORY = (
        "reweigh_cusum",
        "coef_cusum_hi",
        "coef_cusum_lo",
        "digit_counts",
        "digit_total",
        "last_zero",
        "last_zero_events",
        "last_zero_ts",
        "reweigh_run",
        "coef_run",
    )

    def __len__(self) -> int:
        """Rows in use: the scales with state."""
        return self.n_rows

    def ensure(self, n: int) -> None:
        """Room for rows ``0 … n-1``."""
        if n <= len(self.digit_total):
            return
        cap = max(n, 2 * len(self.digit_total), 16)
        for name in (*self._ARRAYS, "scale_of"):
            old = getattr(self, name)
            new = np.full((cap, *old.shape[1:]), self._FILL.get(name, 0), dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def rows(self, scales: npt.NDArray[np.intp] | npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
        """The row of each scale index, new scales getting theirs (their state starts from nothing)."""
        scales = np.asarray(scales, dtype=np.intp)
        if len(scales) == 0:
            return scales
        top = int(scales.max()) + 1
        if top > len(self.row_of):
            grown = np.full(max(top, 2 * len(self.row_of)), -1, dtype=np.int32)
            grown[: len(self.row_of)] = self.row_of
            self.row_of = grown
        found = self.row_of[scales]
        if bool((found < 0).any()):
            new = np.unique(scales[found < 0])
            first = self.n_rows
            self.ensure(first + len(new))
            self.row_of[new] = np.arange(first, first + len(new), dtype=np.int32)
            self.scale_of[first : first + len(new)] = new
            self.n_rows += len(new)
            found = self.row_of[scales]
        return found.astype(np.intp)

    def row(self, scale: int) -> int:
        """The row of one scale index (given one if new)."""
        return int(self.rows(np.array([scale]))[0])

    def reset(self, scale: int | npt.NDArray[np.intp]) -> None:
        """Forget scales' history (after a recorded verification, their baselines start again); their flag
        counts stay. ``scale``: scale indexes; a scale without a row has no history to forget."""
        scales = np.atleast_1d(np.asarray(scale, dtype=np.intp))
        rows = self.row_of[scales[scales < len(self.row_of)]].astype(np.intp)
        self.reset_rows(rows[rows >= 0])

    def reset_rows(self, rows: npt.NDArray[np.intp]) -> None:
        for name in self._HISTORY:
            getattr(self, name)[rows] = self._FILL.get(name, 0)

    def to_bytes(self, devices: Sequence[str]) -> bytes:
        """The state of every scale with a row, keyed by device id (``devices[i]``: the device of scale
        index ``i``), and the rule ids that name the columns of ``flag_counts``. Scales never scored have
        no row: their state is all zeros anyway."""
        n = self.n_rows
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            devices=np.array(json.dumps([devices[s] for s in self.scale_of[:n].tolist()])),
            rules=np.array(json.dumps([r.id for r in RULES])),
            **{name: getattr(self, name)[:n] for name in self._ARRAYS},
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, index_of: Callable[[str], int]) -> EngineState:
        """Restore; each saved scale's row moves to ``index_of(device)``, its current dense index.

        Older saves are read too: rows an array lacks (saves of scales never scored, written before
        :meth:`to_bytes` left them out) and arrays a save lacks start at zero; ``flag_counts`` columns
        follow the saved rule ids, so a rule added or removed since moves no count to another rule.
        A save without rule ids (older than them) keeps its counts only if it has today's number of rules.
        """
        with np.load(io.BytesIO(data)) as saved:
            devices: list[str] = json.loads(str(saved["devices"]))
            rules: list[str] | None = json.loads(str(saved["rules"])) if "rules" in saved.files else None
            arrays = {name: saved[name] for name in cls._ARRAYS if name in saved.files}
        state = cls()
        rows = state.rows(np.array([index_of(d) for d in devices], dtype=np.intp))
        flags = arrays.pop("flag_counts", state.flag_counts[:0])
        for name, values in arrays.items():
            getattr(state, name)[rows[: len(values)]] = values
        state._restore_flag_counts(rows[: len(flags)], flags, rules)
        return state

    def _restore_flag_counts(self, rows: npt.NDArray[np.intp], flags: I64, rules: list[str] | None) -> None:
        current = {r.id: i for i, r in enumerate(RULES)}
        if rules is None:
            if flags.shape[1] == len(RULES):
                self.flag_counts[rows] = flags
            return
        for column, rule in enumerate(rules):
            if rule in current:
                self.flag_counts[rows, current[rule]] = flags[:, column]
