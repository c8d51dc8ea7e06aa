"""What goes in and out of the registry (API bodies, CLI ``--json`` output). Every string and number is
bounded as its column is, so bad input is refused with a 422 before it reaches the database."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from device_profiles.topics import DEVICE_ID_RE

from .auth import Role
from .uscc import uscc_problem

_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=_PRINTABLE)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=_PRINTABLE)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_RE.pattern)]
Int32 = Annotated[int, Field(ge=0, le=2**31 - 1)]
StallCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$")]


def _uscc(value: str) -> str:
    problem = uscc_problem(value)
    if problem:
        raise ValueError(f"not a unified social credit code: {problem}")
    return value


Uscc = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[0-9A-HJ-NPQRTUWXYa-hj-npqrtuwxy]{18}$"),
    AfterValidator(_uscc),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class DistrictIn(_In):
    id: Slug
    name: Text


class DistrictOut(_Out, DistrictIn):
    pass


class MarketIn(_In):
    id: Slug
    name: Text
    district_id: Slug
    operator: Text
    operator_licence: Uscc | None = None


class MarketOut(_Out, MarketIn):
    pass


class StallIn(_In):
    market_id: Slug
    code: StallCode
    vendor: Text
    business_licence: Uscc


class StallOut(_Out, StallIn):
    id: int


class VendorIn(_In):
    """A stall's new vendor (the stall changed hands)."""

    vendor: Text
    business_licence: Uscc


class LimitIn(_In):
    low: Annotated[float, Field(allow_inf_nan=False)] | None = None
    high: Annotated[float, Field(allow_inf_nan=False)] | None = None
    hysteresis: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    min_duration_s: Annotated[float, Field(ge=0, le=7 * 86400, allow_inf_nan=False)] = 600.0

    @model_validator(mode="after")
    def _ordered(self) -> LimitIn:
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        return self


class BaseIn(_In):
    id: Slug
    name: Text
    district_id: Slug
    crops: list[Code] = Field(default_factory=list, max_length=20)
    alert_limits: dict[Annotated[str, StringConstraints(pattern=r"^[a-z]+\.[a-z0-9_]+$")], LimitIn] = Field(
        default_factory=dict, max_length=50, description="per channel, e.g. soil.moisture_pct"
    )


class BaseOut(_Out, BaseIn):
    pass


class VehicleIn(_In):
    id: Slug
    plate: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=16, pattern=_PRINTABLE)]
    district_id: Slug


class VehicleOut(_Out, VehicleIn):
    pass


class _PlaceIn(_In):
    """Where a device is: a stall (market + stall code), a planting base or a vehicle."""

    market_id: Slug | None = None
    stall_code: StallCode | None = None
    base_id: Slug | None = None
    vehicle_id: Slug | None = None

    def _places_named(self) -> int:
        if (self.market_id is None) != (self.stall_code is None):
            raise ValueError("a stall is named by market_id and stall_code together")
        return sum(x is not None for x in (self.market_id, self.base_id, self.vehicle_id))

    @property
    def names_a_place(self) -> bool:
        return self._places_named() == 1


class DeviceIn(_PlaceIn):
    """A device to register, at exactly one place: a stall (market + stall code), a base or a vehicle."""

    id: DeviceId
    profile: Slug
    serial_no: Code
    production_code: Code | None = None
    repair_code: Code | None = None
    approved_software_id: Code | None = None
    firmware_version: Code | None = None

    @model_validator(mode="after")
    def _one_place(self) -> DeviceIn:
        if self._places_named() != 1:
            raise ValueError("give exactly one place: market_id and stall_code, base_id, or vehicle_id")
        return self


class DeviceUpdate(_PlaceIn):
    """What may change on a registered device; a place (as for registering) moves it there."""

    serial_no: Code | None = None
    production_code: Code | None = None
    repair_code: Code | None = None
    approved_software_id: Code | None = None
    firmware_version: Code | None = None

    @model_validator(mode="after")
    def _at_most_one_place(self) -> DeviceUpdate:
        if self._places_named() > 1:
            raise ValueError("give at most one place: market_id and stall_code, base_id, or vehicle_id")
        if self.serial_no is None and "serial_no" in self.model_fields_set:
            raise ValueError("serial_no cannot be removed")
        return self


class Place(BaseModel):
    kind: Literal["stall", "base", "vehicle"]
    district_id: str
    market_id: str | None = None
    stall_code: str | None = None
    base_id: str | None = None
    vehicle_id: str | None = None


class ReadingIn(_In):
    """One check on site: a reference weight and what the scale indicated."""

    reference_g: Annotated[float, Field(gt=0, le=10_000_000, allow_inf_nan=False)]
    indicated_g: Annotated[float, Field(ge=-10_000_000, le=10_000_000, allow_inf_nan=False)]


class VerificationIn(_In):
    certificate_no: Code
    verifying_body: Text
    verified_on: Annotated[dt.date, Field(ge=dt.date(2000, 1, 1), le=dt.date(2100, 1, 1))]
    due_on: Annotated[dt.date, Field(ge=dt.date(2000, 1, 1), le=dt.date(2101, 1, 1))] | None = Field(
        None, description="default: one year after verified_on"
    )
    seal_no: Code
    technician: Text
    coefficient: Annotated[float, Field(gt=0, le=1e12, allow_inf_nan=False)]
    zero_counts: Int32 | None = None
    calibration_events: Int32
    configuration_events: Int32
    software_id: Code | None = None
    readings: list[ReadingIn] = Field(min_length=1, max_length=50)
    accuracy_class: Literal["I", "II", "III", "IIII"] | None = Field(None, description="default: the profile's")
    max_g: Annotated[int, Field(gt=0, le=10_000_000)] | None = None
    e_mg: Annotated[int, Field(gt=0, le=10_000_000)] | None = None
    d_mg: Annotated[int, Field(gt=0, le=10_000_000)] | None = None


class ReadingOut(BaseModel):
    reference_g: float
    indicated_g: float
    error_g: float
    mpe_g: float
    within_mpe: bool


class VerificationOut(_Out):
    id: int
    device_id: str
    certificate_no: str
    verifying_body: str
    verified_on: dt.date
    due_on: dt.date
    seal_no: str
    technician: str
    accuracy_class: str
    max_g: int
    e_mg: int
    d_mg: int
    coefficient: float
    zero_counts: int | None
    calibration_events: int
    configuration_events: int
    software_id: str | None
    reference_weights: list[ReadingOut]
    passed: bool
    recorded_at: dt.datetime


class DeviceOut(BaseModel):
    id: str
    profile: str
    kind: str
    serial_no: str
    production_code: str | None
    repair_code: str | None
    approved_software_id: str | None
    firmware_version: str | None
    place: Place
    registered_at: dt.datetime
    revoked_at: dt.datetime | None
    key_version: int | None = Field(description="None until provisioned")
    key_fingerprint: str | None
    last_verification: VerificationOut | None


class ProvisionIn(_In):
    port: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_PRINTABLE)] | None = Field(
        None, description="where the agent reads the device: serial device, socket:// or tcp:// URL"
    )


class ProvisionOut(BaseModel):
    device_id: str
    key_version: int
    key_fingerprint: str
    bundle: dict[str, Any] = Field(description="the agent's bundle; holds the password and key: shown once")
    qr_text: str = Field(description="the same bundle as text for a QR code")


class RevokeIn(_In):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500, pattern=_PRINTABLE)]


class RevocationOut(_Out):
    device_id: str
    reason: str
    revoked_by: str
    revoked_at: dt.datetime


class TokenIn(_In):
    name: Text
    role: Role
    districts: list[Slug] = Field(default_factory=list, max_length=100)
    markets: list[Slug] = Field(default_factory=list, max_length=100)
    expires_days: Annotated[int, Field(ge=1, le=3650)] | None = None

    @model_validator(mode="after")
    def _supervisors_are_scoped(self) -> TokenIn:
        if self.role == Role.SUPERVISOR and not (self.districts or self.markets):
            raise ValueError("a supervisor's token must name the districts or markets they supervise")
        return self


class TokenOut(_Out):
    id: str
    name: str
    role: Role
    districts: list[str]
    markets: list[str]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="the bearer token; shown once, only its hash is kept")


class AuditOut(_Out):
    id: int
    at: dt.datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    detail: dict[str, Any]


class ErrorOut(BaseModel):
    detail: str = Field(description="why the call was refused")


class WhoAmI(BaseModel):
    name: str
    role: Role
    districts: list[str]
    markets: list[str]
