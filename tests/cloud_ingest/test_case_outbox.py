"""The case outbox: events kept with their batch's transaction, once per key, bounded with the overflow
counted; and how `zhijian ingest run` wires it (settings, worker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_ingest import InfluxClient, IngestSettings
from cloud_ingest.case_outbox import CaseOutbox, base_ack_event
from cloud_ingest.case_reporter import CaseReporter
from cloud_ingest.state_store import StateStore
from zhijian_cli.ingest_devices import build_worker


def ack(n: int) -> dict:  # type: ignore[type-arg]
    return base_ack_event("base-0007", f"alert-{n}", by="Li", ts_ms=n)


def test_events_are_kept_once_in_order_and_the_bound_counts_what_it_refuses(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite")
    outbox = CaseOutbox(store, max_events=3)
    outbox.put([ack(1), ack(2), ack(1)])  # the same event twice (a batch stored again): kept once
    assert outbox.depth == 2
    outbox.put([ack(3), ack(4), ack(5)])
    assert outbox.depth == 3 and outbox.overflowed == {"base_ack": 2}
    assert [e["alert_id"] for _, e in outbox.oldest(10)] == ["alert-1", "alert-2", "alert-3"]
    with pytest.raises(RuntimeError), store.transaction():  # the batch's transaction fails: nothing kept
        outbox.remove([i for i, _ in outbox.oldest(1)])
        raise RuntimeError
    assert outbox.depth == 3
    outbox.remove([i for i, _ in outbox.oldest(2)])
    assert outbox.depth == 1
    store.close()
    again = CaseOutbox(StateStore(tmp_path / "state.sqlite"))  # a restart: what waited is still there
    assert [e["event_key"] for _, e in again.oldest(10)] == ["base_ack:alert-3"] and again.depth == 1


def test_the_settings_need_a_real_ingest_token_with_the_api_url() -> None:
    with pytest.raises(ValueError, match="needs registry_api_token"):
        IngestSettings(registry_api_url="http://registry:8080")
    with pytest.raises(ValueError, match="not a placeholder"):
        IngestSettings(registry_api_url="http://registry:8080", registry_api_token="changeme")


def test_the_worker_reports_cases_only_when_told_where(tmp_path: Path, influx: InfluxClient) -> None:
    from cloud_ingest import DeviceFile

    devices = DeviceFile({})
    plain = IngestSettings(state_path=tmp_path / "a" / "state.sqlite", spool_path=tmp_path / "a" / "spool.sqlite")
    (tmp_path / "a").mkdir()
    worker = build_worker(plain, influx, devices)
    assert worker.case_reporter is None and worker.pipeline.case_outbox is None
    (tmp_path / "b").mkdir()
    told = plain.model_copy(
        update={
            "registry_api_url": "http://127.0.0.1:9",
            "registry_api_token": "zjt_000000000000_" + "x" * 32,
            "state_path": tmp_path / "b" / "state.sqlite",
            "spool_path": tmp_path / "b" / "spool.sqlite",
        }
    )
    told = IngestSettings.model_validate(told.model_dump())
    worker = build_worker(told, influx, devices)
    assert worker.case_reporter is not None and worker.pipeline.case_outbox is worker.case_reporter.outbox
    assert worker.case_reporter.loop in worker.loops


def test_a_batch_too_large_for_the_registry_goes_one_by_one_and_an_event_too_large_alone_is_dropped(
    tmp_path: Path,
) -> None:
    from fastapi.testclient import TestClient

    from device_registry import Principal, Registry, Role
    from device_registry.api import create_app
    from device_registry.db import connect, sessions, upgrade
    from device_registry.schemas import TokenIn

    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    upgrade(url)
    engine = connect(url)
    with sessions(engine)() as db:
        token = Registry(db, Principal("bootstrap", Role.ADMIN)).create_token(TokenIn(name="i", role=Role.INGEST)).token
    outbox = CaseOutbox(StateStore())

    def flag(n: int, reason: str) -> dict:  # type: ignore[type-arg]
        return {"event_key": f"flag:scale-0001:{n}:coefficient", "type": "flag", "device": "scale-0001", "ts": n,
                "rule": "coefficient", "detail": {"reason_en": reason}}  # fmt: skip

    huge = {**flag(99, ""), "detail": {f"k{i}": "x" * 400 for i in range(20)}}  # 8 kB: over the bound alone
    outbox.put([flag(n, "r" * 400) for n in range(10)] + [huge])
    with TestClient(create_app(engine, max_body_bytes=4096)) as http:
        reporter = CaseReporter(outbox, api_url="http://registry", token=token, http=http)
        assert reporter.deliver() == 11 and outbox.depth == 0
    assert reporter.results == {"unknown_device": 10, "refused": 1}  # scale-0001 is not in this registry
    engine.dispose()
