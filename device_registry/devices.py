"""Devices: registering one at its place, updating or moving it, listing with filters (including the
scales due for verification), and recording verifications judged against the MPE."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select

from device_profiles import ProfileError, builtin, builtin_profiles, did_you_mean

from . import models as m
from .base import VERIFICATION_PERIOD, RegistryBase, district_market
from .broker_files import SERVICE_PREFIX, reserved_name
from .errors import Conflict, InvalidInput
from .placement import placement_problem
from .schemas import (
    DeviceIn,
    DeviceOut,
    DeviceUpdate,
    Page,
    Place,
    VerificationIn,
    VerificationOut,
)
from .verification import judge_readings


class Devices(RegistryBase):
    """Registering, updating, listing and verifying devices."""

    def register(self, data: DeviceIn) -> DeviceOut:
        self.who.require("register")
        if reserved_name(data.id):
            raise InvalidInput(
                f"device id {data.id!r} is reserved: ids starting with {SERVICE_PREFIX!r} name the broker's "
                "service accounts (the ingest, admins), whose sessions no device may hold"
            )
        try:
            profile = builtin(data.profile)
        except ProfileError as exc:
            hint = did_you_mean(data.profile, builtin_profiles())
            raise InvalidInput(
                f"profile {data.profile!r} is not a shipped profile{hint} (see `zhijian profiles list`)"
            ) from exc
        place = self._place_ids(data)
        _check_placement(data.profile, profile.kind, place)
        if self.db.get(m.Device, data.id):
            raise Conflict(f"device {data.id!r} is registered already")
        fields = data.model_dump(exclude={"market_id", "stall_code", "base_id", "vehicle_id"})
        device = m.Device(**fields, **place, kind=profile.kind)
        self.db.add(device)
        self._audit("register", "device", data.id, **data.model_dump(exclude_none=True))
        self._commit()
        return self.device(data.id)

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
            district, market = district_market(d)
            before = d.stall.code if d.stall else d.base_id or d.vehicle_id
            place = self._place_ids(data)
            _check_placement(d.profile, d.kind, place)
            for name, value in place.items():
                setattr(d, name, value)
            self.db.flush()
            self.db.refresh(d)
            after = d.stall.code if d.stall else d.base_id or d.vehicle_id
            if (district, market, before) != (*district_market(d), after):
                changes["place"] = [[district, market, before], [*district_market(d), after]]
        if not changes:
            return self.device(device_id)
        self._audit("update", "device", d.id, **changes)
        self._commit()
        return self.device(device_id)

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
        district, market = district_market(d)
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

    def verify(self, device_id: str, data: VerificationIn) -> VerificationOut:
        """Record a verification from the readings taken on site. A passed one becomes the scale's facts for
        the anti-cheat engine (coefficient, zero, counters, due date) and restarts its baselines; a failed one
        is recorded with no due date (``due_on`` given is ignored) and changes no facts."""
        self.who.require("verify")
        d = self._device(device_id)
        metrology = builtin(d.profile).metrology
        if metrology is None and None in (data.accuracy_class, data.max_g, data.e_mg):
            raise InvalidInput(f"profile {d.profile!r} has no metrology: give accuracy_class, max_g and e_mg")
        cls = data.accuracy_class or (metrology.accuracy_class if metrology else "III")
        e_mg = data.e_mg or (metrology.e_mg if metrology else 0)
        readings = judge_readings(data.readings, accuracy_class=cls, e_mg=e_mg)
        passed = all(r.within_mpe for r in readings)
        row = m.Verification(
            device_id=d.id,
            **data.model_dump(exclude={"readings", "accuracy_class", "max_g", "e_mg", "d_mg", "due_on"}),
            # only a pass earns a next due date: a failed scale is due again as soon as it is repaired
            due_on=(data.due_on or data.verified_on + VERIFICATION_PERIOD) if passed else None,
            accuracy_class=cls,
            max_g=data.max_g or (metrology.max_g if metrology else 0),
            e_mg=e_mg,
            d_mg=data.d_mg or (metrology.d_mg if metrology else e_mg),
            reference_weights=[r.model_dump() for r in readings],
            passed=passed,
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


def _check_placement(profile_id: str, kind: str, place: dict[str, Any]) -> None:
    """Refuse a device at a kind of place it does not belong at (a soil sensor at a stall)."""
    where = "stall" if place["stall_id"] is not None else "base" if place["base_id"] is not None else "vehicle"
    problem = placement_problem(profile_id, kind, where)
    if problem:
        raise InvalidInput(problem)
