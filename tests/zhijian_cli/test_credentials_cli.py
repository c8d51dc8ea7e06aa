"""Credentials as a technician handles them, on a real Mosquitto that reads the registry's password file:
a rotation or re-provisioning with nowhere to deliver the new secrets is refused before anything changes
(the device's bundle still logs in), and whatever ends working credentials (rotate, re-provision, revoke)
shows the device, its place and its vendor and asks first: `--yes` for scripts, refused without a
terminal, and answered at a real terminal (a pty) in the last test."""

from __future__ import annotations

import json
import os
import pty
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from device_profiles.bundle_text import qr_text
from device_profiles.private_file import write_private
from device_registry.broker_files import acl_text, hash_password, password_file_text
from tests.support.cli_helpers import cli
from zhijian_cli.servers import MosquittoServer

pytestmark = pytest.mark.integration

LICENCE = "91350100M000100Y43"


def broker_answer(port: int, username: str, password: str) -> str:
    """What Mosquitto answers a CONNECT with these credentials ("Success", "Not authorized", …)."""
    answers: list[str] = []
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"probe-{secrets.token_hex(3)}",
        protocol=mqtt.MQTTv5,
    )
    client.username_pw_set(username, password)
    client.on_connect = lambda _c, _u, _f, reason, _p: answers.append(str(reason))
    client.connect("127.0.0.1", port)
    client.loop_start()
    deadline = time.monotonic() + 30  # generous: a loaded machine; the answer normally comes in milliseconds
    while not answers and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    return answers[0] if answers else "no answer"


def eventually_refused(port: int, username: str, password: str) -> str:
    """The broker's answer once it has had time to reload its password file (SIGHUP from the registry)."""
    deadline = time.monotonic() + 30
    answer = broker_answer(port, username, password)
    while answer == "Success" and time.monotonic() < deadline:
        time.sleep(0.2)
        answer = broker_answer(port, username, password)
    return answer


@pytest.fixture
def field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MosquittoServer, Path]]:
    """A local registry keeping a running Mosquitto's password file and ACL, with a scale at a stall of
    vendor Li [Si] (brackets: Rich must print them), provisioned once: the broker and the bundle."""
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    write_private(passwd, password_file_text({"zhijian-ingest": hash_password("ingest-pw")}))
    write_private(acl, acl_text())
    broker = MosquittoServer(tmp_path / "broker", auth=(passwd, acl)).start()
    env = {
        "ZHIJIAN_REGISTRY_URL": f"sqlite:///{tmp_path / 'registry.sqlite'}",
        "ZHIJIAN_KEY_SECRET_FILE": str(tmp_path / "registry.key"),
        "ZHIJIAN_BROKER_PASSWD_FILE": str(passwd),
        "ZHIJIAN_BROKER_ACL_FILE": str(acl),
        "ZHIJIAN_BROKER_PID_FILE": str(broker.pid_path),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ZHIJIAN_API_URL", raising=False)
    try:
        for command in (
            "registry init",
            "registry add district futian --name Futian",
            "registry add market m1 --name M1 --district futian --operator Op",
            f"registry add stall --market m1 --code A-1 --vendor 'Li [Si]' --licence {LICENCE}",
            "device register scale-0001 --profile zj-pcs-30 --serial SN-1 --market m1 --stall A-1",
            f"device provision scale-0001 --out {tmp_path / 'bundle.yaml'}",
        ):
            code, out = cli(command)
            assert code == 0, f"{command}: {out}"
        yield broker, tmp_path / "bundle.yaml"
    finally:
        broker.stop()


def _password(bundle: Path) -> str:
    return str(yaml.safe_load(bundle.read_text())["broker"]["password"])


def _key_version() -> int:
    code, out = cli("device show scale-0001 --json")
    assert code == 0, out
    return int(json.loads(out)["key_version"])


def test_rotate_and_provision_without_an_output_refuse_and_the_bundle_still_logs_in(
    field: tuple[MosquittoServer, Path],
) -> None:
    broker, bundle = field
    password = _password(bundle)
    assert broker_answer(broker.port, "scale-0001", password) == "Success"
    passwd_before = Path(os.environ["ZHIJIAN_BROKER_PASSWD_FILE"]).read_text()
    for command in ("device rotate scale-0001", "device provision scale-0001", "device rotate scale-0001 --yes"):
        code, out = cli(command)
        assert code == 1, out
        assert "nowhere to deliver the new credentials" in out and "nothing was changed" in out
    code, out = cli("device rotate scale-0001 --out /dev/null/bundle.yaml --yes")  # cannot be written
    assert code == 1 and "nothing was changed" in out, out
    code, out = cli("device rotate scale-0001 --write-serial /dev/no-such-port --yes")
    assert code == 1 and "no such serial port (nothing was changed)" in out, out
    # nothing changed: the same key, no rotation in the audit log, the same password file, and the broker
    # still lets the device in with its bundle
    assert _key_version() == 1
    code, out = cli("registry audit --device scale-0001 --json")
    assert [e["action"] for e in json.loads(out)] == ["provision", "register"]
    assert Path(os.environ["ZHIJIAN_BROKER_PASSWD_FILE"]).read_text() == passwd_before
    assert broker_answer(broker.port, "scale-0001", password) == "Success"

    # the probe tells the two apart: a rotation delivered to a file ends the old password at the broker
    new_bundle = bundle.with_name("bundle-2.yaml")
    code, out = cli(f"device rotate scale-0001 --out {new_bundle} --yes")
    assert code == 0, out
    assert _key_version() == 2
    assert eventually_refused(broker.port, "scale-0001", password) == "Not authorized"
    assert broker_answer(broker.port, "scale-0001", _password(new_bundle)) == "Success"


def test_ending_credentials_shows_the_device_and_needs_yes_without_a_terminal(
    field: tuple[MosquittoServer, Path],
) -> None:
    broker, bundle = field
    for command in (
        f"device rotate scale-0001 --out {bundle.with_name('b2.yaml')}",
        "device provision scale-0001 --qr",
        "device revoke scale-0001 --reason 'seal broken'",
    ):
        code, out = cli(command)  # CliRunner's stdin is no terminal
        assert code == 1, out
        assert "scale-0001 (scale zj-pcs-30, serial SN-1) at stall m1/A-1 in futian, vendor Li [Si]" in out
        assert "not confirmed (no terminal to ask at); add --yes" in out
    assert _key_version() == 1 and broker_answer(broker.port, "scale-0001", _password(bundle)) == "Success"
    code, out = cli("device revoke scale-0001 --reason 'seal broken' --yes")
    assert code == 0 and "revoked" in out, out
    assert eventually_refused(broker.port, "scale-0001", _password(bundle)) == "Not authorized"
    code, out = cli(f"device provision scale-0001 --out {bundle.with_name('b3.yaml')} --yes")
    assert code == 1 and "is revoked" in out  # the registry's own refusal, reached only with --yes


def _at_a_terminal(command: list[str], answer: str, cwd: Path) -> tuple[int, str]:
    """``zhijian <command>`` in its own process with a pty as stdin (a terminal: it asks), typing ``answer``."""
    controller, terminal = pty.openpty()
    try:
        os.write(controller, answer.encode() + b"\n")  # typed ahead: the terminal holds it until read
        done = subprocess.run(
            [sys.executable, "-m", "zhijian_cli", *command],
            stdin=terminal,
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=120,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    return done.returncode, done.stdout + done.stderr


def test_at_a_terminal_the_technician_is_asked(field: tuple[MosquittoServer, Path]) -> None:
    broker, bundle = field
    revoke = ["device", "revoke", "scale-0001", "--reason", "seal broken"]
    code, out = _at_a_terminal(revoke, "n", bundle.parent)
    assert code == 1, out
    assert "vendor Li [Si]" in out and "revoke scale-0001 for good? [y/N]" in out and "nothing changed" in out
    assert broker_answer(broker.port, "scale-0001", _password(bundle)) == "Success"
    code, out = _at_a_terminal(revoke, "y", bundle.parent)
    assert code == 0 and "revoked scale-0001" in out, out
    assert eventually_refused(broker.port, "scale-0001", _password(bundle)) == "Not authorized"


def test_a_serial_line_that_fails_says_the_old_bundle_is_gone_and_what_to_do(
    field: tuple[MosquittoServer, Path],
) -> None:
    controller, terminal = pty.openpty()  # a serial port nobody answers on
    try:
        code, out = cli(f"device rotate scale-0001 --write-serial {os.ttyname(terminal)} --qr --yes")
    finally:
        os.close(terminal)
        os.close(controller)
    assert code == 1
    assert "ZJB1:" in out  # the QR text came first: the new secrets are not lost
    assert "did not take its new bundle, and its old one no longer works" in out
    assert "or run `zhijian device rotate scale-0001` again" in out and "where you asked for a copy" in out


def test_a_file_that_cannot_take_the_bundle_is_found_before_anything_changes(
    field: tuple[MosquittoServer, Path], tmp_path: Path
) -> None:
    """A full disk, a link, another device's bundle: refused before the rotation; the old bundle logs in."""
    broker, bundle = field
    full = tmp_path / "full"
    full.mkdir()
    if os.geteuid() == 0:  # a full disk: a tmpfs of 8 KiB, filled (mounting needs root)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(full)], check=False)
        assert mounted.returncode == 0
        try:
            subprocess.run(
                ["dd", "if=/dev/zero", f"of={full / 'fill'}", "bs=1k", "count=100"], capture_output=True, check=False
            )
            code, out = cli(f"device rotate scale-0001 --out {full / 'b.yaml'} --yes")
            assert code == 1 and "cannot write there" in out and "nothing was changed" in out, out
        finally:
            subprocess.run(["umount", str(full)], check=False)
    link = tmp_path / "link.yaml"
    link.symlink_to(tmp_path / "elsewhere.yaml")
    code, out = cli(f"device rotate scale-0001 --out {link} --yes")
    assert code == 1 and "not a regular file" in out, out
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"device_id": "scale-0002", "broker": {"password": "p"}}))
    code, out = cli(f"device rotate scale-0001 --out {other} --yes")
    assert code == 1 and "holds the bundle of scale-0002" in out, out
    as_qr = tmp_path / "other.txt"  # the form a failed delivery shows it in
    as_qr.write_text(qr_text({"device_id": "scale-0002", "broker": {"password": "p"}}) + "\n")
    code, out = cli(f"device rotate scale-0001 --out {as_qr} --yes")
    assert code == 1 and "holds the bundle of scale-0002" in out, out
    assert _key_version() == 1 and broker_answer(broker.port, "scale-0001", _password(bundle)) == "Success"
    code, out = cli(f"device rotate scale-0001 --out {bundle} --yes")  # its own bundle file: replaced
    assert code == 0, out
    assert _key_version() == 2 and broker_answer(broker.port, "scale-0001", _password(bundle)) == "Success"


def test_a_silent_serial_line_shows_the_new_bundle_rather_than_losing_it(field: tuple[MosquittoServer, Path]) -> None:
    broker, bundle = field
    code, out = cli("device rotate scale-0001 --write-serial /dev/null --yes")  # not a serial port at all
    assert code == 1 and "cannot open it as a serial port" in out and "nothing was changed" in out, out
    assert _key_version() == 1
    controller, terminal = pty.openpty()  # a serial port nobody answers on, and no other copy asked for
    try:
        code, out = cli(f"device rotate scale-0001 --write-serial {os.ttyname(terminal)} --yes")
    finally:
        os.close(terminal)
        os.close(controller)
    assert code == 1 and "the new bundle is shown above" in out, out
    shown = next(line for line in out.splitlines() if line.startswith("ZJB1:"))  # the bundle, not lost
    rescued = bundle.with_name("rescued.yaml")
    rescued.write_text(shown + "\n")
    from edge_agent.bundle_file import load_bundle

    password = load_bundle(rescued).broker.password
    assert eventually_refused(broker.port, "scale-0001", _password(bundle)) == "Not authorized"
    assert broker_answer(broker.port, "scale-0001", password) == "Success"
