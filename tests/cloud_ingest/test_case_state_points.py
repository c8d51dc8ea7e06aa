"""The supervisors' steps on alert cases become ``alert_state`` points: the registry's real app (SQLite),
a real influxd; an outage of either leaves the poll's cursor where it was, a poll that has more than its
pages goes on at the next one, and a step polled twice is one point."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from cloud_ingest import InfluxClient
from cloud_ingest import case_state_points as csp
from cloud_ingest.case_state_points import CaseStatePoller
from device_registry import Role
from device_registry.db import connect, upgrade
from tests.support.registry_api import Api
from zhijian_cli.servers import free_port

T0 = 1_764_000_000_000


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    upgrade(url)
    engine = connect(url)
    a = Api(engine)
    a.token("admin", Role.ADMIN)
    a.token("tech", Role.TECHNICIAN)
    a.token("ingest", Role.INGEST)
    a.token("sup-nanshan", Role.SUPERVISOR, districts=["nanshan"])
    a.call("admin", "POST", "/v1/districts", {"id": "nanshan", "name": "Nanshan"}, 201)
    a.call("tech", "POST", "/v1/bases", {"id": "base-7", "name": "Veg base", "district_id": "nanshan"}, 201)
    base_device = {"id": "base-0007", "profile": "soil-rs485", "serial_no": "B7", "base_id": "base-7"}
    a.call("tech", "POST", "/v1/devices", base_device, 201)
    yield a
    a.client.close()
    engine.dispose()


def open_alert(api: Api, n: int) -> int:
    alert_id = f"base-0007:fault.ph:{T0 + n}"
    event = {"event_key": f"alert:{alert_id}", "type": "alert", "device": "base-0007", "ts": T0 + n, "seq": n,
             "rule": "sensor_fault", "severity": "medium", "alert_id": alert_id, "subject": "base-0007",
             "detail": {"channel": "ph", "fault": "stuck"}}  # fmt: skip
    (result,) = api.call("ingest", "POST", "/v1/case-events", {"events": [event]})["results"]
    return int(result["case_id"])


def poller_on(api: Api, influx: InfluxClient, base_url: str | None = None) -> CaseStatePoller:
    """A poller on the registry's app (or on ``base_url``, where nobody answers), with an admin token."""
    client = httpx.Client(base_url=base_url, timeout=2) if base_url else TestClient(api.client.app)
    client.headers["Authorization"] = f"Bearer {api.tokens['admin']}"
    return CaseStatePoller(client, influx)


def states(influx: InfluxClient) -> list[tuple[str, str, str]]:
    rows = influx.rows('SELECT state, actor, "base" FROM "alert_state"')
    return [(r["state"], r["actor"], r["base"]) for r in rows]


def test_steps_are_written_once_and_outages_keep_the_cursor(api: Api, influx: InfluxClient) -> None:
    case = open_alert(api, 1)
    api.call("sup-nanshan", "POST", f"/v1/cases/{case}/acknowledge", {})

    away = poller_on(api, influx, f"http://127.0.0.1:{free_port()}")  # the registry is not there
    cursor = away.since
    assert away.poll() is False and away.since == cursor and away.failures == 1
    dead_influx = InfluxClient("http://127.0.0.1:9", "x", retries=0, timeout_s=0.5)
    blind = poller_on(api, dead_influx)  # the registry answers, InfluxDB does not
    cursor = blind.since
    assert blind.poll() is False and blind.since == cursor and blind.points_written == 0

    poller = poller_on(api, influx)
    before = dt.datetime.now(dt.UTC)
    assert poller.poll() is True and poller.points_written == 1
    actor = api.call("admin", "GET", f"/v1/cases/{case}")["history"][-1]["actor"]  # the registry's name for them
    assert actor.endswith(":sup-nanshan") and states(influx) == [("acknowledged", actor, "base-7")]
    assert before - dt.timedelta(seconds=csp.OVERLAP_S + 1) <= poller.since <= before  # back by the overlap
    assert poller.poll() is True and poller.points_written == 2  # the overlap reads it again: the same point
    assert len(states(influx)) == 1

    api.call("sup-nanshan", "POST", f"/v1/cases/{case}/assign", {"to": "Agriculture team 3"})
    assert poller.poll() is True
    assert [s for s, _, _ in states(influx)] == ["acknowledged", "assigned"]
    row = influx.rows('SELECT last("open") AS open FROM "alert_state"')[0]
    assert row["open"] == 0


def test_a_poll_reads_a_bounded_number_of_pages_and_goes_on_next_time(
    api: Api, influx: InfluxClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csp, "PAGE", 2)
    monkeypatch.setattr(csp, "MAX_PAGES", 1)
    cases = [open_alert(api, n) for n in range(5)]
    for case in cases:
        api.call("sup-nanshan", "POST", f"/v1/cases/{case}/acknowledge", {})
    poller = poller_on(api, influx)
    written = []
    for _ in range(4):
        assert poller.poll() is True
        written.append(len(states(influx)))
    assert written[0] == 2 and written[-1] == 5  # two cases a poll, then the rest, none lost
    ids = {r["id"] for r in influx.rows('SELECT state, "id" FROM "alert_state"')}
    assert ids == {f"base-0007:fault.ph:{T0 + n}" for n in range(5)}
