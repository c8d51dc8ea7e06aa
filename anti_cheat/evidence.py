"""Evidence in a supervisor's terms: what a finding means in grams, as a share of the weight it concerns,
against what it was judged, and how many sales stand behind it, with reasons that say so in English and
Chinese ("re-weighed on the fair scale: 482 g against 500 g on the receipt, 18 g (3.6 %) short").

The rules (:mod:`anti_cheat.rules`) keep their evidence in their own units (mg, fen, days, tolerances);
:func:`describe` turns one finding into an :class:`Evidence` for people and for storage. It runs once per
flag, never per transaction (flags are few). Every number is a plain ``float`` or ``int`` (None where the
rule is not about a mass), so the ingest stores each field with one type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .columns import NO_VALUE

#: the causes ``unverified_in_use`` names in its limit column (value: days without a valid verification)
NEVER_VERIFIED, VERIFICATION_FAILED, VERIFICATION_LAPSED = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Evidence:
    """A finding in human terms (grams and %; None where the rule is not about a mass)."""

    evidence_g: float | None  # the mass at issue (short weight, error, offset), grams
    evidence_pct: float | None  # ... as a share of the weight it concerns, %
    receipt_g: float | None  # the net on the receipt (the scale's indication)
    reference_g: float | None  # what it was judged against: the fair scale, the test weight, the counts
    limit_g: float | None  # the tolerance (MPE and rounding) in grams
    sales: int  # sales (or re-weighs) behind the finding: 1 for a single-sale rule
    en: str
    zh: str


#: rules about a mass judged against Max: (English, Chinese) with {g} the mass, {lim} the limit, {of} its share
_OF_MAX = {
    "zero_offset": (
        "the zero lies {g} g from the verified zero{of}, limit {lim} g",
        "零点偏离检定零点 {g} 克{of}，限 {lim} 克",
    ),
    "tare_implausible": ("a tare of {g} g is implausible{of}, limit {lim} g", "皮重 {g} 克不合理{of}，限 {lim} 克"),
    "over_max": ("gross weight {g} g{of} exceeds Max + 9 e = {lim} g", "毛重 {g} 克{of}超过最大秤量+9e（{lim} 克）"),
    "tare_at_zero_gross": ("a {g} g tare was weighed with an empty pan{of}", "空秤盘时置入 {g} 克皮重{of}"),
}


def _g(mg: float) -> float:
    return round(mg / 1000, 3)


def _pct(part: float, whole: float) -> float | None:
    return round(part / whole * 100, 2) if whole else None


def _num(x: float | None) -> str:
    """A gram or percent figure as people write it: 482, 2.5, 0.125."""
    return "?" if x is None else f"{x:.3f}".rstrip("0").rstrip(".")


def describe(
    rule: str,
    value: float,
    limit: float,
    *,
    net_mg: int,
    reference_mg: int,
    tare_mg: int,
    max_mg: int,
    sales: int,
    en: str,
    zh: str,
) -> Evidence:
    """Evidence for one finding of ``rule`` (``value``, ``limit`` in the rule's units; the row's net,
    reference and tare in mg, :data:`anti_cheat.columns.NO_VALUE` where absent; the scale's Max in mg, 0
    if unknown; ``en``/``zh``: the rule's own reason, kept where nothing better can be said)."""
    net = None if net_mg == NO_VALUE else net_mg
    ref = None if reference_mg == NO_VALUE or reference_mg <= 0 else reference_mg
    tare = 0 if tare_mg == NO_VALUE else tare_mg
    if rule in ("reweigh_error", "reweigh_cusum") and net is not None and ref is not None:
        short = net - ref
        pct = _pct(short, ref)
        tail_en = (
            f"{_num(_g(ref))} g against {_num(_g(net))} g on the receipt, {_num(_g(short))} g ({_num(pct)} %) short"
        )
        tail_zh = f"复秤 {_num(_g(ref))} 克，小票 {_num(_g(net))} 克，短少 {_num(_g(short))} 克（{_num(pct)} %）"
        if rule == "reweigh_error":
            text_en = f"re-weighed on the fair scale: {tail_en} (tolerance {_num(_g(limit))} g)"
            text_zh = f"公平秤{tail_zh}，允差 {_num(_g(limit))} 克"
            return Evidence(_g(short), pct, _g(net), _g(ref), _g(limit), 1, text_en, text_zh)
        text_en = (
            f"{sales} re-weighs in a row on the fair scale show a persistent short weight (CUSUM {value:.1f}"
            f" tolerances, alarm {limit:.1f}); this one {tail_en}"
        )
        text_zh = f"公平秤连续 {sales} 次复秤持续短秤（累积和 {value:.1f} 倍允差，报警线 {limit:.1f}）；本次{tail_zh}"
        return Evidence(_g(short), pct, _g(net), _g(ref), None, sales, text_en, text_zh)
    if rule == "check_error" and net is not None and ref is not None:
        pct = _pct(value, ref)
        return Evidence(
            _g(value),
            pct,
            _g(net),
            _g(ref),
            _g(limit),
            1,
            f"check weighing with a {_num(_g(ref))} g test weight read {_num(_g(net))} g: {_g(value):+g} g"
            f" ({_num(pct)} %, MPE {_num(_g(limit))} g)",
            f"用 {_num(_g(ref))} 克砝码核查，显示 {_num(_g(net))} 克，误差 {_g(value):+g} 克（{_num(pct)} %，"
            f"允差 {_num(_g(limit))} 克）",
        )
    if rule == "coefficient" and net is not None:
        measured = net + tare - value  # the gross the load-cell counts measure
        pct = _pct(value, measured)
        return Evidence(
            _g(value),
            pct,
            _g(net),
            _g(measured - tare),
            _g(limit),
            1,
            f"the scale showed {_num(_g(net + tare))} g where its load cell measured {_num(_g(measured))} g:"
            f" {_g(value):+g} g ({_num(pct)} %, tolerance {_num(_g(limit))} g)",
            f"显示毛重 {_num(_g(net + tare))} 克，传感器测得 {_num(_g(measured))} 克，相差 {_g(value):+g} 克"
            f"（{_num(pct)} %，允差 {_num(_g(limit))} 克）",
        )
    if rule in ("zero_empty", "zero_jump") and net is not None:
        pct = _pct(value, net)
        what_en = "the empty pan reads" if rule == "zero_empty" else "the zero moved without a zero setting by"
        what_zh = "空秤读数为" if rule == "zero_empty" else "零点未经置零移动"
        return Evidence(
            _g(value),
            pct,
            _g(net),
            None,
            _g(limit),
            1,
            f"{what_en} {_g(value):+g} g: {_num(pct)} % of this {_num(_g(net))} g sale (limit {_num(_g(limit))} g)",
            f"{what_zh} {_g(value):+g} 克，占本笔 {_num(_g(net))} 克的 {_num(pct)} %（限 {_num(_g(limit))} 克）",
        )
    if rule in _OF_MAX:
        pct = _pct(value, max_mg)
        en_fmt, zh_fmt = _OF_MAX[rule]
        of_en = "" if pct is None else f" ({_num(pct)} % of Max)"
        of_zh = "" if pct is None else f"（最大秤量的 {_num(pct)} %）"
        text_en = en_fmt.format(g=_num(_g(value)), lim=_num(_g(limit)), of=of_en)
        text_zh = zh_fmt.format(g=_num(_g(value)), lim=_num(_g(limit)), of=of_zh)
        return Evidence(
            _g(value), pct, None if net is None else _g(net), None, _g(limit) if limit else None, 1, text_en, text_zh
        )
    if rule == "price_math":
        yuan = value / 100
        text_en = f"the amount charged differs from weight × unit price by {yuan:+.2f} yuan"
        text_zh = f"金额与重量×单价相差 {yuan:+.2f} 元"
        return Evidence(None, None, None if net is None else _g(net), None, None, 1, text_en, text_zh)
    if rule == "unverified_in_use":
        days = None if math.isnan(value) else f"{value:.0f}"
        cause = int(limit)
        if cause == NEVER_VERIFIED:
            text_en, text_zh = "selling with no verification on record", "无检定记录即在使用"
        elif cause == VERIFICATION_FAILED:
            text_en = f"selling {days} days after failing its verification"
            text_zh = f"检定不合格后仍在使用 {days} 天"
        else:
            text_en = f"selling {days} days after its verification was due"
            text_zh = f"检定到期 {days} 天后仍在使用"
        return Evidence(None, None, None if net is None else _g(net), None, None, sales, text_en, text_zh)
    return Evidence(None, None, None if net is None else _g(net), None, None, sales, en, zh)
