"""A field technician's day, end to end on real servers: set up the registry, register and provision a
simulated scale with the CLI, start its agent from the bundle, see its sales in InfluxDB; record a
verification (the scale's anti-cheat baselines restart); revoke it (the broker ends its session and
refuses it, the ingest rejects it). Mosquitto runs with the registry's password file and ACL, signalled
to reload by the registry itself (through the pid file)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from anti_cheat import Engine
from cloud_ingest import InfluxClient, IngestSettings, IngestWorker, Pipeline
from device_profiles import builtin
from device_profiles.private_file import write_private
from device_registry.broker_files import acl_text, hash_password, password_file_text
from edge_agent.bundle_file import build_agent, load_bundle
from firmware_sim.pty_link import PtyLineServer
from firmware_sim.scale import ScaleFirmware
from tests.support.cli_helpers import cli
from tests.support.waiting import wait_until
from zhijian_cli.ingest_devices import registry_devices
from zhijian_cli.servers import MosquittoServer

pytestmark = pytest.mark.integration


def zhijian(command: str) -> dict:
    """``zhijian <command> --json`` as a technician types it; its JSON answer."""
    code, out = cli(f"{command} --json")
    assert code == 0, out
    return json.loads(out)


def test_provision_run_verify_and_revoke_a_scale(
    tmp_path: Path, influx: InfluxClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    passwd, acl, service = tmp_path / "passwd", tmp_path / "acl", tmp_path / "service-accounts"
    write_private(service, password_file_text({"zhijian-ingest": hash_password("ingest-pw")}))
    write_private(passwd, password_file_text({"zhijian-ingest": hash_password("ingest-pw")}))
    write_private(acl, acl_text())
    broker = MosquittoServer(tmp_path / "broker", auth=(passwd, acl)).start()
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    env = {
        "ZHIJIAN_REGISTRY_URL": url,
        "ZHIJIAN_KEY_SECRET_FILE": str(tmp_path / "registry.key"),
        "ZHIJIAN_BUNDLE_BROKER_PORT": str(broker.port),
        "ZHIJIAN_BUNDLE_STATE_DIR": str(tmp_path / "agent-{device}"),
        "ZHIJIAN_BROKER_PASSWD_FILE": str(passwd),
        "ZHIJIAN_BROKER_ACL_FILE": str(acl),
        "ZHIJIAN_BROKER_SERVICE_ACCOUNTS": str(service),
        "ZHIJIAN_BROKER_PID_FILE": str(broker.pid_path),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    firmware = ScaleFirmware(builtin("zj-pcs-30"), seed=3, noise_sigma_e=0.0)
    lock = threading.Lock()
    worker = None
    try:
        # the registry, the places, the scale
        zhijian("registry init")
        zhijian("registry add district futian --name Futian")
        zhijian("registry add market futian-no1 --name 'No. 1' --district futian --operator Op")
        zhijian("registry add stall --market futian-no1 --code A-017 --vendor 'Li Si' --licence 91350100M000100Y43")
        zhijian("device register scale-0001 --profile zj-pcs-30 --serial SN-1 --market futian-no1 --stall A-017")
        with PtyLineServer(firmware.respond, lock=lock, name="scale-0001") as pty:
            bundle_path = tmp_path / "bundle.yaml"
            issued = zhijian(f"device provision scale-0001 --port {pty.port} --out {bundle_path}")
            assert "scale-0001:$7$" in passwd.read_text()  # applied to the broker's files

            # the cloud side: ingest reading the registry, with its own broker account
            live = registry_devices(url, bytes.fromhex((tmp_path / "registry.key").read_text()), refresh_s=0)
            pipeline = Pipeline(
                key_for=live.key_for, engine=Engine(live.current.facts), store=influx, revoked=live.is_revoked,
                tags_for=live.tags_for,
            )  # fmt: skip
            live.attach(pipeline.engine, pipeline.alert_book)
            pipeline.before_batch = live.refresh
            settings = IngestSettings(  # no client id: the account names the session, as the broker enforces
                mqtt_port=broker.port, mqtt_username="zhijian-ingest", mqtt_password="ingest-pw", batch_max_ms=50,
            )  # fmt: skip
            assert settings.mqtt_client_id == "zhijian-ingest"
            worker = IngestWorker(settings, pipeline).start()
            assert worker.connected.wait(10)

            # the device side: the agent from the bundle, as `zhijian agent run -c bundle.yaml` starts it
            bundle = load_bundle(bundle_path)
            assert bundle.broker.username == "scale-0001" and bundle.key.hex() == issued["bundle"]["key_hex"]
            agent = build_agent(bundle).start()
            try:
                for i in range(12):
                    with lock:
                        firmware.sell(
                            ts_ms=1_764_000_000_000 + i * 1000, plu="1001", true_net_mg=500_000 + 5_000 * i,
                            unit_price_fen_per_kg=1200,
                        )  # fmt: skip
                query = 'SELECT count("amount_fen") FROM "sale" WHERE "stall" = \'A-017\' AND "market" = \'futian-no1\''

                def stored() -> int:
                    series = influx.query(query)
                    return int(series[0]["values"][0][1]) if series else 0

                assert wait_until(lambda: stored() == 12, 30), stored()
                assert agent.publisher.connected.is_set()

                # a verification on site restarts the scale's anti-cheat baselines
                zhijian(
                    "device verify scale-0001 --certificate C-1 --body 'SZ Metrology' --seal S-1 --technician Wang"
                    f" --reading 1000=1000 --reading 10000=10002.5 --from-scale {pty.port}"
                )
                with lock:
                    firmware.sell(ts_ms=1_764_000_100_000, plu="1001", true_net_mg=300_000, unit_price_fen_per_kg=1200)
                assert wait_until(lambda: live.baselines_reset == 1, 15)
                fact = pipeline.engine.facts.current("scale-0001")
                assert fact is not None and fact.coefficient == firmware.coefficient

                # revocation: the broker drops the live session and refuses the next connection
                zhijian("device revoke scale-0001 --reason 'seal broken' --yes")
                assert wait_until(lambda: not agent.publisher.connected.is_set(), 10)
                time.sleep(1.5)
                assert not agent.publisher.connected.is_set()
                refused: list[str] = []
                c = mqtt.Client(
                    callback_api_version=CallbackAPIVersion.VERSION2, client_id="probe", protocol=mqtt.MQTTv5
                )
                c.username_pw_set("scale-0001", issued["bundle"]["broker"]["password"])
                c.on_connect = lambda _c, _u, _f, reason, _p: refused.append(str(reason))
                c.connect("127.0.0.1", broker.port)
                c.loop_start()
                assert wait_until(lambda: bool(refused), 5)
                c.loop_stop()
                assert refused == ["Not authorized"]
                assert live.refresh(force=True) and live.is_revoked("scale-0001")
            finally:
                agent.stop()
    finally:
        if worker is not None:
            worker.stop(end_session=True)
        broker.stop()


def test_a_registry_bundle_carries_tls_credentials_and_the_agent_connects(tmp_path: Path) -> None:
    """TLS on the registry path, client certificates required: the bundle holds the broker's CA and the
    device's own certificate and key; the agent built from it alone connects with its registry-issued
    password. A wrong password with a good certificate is refused, and so is a certificate from another CA
    with the right password."""
    from device_registry import BundleDefaults, Principal, Registry, Role
    from device_registry.broker_sync import BrokerSync
    from device_registry.db import connect, sessions, upgrade
    from device_registry.local_ca import LocalCA
    from device_registry.schemas import DeviceIn, DistrictIn, MarketIn, ProvisionIn, StallIn
    from zhijian_cli.servers import TlsListener, free_port

    ca = LocalCA(tmp_path / "ca")
    server_cert = ca.issue("broker", hosts=("127.0.0.1", "localhost"))
    tls = TlsListener(
        port=free_port(),
        ca_file=ca.cert_path,
        cert_file=server_cert.cert,
        key_file=server_cert.key,
        require_certificate=True,
    )
    service = tmp_path / "service"
    write_private(service, password_file_text({"zhijian-ingest": hash_password("ingest-pw")}))
    sync = BrokerSync(passwd_file=tmp_path / "passwd", acl_file=tmp_path / "acl", service_accounts=service)
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    upgrade(url)
    bundles = BundleDefaults(
        key_secret=bytes(32 * [7]),
        broker_port=tls.port,
        ca_pem=ca.cert_path.read_text(),
        client_ca=ca,
        state_dir=str(tmp_path / "{device}"),
    )
    firmware = ScaleFirmware(builtin("zj-pcs-30"), seed=4, noise_sigma_e=0.0)
    lock = threading.Lock()
    with sessions(connect(url))() as db, PtyLineServer(firmware.respond, lock=lock, name="tls-scale") as pty:
        reg = Registry(db, Principal("test", Role.ADMIN), bundles)
        reg.add_district(DistrictIn(id="futian", name="Futian"))
        reg.add_market(MarketIn(id="m1", name="M1", district_id="futian", operator="Op"))
        reg.add_stall(StallIn(market_id="m1", code="A-1", vendor="V", business_licence="91350100M000100Y43"))
        reg.register(DeviceIn(id="scale-0007", profile="zj-pcs-30", serial_no="S", market_id="m1", stall_code="A-1"))
        issued = reg.provision("scale-0007", ProvisionIn(port=pty.port))
        sync.apply(db)
        tls_doc = issued.bundle.broker.tls
        assert tls_doc is not None and tls_doc.ca_pem is not None and tls_doc.key_pem is not None
        assert tls_doc.ca_pem.startswith("-----BEGIN CERTIFICATE-----") and "PRIVATE KEY" in tls_doc.key_pem
        bundle_file = tmp_path / "bundle.txt"
        bundle_file.write_text(issued.qr_text)  # the QR text form, as a gateway may receive it
        with MosquittoServer(tmp_path / "broker", tls=tls, auth=(sync.passwd_file, sync.acl_file)) as broker:
            got: list[str] = []
            sub = mqtt.Client(
                callback_api_version=CallbackAPIVersion.VERSION2, client_id="ingest", protocol=mqtt.MQTTv5
            )
            sub.username_pw_set("zhijian-ingest", "ingest-pw")
            sub.on_connect = lambda c, *_: c.subscribe("zhijian/v1/+/data", qos=1)
            sub.on_message = lambda _c, _u, m: got.append(m.topic)
            sub.connect("127.0.0.1", broker.port)
            sub.loop_start()
            agent = build_agent(load_bundle(bundle_file)).start()
            try:
                with lock:
                    firmware.sell(ts_ms=1_764_000_000_000, plu="1001", true_net_mg=400_000, unit_price_fen_per_kg=900)
                assert wait_until(lambda: "zhijian/v1/scale-0007/data" in got, 20)
                assert agent.publisher.connected.is_set()
            finally:
                agent.stop()
                sub.loop_stop()
            password = issued.bundle.broker.password
            good = ca.issue("scale-0007-probe", client=True)
            other = LocalCA(tmp_path / "other", name="someone else").issue("scale-0007", client=True)
            assert _tls_connect(tls.port, ca.cert_path, good, "not-the-password") == "Not authorized"
            assert _tls_connect(tls.port, ca.cert_path, other, password) == "refused in the TLS handshake"
            assert _tls_connect(tls.port, ca.cert_path, good, password) == "Success"  # the probe itself works


def _tls_connect(port: int, ca_file: Path, cert, password: str) -> str:
    """Connect as scale-0007 over TLS with ``cert``; the CONNACK reason, or how the handshake failed."""
    import ssl

    answer: list[str] = []
    probe = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="probe", protocol=mqtt.MQTTv5)
    probe.tls_set(ca_certs=str(ca_file), certfile=str(cert.cert), keyfile=str(cert.key))
    probe.username_pw_set("scale-0007", password)
    probe.on_connect = lambda _c, _u, _f, reason, _p: answer.append(str(reason))
    try:
        probe.connect("127.0.0.1", port)
        probe.loop_start()
        wait_until(lambda: bool(answer), 5)
        probe.loop_stop()
        probe.disconnect()
    except (ssl.SSLError, OSError):
        return "refused in the TLS handshake"
    return answer[0] if answer else "refused in the TLS handshake"
