"""What every registry operation shares: the caller, the session, the audit entry written in the same
transaction as the change, scope checks, pagination, and where a device is."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from device_profiles import did_you_mean

from . import models as m
from .auth import Principal
from .errors import Conflict, NotFound
from .local_ca import LocalCA
from .schemas import (
    DeviceIn,
    DeviceUpdate,
    Page,
)

VERIFICATION_PERIOD = dt.timedelta(days=365)  # compulsory, about once a year [report]; configurable
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


class RegistryBase:
    """One caller's view of the registry in one database session, and what every operation shares."""

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

    def _device(self, device_id: str) -> m.Device:
        d = self.db.get(m.Device, device_id)
        if d is None or not self.who.sees(*district_market(d)):
            raise NotFound(NOT_FOUND.format(what="device", key=device_id) + self._close_device_ids(device_id))
        return d

    def _close_device_ids(self, device_id: str) -> str:
        """ "; did you mean …?" over the ids of the devices the caller sees (never one outside its scope).
        Only on the error path; the ids share the mistyped one's first letter, which bounds the scan."""
        q, _ = self._devices_where(select(m.Device.id).where(m.Device.id.startswith(device_id[:1], autoescape=True)))
        return did_you_mean(device_id, self.db.scalars(q.limit(100_000)))

    def _devices_where(self, q: Select[Any]) -> tuple[Select[Any], Any]:
        """``q`` joined to each device's place and limited to the caller's scope; and the district column."""
        q = with_places(q)
        district_col = func.coalesce(m.Market.district_id, m.PlantingBase.district_id, m.Vehicle.district_id)
        if self.who.scoped:
            q = q.where(self._scope_filter(district_col, m.Market.id))
        return q, district_col


def with_places(q: Select[Any]) -> Select[Any]:
    """``q`` (over devices) outer-joined to each device's stall and market, planting base and vehicle."""
    return (
        q.outerjoin(m.Stall, m.Device.stall_id == m.Stall.id)
        .outerjoin(m.Market, m.Stall.market_id == m.Market.id)
        .outerjoin(m.PlantingBase, m.Device.base_id == m.PlantingBase.id)
        .outerjoin(m.Vehicle, m.Device.vehicle_id == m.Vehicle.id)
    )


def as_utc(t: dt.datetime) -> dt.datetime:
    """A time without a zone is taken as UTC (what the API documents)."""
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def district_market(d: m.Device) -> tuple[str, str | None]:
    if d.stall is not None:
        return d.stall.market.district_id, d.stall.market_id
    if d.base is not None:
        return d.base.district_id, None
    assert d.vehicle is not None
    return d.vehicle.district_id, None
