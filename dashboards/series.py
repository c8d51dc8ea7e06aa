"""The InfluxDB series the dashboards read: measurement, tags and fields, in one place.

Every panel query names only measurements, tags and fields listed here (a test parses each query and checks
it), and the ingest's tests check that what it writes has these names and types. ``written`` says who
writes a series: ``"ingest"``, the cloud ingest, every one of them today:

- records, by :mod:`device_profiles.influx_schema` (``sale``, ``reweigh``, ``gps``, ``rapid_test``,
  ``soil``, ``air``, ``sensor_fault``);
- flags and alerts, by ``cloud_ingest.derived_points`` (``flag``, ``alert``, and ``alert_state``: an
  alert's opening and its base's acknowledgement, with the batch; the supervisors' steps on its case,
  polled from the registry by ``cloud_ingest.case_state_points``);
- ``scale_status`` and ``place``, by ``cloud_ingest.status_points`` every status period.

Units follow the contract's suffixes (``_mg``, ``_fen``, ``_ms``, ``_pct``, ``_deg``); panels convert to
kg, yuan and % for people.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Written = Literal["ingest"]


@dataclass(frozen=True, slots=True)
class Series:
    """One measurement as the dashboards read it."""

    measurement: str
    tags: tuple[str, ...]
    fields: dict[str, str]  # field → InfluxDB type (integer, float, string, boolean)
    written: Written
    doc: str


_PLACE = ("district", "market", "stall")

SERIES: dict[str, Series] = {
    s.measurement: s
    for s in (
        Series(
            "sale",
            ("device", *_PLACE, "plu", "tare_kind"),
            {
                "seq": "integer",
                "txn": "integer",
                "net_mg": "integer",
                "tare_mg": "integer",
                "unit_price_fen_per_kg": "integer",
                "amount_fen": "integer",
                "stable": "boolean",
                "raw_counts": "integer",
                "zero_counts": "integer",
                "calibration_events": "integer",
                "configuration_events": "integer",
                "zero_set_events": "integer",
            },
            "ingest",
            "one sale of a stall's scale; place tags from the registry",
        ),
        Series(
            "reweigh",
            ("device", *_PLACE, "stall_device", "plu"),
            {"seq": "integer", "txn": "integer", "claimed_mg": "integer", "net_mg": "integer"},
            "ingest",
            "a customer's re-weigh at the fair scale; stall_device names the stall's scale",
        ),
        Series(
            "flag",
            ("device", *_PLACE, "rule", "severity"),
            {
                "seq": "integer",
                "value": "float",
                "limit": "float",
                "reason_en": "string",
                "reason_zh": "string",
                "evidence_g": "float",
                "evidence_pct": "float",
                "receipt_g": "float",
                "reference_g": "float",
                "limit_g": "float",
                "sales": "integer",
                "record_device": "string",
                "vendor": "string",
                "licence": "string",
            },
            "ingest",
            "an anti-cheat finding about a scale, at the flagged sale's time; evidence in grams and %, the"
            " sales behind it, the stall's vendor and licence",
        ),
        Series(
            "alert",
            ("device", "kind", "severity", "subject", "district", "market", "stall", "base", "vehicle"),
            {
                "id": "string",
                "seq": "integer",
                "sample_id": "string",
                "sample_name": "string",
                "inhibition_pct": "float",
                "result": "string",
                "agrees": "boolean",
                "lat_deg": "float",
                "lon_deg": "float",
                "action": "string",
                "channel": "string",
                "value": "float",
                "limit": "float",
                "side": "string",
            },
            "ingest",
            "a positive/suspect rapid test (subject: the sample's source device) or a planting-base alert;"
            " place tags: where the subject is (the sample's stall and market, or the base)",
        ),
        Series(
            "gps",
            ("device", "district", "vehicle"),
            {"lat_deg": "float", "lon_deg": "float", "speed_kmh": "float"},
            "ingest",
            "a rapid-test vehicle's GPS fix (WGS-84)",
        ),
        Series(
            "rapid_test",
            ("device", "district", "vehicle", "channel", "sample_category", "result"),
            {
                "seq": "integer",
                "sample_id": "string",
                "sample_name": "string",
                "source_id": "string",
                "inhibition_pct": "float",
                "operator": "string",
            },
            "ingest",
            "one channel of a rapid test on the vehicle",
        ),
        Series(
            "soil",
            ("device", "district", "base"),
            {"moisture_pct": "float", "temperature_c": "float", "conductivity_us_cm": "integer", "ph": "float"},
            "ingest",
            "a soil reading at a planting base",
        ),
        Series(
            "air",
            ("device", "district", "base"),
            {"temperature_c": "float", "humidity_pct": "float", "light_lux": "integer", "co2_ppm": "integer"},
            "ingest",
            "an air reading at a planting base",
        ),
        Series(
            "sensor_fault",
            ("device", "district", "base", "channel", "fault"),
            {"seq": "integer", "detail": "string"},
            "ingest",
            "a sensor channel that gave no usable reading",
        ),
        Series(
            "scale_status",
            ("device", *_PLACE, "vendor"),
            {
                "online": "integer",
                "verified": "integer",
                "last_seen_ms": "integer",
                "last_sale_ms": "integer",
                "last_verification_ms": "integer",
                "verification_due_ms": "integer",
            },
            "ingest",
            "per-scale status, at start for every scale, then each status period for the scales whose"
            " fields changed and hourly for all: online 1/0 (a message within the online window; an"
            " integer so that panels can sum it), verified 1/0 (a valid verification now), UTC epoch ms"
            " of the last message, last sale, last verification and the date the next one is due (a"
            " field without a value is left out)",
        ),
        Series(
            "place",
            ("kind", "id", "name", "district", "market"),
            {
                "lat": "float",
                "lon": "float",
                "open_flags": "integer",
                "open_alerts": "integer",
                "vendor": "string",
                "licence": "string",
            },
            "ingest",
            "each district, market, stall and planting base with a position (kind; WGS-84 degrees; market:"
            " a stall's market), every status period so any dashboard time range holds one, with what is"
            " open there: open_flags (markets and stalls) the flags raised at their scales in the last 24 h;"
            " open_alerts (bases) the planting-base alerts open in the ingest for the base's devices,"
            " (markets) the positive and suspect rapid tests of samples from its stalls in the last 24 h",
        ),
        Series(
            "alert_state",
            ("id", "kind", "severity", "district", "market", "stall", "base", "vehicle"),
            {"state": "string", "open": "integer", "actor": "string"},
            "ingest",
            "the life of an alert: one point per transition (state open | acknowledged | assigned | closed;"
            " open 1 until someone acknowledged it, else 0; actor: who made the change: the reporting"
            " device for open, the base's person for its acknowledgement, the supervisor for a step on the"
            " alert's case in the registry). id is the alert's id, a tag: alerts are few, and the latest"
            " state of each must be found",
        ),
        Series(
            "case",
            ("level", "district", "market", "state"),
            {"count": "integer"},
            "ingest",
            "cases not closed in the registry, by district (level=district) and by market (level=market) and"
            " state (open | acknowledged | assigned), written by the ingest's case reporter from the registry's"
            " counts every ZHIJIAN_CASE_COUNTS_INTERVAL_S; a group that emptied is written once more as 0",
        ),
    )
}
