"""Acceptable ranges of planting-base sensor channels (a channel is ``<record type>.<field>``, such as
``soil.moisture_pct``): the defaults, and crop-specific ones that replace them. The ingest's alert rules
apply them (``cloud_ingest.sensor_alerts``), the registry's per-base limits override them, and the
dashboards draw them beside the series. Data only, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limit:
    """Acceptable range of one channel at a base (defaults below are [unsure]; the registry overrides)."""

    low: float | None = None
    high: float | None = None
    hysteresis: float = 0.0
    min_duration_s: float = 600.0


DEFAULT_LIMITS: dict[str, Limit] = {
    "soil.moisture_pct": Limit(20, 45, 2, 1800),
    "soil.temperature_c": Limit(5, 35, 1, 1800),
    "soil.ph": Limit(5.0, 8.0, 0.2, 3600),
    "soil.conductivity_us_cm": Limit(None, 3000, 100, 3600),
    "air.temperature_c": Limit(0, 38, 1, 600),
    "air.humidity_pct": Limit(30, 95, 3, 1800),
    "air.co2_ppm": Limit(None, 2000, 100, 900),
}


#: Crop-specific limits that replace the defaults for a base growing that crop. [unsure] values: agronomy
#: tables vary by region and season; the registry's per-base limits override these in turn.
CROP_LIMITS: dict[str, dict[str, Limit]] = {
    "leafy": {"soil.moisture_pct": Limit(25, 45, 2, 1800), "air.temperature_c": Limit(5, 30, 1, 600)},
    "tomato": {
        "soil.moisture_pct": Limit(20, 40, 2, 1800),
        "air.temperature_c": Limit(10, 35, 1, 600),
        "air.humidity_pct": Limit(40, 85, 3, 1800),
    },
    "rice": {"soil.moisture_pct": Limit(35, 100, 2, 3600), "air.temperature_c": Limit(12, 38, 1, 600)},
    "citrus": {"soil.moisture_pct": Limit(15, 40, 2, 3600), "air.temperature_c": Limit(-2, 38, 1, 600)},
}
