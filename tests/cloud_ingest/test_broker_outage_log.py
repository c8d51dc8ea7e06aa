"""An ingest worker started with the broker down says so once, with the error and the retry schedule,
keeps retrying, and says once when the broker is reached."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from anti_cheat import Engine, ScaleFacts
from cloud_ingest import InfluxClient, IngestSettings, IngestWorker, Pipeline
from cloud_ingest.spool import Spool
from tests.support.waiting import wait_until
from zhijian_cli.servers import MosquittoServer, free_port

pytestmark = pytest.mark.integration


def test_an_unreachable_broker_is_logged_once_and_once_more_when_reached(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cloud_ingest.worker")
    port = free_port()
    influx = InfluxClient("http://127.0.0.1:9", "unused")
    pipeline = Pipeline(key_for=lambda _d: None, engine=Engine(ScaleFacts()), store=influx, spool=Spool())
    worker = IngestWorker(IngestSettings(mqtt_port=port, mqtt_client_id=f"outage-{tmp_path.name}"), pipeline)
    failures = []
    logged = worker._client.on_connect_fail
    worker._client.on_connect_fail = lambda c, u: (failures.append(1), logged(c, u))  # type: ignore[misc]
    worker.start()
    try:
        assert wait_until(lambda: len(failures) >= 3, 60)
        unreachable = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(unreachable) == 1, unreachable
        assert f"127.0.0.1:{port} unreachable ([Errno 111] Connection refused)" in unreachable[0]
        assert "retrying after 1 s, doubling to 15 s" in unreachable[0]
        with MosquittoServer(tmp_path / "broker", port=port):
            assert worker.connected.wait(60)
            reached = [r.getMessage() for r in caplog.records if "reached again" in r.getMessage()]
            assert len(reached) == 1 and f"127.0.0.1:{port} reached again after" in reached[0]
    finally:
        worker.stop(end_session=True)
        influx.close()
