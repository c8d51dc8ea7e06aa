"""Starts and restarts of the real `zhijian ingest run` process, against a real Mosquitto and influxd.

- stopped before it scored any sale, it starts again on the state it saved (it used to stop with a
  ValueError restoring the empty anti-cheat state);
- started while InfluxDB is down it stays up, says so in one line, spools, and stores every record once
  an influxd answers on that port (with no database yet: the ingest creates it);
- a second worker on a taken metrics port stops with one line and exit status 2 before it subscribes, so
  the broker keeps no persistent session for it;
- two workers configured as deploy/systemd/ingest-<k>.env.example say (own broker account = client id,
  own metrics port, partition k of 2) run side by side on a broker with accounts, and store every record
  once between them.

Every wait is on a condition with a generous deadline (a busy 2-core machine), never on a fixed sleep.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud_ingest import InfluxClient, write_device_file
from cloud_ingest.worker import partition_of
from device_profiles import encode
from device_profiles.records import EXAMPLE_SALE
from device_registry.broker_files import acl_text, hash_password, password_file_text
from tests.support.envelopes import BOOT
from tests.support.ingest_process import IngestProcess, state_config
from tests.support.mqtt_clients import session_present
from tests.support.waiting import wait_until
from zhijian_cli.servers import InfluxServer, MosquittoServer, free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DEVICES = [f"scale-{i:04d}" for i in range(1, 7)]
KEYS = {d: secrets.token_bytes(32) for d in DEVICES}
SCALE = {"coefficient": 20_000.0, "e_mg": 5000, "calibration_events": 3, "configuration_events": 7}


@pytest.fixture
def processes() -> Iterator[list[IngestProcess]]:
    started: list[IngestProcess] = []
    yield started
    for p in started:
        p.kill()


def ingest_config(tmp_path: Path, name: str, **settings: object) -> Path:
    """A settings file for one worker with its state under ``tmp_path/name`` and the devices file there."""
    devices = tmp_path / "devices.json"
    if not devices.exists():
        write_device_file(
            devices, {d: {"key": k.hex(), "profile": "zj-pcs-30", "scale": SCALE} for d, k in KEYS.items()}
        )
    return state_config(tmp_path, name, DEVICES_FILE=devices, **settings)


def sale_messages(devices: list[str], count: int, *, start_seq: int = 1) -> list[tuple[str, bytes]]:
    """``count`` messages per device, one sale each, seqs from ``start_seq``."""
    out = []
    for i in range(count):
        seq = start_seq + i
        for d in devices:
            record = {**EXAMPLE_SALE, "txn": seq, "ts": 1_764_000_000_000 + seq}
            payload = encode(
                device=d, boot=BOOT, seq=seq, sent_ms=int(time.time() * 1000), records=[record], key=KEYS[d]
            )
            out.append((d, payload))
    return out


def publish(port: int, messages: list[tuple[str, bytes]], *, auth: dict[str, str] | None = None) -> None:
    """Each device's messages from its own client (with ``auth``: its account), QoS 1, all acknowledged."""
    by_device: dict[str, list[bytes]] = {}
    for device, payload in messages:
        by_device.setdefault(device, []).append(payload)
    for device, payloads in by_device.items():
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5)
        if auth is not None:
            client.username_pw_set(device, auth[device])
        client.connect("127.0.0.1", port)
        client.loop_start()
        try:
            infos = [client.publish(f"zhijian/v1/{device}/data", p, qos=1) for p in payloads]
            for info in infos:
                info.wait_for_publish(30)
                assert info.is_published()
        finally:
            client.disconnect()
            client.loop_stop()


def stored_seqs(influx: InfluxClient) -> list[tuple[str, int]]:
    try:
        return sorted((r["device"], int(r["seq"])) for r in influx.rows("SELECT seq, device FROM sale"))
    except Exception:  # InfluxDB not up yet, or the database not created yet
        return []


def test_an_ingest_stopped_before_its_first_sale_starts_again(
    mosquitto: MosquittoServer, influxd: InfluxServer, tmp_path: Path, processes: list[IngestProcess]
) -> None:
    db = f"restart_{tmp_path.name}"[:60]
    config = ingest_config(
        tmp_path,
        "w",
        MQTT_PORT=mosquitto.port,
        INFLUX_URL=influxd.url,
        INFLUX_DB=db,
        MQTT_CLIENT_ID=f"restart-{tmp_path.name}",
    )
    first = IngestProcess(config).start()
    processes.append(first)
    first.wait_connected()
    assert first.stop() == 0, first.output()
    with contextlib.closing(sqlite3.connect(tmp_path / "w" / "ingest_state.sqlite")) as saved:
        # the state of scales known but never scored
        assert saved.execute("SELECT COUNT(*) FROM engine_checkpoint").fetchone() == (1,)
    again = IngestProcess(config).start()
    processes.append(again)
    again.wait_connected()
    publish(mosquitto.port, sale_messages(DEVICES[:2], 5))
    influx = InfluxClient(influxd.url, db)
    expected = sorted((d, s) for d in DEVICES[:2] for s in range(1, 6))
    assert wait_until(lambda: stored_seqs(influx) == expected, 90), (stored_seqs(influx), again.output())
    assert again.stop() == 0
    assert "Traceback" not in first.log_path.read_text()
    influx.close()


def test_an_unreadable_state_file_stops_the_start_with_one_line(
    mosquitto: MosquittoServer, influxd: InfluxServer, tmp_path: Path, processes: list[IngestProcess]
) -> None:
    config = ingest_config(tmp_path, "w", MQTT_PORT=mosquitto.port, INFLUX_URL=influxd.url, INFLUX_DB="unused")
    (tmp_path / "w" / "ingest_state.sqlite").write_bytes(b"this is not SQLite" * 100)
    proc = IngestProcess(config).start()
    processes.append(proc)
    assert proc.wait_exit() == 2
    out = proc.output()
    assert "not a usable ingest state file" in out and "move it aside" in out and "Traceback" not in out, out


def test_an_unreadable_checkpoint_is_kept_aside_and_the_ingest_runs_on(
    mosquitto: MosquittoServer, influxd: InfluxServer, tmp_path: Path, processes: list[IngestProcess]
) -> None:
    db = f"badcp_{tmp_path.name}"[:60]
    config = ingest_config(
        tmp_path, "w", MQTT_PORT=mosquitto.port, INFLUX_URL=influxd.url, INFLUX_DB=db, MQTT_CLIENT_ID=f"cp-{db}"
    )
    with contextlib.closing(sqlite3.connect(tmp_path / "w" / "ingest_state.sqlite")) as state:
        state.execute("CREATE TABLE engine_checkpoint (id INTEGER PRIMARY KEY, state BLOB NOT NULL)")
        state.execute("INSERT INTO engine_checkpoint VALUES (1, ?)", (b"garbage, not a save",))
        state.commit()
    proc = IngestProcess(config).start()
    processes.append(proc)
    proc.wait_connected()
    publish(mosquitto.port, sale_messages(DEVICES[:2], 3))
    influx = InfluxClient(influxd.url, db)
    expected = sorted((d, s) for d in DEVICES[:2] for s in range(1, 4))
    assert wait_until(lambda: stored_seqs(influx) == expected, 90), (stored_seqs(influx), proc.output())
    assert proc.stop() == 0
    assert "anti-cheat checkpoint" in proc.output() and "cannot be read" in proc.output()
    kept = list((tmp_path / "w").glob("anti_cheat_state.unreadable-*.npz"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"garbage, not a save"
    influx.close()


def test_an_ingest_started_with_influxdb_down_stays_up_and_stores_everything_when_it_answers(
    mosquitto: MosquittoServer, tmp_path: Path, processes: list[IngestProcess]
) -> None:
    influx_port, metrics_port = free_port(), free_port()
    config = ingest_config(
        tmp_path,
        "w",
        MQTT_PORT=mosquitto.port,
        INFLUX_URL=f"http://127.0.0.1:{influx_port}",
        INFLUX_DB="late",
        METRICS_PORT=metrics_port,
        MQTT_CLIENT_ID=f"late-influx-{tmp_path.name}",
    )
    ingest = IngestProcess(config).start()
    processes.append(ingest)
    ingest.wait_connected()
    assert ingest.output().count("InfluxDB does not answer") == 1, ingest.output()
    publish(mosquitto.port, sale_messages(DEVICES, 20))

    def spooled() -> float:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        found = re.search(r"^zhijian_ingest_spool_lines (\S+)$", text, re.M)
        return float(found.group(1)) if found else 0.0

    assert wait_until(lambda: spooled() >= len(DEVICES) * 20 or not ingest.alive, 90), ingest.output()
    assert ingest.alive, ingest.output()
    with InfluxServer(tmp_path / "influxd", port=influx_port) as late:
        influx = InfluxClient(late.url, "late")
        expected = sorted((d, s) for d in DEVICES for s in range(1, 21))
        assert wait_until(lambda: stored_seqs(influx) == expected, 120), (len(stored_seqs(influx)), ingest.output())
        assert wait_until(lambda: spooled() == 0, 60)
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/health", timeout=10).status_code == 200
        assert ingest.stop() == 0
        influx.close()
    assert "Traceback" not in ingest.log_path.read_text(), ingest.output()


def test_a_second_worker_on_a_taken_metrics_port_stops_with_one_line_and_leaves_no_session(
    mosquitto: MosquittoServer, influxd: InfluxServer, tmp_path: Path, processes: list[IngestProcess]
) -> None:
    metrics_port = free_port()
    common = {
        "MQTT_PORT": mosquitto.port,
        "INFLUX_URL": influxd.url,
        "INFLUX_DB": "taken",
        "METRICS_PORT": metrics_port,
    }
    first = IngestProcess(ingest_config(tmp_path, "a", MQTT_CLIENT_ID=f"a-{tmp_path.name}", **common)).start()
    processes.append(first)
    first.wait_connected()
    second_id = f"b-{tmp_path.name}"
    second = IngestProcess(ingest_config(tmp_path, "b", MQTT_CLIENT_ID=second_id, **common)).start()
    processes.append(second)
    assert second.wait_exit() == 2
    out = second.output()
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{metrics_port}" in lines[0], out
    assert not session_present(mosquitto.port, second_id)
    assert first.alive and first.stop() == 0


def deploy_env(k: int, swaps: dict[str, str]) -> str:
    """deploy/systemd/ingest-<k>.env.example, with its placeholders, ports and paths swapped for ours."""
    text = (ROOT / "deploy" / "systemd" / f"ingest-{k}.env.example").read_text()
    for old, new in swaps.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def test_two_workers_configured_as_the_systemd_example_run_side_by_side(
    influxd: InfluxServer, tmp_path: Path, processes: list[IngestProcess]
) -> None:
    accounts = {f"zhijian-ingest-{k}": secrets.token_urlsafe(12) for k in (0, 1)}
    device_passwords = {d: secrets.token_urlsafe(12) for d in DEVICES}
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    passwd.write_text(password_file_text({u: hash_password(p) for u, p in {**accounts, **device_passwords}.items()}))
    acl.write_text(acl_text(ingest_users=accounts, admin_users=()))
    db = f"pair_{tmp_path.name}"[:60]
    with MosquittoServer(tmp_path / "broker", auth=(passwd, acl)) as broker:
        workers, metrics_ports = [], []
        for k in (0, 1):
            metrics_ports.append(free_port())
            env = deploy_env(
                k,
                {
                    "ZHIJIAN_MQTT_PORT=1883": f"ZHIJIAN_MQTT_PORT={broker.port}",
                    f"<the password of zhijian-ingest-{k} in ZHIJIAN_BROKER_SERVICE_ACCOUNTS>": accounts[
                        f"zhijian-ingest-{k}"
                    ],
                    f"ZHIJIAN_METRICS_PORT={9464 + k}": f"ZHIJIAN_METRICS_PORT={metrics_ports[k]}",
                    "ZHIJIAN_INFLUX_URL=http://127.0.0.1:8086": f"ZHIJIAN_INFLUX_URL={influxd.url}",
                    "ZHIJIAN_INFLUX_DB=zhijian": f"ZHIJIAN_INFLUX_DB={db}",
                    "ZHIJIAN_REGISTRY_URL=postgresql://zhijian@db.internal/registry\n": "",
                    "ZHIJIAN_KEY_SECRET_FILE=/etc/zhijian/registry.key\n": "",
                },
            )
            # the working directory of the unit holds the state: here, a directory per worker
            config = ingest_config(tmp_path, f"worker-{k}")
            config.write_text(config.read_text().replace("ZHIJIAN_METRICS_PORT=0\n", "") + env)
            workers.append(IngestProcess(config).start())
            processes.append(workers[-1])
        for w in workers:
            w.wait_connected()
        assert all(f"zhijian-ingest-{k} differs" not in w.output() for k, w in enumerate(workers))
        publish(broker.port, sale_messages(DEVICES, 10), auth=device_passwords)
        influx = InfluxClient(influxd.url, db)
        expected = sorted((d, s) for d in DEVICES for s in range(1, 11))
        assert wait_until(lambda: stored_seqs(influx) == expected, 120), (stored_seqs(influx), workers[1].output())
        mine = {k: {d for d in DEVICES if partition_of(f"zhijian/v1/{d}/data", 2) == k} for k in (0, 1)}
        assert mine[0] and mine[1], "pick devices that fall in both partitions"
        for k, port in enumerate(metrics_ports):
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            accepted = re.search(r'^zhijian_ingest_records_accepted_total\{type="sale"\} (\S+)$', text, re.M)
            assert accepted and float(accepted.group(1)) == 10 * len(mine[k]), text
            assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        for w in workers:
            assert w.alive and w.stop() == 0
            assert "Traceback" not in w.output() and "already connected" not in broker.log_path.read_text()
        influx.close()
