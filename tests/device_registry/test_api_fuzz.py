"""Property-based test of the API from its own OpenAPI spec (schemathesis): whatever the generated calls,
positive or negative, the server never answers 5xx and its answers match the spec. Runs on SQLite and on
PostgreSQL (which is stricter: NUL bytes, integer ranges and string lengths reach it otherwise)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import Engine

from device_registry import Principal, Role
from device_registry.api import create_app
from device_registry.db import sessions
from device_registry.schemas import DeviceIn, DistrictIn, MarketIn, StallIn, TokenIn
from device_registry.service import BundleDefaults, Registry
from tests.device_registry.conftest import KEY_SECRET, VALID_LICENCES


@pytest.fixture
def admin_token(engine: Engine) -> str:
    with sessions(engine)() as db:
        reg = Registry(db, Principal("bootstrap", Role.ADMIN), BundleDefaults(key_secret=KEY_SECRET))
        reg.add_district(DistrictIn(id="futian", name="Futian"))
        reg.add_market(MarketIn(id="futian-no1", name="No. 1", district_id="futian", operator="Op"))
        reg.add_stall(StallIn(market_id="futian-no1", code="A-017", vendor="Li", business_licence=VALID_LICENCES[0]))
        reg.register(
            DeviceIn(id="scale-0001", profile="zj-pcs-30", serial_no="S", market_id="futian-no1", stall_code="A-017")
        )
        return reg.create_token(TokenIn(name="fuzz", role=Role.ADMIN)).token


def test_no_server_error_and_answers_match_the_spec(engine: Engine, admin_token: str) -> None:
    """Every operation, 25 generated calls each (positive and negative data), with an admin token.

    Schema-valid data may still be refused with 422 or 404 for reasons no JSON Schema states (a licence's
    check character, a district that does not exist), so the "positive data accepted" check is left out;
    every other check runs, server errors first. (Driven by hand over the operations: schemathesis'
    pytest plugin does not load under pytest 9.)"""
    app = create_app(engine, bundles=BundleDefaults(key_secret=KEY_SECRET))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {admin_token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case: Any) -> None:
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        call()
