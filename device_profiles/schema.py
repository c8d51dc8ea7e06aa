"""The device profile format: declarative data describing one device model, validated when loaded.

A profile says how to talk to the device (transport, protocol section), what it is metrologically
(scales), and which record types it produces. The edge agent's drivers and firmware_sim's simulators are
both built from the same profile objects, so a driver tested against a simulator talks to the device.
Unknown keys are refused (``extra="forbid"``) so that a typo in a profile is an error, not a default.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .records import RECORD_TYPES

COMMAND_PATTERN = r"^[A-Z@][A-Z0-9]{0,5}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SerialSettings(_Strict):
    """Line settings of a serial port (pyserial names)."""

    baudrate: int = Field(9600, gt=0)
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    timeout_s: float = Field(1.0, gt=0, le=30)


# Class III limits on n = Max / e from OIML R76-1 (docs/anti_cheat.md, "Tolerances from the law"):
# (smallest e in mg, largest e in mg, smallest n, largest n)
_CLASS_III_N = ((100, 2_000, 100, 10_000), (5_000, 10**9, 500, 10_000))


class Metrology(_Strict):
    """Metrological characteristics of a weighing instrument."""

    accuracy_class: Literal["I", "II", "III", "IIII"]
    max_g: int = Field(gt=0)
    min_g: int = Field(gt=0)
    e_mg: int = Field(gt=0, description="verification scale interval e")
    d_mg: int = Field(gt=0, description="actual scale interval d")

    @model_validator(mode="after")
    def _check(self) -> Metrology:
        if self.e_mg != self.d_mg:
            raise ValueError(f"e ({self.e_mg} mg) must equal d ({self.d_mg} mg) on a price-computing scale")
        if self.accuracy_class == "III":
            n = self.max_g * 1000 // self.e_mg
            for e_lo, e_hi, n_lo, n_hi in _CLASS_III_N:
                if e_lo <= self.e_mg <= e_hi and not n_lo <= n <= n_hi:
                    raise ValueError(f"class III with e = {self.e_mg} mg needs {n_lo} ≤ n ≤ {n_hi}, n = {n}")
            if self.min_g * 1000 != 20 * self.e_mg:
                raise ValueError(f"class III Min must be 20 e = {20 * self.e_mg / 1000:g} g, not {self.min_g} g")
        return self


class SicsExtension(_Strict):
    """A vendor extension command of MT-SICS: what it is for, its arguments and its reply fields."""

    command: str = Field(pattern=COMMAND_PATTERN)
    purpose: str
    args: list[str] = []
    reply: list[str] = Field(description="names of the values after '<command> A', in order")
    empty_status: str | None = Field(None, description="status letter meaning 'nothing to report'")


SICS_ROLES = (
    "metrology",
    "raw_counts",
    "coefficient",
    "counters",
    "software_id",
    "transaction",
    "transaction_ack",
)


class MtSicsSpec(_Strict):
    """MT-SICS dialect of a scale: weight formatting, vendor reply variants and extension commands."""

    weight_unit: Literal["g", "kg"] = "kg"
    weight_decimals: int = Field(3, ge=0, le=6)
    transaction_record: Literal["sale", "reweigh"] = Field(
        "sale", description="record type of the transaction memory: sales, or a fair scale's re-weighs"
    )
    zero_reply: str = "Z A"
    tare_status: str = "S"
    extensions: dict[str, SicsExtension]

    @model_validator(mode="after")
    def _check(self) -> MtSicsSpec:
        missing = [r for r in SICS_ROLES if r not in self.extensions]
        if missing:
            raise ValueError(f"extensions lacks the roles {missing}")
        unknown = [r for r in self.extensions if r not in SICS_ROLES]
        if unknown:
            raise ValueError(f"unknown extension roles {unknown}; known: {list(SICS_ROLES)}")
        fields = RECORD_TYPES[self.transaction_record].fields
        reply = self.extensions["transaction"].reply
        bad = [f for f in reply if f not in fields and f != "ts"]
        if bad:
            raise ValueError(f"transaction reply names fields that a {self.transaction_record} record lacks: {bad}")
        if "txn" not in reply:
            raise ValueError("transaction reply must include txn, the number the agent acknowledges")
        return self


class ToledoSpec(_Strict):
    """Toledo continuous output: 18-byte frames, optional checksum."""

    checksum: bool = True
    rate_hz: float = Field(10.0, gt=0, le=100)


RawType = Literal["int16", "uint16", "int32", "uint32", "float32"]


class ModbusRegister(_Strict):
    """One value in a Modbus register map. Physical value = raw × scale + offset."""

    field: str
    table: Literal["holding", "input"] = "holding"
    address: int = Field(ge=0, le=65535)
    raw_type: RawType = "uint16"
    word_order: Literal["big", "little"] = "big"
    byte_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    offset: float = 0.0
    unit: str
    range: tuple[float, float]

    @property
    def count(self) -> int:
        """Number of 16-bit registers the value spans."""
        return 2 if self.raw_type in ("int32", "uint32", "float32") else 1

    @model_validator(mode="after")
    def _check(self) -> ModbusRegister:
        if self.range[0] >= self.range[1]:
            raise ValueError(f"range {self.range} is empty")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        return self


class ModbusSpec(_Strict):
    """A Modbus sensor: default unit id, the record type it fills, and its register map."""

    unit_id: int = Field(1, ge=1, le=247)
    record_type: Literal["soil", "air"]
    stuck_after: int = Field(10, ge=2, description="identical readings in a row that make a channel stuck")
    registers: list[ModbusRegister] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> ModbusSpec:
        fields = RECORD_TYPES[self.record_type].fields
        spans: list[tuple[str, int, int, str]] = []
        for reg in self.registers:
            spec = fields.get(reg.field)
            if spec is None:
                raise ValueError(f"register {reg.field!r} is not a field of a {self.record_type} record")
            if spec.unit != reg.unit:
                raise ValueError(f"register {reg.field!r} has unit {reg.unit!r}, the record wants {spec.unit!r}")
            spans.append((reg.table, reg.address, reg.address + reg.count, reg.field))
        spans.sort()
        for (t1, _, end1, f1), (t2, start2, _, f2) in pairwise(spans):
            if t1 == t2 and start2 < end1:
                raise ValueError(f"registers {f1!r} and {f2!r} overlap")
        return self


class NmeaSpec(_Strict):
    """An NMEA 0183 receiver: which talkers and sentences it emits."""

    talkers: list[Literal["GP", "GN", "GL", "GB", "BD", "GA"]] = ["GP", "GN"]
    sentences: list[Literal["RMC", "GGA"]] = ["RMC", "GGA"]


class RapidTestSpec(_Strict):
    """Line format of an enzyme-inhibition analyzer: ``$<prefix>,<f1>,<f2>,…*hh`` CR LF, hh = XOR checksum."""

    prefix: str = Field("ZJRT", pattern=r"^[A-Z]{2,8}$")
    fields: list[str] = Field(min_length=1)
    channels: int = Field(12, ge=1, le=64)
    positive_pct: float = 50.0
    suspect_pct: float = 40.0
    min_control_delta_a0: float = Field(
        0.3, description="[unsure] control validity threshold (GB/T 5009.199-2003 practice)"
    )

    @model_validator(mode="after")
    def _check(self) -> RapidTestSpec:
        known = RECORD_TYPES["rapid_test"].fields
        bad = [f for f in self.fields if f not in known and f != "ts"]
        if bad:
            raise ValueError(f"fields not in a rapid_test record: {bad}")
        if not self.suspect_pct < self.positive_pct:
            raise ValueError("suspect_pct must be below positive_pct")
        return self


class Profile(_Strict):
    """One device model."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    kind: Literal["scale", "sensor", "gps", "rapid_test"]
    vendor: str
    model: str
    description: str
    transport: Literal["serial", "modbus-rtu", "modbus-tcp"]
    serial: SerialSettings | None = None
    protocol: Literal["mt-sics", "toledo-continuous", "modbus", "nmea-0183", "zj-rapid-test"]
    records: list[str] = Field(min_length=1)
    metrology: Metrology | None = None
    mtsics: MtSicsSpec | None = None
    toledo: ToledoSpec | None = None
    modbus: ModbusSpec | None = None
    nmea: NmeaSpec | None = None
    rapid_test: RapidTestSpec | None = None

    @model_validator(mode="after")
    def _check(self) -> Profile:
        section = {
            "mt-sics": "mtsics",
            "toledo-continuous": "toledo",
            "modbus": "modbus",
            "nmea-0183": "nmea",
            "zj-rapid-test": "rapid_test",
        }[self.protocol]
        if getattr(self, section) is None:
            raise ValueError(f"protocol {self.protocol!r} needs a {section!r} section")
        for other in ("mtsics", "toledo", "modbus", "nmea", "rapid_test"):
            if other != section and getattr(self, other) is not None:
                raise ValueError(f"section {other!r} does not belong to protocol {self.protocol!r}")
        unknown = [r for r in self.records if r not in RECORD_TYPES]
        if unknown:
            raise ValueError(f"unknown record types {unknown}; known: {sorted(RECORD_TYPES)}")
        if self.kind == "scale" and self.metrology is None:
            raise ValueError("a scale profile needs a 'metrology' section")
        if self.transport in ("serial", "modbus-rtu") and self.serial is None:
            raise ValueError(f"transport {self.transport!r} needs a 'serial' section")
        return self
