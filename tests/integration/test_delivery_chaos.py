"""Nothing accepted is lost: real `zhijian agent run` processes reading simulated scales, a real Mosquitto with
the registry's accounts and ACL, the real `zhijian ingest run`, a real influxd; exact accounting by sale.

- Mosquitto SIGKILLed three times while the ingest is stopped and sales flow: the broker loses what it
  held in memory, the agents still have it (their records wait for the cloud's acknowledgement, not the
  broker's PUBACK) and send it again: every sale is stored.
- An agent whose publishes the ACL refuses: no record leaves its outbox, the reason is in its status; once
  the ACL is fixed, everything arrives.
- A scale provisioned while the ingest runs and started at once: its first messages are held (not dead-
  lettered) until the ingest has read the registry again, and every sale is stored.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cloud_ingest import InfluxClient
from device_registry.schemas import DeviceIn, ProvisionIn
from tests.support.fleet import VICTIM, Fleet, start_ingest
from tests.support.registry import open_registry
from tests.support.seller import Seller
from tests.support.waiting import wait_until
from zhijian_cli.servers import InfluxServer, MosquittoServer

pytestmark = pytest.mark.integration


class AgentProcess:
    """`zhijian agent run` for one provisioned scale, reading a simulated scale on a pty."""

    def __init__(self, tmp_path: Path, device: str, port: int, password: str, key: bytes, seller: Seller) -> None:
        self.state_dir = tmp_path / f"agent-{device}"
        self.bundle = tmp_path / f"{device}.yaml"
        self.bundle.write_text(
            yaml.safe_dump(
                {
                    "device_id": device,
                    "key_hex": key.hex(),
                    "state_dir": str(self.state_dir),
                    "broker": {"host": "127.0.0.1", "port": port, "username": device, "password": password},
                    "sources": [{"profile": "zj-pcs-30", "port": seller.server.port}],
                    "cloud_ack_timeout_s": 5,
                    "status_interval_s": 2,
                }
            )
        )
        self.log_path = tmp_path / f"agent-{device}.log"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "zhijian_cli", "agent", "run", "--config", str(self.bundle)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def status(self) -> dict:
        try:
            return json.loads((self.state_dir / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def seller() -> Iterator[Seller]:
    s = Seller(period_s=0.05)
    yield s
    s.close()


def stored_txns(influx: InfluxClient, device: str) -> set[int]:
    return {int(r["txn"]) for r in influx.rows(f"SELECT txn FROM sale WHERE device='{device}'")}


def sold_txns(seller: Seller) -> set[int]:
    return set(range(1, seller.sold + 1))  # the simulated scale numbers its transactions from 1


def test_mosquitto_killed_three_times_while_the_ingest_is_stopped_loses_no_sale(
    fleet: Fleet, broker: MosquittoServer, influxd: InfluxServer, seller: Seller, tmp_path: Path
) -> None:
    db = f"chaos_{tmp_path.name}"[:60]
    influx = InfluxClient(influxd.url, db)
    ingest, ingest_log = start_ingest(fleet, broker.port, influxd.url, db, tmp_path)
    agent = AgentProcess(tmp_path, VICTIM, broker.port, fleet.passwords[VICTIM], fleet.keys[VICTIM], seller)
    try:
        assert wait_until(lambda: "ingest connected" in ingest_log.read_text(), 60), ingest_log.read_text()
        seller.selling.set()
        assert wait_until(lambda: len(stored_txns(influx, VICTIM)) >= 5, 60), agent.log_path.read_text()
        ingest.terminate()
        ingest.wait(30)
        for _ in range(3):  # sales flow into the broker, which dies before it saves them
            time.sleep(3)
            broker.kill()
            time.sleep(0.5)
            broker.start()
        time.sleep(2)
        seller.selling.clear()
        ingest, ingest_log = start_ingest(fleet, broker.port, influxd.url, db, tmp_path)
        assert wait_until(lambda: stored_txns(influx, VICTIM) == sold_txns(seller), 180), (
            f"{len(sold_txns(seller) - stored_txns(influx, VICTIM))} of {seller.sold} sales missing",
            agent.status(),
        )
        assert wait_until(lambda: agent.status().get("outbox_depth") == 0, 60), agent.status()
        assert agent.status()["acknowledged_records"] >= seller.sold
    finally:
        agent.stop()
        ingest.terminate()
        ingest.wait(30)
        influx.close()
    assert seller.sold > 100


def test_an_agent_the_acl_refuses_keeps_every_record_and_says_why(
    fleet: Fleet, broker: MosquittoServer, influxd: InfluxServer, seller: Seller, tmp_path: Path
) -> None:
    db = f"acl_{tmp_path.name}"[:60]
    influx = InfluxClient(influxd.url, db)
    acl = fleet.sync.acl_file.read_text()
    fleet.sync.acl_file.write_text(acl.replace("pattern write zhijian/v1/%u/data\n", ""))  # an operator's mistake
    broker.reload()
    ingest, ingest_log = start_ingest(fleet, broker.port, influxd.url, db, tmp_path)
    agent = AgentProcess(tmp_path, VICTIM, broker.port, fleet.passwords[VICTIM], fleet.keys[VICTIM], seller)
    try:
        assert wait_until(lambda: "ingest connected" in ingest_log.read_text(), 60)
        seller.selling.set()
        assert wait_until(lambda: agent.status().get("refused_publishes", 0) >= 2, 60), agent.status()
        time.sleep(2)
        seller.selling.clear()
        status = agent.status()
        assert "Not authorized" in status["last_error"] and status["published_records"] == 0, status
        assert status["outbox_depth"] >= 1 and stored_txns(influx, VICTIM) == set()
        fleet.sync.acl_file.write_text(acl)  # fixed: SIGHUP, and what waited arrives
        broker.reload()
        assert wait_until(lambda: stored_txns(influx, VICTIM) == sold_txns(seller), 120), agent.status()
        assert wait_until(lambda: agent.status().get("outbox_depth") == 0, 60), agent.status()
        assert "the broker accepts our publishes again" in agent.log_path.read_text()
    finally:
        agent.stop()
        ingest.terminate()
        ingest.wait(30)
        influx.close()


def test_a_scale_started_at_once_after_provisioning_loses_nothing(
    fleet: Fleet, broker: MosquittoServer, influxd: InfluxServer, seller: Seller, tmp_path: Path
) -> None:
    from device_registry.db import connect

    db = f"newdev_{tmp_path.name}"[:60]
    influx = InfluxClient(influxd.url, db)
    # the ingest looks at the registry every 30 s only; a device it does not know makes it look at once
    ingest, ingest_log = start_ingest(
        fleet, broker.port, influxd.url, db, tmp_path, extra="ZHIJIAN_REGISTRY_REFRESH_S=30\n"
    )
    agent = None
    try:
        assert wait_until(lambda: "ingest connected" in ingest_log.read_text(), 60)
        engine = connect(fleet.url)
        reg = open_registry(engine)
        reg.register(DeviceIn(id="scale-0003", profile="zj-pcs-30", serial_no="S3", market_id="futian-no1",
                              stall_code="A-017"))  # fmt: skip
        bundle = reg.provision("scale-0003", ProvisionIn()).bundle
        fleet.sync.apply(reg.db)
        reg.db.close()
        engine.dispose()
        broker.reload()
        seller.selling.set()
        assert bundle.broker.password is not None
        agent = AgentProcess(tmp_path, "scale-0003", broker.port, bundle.broker.password, bundle.key, seller)
        assert wait_until(lambda: seller.sold >= 40, 60)
        seller.selling.clear()
        assert wait_until(lambda: stored_txns(influx, "scale-0003") == sold_txns(seller), 120), (
            len(stored_txns(influx, "scale-0003")),
            seller.sold,
            agent.status(),
        )
        states = influx.rows("SELECT seq FROM scale_state WHERE device='scale-0003'")
        assert len(states) == 1  # its first record, the scale's state, too
        assert "scale-0003 is not known yet" in ingest_log.read_text()  # held, then stored
        dead = tmp_path / "dead.sqlite"
        if dead.exists():
            import sqlite3

            with sqlite3.connect(dead) as con:
                assert con.execute("SELECT COUNT(*) FROM dead_letter WHERE device='scale-0003'").fetchone()[0] == 0
    finally:
        if agent is not None:
            agent.stop()
        ingest.terminate()
        ingest.wait(30)
        influx.close()
