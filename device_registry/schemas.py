"""What goes in and out of the registry (API bodies, CLI ``--json`` output). Every string and number is
bounded as its column is, so bad input is refused with a 422 before it reaches the database."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, computed_field, model_validator
from pydantic.config import JsonDict, JsonValue
from pydantic.json_schema import SkipJsonSchema

from device_profiles.bundle import Bundle
from device_profiles.topics import DEVICE_ID_RE

from .auth import Role
from .load_coverage import coverage_warnings
from .placement import profiles_allowed_at
from .wire_types import (
    JSON_INTEGER,
    JSON_NUMBER,
    PRINTABLE,
    Code,
    DayIn2000s,
    DayIn2000sOr2100,
    Int32,
    Number,
    Plate,
    ProfileId,
    Reason,
    Slug,
    StallCode,
    Text,
    Uscc,
)

# ids in the broker's service-account namespace (broker_files.SERVICE_PREFIX) are no device's
DeviceId = Annotated[
    str, StringConstraints(pattern=DEVICE_ID_RE.pattern), Field(json_schema_extra={"not": {"pattern": "^zhijian-"}})
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


Lat = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False, description="WGS-84 latitude, degrees"), JSON_NUMBER]
Lon = Annotated[
    float, Field(ge=-180, le=180, allow_inf_nan=False, description="WGS-84 longitude, degrees"), JSON_NUMBER
]
# both or neither, as JSON Schema too (so that the published document states it)
_BOTH_OR_NEITHER: list[JsonValue] = [
    {"required": ["lat", "lon"], "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}}},
    {"properties": {"lat": {"type": "null"}, "lon": {"type": "null"}}},
]


class _Positioned(_In):
    """A place that may have a position: WGS-84 ``lat`` and ``lon`` (as GPS and OpenStreetMap give them; a
    Chinese basemap needs GCJ-02, :mod:`device_profiles.geo`), both or neither."""

    model_config = ConfigDict(json_schema_extra={"anyOf": _BOTH_OR_NEITHER})

    lat: Lat | None = None
    lon: Lon | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> _Positioned:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give a position as lat and lon together (WGS-84 degrees), or neither")
        return self


class PositionIn(_Positioned):
    """A place's position (WGS-84 degrees); both null (or absent) removes it."""


class DistrictIn(_Positioned):
    id: Slug
    name: Text


class DistrictOut(_Out, DistrictIn):
    pass


class MarketIn(_Positioned):
    id: Slug
    name: Text
    district_id: Slug
    operator: Text
    operator_licence: Uscc | None = None


class MarketOut(_Out, MarketIn):
    pass


class StallIn(_Positioned):
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
    low: Number | None = None
    high: Number | None = None
    hysteresis: Annotated[float, Field(ge=0, allow_inf_nan=False), JSON_NUMBER] = 0.0
    min_duration_s: Annotated[float, Field(ge=0, le=7 * 86400, allow_inf_nan=False), JSON_NUMBER] = 600.0

    @model_validator(mode="after")
    def _ordered(self) -> LimitIn:
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        return self


class BaseIn(_Positioned):
    id: Slug
    name: Text
    district_id: Slug
    crops: list[Code] = Field(default_factory=list, max_length=20)
    alert_limits: dict[Annotated[str, StringConstraints(pattern=r"^[a-z]+\.[a-z0-9_]+$")], LimitIn] = Field(
        default_factory=dict,
        max_length=50,
        description="per channel, e.g. soil.moisture_pct",
        json_schema_extra={"additionalProperties": False},  # keys are channels: nothing but the pattern
    )


class BaseOut(_Out, BaseIn):
    pass


class VehicleIn(_In):
    id: Slug
    plate: Plate
    district_id: Slug


class VehicleOut(_Out, VehicleIn):
    pass


_PLACE_FIELDS = ("market_id", "stall_code", "base_id", "vehicle_id")


def _place(*given: str) -> JsonDict:
    """The JSON Schema of naming exactly these place fields (the others absent or null)."""
    props: JsonDict = {name: {"type": "string"} if name in given else {"type": "null"} for name in _PLACE_FIELDS}
    return {"required": list(given), "properties": props}


# the place rules as JSON Schema, so that the published document states them too
_ONE_PLACE: list[JsonValue] = [_place("market_id", "stall_code"), _place("base_id"), _place("vehicle_id")]
_PLACE_KINDS = ("stall", "base", "vehicle")  # in the order of _ONE_PLACE


def _one_place_for_its_kind(schema: JsonDict) -> None:
    """Registering: exactly one place, and one where the profile's kind of device may be (:mod:`.placement`);
    read when the document is made, not at import."""
    alternatives: list[JsonValue] = []
    for alternative, kind in zip(_ONE_PLACE, _PLACE_KINDS, strict=True):
        assert isinstance(alternative, dict) and isinstance(alternative["properties"], dict)
        allowed: list[JsonValue] = list(profiles_allowed_at(kind))
        properties: JsonDict = {**alternative["properties"], "profile": {"enum": allowed}}
        alternatives.append({**alternative, "properties": properties})
    schema["anyOf"] = alternatives


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

    model_config = ConfigDict(json_schema_extra=_one_place_for_its_kind)

    id: DeviceId
    profile: ProfileId
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

    model_config = ConfigDict(json_schema_extra={"anyOf": [*_ONE_PLACE, _place()]})

    serial_no: Code | SkipJsonSchema[None] = None  # may change, not be removed
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

    reference_g: Annotated[float, Field(gt=0, le=10_000_000, allow_inf_nan=False), JSON_NUMBER]
    indicated_g: Annotated[float, Field(ge=-10_000_000, le=10_000_000, allow_inf_nan=False), JSON_NUMBER]


class VerificationIn(_In):
    certificate_no: Code
    verifying_body: Text
    verified_on: DayIn2000s = Field(description="2000-01-01 to 2099-12-31")
    due_on: DayIn2000sOr2100 | None = Field(
        None, description="2000-01-01 to 2100-12-31; default: one year after verified_on"
    )
    seal_no: Code
    technician: Text
    coefficient: Annotated[float, Field(gt=0, le=1e12, allow_inf_nan=False), JSON_NUMBER]
    zero_counts: Int32 | None = None
    calibration_events: Int32
    configuration_events: Int32
    software_id: Code | None = None
    readings: list[ReadingIn] = Field(min_length=1, max_length=50)
    accuracy_class: Literal["I", "II", "III", "IIII"] | None = Field(None, description="default: the profile's")
    max_g: Annotated[int, Field(gt=0, le=10_000_000), JSON_INTEGER] | None = None
    e_mg: Annotated[int, Field(gt=0, le=10_000_000), JSON_INTEGER] | None = None
    d_mg: Annotated[int, Field(gt=0, le=10_000_000), JSON_INTEGER] | None = None


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
    due_on: dt.date | None = Field(description="the next verification's; none when this one failed")
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

    @computed_field(description="ranges of the scale its loads left out (several loads up to Max are needed)")  # type: ignore[prop-decorator]
    @property
    def warnings(self) -> list[str]:
        return coverage_warnings(
            [r.reference_g for r in self.reference_weights],
            accuracy_class=self.accuracy_class,
            e_mg=self.e_mg,
            max_g=self.max_g,
        )


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
    port: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=PRINTABLE)] | None = Field(
        None, description="where the agent reads the device: serial device, socket:// or tcp:// URL"
    )


BrokerState = Literal["confirmed", "written", "off", "failed"]


class BrokerOut(BaseModel):
    """What became of the broker's copy of a credential change."""

    state: BrokerState = Field(
        description="confirmed: the broker works from the new files; written: files written, not confirmed "
        "(no broker check configured); off: this registry keeps no broker files; failed: the broker has "
        "not applied the change (detail says why)"
    )
    detail: str


class ProvisionOut(BaseModel):
    device_id: str
    key_version: int
    key_fingerprint: str
    bundle: Bundle = Field(description="the agent's bundle; holds the password and key: shown once")
    qr_text: str = Field(description="the same bundle as text for a QR code")
    # a failed broker update does not withhold the bundle: the old credentials are retired already
    broker: BrokerOut = Field(default_factory=lambda: BrokerOut(state="off", detail="no broker files kept"))


class RevokeIn(_In):
    reason: Reason


class RevocationOut(_Out):
    device_id: str
    reason: str
    revoked_by: str
    revoked_at: dt.datetime
    broker: BrokerOut = Field(default_factory=lambda: BrokerOut(state="off", detail="no broker files kept"))


TOKEN_DAYS = 90  # what a token lives unless told otherwise
TOKEN_DAYS_MAX = 3650
_SCOPED: list[JsonValue] = [
    {"properties": {"role": {"enum": [r.value for r in Role if r != Role.SUPERVISOR]}}},
    {"required": ["districts"], "properties": {"districts": {"minItems": 1}}},
    {"required": ["markets"], "properties": {"markets": {"minItems": 1}}},
]


class TokenIn(_In):
    """A new API token. Every token expires; only ``zhijian registry init --no-expiry`` (on the registry's
    host, recorded in the audit log) makes one that does not."""

    model_config = ConfigDict(json_schema_extra={"anyOf": _SCOPED})

    name: Text
    role: Role
    districts: list[Slug] = Field(default_factory=list, max_length=100)
    markets: list[Slug] = Field(default_factory=list, max_length=100)
    expires_days: Annotated[int, Field(ge=1, le=TOKEN_DAYS_MAX), JSON_INTEGER] = Field(
        TOKEN_DAYS, description=f"days until it expires (default {TOKEN_DAYS}; tokens always expire)"
    )

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


class ValidationProblem(BaseModel):
    loc: list[str | int] = Field(description="where: body, query or path, then the field")
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class ValidationErrorOut(BaseModel):
    """A 422: FastAPI's shape, also for the rules the registry checks beyond the schema."""

    detail: list[ValidationProblem]


class WhoAmI(BaseModel):
    name: str
    role: Role
    districts: list[str]
    markets: list[str]
