"""The registry's tables (SQLAlchemy 2 declarative). Migrations in :mod:`device_registry.migrations` create them.

Where things are: districts hold markets, planting bases and rapid-test vehicles; markets hold stalls.
Districts, markets, stalls and planting bases may have a position (``lat``, ``lon``: WGS-84 degrees, as GPS
and OpenStreetMap give them; both or neither; a Chinese basemap needs GCJ-02, see :mod:`device_profiles.geo`).
Each device is installed at exactly one stall, base or vehicle. A scale's verification records (检定)
carry what was read on site; its credentials are kept as hashes only; revocations and every change are
recorded, the audit log append-only (database triggers refuse UPDATE and DELETE on it).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

ONE_PLACE = (  # a device is installed at exactly one stall, base or vehicle
    "(stall_id IS NOT NULL AND base_id IS NULL AND vehicle_id IS NULL)"
    " OR (stall_id IS NULL AND base_id IS NOT NULL AND vehicle_id IS NULL)"
    " OR (stall_id IS NULL AND base_id IS NULL AND vehicle_id IS NOT NULL)"
)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on every database (SQLite hands back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is not None and value.tzinfo is not None:
            return value.astimezone(dt.UTC)  # SQLite keeps no zone: store and compare in UTC
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        dt.datetime: UtcDateTime(),
    }


class District(Base):
    __tablename__ = "districts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    lat: Mapped[float | None] = mapped_column(Float, default=None, doc="WGS-84 latitude, degrees")
    lon: Mapped[float | None] = mapped_column(Float, default=None, doc="WGS-84 longitude, degrees")


class Market(Base):
    __tablename__ = "markets"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"), index=True)
    operator: Mapped[str] = mapped_column(String(200), doc="the company running the market (市场开办方)")
    operator_licence: Mapped[str | None] = mapped_column(String(18), default=None)
    lat: Mapped[float | None] = mapped_column(Float, default=None, doc="WGS-84 latitude, degrees")
    lon: Mapped[float | None] = mapped_column(Float, default=None, doc="WGS-84 longitude, degrees")


class Stall(Base):
    __tablename__ = "stalls"
    __table_args__ = (UniqueConstraint("market_id", "code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    market_id: Mapped[str] = mapped_column(ForeignKey("markets.id"), index=True)
    code: Mapped[str] = mapped_column(String(32), doc="the stall number painted on it, e.g. A-017")
    vendor: Mapped[str] = mapped_column(String(200))
    business_licence: Mapped[str] = mapped_column(String(18), doc="unified social credit code")
    lat: Mapped[float | None] = mapped_column(Float, default=None, doc="WGS-84 latitude, degrees")
    lon: Mapped[float | None] = mapped_column(Float, default=None, doc="WGS-84 longitude, degrees")
    market: Mapped[Market] = relationship(lazy="joined")


class PlantingBase(Base):
    __tablename__ = "planting_bases"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"), index=True)
    crops: Mapped[list[Any]] = mapped_column(default=list)
    alert_limits: Mapped[dict[str, Any]] = mapped_column(default=dict, doc="{channel: {low, high, …}}")
    lat: Mapped[float | None] = mapped_column(Float, default=None, doc="WGS-84 latitude, degrees")
    lon: Mapped[float | None] = mapped_column(Float, default=None, doc="WGS-84 longitude, degrees")


class Vehicle(Base):
    __tablename__ = "vehicles"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    plate: Mapped[str] = mapped_column(String(16))
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"), index=True)


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (CheckConstraint(ONE_PLACE, name="one_place"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, doc="device id = MQTT username")
    profile: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    serial_no: Mapped[str] = mapped_column(String(64))
    production_code: Mapped[str | None] = mapped_column(String(64), default=None, doc="制造许可证号")
    repair_code: Mapped[str | None] = mapped_column(String(64), default=None, doc="修理许可证号")
    approved_software_id: Mapped[str | None] = mapped_column(String(64), default=None)
    firmware_version: Mapped[str | None] = mapped_column(String(64), default=None)
    stall_id: Mapped[int | None] = mapped_column(ForeignKey("stalls.id"), index=True, default=None)
    base_id: Mapped[str | None] = mapped_column(ForeignKey("planting_bases.id"), index=True, default=None)
    vehicle_id: Mapped[str | None] = mapped_column(ForeignKey("vehicles.id"), index=True, default=None)
    registered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    stall: Mapped[Stall | None] = relationship(lazy="joined")
    base: Mapped[PlantingBase | None] = relationship(lazy="joined")
    vehicle: Mapped[Vehicle | None] = relationship(lazy="joined")


class Verification(Base):
    __tablename__ = "verifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    certificate_no: Mapped[str] = mapped_column(String(64))
    verifying_body: Mapped[str] = mapped_column(String(200))
    verified_on: Mapped[dt.date] = mapped_column(Date)
    due_on: Mapped[dt.date | None] = mapped_column(Date, doc="None for a failed verification")
    seal_no: Mapped[str] = mapped_column(String(64))
    accuracy_class: Mapped[str] = mapped_column(String(4))
    max_g: Mapped[int] = mapped_column(Integer)
    e_mg: Mapped[int] = mapped_column(Integer)
    d_mg: Mapped[int] = mapped_column(Integer)
    coefficient: Mapped[float] = mapped_column(Float, doc="ADC counts per kg read from the scale")
    zero_counts: Mapped[int | None] = mapped_column(Integer, default=None)
    calibration_events: Mapped[int] = mapped_column(Integer)
    configuration_events: Mapped[int] = mapped_column(Integer)
    software_id: Mapped[str | None] = mapped_column(String(64), default=None)
    technician: Mapped[str] = mapped_column(String(200))
    reference_weights: Mapped[list[Any]] = mapped_column(doc="[{reference_g, indicated_g, error_g, mpe_g}]")
    passed: Mapped[bool]
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Credential(Base):
    """A device's MQTT password (as Mosquitto's $7$ hash) and the version of its derived integrity key."""

    __tablename__ = "credentials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    key_version: Mapped[int] = mapped_column(Integer)
    password_hash: Mapped[str] = mapped_column(String(200))
    key_fingerprint: Mapped[str] = mapped_column(String(16), doc="first 16 hex of SHA-256(key), to compare")
    issued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class Revocation(Base):
    __tablename__ = "revocations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    reason: Mapped[str] = mapped_column(String(500))
    revoked_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(16), primary_key=True, doc="the public part of the token")
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), doc="SHA-256 of the secret part, hex")
    districts: Mapped[list[Any]] = mapped_column(default=list, doc="scope: empty = everywhere")
    markets: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
