"""The rules: what each flags, how sure it is, the fact it rests on, the input columns it needs, and its
reason in Chinese and English.

Per-row rules look at one row; ``reweigh_cusum``, ``coefficient_cusum``, ``last_digit`` and ``zero_jump``
look at a scale's history since its verification in force (:mod:`anti_cheat.state`); ``price_scaling``
compares with prices learned from the market (:mod:`anti_cheat.prices`). All are computed over whole
batches as numpy operations in :mod:`anti_cheat.engine`. ``{v}`` is the evidence value, ``{l}`` the limit.
A rule runs only on rows that have every column in ``needs`` (and, where it says ``facts``, a scale with a
verification on record); ``Engine.judged`` counts the rows each rule looked at.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    severity: str  # high: the customer is being cheated or a seal is broken; medium: suspicious; low: paperwork
    fact: str  # the legal or physical basis, with its source in docs/metrology.md
    needs: tuple[str, ...]  # input columns; "facts": the scale's verification
    en: str
    zh: str


_COUNTS = ("net_mg", "tare_mg", "raw_counts", "zero_counts", "facts")
RULES: tuple[Rule, ...] = (
    Rule(
        "price_math",
        "high",
        "Price computation [law]: amount = round-half-up(net × unit price) to 0.01 yuan",
        ("net_mg", "unit_price_fen_per_kg", "amount_fen"),
        "amount differs from weight × unit price by {v:+.0f} fen",
        "金额与重量×单价相差 {v:+.0f} 分",
    ),
    Rule(
        "coefficient",
        "high",
        "Counts measure the gross load [law/physics]: (raw − zero) / coefficient vs net + tare, within the"
        " in-service MPE at the gross load + d/2; a cheat chip alters the indication, not the counts",
        _COUNTS,
        "indicated gross differs from the load-cell counts by {v:+.0f} mg (limit ±{l:.0f} mg)",
        "显示毛重与传感器计数相差 {v:+.0f} 毫克（限 ±{l:.0f} 毫克）",
    ),
    Rule(
        "counters",
        "high",
        "Event counters [law/report]: a change without a recorded verification = broken seal",
        ("calibration_events", "configuration_events", "facts"),
        "{v:.0f} calibration/configuration events since the verification in force",
        "检定后标定/配置计数器变化 {v:.0f} 次",
    ),
    Rule(
        "stability",
        "medium",
        "Stability [law]: register only when stable within ±1 d for at least 0.4 s",
        ("stable", "stable_ms"),
        "weight registered after {v:.0f} ms of stability (needs {l:.0f} ms)",
        "重量稳定 {v:.0f} 毫秒即被记录（应不少于 {l:.0f} 毫秒）",
    ),
    Rule(
        "zero_offset",
        "high",
        "Zero [law]: zero-setting and tracking act over at most 4 % of Max from the verified zero",
        ("zero_counts", "facts"),
        "zero lies {v:.0f} mg from the verified zero (limit {l:.0f} mg)",
        "零点偏离检定零点 {v:.0f} 毫克（限 {l:.0f} 毫克）",
    ),
    Rule(
        "zero_empty",
        "high",
        "Zero is held within ±0.25 e [law]: an empty pan must read zero; a zero reference off the empty pan"
        " (preset base 预留底数) adds that mass to every sale",
        ("empty_counts", "zero_counts", "facts"),
        "the empty pan reads {v:+.0f} mg above the zero (limit {l:.0f} mg)",
        "空秤读数高于零点 {v:+.0f} 毫克（限 {l:.0f} 毫克）",
    ),
    Rule(
        "zero_jump",
        "high",
        "Zero tracking is slow and acts only near zero [law/unsure]: the zero reference jumping between two"
        " sales without a zero-setting operation is the preset-base trick",
        ("zero_counts", "zero_set_events", "facts"),
        "the zero moved {v:+.0f} mg since the previous sale without a zero setting (limit ±{l:.0f} mg)",
        "两笔交易之间零点未经置零移动 {v:+.0f} 毫克（限 ±{l:.0f} 毫克）",
    ),
    Rule(
        "tare_at_zero_gross",
        "medium",
        "Tare tricks [report]: a weighed tare taken with an empty pan; zero is held within ±0.25 e [law]."
        " A keyed preset tare (PT) is a legal function and is not judged by this rule",
        ("tare_mg", "tare_kind", "tare_gross_mg", "facts"),
        "a {v:.0f} mg tare was weighed with an empty pan",
        "空秤盘时置入 {v:.0f} 毫克皮重",
    ),
    Rule(
        "tare_implausible",
        "medium",
        "Tare tricks [report]; limit [unsure]: tare above 20 % of Max",
        ("tare_mg", "facts"),
        "tare of {v:.0f} mg is implausible (limit {l:.0f} mg)",
        "皮重 {v:.0f} 毫克不合理（限 {l:.0f} 毫克）",
    ),
    Rule(
        "over_max",
        "high",
        "Max [law]: no gross above Max + 9 e can be indicated; a larger one was rescaled",
        ("net_mg", "facts"),
        "gross weight {v:.0f} mg exceeds Max + 9 e = {l:.0f} mg",
        "毛重 {v:.0f} 毫克超过最大秤量+9e（{l:.0f} 毫克）",
    ),
    Rule(
        "price_scaling",
        "high",
        "Unit-price scaling [report]: price keyed ×0.1 / ×0.01 of the market's own price that day, with the"
        " weight shown scaled up by the same decade (checked against the counts when reported)",
        ("unit_price_fen_per_kg", "plu", "net_mg", "raw_counts", "zero_counts", "facts"),
        "unit price is {v:.3f} × the market's price for this commodity",
        "单价为本市场该商品价格的 {v:.3f} 倍",
    ),
    Rule(
        "verification_overdue",
        "low",
        "Verification [report]: compulsory, about yearly",
        ("facts",),
        "verification overdue by {v:.0f} days",
        "检定已过期 {v:.0f} 天",
    ),
    Rule(
        "unverified_in_use",
        "medium",
        "Compulsory verification [law] (强制检定): a trade scale may be used only with a valid verification;"
        " none on record, the latest failed, or its due date passed. Once per scale and market day",
        ("registry verification status or facts",),
        "selling without a valid verification ({v:.0f} days)",
        "无有效检定仍在使用（{v:.0f} 天）",
    ),
    Rule(
        "reweigh_error",
        "high",
        "Fair scale 公平秤 [report]: receipt − fair reading beyond the stall's in-service MPE at its gross load"
        " + the fair scale's own MPE [law] + both rounding intervals",
        ("net_mg", "reference_mg", "facts"),
        "the fair scale found {v:+.0f} mg less than the receipt (limit {l:.0f} mg)",
        "公平秤复秤比小票少 {v:+.0f} 毫克（限 {l:.0f} 毫克）",
    ),
    Rule(
        "check_error",
        "high",
        "Check weighing E = I − m vs the in-service MPE [law], after rounding",
        ("net_mg", "reference_mg", "facts"),
        "check weighing error {v:+.0f} mg (limit ±{l:.0f} mg)",
        "砝码核查误差 {v:+.0f} 毫克（限 ±{l:.0f} 毫克）",
    ),
    Rule(
        "reweigh_cusum",
        "high",
        "Per-stall CUSUM over re-weigh errors in units of each re-weigh's tolerance, slack one tolerance: ours",
        ("net_mg", "reference_mg", "facts"),
        "re-weighs show a persistent short weight (CUSUM {v:.1f} tolerances, alarm {l:.1f})",
        "复秤持续短秤（累积和 {v:.1f} 倍允差，报警线 {l:.1f}）",
    ),
    Rule(
        "coefficient_cusum",
        "medium",
        "Per-scale CUSUM over indication − counts in units of the tolerance at the gross, slack one tolerance: ours",
        _COUNTS,
        "the indication keeps leaving the load-cell counts (CUSUM {v:.1f} tolerances, alarm {l:.1f})",
        "显示值持续偏离传感器计数（累积和 {v:.1f} 倍允差，报警线 {l:.1f}）",
    ),
    Rule(
        "last_digit",
        "medium",
        "Honest readings have uniform last digits in d (χ² over a window of sales ≥ 100 d, digits 0 and 5 left"
        " out): ours. Off by default (Thresholds.digit_test): portions near round weights cluster honestly",
        ("net_mg", "facts"),
        "last digits are not uniform (χ² = {v:.1f}, limit {l:.1f})",
        "末位数字分布异常（χ² = {v:.1f}，限 {l:.1f}）",
    ),
    Rule(
        "e_not_d",
        "high",
        "e must equal d on price-computing scales [report]; e ≠ d suggests a re-flashed chip",
        ("e_mg", "d_mg"),
        "e and d differ ({v:.0f} mg vs {l:.0f} mg)",
        "检定分度值 e 与实际分度值 d 不同（{v:.0f} / {l:.0f} 毫克）",
    ),
    Rule(
        "software_id",
        "high",
        "Software id must match the type approval of the verification in force [report] (一秤一码)",
        ("software_id", "facts"),
        "software id is not the approved one",
        "软件标识与型式批准不符",
    ),
)
RULE_INDEX = {r.id: i for i, r in enumerate(RULES)}
