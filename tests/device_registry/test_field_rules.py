"""Registry rules a technician runs into, on SQLite and PostgreSQL: a device only at its kind of place
(register and move), a failed verification without a due date (and migration 0002 clearing the due dates
failed verifications had), the loads of a verification against its range, and every pattern of the
published document said in words."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from sqlalchemy import Engine, text

from device_registry.db import alembic_config, connect, upgrade
from device_registry.errors import InvalidInput
from device_registry.load_coverage import coverage_warnings
from device_registry.plain_errors import RULES, plain
from device_registry.schemas import BaseIn, DeviceIn, DeviceUpdate, ReadingIn, VehicleIn, VerificationIn
from tests.support.registry import open_registry, seed_places
from zhijian_cli.registry_cmd import openapi_document


def _verification(*readings: tuple[float, float]) -> VerificationIn:
    return VerificationIn(
        certificate_no="C-1",
        verifying_body="SZ Metrology",
        verified_on=dt.date(2026, 11, 20),
        seal_no="S-1",
        technician="Wang",
        coefficient=20_000.0,
        calibration_events=1,
        configuration_events=1,
        readings=[ReadingIn(reference_g=r, indicated_g=i) for r, i in readings],
    )


def test_a_device_goes_only_where_its_kind_belongs(engine: Engine) -> None:
    reg = open_registry(engine)
    seed_places(reg)
    reg.add_base(BaseIn(id="gm-veg-01", name="Veg", district_id="futian"))
    reg.add_vehicle(VehicleIn(id="rt-van-01", plate="粤B·K1234", district_id="futian"))
    at_stall = {"market_id": "futian-no1", "stall_code": "A-017"}
    for device, profile, place in (
        ("soil-0001", "soil-rs485", at_stall),
        ("gps-0001", "gps-nmea", {"base_id": "gm-veg-01"}),
        ("scale-0001", "zj-pcs-30", {"vehicle_id": "rt-van-01"}),
    ):
        with pytest.raises(InvalidInput, match="cannot be at"):
            reg.register(DeviceIn(id=device, profile=profile, serial_no="S", **place))
    reg.register(DeviceIn(id="scale-0001", profile="zj-pcs-30", serial_no="S", **at_stall))
    reg.register(DeviceIn(id="rt-0001", profile="zj-rt-12", serial_no="S", vehicle_id="rt-van-01"))
    reg.register(DeviceIn(id="rt-0002", profile="zj-rt-12", serial_no="S", **at_stall))  # a market's test room
    with pytest.raises(InvalidInput, match=r"a scale device \(zj-pcs-30\) cannot be at a planting base"):
        reg.update("scale-0001", DeviceUpdate(base_id="gm-veg-01"))
    assert reg.device("scale-0001").place.kind == "stall"
    assert reg.update("rt-0002", DeviceUpdate(vehicle_id="rt-van-01")).place.kind == "vehicle"


def test_a_failed_verification_has_no_due_date(engine: Engine) -> None:
    reg = open_registry(engine)
    seed_places(reg)
    reg.register(
        DeviceIn(id="scale-0001", profile="zj-pcs-30", serial_no="S", market_id="futian-no1", stall_code="A-017")
    )
    failed = reg.verify("scale-0001", _verification((10_000, 10_010)))
    assert not failed.passed and failed.due_on is None
    given = _verification((10_000, 10_010)).model_copy(update={"due_on": dt.date(2027, 6, 1)})
    assert reg.verify("scale-0001", given).due_on is None
    assert [d.id for d in reg.devices(due_by=dt.date(2026, 1, 1)).items] == ["scale-0001"]
    passed = reg.verify("scale-0001", _verification((10_000, 10_005)))
    assert passed.passed and passed.due_on == dt.date(2027, 11, 20)
    assert reg.devices(due_by=dt.date(2027, 11, 19)).total == 0


def test_migration_0002_clears_the_due_date_of_failed_verifications(registry_url: str) -> None:
    upgrade(registry_url, "0001")
    engine = connect(registry_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO districts (id, name) VALUES ('futian', 'Futian')"))
            conn.execute(text("INSERT INTO vehicles (id, plate, district_id) VALUES ('v1', 'B-1', 'futian')"))
            conn.execute(
                text(
                    "INSERT INTO devices (id, profile, kind, serial_no, vehicle_id, registered_at) "
                    "VALUES ('rt-0001', 'zj-rt-12', 'rapid_test', 'S', 'v1', CURRENT_TIMESTAMP)"
                )
            )
            for passed in (True, False):
                conn.execute(
                    text(
                        "INSERT INTO verifications (device_id, certificate_no, verifying_body, verified_on, due_on, "
                        "seal_no, accuracy_class, max_g, e_mg, d_mg, coefficient, calibration_events, "
                        "configuration_events, technician, reference_weights, passed, recorded_at) VALUES "
                        "('rt-0001', :cert, 'B', '2026-11-20', '2027-11-20', 'S', 'III', 30000, 5000, 5000, 1.0, "
                        "0, 0, 'T', '[]', :passed, CURRENT_TIMESTAMP)"
                    ),
                    {"cert": f"C-{passed}", "passed": passed},
                )
        upgrade(registry_url)
        query = text("SELECT passed, due_on FROM verifications ORDER BY id")
        with engine.connect() as conn:
            rows = [(bool(p), str(d) if d else None) for p, d in conn.execute(query)]
        assert rows == [(True, "2027-11-20"), (False, None)]
        command.downgrade(alembic_config(registry_url), "0001")
        with engine.connect() as conn:
            rows = [(bool(p), str(d)) for p, d in conn.execute(query)]
        assert rows == [(True, "2027-11-20"), (False, "2026-11-20")]  # due at once: the failure stands
    finally:
        engine.dispose()


def test_the_loads_of_a_verification_against_its_range() -> None:
    # class III, e = 5 g, Max 30 kg: the MPE changes at 2.5 kg and 10 kg
    rule = {"accuracy_class": "III", "e_mg": 5000, "max_g": 30_000}
    assert coverage_warnings([100, 2500, 5000, 10_000, 30_000], **rule) == []
    assert coverage_warnings([102.5, 2497.5, 10_005, 20_000, 29_992.5], **rule) == []  # near the edges: covered
    one = coverage_warnings([1000], **rule)
    assert one[0].startswith("1 load weighed: a verification needs several (at least 5) from Min up to Max")
    assert "no load near Max (30000 g); the heaviest was 1000 g" in one
    assert "no load between 10000 g and 30000 g, where the MPE is ±1.5 e" in one
    spread = coverage_warnings([100, 500, 1000, 1500, 2000], **rule)
    assert spread == [
        "no load near Max (30000 g); the heaviest was 2000 g",
        "no load between 2500 g and 10000 g, where the MPE is ±1 e",
        "no load between 10000 g and 30000 g, where the MPE is ±1.5 e",
    ]


def _patterns(node: object) -> set[str]:
    if isinstance(node, dict):
        found = set()
        for key, value in node.items():
            found |= {value} if key == "pattern" and isinstance(value, str) else _patterns(value)
        return found
    if isinstance(node, list):
        return set().union(*(_patterns(v) for v in node)) if node else set()
    return set()


def test_every_pattern_of_the_published_document_is_said_in_words() -> None:
    patterns = _patterns(openapi_document())
    # dates are checked by their own validators (their messages are words already); ^zhijian- is a "not"
    words_elsewhere = {r"^20[0-9]{2}-[0-9]{2}-[0-9]{2}$", r"^(?:20[0-9]{2}|2100)-[0-9]{2}-[0-9]{2}$", "^zhijian-"}
    assert patterns - words_elsewhere - set(RULES) == set()
    assert len(patterns) > 10  # the walk found the document's patterns at all
    err = {"type": "string_pattern_mismatch", "msg": "String should match pattern '…'", "input": "Scale_1"}
    shown = plain([{**err, "ctx": {"pattern": r"^[a-z0-9][a-z0-9-]{2,63}$"}}])[0]["msg"]
    assert shown.startswith("a device id is 3-64 lower-case letters") and shown.endswith("; not 'Scale_1'")
    unknown = {**err, "ctx": {"pattern": "^x$"}}
    assert plain([unknown]) == [unknown]  # no words for it: pydantic's text stays
