"""The rules: what each flags, how sure it is, the fact it rests on, and its reason in Chinese and English.

Stateless rules look at one row; stateful ones (``reweigh_cusum``, ``coefficient_cusum``, ``last_digit``)
look at a scale's history and live in :mod:`anti_cheat.state`. All are computed over whole batches as
numpy operations in :mod:`anti_cheat.engine`. ``{v}`` is the evidence value, ``{l}`` the limit.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    severity: str  # high: the customer is being cheated or a seal is broken; medium: suspicious; low: paperwork
    fact: str  # where in METROLOGY.md the rule comes from
    en: str
    zh: str


RULES: tuple[Rule, ...] = (
    Rule(
        "price_math",
        "high",
        "Price computation [law]: amount = round-half-up(weight × unit price) to 0.01 yuan",
        "amount differs from weight × unit price by {v:+.0f} fen",
        "金额与重量×单价相差 {v:+.0f} 分",
    ),
    Rule(
        "coefficient",
        "high",
        "Cheat chip signature; patent WO2020206853A1: (raw − zero) / weight vs calibration",
        "displayed weight differs from the load-cell counts by {v:+.0f} mg (limit ±{l:.0f} mg)",
        "显示重量与传感器计数相差 {v:+.0f} 毫克（限 ±{l:.0f} 毫克）",
    ),
    Rule(
        "counters",
        "high",
        "Event counters [law/report]: a change without a recorded verification = broken seal",
        "{v:.0f} calibration/configuration events since the last verification",
        "检定后标定/配置计数器变化 {v:.0f} 次",
    ),
    Rule(
        "stability",
        "medium",
        "Stability [law]: register only when stable within ±1 d for at least 0.4 s",
        "weight registered after {v:.0f} ms of stability (needs {l:.0f} ms)",
        "重量稳定 {v:.0f} 毫秒即被记录（应不少于 {l:.0f} 毫秒）",
    ),
    Rule(
        "zero_offset",
        "high",
        "Zero [law]: zero-setting and tracking act over at most 4 % of Max",
        "zero lies {v:.0f} mg from the verified zero (limit {l:.0f} mg)",
        "零点偏离检定零点 {v:.0f} 毫克（限 {l:.0f} 毫克）",
    ),
    Rule(
        "tare_at_zero_gross",
        "medium",
        "Tare tricks [report]: tare entered at zero gross; zero is held within ±0.25 e [law]",
        "a {v:.0f} mg tare was taken with an empty pan",
        "空秤盘时置入 {v:.0f} 毫克皮重",
    ),
    Rule(
        "tare_implausible",
        "medium",
        "Tare tricks [report]; limit [unsure]: tare above 20 % of Max",
        "tare of {v:.0f} mg is implausible (limit {l:.0f} mg)",
        "皮重 {v:.0f} 毫克不合理（限 {l:.0f} 毫克）",
    ),
    Rule(
        "over_max",
        "high",
        "Max [law]: no weight above Max + 9 e can be indicated; a larger one was rescaled",
        "net weight {v:.0f} mg exceeds Max + 9 e = {l:.0f} mg",
        "净重 {v:.0f} 毫克超过最大秤量+9e（{l:.0f} 毫克）",
    ),
    Rule(
        "price_scaling",
        "high",
        "Unit-price scaling [report]: price keyed ×0.1 / ×0.01 of the market median",
        "unit price is {v:.3f} × the market median for this commodity",
        "单价为市场中位价的 {v:.3f} 倍",
    ),
    Rule(
        "verification_overdue",
        "low",
        "Verification [report]: compulsory, about yearly",
        "verification overdue by {v:.0f} days",
        "检定已过期 {v:.0f} 天",
    ),
    Rule(
        "reweigh_error",
        "high",
        "Fair scale 公平秤 [report] vs in-service MPE [law] of both scales",
        "the fair scale found {v:+.0f} mg less than the receipt (limit {l:.0f} mg)",
        "公平秤复秤比小票少 {v:+.0f} 毫克（限 {l:.0f} 毫克）",
    ),
    Rule(
        "check_error",
        "high",
        "Check weighing E = I − m vs in-service MPE [law], after rounding",
        "check weighing error {v:+.0f} mg (limit ±{l:.0f} mg)",
        "砝码核查误差 {v:+.0f} 毫克（限 ±{l:.0f} 毫克）",
    ),
    Rule(
        "reweigh_cusum",
        "high",
        "Per-stall change detection (CUSUM) over re-weigh errors: ours, measured",
        "re-weighs show a persistent short weight (CUSUM {v:.0f} ppm, alarm {l:.0f})",
        "复秤持续短秤（累积和 {v:.0f} ppm，报警线 {l:.0f}）",
    ),
    Rule(
        "coefficient_cusum",
        "medium",
        "Per-scale change detection (CUSUM) over the coefficient ratio: ours",
        "the load-cell coefficient drifted (CUSUM {v:.0f} ppm, alarm {l:.0f})",
        "传感器系数持续偏移（累积和 {v:.0f} ppm，报警线 {l:.0f}）",
    ),
    Rule(
        "last_digit",
        "medium",
        "Honest readings have uniform last digits in d (χ² over a window): ours",
        "last digits are not uniform (χ² = {v:.1f}, limit {l:.1f})",
        "末位数字分布异常（χ² = {v:.1f}，限 {l:.1f}）",
    ),
    Rule(
        "e_not_d",
        "high",
        "e must equal d on price-computing scales [report]; e ≠ d suggests a re-flashed chip",
        "e and d differ ({v:.0f} mg vs {l:.0f} mg)",
        "检定分度值 e 与实际分度值 d 不同（{v:.0f} / {l:.0f} 毫克）",
    ),
    Rule(
        "software_id",
        "high",
        "Software id must match the type approval [report] (一秤一码)",
        "software id is not the approved one",
        "软件标识与型式批准不符",
    ),
)
RULE_INDEX = {r.id: i for i, r in enumerate(RULES)}
