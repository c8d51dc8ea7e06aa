"""What an operator reads in the ingest's log: rejections as a summary a minute (the first at once, with its
detail), a broker that went away in words, and no line per InfluxDB write from the HTTP client."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from anti_cheat import Engine, ScaleFacts
from cloud_ingest import DeviceFile, InfluxClient, IngestSettings, IngestWorker, Pipeline
from cloud_ingest.rejection_log import RejectionLog
from cloud_ingest.spool import Spool
from device_profiles import encode
from device_profiles.mqtt_reasons import disconnect_words
from tests.support.envelopes import BOOT, sale
from tests.support.waiting import wait_until
from zhijian_cli.log_setup import CHATTY, configure_logging
from zhijian_cli.servers import MosquittoServer

pytestmark = pytest.mark.integration
KNOWN = {"scale-0001": secrets.token_bytes(32)}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _payload(device: str, seq: int, key: bytes | None = None) -> bytes:
    return encode(
        device=device, boot=BOOT, seq=seq, sent_ms=1_764_000_000_000, records=[sale(txn=seq)], key=key or bytes(32)
    )


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    ours = (r for r in caplog.records if r.name == "cloud_ingest.pipeline")
    return [r.getMessage() for r in ours if r.levelno >= logging.WARNING]


def test_rejections_are_logged_once_at_once_then_summarised_each_minute(
    influx: InfluxClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cloud_ingest.pipeline")
    files = DeviceFile({d: {"key": k.hex()} for d, k in KNOWN.items()})
    pipeline = Pipeline(key_for=files.key_for, engine=Engine(ScaleFacts()), store=influx)
    clock = Clock()
    pipeline.rejection_log.clock = clock
    unknown = [("zhijian/v1/scale-0010/data", _payload("scale-0010", seq)) for seq in range(1, 14)]
    pipeline.process(unknown[:1])
    first = _warnings(caplog)
    assert len(first) == 1 and "zhijian/v1/scale-0010/data: unknown_device" in first[0], first
    assert "further rejections summarised every minute" in first[0]
    for i, message in enumerate(unknown[1:]):  # over the next minute: counted, not logged
        clock.now += 4
        pipeline.process([message])
        if i == 0:
            good = ("zhijian/v1/scale-0001/data", _payload("scale-0001", 1, KNOWN["scale-0001"]))
            pipeline.process([good])  # accepted payloads do not count
    assert len(_warnings(caplog)) == 1
    clock.now = 1000.0 + 61
    pipeline.rejection_log.flush()  # the worker's batch loop does this, rejections or not
    assert _warnings(caplog)[1:] == ["12 payloads rejected in the last minute: unknown_device ×12 from scale-0010"]
    assert pipeline.rejected["unknown_device"] == 13  # the counters (metrics) count every one
    clock.now += 61
    pipeline.rejection_log.flush()  # a quiet minute: nothing to say, and the spell is over
    assert len(_warnings(caplog)) == 2
    pipeline.process([("zhijian/v1/scale-0010/data", _payload("scale-0010", 99))])
    assert "rejected a payload on zhijian/v1/scale-0010/data: unknown_device" in _warnings(caplog)[2]


def test_a_summary_names_each_reason_and_its_devices() -> None:
    logger = logging.getLogger("test.rejections")
    clock = Clock()
    book = RejectionLog(logger, clock=clock)
    book.add("zhijian/v1/scale-0001/data", "bad_tag", "first")
    for device, reason, n in (
        ("scale-0010", "unknown_device", 9),
        ("scale-0011", "unknown_device", 2),
        ("scale-0012", "unknown_device", 1),
        ("scale-0013", "unknown_device", 1),
        ("scale-0001", "bad_tag", 3),
    ):
        for _ in range(n):
            book.add(f"zhijian/v1/{device}/data", reason, "detail")
    book.add("not/our/topic", "bad_topic", "detail")
    assert book.summary() == (
        "17 payloads rejected in the last minute: unknown_device ×13 from scale-0010 ×9, scale-0011 ×2, "
        "scale-0012 ×1 and 1 more; bad_tag ×3 from scale-0001; bad_topic ×1 from ?"
    )


def test_disconnect_reasons_in_words() -> None:
    # paho's reason 128 without a DISCONNECT packet: the broker closed the socket (as Mosquitto does on stop)
    assert "Unspecified" not in disconnect_words(128, from_broker=False)
    assert disconnect_words(128, from_broker=False).startswith("the connection was closed without a word")
    assert disconnect_words(0x8B, from_broker=True) == "the broker is shutting down"
    assert "took over the session" in disconnect_words(0x8E, from_broker=True)
    assert disconnect_words(0, from_broker=False) == "disconnected at our request"
    assert disconnect_words(0xFE, from_broker=True) == "the broker ended the connection: 254"


def test_the_ingest_says_in_words_why_the_broker_went(
    tmp_path: Path, influx: InfluxClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cloud_ingest.worker")
    files = DeviceFile({d: {"key": k.hex()} for d, k in KNOWN.items()})
    pipeline = Pipeline(
        key_for=files.key_for, engine=Engine(ScaleFacts()), store=influx, spool=Spool(tmp_path / "spool.sqlite")
    )
    broker = MosquittoServer(tmp_path / "broker").start()
    settings = IngestSettings(mqtt_port=broker.port, batch_max_ms=50, mqtt_client_id=f"ingest-{tmp_path.name}")
    worker = IngestWorker(settings, pipeline).start()
    try:
        assert worker.connected.wait(60)
        broker.stop()  # a clean shutdown (SIGTERM): Mosquitto closes the socket, it sends no DISCONNECT
        assert wait_until(lambda: any("disconnected from broker" in r.getMessage() for r in caplog.records), 60)
        line = next(r.getMessage() for r in caplog.records if "disconnected from broker" in r.getMessage())
        assert "Unspecified error" not in line, line
        assert f"127.0.0.1:{broker.port}: the connection was closed without a word from the broker" in line
        assert "the broker stopped or restarted" in line and line.endswith("; reconnecting")
        broker = MosquittoServer(tmp_path / "broker", port=broker.port).start()
        assert worker.connected.wait(60)
    finally:
        worker.stop(end_session=True)
        broker.stop()


@pytest.fixture
def quiet_http() -> Iterator[None]:
    levels = {name: logging.getLogger(name).level for name in CHATTY}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_influxdb_writes_log_no_http_request_lines(
    influx: InfluxClient, caplog: pytest.LogCaptureFixture, quiet_http: None
) -> None:
    caplog.set_level(logging.INFO)
    influx.write(["probe value=1 1764000000000000000"])
    assert any(r.name == "httpx" for r in caplog.records), "httpx no longer logs requests: this test proves nothing"
    caplog.clear()
    configure_logging(False)  # what `zhijian ingest run` and `zhijian agent run` do
    influx.write(["probe value=2 1764000000000000001"])
    assert not [r.getMessage() for r in caplog.records if r.name in CHATTY]
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
    configure_logging(True)
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.DEBUG  # --verbose shows them
