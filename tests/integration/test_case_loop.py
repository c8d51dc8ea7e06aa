"""The planting-base loop closed end to end on real servers: a sensor gateway's agent (Modbus sensors with
a broken pH probe) → Mosquitto → the ingest worker as `zhijian ingest run` builds it, reporting to a real
registry (`zhijian registry serve`) → a case; the district supervisor acknowledges and assigns it with the
CLI, cannot close it yet; the base acknowledges on its gateway, the reply reaches the ingest and the case;
the supervisor closes it; the `case` series shows none left open."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest

from cloud_ingest import DeviceFile, InfluxClient, IngestSettings
from cloud_ingest.metrics import IngestCollector
from dashboards import Expansion, Variable, boards
from dashboards.alerting import rules
from dashboards.case_queries import CASE_QUERIES
from dashboards.expand import Interval, backend_macros
from device_profiles import builtin
from edge_agent import Agent, BrokerConfig, ModbusBus, ModbusSource
from firmware_sim.modbus_sensor import ModbusSensorServer, SensorModel
from tests.support.case_panels import expand
from tests.support.cli_helpers import cli
from tests.support.registry_server import call, init_registry, registry_env, seed_case_places, serve_registry
from tests.support.waiting import wait_until
from zhijian_cli.ingest_devices import build_worker
from zhijian_cli.servers import MosquittoServer, free_port


@pytest.mark.integration
def test_a_base_alert_is_closed_in_a_loop(mosquitto: MosquittoServer, influx: InfluxClient, tmp_path: Path) -> None:
    env = registry_env(f"sqlite:///{tmp_path / 'registry.sqlite'}", tmp_path)
    admin = init_registry(env)
    key = secrets.token_bytes(32)
    with serve_registry(env, free_port(), tmp_path / "registry.log") as url:
        tokens = seed_case_places(url, admin)
        settings = IngestSettings(
            mqtt_port=mosquitto.port,
            mqtt_client_id="case-loop-ingest",
            batch_max_ms=50,
            state_path=tmp_path / "ingest_state.sqlite",
            spool_path=tmp_path / "spool.sqlite",
            registry_api_url=url,
            registry_api_token=tokens["ingest"],
            case_counts_interval_s=0.5,
        )
        worker = build_worker(settings, influx, DeviceFile({"base-0007": {"key": key.hex()}})).start()
        sensor = SensorModel(builtin("soil-rs485"))
        sensor.faults["ph"] = "out_of_range"
        port = free_port()
        sup = f"case --api {url} --token {tokens['sup-nanshan']}"
        with ModbusSensorServer([sensor], tcp_port=port):
            agent = Agent(
                device_id="base-0007",
                key=key,
                outbox_path=tmp_path / "outbox.sqlite",
                broker=BrokerConfig(port=mosquitto.port),
                sources=[ModbusSource(builtin("soil-rs485"), ModbusBus(f"tcp://127.0.0.1:{port}"), interval_s=0.5)],
            ).start()
            try:
                assert wait_until(lambda: bool(agent.open_alerts), 60), "the alert reaches the base"
                (alert_id,) = agent.open_alerts

                def cases() -> list[dict]:  # type: ignore[type-arg]
                    code, out = cli(f"{sup} list --json")
                    assert code == 0, out
                    return json.loads(out)  # type: ignore[no-any-return]

                assert wait_until(lambda: len(cases()) == 1, 60), "the alert opens a case"
                (case,) = cases()
                assert (case["alert_id"], case["place"], case["state"]) == (alert_id, "base-7", "open")
                assert cli(f"{sup} ack {case['id']}")[0] == 0
                assert cli(f"{sup} assign {case['id']} --to 'Agriculture team 3'")[0] == 0
                code, out = cli(f"{sup} close {case['id']} --outcome rectified")
                assert code == 1 and "has not acknowledged its rectification" in out
                # the base fixes the probe (a fault still there would alert again at once: a new case), its
                # readings come back clean, and the base manager confirms on the gateway; the reply goes up to
                # the ingest and on to the case
                fixed_ns = time.time_ns()
                sensor.faults.pop("ph")
                assert wait_until(lambda: bool(influx.rows(f"SELECT * FROM soil WHERE time > {fixed_ns + 10**9}")), 60)
                agent.handle_command({"id": "op-1", "cmd": "ack_alert", "args": {"alert_id": alert_id, "by": "Li"}})
                shown = lambda: call(url, tokens["sup-nanshan"], "GET", f"/v1/cases/{case['id']}")  # noqa: E731
                assert wait_until(lambda: shown()["base_ack_by"] == "Li", 60), "the base's ack reaches the case"
                code, out = cli(f"{sup} close {case['id']} --outcome rectified")
                assert code == 0 and "CLOSED (rectified)" in out, out
                assert worker.acknowledged_alerts == 1 and worker.case_reporter is not None
                assert worker.case_reporter.results["opened"] == 1 and worker.case_reporter.results["recorded"] == 1

                def nanshan_open() -> list[int]:
                    now = int(time.time() * 1000)
                    q = expand(CASE_QUERIES["cases_by_district_now"], from_ms=now - 600_000, to_ms=now + 60_000)
                    return [r["cases"] for r in influx.rows(q) if r["district"] == "nanshan"]

                assert wait_until(lambda: nanshan_open() != [] and not any(nanshan_open()), 60), nanshan_open()

                # alert_state, for the bases board and the "unacknowledged for N hours" rule: the opening and
                # the base's ack from the ingest, each supervisor's step polled from the registry
                def steps() -> list[tuple[str, int, str]]:
                    rows = influx.rows(f"SELECT state, open, actor FROM \"alert_state\" WHERE id = '{alert_id}'")
                    return [(r["state"], r["open"], r["actor"]) for r in rows]

                order = ["open", "acknowledged", "assigned", "acknowledged", "closed"]
                assert wait_until(lambda: [s for s, _, _ in steps()] == order, 60), steps()
                assert [o for _, o, _ in steps()] == [1, 0, 0, 0, 0] and steps()[3][2] == "Li"
                assert steps()[0][2] == "base-0007" and steps()[4][2].endswith(":sup-nanshan")
                now = int(time.time() * 1000)
                table = next(p for b in boards() if b.uid == "zj-bases" for p in b.panels if "Alert state" in p.title)
                shown_state = Expansion(
                    from_ms=now - 3_600_000, to_ms=now + 60_000, variables={"base": Variable.many("base", ["base-7"])}
                ).expand(table.queries[0].text)
                assert [(r["id"], r["state"], r["open"]) for r in influx.rows(shown_state)] == [(alert_id, "closed", 0)]
                rule = next(r for r in rules() if r.uid == "zj-base-unacknowledged").queries[0].query.text
                still_open = backend_macros(rule, now - 7 * 86_400_000, now, Interval(60_000, "1m"))
                assert [s["values"][0][1] for s in influx.query(still_open)] in ([0], [0, 0])  # nothing left open
                scraped = {m.name: m.samples[0].value for m in IngestCollector(worker).collect() if m.samples}
                assert scraped["zhijian_ingest_case_state_poll_failures"] == 0
                assert scraped["zhijian_ingest_alert_states_dropped"] == 0
            finally:
                agent.stop()
                worker.stop(end_session=True)
