"""Hostile and broken devices against the real `zhijian ingest run` process, its registry and a real Mosquitto.

Each poison message (signed with the sender's own registry-derived key, so only the contract can refuse
it) is followed by a valid sale: every valid sale must be stored, every poison kept as a dead letter with
its reason, also when the worker is killed with the poison unacknowledged and the broker delivers it again
to the restarted worker.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_ingest import InfluxClient
from device_profiles.envelope import encode
from device_profiles.records import EXAMPLE_RAPID_TEST, EXAMPLE_REWEIGH
from tests.support.envelopes import BOOT
from tests.support.hostile_devices import DEVICES, Device, Ingest, sale, signed, signed_text
from tests.support.registry import seeded_registry_file
from tests.support.waiting import wait_until
from zhijian_cli.servers import InfluxServer, MosquittoServer

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(tmp_path: Path) -> str:
    return seeded_registry_file(tmp_path, DEVICES)


@pytest.fixture
def ingest(registry: str, mosquitto: MosquittoServer, influxd: InfluxServer, tmp_path: Path) -> Iterator[Ingest]:
    proc = Ingest(registry, mosquitto, influxd, tmp_path)
    proc.start()
    yield proc
    proc.stop()


def poison(seq: int) -> list[tuple[str, bytes, str]]:
    """(sender, payload, expected reason): each signed by its sender."""
    head = f'{{"v":1,"device":"scale-0001","boot":"{BOOT}","seq":{seq},"sent_ms":1,"records":'
    sale_text = json.dumps(sale(seq), separators=(",", ":"))
    reweigh = {**EXAMPLE_REWEIGH, "net_mg": 300_000}
    positive = {**EXAMPLE_RAPID_TEST, "source_id": "A-017"}  # a forged positive about a stall
    lone_surrogate = head + "[" + sale_text.replace('"1001"', '"\\ud800"') + "]}"
    return [
        ("scale-0001", signed_text("scale-0001", lone_surrogate), "bad_json"),
        ("scale-0001", signed_text("scale-0001", head + "[" * 5_000 + "]" * 5_000 + "}"), "bad_json"),
        ("scale-0001", signed("scale-0001", seq, [reweigh]), "record_not_allowed"),
        ("scale-0001", signed("scale-0001", seq, [positive]), "record_not_allowed"),
        ("fair-0001", signed("fair-0001", 1, [reweigh]), "foreign_reference"),
        ("scale-0001", signed("scale-0001", 2**52, [sale(2**52)]), "seq_out_of_range"),
        ("scale-0001", signed("scale-0001", 1, [sale(1, net_mg=27_500, amount_fen=338)]), "conflicting_replay"),
    ]


def stored(influx: InfluxClient) -> dict[int, int]:
    """seq → net_mg of the stored sales of scale-0001."""
    return {
        int(r["seq"]): int(r["net_mg"]) for r in influx.rows("SELECT seq, net_mg FROM sale WHERE device='scale-0001'")
    }


def test_poison_is_dead_lettered_and_the_next_sales_are_stored_across_restarts(
    ingest: Ingest, mosquitto: MosquittoServer, influxd: InfluxServer
) -> None:
    influx = InfluxClient(influxd.url, ingest.db)
    devices = {d: Device(mosquitto.port, d) for d in DEVICES}
    try:
        seq = 1
        devices["scale-0001"].send(signed("scale-0001", seq, [sale(seq)]))
        assert wait_until(lambda: seq in stored(influx), 30), ingest.log()
        expected: Counter[str] = Counter()
        for sender, raw, reason in poison(seq + 1):
            devices[sender].send(raw)
            expected[reason] += 1
            seq += 1
            devices["scale-0001"].send(signed("scale-0001", seq, [sale(seq)]))
        assert wait_until(lambda: len(stored(influx)) == seq, 60), (stored(influx), ingest.log())
        assert wait_until(lambda: ingest.dead_letters() == expected, 30), (ingest.dead_letters(), expected)
        assert set(stored(influx).values()) == {275_000}  # the conflicting replay overwrote nothing

        # killed with poison and sales in flight: the broker delivers them again to the next worker
        for sender, raw, _ in poison(seq + 1):
            devices[sender].send(raw)
            seq += 1
            devices["scale-0001"].send(signed("scale-0001", seq, [sale(seq)]))
        ingest.kill()
        ingest.start()
        assert wait_until(lambda: len(stored(influx)) == seq, 60), (stored(influx), ingest.log())
        seen = ingest.dead_letters()
        assert all(seen[reason] >= 2 * n for reason, n in expected.items()), seen

        # a graceful restart: the same again
        ingest.stop()
        ingest.start()
        for sender, raw, _ in poison(seq + 1):
            devices[sender].send(raw)
            seq += 1
            devices["scale-0001"].send(signed("scale-0001", seq, [sale(seq)]))
        assert wait_until(lambda: len(stored(influx)) == seq, 60), (stored(influx), ingest.log())
        assert set(stored(influx).values()) == {275_000}
        assert wait_until(lambda: all(ingest.dead_letters()[r] >= 3 * n for r, n in expected.items()), 30)
        assert "Traceback" not in ingest.log()
        assert not any(r["stall_device"] == "scale-0002" for r in influx.rows("SELECT * FROM reweigh"))
        assert influx.rows("SELECT * FROM rapid_test") == []
    finally:
        for d in devices.values():
            d.close()
        influx.close()


def test_a_dead_letter_flood_stays_within_its_quota_and_evicts_nobody_elses(
    registry: str, mosquitto: MosquittoServer, influxd: InfluxServer, tmp_path: Path
) -> None:
    ingest = Ingest(registry, mosquitto, influxd, tmp_path, DEAD_LETTER_DEVICE_QUOTA_MB=0.25)
    ingest.start()
    influx = InfluxClient(influxd.url, ingest.db)
    flooder, other = Device(mosquitto.port, "scale-0001"), Device(mosquitto.port, "scale-0002")
    try:
        forged = encode(device="scale-0002", boot=BOOT, seq=1, sent_ms=1, records=[sale(1)], key=b"w" * 32)
        other.send(forged)  # a forged tag: evidence to keep
        junk = [signed("scale-0001", i + 1, [sale(1, plu="x" * 17)]) for i in range(2_000)]  # bad_record, ~500 B
        infos = [flooder.client.publish("zhijian/v1/scale-0001/data", j, qos=1) for j in junk]
        for info in infos:
            info.wait_for_publish(30)
        flooder.send(signed("scale-0001", 1, [sale(1)]))
        assert wait_until(lambda: stored(influx).get(1) == 275_000, 60), ingest.log()
        assert wait_until(lambda: sum(n for d, r, n in ingest.dead_rows() if r == "bad_record") > 0, 30)
        rows = ingest.dead_rows()
        flood = sum(size for device, _, size in rows if device == "scale-0001")
        assert 0 < flood <= 0.25 * 1024 * 1024, flood
        assert ("scale-0002", "bad_tag") in {(d, r) for d, r, _ in rows}
        assert len(rows) < 2_000 and "evicting its oldest" in ingest.log()
    finally:
        flooder.close()
        other.close()
        ingest.stop()
        influx.close()
