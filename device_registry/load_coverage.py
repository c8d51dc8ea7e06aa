"""Whether the loads weighed at a verification cover the scale's range: a warning for each gap.

A verification judges each reading against the MPE (:mod:`.verification`); whether it passed says nothing
about the loads nobody weighed. Weighing tests go up to capacity (Max) with at least five known test
weights, chosen by the capacity, the verification scale interval and the turning points of the tolerances
(where the MPE changes): Measurement Canada's laboratory manual LG-3.01 says so in those words [report:
read at ic.gc.ca, "Linearity, hysteresis and repeatability"]; OIML R76-1's weighing test (A.4.4.1, which
JJG 539 follows) asks the same, loads from zero to Max including Min, Max and the loads at or near which
the MPE changes [unsure: the clause not read here]. The count and the nearness are configurable below.
One reading at 1 kg on a 30 kg scale passes and proves little: it is recorded, with warnings, not refused
(a re-verification after a repair may rightly be partial).
"""

from __future__ import annotations

from device_profiles.metrology import MPE_TABLE

MIN_LOADS = 5  # test loads at a verification [report: Measurement Canada LG-3.01; R76-1 A.4.4.1 unsure]
NEAR_MAX = 0.9  # a load at 90 % of Max or more counts as "at Max" (reference weights come in steps)
NEAR_EDGE = 0.05  # a load within 5 % of a point where the MPE changes is "at or near" it: covers both sides


def coverage_warnings(loads_g: list[float], *, accuracy_class: str, e_mg: int, max_g: int) -> list[str]:
    """What the loads ``loads_g`` of one verification leave out of the range up to ``max_g``."""
    distinct = sorted(set(loads_g))
    warnings: list[str] = []
    if len(distinct) < MIN_LOADS:
        warnings.append(
            f"{len(distinct)} load{'s' if len(distinct) != 1 else ''} weighed: a verification needs several "
            f"(at least {MIN_LOADS}) from Min up to Max, including the loads where the MPE changes"
        )
    if max_g <= 0 or e_mg <= 0 or accuracy_class not in MPE_TABLE:
        return warnings
    if not distinct or distinct[-1] < NEAR_MAX * max_g:
        heaviest = f"{distinct[-1]:g} g" if distinct else "none"
        warnings.append(f"no load near Max ({max_g:g} g); the heaviest was {heaviest}")
    limits, mpes = MPE_TABLE[accuracy_class]
    lower = 0.0
    for upper_e, mpe_e in zip((*limits, None), mpes, strict=True):
        upper = max_g if upper_e is None else min(max_g, upper_e * e_mg / 1000)
        if lower >= max_g:
            break
        if not any(lower * (1 - NEAR_EDGE) < load <= upper * (1 + NEAR_EDGE) for load in distinct):
            warnings.append(f"no load between {lower:g} g and {upper:g} g, where the MPE is ±{mpe_e:g} e")
        lower = upper
    return warnings
