"""Every number the rules use, in one place, each with its basis (docs/metrology.md gives the sources).

[law] values come from OIML R76-1 / JJG 539 and may not be loosened; [unsure] values are our defaults for
facts the texts do not fix, and are the knobs to tune on real data. Tolerances are not numbers here: each
comes from the MPE table at the load in question (:mod:`device_profiles.metrology`); the statistics below count in
units of that tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class Thresholds:
    """Rule parameters."""

    #: [law] a weight may be registered only when stable for at least 0.4 s
    stability_window_ms: int = 400
    #: [law] zero-setting plus zero-tracking act over at most 4 % of Max
    zero_range_of_max: float = 0.04
    #: [law] zero is held within ±0.25 e; [unsure] with tracking and the noise of one reading, an empty pan
    #: reads no more than this many e above the zero reference
    zero_empty_band_e: float = 1.0
    #: [unsure] zero tracking is slow (≤ 0.5 e/s, only near zero and stable): between two sales the zero
    #: reference moves by less than this many e unless a zero-setting operation happened between them
    zero_jump_band_e: float = 2.0
    #: [unsure] ... plus this many e per hour between the two sales (temperature drift of the empty pan)
    zero_drift_e_per_hour: float = 0.5
    #: [unsure] the load-cell counts' own noise, in counts, allowed on top of the tolerance when counts are
    #: compared with an indication
    counts_noise: int = 4
    #: [unsure] ... and at least this share of e (a load cell resolving 300 counts per e is noisier in counts)
    counts_noise_e: float = 0.2
    #: [unsure] a preset tare stands for containers that vary around it: a re-weigh allows this share of
    #: the keyed tare (at least one e) for the difference
    preset_tare_spread: float = 0.05
    #: [unsure] a tare above this share of Max is implausible on a market stall
    tare_max_of_max: float = 0.20
    #: [law] a verification is due about once a year [unsure period]; overdue by more than this is flagged
    verification_grace_ms: int = 0
    #: [report] unit price keyed ×0.1 or ×0.01: log10(price / reference) within ±this of −1 or −2; when the
    #: load-cell counts are reported, the weight shown must be scaled by the same decade too
    price_scaling_log_tolerance: float = 0.3
    #: learned reference prices: a (market, commodity) day needs this many sales to be a reference [unsure]
    price_reference_min_sales: int = 20
    #: market days start at local midnight: UTC+8 (China Standard Time)
    market_day_offset_ms: int = 8 * 3_600_000
    #: CUSUMs count in thousandths of the tolerance at each weighing. The slack
    #: k is one whole tolerance: a scale whose every error lies within it never accumulates, whatever the sign pattern
    #: (k < 1000 would accuse honest scales erring within the law). h: the alarm level. [unsure: h]
    cusum_slack_milli: int = 1_000
    #: one weighing adds at most this much (so the alarm means persistence: two weighings far beyond
    #: their tolerance, or more nearer to it); once in alarm, sales within their tolerance but erring the
    #: same way bring it down only slowly, so a tampered scale's small sales are flagged too, while an
    #: honest scale, never beyond its tolerance, never accumulates anything
    cusum_step_cap_milli: int = 4_000
    reweigh_cusum_h_milli: int = 3_000
    coefficient_cusum_h_milli: int = 3_000
    #: last digit (in d) of net weights: χ² over tumbling windows of this many sales, counting the digits
    #: 1–4 and 6–9 (7 degrees of freedom; 0 and 5 are where round portions land). 40.52 is the 10⁻⁶ upper
    #: quantile: an honest scale trips it once in a million windows. [unsure] window
    #: the test is off by default: vendors portion near round weights (一斤 = 500 g, half a jin), and
    #: honest digits then cluster around 0 whatever is left out; an outside review found 2–6 false
    #: flags per 10 000 honest rows from it on markets where 15–40 % of sales are such portions
    digit_test: bool = False
    digit_window: int = 200
    #: ... over sales of at least this many d (smaller ones have no uniform last digit) [unsure]
    digit_min_d: int = 100
    digit_chi2_limit: float = 40.52


DEFAULT = Thresholds()
