"""An agent whose broker is down says so once, with the error and the retry schedule, keeps retrying,
and says once when the broker is reached (its records wait in the outbox meanwhile)."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import pytest

from edge_agent import BrokerConfig
from edge_agent.outbox import Outbox
from edge_agent.publisher import Publisher
from tests.support.waiting import wait_until
from zhijian_cli.servers import MosquittoServer, free_port

pytestmark = pytest.mark.integration


def test_an_unreachable_broker_is_logged_once_and_once_more_when_reached(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.publisher")
    port = free_port()
    outbox = Outbox(tmp_path / "outbox.sqlite")
    publisher = Publisher(
        device_id="scale-0901",
        key=secrets.token_bytes(32),
        boot="0" * 32,
        outbox=outbox,
        broker=BrokerConfig(port=port, backoff_min_s=0.2, backoff_max_s=0.5),
    )
    publisher.start()
    network = publisher.loops[0]
    try:
        assert wait_until(lambda: network.steps >= 5, 60)  # five failed connection attempts
        unreachable = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(unreachable) == 1, unreachable
        assert f"scale-0901: broker 127.0.0.1:{port} unreachable (" in unreachable[0]
        assert "Connection refused" in unreachable[0] and "retrying after 0.2 s, doubling to 0.5 s" in unreachable[0]
        with MosquittoServer(tmp_path / "broker", port=port):
            assert publisher.connected.wait(60)
            reached = [r.getMessage() for r in caplog.records if "reached again" in r.getMessage()]
            assert len(reached) == 1, reached
    finally:
        publisher.stop()
        outbox.close()


def test_a_broker_that_stops_is_logged_in_words(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A clean broker shutdown closes the socket without a DISCONNECT, which paho calls "Unspecified error";
    the agent's log and status say what it means instead."""
    caplog.set_level(logging.INFO, logger="edge_agent.publisher")
    outbox = Outbox(tmp_path / "outbox.sqlite")
    broker = MosquittoServer(tmp_path / "broker").start()
    publisher = Publisher(
        device_id="scale-0902",
        key=secrets.token_bytes(32),
        boot="0" * 32,
        outbox=outbox,
        broker=BrokerConfig(port=broker.port, backoff_min_s=0.2, backoff_max_s=0.5),
    )
    publisher.start()
    try:
        assert publisher.connected.wait(60)
        broker.stop()
        assert wait_until(lambda: any("lost the broker" in r.getMessage() for r in caplog.records), 60)
        line = next(r.getMessage() for r in caplog.records if "lost the broker" in r.getMessage())
        assert "Unspecified error" not in line and "Unspecified error" not in publisher.last_error
        assert "scale-0902: lost the broker: the connection was closed without a word from the broker" in line
        assert line.endswith("reconnecting, records stay in the outbox")
    finally:
        publisher.stop()
        outbox.close()
        broker.stop()
