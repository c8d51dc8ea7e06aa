"""Broker security files on a real Mosquitto: passwords in mosquitto_passwd's format, the per-device ACL,
and a reload that keeps connected clients."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from device_profiles.private_file import write_private
from device_registry.broker_files import (
    acl_text,
    hash_password,
    password_file_text,
    service_role,
    verify_password,
)
from device_registry.broker_sync import BrokerSync
from device_registry.errors import InvalidInput, RegistryError
from device_registry.schemas import DeviceIn, ProvisionIn
from tests.support.registry import open_registry, seed_places
from zhijian_cli.servers import LISTENER_LINES, MosquittoServer

pytestmark = pytest.mark.integration


def test_our_hashes_and_mosquitto_passwd_agree(tmp_path: Path) -> None:
    stored = hash_password("s3cret", salt=b"0123456789ab")
    assert stored.startswith("$7$101$") and verify_password(stored, "s3cret") and not verify_password(stored, "x")
    made = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(made), "scale-0001", "s3cret"], check=True)
    theirs = made.read_text().strip().split(":", 1)[1]
    assert verify_password(theirs, "s3cret")
    assert not verify_password("$6$not-ours", "s3cret")


class Client:
    def __init__(self, port: int, user: str, password: str, *subscribe: str) -> None:
        self.messages: queue.Queue[str] = queue.Queue()
        self.refused: str | None = None
        self.connected = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(user, password)
        self.client.on_message = lambda _c, _u, m: self.messages.put(m.topic)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()

        def on_connect(c, _u, _f, reason, _p):
            if reason.is_failure:
                self.refused = str(reason)
                return
            self.connected.set()
            if subscribe:
                c.subscribe([(t, 1) for t in subscribe])
            else:
                subscribed.set()

        self.client.on_connect = on_connect
        self.client.on_disconnect = lambda *_: self.connected.clear()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        deadline = time.monotonic() + 5
        while not (subscribed.is_set() or self.refused) and time.monotonic() < deadline:
            time.sleep(0.02)

    def publish(self, topic: str) -> None:
        self.client.publish(topic, b"{}", qos=1).wait_for_publish(3)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_devices_stay_in_their_namespace_and_reload_keeps_clients(tmp_path: Path) -> None:
    passwords = {"scale-0001": "pw-one", "scale-0002": "pw-two", "zhijian-ingest": "pw-ingest"}
    pw_file, acl_file = tmp_path / "passwd", tmp_path / "acl"
    write_private(pw_file, password_file_text({u: hash_password(p) for u, p in passwords.items()}))
    write_private(acl_file, acl_text())
    with MosquittoServer(tmp_path / "broker", auth=(pw_file, acl_file)) as broker:
        ingest = Client(broker.port, "zhijian-ingest", "pw-ingest", "zhijian/v1/+/data")
        a = Client(broker.port, "scale-0001", "pw-one")
        try:
            assert ingest.connected.is_set() and a.connected.is_set()
            a.publish("zhijian/v1/scale-0002/data")  # forged: B's namespace
            a.publish("zhijian/v1/scale-0001/data")  # its own
            assert ingest.messages.get(timeout=5) == "zhijian/v1/scale-0001/data"
            time.sleep(0.5)
            assert ingest.messages.empty(), "a message in another device's namespace reached the ingest"
            wrong = Client(broker.port, "scale-0002", "not-its-password")
            assert wrong.refused and not wrong.connected.is_set()
            wrong.close()
            stranger = Client(broker.port, "scale-0003", "pw-three")
            assert stranger.refused
            stranger.close()
            passwords["scale-0003"] = "pw-three"  # a newly provisioned device
            write_private(pw_file, password_file_text({u: hash_password(p) for u, p in passwords.items()}))
            broker.reload()
            time.sleep(0.5)
            c = Client(broker.port, "scale-0003", "pw-three")
            assert c.connected.is_set(), c.refused
            assert a.connected.is_set() and ingest.connected.is_set()  # nobody was dropped by the reload
            a.publish("zhijian/v1/scale-0001/data")
            assert ingest.messages.get(timeout=5) == "zhijian/v1/scale-0001/data"
            c.close()
        finally:
            a.close()
            ingest.close()


def test_each_service_account_gets_the_rights_its_name_says() -> None:
    assert [service_role(u) for u in ("zhijian-ingest", "zhijian-ingest-0", "zhijian-admin-ops")] == [
        "ingest",
        "ingest",
        "admin",
    ]
    assert {service_role(u) for u in ("zhijian-ingest-", "zhijian-grafana", "scale-0001", "zhijian-ingest x")} == {None}
    text = acl_text(ingest_users=["zhijian-ingest-1", "zhijian-ingest-0"], admin_users=["zhijian-admin"])
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in text.split("\n\n") if b.startswith("user ")}
    assert list(blocks) == ["user zhijian-ingest-0", "user zhijian-ingest-1", "user zhijian-admin"]
    assert blocks["user zhijian-ingest-0"] == blocks["user zhijian-ingest-1"]
    assert "topic read zhijian/v1/+/data" in blocks["user zhijian-ingest-0"]
    assert blocks["user zhijian-admin"] == ["topic readwrite #"]


def _registry(tmp_path: Path):
    from device_registry.db import connect, upgrade

    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    upgrade(url)
    reg = open_registry(connect(url))
    seed_places(reg)
    return reg


@pytest.mark.parametrize("device_id", ["zhijian-ingest-1", "zhijian-admin", "zhijian-anything"])
def test_device_ids_in_the_service_namespace_are_refused_at_registration(tmp_path: Path, device_id: str) -> None:
    reg = _registry(tmp_path)
    place = {"market_id": "futian-no1", "stall_code": "A-017"}
    with pytest.raises(InvalidInput, match=r"reserved.*service accounts"):
        reg.register(DeviceIn(id=device_id, profile="zj-pcs-30", serial_no="S", **place))
    reg.register(DeviceIn(id="zhijian2-scale", profile="zj-pcs-30", serial_no="S", **place))  # only the prefix


def test_broker_files_name_service_accounts_by_role_and_refuse_names_a_device_could_take(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    reg.register(
        DeviceIn(id="scale-0001", profile="zj-pcs-30", serial_no="S", market_id="futian-no1", stall_code="A-017")
    )
    reg.provision("scale-0001", ProvisionIn())
    service = tmp_path / "service"
    workers = {u: hash_password("pw") for u in ("zhijian-ingest-0", "zhijian-ingest-1", "zhijian-admin")}
    write_private(service, password_file_text(workers))
    sync = BrokerSync(passwd_file=tmp_path / "passwd", acl_file=tmp_path / "acl", service_accounts=service)
    assert sync.apply(reg.db).devices == 1
    users = [line.split(":")[0] for line in sync.passwd_file.read_text().splitlines()]
    assert users == ["scale-0001", "zhijian-admin", "zhijian-ingest-0", "zhijian-ingest-1"]
    acl = sync.acl_file.read_text()
    assert "user zhijian-ingest-0\n" in acl and "user zhijian-ingest-1\n" in acl and "user zhijian-admin\n" in acl
    write_private(service, password_file_text({**workers, "grafana": hash_password("pw")}))
    with pytest.raises(RegistryError, match=r"'grafana'.*zhijian-ingest"):
        sync.apply(reg.db)
    reg.db.close()


def test_generated_broker_config_binds_client_ids_on_every_listener_with_accounts(tmp_path: Path) -> None:
    from zhijian_cli.servers import TlsListener

    tls = TlsListener(port=8883, ca_file=tmp_path / "ca", cert_file=tmp_path / "c", key_file=tmp_path / "k")
    with_auth = MosquittoServer(tmp_path / "a", tls=tls, auth=(tmp_path / "pw", tmp_path / "acl")).config_text()
    listeners = with_auth.split("listener ")[1:]
    assert len(listeners) == 2 and all(LISTENER_LINES[0] in block for block in listeners)
    # an open broker has no usernames to bind to: anonymous clients would be refused
    assert LISTENER_LINES[0] not in MosquittoServer(tmp_path / "b", tls=tls).config_text()
