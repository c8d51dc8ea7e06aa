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
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, aliased

from device_profiles.metrology import FROM_START, ScaleFact

from . import models as m
from .base import with_places
from .credentials import derive_integrity_key


@dataclass(frozen=True)
class IngestView:
    devices: dict[str, dict[str, Any]]
    revision: int
    verification_ids: dict[str, int]  # the verification each scale's facts come from
    places: list[dict[str, Any]] = field(default_factory=list)  # see :func:`ingest_places`


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
    #: a scale without a valid verification by the registry's records: FROM_START when none is on record,
    #: the UTC ms its latest verification (newer than the last passed) failed; None: it has one (its due
    #: date is in ``fact``), or the device is no scale
    unverified: int | None = None


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
        if r.unverified is not None:
            doc["unverified"] = "none" if r.unverified == FROM_START else r.unverified
        devices[r.device] = doc
    return IngestView(devices, revision, verification_ids, ingest_places(db))


def ingest_places(db: Session) -> list[dict[str, Any]]:
    """Every district, market, stall and planting base, for the ingest's ``place`` points: ``kind``, ``id``
    (a stall's code, with its ``market``), ``name``, ``district``, WGS-84 ``lat``/``lon`` (None: no position
    on record), and a stall's ``vendor`` and ``licence``. A city has thousands, not millions: plain dicts."""
    out: list[dict[str, Any]] = []
    simple = (
        ("district", m.District, m.District.id),
        ("market", m.Market, m.Market.district_id),
        ("base", m.PlantingBase, m.PlantingBase.district_id),
    )
    for kind, table, district in simple:
        for r in db.execute(select(table.id, table.name, district.label("district"), table.lat, table.lon)):
            out.append({"kind": kind, "id": r.id, "name": r.name, "district": r.district, "lat": r.lat, "lon": r.lon})
    stalls = select(
        m.Stall.code, m.Stall.market_id, m.Stall.vendor, m.Stall.business_licence, m.Stall.lat, m.Stall.lon,
        m.Market.district_id, m.Market.name,
    ).join(m.Market, m.Market.id == m.Stall.market_id)  # fmt: skip
    for t in db.execute(stalls):
        out.append(
            {
                "kind": "stall",
                "id": t.code,
                "market": t.market_id,
                "name": f"{t.name} {t.code}",
                "district": t.district_id,
                "lat": t.lat,
                "lon": t.lon,
                "vendor": t.vendor,
                "licence": t.business_licence,
            }
        )
    return out


def ingest_rows(db: Session, key_secret: bytes) -> tuple[int, Iterator[IngestRow]]:
    """The registry's revision and a row per device, from one query streamed in plain rows (no ORM
    objects, which cost ten times more, and no dict of every verification)."""
    revision = registry_revision(db)
    cred = select(m.Credential.device_id, m.Credential.key_version).where(m.Credential.retired_at.is_(None)).subquery()
    v, last = m.Verification, aliased(m.Verification)
    # per device, its latest verification and its latest passed one, in one grouping: the facts come from
    # the passed one; the latest says whether a failure came after it (and when)
    ids = (
        select(
            v.device_id,
            func.max(v.id).label("last_id"),
            func.max(case((v.passed.is_(True), v.id))).label("passed_id"),
        )
        .group_by(v.device_id)
        .subquery()
    )
    facts = (
        select(
            ids.c.device_id,
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
            last.passed.label("last_passed"),
            last.recorded_at.label("last_at"),
        )
        .select_from(ids)
        .outerjoin(v, v.id == ids.c.passed_id)
        .join(last, last.id == ids.c.last_id)
        .subquery()
    )
    columns: list[Any] = [
        m.Device.id,
        m.Device.profile,
        m.Device.revoked_at,
        m.Device.approved_software_id,
        m.Device.kind,
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
    ]
    query = (
        with_places(select(*columns))
        .outerjoin(cred, cred.c.device_id == m.Device.id)
        .outerjoin(facts, facts.c.device_id == m.Device.id)
    )

    def rows() -> Iterator[IngestRow]:
        for row in db.execute(query.execution_options(yield_per=10_000)):
            (device, profile, revoked_at, software, kind, stall, market, market_district, base, base_district,
             crops, limits, vehicle, vehicle_district, key_version, vid, coefficient, e_mg, d_mg, max_g, cls, zero,
             calibrations, configurations, due_on, at, last_passed, last_at) = row  # fmt: skip
            unverified = None
            if kind == "scale" and last_at is None:
                unverified = FROM_START  # registered, never verified
            elif kind == "scale" and not last_passed:
                unverified = _ms(last_at)  # its latest verification failed: not valid from then
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
            yield IngestRow(
                device, profile, key, revoked_at is not None, tags, crop, limits or None, fact, vid or 0, unverified
            )

    return revision, rows()
