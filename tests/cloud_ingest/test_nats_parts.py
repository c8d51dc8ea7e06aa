"""The scale-out's pure parts: a partition's snapshot, the router's keying of a message, the stream names."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from cloud_ingest import IngestSettings
from cloud_ingest.checkpoints import restore, snapshot
from cloud_ingest.nats_stream import MSG_ID_HEADER, TOPIC_HEADER, message_id, partition_of_key, subject
from cloud_ingest.router import TRUNCATED_HEADER, Router
from device_profiles.envelope import MAX_PAYLOAD_BYTES
from zhijian_cli.ingest_devices import partition_settings


def test_a_snapshot_restores_the_files_and_the_engine_state(tmp_path: Path) -> None:
    state = tmp_path / "p3"
    state.mkdir()
    (state / "sequences.sqlite").write_bytes(b"db")
    (state / "dead_letters.sqlite-wal").write_bytes(b"wal")
    (state / "dead_letters.sqlite-shm").write_bytes(b"shm")  # rebuilt by SQLite: left out
    blob = snapshot(state, b"engine")
    (state / "stale").write_bytes(b"from before the takeover")
    assert restore(blob, state) == b"engine"
    assert sorted(p.name for p in state.iterdir()) == ["dead_letters.sqlite-wal", "sequences.sqlite"]
    assert restore(None, state) is None and not list(state.iterdir())


def test_a_snapshot_cannot_write_outside_its_directory(tmp_path: Path) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name in ("../evil", "/abs", "ok"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    restore(out.getvalue(), tmp_path / "p0")
    assert [p.name for p in (tmp_path / "p0").iterdir()] == ["ok"]
    assert not (tmp_path / "evil").exists()


def test_the_router_keys_by_market_and_keeps_the_bytes() -> None:
    markets = {"scale-0001": "market-a", "fair-0001": "market-a"}
    router = Router(IngestSettings(nats_partitions=16), lambda d: markets.get(d, d))
    payload = b'{"v":1}'
    p1, h1, b1 = router.headers_and_payload("zhijian/v1/scale-0001/data", payload)
    p2, _, _ = router.headers_and_payload("zhijian/v1/fair-0001/reply", b"{}")
    p3, _, _ = router.headers_and_payload("zhijian/v1/scale-0404/data", payload)
    assert p1 == p2 == partition_of_key("market-a", 16) and p3 == partition_of_key("scale-0404", 16)
    assert b1 == payload and h1[TOPIC_HEADER] == "zhijian/v1/scale-0001/data"
    assert h1[MSG_ID_HEADER] == message_id("zhijian/v1/scale-0001/data", payload)
    assert message_id("zhijian/v1/scale-0002/data", payload) != h1[MSG_ID_HEADER]


def test_the_router_quotes_odd_topics_and_cuts_what_nats_cannot_carry() -> None:
    router = Router(IngestSettings(), lambda d: d)
    _, headers, _ = router.headers_and_payload("zhijian/v1/Bad Id\r\n/data", b"x")
    assert "\n" not in headers[TOPIC_HEADER] and "\r" not in headers[TOPIC_HEADER]
    _, headers, body = router.headers_and_payload("zhijian/v1/scale-0001/data", b"x" * (2 << 20))
    assert headers[TRUNCATED_HEADER] == str(2 << 20) and len(body) == MAX_PAYLOAD_BYTES + 1


def test_partition_settings_move_every_state_file(tmp_path: Path) -> None:
    moved = partition_settings(IngestSettings(), tmp_path / "p1")
    paths = {name: value for name, value in moved if name.endswith("_path") and value is not None}
    assert paths and all(Path(v).parent == tmp_path / "p1" for v in paths.values())
    assert subject("ZHIJIAN_INGEST", 7) == "zhijian.ingest.7"
