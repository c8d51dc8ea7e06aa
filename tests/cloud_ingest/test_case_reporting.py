"""The ingest reports alerts, flags and the base's acknowledgement to the registry's cases: the real
pipeline on a real influxd, a real registry API process (`zhijian registry serve`) that is down at first.
Nothing is lost while it is away, the batch path never waits for it, a redelivery opens no second case,
and the `case` series the dashboards read follows the registry."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from anti_cheat import Engine, ScaleFacts
from cloud_ingest import InfluxClient, Pipeline
from cloud_ingest.case_outbox import CaseOutbox
from cloud_ingest.case_reporter import CaseReporter
from cloud_ingest.case_state_points import STEPS
from cloud_ingest.device_messages import take_reply
from cloud_ingest.sensor_alerts import AlertBook
from cloud_ingest.sequences import SequenceBook
from cloud_ingest.state_store import StateStore
from dashboards.case_queries import CASE_QUERIES
from device_profiles import encode
from device_profiles.metrology import ScaleFact
from tests.support.case_panels import expand
from tests.support.envelopes import BOOT, KEY, sale
from tests.support.registry_server import call, init_registry, registry_env, seed_case_places, serve_registry
from tests.support.waiting import wait_until
from zhijian_cli.servers import free_port

T0 = 1_764_000_000_000


def pipeline_on(state: StateStore, influx: InfluxClient) -> Pipeline:
    facts = ScaleFacts()
    facts.set("scale-0001", ScaleFact(coefficient=20_000.0, e_mg=5_000, calibration_events=3, configuration_events=7))
    pipe = Pipeline(
        key_for=lambda device: KEY,
        engine=Engine(facts),
        store=influx,
        sequences=SequenceBook(state),
        alert_book=AlertBook(state),
    )
    pipe.case_outbox = CaseOutbox(state)
    return pipe


def chip_sales(seq: int) -> tuple[str, bytes]:
    """An honest sale and one whose load-cell counts say 25 g less than the display: a coefficient flag."""
    records = [sale(txn=seq, raw_counts=120_000 + 5_500), sale(txn=seq + 1, raw_counts=120_000 + 5_000)]
    raw = encode(device="scale-0001", boot=BOOT, seq=seq, sent_ms=1, records=records, key=KEY)
    return "zhijian/v1/scale-0001/data", raw


def fault(seq: int) -> tuple[str, bytes]:
    record = {"type": "sensor_fault", "ts": T0, "channel": "ph", "fault": "stuck"}
    return "zhijian/v1/base-0007/data", encode(
        device="base-0007", boot=BOOT, seq=seq, sent_ms=1, records=[record], key=KEY
    )


@pytest.mark.integration
def test_cases_follow_the_ingest_through_a_registry_outage(influx: InfluxClient, tmp_path: Path) -> None:
    env = registry_env(f"sqlite:///{tmp_path / 'registry.sqlite'}", tmp_path)
    admin = init_registry(env)
    port = free_port()
    state = StateStore(tmp_path / "ingest_state.sqlite")
    pipe = pipeline_on(state, influx)
    outbox = pipe.case_outbox
    assert outbox is not None
    # the registry hangs (a socket that never answers): the reporter waits on it, the batch path does not
    hole = socket.create_server(("127.0.0.1", 0))
    stuck = CaseReporter(outbox, api_url=f"http://127.0.0.1:{hole.getsockname()[1]}", token="zjt_x", timeout_s=8)
    stuck.start()
    try:
        flags = pipe.process([chip_sales(10), fault(1)])
        assert wait_until(lambda: stuck.loop.steps == 0 and outbox.depth == 2, 60), "the reporter is posting"
        time.sleep(0.5)  # inside its call now
        started = time.monotonic()
        pipe.process([chip_sales(20)])
        assert time.monotonic() - started < 4  # well below the reporter's 8 s wait
    finally:
        stuck.stop()
        hole.close()
    assert [f.rule for f in flags] == ["coefficient"] and outbox.depth == 3 and stuck.failures == 1
    with serve_registry(env, port, tmp_path / "registry.log") as url:
        tokens = seed_case_places(url, admin)
        reporter = CaseReporter(outbox, api_url=f"http://127.0.0.1:{free_port()}", token=tokens["ingest"])
        assert reporter.deliver() == 0 and reporter.failures == 1 and outbox.depth == 3  # nobody there: kept
        reporter.stop()
        # the ingest restarts (its outbox is in its state file) and the registry is there now
        state.close()
        state = StateStore(tmp_path / "ingest_state.sqlite")
        pipe = pipeline_on(state, influx)
        outbox = pipe.case_outbox
        assert outbox is not None and outbox.depth == 3
        reporter = CaseReporter(outbox, api_url=url, token=tokens["ingest"], influx=influx, counts_interval_s=0.2)
        reporter.start()
        try:
            assert wait_until(lambda: outbox.depth == 0, 60), "the outbox drains once the registry answers"
            assert reporter.results == {"opened": 2, "attached": 1}
            cases = call(url, tokens["admin"], "GET", "/v1/cases")["items"]
            flag_case, alert_case = sorted(cases, key=lambda c: c["source"] != "flag")
            assert flag_case["rule"] == "coefficient" and flag_case["occurrences"] == 2
            assert flag_case["place"] == "futian-no1/A-017" and flag_case["market_id"] == "futian-no1"
            assert alert_case["rule"] == "sensor_fault" and alert_case["place"] == "base-7"
            # the same events again (an answer lost after the registry committed): nothing doubles
            outbox.put(json.loads(json.dumps(e)) for e in [*_events(cases, tokens, url)])
            assert wait_until(lambda: outbox.depth == 0, 60), "the redelivered events are taken"
            assert reporter.results["duplicate"] == 2
            assert call(url, tokens["admin"], "GET", "/v1/cases")["total"] == 2

            # the district supervisor works the base's case; closing waits for the base
            sup, path = tokens["sup-nanshan"], f"/v1/cases/{alert_case['id']}"
            call(url, sup, "POST", f"{path}/acknowledge", {})
            call(url, sup, "POST", f"{path}/assign", {"to": "Agriculture team 3"})
            refused = call(url, sup, "POST", f"{path}/close", {"outcome": "rectified"}, expect=409)
            assert "not acknowledged its rectification" in refused["detail"]
            # the base's gateway confirms on its reply topic (what its agent sends after ack_alert)
            reply = {"id": "op-1", "ok": True, "ack_alert": {"alert_id": alert_case["alert_id"], "by": "Li", "ts": T0}}
            assert take_reply(pipe, "base-0007", json.dumps(reply).encode())
            assert wait_until(lambda: call(url, sup, "GET", path)["base_ack_by"] == "Li", 60), (
                "the base's ack reaches the case"
            )
            closed = call(url, sup, "POST", f"{path}/close", {"outcome": "rectified"})
            assert [h["action"] for h in closed["history"]] == ["opened", "acknowledge", "assign", "base_ack", "close"]

            # the dashboards' series: one open flag case in futian, none left in nanshan
            def now_counts() -> dict[tuple[str, str], float]:
                now = int(time.time() * 1000)
                q = expand(CASE_QUERIES["cases_by_district_now"], from_ms=now - 3_600_000, to_ms=now + 60_000)
                return {(r["district"], r["state"]): r["cases"] for r in influx.rows(q)}

            def settled() -> bool:  # the base's case went through states the reporter may have caught: all 0 now
                counts = now_counts()
                nanshan = [n for (district, _), n in counts.items() if district == "nanshan"]
                nonzero = {k: n for k, n in counts.items() if n}
                return nonzero == {("futian", "open"): 1} and bool(nanshan) and not any(nanshan)

            assert wait_until(settled, 60), "the case counts follow the registry"
            now = int(time.time() * 1000)
            q = expand(CASE_QUERIES["cases_by_district_over_time"], from_ms=now - 600_000, to_ms=now + 60_000)
            over_time = influx.rows(q)
            assert ("futian", "open") in {(r["district"], r["state"]) for r in over_time}

            # alert_state: the opening (with the batch), the base's ack (written by the next batch or between
            # batches), and each supervisor's step, polled from the registry with the counts
            assert pipe.flush_pending() == 1
            steps = [(h["action"], h["actor"]) for h in closed["history"] if h["action"] in STEPS]
            alert_id = alert_case["alert_id"]

            def alert_states() -> list[tuple[str, int, str]]:
                rows = influx.rows(f"SELECT state, open, actor FROM \"alert_state\" WHERE id = '{alert_id}'")
                return [(r["state"], r["open"], r["actor"]) for r in rows]

            expected = [("open", 1, "base-0007"), *((STEPS[a], 0, who) for a, who in steps[:2])]
            expected += [("acknowledged", 0, "Li"), (STEPS[steps[2][0]], 0, steps[2][1])]
            assert wait_until(lambda: alert_states() == expected, 60), (alert_states(), expected)
            assert [s for s, _, _ in expected] == ["open", "acknowledged", "assigned", "acknowledged", "closed"]
            tags = influx.rows(f"SELECT * FROM \"alert_state\" WHERE id = '{alert_id}' AND state = 'closed'")[0]
            assert (tags["district"], tags["base"], tags["kind"], tags["severity"]) == (
                "nanshan", "base-7", "sensor_fault", "medium",
            )  # fmt: skip
            flag_points = influx.rows(f"SELECT * FROM \"alert_state\" WHERE id = '{flag_case['id']}'")
            assert reporter.states is not None and reporter.states.failures == 0 and not flag_points
        finally:
            reporter.stop()
            state.close()


def _events(cases: list[dict], tokens: dict[str, str], url: str) -> list[dict]:  # type: ignore[type-arg]
    """The first event of each case, as the ingest sent it (its key and body)."""
    out = []
    for case in cases:
        first = call(url, tokens["admin"], "GET", f"/v1/cases/{case['id']}")["history"][0]
        kind = case["source"]
        key = f"flag:scale-0001:{first['detail']['seq']}:coefficient" if kind == "flag" else f"alert:{case['alert_id']}"
        body = {"event_key": key, "type": kind, "device": case["device_id"], "ts": T0, "rule": case["rule"]}
        out.append(body | ({"alert_id": case["alert_id"]} if kind == "alert" else {}))
    return out
