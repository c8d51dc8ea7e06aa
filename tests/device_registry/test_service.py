"""Registry operations on SQLite and PostgreSQL: places, devices, credentials, verifications, revocation,
scopes and the audit log."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select

from device_profiles.bundle import Bundle
from device_profiles.bundle_text import from_qr_text
from device_registry import Conflict, Forbidden, InvalidInput, NotFound, Role
from device_registry import models as m
from device_registry.broker_files import verify_password
from device_registry.broker_sync import device_accounts
from device_registry.credentials import derive_integrity_key, key_fingerprint
from device_registry.schemas import BaseIn, DeviceIn, ProvisionIn, RevokeIn, VehicleIn
from tests.support.registry import KEY_SECRET, open_registry, scale, seed_places, verification


def test_register_a_scale_at_a_stall_and_show_it(engine: Engine) -> None:
    reg = open_registry(engine)
    seed_places(reg)
    out = reg.register(scale())
    assert out.kind == "scale" and out.key_version is None and out.last_verification is None
    assert out.place.model_dump(exclude_none=True) == {
        "kind": "stall",
        "district_id": "futian",
        "market_id": "futian-no1",
        "stall_code": "A-017",
    }
    with pytest.raises(Conflict, match="registered already"):
        reg.register(scale())
    with pytest.raises(NotFound, match="stall 'futian-no1/B-001' not found"):
        reg.register(scale("scale-0002").model_copy(update={"stall_code": "B-001"}))
    with pytest.raises(InvalidInput, match="not a shipped profile"):
        reg.register(scale("scale-0003").model_copy(update={"profile": "no-such"}))
    assert reg.devices(market="futian-no1").total == 1
    assert reg.devices(district="nanshan").total == 0


def test_bases_and_vehicles_hold_devices_too(engine: Engine) -> None:
    reg = open_registry(engine)
    seed_places(reg)
    reg.add_base(BaseIn(id="base-tomato", name="Tomato base", district_id="nanshan", crops=["tomato"]))
    reg.add_vehicle(VehicleIn(id="rt-van-1", plate="粤B12345", district_id="futian"))
    reg.register(DeviceIn(id="base-gw-1", profile="soil-rs485", serial_no="G1", base_id="base-tomato"))
    reg.register(DeviceIn(id="rt-0001", profile="zj-rt-12", serial_no="R1", vehicle_id="rt-van-1"))
    assert [d.place.kind for d in reg.devices().items] == ["base", "vehicle"]
    assert reg.devices(district="nanshan").items[0].id == "base-gw-1"


def test_provisioning_issues_derived_keys_and_keeps_only_hashes(engine: Engine) -> None:
    reg = open_registry(engine)
    seed_places(reg)
    reg.register(scale())
    first = reg.provision("scale-0001", ProvisionIn(port="/dev/ttyS1"))
    key = derive_integrity_key(KEY_SECRET, "scale-0001", 1)
    issued = first.bundle.model_dump(mode="json", exclude_defaults=True)
    assert issued["key_hex"] == key.hex() and first.key_fingerprint == key_fingerprint(key)
    password = first.bundle.broker.password
    assert issued["broker"] == {"host": "broker.test", "username": "scale-0001", "password": password}  # port 8883
    assert first.bundle.broker.port == 8883
    assert issued["sources"] == [{"profile": "zj-pcs-30", "port": "/dev/ttyS1"}]
    assert Bundle.model_validate(from_qr_text(first.qr_text)) == first.bundle
    assert password is not None
    stored = reg.db.scalars(select(m.Credential)).all()
    assert len(stored) == 1 and password not in stored[0].password_hash and key.hex() not in repr(stored[0].__dict__)
    assert verify_password(device_accounts(reg.db)["scale-0001"], password)

    second = reg.provision("scale-0001", ProvisionIn(), action="rotate")
    assert second.key_version == 2 and second.bundle.key != first.bundle.key
    assert verify_password(device_accounts(reg.db)["scale-0001"], second.bundle.broker.password or "")
    assert not verify_password(device_accounts(reg.db)["scale-0001"], password)  # the old one is retired
    assert reg.device("scale-0001").key_version == 2


def test_revocation_retires_credentials_and_blocks_provisioning(engine: Engine) -> None:
    reg = open_registry(engine)
    seed_places(reg)
    reg.register(scale())
    reg.provision("scale-0001", ProvisionIn())
    rev = reg.revoke("scale-0001", RevokeIn(reason="seal broken, scale seized"))
    assert rev.revoked_by == "test-admin"
    assert device_accounts(reg.db) == {}
    assert reg.devices(revoked=True).total == 1 and reg.devices(revoked=False).total == 0
    with pytest.raises(Conflict, match="revoked"):
        reg.provision("scale-0001", ProvisionIn())
    with pytest.raises(Conflict, match="revoked already"):
        reg.revoke("scale-0001", RevokeIn(reason="again"))


def test_a_verification_is_judged_against_the_mpe(engine: Engine) -> None:
    reg = open_registry(engine)
    seed_places(reg)
    reg.register(scale())
    # class III, e = 5 g: MPE at verification ±2.5 g to 2.5 kg, ±5 g to 10 kg, ±7.5 g to 30 kg
    good = reg.verify("scale-0001", verification(102.5, 2497.5, 10005.0, 29992.5))
    assert good.passed and [r.mpe_g for r in good.reference_weights] == [2.5, 2.5, 5.0, 7.5]
    assert good.due_on == dt.date(2027, 11, 20) and good.accuracy_class == "III" and good.e_mg == 5000
    bad = reg.verify("scale-0001", verification(100.0, 2500.0, 10005.5, 30000.0))
    assert not bad.passed and [r.within_mpe for r in bad.reference_weights] == [True, True, False, True]
    assert reg.device("scale-0001").last_verification == bad
    assert [v.id for v in reg.verifications("scale-0001").items] == [bad.id, good.id]


def test_roles_and_scopes(engine: Engine) -> None:
    admin = open_registry(engine)
    seed_places(admin)
    admin.register(scale())
    admin.register(scale("scale-0002", market="nanshan-no2"))
    viewer = open_registry(engine, Role.VIEWER)
    assert viewer.devices().total == 2
    with pytest.raises(Forbidden, match="role viewer may not register"):
        viewer.register(scale("scale-0003"))
    with pytest.raises(Forbidden, match="role viewer may not revoke"):
        viewer.revoke("scale-0001", RevokeIn(reason="because"))
    tech = open_registry(engine, Role.TECHNICIAN)
    with pytest.raises(Forbidden, match="role technician may not add market"):
        tech.add_market(admin.markets().items[0])  # type: ignore[arg-type]
    supervisor = open_registry(engine, Role.SUPERVISOR, markets=frozenset({"nanshan-no2"}))
    assert [d.id for d in supervisor.devices().items] == ["scale-0002"]
    assert [mk.id for mk in supervisor.markets().items] == ["nanshan-no2"]
    assert [d.id for d in supervisor.districts().items] == ["nanshan"]
    # outside the scope, a device that exists reads exactly like one that does not
    with pytest.raises(NotFound) as exists:
        supervisor.device("scale-0001")
    with pytest.raises(NotFound) as missing:
        supervisor.device("scale-9999")
    assert str(exists.value).replace("0001", "X") == str(missing.value).replace("9999", "X")
    supervisor.revoke("scale-0002", RevokeIn(reason="tampered, seized by inspectors"))
    assert [e.entity_id for e in supervisor.audit().items] == ["scale-0002", "scale-0002"]


def test_every_change_is_in_the_audit_log(engine: Engine) -> None:
    reg = open_registry(engine)
    seed_places(reg)
    reg.register(scale())
    reg.provision("scale-0001", ProvisionIn())
    reg.verify("scale-0001", verification(100, 2500, 10000, 30000))
    reg.revoke("scale-0001", RevokeIn(reason="replaced"))
    log = list(reversed(reg.audit(limit=100).items))
    assert [(e.action, e.entity) for e in log] == [
        ("create", "district"),
        ("create", "market"),
        ("create", "stall"),
        ("create", "district"),
        ("create", "market"),
        ("create", "stall"),
        ("register", "device"),
        ("provision", "device"),
        ("verify", "device"),
        ("revoke", "device"),
    ]
    assert all(e.actor == "test-admin" for e in log)
    assert log[-1].detail == {"reason": "replaced"}
    assert "password" not in str([e.detail for e in log]) and "key_hex" not in str([e.detail for e in log])


def test_broker_files_that_cannot_be_written_are_reported_not_hidden(engine: Engine, tmp_path) -> None:
    from fastapi.testclient import TestClient

    from device_registry.api import create_app
    from device_registry.broker_sync import BrokerSync
    from device_registry.service import BundleDefaults

    reg = open_registry(engine)
    seed_places(reg)
    reg.register(scale())
    sync = BrokerSync(passwd_file=tmp_path / "missing-dir" / "passwd", acl_file=tmp_path / "acl")
    app = create_app(engine, bundles=BundleDefaults(key_secret=KEY_SECRET), broker=sync, local_principal=reg.who)
    api = TestClient(app)
    r = api.post("/v1/devices/scale-0001/provision", json={})
    # the bundle is the only copy of the new secrets: delivered, with the broker's failure beside it
    assert r.status_code == 200 and r.json()["bundle"]["broker"]["password"]
    assert r.json()["broker"]["state"] == "failed"
    assert "zhijian registry broker-files" in r.json()["broker"]["detail"]
    assert reg.device("scale-0001").key_version == 1  # the change itself is recorded
    r = api.post("/v1/devices/scale-0001/revoke", json={"reason": "seal broken"})
    assert r.status_code == 502, r.text
    assert "revoked in the registry, but the broker has not applied it" in r.json()["detail"]
    assert "zhijian registry broker-files" in r.json()["detail"]
    reg.db.expire_all()
    assert reg.device("scale-0001").revoked_at is not None


def test_the_technicians_list_of_scales_to_verify(engine: Engine) -> None:
    reg = open_registry(engine)
    seed_places(reg)
    for n in (1, 2, 3, 4):
        reg.register(scale(f"scale-000{n}"))
    on = dt.date(2026, 11, 20)
    reg.verify("scale-0001", verification(100, 2500, 10000, 30000, on=on))  # passed: due 2027-11-20
    reg.verify("scale-0003", verification(100, 2500, 10000, 30000, on=on))
    reg.verify("scale-0003", verification(100, 2500, 10010, 30000, on=on))  # then failed: visit again
    reg.verify("scale-0004", verification(100, 2500, 10000, 30000, on=dt.date(2025, 11, 1)))  # overdue
    reg.add_base(BaseIn(id="base-x", name="X", district_id="futian"))
    reg.register(DeviceIn(id="base-gw-1", profile="soil-rs485", serial_no="G", base_id="base-x"))  # not a scale

    def due(day: dt.date) -> list[str]:
        return [d.id for d in reg.devices(due_by=day).items]

    assert due(dt.date(2026, 12, 1)) == ["scale-0002", "scale-0003", "scale-0004"]
    assert due(dt.date(2027, 11, 20)) == ["scale-0001", "scale-0002", "scale-0003", "scale-0004"]


def test_updating_and_moving_a_device_is_audited(engine: Engine) -> None:
    from device_registry.schemas import DeviceUpdate

    reg = open_registry(engine)
    seed_places(reg)
    reg.register(scale())
    out = reg.update("scale-0001", DeviceUpdate(firmware_version="2.2.0", repair_code="(粤)修00000002"))
    assert out.firmware_version == "2.2.0" and out.place.market_id == "futian-no1"
    moved = reg.update("scale-0001", DeviceUpdate(market_id="nanshan-no2", stall_code="A-017"))
    assert (moved.place.district_id, moved.place.market_id) == ("nanshan", "nanshan-no2")
    entries = [e for e in reg.audit(entity_id="scale-0001").items if e.action == "update"]
    assert entries[0].detail == {"place": [["futian", "futian-no1", "A-017"], ["nanshan", "nanshan-no2", "A-017"]]}
    assert entries[1].detail == {"firmware_version": [None, "2.2.0"], "repair_code": [None, "(粤)修00000002"]}
    reg.update("scale-0001", DeviceUpdate(firmware_version="2.2.0"))  # no change, no entry
    assert len([e for e in reg.audit(entity_id="scale-0001").items if e.action == "update"]) == 2
    supervisor = open_registry(engine, Role.SUPERVISOR, markets=frozenset({"nanshan-no2"}))
    with pytest.raises(Forbidden):
        supervisor.update("scale-0001", DeviceUpdate(firmware_version="x"))
    tech = open_registry(engine, Role.TECHNICIAN, districts=frozenset({"nanshan"}))
    with pytest.raises(NotFound, match="market 'futian-no1' not found"):  # may not move it out of their scope
        tech.update("scale-0001", DeviceUpdate(market_id="futian-no1", stall_code="A-017"))


def test_the_audit_log_by_time(engine: Engine) -> None:
    reg = open_registry(engine)
    seed_places(reg)
    everything = reg.audit(limit=500).items
    first, last = everything[-1].at, everything[0].at
    recent = reg.audit(since=last)
    assert recent.total >= 1 and all(e.at >= last for e in recent.items)
    assert reg.audit(until=first).total == 0
    beijing = dt.timezone(dt.timedelta(hours=8))
    assert reg.audit(since=first.astimezone(beijing)).total == len(everything)  # zones are converted
    assert reg.audit(since=last + dt.timedelta(seconds=1)).total == 0
