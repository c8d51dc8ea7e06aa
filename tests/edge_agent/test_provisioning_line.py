"""Writing a bundle to a device over a serial line: real bytes through a null-modem pty pair."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from device_profiles.bundle_text import qr_text
from device_profiles.envelope import key_fingerprint
from edge_agent.bundle_file import load_bundle
from edge_agent.errors import ConfigError
from edge_agent.provisioning_line import receive_bundle, send_bundle
from firmware_sim.null_modem import NullModem

BUNDLE = {
    "device_id": "scale-0042",
    "key_hex": "5f" * 32,
    "broker": {"host": "mqtt.example", "port": 1883, "username": "scale-0042", "password": "pw"},
    "state_dir": "/var/lib/zhijian/scale-0042",
    "sources": [{"profile": "zj-pcs-30", "port": "/dev/ttyUSB0"}],
}


def _device(port: str, out: Path, result: dict[str, object]) -> threading.Thread:
    def run() -> None:
        try:
            result["bundle"] = receive_bundle(port, out, timeout_s=10)
        except ConfigError as exc:
            result["error"] = str(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_the_device_stores_the_bundle_and_reports_its_key_fingerprint(tmp_path: Path) -> None:
    out = tmp_path / "etc" / "bundle.txt"
    result: dict[str, object] = {}
    with NullModem() as cable:
        device = _device(cable.port_a, out, result)
        got = send_bundle(cable.port_b, qr_text(BUNDLE), timeout_s=10)
        device.join(5)
    assert got == ("scale-0042", key_fingerprint(bytes.fromhex("5f" * 32)))
    assert out.stat().st_mode & 0o777 == 0o600
    assert load_bundle(out).model_dump(mode="json", exclude_defaults=True) == BUNDLE


def test_a_bad_bundle_is_refused_with_the_reason_on_both_ends(tmp_path: Path) -> None:
    out = tmp_path / "bundle.txt"
    result: dict[str, object] = {}
    with NullModem() as cable:
        device = _device(cable.port_a, out, result)
        with pytest.raises(ConfigError, match=r"refused the bundle: .*key_hex"):
            send_bundle(cable.port_b, qr_text({**BUNDLE, "key_hex": "00" * 32}), timeout_s=10)
        device.join(5)
    assert "placeholder" in str(result["error"]) and not out.exists()


def test_a_device_that_opens_its_port_late_still_gets_the_bundle(tmp_path: Path) -> None:
    """The laptop may send before the gateway listens; it repeats until answered, the gateway skips the
    partial or stale lines it finds when it opens the port."""
    out = tmp_path / "bundle.txt"
    got: dict[str, object] = {}
    with NullModem() as cable:
        sender = threading.Thread(
            target=lambda: got.update(reply=send_bundle(cable.port_b, qr_text(BUNDLE), timeout_s=15)), daemon=True
        )
        sender.start()
        time.sleep(1.0)  # the first copy is long gone when the device opens its port
        receive_bundle(cable.port_a, out, timeout_s=10)
        sender.join(10)
    assert got["reply"] == ("scale-0042", key_fingerprint(bytes.fromhex("5f" * 32)))
