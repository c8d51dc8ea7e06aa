"""A device registry for tests: its key secret, a registry opened with a role, places seeded in two
districts, a provisioned SQLite registry file, and the documents a technician sends (a scale, a verification).
The fixtures that run every registry test on SQLite and PostgreSQL are in tests/support/registry_db.py.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from sqlalchemy import Engine

from device_registry import BundleDefaults, Principal, Registry, Role
from device_registry.db import connect, sessions, upgrade
from device_registry.schemas import (
    DeviceIn,
    DistrictIn,
    MarketIn,
    ProvisionIn,
    ReadingIn,
    StallIn,
    VerificationIn,
)


def scale(device_id: str = "scale-0001", market: str = "futian-no1") -> DeviceIn:
    return DeviceIn(
        id=device_id,
        profile="zj-pcs-30",
        serial_no="SN-1",
        production_code="(粤)制00000001",
        approved_software_id="PCS-1.2",
        market_id=market,
        stall_code="A-017",
    )


def verification(*indicated_g: float, on: dt.date = dt.date(2026, 11, 20)) -> VerificationIn:
    references = (100.0, 2500.0, 10000.0, 30000.0)
    return VerificationIn(
        certificate_no="SZJL-2026-0001",
        verifying_body="Shenzhen Institute of Metrology",
        verified_on=on,
        seal_no="SEAL-77",
        technician="Wang Wu",
        coefficient=20_000.0,
        zero_counts=120_000,
        calibration_events=3,
        configuration_events=7,
        software_id="PCS-1.2",
        readings=[ReadingIn(reference_g=r, indicated_g=i) for r, i in zip(references, indicated_g, strict=True)],
    )


POSTGRES = os.environ.get("ZHIJIAN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
VALID_LICENCES = ("91350100M000100Y43", "91440300708461136T", "91110000600037341L")
KEY_SECRET = bytes(range(32))


def open_registry(engine: Engine, role: Role = Role.ADMIN, **scope: frozenset[str]) -> Registry:
    bundles = BundleDefaults(key_secret=KEY_SECRET, broker_host="broker.test", broker_port=8883)
    return Registry(sessions(engine)(), Principal(f"test-{role.value}", role, **scope), bundles)


def seeded_registry_file(tmp_path: Path, devices: dict[str, tuple[str, str, str]]) -> str:
    """A migrated SQLite registry under ``tmp_path`` with the places of :func:`seed_places` (and a ``FAIR``
    stall in futian-no1), and ``devices`` (id: (profile, market, stall)) registered and provisioned; its URL."""
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    upgrade(url)
    engine = connect(url)
    reg = open_registry(engine)
    seed_places(reg)
    reg.add_stall(
        StallIn(market_id="futian-no1", code="FAIR", vendor="Market office", business_licence=VALID_LICENCES[0])
    )
    for device, (profile, market, stall) in devices.items():
        reg.register(DeviceIn(id=device, profile=profile, serial_no=device, market_id=market, stall_code=stall))
        reg.provision(device, ProvisionIn())
    reg.db.close()
    engine.dispose()
    return url


def seed_places(reg: Registry) -> None:
    """Two districts, a market in each, a stall in each market."""
    for district, market, licence in (("futian", "futian-no1", 0), ("nanshan", "nanshan-no2", 1)):
        reg.add_district(DistrictIn(id=district, name=district.title()))
        reg.add_market(
            MarketIn(id=market, name=f"{market} market", district_id=district, operator=f"{district} Markets Co.")
        )
        reg.add_stall(StallIn(market_id=market, code="A-017", vendor="Li Si", business_licence=VALID_LICENCES[licence]))
