"""`zhijian ingest dead-letters list|show|replay` against real parts.

With the real `zhijian ingest run` process, its registry, a real Mosquitto and influxd: a new device's sale
refused as `unknown_device` is listed and shown, and once the device is registered it is replayed and
stored; a forged one replayed is refused again, as a new letter. With a Mosquitto that has accounts and
the registry's ACL: the replay's PUBACK reason codes decide what counts as replayed (0x87 Not authorized,
0x10 No matching subscribers do not), and an ingest worker's account is never used (it would take over
the worker's session).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from cloud_ingest import InfluxClient
from cloud_ingest.dead_letters import DeadLetters
from device_profiles.envelope import encode
from device_registry.broker_files import acl_text, hash_password, password_file_text
from device_registry.credentials import derive_integrity_key
from device_registry.schemas import DeviceIn, ProvisionIn
from tests.support.envelopes import BOOT
from tests.support.hostile_devices import Device, Ingest, sale, signed
from tests.support.registry import KEY_SECRET, open_registry, seeded_registry_file
from tests.support.waiting import wait_until
from zhijian_cli.main import app
from zhijian_cli.servers import InfluxServer, MosquittoServer

pytestmark = pytest.mark.integration
runner = CliRunner()
NEW = "scale-0003"  # provisioned only after its first sale


def zhijian(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """Exit code, text output and raw standard output of ``zhijian <args>``."""
    result = runner.invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})  # tables unwrapped
    return result.exit_code, result.output, result.stdout_bytes


@pytest.fixture
def registry(tmp_path: Path) -> str:
    return seeded_registry_file(tmp_path, {"scale-0001": ("zj-pcs-30", "futian-no1", "A-017")})


def provision_new_device(url: str) -> None:
    from device_registry.db import connect

    reg = open_registry(connect(url))
    reg.register(DeviceIn(id=NEW, profile="zj-pcs-30", serial_no="S3", market_id="nanshan-no2", stall_code="A-017"))
    reg.provision(NEW, ProvisionIn())
    reg.db.close()


def letters(config: Path, *filters: str) -> list[dict[str, Any]]:
    code, out, _ = zhijian("ingest", "dead-letters", "list", "--config", str(config), "--json", *filters)
    assert code == 0, out
    rows: list[dict[str, Any]] = json.loads(out)["letters"]
    return rows


def sales(influx: InfluxClient, device: str) -> dict[int, int]:
    return {
        int(r["seq"]): int(r["net_mg"]) for r in influx.rows(f"SELECT seq, net_mg FROM sale WHERE device='{device}'")
    }


def test_a_refused_sale_is_listed_shown_and_replayed_after_the_fix(
    registry: str, mosquitto: MosquittoServer, influxd: InfluxServer, tmp_path: Path
) -> None:
    ingest = Ingest(
        registry,
        mosquitto,
        influxd,
        tmp_path,
        REGISTRY_REFRESH_S=0.2,
        UNKNOWN_DEVICE_GRACE_S=0,  # refuse unknown devices at once
    )
    ingest.start()
    influx = InfluxClient(influxd.url, ingest.db)
    new_key = derive_integrity_key(KEY_SECRET, NEW, 1)  # what provisioning will give it
    first_sale = encode(device=NEW, boot=BOOT, seq=1, sent_ms=1, records=[sale(1)], key=new_key)
    forged = encode(device="scale-0001", boot=BOOT, seq=2, sent_ms=1, records=[sale(2)], key=b"w" * 32)
    new, old = Device(mosquitto.port, NEW), Device(mosquitto.port, "scale-0001")
    config = str(ingest.config)
    try:
        new.send(first_sale)
        old.send(forged)
        old.send(signed("scale-0001", 3, [sale(3)]))
        assert wait_until(lambda: 3 in sales(influx, "scale-0001"), 60), ingest.log()
        assert wait_until(lambda: ingest.dead_letters() == {"unknown_device": 1, "bad_tag": 1}, 30), ingest.dead_rows()

        rows = letters(ingest.config)
        unknown, bad = (next(r for r in rows if r["reason"] == reason) for reason in ("unknown_device", "bad_tag"))
        assert (unknown["device"], unknown["topic"], unknown["payload_bytes"]) == (
            NEW,
            f"zhijian/v1/{NEW}/data",
            len(first_sale),
        )
        assert unknown["replayed_at"] is None and unknown["replayable"]
        assert [r["id"] for r in letters(ingest.config, "--reason", "bad_tag", "--device", "scale-0001")] == [bad["id"]]
        assert letters(ingest.config, "--device", NEW, "--since", "2100-01-01") == []
        code, out, _ = zhijian("ingest", "dead-letters", "list", "--config", config, "--days", "1")
        assert (
            code == 0 and NEW in out and "2 letters match" in out and "unknown_device 1" in out and "bad_tag 1" in out
        ), out

        code, out, _ = zhijian("ingest", "dead-letters", "show", str(unknown["id"]), "--config", config)
        assert code == 0 and "unknown_device" in out and f'"device": "{NEW}"' in out and '"seq": 1' in out, out
        code, _, raw = zhijian("ingest", "dead-letters", "show", str(unknown["id"]), "--config", config, "--raw")
        assert code == 0 and raw == first_sale

        provision_new_device(registry)
        # the ingest has seen the registry once a batch after the change (and a refresh period) is stored
        assert wait_until(
            lambda: (old.send(signed("scale-0001", 4, [sale(4)])), 4 in sales(influx, "scale-0001"))[1], 60
        )
        code, out, _ = zhijian("ingest", "dead-letters", "replay", "--reason", "unknown_device", "--config", config)
        assert code == 0 and "replayed 1 of 1" in out, out
        assert wait_until(lambda: sales(influx, NEW) == {1: 275_000}, 60), (ingest.log(), ingest.dead_rows())
        marked = next(r for r in letters(ingest.config) if r["id"] == unknown["id"])  # kept, and marked
        assert marked["replayed_at"] is not None

        code, out, _ = zhijian("ingest", "dead-letters", "replay", str(unknown["id"]), "--config", config)
        assert code == 1 and "already replayed" in out and "--again" in out, out

        code, out, _ = zhijian("ingest", "dead-letters", "replay", str(bad["id"]), "--config", config)
        assert code == 0 and "replayed 1 of 1" in out, out
        assert wait_until(lambda: ingest.dead_letters()["bad_tag"] == 2, 60), ingest.dead_rows()
        again = letters(ingest.config, "--reason", "bad_tag")
        assert [r["id"] > bad["id"] for r in again] == [False, True] and again[0]["replayed_at"] is not None
        _, _, raw_again = zhijian("ingest", "dead-letters", "show", str(again[1]["id"]), "--config", config, "--raw")
        assert raw_again == forged  # refused again, byte for byte the same evidence
        assert 2 not in sales(influx, "scale-0001")
        assert "Traceback" not in ingest.log()
    finally:
        new.close()
        old.close()
        ingest.stop()
        influx.close()


def test_letters_off_a_device_data_topic_are_not_replayed_and_say_why(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path / "dead.sqlite")
    dead.add("(spool)", "store_rejected", "400: field type conflict", b"sale,device=scale-0001 net_mg=1 1")
    dead.add("zhijian/[/v1]/x/data", "bad_topic", "[/bold] [red]markup", b"{}")  # shown as sent, not as markup
    dead.flush()
    dead.add("zhijian/[/v1]/x/data", "bad_topic", "[/bold] [red]markup", b"{}")  # again: counted on letter 2
    dead.close()
    store = str(tmp_path / "dead.sqlite")
    code, out, _ = zhijian("ingest", "dead-letters", "replay", "1", "2", "--store", store)
    assert code == 1 and out.count("not a device data topic") == 2 and "nothing to replay" in out, out
    assert "'(spool)'" in out and "'zhijian/[/v1]/x/data'" in out, out
    code, out, _ = zhijian("ingest", "dead-letters", "list", "--store", store)
    assert code == 0 and "[/bold] [red]markup" in out and "bad_topic 1, store_rejected 1" in out, out
    assert [
        row["times"]
        for row in json.loads(zhijian("ingest", "dead-letters", "list", "--store", store, "--json")[1])["letters"]
    ] == [1, 2]
    code, out, _ = zhijian("ingest", "dead-letters", "show", "2", "--store", store)
    assert code == 0 and "zhijian/[/v1]/x/data" in out and "[/bold] [red]markup" in out, out
    assert any(ln.split()[:3] == ["│", "times", "│"] and "2" in ln for ln in out.splitlines()), out
    code, out, _ = zhijian("ingest", "dead-letters", "show", "1", "--store", store)
    assert code == 0 and "no: not a device data topic" in out and "73 61 6c 65" in out, out  # hex dump: "sale"
    code, out, _ = zhijian("ingest", "dead-letters", "show", "3", "--store", store)
    assert code == 1 and "no dead letter 3" in out
    code, out, _ = zhijian("ingest", "dead-letters", "list", "--store", str(tmp_path / "none.sqlite"))
    assert code == 1 and "no dead-letter store" in out


class Subscriber:
    """The ingest's side, as an account of the ACL: receives what is published on device data topics."""

    def __init__(self, port: int, username: str, password: str) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.disconnects = 0
        subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=username, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(username, password)
        self.client.on_message = lambda _c, _u, msg: self.received.append((msg.topic, msg.payload))
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_disconnect = lambda *_: setattr(self, "disconnects", self.disconnects + 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe("zhijian/v1/+/data", qos=1)
        assert subscribed.wait(30)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


PASSWORDS = {"zhijian-admin": "admin-pw", "zhijian-ingest-1": "ingest-pw", "scale-0001": "device-pw"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoServer]:
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    passwd.write_text(password_file_text({user: hash_password(pw) for user, pw in PASSWORDS.items()}))
    acl.write_text(acl_text(ingest_users=["zhijian-ingest-1"], admin_users=["zhijian-admin"]))
    with MosquittoServer(tmp_path / "mosquitto", auth=(passwd, acl)) as server:
        yield server


def test_the_pubacks_reason_code_decides_what_is_replayed(broker: MosquittoServer, tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path / "dead.sqlite")
    payloads = [b'{"v":1,"seq":%d}' % i + bytes([i % 256]) for i in range(150)]  # exact bytes, any bytes
    for payload in payloads:
        dead.add("zhijian/v1/scale-0002/data", "bad_tag", "", payload)
    dead.flush()
    config = tmp_path / "ingest.env"  # the ingest's own settings, with the ingest's own account
    config.write_text(
        f"ZHIJIAN_MQTT_PORT={broker.port}\nZHIJIAN_MQTT_USERNAME=zhijian-ingest-1\n"
        f"ZHIJIAN_MQTT_PASSWORD={PASSWORDS['zhijian-ingest-1']}\nZHIJIAN_DEAD_LETTER_PATH={tmp_path / 'dead.sqlite'}\n"
    )
    replay = ("ingest", "dead-letters", "replay", "--device", "scale-0002", "--config", str(config))
    ingest = Subscriber(broker.port, "zhijian-ingest-1", PASSWORDS["zhijian-ingest-1"])
    try:
        code, out, _ = zhijian(*replay, "--username", "zhijian-ingest-1", "--password", "ingest-pw")
        assert code == 1 and "take over that worker's session" in out, out
        code, out, _ = zhijian(*replay)  # not the settings' ingest account: anonymous, which this broker refuses
        assert code == 1 and "refused the connection as anonymous" in out, out
        code, out, _ = zhijian(*replay, "--username", "scale-0001", "--password", "device-pw")
        assert code == 1 and out.count("Not authorized") == 150 and "replayed 0 of 150" in out, out
        assert ingest.disconnects == 0 and ingest.received == []
        assert all(r["replayed_at"] is None for r in letters(config, "--limit", "1000"))

        code, out, _ = zhijian(*replay, "--username", "zhijian-admin", env={"ZHIJIAN_ADMIN_MQTT_PASSWORD": "admin-pw"})
        assert code == 0 and "replayed 150 of 150" in out, out
        assert wait_until(lambda: len(ingest.received) == 150, 30)
        assert ingest.received == [("zhijian/v1/scale-0002/data", p) for p in payloads]
        marks = {r["replayed_at"] for r in letters(config, "--limit", "1000")}
        assert None not in marks and ingest.disconnects == 0
    finally:
        ingest.close()
    # nobody subscribes any more: the broker drops what it is sent, so nothing counts as replayed again
    code, out, _ = zhijian(*replay, "--again", "--username", "zhijian-admin", "--password", "admin-pw")
    assert code == 1 and out.count("no ingest session subscribes") == 150, out
    assert {r["replayed_at"] for r in letters(config, "--limit", "1000")} == marks
