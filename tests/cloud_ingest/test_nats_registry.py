"""The NATS scale-out reading its devices from the registry, as processes: the router keys by the registry's
market, the worker's partition pipelines verify with registry-derived keys and tag with registry places, and
a scale provisioned while both run is routed by its market and stored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloud_ingest import InfluxClient
from device_registry.credentials import derive_integrity_key
from device_registry.db import connect
from device_registry.schemas import DeviceIn, ProvisionIn
from tests.support.mqtt_clients import publish
from tests.support.registry import KEY_SECRET, open_registry, seeded_registry_file
from tests.support.waiting import wait_until
from zhijian_cli.servers import InfluxServer, MosquittoServer, NatsServer

pytestmark = pytest.mark.integration


def test_router_and_worker_follow_the_registry(
    mosquitto: MosquittoServer, influxd: InfluxServer, nats_server: NatsServer, tmp_path: Path
) -> None:
    registry = seeded_registry_file(tmp_path, {"scale-0001": ("zj-pcs-30", "futian-no1", "A-017")})
    key_file = tmp_path / "registry.key"
    key_file.write_text(KEY_SECRET.hex())
    common = (
        f"ZHIJIAN_MQTT_PORT={mosquitto.port}\nZHIJIAN_INFLUX_URL={influxd.url}\nZHIJIAN_INFLUX_DB=nats_registry\n"
        f"ZHIJIAN_REGISTRY_URL={registry}\nZHIJIAN_KEY_SECRET_FILE={key_file}\nZHIJIAN_REGISTRY_REFRESH_S=0.2\n"
        f"ZHIJIAN_METRICS_PORT=0\nZHIJIAN_NATS_URL={nats_server.url}\nZHIJIAN_NATS_STREAM=REGISTRY\n"
        f"ZHIJIAN_NATS_PARTITIONS=4\nZHIJIAN_NATS_LEASE_S=4\nZHIJIAN_NATS_STATE_DIR={tmp_path / 'parts'}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIJIAN_")}
    procs = []
    for name, command, extra in (
        ("worker", "run", "ZHIJIAN_TRANSPORT=nats\nZHIJIAN_MQTT_CLIENT_ID=reg-worker\n"),
        ("router", "route", "ZHIJIAN_MQTT_CLIENT_ID=reg-router\n"),
    ):
        config = tmp_path / f"{name}.env"
        config.write_text(common + extra)
        with (tmp_path / f"{name}.log").open("wb") as log:
            argv = [sys.executable, "-m", "zhijian_cli", "ingest", command, "--config", str(config)]
            procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path))
    influx = InfluxClient(influxd.url, "nats_registry")
    try:
        assert wait_until(lambda: "router connected" in (tmp_path / "router.log").read_text(), 30)
        log = tmp_path / "worker.log"
        assert wait_until(lambda: all(f"partition {p} taken" in log.read_text() for p in range(4)), 30)

        def sales(market: str) -> int:
            series = influx.query(f'SELECT count("amount_fen") FROM "sale" WHERE "market" = \'{market}\'')
            return int(series[0]["values"][0][1]) if series else 0

        publish(mosquitto.port, "scale-0001", derive_integrity_key(KEY_SECRET, "scale-0001", 1), seq=1)
        assert wait_until(lambda: sales("futian-no1") == 1, 20)
        reg = open_registry(connect(registry))
        reg.register(
            DeviceIn(id="scale-0002", profile="zj-pcs-30", serial_no="S", market_id="nanshan-no2", stall_code="A-017")
        )
        reg.provision("scale-0002", ProvisionIn())
        reg.db.close()
        time.sleep(1)
        publish(mosquitto.port, "scale-0002", derive_integrity_key(KEY_SECRET, "scale-0002", 1), seq=1)
        assert wait_until(lambda: sales("nanshan-no2") == 1, 20), (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
        influx.close()
