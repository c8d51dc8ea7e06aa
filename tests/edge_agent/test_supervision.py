"""Every background loop of the agent runs under supervision: a reader whose driver raises something
unexpected is shown as failing in the status file, counted, started over, and reads again."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from device_profiles.records import EXAMPLE_SALE
from edge_agent import Agent, BrokerConfig
from edge_agent.sources import Source, Taken
from tests.support.waiting import wait_until
from zhijian_cli.servers import MosquittoServer

pytestmark = pytest.mark.integration


class BuggySource(Source):
    """A source whose driver has a bug that strikes a few times (a seam: no real device fails this way on
    purpose), then gives one sale per call."""

    def __init__(self, failures: int) -> None:
        self.name = "buggy"
        self.dead_letters = []
        self.failures = failures
        self.calls = 0
        self.closes = 0
        self.txn = 0

    def take(self) -> list[Taken]:
        self.calls += 1
        if self.calls <= self.failures:
            raise ValueError(f"bug {self.calls}")
        if self.txn >= 5:
            time.sleep(0.05)
            return []
        self.txn += 1
        return [Taken({**EXAMPLE_SALE, "txn": self.txn}, source_id=self.txn)]

    def close(self) -> None:
        self.closes += 1


def status(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def test_a_reader_that_raises_is_shown_failing_then_recovers(mosquitto: MosquittoServer, tmp_path: Path) -> None:
    source = BuggySource(failures=3)
    status_path = tmp_path / "status.json"
    agent = Agent(
        device_id="scale-0042",
        key=b"k" * 32,
        sources=[source],
        outbox_path=tmp_path / "outbox.sqlite",
        broker=BrokerConfig(host="127.0.0.1", port=mosquitto.port),
        status_path=status_path,
        poll_interval_s=0.05,
    )
    agent.loops[0].min_backoff_s = 0.5  # long enough for the status file (written every second) to show it
    agent.start()
    try:
        assert wait_until(lambda: status(status_path).get("sources", {}).get("buggy") == "failing", 30)
        shown = status(status_path)["threads"]["read-buggy"]
        assert shown["alive"] and shown["errors"] >= 1 and shown["last_error"].startswith("ValueError: bug")
        assert wait_until(lambda: agent.publisher.published_records == 5, 60), status(status_path)
        assert wait_until(lambda: status(status_path).get("sources", {}).get("buggy") == "up", 30)
        final = status(status_path)
        assert final["threads"]["read-buggy"]["errors"] == 3 and not final["threads"]["read-buggy"]["failing"]
        assert set(final["threads"]) >= {"read-buggy", "status-file", "mqtt-scale-0042", "publish-scale-0042"}
        assert source.closes >= 3  # each surprise started the source over
    finally:
        agent.stop()
