"""Positions of places (WGS-84) through the API, on SQLite and PostgreSQL: given when a place is added or set
later, both or neither, within range, in scope, audited, published in the OpenAPI document, and in the
ingest's view of places."""

from __future__ import annotations

from sqlalchemy import Engine

from device_registry.db import sessions
from device_registry.ingest_view import ingest_places, ingest_view
from tests.support.registry import KEY_SECRET, VALID_LICENCES
from tests.support.registry_api import Api

FUTIAN = {"lat": 22.5431, "lon": 114.0579}  # WGS-84, Futian district centre


def test_places_take_a_position_when_added_and_show_it(api: Api) -> None:
    api.call("admin", "POST", "/v1/districts", {"id": "luohu", "name": "Luohu", "lat": 22.55, "lon": 114.13}, 201)
    market = {"id": "luohu-no1", "name": "Luohu No. 1", "district_id": "luohu", "operator": "M", **FUTIAN}
    assert api.call("admin", "POST", "/v1/markets", market, 201)["lat"] == FUTIAN["lat"]
    stall = {"market_id": "luohu-no1", "code": "B-2", "vendor": "Wang", "business_licence": VALID_LICENCES[0]}
    assert api.call("tech", "POST", "/v1/stalls", {**stall, "lat": 22.5432, "lon": 114.058}, 201)["lon"] == 114.058
    base = {"id": "base-1", "name": "Guangming farm", "district_id": "luohu", "lat": 22.74, "lon": 113.93}
    api.call("tech", "POST", "/v1/bases", base, 201)
    districts = {d["id"]: d for d in api.call("viewer", "GET", "/v1/districts")["items"]}
    assert (districts["luohu"]["lat"], districts["futian"]["lat"]) == (22.55, None)
    assert api.call("viewer", "GET", "/v1/stalls?market=luohu-no1")["items"][0]["lat"] == 22.5432
    assert api.call("viewer", "GET", "/v1/bases")["items"][0]["lon"] == 113.93


def test_a_position_is_both_coordinates_in_range(api: Api) -> None:
    for bad in (
        {"lat": 22.5},
        {"lon": 114.0},
        {"lat": 91, "lon": 0},
        {"lat": 0, "lon": 180.5},
        {"lat": "22", "lon": 1},
    ):
        api.call("admin", "POST", "/v1/districts", {"id": "x", "name": "x", **bad}, 422)
        api.call("admin", "PUT", "/v1/districts/futian/position", bad, 422)


def test_positions_are_set_later_in_scope_and_audited(api: Api) -> None:
    assert api.call("admin", "PUT", "/v1/districts/futian/position", FUTIAN)["lat"] == FUTIAN["lat"]
    assert api.call("admin", "PUT", "/v1/markets/futian-no1/position", FUTIAN)["lon"] == FUTIAN["lon"]
    stall = api.call("tech", "PUT", "/v1/markets/futian-no1/stalls/A-017/position", {"lat": 22.5, "lon": 114.0})
    assert (stall["code"], stall["lat"]) == ("A-017", 22.5)
    api.call("tech", "PUT", "/v1/markets/futian-no1/stalls/Z-9/position", FUTIAN, 404)
    api.call("sup-nanshan", "PUT", "/v1/markets/futian-no1/stalls/A-017/position", FUTIAN, 403)
    api.call("viewer", "PUT", "/v1/markets/futian-no1/position", FUTIAN, 403)
    api.call("tech", "PUT", "/v1/bases/nowhere/position", FUTIAN, 404)
    cleared = api.call("admin", "PUT", "/v1/markets/futian-no1/position", {})
    assert (cleared["lat"], cleared["lon"]) == (None, None)
    log = [e for e in api.call("admin", "GET", "/v1/audit?limit=100")["items"] if e["action"] == "set_position"]
    assert len(log) == 4 and log[0]["detail"]["before"] == FUTIAN and log[0]["entity"] == "market"


def test_the_ingest_view_carries_every_place_with_its_position(api: Api, engine: Engine) -> None:
    api.call("admin", "PUT", "/v1/markets/futian-no1/position", FUTIAN)
    with sessions(engine)() as db:
        places = ingest_places(db)
        view = ingest_view(db, KEY_SECRET)
    by_key = {(p["kind"], p.get("market"), p["id"]): p for p in places}
    assert by_key["market", None, "futian-no1"] | FUTIAN == by_key["market", None, "futian-no1"]
    stall = by_key["stall", "nanshan-no2", "A-017"]
    assert (stall["district"], stall["vendor"], stall["licence"], stall["lat"]) == (
        "nanshan",
        "Li",
        VALID_LICENCES[1],
        None,
    )
    assert by_key["district", None, "futian"]["district"] == "futian"
    assert view.places == places
    assert view.devices["scale-futian"]["unverified"] == "none"  # registered, never verified


def test_the_openapi_document_states_positions() -> None:
    from zhijian_cli.registry_cmd import openapi_document

    doc = openapi_document()
    schema = doc["components"]["schemas"]["MarketIn"]
    assert {"lat", "lon"} <= set(schema["properties"]) and len(schema["anyOf"]) == 2
    assert "/v1/markets/{market_id}/stalls/{code}/position" in doc["paths"]
