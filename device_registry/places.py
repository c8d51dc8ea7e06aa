"""Where devices are: districts, markets and their stalls (vendors with verified licences), planting
bases and rapid-test vehicles. Districts, markets, stalls and bases may have a WGS-84 position, given when
they are added or set later (``set_*_position``); each change is in the audit log."""

from __future__ import annotations

from sqlalchemy import or_, select

from . import models as m
from .base import NOT_FOUND, RegistryBase
from .errors import Conflict, NotFound
from .schemas import (
    BaseIn,
    BaseOut,
    DistrictIn,
    DistrictOut,
    MarketIn,
    MarketOut,
    Page,
    PositionIn,
    StallIn,
    StallOut,
    VehicleIn,
    VehicleOut,
    VendorIn,
)


class Places(RegistryBase):
    """Districts, markets, stalls (and their vendors), planting bases and rapid-test vehicles."""

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

    # -- positions (WGS-84) --------------------------------------------------------------------------
    def _position(self, row: m.District | m.Market | m.Stall | m.PlantingBase, entity: str, key: object,
                  data: PositionIn) -> None:  # fmt: skip
        before = {"lat": row.lat, "lon": row.lon}
        row.lat, row.lon = data.lat, data.lon
        self._audit("set_position", entity, key, before=before, after=data.model_dump())
        self._commit()

    def set_district_position(self, district_id: str, data: PositionIn) -> DistrictOut:
        self.who.require("add_district")
        d = self._district(district_id)
        self._position(d, "district", d.id, data)
        return DistrictOut.model_validate(d)

    def set_market_position(self, market_id: str, data: PositionIn) -> MarketOut:
        self.who.require("add_market")
        mk = self._market(market_id)
        self._position(mk, "market", mk.id, data)
        return MarketOut.model_validate(mk)

    def set_stall_position(self, market_id: str, code: str, data: PositionIn) -> StallOut:
        self.who.require("add_site")
        self._market(market_id)
        stall = self.db.scalar(select(m.Stall).where(m.Stall.market_id == market_id, m.Stall.code == code))
        if stall is None:
            raise NotFound(NOT_FOUND.format(what="stall", key=f"{market_id}/{code}"))
        self._position(stall, "stall", stall.id, data)
        return StallOut.model_validate(stall)

    def set_base_position(self, base_id: str, data: PositionIn) -> BaseOut:
        self.who.require("add_site")
        base = self.db.get(m.PlantingBase, base_id)
        if base is None or not self.who.sees(base.district_id):
            raise NotFound(NOT_FOUND.format(what="planting base", key=base_id))
        self._position(base, "base", base.id, data)
        return BaseOut.model_validate(base)
