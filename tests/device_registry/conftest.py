"""Registry fixtures: every registry test runs on a fresh SQLite file and on a fresh PostgreSQL database
(:mod:`tests.support.registry_db`); ``api`` is the HTTP API with a token per role over two seeded markets."""

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from device_registry import Role
from tests.support.registry import VALID_LICENCES
from tests.support.registry_api import Api
from tests.support.registry_db import engine, registry_url

__all__ = ["api", "engine", "registry_url"]


@pytest.fixture
def api(engine: Engine) -> Iterator[Api]:
    a = Api(engine)
    a.token("admin", Role.ADMIN)
    a.token("tech", Role.TECHNICIAN)
    a.token("viewer", Role.VIEWER)
    a.token("sup-nanshan", Role.SUPERVISOR, markets=["nanshan-no2"])
    for district, market, stall in (("futian", "futian-no1", 0), ("nanshan", "nanshan-no2", 1)):
        a.call("admin", "POST", "/v1/districts", {"id": district, "name": district}, 201)
        market_doc = {"id": market, "name": market, "district_id": district, "operator": "Markets Co."}
        a.call("admin", "POST", "/v1/markets", market_doc, 201)
        stall_doc = {"market_id": market, "code": "A-017", "vendor": "Li", "business_licence": VALID_LICENCES[stall]}
        a.call("tech", "POST", "/v1/stalls", stall_doc, 201)
        device = {"id": f"scale-{district}", "profile": "zj-pcs-30", "serial_no": "S1", "market_id": market}
        a.call("tech", "POST", "/v1/devices", {**device, "stall_code": "A-017"}, 201)
    yield a
    a.client.close()
