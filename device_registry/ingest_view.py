"""What the ingest needs from the registry, in the shape of a devices file (:mod:`cloud_ingest.registry_file`):
keys (derived again from the key secret), revocations, where each device is (enrichment tags), crops and
alert limits of planting bases, and each scale's facts from its last passed verification (an
:class:`anti_cheat.ScaleFact`, in force from when it was recorded). The registry's
revision (the newest audit-log entry) tells the ingest when to read it again."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from anti_cheat.facts import ScaleFact

from . import models as m
from .base import with_places
from .credentials import derive_integrity_key


@dataclass(frozen=True)
class IngestView:
    devices: dict[str, dict[str, Any]]
    revision: int
    verification_ids: dict[str, int]  # the verification each scale's facts come from


def registry_revision(db: Session) -> int:
    """Grows with every change (each change writes the audit log in its transaction)."""
    return int(db.scalar(select(func.max(m.AuditEntry.id))) or 0)


def _due_ms(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)


def _ms(at: dt.datetime) -> int:
    """A stored time as UTC milliseconds (SQLite gives it back without its zone: it was stored in UTC)."""
    return int((at if at.tzinfo else at.replace(tzinfo=dt.UTC)).timestamp() * 1000)


def ingest_view(db: Session, key_secret: bytes) -> IngestView:
    """Two queries over plain rows (no ORM objects, which cost ten times more at 10 000 devices)."""
    revision = registry_revision(db)
    cred = select(m.Credential.device_id, m.Credential.key_version).where(m.Credential.retired_at.is_(None)).subquery()
    last_passed = (
        select(func.max(m.Verification.id).label("id"))
        .where(m.Verification.passed.is_(True))
        .group_by(m.Verification.device_id)
        .subquery()
    )
    v = m.Verification
    facts_query = select(
        v.device_id,
        v.id,
        v.coefficient,
        v.e_mg,
        v.d_mg,
        v.max_g,
        v.accuracy_class,
        v.zero_counts,
        v.calibration_events,
        v.configuration_events,
        v.due_on,
        v.recorded_at,
    ).join(last_passed, v.id == last_passed.c.id)
    verified = {row[0]: row[1:] for row in db.execute(facts_query)}
    query = with_places(
        select(
            m.Device.id,
            m.Device.profile,
            m.Device.revoked_at,
            m.Device.approved_software_id,
            m.Stall.code,
            m.Market.id,
            m.Market.district_id,
            m.PlantingBase.id,
            m.PlantingBase.district_id,
            m.PlantingBase.crops,
            m.PlantingBase.alert_limits,
            m.Vehicle.id,
            m.Vehicle.district_id,
            cred.c.key_version,
        )
    ).outerjoin(cred, cred.c.device_id == m.Device.id)

    devices: dict[str, dict[str, Any]] = {}
    verification_ids: dict[str, int] = {}
    for row in db.execute(query):
        (device, profile, revoked_at, software, stall, market, market_district, base, base_district, crops, limits,
         vehicle, vehicle_district, key_version) = row  # fmt: skip
        doc: dict[str, Any] = {"profile": profile}
        if key_version is not None:
            doc["key"] = derive_integrity_key(key_secret, device, key_version).hex()
        if revoked_at is not None:
            doc["revoked"] = True
        if stall is not None:
            doc["tags"] = {"district": market_district, "market": market, "stall": stall}
        elif base is not None:
            doc["tags"] = {"district": base_district, "base": base}
            if crops:
                doc["crop"] = crops[0]
            if limits:
                doc["limits"] = limits
        else:
            doc["tags"] = {"district": vehicle_district, "vehicle": vehicle}
        if device in verified:
            vid, coefficient, e_mg, d_mg, max_g, cls, zero, calibrations, configurations, due_on, at = verified[device]
            doc["scale"] = ScaleFact(  # the one typed document of a verification's facts, checked here
                coefficient=coefficient,
                e_mg=e_mg,
                d_mg=d_mg,
                max_g=max_g,
                accuracy_class=cls,
                zero_counts=zero,
                calibration_events=calibrations,
                configuration_events=configurations,
                verification_due_ms=_due_ms(due_on),
                approved_software_id=software,
                market=market,
                verified_ms=_ms(at),
            ).model_dump()
            verification_ids[device] = vid
        devices[device] = doc
    return IngestView(devices, revision, verification_ids)
