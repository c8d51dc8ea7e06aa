"""Registry database fixtures: a registry test runs on a fresh SQLite file and on a fresh PostgreSQL database.

PostgreSQL is the server this machine kind runs (127.0.0.1:5432, trust auth); ``ZHIJIAN_TEST_POSTGRES``
points elsewhere. Each test gets a database of its own, created from template0 and dropped after. A test
folder's conftest imports these fixtures to use them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import close_all_sessions

from device_registry.db import connect, upgrade
from tests.support.registry import POSTGRES


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
