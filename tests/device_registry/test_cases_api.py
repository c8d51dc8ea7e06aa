"""Cases through the HTTP API, on SQLite and PostgreSQL: the ingest's events open and feed them (once per
event key), supervisors act on them in their scope only, each step in the audit log, and a planting-base
alert closes only after the base's rectification acknowledgement."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from device_registry import Role
from tests.support.registry_api import Api

T0 = 1_764_000_000_000


@pytest.fixture
def api(engine: Engine) -> Iterator[Api]:
    from tests.support.registry import VALID_LICENCES

    a = Api(engine)
    a.token("admin", Role.ADMIN)
    a.token("tech", Role.TECHNICIAN)
    a.token("viewer", Role.VIEWER)
    a.token("ingest", Role.INGEST)
    a.token("sup-futian-no1", Role.SUPERVISOR, markets=["futian-no1"])
    a.token("sup-nanshan-no2", Role.SUPERVISOR, markets=["nanshan-no2"])
    a.token("sup-nanshan", Role.SUPERVISOR, districts=["nanshan"])
    for district, market, stall in (("futian", "futian-no1", 0), ("nanshan", "nanshan-no2", 1)):
        a.call("admin", "POST", "/v1/districts", {"id": district, "name": district}, 201)
        a.call(
            "admin",
            "POST",
            "/v1/markets",
            {"id": market, "name": market, "district_id": district, "operator": "Co"},
            201,
        )
        stall_doc = {"market_id": market, "code": "A-017", "vendor": "Li", "business_licence": VALID_LICENCES[stall]}
        a.call("tech", "POST", "/v1/stalls", stall_doc, 201)
        device = {"id": f"scale-{district}", "profile": "zj-pcs-30", "serial_no": "S1", "market_id": market}
        a.call("tech", "POST", "/v1/devices", {**device, "stall_code": "A-017"}, 201)
    a.call("tech", "POST", "/v1/bases", {"id": "base-7", "name": "Veg base", "district_id": "nanshan"}, 201)
    a.call(
        "tech",
        "POST",
        "/v1/devices",
        {"id": "base-0007", "profile": "soil-rs485", "serial_no": "B7", "base_id": "base-7"},
        201,
    )
    yield a
    a.client.close()


def flag(seq: int, rule: str = "cusum_drift", device: str = "scale-futian") -> dict[str, Any]:
    return {
        "event_key": f"flag:{device}:{seq}:{rule}",
        "type": "flag",
        "device": device,
        "ts": T0 + seq * 1000,
        "seq": seq,
        "rule": rule,
        "severity": "high",
        "detail": {"value": 296.9, "limit": 40.0, "reason_en": "weights drift above the fair scale"},
    }


def report(api: Api, *events: dict[str, Any], who: str = "ingest") -> list[dict[str, Any]]:
    return api.call(who, "POST", "/v1/case-events", {"events": list(events)})["results"]


def test_a_flag_opens_one_case_per_scale_and_rule_and_a_redelivery_changes_nothing(api: Api) -> None:
    (opened,) = report(api, flag(10))
    assert opened["result"] == "opened" and opened["state"] == "open"
    again, later, other = report(api, flag(10), flag(11), flag(12, rule="price_mismatch"))
    assert again == {**opened, "result": "duplicate"}
    assert later["result"] == "attached" and later["case_id"] == opened["case_id"]
    assert other["result"] == "opened" and other["case_id"] != opened["case_id"]
    case = api.call("sup-futian-no1", "GET", f"/v1/cases/{opened['case_id']}")
    assert case["occurrences"] == 2 and case["place"] == "futian-no1/A-017" and case["market_id"] == "futian-no1"
    assert [h["action"] for h in case["history"]] == ["opened", "occurrence"]
    assert case["evidence"]["reason_en"] == "weights drift above the fair scale" and not case["needs_base_ack"]
    (unknown,) = report(api, flag(1, device="scale-nowhere"))
    assert unknown["result"] == "unknown_device" and unknown["case_id"] is None


def test_only_supervisors_in_scope_act_and_every_step_is_audited(api: Api) -> None:
    case_id = report(api, flag(10))[0]["case_id"]
    path = f"/v1/cases/{case_id}"
    # outside the scope: not found, told apart from nothing
    for who in ("sup-nanshan-no2", "sup-nanshan"):
        assert api.call(who, "GET", path, expect=404)["detail"] == f"case {case_id!r} not found"
        api.call(who, "POST", f"{path}/acknowledge", {}, expect=404)
        assert api.call(who, "GET", "/v1/cases")["total"] == 0
    for who in ("viewer", "tech", "ingest"):
        detail = api.call(who, "POST", f"{path}/acknowledge", {}, expect=403)["detail"]
        assert detail.endswith("may not handle case")
    api.call("sup-futian-no1", "POST", "/v1/case-events", {"events": [flag(20)]}, expect=403)
    assert api.call("viewer", "GET", path)["state"] == "open"  # reading is for everyone in scope
    sup = "sup-futian-no1"
    refused = api.call(sup, "POST", f"{path}/close", {"outcome": "false_alarm"}, expect=409)
    assert refused["detail"] == "acknowledge the case before closing it"
    api.call(sup, "POST", f"{path}/assign", {"to": "Inspector Wang"}, expect=409)
    assert api.call(sup, "POST", f"{path}/acknowledge", {"note": "looking"})["state"] == "acknowledged"
    api.call(sup, "POST", f"{path}/acknowledge", {}, expect=409)
    assigned = api.call(sup, "POST", f"{path}/assign", {"to": "Inspector Wang"})
    assert assigned["state"] == "assigned" and assigned["assignee"] == "Inspector Wang"
    api.call(sup, "POST", f"{path}/notes", {"text": "receipt photographed at the stall"})
    api.call(sup, "POST", f"{path}/close", {"outcome": "caught"}, expect=422)
    closed = api.call(sup, "POST", f"{path}/close", {"outcome": "inspected_confirmed", "note": "fined"})
    assert closed["state"] == "closed" and closed["outcome"] == "inspected_confirmed"
    assert closed["closed_by"].endswith(":sup-futian-no1") and closed["closed_at"]
    assert [h["action"] for h in closed["history"]] == ["opened", "acknowledge", "assign", "note", "close"]
    api.call(sup, "POST", f"{path}/close", {"outcome": "rectified"}, expect=409)
    audit = api.call("admin", "GET", "/v1/audit", None)["items"]
    steps = [(e["action"], e["detail"].get("after")) for e in audit if e["entity"] == "case"]
    assert steps[::-1] == [
        ("open", None),
        ("acknowledge", "acknowledged"),
        ("assign", "assigned"),
        ("note", "assigned"),
        ("close", "closed"),
    ]
    own = api.call(sup, "GET", "/v1/audit")["items"]  # a supervisor reads the audit of their scope's cases
    assert [e["action"] for e in own if e["entity"] == "case"][::-1] == [s for s, _ in steps[::-1]]
    assert all(e["entity"] != "case" for e in api.call("sup-nanshan", "GET", "/v1/audit")["items"])
    # the scale is flagged again for the same rule after the case closed: a new case
    (again,) = report(api, flag(30))
    assert again["result"] == "opened" and again["case_id"] != case_id
    listed = api.call(sup, "GET", "/v1/cases", None)
    assert [c["state"] for c in listed["items"]] == ["open", "closed"]
    assert api.call(sup, "GET", "/v1/cases?state=closed")["total"] == 1


def base_alert(alert_id: str = "base-0007:soil.moisture_pct:1764000000000") -> dict[str, Any]:
    return {
        "event_key": f"alert:{alert_id}",
        "type": "alert",
        "device": "base-0007",
        "ts": T0,
        "seq": 3,
        "rule": "sensor_threshold",
        "severity": "medium",
        "alert_id": alert_id,
        "subject": "base-0007",
        "detail": {"channel": "soil.moisture_pct", "value": 12.5, "limit": 20.0, "side": "low"},
    }


def base_ack(alert_id: str = "base-0007:soil.moisture_pct:1764000000000") -> dict[str, Any]:
    return {"event_key": f"base_ack:{alert_id}", "type": "base_ack", "device": "base-0007", "ts": T0 + 3_600_000,
            "alert_id": alert_id, "by": "base manager Li"}  # fmt: skip


def test_a_planting_base_alert_closes_only_after_the_bases_rectification_acknowledgement(api: Api) -> None:
    (opened,) = report(api, base_alert())
    case_id, sup = opened["case_id"], "sup-nanshan"
    path = f"/v1/cases/{case_id}"
    case = api.call(sup, "GET", path)
    assert case["place_kind"] == "base" and case["place"] == "base-7" and case["needs_base_ack"]
    api.call("sup-nanshan-no2", "GET", path, expect=404)  # a base is in the district, in no market
    api.call(sup, "POST", f"{path}/acknowledge", {})
    api.call(sup, "POST", f"{path}/assign", {"to": "Agriculture team 3"})
    refused = api.call(sup, "POST", f"{path}/close", {"outcome": "rectified"}, expect=409)
    assert "has not acknowledged its rectification" in refused["detail"]
    (ack,) = report(api, base_ack())
    assert ack == {"event_key": ack["event_key"], "result": "recorded", "case_id": case_id, "state": "assigned"}
    assert report(api, base_ack())[0]["result"] == "duplicate"
    case = api.call(sup, "GET", path)
    assert case["base_ack_by"] == "base manager Li" and case["base_ack_at"].startswith("2025-11-24T17:00")
    closed = api.call(sup, "POST", f"{path}/close", {"outcome": "rectified"})
    assert closed["state"] == "closed"
    assert [h["action"] for h in closed["history"]] == ["opened", "acknowledge", "assign", "base_ack", "close"]
    assert report(api, base_ack("no-such-alert"))[0]["result"] == "unmatched"


def test_counts_of_open_cases_by_district_market_and_state_in_scope(api: Api) -> None:
    report(api, flag(1), flag(2, rule="price_mismatch"), flag(3, device="scale-nanshan"), base_alert())
    first = api.call("sup-futian-no1", "GET", "/v1/cases")["items"][0]["id"]
    api.call("sup-futian-no1", "POST", f"/v1/cases/{first}/acknowledge", {})
    everything = api.call("admin", "GET", "/v1/case-counts")["items"]
    assert everything == [
        {"district_id": "futian", "market_id": "futian-no1", "state": "acknowledged", "count": 1},
        {"district_id": "futian", "market_id": "futian-no1", "state": "open", "count": 1},
        {"district_id": "nanshan", "market_id": None, "state": "open", "count": 1},
        {"district_id": "nanshan", "market_id": "nanshan-no2", "state": "open", "count": 1},
    ]
    assert [c["market_id"] for c in api.call("sup-nanshan-no2", "GET", "/v1/case-counts")["items"]] == ["nanshan-no2"]
    assert len(api.call("ingest", "GET", "/v1/case-counts")["items"]) == 4


def test_events_that_break_the_schema_are_refused_whole(api: Api) -> None:
    bad = {k: v for k, v in flag(1).items() if k != "rule"}
    detail = api.call("ingest", "POST", "/v1/case-events", {"events": [flag(2), bad]}, expect=422)["detail"]
    assert [(d["loc"][-3:], d["type"]) for d in detail] == [([1, "flag", "rule"], "missing")]
    unknown = {**flag(3), "type": "rumour"}
    detail = api.call("ingest", "POST", "/v1/case-events", {"events": [unknown]}, expect=422)["detail"]
    assert detail[0]["type"] == "union_tag_invalid"
    api.call("ingest", "POST", "/v1/case-events", {"events": []}, expect=422)
    assert api.call("admin", "GET", "/v1/cases")["total"] == 0  # nothing of a refused batch is taken


def test_cases_changed_since_come_oldest_change_first_in_scope(api: Api) -> None:
    """What the ingest's poller reads to write each step of an alert as ``alert_state``."""
    import datetime as dt
    from urllib.parse import urlencode

    def since(at: dt.datetime, who: str = "admin", **more: str) -> list[tuple[int, str]]:
        query = urlencode({"updated_since": at.isoformat(), **more})
        return [(c["id"], c["state"]) for c in api.call(who, "GET", f"/v1/cases?{query}")["items"]]

    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    (flag_case,) = report(api, flag(1))
    (alert_case,) = report(api, base_alert())
    flag_id, alert_id = flag_case["case_id"], alert_case["case_id"]
    assert since(start) == [(flag_id, "open"), (alert_id, "open")]  # oldest change first (not newest first)
    mid = dt.datetime.now(dt.UTC)
    assert since(mid) == []
    api.call("sup-nanshan", "POST", f"/v1/cases/{alert_id}/acknowledge", {})
    api.call("sup-futian-no1", "POST", f"/v1/cases/{flag_id}/acknowledge", {})
    assert since(mid) == [(alert_id, "acknowledged"), (flag_id, "acknowledged")]  # by their last change
    assert since(mid, source="alert") == [(alert_id, "acknowledged")]
    assert since(mid, who="sup-futian-no1") == [(flag_id, "acknowledged")]  # the scope still holds
    naive = mid.astimezone(dt.UTC).replace(tzinfo=None)  # no zone: UTC
    assert since(naive) == since(mid)
    in_tokyo = mid.astimezone(dt.timezone(dt.timedelta(hours=9)))  # the same instant in another zone
    assert since(in_tokyo) == since(mid)
    assert since(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)) == []
    api.call("admin", "GET", "/v1/cases?updated_since=yesterday", expect=422)
