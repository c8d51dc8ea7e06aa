"""`zhijian case …` as supervisors type it, against a real registry API process on SQLite and PostgreSQL:
each sees and acts on the cases of their scope only, and a planting-base alert closes only once the base
has acknowledged its rectification."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.cli_helpers import cli
from tests.support.registry_db import registry_url  # noqa: F401  (SQLite and PostgreSQL)
from tests.support.registry_server import call, init_registry, registry_env, seed_case_places, serve_registry
from zhijian_cli.servers import free_port

T0 = 1_764_000_000_000
ALERT = "base-0007:fault.ph:1764000000000"


def events(*events: dict[str, Any]) -> dict[str, Any]:
    return {"events": list(events)}


FLAG = {"event_key": "flag:scale-0001:11:coefficient", "type": "flag", "device": "scale-0001", "ts": T0, "seq": 11,
        "rule": "coefficient", "severity": "high", "detail": {"value": 25.0, "limit": 5.0}}  # fmt: skip
BASE_ALERT = {"event_key": f"alert:{ALERT}", "type": "alert", "device": "base-0007", "ts": T0, "seq": 1,
              "rule": "sensor_fault", "severity": "medium", "alert_id": ALERT, "subject": "base-0007",
              "detail": {"channel": "ph", "fault": "stuck"}}  # fmt: skip
BASE_ACK = {"event_key": f"base_ack:{ALERT}", "type": "base_ack", "device": "base-0007", "ts": T0 + 60_000,
            "alert_id": ALERT, "by": "base manager Li"}  # fmt: skip


def test_supervisors_work_their_cases_from_the_cli(registry_url: str, tmp_path: Path) -> None:  # noqa: F811
    env = registry_env(registry_url, tmp_path)
    admin = init_registry(env)
    with serve_registry(env, free_port(), tmp_path / "registry.log") as url:
        tokens = seed_case_places(url, admin)
        results = call(url, tokens["ingest"], "POST", "/v1/case-events", events(FLAG, BASE_ALERT))["results"]
        flag_id, alert_id = (r["case_id"] for r in results)

        def as_(who: str, command: str) -> tuple[int, str]:
            return cli(f"case --api {url} --token {tokens[who]} {command}")

        code, out = as_("sup-futian-no1", "list --json")
        assert code == 0, out
        assert [(c["id"], c["place"]) for c in json.loads(out)] == [(flag_id, "futian-no1/A-017")]
        code, out = as_("sup-nanshan-no2", f"show {flag_id}")
        assert code == 1 and f"case {flag_id!r} not found (HTTP 404)" in out
        code, out = as_("viewer", f"ack {flag_id}")
        assert code == 1 and "role viewer may not handle case (HTTP 403)" in out
        code, out = as_("sup-futian-no1", f"close {flag_id} --outcome false_alarm")
        assert code == 1 and "acknowledge the case before closing it (HTTP 409)" in out

        sup = "sup-futian-no1"
        assert as_(sup, f"ack {flag_id} --note 'seen on the big screen'")[0] == 0
        code, out = as_(sup, f"assign {flag_id} --to 'Inspector Wang'")
        assert code == 0 and "ASSIGNED" in out and "Inspector Wang" in out
        assert as_(sup, f"note {flag_id} 'receipt photographed: 250 g sold as 275 g'")[0] == 0
        code, out = as_(sup, f"close {flag_id} --outcome caught")
        assert code == 1 and "outcome: Input should be 'inspected_confirmed', 'rectified' or 'false_alarm'" in out
        code, out = as_(sup, f"close {flag_id} --outcome inspected_confirmed --json")
        assert code == 0 and json.loads(out)["state"] == "closed"
        code, out = as_(sup, f"show {flag_id}")
        assert code == 0 and "CLOSED (inspected_confirmed)" in out
        for action in ("opened", "acknowledge", "assign", "note", "close"):
            assert f" {action} " in out, (action, out)

        # the planting base's case: the district supervisor's, closed only after the base acknowledged
        sup = "sup-nanshan"
        code, out = as_(sup, "list --state open --json")
        assert [(c["rule"], c["place_kind"], c["place"]) for c in json.loads(out)] == [
            ("sensor_fault", "base", "base-7")
        ]
        code, out = as_(sup, "list")  # the table
        assert code == 0 and "cases (1 of 1)" in out
        assert as_(sup, f"ack {alert_id}")[0] == 0
        assert as_(sup, f"assign {alert_id} --to 'Agriculture team 3'")[0] == 0
        code, out = as_(sup, f"close {alert_id} --outcome rectified")
        assert code == 1 and "has not acknowledged its rectification yet" in out and "(HTTP 409)" in out
        code, out = as_(sup, f"show {alert_id}")
        assert "rectification not yet" in out
        forged = {**BASE_ACK, "event_key": f"base_ack:{ALERT}:forged", "device": "scale-0001"}  # not its alert
        (result,) = call(url, tokens["ingest"], "POST", "/v1/case-events", events(forged))["results"]
        assert result["result"] == "unmatched", result
        assert "rectification not yet" in as_(sup, f"show {alert_id}")[1]
        call(url, tokens["ingest"], "POST", "/v1/case-events", events(BASE_ACK))
        code, out = as_(sup, f"show {alert_id}")
        assert "rectification acknowledged by base manager Li" in out
        code, out = as_(sup, f"close {alert_id} --outcome rectified")
        assert code == 0 and "CLOSED (rectified)" in out

        code, out = as_("admin", "list --state closed --json")
        assert sorted(c["id"] for c in json.loads(out)) == sorted([flag_id, alert_id])
        code, out = as_("admin", "list --district nanshan --json")
        assert [c["id"] for c in json.loads(out)] == [alert_id]
        code, out = as_("admin", "list --market futian-no1 --source flag --json")
        assert [c["id"] for c in json.loads(out)] == [flag_id]
        audit = call(url, admin, "GET", "/v1/audit?limit=100")["items"]
        closed_by = {e["entity_id"]: e["actor"] for e in audit if e["entity"] == "case" and e["action"] == "close"}
        assert closed_by == {str(flag_id): closed_by[str(flag_id)], str(alert_id): closed_by[str(alert_id)]}
        assert closed_by[str(flag_id)].endswith(":sup-futian-no1") and closed_by[str(alert_id)].endswith(":sup-nanshan")


def test_what_others_wrote_prints_as_written_and_api_goes_after_the_subcommand(
    registry_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A device's sample name or a supervisor's assignee holding Rich markup, a terminal link or a
    right-to-left override shows as written (never styled, linked or reordered); --api and --token work
    after the subcommand too."""
    env = registry_env(registry_url, tmp_path)
    admin = init_registry(env)
    with serve_registry(env, free_port(), tmp_path / "registry.log") as url:
        tokens = seed_case_places(url, admin)
        hostile = {**FLAG, "detail": {"sample_name": "[link=http://evil.example]spinach[/link] [white on white]x[/]"}}
        (result,) = call(url, tokens["ingest"], "POST", "/v1/case-events", events(hostile))["results"]
        case_id = result["case_id"]
        sup = tokens["sup-futian-no1"]
        code, out = cli(f"case ack {case_id} --api {url} --token {sup}")
        assert code == 0, out
        code, out = cli(f"case assign {case_id} --to '[red]Inspector[/red] \u202eWang' --api {url} --token {sup}")
        assert code == 0, out
        code, out = cli(f"case show {case_id} --api {url} --token {sup}")
        assert code == 0, out
        assert "[link=http://evil.example]spinach[/link] [white on white]x[/]" in out, out
        assert "[red]Inspector[/red] \\u202eWang" in out and "\u202e" not in out, out
        code, out = cli(f"case list --api {url} --token {sup}")
        assert code == 0 and "[red]Inspector[/red]" in out, out
        rapid = {**FLAG, "event_key": "alert:rt-1", "type": "alert", "rule": "rapid_test_positive", "alert_id": "rt-1"}
        call(url, tokens["ingest"], "POST", "/v1/case-events", events(rapid))
        ack = {**BASE_ACK, "event_key": "base_ack:rt-1", "device": FLAG["device"], "alert_id": "rt-1"}
        (result,) = call(url, tokens["ingest"], "POST", "/v1/case-events", events(ack))["results"]
        assert result["result"] == "unmatched", result  # a rapid test's case has no base to acknowledge it
