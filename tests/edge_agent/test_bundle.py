"""Provisioning bundles: validation with file and field in the error, and the agent they build."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import yaml

from edge_agent import ConfigError, ModbusSource, MtSicsSource, StreamSource
from edge_agent.bundle_file import build_agent, load_bundle


def write(tmp_path: Path, **over) -> Path:
    doc = {
        "device_id": "base-0007",
        "key_hex": secrets.token_hex(32),
        "state_dir": str(tmp_path / "state"),
        "broker": {"host": "127.0.0.1", "port": 1883},
        "sources": [
            {"profile": "soil-rs485", "port": "tcp://127.0.0.1:5020", "unit_id": 1, "interval_s": 60},
            {"profile": "air-rs485", "port": "tcp://127.0.0.1:5020", "unit_id": 2},
            {"profile": "zj-pcs-30", "port": "socket://127.0.0.1:4001"},
            {"profile": "gps-nmea", "port": "/dev/ttyUSB1"},
        ],
    }
    doc.update(over)
    path = tmp_path / "bundle.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_bundle_builds_its_sources_and_shares_a_bus(tmp_path: Path) -> None:
    agent = build_agent(load_bundle(write(tmp_path)))
    kinds = [type(s) for s in agent.sources]
    assert kinds == [ModbusSource, ModbusSource, MtSicsSource, StreamSource]
    assert agent.sources[0].sensor.bus is agent.sources[1].sensor.bus  # one RS-485 line, one lock
    assert agent.sources[1].sensor.unit_id == 2
    assert (tmp_path / "state" / "outbox.sqlite").exists()
    agent.outbox.close()


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"device_id": "Base 7"}, "device_id"),
        ({"key_hex": "0" * 64}, "key_hex: Value error, key_hex is a placeholder"),
        ({"key_hex": "abc"}, "key_hex"),
        ({"sources": []}, "sources"),
        ({"broker": {"host": "x", "port": 70000}}, "broker.port"),
        ({"broker": {"host": "x", "colour": "red"}}, "broker.colour"),
        ({"broker": {"host": "x", "username": "base-0008"}}, "'base-0008' is not the device id 'base-0007'"),
        ({"delivery": "maybe"}, "delivery"),
    ],
)
def test_bad_bundles_name_file_and_field(tmp_path: Path, over: dict, message: str) -> None:
    path = write(tmp_path, **over)
    with pytest.raises(ConfigError) as info:
        load_bundle(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_unknown_profile_and_missing_file(tmp_path: Path) -> None:
    bundle = load_bundle(write(tmp_path, sources=[{"profile": "no-such-device", "port": "/dev/null"}]))
    with pytest.raises(ConfigError, match="no profile 'no-such-device'"):
        build_agent(bundle)
    with pytest.raises(ConfigError, match="cannot read"):
        load_bundle(tmp_path / "missing.yaml")
