"""Registry fixtures: every registry test runs on a fresh SQLite file and on a fresh PostgreSQL database.

PostgreSQL is the server this machine kind runs (127.0.0.1:5432, trust auth); ``ZHIJIAN_TEST_POSTGRES``
points elsewhere. Each test gets a database of its own, created from template0 and dropped after.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import close_all_sessions

from device_registry import BundleDefaults, Principal, Registry, Role
from device_registry.db import connect, sessions, upgrade
from device_registry.schemas import DeviceIn, DistrictIn, MarketIn, ProvisionIn, StallIn

POSTGRES = os.environ.get("ZHIJIAN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
VALID_LICENCES = ("91350100M000100Y43", "91440300708461136T", "91110000600037341L")


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite'}"
        return
    admin = make_url(POSTGRES)
    name = f"zhijian_test_{secrets.token_hex(4)}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES} does not answer ({exc}); set ZHIJIAN_TEST_POSTGRES to a server URL")
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def engine(registry_url: str) -> Iterator[Engine]:
    upgrade(registry_url)
    eng = connect(registry_url)
    yield eng
    close_all_sessions()
    eng.dispose()


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
