"""The InfluxDB series the dashboards read: measurement, tags and fields, in one place.

Every panel query names only measurements, tags and fields listed here (a test parses each query and checks
it). ``written`` says who writes a series today:

- ``"ingest"``: written by the ingest now (:mod:`device_profiles.influx_schema` for records,
  ``cloud_ingest.pipeline.flag_line`` / ``alert_line`` for flags and alerts);
- ``"expected"``: the schema the dashboards expect from work in progress (place tags on alerts, human
  evidence on flags, per-scale status, positions, alert state). Tests load such points in exactly this
  schema beside the demo's data; the ingest must write them so (the lead aligns the two at merge).

Units follow the contract's suffixes (``_mg``, ``_fen``, ``_ms``, ``_pct``, ``_deg``); panels convert to
kg, yuan and % for people.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Written = Literal["ingest", "expected"]


@dataclass(frozen=True, slots=True)
class Series:
    """One measurement as the dashboards read it."""

    measurement: str
    tags: tuple[str, ...]
    fields: dict[str, str]  # field → InfluxDB type (integer, float, string, boolean)
    written: Written
    doc: str
    expected_tags: tuple[str, ...] = ()  # tags of an ingest series that the dashboards expect to be added
    expected_fields: tuple[str, ...] = ()  # fields likewise

    def all_tags(self) -> tuple[str, ...]:
        return self.tags + self.expected_tags


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
            },
            "ingest",
            "an anti-cheat finding about a scale, at the flagged sale's time",
            expected_fields=("evidence_g", "evidence_pct"),
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
            expected_tags=("district", "market", "stall", "base", "vehicle"),
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
                "last_sale_ms": "integer",
                "last_verification_ms": "integer",
                "verification_due_ms": "integer",
            },
            "expected",
            "per-scale status, written by the ingest at least every few minutes per scale: online 1/0 (an"
            " integer so that panels can sum it), UTC epoch ms of the last sale, last verification and the"
            " date the next one is due",
        ),
        Series(
            "place",
            ("kind", "id", "name", "district"),
            {"lat": "float", "lon": "float", "open_flags": "integer", "open_alerts": "integer"},
            "expected",
            "a position from the registry (kind market | base; WGS-84 degrees) with what is open there (flags"
            " of its scales and alerts whose case is not closed; until cases exist, those of the last 24 h),"
            " written by the ingest every few minutes so any dashboard time range holds one",
        ),
        Series(
            "alert_state",
            ("id", "kind", "severity", "district", "market", "stall", "base", "vehicle"),
            {"state": "string", "open": "integer", "actor": "string"},
            "expected",
            "the life of an alert as a case: one point per transition (state open | acknowledged | assigned |"
            " closed; open 1 while nobody acknowledged it, else 0; actor: who made the change). id is the"
            " alert's id, a tag: alerts are few, and the latest state of each must be found",
        ),
    )
}


def expected_schema() -> list[str]:
    """The series, tags and fields the dashboards expect and the ingest does not write yet, one line each."""
    out = []
    for s in SERIES.values():
        if s.written == "expected":
            fields = ", ".join(f"{k} ({v})" for k, v in s.fields.items())
            out.append(f"{s.measurement}: tags {', '.join(s.tags)}; fields {fields} — {s.doc}")
        elif s.expected_tags or s.expected_fields:
            extra = [f"tags {', '.join(s.expected_tags)}"] if s.expected_tags else []
            extra += [f"fields {', '.join(s.expected_fields)}"] if s.expected_fields else []
            out.append(f"{s.measurement} (ingest) gains: {'; '.join(extra)}")
    return out
