"""Identities are bound: on a real Mosquitto configured as we generate and ship it, with the registry's
password file and ACL, a provisioned device that connects with the ingest's client id or another device's
gets its own id instead (``use_username_as_clientid``), so it takes over nobody's session: the real
ingest (`zhijian ingest run`) and the victim's agent publisher stay connected through a stream of such
attempts and every record arrives in InfluxDB.

Without the binding the same attack disconnects the victims at each attempt (measured before the
binding: 68 % of records lost; the broker log then shows "Client zhijian-ingest-1 already connected,
closing old connection").
"""

from __future__ import annotations

import getpass
import re
import signal
import ssl
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud_ingest import InfluxClient
from device_profiles.records import EXAMPLE_SALE
from edge_agent import BrokerConfig
from edge_agent.outbox import Outbox
from edge_agent.publisher import Publisher
from tests.support.fleet import ATTACKER, INGEST, VICTIM, Fleet, start_ingest
from tests.support.waiting import wait_until
from zhijian_cli.servers import InfluxServer, MosquittoServer, free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


class Probe:
    """One MQTT connection as ``user`` sending ``client_id``; records its CONNACK and disconnections."""

    def __init__(self, port: int, user: str, password: str, client_id: str, *, ca_file: Path | None = None) -> None:
        self.answers: list[str] = []
        self.disconnects = 0
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(user, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.on_connect = lambda _c, _u, _f, reason, _p: self.answers.append(str(reason))
        self.client.on_disconnect = self._on_disconnect
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert wait_until(lambda: bool(self.answers), 20), f"no CONNACK for {user} as {client_id!r}"

    def _on_disconnect(self, *_: object) -> None:
        self.disconnects += 1

    @property
    def connected(self) -> bool:
        return self.client.is_connected()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def attack(port: int, password: str, client_ids: list[str], *, period_s: float = 1.0, **kw: object) -> list[str]:
    """Connect as the attacking device once per ``period_s`` with each of ``client_ids``; CONNACK answers."""
    answers = []
    for client_id in client_ids:
        started = time.monotonic()
        probe = Probe(port, ATTACKER, password, client_id, **kw)  # type: ignore[arg-type]
        time.sleep(0.3)  # hold it a moment, as a takeover would
        probe.close()
        answers += probe.answers
        time.sleep(max(0.0, period_s - (time.monotonic() - started)))
    return answers


def sale(n: int) -> dict[str, object]:
    return {**EXAMPLE_SALE, "txn": n, "ts": 1_764_000_000_000 + n * 1000}


def test_a_device_using_the_ingests_or_another_devices_client_id_takes_over_nothing(
    fleet: Fleet, broker: MosquittoServer, influxd: InfluxServer, tmp_path: Path
) -> None:
    db = f"takeover_{tmp_path.name}"[:60]
    proc, ingest_log = start_ingest(fleet, broker.port, influxd.url, db, tmp_path)
    influx = InfluxClient(influxd.url, db)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    victim = Publisher(
        device_id=VICTIM,
        key=fleet.keys[VICTIM],
        boot="0123456789abcdef0123456789abcdef",
        outbox=outbox,
        broker=BrokerConfig(port=broker.port, username=VICTIM, password=fleet.passwords[VICTIM]),
        linger_s=0.02,
    )
    try:
        assert wait_until(lambda: "ingest connected" in ingest_log.read_text(), 30), ingest_log.read_text()
        victim.start()
        assert victim.connected.wait(20)
        client_ids = [INGEST, VICTIM] * 6  # every ~1 s, 12 attempts
        answers: list[str] = []
        attacker = threading.Thread(
            target=lambda: answers.extend(attack(broker.port, fleet.passwords[ATTACKER], client_ids)), daemon=True
        )
        attacker.start()
        sent = 0
        while attacker.is_alive():  # the victim sells all through the attack
            sent += 1
            outbox.put(sale(sent))
            time.sleep(0.02)
        attacker.join()

        def stored() -> int:
            series = influx.query('SELECT count("amount_fen") FROM "sale"')
            return int(series[0]["values"][0][1]) if series else 0

        wait_until(lambda: stored() == sent, 90)
        broker_log = broker.log_path.read_text()
        ingest_text = ingest_log.read_text()
        print(
            f"takeover attempts {len(client_ids)} ({answers.count('Success')} admitted), "
            f"victim agent connections {victim.connects}, ingest connections {ingest_text.count('ingest connected')}, "
            f"takeovers in the broker log {broker_log.count('already connected, closing old connection')}, "
            f"records sent {sent}, stored {stored()}"
        )
        assert stored() == sent, "records were lost"
        # the broker admitted the attacker each time, but under its own id: it took over nothing
        assert answers == ["Success"] * len(client_ids)
        assert len(re.findall(rf" as {ATTACKER} \(p5, c1, k60, u'{ATTACKER}'\)", broker_log)) == len(client_ids)
        assert "already connected, closing old connection" not in broker_log
        # the victims kept their sessions: one connection each, nothing lost
        assert victim.connects == 1 and victim.connected.is_set()
        assert ingest_text.count("ingest connected") == 1 and "ingest disconnected" not in ingest_text, ingest_text
        assert wait_until(lambda: outbox.depth == 0, 30), outbox.depth
    finally:
        victim.stop()
        outbox.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        influx.query(f'DROP DATABASE "{db}"', method="POST")
        influx.close()


def test_a_client_id_is_always_the_accounts_name(fleet: Fleet, broker: MosquittoServer) -> None:
    """Shown by what a forged id takes over: only the account's own session, never the one it names."""
    victim = Probe(broker.port, VICTIM, fleet.passwords[VICTIM], VICTIM)
    ingest = Probe(broker.port, INGEST, fleet.passwords[INGEST], INGEST)
    own = Probe(broker.port, ATTACKER, fleet.passwords[ATTACKER], ATTACKER)  # the attacker's own, legitimate one
    forged: list[Probe] = []
    try:
        assert [victim.answers, ingest.answers, own.answers] == [["Success"]] * 3
        forged.append(Probe(broker.port, ATTACKER, fleet.passwords[ATTACKER], VICTIM))
        assert forged[-1].answers == ["Success"]
        assert wait_until(lambda: not own.connected, 20), "the forged connection did not replace the device's own"
        forged.append(Probe(broker.port, ATTACKER, fleet.passwords[ATTACKER], INGEST))
        assert forged[-1].answers == ["Success"]
        assert wait_until(lambda: not forged[0].connected, 20)
        forged.append(Probe(broker.port, ATTACKER, fleet.passwords[ATTACKER], ""))  # none: the broker's own choice
        assert wait_until(lambda: not forged[1].connected, 20)
        # a service account is bound the same way: it cannot take over a device either
        forged.append(Probe(broker.port, "zhijian-admin", fleet.passwords["zhijian-admin"], VICTIM))
        assert forged[-1].answers == ["Success"]
        time.sleep(1.0)  # a takeover is immediate; give it time to show if it happened
        assert victim.connected and ingest.connected
        assert victim.disconnects == 0 and ingest.disconnects == 0
    finally:
        for probe in (victim, ingest, own, *forged):
            probe.close()


def shipped_config(tmp_path: Path, fleet: Fleet, ports: tuple[int, int]) -> tuple[str, Path]:
    """deploy/mosquitto/zhijian.conf after a Debian-like mosquitto.conf, paths and ports swapped for ours."""
    from device_registry.local_ca import LocalCA

    ca = LocalCA(tmp_path / "ca")
    server = ca.issue("broker", hosts=("127.0.0.1", "localhost"))
    text = (ROOT / "deploy" / "mosquitto" / "zhijian.conf").read_text()
    swaps = {
        "/etc/mosquitto/zhijian/passwd": str(fleet.sync.passwd_file),
        "/etc/mosquitto/zhijian/acl": str(fleet.sync.acl_file),
        "/etc/zhijian/ca/ca.pem": str(ca.cert_path),
        "/etc/zhijian/ca/broker.pem": str(server.cert),
        "/etc/zhijian/ca/broker.key": str(server.key),
        "listener 8883\n": f"listener {ports[0]} 127.0.0.1\n",
        "listener 1883 127.0.0.1\n": f"listener {ports[1]} 127.0.0.1\n",
    }
    for old, new in swaps.items():
        assert old in text, old
        text = text.replace(old, new)
    state = tmp_path / "shipped"
    debian = f"user {getpass.getuser()}\npersistence true\npersistence_location {state}/\nlog_type all\n"
    return debian + text, ca.cert_path


class ShippedBroker(MosquittoServer):
    def __init__(self, state_dir: Path, text: str, port: int) -> None:
        super().__init__(state_dir, port=port)
        self._text = text

    def config_text(self) -> str:
        return self._text


def test_the_shipped_broker_config_binds_client_ids_on_both_listeners(fleet: Fleet, tmp_path: Path) -> None:
    tls_port, local_port = free_port(), free_port()
    text, ca_file = shipped_config(tmp_path, fleet, (tls_port, local_port))
    generated = MosquittoServer(tmp_path / "g", auth=(fleet.sync.passwd_file, fleet.sync.acl_file)).config_text()
    for line in (
        "max_queued_messages",
        "max_queued_bytes",
        "max_inflight_messages",
        "message_size_limit",
        "persistence",
        "autosave_on_changes",
        "autosave_interval",
    ):
        ours = next(x for x in generated.splitlines() if x.startswith(line + " "))
        assert ours in text.splitlines(), f"deploy/mosquitto/zhijian.conf and servers.py disagree on {line}"
    with ShippedBroker(tmp_path / "shipped", text, local_port):
        ingest = Probe(local_port, INGEST, fleet.passwords[INGEST], INGEST)
        victim = Probe(tls_port, VICTIM, fleet.passwords[VICTIM], VICTIM, ca_file=ca_file)
        try:
            assert ingest.answers == ["Success"] and victim.answers == ["Success"]
            password = fleet.passwords[ATTACKER]
            answers = attack(tls_port, password, [INGEST, VICTIM], period_s=0.5, ca_file=ca_file)
            answers += attack(local_port, password, [INGEST, VICTIM], period_s=0.5)
            assert answers == ["Success"] * 4
            time.sleep(1.0)
            assert ingest.connected and victim.connected and ingest.disconnects == victim.disconnects == 0
            # and the data path works through it: the device over TLS, the ingest on the loopback listener
            got: list[str] = []
            subscribed = threading.Event()
            ingest.client.on_message = lambda _c, _u, m: got.append(m.topic)
            ingest.client.on_subscribe = lambda *_: subscribed.set()
            ingest.client.subscribe(f"zhijian/v1/{VICTIM}/data", qos=1)
            assert subscribed.wait(20)
            victim.client.publish(f"zhijian/v1/{VICTIM}/data", b"{}", qos=1).wait_for_publish(10)
            assert wait_until(lambda: got == [f"zhijian/v1/{VICTIM}/data"], 20), got
        finally:
            ingest.close()
            victim.close()
