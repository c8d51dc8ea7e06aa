"""The spool keeps batches in order across restarts, bounds its size, and replays into a returning influxd."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from anti_cheat import Engine, ScaleFacts
from cloud_ingest import InfluxClient, Pipeline
from cloud_ingest.spool import Spool, SpoolFull
from device_profiles import encode
from tests.support.envelopes import BOOT, KEY, TOPIC, keys, sale
from zhijian_cli.servers import InfluxServer


def test_fifo_quota_and_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", quota_bytes=10_000)
    spool.append(["a 1", "b 2"])
    spool.append(["c 3"])
    spool.close()
    spool = Spool(tmp_path / "s.sqlite", quota_bytes=10_000)
    assert (spool.batches, spool.lines) == (2, 3)
    first = spool.oldest()
    assert first is not None and first[1] == ["a 1", "b 2"]
    spool.remove(first[0])
    assert spool.oldest()[1] == ["c 3"] and spool.lines == 1
    with pytest.raises(SpoolFull):
        spool.append([secrets.token_hex(100) for _ in range(200)])  # incompressible: over the quota


def test_influxdb_outage_is_spooled_and_replayed_in_order(tmp_path: Path) -> None:
    server = InfluxServer(tmp_path / "influx").start()
    client = InfluxClient(server.url, "outage", retries=0, timeout_s=1)
    client.create_database()
    pipe = Pipeline(key_for=keys, engine=Engine(ScaleFacts()), store=client, spool=Spool(tmp_path / "spool.sqlite"))

    def send(seq: int) -> None:
        pipe.process(
            [
                (
                    TOPIC,
                    encode(
                        device="scale-0001",
                        boot=BOOT,
                        seq=seq,
                        sent_ms=1,
                        records=[sale(txn=seq, ts=1_764_000_000_000 + seq)],
                        key=KEY,
                    ),
                )
            ]
        )

    try:
        send(1)
        server.stop()
        for seq in range(2, 12):
            send(seq)  # InfluxDB is down: each batch goes to the spool, durably
        assert pipe.spool.lines == 10 and pipe.replay_spool() is False
        server.start()
        send(12)  # behind the spooled ones, to keep the order
        assert pipe.spool.lines == 11
        assert pipe.replay_spool() is True and pipe.spool.lines == 0
        rows = client.rows("SELECT seq FROM sale")
        assert [r["seq"] for r in rows] == list(range(1, 13))
    finally:
        client.close()
        server.stop()
