"""Every number the rules use, in one place, each with its source in ``shared/domain/METROLOGY.md``.

[law] values come from OIML R76-1 / JJG 539 and may not be loosened; [unsure] values are our defaults for
facts the texts do not fix, and are the knobs to tune on real data.
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
    #: [unsure] a tare above this share of Max is implausible on a market stall
    tare_max_of_max: float = 0.20
    #: [law] a verification is due about once a year [unsure period]; overdue by more than this is flagged
    verification_grace_ms: int = 0
    #: [report] unit price keyed ×0.1 or ×0.01: log10(price / commodity median) within ±this of −1 or −2
    price_scaling_log_tolerance: float = 0.3
    #: the fair scale's own error counts too: its MPE (initial verification, class III) is added
    fair_scale_initial_mpe: bool = True
    #: CUSUM over re-weigh errors, relative, in ppm: slack k (drift tolerated) and alarm level h. [unsure]
    #: An honest in-service scale errs by at most its MPE (0.5–1.5 e, under 0.5 % at market loads).
    reweigh_cusum_k_ppm: int = 4_000
    reweigh_cusum_h_ppm: int = 60_000
    #: CUSUM over the live/calibrated coefficient ratio, in ppm. [unsure]
    coefficient_cusum_k_ppm: int = 2_500
    coefficient_cusum_h_ppm: int = 40_000
    #: last digit (in d) of net weights: χ² over tumbling windows of this many sales, 9 degrees of freedom.
    #: 44.81 is the 10⁻⁶ upper quantile: an honest scale trips it once in a million windows (at 0.001, 27.88,
    #: it would once in 200 000 sales, too often for a rule that accuses). [unsure] window
    digit_window: int = 200
    digit_chi2_limit: float = 44.81


DEFAULT = Thresholds()
