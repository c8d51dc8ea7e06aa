"""What the ingest needs from the registry, in the shape of a devices file (:mod:`cloud_ingest.registry_file`):
keys (derived again from the key secret), revocations, where each device is (enrichment tags), crops and
alert limits of planting bases, and each scale's facts from its last passed verification. The registry's
revision (the newest audit-log entry) tells the ingest when to read it again."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import models as m
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


def ingest_view(db: Session, key_secret: bytes) -> IngestView:
    revision = registry_revision(db)
    current = {
        c.device_id: c.key_version for c in db.scalars(select(m.Credential).where(m.Credential.retired_at.is_(None)))
    }
    latest: dict[str, m.Verification] = {}
    passed = select(m.Verification).where(m.Verification.passed.is_(True)).order_by(m.Verification.id)
    for row in db.scalars(passed):
        latest[row.device_id] = row
    devices: dict[str, dict[str, Any]] = {}
    for d in db.scalars(select(m.Device)).unique():
        doc: dict[str, Any] = {"profile": d.profile}
        if d.id in current:
            doc["key"] = derive_integrity_key(key_secret, d.id, current[d.id]).hex()
        if d.revoked_at is not None:
            doc["revoked"] = True
        if d.stall is not None:
            tags = {"district": d.stall.market.district_id, "market": d.stall.market_id, "stall": d.stall.code}
        elif d.base is not None:
            tags = {"district": d.base.district_id, "base": d.base.id}
            if d.base.crops:
                doc["crop"] = d.base.crops[0]
            if d.base.alert_limits:
                doc["limits"] = d.base.alert_limits
        else:
            assert d.vehicle is not None
            tags = {"district": d.vehicle.district_id, "vehicle": d.vehicle.id}
        doc["tags"] = tags
        last = latest.get(d.id)
        if last is not None:
            v = last
            doc["scale"] = {
                "coefficient": v.coefficient,
                "e_mg": v.e_mg,
                "d_mg": v.d_mg,
                "max_g": v.max_g,
                "accuracy_class": v.accuracy_class,
                "zero_counts": v.zero_counts,
                "calibration_events": v.calibration_events,
                "configuration_events": v.configuration_events,
                "verification_due_ms": _due_ms(v.due_on),
                "approved_software_id": d.approved_software_id,
            }
        devices[d.id] = doc
    return IngestView(devices, revision, {d: row.id for d, row in latest.items()})
