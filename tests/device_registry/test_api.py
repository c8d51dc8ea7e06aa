"""The HTTP API per role, over real HTTP semantics (FastAPI's test client drives the ASGI app in process),
on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine

from device_registry.db import sessions
from tests.support.registry_api import Api


def test_without_a_valid_token_nothing_is_answered(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer zjt_000000000000_" + "x" * 32}, {"Authorization": "Basic eDp5"}):
        r = api.client.get("/v1/devices", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert "token" in r.json()["detail"]
    assert api.client.get("/health").json() == {"status": "ok"}


def test_admin_manages_tokens_and_a_revoked_or_expired_token_stops_working(api: Api, engine: Engine) -> None:
    created = api.call("admin", "POST", "/v1/tokens", {"name": "grafana", "role": "viewer"}, 201)
    api.tokens["grafana"] = created["token"]
    assert api.call("grafana", "GET", "/v1/whoami")["role"] == "viewer"
    api.call("admin", "POST", f"/v1/tokens/{created['id']}/revoke")
    assert api.call("grafana", "GET", "/v1/whoami", expect=401)["detail"] == "invalid or revoked API token"
    api.call("tech", "GET", "/v1/tokens", expect=403)
    short = api.call("admin", "POST", "/v1/tokens", {"name": "temp", "role": "viewer", "expires_days": 1}, 201)
    api.tokens["temp"] = short["token"]
    from device_registry import models as m

    with sessions(engine)() as db:
        row = db.get(m.ApiToken, short["id"])
        assert row is not None
        row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        db.commit()
    assert api.call("temp", "GET", "/v1/whoami", expect=401)["detail"] == "API token expired"
    missing_scope = api.call("admin", "POST", "/v1/tokens", {"name": "s", "role": "supervisor"}, 422)
    assert "districts or markets" in str(missing_scope)


def test_technician_registers_provisions_verifies_and_revokes(api: Api) -> None:
    bundle = api.call("tech", "POST", "/v1/devices/scale-futian/provision", {"port": "/dev/ttyUSB1"})
    assert bundle["bundle"]["broker"]["username"] == "scale-futian" and bundle["qr_text"].startswith("ZJB1:")
    reading = [{"reference_g": 1000, "indicated_g": 1002}]
    verification = {
        "certificate_no": "C1",
        "verifying_body": "SZ Metrology",
        "verified_on": "2026-11-20",
        "seal_no": "S9",
        "technician": "Wang",
        "coefficient": 20000.0,
        "calibration_events": 3,
        "configuration_events": 7,
        "readings": reading,
    }
    recorded = api.call("tech", "POST", "/v1/devices/scale-futian/verifications", verification, 201)
    assert recorded["passed"] and recorded["due_on"] == "2027-11-20"
    shown = api.call("viewer", "GET", "/v1/devices/scale-futian")
    assert shown["key_version"] == 1 and shown["last_verification"]["id"] == recorded["id"]
    assert "password" not in str(shown)
    api.call("tech", "POST", "/v1/devices/scale-futian/revoke", {"reason": "replaced by scale-0002"})
    assert api.call("viewer", "GET", "/v1/devices?revoked=true")["total"] == 1
    api.call("tech", "POST", "/v1/markets", {"id": "x", "name": "x", "district_id": "futian", "operator": "o"}, 403)


def test_viewer_reads_and_is_told_why_it_may_not_write(api: Api) -> None:
    page = api.call("viewer", "GET", "/v1/devices?limit=1")
    assert page["total"] == 2 and len(page["items"]) == 1 and page["limit"] == 1
    assert api.call("viewer", "GET", "/v1/devices?limit=1&offset=1")["items"][0]["id"] == "scale-nanshan"
    refused = api.call("viewer", "POST", "/v1/devices/scale-futian/revoke", {"reason": "because"}, 403)
    assert refused["detail"] == "role viewer may not revoke"
    # refused before looking: the same answer whether or not the device exists
    assert api.call("viewer", "POST", "/v1/devices/scale-nowhere/revoke", {"reason": "because"}, 403) == refused
    api.call("viewer", "GET", "/v1/audit", expect=403)


def test_a_supervisor_sees_only_their_market(api: Api) -> None:
    devices = api.call("sup-nanshan", "GET", "/v1/devices")
    assert [d["id"] for d in devices["items"]] == ["scale-nanshan"]
    assert api.call("sup-nanshan", "GET", "/v1/devices?market=futian-no1")["total"] == 0
    hidden = api.call("sup-nanshan", "GET", "/v1/devices/scale-futian", expect=404)
    absent = api.call("sup-nanshan", "GET", "/v1/devices/scale-gutian", expect=404)  # as close to theirs
    assert hidden["detail"].replace("futian", "?") == absent["detail"].replace("gutian", "?")
    assert "did you mean 'scale-nanshan'?" in absent["detail"]  # a suggestion from what they see ...
    typo = api.call("sup-nanshan", "GET", "/v1/devices/scale-futiam", expect=404)
    assert "scale-futian" not in typo["detail"]  # ... never from what they do not
    api.call("sup-nanshan", "POST", "/v1/devices/scale-futian/revoke", {"reason": "tampered"}, 404)
    api.call("sup-nanshan", "POST", "/v1/devices/scale-nanshan/revoke", {"reason": "tampered"}, 200)
    audit = api.call("sup-nanshan", "GET", "/v1/audit")
    assert {e["entity_id"] for e in audit["items"]} == {"scale-nanshan"}
    api.call("sup-nanshan", "POST", "/v1/devices/scale-nanshan/provision", {}, 403)


def test_bad_input_is_refused_with_reasons(api: Api) -> None:
    stall = {"market_id": "futian-no1", "code": "B-1", "vendor": "Zhao", "business_licence": "91350100M000100Y44"}
    refused = api.call("tech", "POST", "/v1/stalls", stall, 422)
    assert "mistyped" in str(refused)
    device = {"id": "scale-x1", "profile": "zj-pcs-30", "serial_no": "S", "base_id": "b", "vehicle_id": "v"}
    assert "exactly one place" in str(api.call("tech", "POST", "/v1/devices", device, 422))
    dup = {"id": "scale-futian", "profile": "zj-pcs-30", "serial_no": "S", "market_id": "futian-no1"}
    api.call("tech", "POST", "/v1/devices", {**dup, "stall_code": "A-017"}, 409)
    assert "openapi" in api.client.get("/openapi.json").json()


def test_the_published_openapi_document_is_current() -> None:
    """docs/registry-openapi.json is what the API serves (regenerate: zhijian registry openapi -o …)."""
    import json
    from pathlib import Path

    from zhijian_cli.registry_cmd import openapi_document

    committed = json.loads((Path(__file__).parents[2] / "docs" / "registry-openapi.json").read_text(encoding="utf-8"))
    assert committed == openapi_document(), "regenerate: zhijian registry openapi -o docs/registry-openapi.json"


def test_prometheus_counts_calls_by_route_and_status(api: Api) -> None:
    api.call("viewer", "GET", "/v1/devices/scale-futian")
    api.call("viewer", "GET", "/v1/devices/scale-nanshan")
    api.client.get("/v1/devices")  # no token
    text = api.client.get("/metrics").text
    assert 'zhijian_registry_requests_total{method="GET",route="/v1/devices/{device_id}",status="200"} 2.0' in text
    assert 'zhijian_registry_requests_total{method="GET",route="/v1/devices",status="401"} 1.0' in text
