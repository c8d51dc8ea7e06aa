"""One stall's week as columns: its sales, the re-weighs of them at the fair scale, the inspector's check
weighings and the scale's state reports at each power-on, with what each row really was.

Every reading goes through :mod:`.physics`: counts from the gross load (goods and container), the display from
the counts with the coefficient the scale computes with. Each sale is also computed as an honest scale would
have shown it with the same noise; a weight cheat's row is ``cheated`` when the customer was shown more than
that. Columns are numpy arrays over the stall's sales; no Python loop runs per sale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .conditions import Condition
from .goods import (
    BAG_G,
    BAG_PRESET_G,
    COMMODITIES,
    DAY_MS,
    HOUR_MS,
    PERIOD_START_MS,
    price_day,
    prices,
    vendor_base_prices,
)
from .physics import ADC_NOISE_COUNTS, amount_fen, counts, indication_mg, quantise
from .scales import FairPlan, MarketPlan, StallPlan

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
Columns = dict[str, npt.NDArray[np.generic]]
TARE_NONE, TARE_WEIGHED, TARE_PRESET = 0, 1, 2
TEST_WEIGHTS_G = (500, 1_000, 2_000, 5_000, 10_000, 20_000)
_MASS_G = np.array([c.mass_g for c in COMMODITIES])
_SPREAD = np.array([c.spread for c in COMMODITIES])
_SMALL = np.array([c.small for c in COMMODITIES])


@dataclass
class StallWeek:
    """Columns per kind of row (``sale``, ``reweigh``, ``check``, ``state``), sender and time still unsorted."""

    sale: Columns
    reweigh: Columns
    check: Columns
    state: Columns


def _runs(rng: np.random.Generator, n: int, mean_on: float, mean_off: float) -> B:
    """An on/off sequence of ``n`` customers in runs of geometric length (a vendor toggling a cheat)."""
    out = np.zeros(n, dtype=np.bool_)
    pos, on = 0, bool(rng.random() < mean_on / (mean_on + mean_off))
    while pos < n:
        length = int(rng.geometric(1 / (mean_on if on else mean_off)))
        out[pos : pos + length] = on
        pos, on = pos + length, not on
    return out


def _group_cumsum(values: F64, group: I64) -> F64:
    """Running sum of ``values`` restarting at each new ``group`` (groups are contiguous)."""
    cs = np.cumsum(values)
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    before = np.repeat(cs[starts] - values[starts], np.diff(np.r_[starts, len(values)]))
    result: F64 = cs - before
    return result


def _sale_times(rng: np.random.Generator, sp: StallPlan, opens: I64, closes: I64) -> tuple[I64, I64]:
    """(ts, day) of the stall's sales: a morning peak, a quieter afternoon, the evening; ≥ 20 s apart."""
    ts_parts, day_parts = [], []
    for day, (t0, t1) in enumerate(zip(opens.tolist(), closes.tolist(), strict=True)):
        n = int(rng.poisson(sp.sales_per_day))
        noon, evening = PERIOD_START_MS + day * DAY_MS + 11 * HOUR_MS, PERIOD_START_MS + day * DAY_MS + 17 * HOUR_MS
        part = rng.choice(3, n, p=[0.55, 0.3, 0.15])
        lo = np.array([t0 + 300_000, noon, evening])[part]
        hi = np.array([noon, evening, t1 - 300_000])[part]
        t = np.sort(rng.uniform(lo, hi)).astype(np.int64)
        gap = 20_000 * np.arange(n, dtype=np.int64)
        ts_parts.append(np.maximum.accumulate(t - gap) + gap)
        day_parts.append(np.full(n, day, dtype=np.int64))
    return np.concatenate(ts_parts), np.concatenate(day_parts)


def stall_week(sp: StallPlan, mp: MarketPlan, cond: Condition, rng: np.random.Generator) -> StallWeek:  # noqa: PLR0915
    cap, d = sp.cap, sp.cap.d_mg
    days = np.arange(cond.days, dtype=np.int64)
    opens = PERIOD_START_MS + days * DAY_MS + (rng.uniform(5.5, 6.5, cond.days) * HOUR_MS).astype(np.int64)
    closes = PERIOD_START_MS + days * DAY_MS + (rng.uniform(18.5, 19.5, cond.days) * HOUR_MS).astype(np.int64)
    ts, day = _sale_times(rng, sp, opens, closes)

    # power-ons: each morning, mid-day power cycles, and the re-verification (the scale comes back from it)
    cycles = [
        int(t)
        for t0, t1 in zip(opens.tolist(), closes.tolist(), strict=True)
        for t in rng.uniform(t0 + HOUR_MS, t1 - HOUR_MS, rng.poisson(cond.power_cycles_per_day))
    ]
    reverified = len(sp.verifications) > 1
    t_v = sp.verifications[-1].verified_ms if reverified else 2**62
    if reverified:  # the scale is away for its verification
        keep = (ts < t_v - 2_700_000) | (ts >= t_v)
        ts, day = ts[keep], day[keep]
        cycles.append(t_v)
    starts = np.unique(np.r_[opens, np.array(cycles, dtype=np.int64)])
    session = np.searchsorted(starts, ts, side="right") - 1
    n = len(ts)

    # the verification in force, and the physics under it
    v = (ts >= t_v).astype(np.intp)
    reg = np.array([x.coefficient for x in sp.verifications])[v]
    true = np.array([x.true_coefficient for x in sp.verifications])[v]
    vzero = np.array([x.zero_counts for x in sp.verifications], dtype=np.float64)[v]
    cal = np.array([x.calibration_events for x in sp.verifications], dtype=np.int64)[v]
    conf = np.array([x.configuration_events for x in sp.verifications], dtype=np.int64)[v]
    software = np.array([x.software_id for x in sp.verifications], dtype=object)[v]
    e_counts = true * cap.e_mg / 1_000_000

    # zero: where the empty pan reads at each power-on, then a slow drift that zero tracking follows
    session_base = rng.normal(0, 0.5, len(starts))
    steps = np.clip(rng.normal(0, 0.03, n), -0.1, 0.1)
    true_empty = vzero + (sp.zero_offset_e + session_base[session] + _group_cumsum(steps, session)) * e_counts
    zero_honest = np.rint(true_empty + rng.normal(0, 1, n))
    empty_counts = np.rint(true_empty + rng.normal(0, ADC_NOISE_COUNTS, n)).astype(np.int64)

    # what the stall sells, and in what
    commodity = rng.choice(sp.plus, n, p=sp.plu_weights)
    small = rng.random(n) < sp.small_rate
    small_plus = sp.plus[_SMALL[sp.plus]]
    if len(small_plus):
        commodity = np.where(small, rng.choice(small_plus, n), commodity)
    mass_g = np.where(
        small,
        cap.e_mg / 1000 * np.exp(rng.uniform(np.log(2), np.log(20), n)),
        rng.lognormal(np.log(_MASS_G[commodity]), _SPREAD[commodity]),
    )
    goods = np.clip(mass_g, 2 * cap.e_mg / 1000, 0.7 * cap.max_g) * 1000
    container = rng.random(n) < cond.p_container
    bag = container & ((rng.random(n) < cond.p_bag) | small)
    tray = container & ~bag
    bag_g = rng.uniform(*BAG_G, n)
    tray_i = rng.integers(0, len(sp.trays_real_g), n)
    cont = np.where(bag, bag_g, np.where(tray, sp.trays_real_g[tray_i], 0.0)) * 1000
    preset_value = np.maximum(d, quantise(np.where(bag, BAG_PRESET_G, sp.trays_nominal_g[tray_i]) * 1000, d))
    wants_preset = container & (rng.random(n) < cond.p_preset)

    # the cheats' activity, customer by customer
    c, method = sp.cheat, sp.method
    chip = np.ones(n)
    signal = np.ones(n)
    internal = reg.copy()
    zero_shown = zero_honest.copy()
    thrown = np.zeros(n, dtype=np.bool_)
    extra = np.zeros(n, dtype=np.int64)
    factor = 1
    zero_key_toggles = np.zeros(n, dtype=np.int64)
    t_c = opens[int(c["from_day"])] if method == "recalibration" else 2**62  # re-calibrated before this power-on
    recal_on = ts >= t_c
    if method == "cheat_chip":
        on = np.ones(n, dtype=np.bool_)
        if c["keyed"]:
            on = _runs(rng, n, 25, 8)
            first = np.r_[True, session[1:] != session[:-1]]
            since_power_on = np.arange(n) - np.maximum.accumulate(np.where(first, np.arange(n), 0))
            on &= since_power_on >= rng.geometric(1 / 5, n)  # off after a power-on until keyed again
        chip = np.where(on, c["ratio"], 1.0)
    elif method == "remote_control":
        signal = np.where(rng.random(n) < c["p_active"], c["ratio"], 1.0)
    elif method == "recalibration":
        internal = np.where(recal_on, reg / c["ratio"], reg)
    elif method == "throw":
        thrown = rng.random(n) < c["share"]
    elif method == "price_math":
        extra = np.where(rng.random(n) < c["share"], rng.integers(1, int(c["max_extra_fen"]) + 1, n), 0)
    elif method == "price_scaling":
        factor = int(c["factor"])
    elif method == "zero_trick":
        zero_shown = zero_honest - c["tray_g"] * true / 1000
    elif method == "preset_base":
        on = _runs(rng, n, 3, 2)
        zero_shown = np.where(on, zero_honest - c["offset_g"] * true / 1000, zero_honest)
        if c["zero_key"]:
            zero_key_toggles = np.cumsum(on != np.r_[False, on[:-1]])
    cal = cal + recal_on
    overshoot = np.where(thrown, 1 + rng.uniform(0, 0.3, n), 1.0)

    # the readings: a weighed tare (the container alone on the pan), then the gross at commit
    noise_t = rng.normal(0, ADC_NOISE_COUNTS, n)
    noise_g = rng.normal(0, ADC_NOISE_COUNTS, n)
    zero_shown = np.rint(zero_shown).astype(np.int64)
    zero_h = zero_honest.astype(np.int64)
    raw_t = counts(true_empty, true * signal, cont, noise_t)
    tare_w = quantise(indication_mg(raw_t, zero_shown, internal) * chip, d)
    tare_w_h = quantise(indication_mg(counts(true_empty, true, cont, noise_t), zero_h, reg), d)
    raw = counts(true_empty, true * signal * overshoot, goods + cont, noise_g)
    gross = quantise(indication_mg(raw, zero_shown, internal) * chip, d)
    gross_h = quantise(indication_mg(counts(true_empty, true, goods + cont, noise_g), zero_h, reg), d)
    preset = wants_preset & (gross_h - preset_value >= 2 * d)  # a vendor keys a tare only when the net stays positive
    weighed = container & ~preset
    tare_kind = np.where(preset, TARE_PRESET, np.where(weighed, TARE_WEIGHED, TARE_NONE))
    tare = np.where(preset, preset_value, np.where(weighed, tare_w, 0))
    net = (gross - tare) * factor
    net_h = gross_h - np.where(preset, preset_value, np.where(weighed, tare_w_h, 0))

    # stability, prices and the amount
    stable = ~(thrown & (rng.random(n) < 0.4))
    stable_ms = np.where(
        thrown,
        np.where(stable, rng.integers(0, 400, n), rng.integers(0, 300, n)),
        400 + np.minimum(np.rint(rng.exponential(600, n)), 3_600).astype(np.int64),
    )
    price = np.zeros(n, dtype=np.int64)
    phase = np.zeros(n, dtype=np.int64)
    base_prices = vendor_base_prices(rng, mp.levels[sp.market])
    for dd in range(cond.days):
        today = day == dd
        pd = price_day(
            rng,
            base_prices,
            p_afternoon=cond.p_afternoon,
            discount=cond.discount,
            p_clearance=cond.p_clearance,
            clearance=cond.clearance,
        )
        price[today], phase[today] = prices(pd, commodity[today], ts[today] - PERIOD_START_MS - dd * DAY_MS)
    keyed_price = np.maximum(1, -(-price // factor))  # the vendor rounds the scaled price up
    amount = amount_fen(net, keyed_price) + extra

    # a row carries the cheat when it made the customer pay more: a weight cheat only when the weight shown is
    # above what the honest scale would have shown (a chip's ×1.1 on a 3 d load may round away, or round the
    # tare up and the net down)
    if method == "throw":
        cheated = thrown
    elif method == "price_math":
        cheated = extra > 0
    elif method == "price_scaling":
        cheated = np.ones(n, dtype=np.bool_)
    else:
        cheated = net > net_h
    sale: Columns = {
        "ts": ts,
        "commodity": commodity,
        "net_mg": net,
        "tare_mg": tare * factor,
        "tare_kind": tare_kind,
        "tare_gross_mg": tare_w * factor,
        "unit_price_fen_per_kg": keyed_price,
        "amount_fen": amount,
        "stable": stable,
        "stable_ms": stable_ms,
        "raw_counts": raw,
        "zero_counts": zero_shown,
        "empty_counts": empty_counts,
        "zero_set_events": sp.zero_set_start + session + 1 + zero_key_toggles,
        "calibration_events": cal,
        "configuration_events": conf,
        "software_id": software,
        "cheated": cheated,
        "phase": phase,
        "true_net_mg": np.rint(goods).astype(np.int64),
        "honest_net_mg": net_h,
    }
    reweigh = _reweighs(rng, sp, mp, sale, bag, bag_g)
    state = _states(sp, starts, t_v, t_c, ts, zero_key_toggles)
    check = _checks(rng, sp, mp, cond, sale, true_empty, zero_h, reg, internal, chip, true, opens)
    return StallWeek(sale, reweigh, check, state)


def _reweighs(rng: np.random.Generator, sp: StallPlan, mp: MarketPlan, sale: Columns, bag: B, bag_g: F64) -> Columns:
    """Customers take their goods to the market's fair scale, which tares their bag (weighed) and weighs."""
    fair: FairPlan = mp.fair[sp.market]
    goods = sale["true_net_mg"].astype(np.float64)
    n = len(goods)
    rows = np.flatnonzero((rng.random(n) < mp.reweigh_rates[sp.market]) & (goods + 10_000 <= fair.cap.max_mg))
    own_bag = np.where(bag[rows], bag_g[rows], rng.uniform(*BAG_G, len(rows))) * 1000
    span, df = fair.verification.span, fair.cap.d_mg
    zero_error = rng.normal(0, 0.05, len(rows)) * fair.cap.e_mg
    gross = quantise((goods[rows] + own_bag) * (1 + span) + zero_error, df)
    tare = quantise(own_bag * (1 + span) + zero_error, df)
    return {
        "ts": np.asarray(sale["ts"][rows], dtype=np.int64) + rng.integers(120_000, 1_800_000, len(rows)),
        "commodity": sale["commodity"][rows],
        "net_mg": sale["net_mg"][rows],
        "tare_mg": sale["tare_mg"][rows],
        "tare_kind": sale["tare_kind"][rows],
        "reference_mg": gross - tare,
        # a re-weigh carries the cheat when the receipt's weight was raised by it (never for price_math)
        "cheated": np.asarray(sale["net_mg"][rows], dtype=np.int64)
        > np.asarray(sale["honest_net_mg"][rows], dtype=np.int64),
        "phase": sale["phase"][rows],
        "true_net_mg": sale["true_net_mg"][rows],
    }


def _states(sp: StallPlan, starts: I64, t_v: int, t_c: int, ts: I64, toggles: I64) -> Columns:
    """What the scale reports at each power-on: e, d, software id and its counters."""
    v = (starts >= t_v).astype(np.intp)
    recal = (starts >= t_c).astype(np.int64)
    before = np.searchsorted(ts, starts, side="left")
    toggles_so_far = np.where(before > 0, toggles[np.maximum(before - 1, 0)], 0)
    return {
        "ts": starts,
        "e_mg": np.full(len(starts), sp.cap.e_mg),
        "d_mg": np.full(len(starts), sp.cap.d_mg),
        "software_id": np.array([x.software_id for x in sp.verifications], dtype=object)[v],
        "calibration_events": np.array([x.calibration_events for x in sp.verifications], dtype=np.int64)[v] + recal,
        "configuration_events": np.array([x.configuration_events for x in sp.verifications], dtype=np.int64)[v],
        "zero_set_events": sp.zero_set_start + np.arange(len(starts)) + 1 + toggles_so_far,
    }


def _checks(
    rng: np.random.Generator,
    sp: StallPlan,
    mp: MarketPlan,
    cond: Condition,
    sale: Columns,
    true_empty: F64,
    zero_h: I64,
    reg: F64,
    internal: F64,
    chip: F64,
    true: F64,
    opens: I64,
) -> Columns:
    """An inspector's check weighings with known test weights, on the market's inspection day.

    The vendor knows the inspector: a keyed chip is off (it passes test weights while off); the remote, the
    preset base and the price scaling are switched off; a chip that is always on, a re-calibration and a zero
    trick stay.
    """
    ts = sale["ts"]
    if rng.random() >= cond.check_share or len(ts) == 0:
        return {}
    weights = np.array([w for w in TEST_WEIGHTS_G if w * 1000 <= 0.7 * sp.cap.max_mg])
    mass = rng.choice(weights, size=min(2, len(weights)), replace=False).astype(np.float64) * 1000
    at = opens[mp.inspection_day[sp.market]] + int(rng.uniform(3, 5) * HOUR_MS) + 60_000 * np.arange(len(mass))
    j = np.clip(np.searchsorted(ts, at) - 1, 0, len(ts) - 1)
    keyed = sp.method == "cheat_chip" and bool(sp.cheat["keyed"])
    chip_c = np.ones(len(j)) if keyed else chip[j]
    zero_c = sale["zero_counts"][j] if sp.method == "zero_trick" else zero_h[j]
    noise = rng.normal(0, ADC_NOISE_COUNTS, len(j))
    raw = counts(true_empty[j], true[j], mass, noise)
    shown = quantise(indication_mg(raw, zero_c, internal[j]) * chip_c, sp.cap.d_mg)
    honest = quantise(indication_mg(raw, zero_h[j], reg[j]), sp.cap.d_mg)
    return {
        "ts": at,
        "net_mg": shown,
        "reference_mg": mass.astype(np.int64),
        "stable_ms": 400 + rng.integers(200, 2_000, len(j)),
        "raw_counts": raw,
        "zero_counts": zero_c,
        "empty_counts": sale["empty_counts"][j],
        "zero_set_events": sale["zero_set_events"][j],
        "calibration_events": sale["calibration_events"][j],
        "configuration_events": sale["configuration_events"][j],
        "software_id": sale["software_id"][j],
        "cheated": shown > honest,
    }


def fair_states(fair: FairPlan, cond: Condition, rng: np.random.Generator) -> Columns:
    """The fair scale reports its state at each morning's power-on."""
    days = np.arange(cond.days, dtype=np.int64)
    starts = PERIOD_START_MS + days * DAY_MS + (rng.uniform(5.5, 6.5, cond.days) * HOUR_MS).astype(np.int64)
    v = fair.verification
    n = len(starts)
    return {
        "ts": starts,
        "e_mg": np.full(n, fair.cap.e_mg),
        "d_mg": np.full(n, fair.cap.d_mg),
        "software_id": np.full(n, v.software_id, dtype=object),
        "calibration_events": np.full(n, v.calibration_events),
        "configuration_events": np.full(n, v.configuration_events),
        "zero_set_events": 1_000 + days + 1,
    }
