"""Registry operations, one method per thing a user does, each checked against the caller's role and
scope and written to the audit log in the same transaction as the change."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from device_profiles import ProfileError, builtin
from edge_agent.bundle_text import qr_text

from . import models as m
from .auth import Principal, Role
from .credentials import derive_integrity_key, hash_password, key_fingerprint, new_api_token, new_device_password
from .errors import Conflict, InvalidInput, NotFound
from .local_ca import LocalCA
from .schemas import (
    AuditOut,
    BaseIn,
    BaseOut,
    DeviceIn,
    DeviceOut,
    DeviceUpdate,
    DistrictIn,
    DistrictOut,
    MarketIn,
    MarketOut,
    Page,
    Place,
    ProvisionIn,
    ProvisionOut,
    RevocationOut,
    RevokeIn,
    StallIn,
    StallOut,
    TokenCreated,
    TokenIn,
    TokenOut,
    VehicleIn,
    VehicleOut,
    VendorIn,
    VerificationIn,
    VerificationOut,
)
from .verification import judge_readings

VERIFICATION_PERIOD = dt.timedelta(days=365)  # METROLOGY.md: about once a year, configurable
NOT_FOUND = "{what} {key!r} not found"
OutT = TypeVar("OutT")


@dataclass(frozen=True, kw_only=True)
class BundleDefaults:
    """What every bundle points to: the broker, its CA, and where agents keep state."""

    key_secret: bytes
    broker_host: str = "127.0.0.1"
    broker_port: int = 1883
    ca_pem: str | None = None
    state_dir: str = "/var/lib/zhijian/{device}"
    client_ca: LocalCA | None = None  # issue each device a client certificate (CN = device id) from this CA


class Registry:
    """The registry as seen by one caller, in one database session."""

    def __init__(self, db: Session, who: Principal, bundles: BundleDefaults | None = None) -> None:
        self.db = db
        self.who = who
        self.bundles = bundles

    # -- helpers -------------------------------------------------------------------------------------
    def _audit(self, action: str, entity: str, entity_id: object, **detail: Any) -> None:
        self.db.add(
            m.AuditEntry(actor=self.who.name, action=action, entity=entity, entity_id=str(entity_id), detail=detail)
        )

    def _commit(self) -> None:
        try:
            self.db.commit()
        except IntegrityError as exc:
            self.db.rollback()
            raise Conflict("that conflicts with what is registered (it exists already, or is in use)") from exc

    def _page(
        self, query: Select[Any], limit: int, offset: int, out: type[OutT], convert_all: Any = None
    ) -> Page[OutT]:
        total = self.db.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
        rows = self.db.scalars(query.limit(limit).offset(offset)).unique().all()
        items = convert_all(rows) if convert_all else [out.model_validate(r) for r in rows]  # type: ignore[attr-defined]
        return Page[out](items=items, total=total, limit=limit, offset=offset)  # type: ignore[valid-type]

    def _district(self, district_id: str) -> m.District:
        d = self.db.get(m.District, district_id)
        if d is None or not self.who.sees(d.id):
            raise NotFound(NOT_FOUND.format(what="district", key=district_id))
        return d

    def _market(self, market_id: str) -> m.Market:
        mk = self.db.get(m.Market, market_id)
        if mk is None or not self.who.sees(mk.district_id, mk.id):
            raise NotFound(NOT_FOUND.format(what="market", key=market_id))
        return mk

    def _scope_filter(self, district_col: Any, market_col: Any | None = None) -> Any:
        conds = [district_col.in_(self.who.districts)]
        if market_col is not None:
            conds.append(market_col.in_(self.who.markets))
        return or_(*conds)

    # -- places --------------------------------------------------------------------------------------
    def add_district(self, data: DistrictIn) -> DistrictOut:
        self.who.require("add_district")
        if self.db.get(m.District, data.id):
            raise Conflict(f"district {data.id!r} exists already")
        self.db.add(m.District(**data.model_dump()))
        self._audit("create", "district", data.id, **data.model_dump())
        self._commit()
        return DistrictOut.model_validate(data.model_dump())

    def districts(self, *, limit: int = 50, offset: int = 0) -> Page[DistrictOut]:
        q = select(m.District).order_by(m.District.id)
        if self.who.scoped:
            visible = select(m.Market.district_id).where(m.Market.id.in_(self.who.markets))
            q = q.where(or_(m.District.id.in_(self.who.districts), m.District.id.in_(visible)))
        return self._page(q, limit, offset, DistrictOut)

    def add_market(self, data: MarketIn) -> MarketOut:
        self.who.require("add_market")
        self._district(data.district_id)
        if self.db.get(m.Market, data.id):
            raise Conflict(f"market {data.id!r} exists already")
        self.db.add(m.Market(**data.model_dump()))
        self._audit("create", "market", data.id, **data.model_dump())
        self._commit()
        return MarketOut.model_validate(data.model_dump())

    def markets(self, *, district: str | None = None, limit: int = 50, offset: int = 0) -> Page[MarketOut]:
        q = select(m.Market).order_by(m.Market.id)
        if district:
            q = q.where(m.Market.district_id == district)
        if self.who.scoped:
            q = q.where(self._scope_filter(m.Market.district_id, m.Market.id))
        return self._page(q, limit, offset, MarketOut)

    def add_stall(self, data: StallIn) -> StallOut:
        self.who.require("add_site")
        self._market(data.market_id)
        if self.db.scalar(select(m.Stall).where(m.Stall.market_id == data.market_id, m.Stall.code == data.code)):
            raise Conflict(f"stall {data.code!r} exists already in market {data.market_id!r}")
        stall = m.Stall(**data.model_dump())
        self.db.add(stall)
        self.db.flush()
        self._audit("create", "stall", stall.id, **data.model_dump())
        self._commit()
        return StallOut.model_validate(stall)

    def change_vendor(self, market_id: str, code: str, data: VendorIn) -> StallOut:
        """A stall changes hands: new vendor and licence; the audit log keeps who had it before."""
        self.who.require("add_site")
        self._market(market_id)
        stall = self.db.scalar(select(m.Stall).where(m.Stall.market_id == market_id, m.Stall.code == code))
        if stall is None:
            raise NotFound(NOT_FOUND.format(what="stall", key=f"{market_id}/{code}"))
        before = {"vendor": stall.vendor, "business_licence": stall.business_licence}
        stall.vendor, stall.business_licence = data.vendor, data.business_licence
        self._audit("change_vendor", "stall", stall.id, before=before, after=data.model_dump())
        self._commit()
        return StallOut.model_validate(stall)

    def stalls(self, *, market: str | None = None, limit: int = 50, offset: int = 0) -> Page[StallOut]:
        q = select(m.Stall).join(m.Stall.market).order_by(m.Stall.market_id, m.Stall.code)
        if market:
            q = q.where(m.Stall.market_id == market)
        if self.who.scoped:
            q = q.where(self._scope_filter(m.Market.district_id, m.Market.id))
        return self._page(q, limit, offset, StallOut)

    def add_base(self, data: BaseIn) -> BaseOut:
        self.who.require("add_site")
        self._district(data.district_id)
        if self.db.get(m.PlantingBase, data.id):
            raise Conflict(f"planting base {data.id!r} exists already")
        doc = data.model_dump()
        self.db.add(m.PlantingBase(**doc))
        self._audit("create", "base", data.id, **doc)
        self._commit()
        return BaseOut.model_validate(doc)

    def bases(self, *, district: str | None = None, limit: int = 50, offset: int = 0) -> Page[BaseOut]:
        q = select(m.PlantingBase).order_by(m.PlantingBase.id)
        if district:
            q = q.where(m.PlantingBase.district_id == district)
        if self.who.scoped:
            q = q.where(self._scope_filter(m.PlantingBase.district_id))
        return self._page(q, limit, offset, BaseOut)

    def add_vehicle(self, data: VehicleIn) -> VehicleOut:
        self.who.require("add_site")
        self._district(data.district_id)
        if self.db.get(m.Vehicle, data.id):
            raise Conflict(f"vehicle {data.id!r} exists already")
        self.db.add(m.Vehicle(**data.model_dump()))
        self._audit("create", "vehicle", data.id, **data.model_dump())
        self._commit()
        return VehicleOut.model_validate(data.model_dump())

    def vehicles(self, *, district: str | None = None, limit: int = 50, offset: int = 0) -> Page[VehicleOut]:
        q = select(m.Vehicle).order_by(m.Vehicle.id)
        if district:
            q = q.where(m.Vehicle.district_id == district)
        if self.who.scoped:
            q = q.where(self._scope_filter(m.Vehicle.district_id))
        return self._page(q, limit, offset, VehicleOut)

    # -- devices -------------------------------------------------------------------------------------
    def register(self, data: DeviceIn) -> DeviceOut:
        self.who.require("register")
        try:
            profile = builtin(data.profile)
        except ProfileError as exc:
            raise InvalidInput(
                f"profile {data.profile!r} is not a shipped profile (see `zhijian profiles list`)"
            ) from exc
        place = self._place_ids(data)
        if self.db.get(m.Device, data.id):
            raise Conflict(f"device {data.id!r} is registered already")
        fields = data.model_dump(exclude={"market_id", "stall_code", "base_id", "vehicle_id"})
        device = m.Device(**fields, **place, kind=profile.kind)
        self.db.add(device)
        self._audit("register", "device", data.id, **data.model_dump(exclude_none=True))
        self._commit()
        return self.device(data.id)

    def _place_ids(self, data: DeviceIn | DeviceUpdate) -> dict[str, Any]:
        """``{stall_id|base_id|vehicle_id: …}`` (the others None) for the place ``data`` names, if visible."""
        if data.market_id is not None:
            self._market(data.market_id)
            stall = self.db.scalar(
                select(m.Stall).where(m.Stall.market_id == data.market_id, m.Stall.code == data.stall_code)
            )
            if stall is None:
                raise NotFound(NOT_FOUND.format(what="stall", key=f"{data.market_id}/{data.stall_code}"))
            return {"stall_id": stall.id, "base_id": None, "vehicle_id": None}
        if data.base_id is not None:
            base = self.db.get(m.PlantingBase, data.base_id)
            if base is None or not self.who.sees(base.district_id):
                raise NotFound(NOT_FOUND.format(what="planting base", key=data.base_id))
            return {"stall_id": None, "base_id": base.id, "vehicle_id": None}
        vehicle = self.db.get(m.Vehicle, data.vehicle_id)
        if vehicle is None or not self.who.sees(vehicle.district_id):
            raise NotFound(NOT_FOUND.format(what="vehicle", key=data.vehicle_id))
        return {"stall_id": None, "base_id": None, "vehicle_id": vehicle.id}

    def update(self, device_id: str, data: DeviceUpdate) -> DeviceOut:
        """Change what is written on or installed in a device (firmware after an upgrade, a repair code, the
        approved software id) or move it to another place; the audit log keeps each old and new value."""
        self.who.require("register")
        d = self._device(device_id)
        changes: dict[str, Any] = {}
        for name in data.model_fields_set & {
            "serial_no", "production_code", "repair_code", "approved_software_id", "firmware_version"
        }:  # fmt: skip
            new = getattr(data, name)
            if new != getattr(d, name):
                changes[name] = [getattr(d, name), new]
                setattr(d, name, new)
        if data.names_a_place:
            district, market = _district_market(d)
            before = d.stall.code if d.stall else d.base_id or d.vehicle_id
            for name, value in self._place_ids(data).items():
                setattr(d, name, value)
            self.db.flush()
            self.db.refresh(d)
            after = d.stall.code if d.stall else d.base_id or d.vehicle_id
            if (district, market, before) != (*_district_market(d), after):
                changes["place"] = [[district, market, before], [*_district_market(d), after]]
        if not changes:
            return self.device(device_id)
        self._audit("update", "device", d.id, **changes)
        self._commit()
        return self.device(device_id)

    def _device(self, device_id: str) -> m.Device:
        d = self.db.get(m.Device, device_id)
        if d is None or not self.who.sees(*_district_market(d)):
            raise NotFound(NOT_FOUND.format(what="device", key=device_id))
        return d

    def _device_outs(self, devices: Sequence[m.Device]) -> list[DeviceOut]:
        """Devices with their current credential and last verification, in three queries for any number."""
        ids = [d.id for d in devices]
        creds = {
            c.device_id: c
            for c in self.db.scalars(
                select(m.Credential).where(m.Credential.device_id.in_(ids), m.Credential.retired_at.is_(None))
            )
        }
        newest = (
            select(func.max(m.Verification.id))
            .where(m.Verification.device_id.in_(ids))
            .group_by(m.Verification.device_id)
        )
        lasts = {v.device_id: v for v in self.db.scalars(select(m.Verification).where(m.Verification.id.in_(newest)))}
        return [self._device_out(d, creds.get(d.id), lasts.get(d.id)) for d in devices]

    @staticmethod
    def _device_out(d: m.Device, cred: m.Credential | None, last: m.Verification | None) -> DeviceOut:
        district, market = _district_market(d)
        place = Place(
            kind="stall" if d.stall else "base" if d.base else "vehicle",
            district_id=district,
            market_id=market,
            stall_code=d.stall.code if d.stall else None,
            base_id=d.base_id,
            vehicle_id=d.vehicle_id,
        )
        return DeviceOut(
            id=d.id,
            profile=d.profile,
            kind=d.kind,
            serial_no=d.serial_no,
            production_code=d.production_code,
            repair_code=d.repair_code,
            approved_software_id=d.approved_software_id,
            firmware_version=d.firmware_version,
            place=place,
            registered_at=d.registered_at,
            revoked_at=d.revoked_at,
            key_version=cred.key_version if cred else None,
            key_fingerprint=cred.key_fingerprint if cred else None,
            last_verification=VerificationOut.model_validate(last) if last else None,
        )

    def device(self, device_id: str) -> DeviceOut:
        return self._device_outs([self._device(device_id)])[0]

    def devices(
        self,
        *,
        district: str | None = None,
        market: str | None = None,
        kind: str | None = None,
        revoked: bool | None = None,
        due_by: dt.date | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[DeviceOut]:
        """Devices, filtered; ``due_by``: scales whose verification runs out by that day, never passed one, or
        whose last one failed — the technician's list of scales to visit."""
        q, district_col = self._devices_where(select(m.Device))
        q = q.order_by(m.Device.id)
        if district:
            q = q.where(district_col == district)
        if market:
            q = q.where(m.Market.id == market)
        if kind:
            q = q.where(m.Device.kind == kind)
        if revoked is not None:
            q = q.where(m.Device.revoked_at.is_not(None) if revoked else m.Device.revoked_at.is_(None))
        if due_by is not None:
            newest = select(m.Verification.device_id, func.max(m.Verification.id).label("id")).group_by(
                m.Verification.device_id
            )
            last = newest.subquery()
            q = (
                q.outerjoin(last, last.c.device_id == m.Device.id)
                .outerjoin(m.Verification, m.Verification.id == last.c.id)
                .where(
                    m.Device.kind == "scale",
                    m.Device.revoked_at.is_(None),
                    or_(m.Verification.id.is_(None), m.Verification.passed.is_(False), m.Verification.due_on <= due_by),
                )
            )
        return self._page(q, limit, offset, DeviceOut, convert_all=self._device_outs)

    def _devices_where(self, q: Select[Any]) -> tuple[Select[Any], Any]:
        """``q`` joined to each device's place and limited to the caller's scope; and the district column."""
        q = (
            q.outerjoin(m.Stall, m.Device.stall_id == m.Stall.id)
            .outerjoin(m.Market, m.Stall.market_id == m.Market.id)
            .outerjoin(m.PlantingBase, m.Device.base_id == m.PlantingBase.id)
            .outerjoin(m.Vehicle, m.Device.vehicle_id == m.Vehicle.id)
        )
        district_col = func.coalesce(m.Market.district_id, m.PlantingBase.district_id, m.Vehicle.district_id)
        if self.who.scoped:
            q = q.where(self._scope_filter(district_col, m.Market.id))
        return q, district_col

    def provision(self, device_id: str, data: ProvisionIn, *, action: str = "provision") -> ProvisionOut:
        """New credentials for a device (its first, or replacing the current ones) and its bundle.

        The password and key are in the returned bundle only; the registry keeps the password's hash and
        the key's version and fingerprint. Old credentials are retired, so the broker refuses them once
        its files are applied."""
        self.who.require("provision")
        if self.bundles is None:
            raise InvalidInput("this registry has no key secret configured; provisioning is not possible")
        d = self._device(device_id)
        if d.revoked_at is not None:
            raise Conflict(f"device {device_id!r} is revoked; register a new device id for the replacement")
        now = m.utcnow()
        current = self.db.scalars(
            select(m.Credential).where(m.Credential.device_id == d.id).order_by(m.Credential.key_version)
        ).all()
        for c in current:
            if c.retired_at is None:
                c.retired_at = now
        version = (current[-1].key_version if current else 0) + 1
        key = derive_integrity_key(self.bundles.key_secret, d.id, version)
        password = new_device_password()
        fingerprint = key_fingerprint(key)
        self.db.add(
            m.Credential(
                device_id=d.id, key_version=version, password_hash=hash_password(password), key_fingerprint=fingerprint
            )
        )
        self._audit(action, "device", d.id, key_version=version, key_fingerprint=fingerprint)
        self._commit()
        bundle = self._bundle(d, key, password, data)
        return ProvisionOut(
            device_id=d.id, key_version=version, key_fingerprint=fingerprint, bundle=bundle, qr_text=qr_text(bundle)
        )

    def _bundle(self, d: m.Device, key: bytes, password: str, data: ProvisionIn) -> dict[str, Any]:
        assert self.bundles is not None
        b = self.bundles
        broker: dict[str, Any] = {"host": b.broker_host, "port": b.broker_port, "username": d.id, "password": password}
        if b.ca_pem:
            broker["tls"] = {"ca_pem": b.ca_pem}
            if b.client_ca is not None:
                cert_pem, key_pem = b.client_ca.issue_pem(d.id, client=True, days=825)
                broker["tls"] |= {"cert_pem": cert_pem, "key_pem": key_pem}
        source: dict[str, Any] = {"profile": d.profile, "port": data.port or "/dev/ttyUSB0"}
        if builtin(d.profile).protocol == "modbus":
            source["unit_id"] = 1
        return {
            "device_id": d.id,
            "key_hex": key.hex(),
            "broker": broker,
            "state_dir": b.state_dir.format(device=d.id),
            "sources": [source],
        }

    def revoke(self, device_id: str, data: RevokeIn) -> RevocationOut:
        """Revoke a device: its credentials are retired (the broker refuses it and ends its session once the
        files are applied) and the ingest rejects its records from then on."""
        self.who.require("revoke")
        d = self._device(device_id)
        if d.revoked_at is not None:
            raise Conflict(f"device {device_id!r} was revoked already, at {d.revoked_at.isoformat()}")
        now = m.utcnow()
        d.revoked_at = now
        for c in self.db.scalars(select(m.Credential).where(m.Credential.device_id == d.id)):
            c.retired_at = c.retired_at or now
        rev = m.Revocation(device_id=d.id, reason=data.reason, revoked_by=self.who.name, revoked_at=now)
        self.db.add(rev)
        self._audit("revoke", "device", d.id, reason=data.reason)
        self._commit()
        return RevocationOut.model_validate(rev)

    def verify(self, device_id: str, data: VerificationIn) -> VerificationOut:
        """Record a verification from the readings taken on site. A passed one becomes the scale's facts for
        the anti-cheat engine (coefficient, zero, counters, due date) and restarts its baselines."""
        self.who.require("verify")
        d = self._device(device_id)
        metrology = builtin(d.profile).metrology
        if metrology is None and None in (data.accuracy_class, data.max_g, data.e_mg):
            raise InvalidInput(f"profile {d.profile!r} has no metrology: give accuracy_class, max_g and e_mg")
        cls = data.accuracy_class or (metrology.accuracy_class if metrology else "III")
        e_mg = data.e_mg or (metrology.e_mg if metrology else 0)
        readings = judge_readings(data.readings, accuracy_class=cls, e_mg=e_mg)
        row = m.Verification(
            device_id=d.id,
            **data.model_dump(exclude={"readings", "accuracy_class", "max_g", "e_mg", "d_mg", "due_on"}),
            due_on=data.due_on or data.verified_on + VERIFICATION_PERIOD,
            accuracy_class=cls,
            max_g=data.max_g or (metrology.max_g if metrology else 0),
            e_mg=e_mg,
            d_mg=data.d_mg or (metrology.d_mg if metrology else e_mg),
            reference_weights=[r.model_dump() for r in readings],
            passed=all(r.within_mpe for r in readings),
        )
        self.db.add(row)
        self.db.flush()
        self._audit(
            "verify", "device", d.id, verification_id=row.id, certificate_no=data.certificate_no, passed=row.passed
        )
        self._commit()
        return VerificationOut.model_validate(row)

    def verifications(self, device_id: str, *, limit: int = 50, offset: int = 0) -> Page[VerificationOut]:
        self._device(device_id)
        q = select(m.Verification).where(m.Verification.device_id == device_id).order_by(m.Verification.id.desc())
        return self._page(q, limit, offset, VerificationOut)

    # -- audit and tokens ----------------------------------------------------------------------------
    def audit(
        self,
        *,
        entity_id: str | None = None,
        actor: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[AuditOut]:
        """The audit log, newest first; ``since`` inclusive, ``until`` exclusive."""
        self.who.require("read_audit")
        q = select(m.AuditEntry).order_by(m.AuditEntry.id.desc())
        if entity_id:
            q = q.where(m.AuditEntry.entity_id == entity_id)
        if actor:
            q = q.where(m.AuditEntry.actor == actor)
        if since is not None:
            q = q.where(m.AuditEntry.at >= _utc(since))
        if until is not None:
            q = q.where(m.AuditEntry.at < _utc(until))
        if self.who.scoped:  # a supervisor sees the history of the devices they can see
            visible, _ = self._devices_where(select(m.Device.id))
            q = q.where(m.AuditEntry.entity == "device", m.AuditEntry.entity_id.in_(visible))
        return self._page(q, limit, offset, AuditOut)

    def create_token(self, data: TokenIn) -> TokenCreated:
        self.who.require("manage_tokens")
        token_id, secret_hash, text = new_api_token()
        expires = m.utcnow() + dt.timedelta(days=data.expires_days) if data.expires_days else None
        row = m.ApiToken(
            id=token_id,
            name=data.name,
            role=data.role.value,
            secret_hash=secret_hash,
            districts=data.districts,
            markets=data.markets,
            expires_at=expires,
        )
        self.db.add(row)
        self._audit("create", "token", token_id, name=data.name, role=data.role.value)
        self._commit()
        return TokenCreated(**TokenOut.model_validate(row).model_dump(), token=text)

    def tokens(self, *, limit: int = 50, offset: int = 0) -> Page[TokenOut]:
        self.who.require("manage_tokens")
        return self._page(select(m.ApiToken).order_by(m.ApiToken.created_at), limit, offset, TokenOut)

    def revoke_token(self, token_id: str) -> TokenOut:
        self.who.require("manage_tokens")
        row = self.db.get(m.ApiToken, token_id)
        if row is None:
            raise NotFound(NOT_FOUND.format(what="token", key=token_id))
        if row.revoked_at is None:
            row.revoked_at = m.utcnow()
            self._audit("revoke", "token", token_id)
            self._commit()
        return TokenOut.model_validate(row)


def _utc(t: dt.datetime) -> dt.datetime:
    """A time without a zone is taken as UTC (what the API documents)."""
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _district_market(d: m.Device) -> tuple[str, str | None]:
    if d.stall is not None:
        return d.stall.market.district_id, d.stall.market_id
    if d.base is not None:
        return d.base.district_id, None
    assert d.vehicle is not None
    return d.vehicle.district_id, None


def bootstrap_admin_token(db: Session, name: str, actor: str) -> str:
    """The first admin token (``zhijian registry init``); returns its text, shown once."""
    reg = Registry(db, Principal(actor, Role.ADMIN))
    return reg.create_token(TokenIn(name=name, role=Role.ADMIN)).token


def read_ca(path: Path | None) -> str | None:
    return path.read_text(encoding="ascii") if path else None
