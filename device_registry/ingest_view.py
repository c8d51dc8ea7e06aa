"""What the ingest needs from the registry, in the shape of a devices file (:mod:`cloud_ingest.registry_file`):
keys (derived again from the key secret), revocations, where each device is (enrichment tags), crops and
alert limits of planting bases, and each scale's facts from its last passed verification (an
:class:`device_profiles.metrology.ScaleFact`, in force from when it was recorded). The registry's
revision (the newest audit-log entry) tells the ingest when to read it again.

:func:`ingest_rows` gives one plain row per device (no ORM or pydantic object: a million devices are read
as rows straight into the ingest's dense table, whose vectorised check of the facts has ScaleFact's
bounds); :func:`ingest_view` is the same as one document, for small registries and tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from device_profiles.metrology import ScaleFact

from . import models as m
from .base import with_places
from .credentials import derive_integrity_key


@dataclass(frozen=True)
class IngestView:
    devices: dict[str, dict[str, Any]]
    revision: int
    verification_ids: dict[str, int]  # the verification each scale's facts come from


class IngestRow(NamedTuple):
    """What the ingest needs of one device (``fact``: ScaleFact fields of its last passed verification)."""

    device: str
    profile: str
    key: bytes | None
    revoked: bool
    tags: dict[str, str]
    crop: str | None
    limits: Mapping[str, Mapping[str, Any]] | None
    fact: dict[str, Any] | None
    verification: int  # the verification ``fact`` comes from (0: none)


def registry_revision(db: Session) -> int:
    """Grows with every change (each change writes the audit log in its transaction)."""
    return int(db.scalar(select(func.max(m.AuditEntry.id))) or 0)


def _due_ms(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)


def _ms(at: dt.datetime) -> int:
    """A stored time as UTC milliseconds (SQLite gives it back without its zone: it was stored in UTC)."""
    return int((at if at.tzinfo else at.replace(tzinfo=dt.UTC)).timestamp() * 1000)


def ingest_view(db: Session, key_secret: bytes) -> IngestView:
    """The registry as a devices document (see :func:`ingest_rows` for a large one)."""
    revision, rows = ingest_rows(db, key_secret)
    devices: dict[str, dict[str, Any]] = {}
    verification_ids: dict[str, int] = {}
    for r in rows:
        doc: dict[str, Any] = {"profile": r.profile, "tags": r.tags}
        if r.key is not None:
            doc["key"] = r.key.hex()
        if r.revoked:
            doc["revoked"] = True
        if r.crop is not None:
            doc["crop"] = r.crop
        if r.limits:
            doc["limits"] = r.limits
        if r.fact is not None:
            doc["scale"] = ScaleFact(**r.fact).model_dump()  # the one typed document of a verification's facts
            verification_ids[r.device] = r.verification
        devices[r.device] = doc
    return IngestView(devices, revision, verification_ids)


def ingest_rows(db: Session, key_secret: bytes) -> tuple[int, Iterator[IngestRow]]:
    """The registry's revision and a row per device, from one query streamed in plain rows (no ORM
    objects, which cost ten times more, and no dict of every verification)."""
    revision = registry_revision(db)
    cred = select(m.Credential.device_id, m.Credential.key_version).where(m.Credential.retired_at.is_(None)).subquery()
    last_passed = (
        select(func.max(m.Verification.id).label("id"))
        .where(m.Verification.passed.is_(True))
        .group_by(m.Verification.device_id)
        .subquery()
    )
    v = m.Verification
    facts = (
        select(
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
        )
        .join(last_passed, v.id == last_passed.c.id)
        .subquery()
    )
    query = (
        with_places(
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
                *(c for c in facts.c if c.name != "device_id"),
            )
        )
        .outerjoin(cred, cred.c.device_id == m.Device.id)
        .outerjoin(facts, facts.c.device_id == m.Device.id)
    )

    def rows() -> Iterator[IngestRow]:
        for row in db.execute(query.execution_options(yield_per=10_000)):
            (device, profile, revoked_at, software, stall, market, market_district, base, base_district, crops,
             limits, vehicle, vehicle_district, key_version, vid, coefficient, e_mg, d_mg, max_g, cls, zero,
             calibrations, configurations, due_on, at) = row  # fmt: skip
            key = None if key_version is None else derive_integrity_key(key_secret, device, key_version)
            crop = None
            if stall is not None:
                tags = {"district": market_district, "market": market, "stall": stall}
            elif base is not None:
                tags = {"district": base_district, "base": base}
                crop = crops[0] if crops else None
            else:
                tags = {"district": vehicle_district, "vehicle": vehicle}
            fact = None
            if vid is not None:
                fact = {
                    "coefficient": coefficient,
                    "e_mg": e_mg,
                    "d_mg": d_mg,
                    "max_g": max_g,
                    "accuracy_class": cls,
                    "zero_counts": zero,
                    "calibration_events": calibrations,
                    "configuration_events": configurations,
                    "verification_due_ms": _due_ms(due_on),
                    "approved_software_id": software,
                    "market": market,
                    "verified_ms": _ms(at),
                }
            yield IngestRow(device, profile, key, revoked_at is not None, tags, crop, limits or None, fact, vid or 0)

    return revision, rows()
