"""The provisioning bundle: everything an agent needs, in one YAML (or JSON) file.

::

    device_id: base-0007
    key_hex: 5f0c…(64 hex digits: the device's integrity key)
    broker: {host: mqtt.example.gov.cn, port: 8883, username: base-0007, password: "…",
             tls: {ca_file: /etc/zhijian/ca.pem, cert_file: null, key_file: null}}   # or ca_pem: the PEM text
    state_dir: /var/lib/zhijian/base-0007        # outbox, status file
    sources:
      - {profile: soil-rs485, port: /dev/ttyUSB0, unit_id: 1, interval_s: 60}
      - {profile: air-rs485, port: /dev/ttyUSB0, unit_id: 2, interval_s: 60}   # same RS-485 bus
      - {profile: zj-pcs-30, port: socket://192.0.2.10:4001}

``profile`` is a shipped profile id or a path to a profile file. Sources on the same port share one
Modbus bus, so their requests are serialised. The file may also hold the bundle as one line of QR text
(``ZJB1:…``, :mod:`device_profiles.bundle_text`).

The schema is part of the contract because two packages speak it: the registry issues a :class:`Bundle`
and the edge agent reads one (:mod:`edge_agent.bundle_file`), so neither depends on the other.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .topics import DEVICE_ID_RE

_PLACEHOLDERS = re.compile(r"^(0+|f+|changeme.*|x+)$", re.IGNORECASE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsSection(_Strict):
    ca_file: Path | None = None
    ca_pem: str | None = Field(None, description="the CA certificate itself (bundles from the registry carry it)")
    cert_file: Path | None = None
    key_file: Path | None = None
    cert_pem: str | None = Field(None, description="the device's client certificate itself (registry bundles)")
    key_pem: str | None = Field(None, description="its private key itself")

    @model_validator(mode="after")
    def _one_ca(self) -> TlsSection:
        if (self.cert_pem is None) != (self.key_pem is None) or (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs its key (cert_file with key_file, cert_pem with key_pem)")
        if self.cert_pem is not None and self.cert_file is not None:
            raise ValueError("give the client certificate as files or as PEM text, not both")
        if (self.ca_file is None) == (self.ca_pem is None):
            raise ValueError("give the broker's CA as ca_file or as ca_pem (one of them)")
        if self.ca_pem is not None and "-----BEGIN CERTIFICATE-----" not in self.ca_pem:
            raise ValueError("ca_pem is not a PEM certificate")
        return self


class BrokerSection(_Strict):
    host: str
    port: int = Field(8883, gt=0, lt=65536)
    username: str | None = None
    password: str | None = None
    tls: TlsSection | None = None
    keepalive_s: int = Field(30, ge=2, le=3600, description="the broker declares us offline after 1.5 × this")


class SourceSection(_Strict):
    profile: str
    port: str = Field(description="serial device, pyserial URL, or tcp://host:port for a Modbus TCP gateway")
    unit_id: int | None = Field(None, ge=1, le=247)
    interval_s: float = Field(60.0, ge=0.05, le=86_400)
    silence_s: float = Field(10.0, gt=0)


class Bundle(_Strict):
    device_id: str = Field(pattern=DEVICE_ID_RE.pattern)
    key_hex: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    broker: BrokerSection
    state_dir: Path
    sources: list[SourceSection] = Field(min_length=1)
    outbox_quota_mb: float = Field(64, gt=0)
    status_interval_s: float = Field(30, gt=0)
    delivery: Literal["cloud", "broker"] = Field(
        "cloud",
        description="cloud: records leave the outbox when the ingest acknowledges them (the default); broker: on the"
        " broker's PUBACK alone, for a broker with no Zhijian ingest behind it",
    )
    cloud_ack_timeout_s: float = Field(30, gt=0, le=3600, description="first wait for the cloud before a resend")

    @model_validator(mode="after")
    def _username_is_the_device(self) -> Bundle:
        if self.broker.username is not None and self.broker.username != self.device_id:
            raise ValueError(
                f"broker.username {self.broker.username!r} is not the device id {self.device_id!r}: the broker"
                " confines each device to its own topics by its username, so every publish would be refused"
            )
        return self

    @field_validator("key_hex")
    @classmethod
    def _not_a_placeholder(cls, value: str) -> str:
        if _PLACEHOLDERS.fullmatch(value):
            raise ValueError("key_hex is a placeholder, not a provisioned key")
        return value

    @property
    def key(self) -> bytes:
        return bytes.fromhex(self.key_hex)

    @property
    def status_path(self) -> Path:
        return self.state_dir / "status.json"
