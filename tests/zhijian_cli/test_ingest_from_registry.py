"""`zhijian ingest run` reading its devices from the registry, as a real process: records signed with a
registry-derived key are stored with the registry's tags; a device provisioned while it runs is picked up;
a revoked one is rejected; a registry without its key secret stops it with a clear message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloud_ingest import InfluxClient
from device_registry.schemas import DeviceIn, ProvisionIn, RevokeIn
from tests.support.mqtt_clients import publish
from tests.support.registry import KEY_SECRET, open_registry, seeded_registry_file
from tests.support.waiting import wait_until
from zhijian_cli.servers import InfluxServer, MosquittoServer

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(tmp_path: Path) -> str:
    return seeded_registry_file(tmp_path, {"scale-0001": ("zj-pcs-30", "futian-no1", "A-017")})


def test_the_ingest_follows_the_registry(
    registry: str, mosquitto: MosquittoServer, influxd: InfluxServer, tmp_path: Path
) -> None:
    from device_registry.credentials import derive_integrity_key
    from device_registry.db import connect

    key_file = tmp_path / "registry.key"
    key_file.write_text(KEY_SECRET.hex())
    config = tmp_path / "ingest.env"
    config.write_text(
        f"ZHIJIAN_MQTT_PORT={mosquitto.port}\nZHIJIAN_INFLUX_URL={influxd.url}\nZHIJIAN_INFLUX_DB=from_registry\n"
        f"ZHIJIAN_REGISTRY_URL={registry}\nZHIJIAN_KEY_SECRET_FILE={key_file}\nZHIJIAN_REGISTRY_REFRESH_S=0.2\n"
        f"ZHIJIAN_METRICS_PORT=0\nZHIJIAN_MQTT_CLIENT_ID=ingest-{tmp_path.name}\nZHIJIAN_BATCH_MAX_MS=50\n"
        f"ZHIJIAN_SPOOL_PATH={tmp_path / 'spool.sqlite'}\nZHIJIAN_DEAD_LETTER_PATH={tmp_path / 'dead.sqlite'}\n"
        f"ZHIJIAN_STATE_PATH={tmp_path / 'ingest_state.sqlite'}\n"
    )
    log_path = tmp_path / "ingest.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIJIAN_")}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "zhijian_cli", "ingest", "run", "--config", str(config)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    influx = InfluxClient(influxd.url, "from_registry")
    try:
        assert wait_until(lambda: "ingest connected" in log_path.read_text(), 20), log_path.read_text()

        def sales(stall: str) -> int:
            series = influx.query(f'SELECT count("amount_fen") FROM "sale" WHERE "stall" = \'{stall}\'')
            return int(series[0]["values"][0][1]) if series else 0

        publish(mosquitto.port, "scale-0001", derive_integrity_key(KEY_SECRET, "scale-0001", 1), seq=1)
        assert wait_until(lambda: sales("A-017") == 1, 15)

        # provisioned while the ingest runs: picked up at its next look at the registry
        reg = open_registry(connect(registry))
        reg.register(
            DeviceIn(id="scale-0002", profile="zj-pcs-30", serial_no="S", market_id="nanshan-no2", stall_code="A-017")
        )
        reg.provision("scale-0002", ProvisionIn())
        time.sleep(1)
        publish(mosquitto.port, "scale-0002", derive_integrity_key(KEY_SECRET, "scale-0002", 1), seq=1)
        assert wait_until(lambda: sales("A-017") == 2, 15)

        reg.revoke("scale-0001", RevokeIn(reason="seal broken"))
        reg.db.close()
        time.sleep(1)
        publish(mosquitto.port, "scale-0001", derive_integrity_key(KEY_SECRET, "scale-0001", 1), seq=2)
        publish(mosquitto.port, "scale-0002", derive_integrity_key(KEY_SECRET, "scale-0002", 1), seq=2)
        assert wait_until(lambda: sales("A-017") == 3, 15)
        time.sleep(0.5)
        assert sales("A-017") == 3, "a revoked device's record was stored"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        influx.close()


def test_a_registry_without_its_key_secret_is_a_clear_stop(registry: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIJIAN_")}
    env |= {"ZHIJIAN_REGISTRY_URL": registry, "ZHIJIAN_KEY_SECRET_FILE": str(tmp_path / "missing.key")}
    done = subprocess.run(
        [sys.executable, "-m", "zhijian_cli", "ingest", "run"], env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "zhijian registry init" in done.stdout + done.stderr
