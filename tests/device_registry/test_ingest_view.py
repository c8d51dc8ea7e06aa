"""What the ingest reads from the registry, and how it follows changes (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from anti_cheat import Engine as AntiCheat
from cloud_ingest.device_snapshot import snapshot_revision
from cloud_ingest.sensor_alerts import AlertBook
from device_registry import ingest_view
from device_registry.credentials import derive_integrity_key
from device_registry.schemas import BaseIn, DeviceIn, LimitIn, ProvisionIn, RevokeIn
from tests.support.registry import KEY_SECRET, open_registry, scale, seed_places, verification
from zhijian_cli.ingest_devices import registry_devices


def test_the_ingest_view_follows_the_registry(engine: Engine, registry_url: str) -> None:
    reg = open_registry(engine)
    seed_places(reg)
    reg.register(scale())
    reg.provision("scale-0001", ProvisionIn())
    reg.add_base(
        BaseIn(
            id="base-x",
            name="X",
            district_id="nanshan",
            crops=["tomato"],
            alert_limits={"soil.moisture_pct": LimitIn(low=25, high=40)},
        )
    )
    reg.register(DeviceIn(id="base-gw-1", profile="soil-rs485", serial_no="G", base_id="base-x"))
    live = registry_devices(registry_url, KEY_SECRET, refresh_s=0)
    assert live.key_for("scale-0001") == derive_integrity_key(KEY_SECRET, "scale-0001", 1)
    assert live.key_for("base-gw-1") is None  # registered, not provisioned
    assert live.tags_for("scale-0001") == {"district": "futian", "market": "futian-no1", "stall": "A-017"}
    assert live.partition_key("scale-0001") == "futian-no1"
    engine_ = AntiCheat(live.current.facts)
    book = AlertBook()
    live.attach(engine_, book)
    assert book.crops == {"base-gw-1": "tomato"} and book.limits["base-gw-1"]["soil.moisture_pct"].low == 25
    assert not live.refresh(), "nothing changed: no reload"

    # a verification: new facts, and the scale's baselines restart
    i = engine_.state.row(engine_.facts.index_of("scale-0001"))
    engine_.state.reweigh_cusum[i] = 12_345
    engine_.state.digit_counts[i, 3] = 7
    reg.verify("scale-0001", verification(100, 2500, 10000, 30000))
    assert live.refresh() and live.baselines_reset == 1
    fact = engine_.facts.current("scale-0001")
    assert fact is not None and fact.coefficient == 20_000.0 and fact.market == "futian-no1"
    assert fact.verified_ms is not None and abs(fact.verified_ms / 1000 - time.time()) < 3600
    assert engine_.state.reweigh_cusum[i] == 0 and not np.any(engine_.state.digit_counts[i])
    assert fact.approved_software_id == "PCS-1.2"

    # rotation and revocation
    reg.provision("scale-0001", ProvisionIn(), action="rotate")
    assert live.refresh() and live.key_for("scale-0001") == derive_integrity_key(KEY_SECRET, "scale-0001", 2)
    reg.revoke("scale-0001", RevokeIn(reason="seal broken"))
    assert live.refresh() and live.is_revoked("scale-0001") and live.baselines_reset == 1


def test_a_failed_reload_keeps_the_last_view(
    engine: Engine, registry_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = open_registry(engine)
    seed_places(reg)
    reg.register(scale())
    reg.provision("scale-0001", ProvisionIn())
    live = registry_devices(registry_url, KEY_SECRET, refresh_s=0)
    key = live.key_for("scale-0001")

    def broken() -> int:
        raise ConnectionError("database away")

    monkeypatch.setattr(live, "_revision", broken)  # the database goes away
    assert not live.refresh() and live.reload_errors == 1
    assert live.key_for("scale-0001") == key


def test_the_snapshot_is_used_when_current_and_follows_reloads(
    engine: Engine, registry_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = open_registry(engine)
    seed_places(reg)
    reg.register(scale())
    reg.provision("scale-0001", ProvisionIn())
    reg.verify("scale-0001", verification(100, 2500, 10000, 30000))
    snap = tmp_path / "devices_snapshot.npz"
    first = registry_devices(registry_url, KEY_SECRET, refresh_s=0, snapshot=snap)
    written = snapshot_revision(snap)
    assert written is not None and written.endswith(f":{first.revision}")

    real_rows = ingest_view.ingest_rows

    def not_read(db: object, key_secret: bytes) -> None:
        raise AssertionError("the registry was read: the snapshot was not used")

    monkeypatch.setattr(ingest_view, "ingest_rows", not_read)
    live = registry_devices(registry_url, KEY_SECRET, refresh_s=0, snapshot=snap)
    assert live.key_for("scale-0001") == first.key_for("scale-0001")
    assert live.tags_for("scale-0001") == first.tags_for("scale-0001")
    assert live.current.facts.current("scale-0001") == first.current.facts.current("scale-0001")
    monkeypatch.setattr(ingest_view, "ingest_rows", real_rows)

    # a reload from a snapshot start updates the facts in place, restarts baselines, rewrites the snapshot
    engine_ = AntiCheat(live.current.facts)
    live.attach(engine_, AlertBook())
    scale_index = engine_.facts.index_of("scale-0001")
    i = engine_.state.row(scale_index)
    engine_.state.reweigh_cusum[i] = 12_345
    reg.verify("scale-0001", verification(100, 2500, 10000, 30000))
    assert live.refresh() and live.baselines_reset == 1 and engine_.state.reweigh_cusum[i] == 0
    assert engine_.facts.n_versions[scale_index] == 2, "the new verification is a version beside the one loaded"
    deadline = time.monotonic() + 10
    while snapshot_revision(snap) != written.rsplit(":", 1)[0] + f":{live.revision}":
        assert time.monotonic() < deadline, "the snapshot was not rewritten after the reload"
        time.sleep(0.05)

    # a change while the ingest is away: the snapshot is of an older revision and not used
    reg.revoke("scale-0001", RevokeIn(reason="seal broken"))
    assert registry_devices(registry_url, KEY_SECRET, refresh_s=0, snapshot=snap).is_revoked("scale-0001")


def test_the_ingest_learns_which_scales_have_no_valid_verification(engine: Engine, registry_url: str) -> None:
    """Never verified, or the latest failed: the ingest's facts say so from when (the rule
    ``unverified_in_use`` reads it); a passed re-verification clears it at the next reload; places and
    their positions come along."""
    from anti_cheat import Transactions
    from anti_cheat.facts import FROM_START, NEVER
    from device_registry.schemas import PositionIn

    reg = open_registry(engine)
    seed_places(reg)
    reg.register(scale())
    reg.register(scale("scale-0002", market="nanshan-no2"))
    reg.verify("scale-0002", verification(100, 2500, 10000, 30000))
    reg.set_market_position("futian-no1", PositionIn(lat=22.5431, lon=114.0579))
    live = registry_devices(registry_url, KEY_SECRET, refresh_s=0)
    engine_ = AntiCheat(live.current.facts)
    live.attach(engine_, AlertBook())
    facts = engine_.facts
    assert facts.unverified_from_ms[facts.index_of("scale-0001")] == FROM_START
    assert facts.unverified_from_ms[facts.index_of("scale-0002")] == NEVER
    market = next(p for p in live.current.places if p["kind"] == "market" and p["id"] == "futian-no1")
    assert (market["lat"], market["lon"]) == (22.5431, 114.0579)
    assert live.vendor_for("scale-0001") is not None

    reg.verify("scale-0002", verification(100, 2500, 10000, 30100))  # 100 g off at 30 kg: failed
    reg.verify("scale-0001", verification(100, 2500, 10000, 30000))
    assert live.refresh()
    failed_at = int(facts.unverified_from_ms[facts.index_of("scale-0002")])
    assert abs(failed_at / 1000 - time.time()) < 3600
    assert facts.unverified_from_ms[facts.index_of("scale-0001")] == NEVER
    rows = [{"device": "scale-0002", "seq": 1, "ts": failed_at + 1000, "net_mg": 1_000_000}]
    batch = Transactions.from_rows(facts, rows)
    assert [f.rule for f in engine_.score(batch).flags(batch, facts)] == ["unverified_in_use"]
