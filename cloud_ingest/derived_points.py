"""The points the ingest derives from records, as line protocol: ``flag`` (an anti-cheat finding) and
``alert`` (a positive rapid test, a planting-base limit or sensor fault). Pure functions, no I/O.

Both carry where they happened as tags, so a district or market supervisor filters them:

- a flag: the flagged scale's place (district, market, stall), with its vendor and licence as fields;
- a planting-base alert: the base's (district, base);
- a rapid-test alert: the place the *sample* came from (its ``source_id`` names the stall's scale or the
  base's gateway: district, market and stall, or district and base) and the ``vehicle`` that tested it
  (with the vehicle's district where the origin is unknown).

Numeric fields keep one type each (InfluxDB refuses a field whose type changes): masses and shares are
floats, counts integers; a field without a value is left out, never written as NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from anti_cheat import Flag
from device_profiles.influx_schema import escape_tag, format_field, point_time_ns

from .rapid_tests import Alert

_PLACE = ("district", "market", "stall", "base")


def tag_text(tag_map: Mapping[str, str]) -> str:
    """``k=v,…`` sorted by key, escaped; empty values left out."""
    return ",".join(f"{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tag_map.items()) if v)


def field_text(pairs: Mapping[str, Any]) -> str:
    """``k=v,…`` typed (see :func:`device_profiles.influx_schema.format_field`); None and NaN left out."""
    return ",".join(
        f"{k}={format_field(v)}"
        for k, v in pairs.items()
        if v is not None and not (isinstance(v, float) and not math.isfinite(v))
    )


def flag_line(flag: Flag, place: Mapping[str, str] | None = None, vendor: tuple[str, str] | None = None) -> str:
    """A ``flag`` point: tags device, rule, severity and where the scale stands (``place``: district,
    market, stall from the registry); fields the rule's own ``value``/``limit``, the evidence in grams and
    % (``evidence_g``, ``evidence_pct``, ``receipt_g``, ``reference_g``, ``limit_g``, floats), ``sales``
    behind it (integer), the reasons, and the stall's ``vendor`` and ``licence``; at the flagged record's
    point time."""
    tag_map = {**(place or {}), "device": flag.device, "rule": flag.rule, "severity": flag.severity}
    fields: dict[str, Any] = {
        "seq": flag.seq,
        "value": float(flag.value),
        "limit": float(flag.limit),
        "evidence_g": None if flag.evidence_g is None else float(flag.evidence_g),
        "evidence_pct": None if flag.evidence_pct is None else float(flag.evidence_pct),
        "receipt_g": None if flag.receipt_g is None else float(flag.receipt_g),
        "reference_g": None if flag.reference_g is None else float(flag.reference_g),
        "limit_g": None if flag.limit_g is None else float(flag.limit_g),
        "sales": int(flag.sales),
        "reason_en": flag.reason_en,
        "reason_zh": flag.reason_zh,
        "record_device": flag.record_device or None,
        "vendor": vendor[0] if vendor and vendor[0] else None,
        "licence": vendor[1] if vendor and vendor[1] else None,
    }
    return f"flag,{tag_text(tag_map)} {field_text(fields)} {point_time_ns(flag.ts, flag.seq)}"


def alert_place(alert: Alert, tags_for: Callable[[str], Mapping[str, str]]) -> dict[str, str]:
    """Where an alert happened, as tags (see the module docstring)."""
    own = tags_for(alert.device)
    if not alert.kind.startswith("rapid_test"):
        return {k: v for k, v in own.items() if k in _PLACE and v}
    origin = tags_for(alert.subject) if alert.subject else {}
    place = {k: v for k, v in origin.items() if k in _PLACE and v}
    if "district" not in place and own.get("district"):
        place["district"] = own["district"]
    if own.get("vehicle"):
        place["vehicle"] = own["vehicle"]
    return place


def alert_line(alert: Alert, place: Mapping[str, str] | None = None) -> str:
    """An ``alert`` point: tags kind, severity, device, subject and the place (``place``, from
    :func:`alert_place`); fields the alert's id, seq and detail; at the alerting record's point time."""
    tag_map = {
        **(place or {}),
        "device": alert.device,
        "kind": alert.kind,
        "severity": alert.severity,
        "subject": alert.subject,
    }
    fields = {"id": alert.id, "seq": alert.seq, **alert.detail}
    return f"alert,{tag_text(tag_map)} {field_text(fields)} {point_time_ns(alert.ts, alert.seq)}"


#: the place tags an ``alert_state`` point carries (dashboards/series.py)
STATE_PLACE = ("district", "market", "stall", "base", "vehicle")


def alert_state_line(
    alert_id: str,
    kind: str,
    severity: str,
    place: Mapping[str, str],
    *,
    state: str,
    actor: str,
    ts_ms: int,
) -> str:
    """An ``alert_state`` point: one step in an alert's life (state open, acknowledged, assigned or closed;
    ``open`` 1 while nobody has acknowledged it, else 0; ``actor`` who made the step). ``id`` is a tag:
    the dashboards find each alert's latest state with ``last() … GROUP BY "id"``; alerts are few."""
    tag_map = {**{k: v for k, v in place.items() if k in STATE_PLACE}, "id": alert_id, "kind": kind}
    tag_map["severity"] = severity
    fields = {"state": state, "open": 1 if state == "open" else 0, "actor": actor}
    return f"alert_state,{tag_text(tag_map)} {field_text(fields)} {ts_ms * 1_000_000}"
