"""Profile loading: every shipped profile passes the conformance checks; broken ones name file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import device_profiles
from device_profiles import RECORD_TYPES, ProfileError, builtin, builtin_profiles, load_dir, load_profile
from device_profiles.schema import SICS_ROLES

PROFILES = sorted(builtin_profiles())
SHIPPED = Path(device_profiles.__file__).parent / "profiles"


def test_the_shipped_models_are_all_there() -> None:
    kinds = {(p.kind, p.protocol) for p in builtin_profiles().values()}
    assert {
        ("scale", "mt-sics"),
        ("scale", "toledo-continuous"),
        ("sensor", "modbus"),
        ("gps", "nmea-0183"),
        ("rapid_test", "zj-rapid-test"),
    } <= kinds
    assert {builtin("soil-rs485").modbus.record_type, builtin("air-rs485").modbus.record_type} == {
        "soil",
        "air",
    }


@pytest.mark.parametrize("profile_id", PROFILES)
def test_profile_conformance(profile_id: str) -> None:
    p = builtin(profile_id)
    assert all(r in RECORD_TYPES for r in p.records)
    if p.kind == "scale":
        m = p.metrology
        assert m is not None and m.e_mg == m.d_mg
    if p.modbus is not None:
        fields = RECORD_TYPES[p.modbus.record_type].fields
        for reg in p.modbus.registers:
            assert fields[reg.field].unit == reg.unit
            lo, hi = reg.range
            spec = fields[reg.field]
            assert spec.min is None or lo >= spec.min
            assert spec.max is None or hi <= spec.max
    if p.mtsics is not None:
        assert set(p.mtsics.extensions) == set(SICS_ROLES)
        commands = [e.command for e in p.mtsics.extensions.values()]
        assert len(commands) == len(set(commands)), "extension commands must be distinct"


def _write_broken(tmp_path: Path, profile_id: str, mutate) -> Path:
    data = yaml.safe_load((SHIPPED / f"{profile_id}.yaml").read_text())
    mutate(data)
    path = tmp_path / f"broken-{profile_id}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


@pytest.mark.parametrize(
    ("profile_id", "mutate", "field", "words"),
    [
        ("soil-rs485", lambda d: d["modbus"]["registers"][1].update(unit="°F"), "modbus", "unit"),
        (
            "soil-rs485",
            lambda d: d["modbus"]["registers"][2].update(address=-1),
            "modbus.registers.2.address",
            "greater than or equal",
        ),
        (
            "soil-rs485",
            lambda d: d["modbus"]["registers"][0].update(scal=0.1),
            "modbus.registers.0.scal",
            "not permitted",
        ),
        ("zj-pcs-30", lambda d: d["metrology"].update(d_mg=1000), "metrology", "must equal d"),
        ("zj-pcs-30", lambda d: d["metrology"].update(min_g=50), "metrology", "Min must be 20 e"),
        ("zj-pcs-30", lambda d: d["mtsics"]["extensions"].pop("counters"), "mtsics", "counters"),
        ("zj-pcs-30", lambda d: d.pop("metrology"), "(profile)", "metrology"),
        ("gps-nmea", lambda d: d["nmea"].update(talkers=["XX"]), "nmea.talkers.0", "Input should be"),
        ("zj-rt-12", lambda d: d.update(records=["rapid_test", "gossip"]), "(profile)", "gossip"),
    ],
)
def test_broken_profile_names_file_and_field(tmp_path: Path, profile_id, mutate, field, words) -> None:
    path = _write_broken(tmp_path, profile_id, mutate)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    err = info.value
    assert err.source == str(path)
    assert err.field == field
    assert words in str(err)
    assert str(path) in str(err)


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("id: x\nkind: [scale\n")
    with pytest.raises(ProfileError, match=r"bad.yaml: line \d+: not valid YAML"):
        load_profile(path)


def test_missing_file_and_duplicate_ids(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "nope.yaml")
    text = (SHIPPED / "gps-nmea.yaml").read_text()
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text)
    with pytest.raises(ProfileError, match="duplicate profile id"):
        load_dir(tmp_path)


def test_unknown_builtin_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="zj-pcs-30"):
        builtin("no-such-scale")
