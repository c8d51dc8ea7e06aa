"""Telling Mosquitto to re-read the registry's files, and knowing that it did, on a real Mosquitto: only a
process that is Mosquitto is signalled, the probe account confirms a reload and reports one that did not
happen, and a revocation the broker has not applied says so (API 502, CLI exit 1)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_profiles.private_file import write_private
from device_registry.broker_files import acl_text, hash_password, password_file_text
from device_registry.broker_probe import PROBE_USER, connack_code
from device_registry.broker_reload import signal_reload, watch
from device_registry.broker_sync import BrokerCheck, BrokerSync
from device_registry.db import connect, sessions
from device_registry.errors import BrokerFilesStale
from tests.support.cli_helpers import cli
from tests.support.registry import KEY_SECRET, seeded_registry_file
from tests.support.waiting import wait_until
from zhijian_cli.servers import MosquittoServer

pytestmark = pytest.mark.integration
GENEROUS_S = 60.0  # a confirmation that should come: waited for generously (a loaded machine)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "600"])
    comm = Path(f"/proc/{proc.pid}/comm")
    deadline = time.monotonic() + GENEROUS_S
    while comm.read_text().strip() != "sleep" and time.monotonic() < deadline:  # until it has exec'd
        time.sleep(0.01)
    yield proc
    proc.kill()
    proc.wait()


def test_a_pid_file_that_names_no_mosquitto_is_not_signalled(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    pid_file = tmp_path / "mosquitto.pid"
    pid_file.write_text(f"{sleeper.pid}\n")  # a stale pid file whose pid now belongs to something else
    with pytest.raises(BrokerFilesStale, match=rf"process {sleeper.pid}, which is 'sleep', not Mosquitto"):
        signal_reload(pid_file)
    assert sleeper.poll() is None, "the unrelated process was signalled (SIGHUP would have ended it)"
    sync = BrokerSync(passwd_file=tmp_path / "passwd", acl_file=tmp_path / "acl", pid_file=pid_file)
    db = sessions(connect(seeded_registry_file(tmp_path, {})))()
    with pytest.raises(BrokerFilesStale, match="files written, Mosquitto not told to re-read them"):
        sync.apply(db)
    assert sleeper.poll() is None
    db.close()
    gone = subprocess.Popen(["true"])
    gone.wait()
    pid_file.write_text(f"{gone.pid}\n")
    with pytest.raises(BrokerFilesStale, match="does not exist"):
        signal_reload(pid_file)
    pid_file.write_text("mosquitto\n")
    with pytest.raises(BrokerFilesStale, match="not a process id"):
        signal_reload(pid_file)


@pytest.fixture
def registry(tmp_path: Path) -> str:
    return seeded_registry_file(tmp_path, {"scale-0001": ("zj-pcs-30", "futian-no1", "A-017")})


@pytest.fixture
def broker(tmp_path: Path, registry: str) -> Iterator[MosquittoServer]:
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    write_private(passwd, password_file_text({"zhijian-admin": hash_password("admin-pw")}))
    write_private(acl, acl_text())
    with MosquittoServer(tmp_path / "broker", auth=(passwd, acl)) as server:
        yield server


def _sync(broker: MosquittoServer, **kw: object) -> BrokerSync:
    passwd, acl = broker.auth or (Path(), Path())
    return BrokerSync(passwd_file=passwd, acl_file=acl, **kw)  # type: ignore[arg-type]


def test_the_probe_confirms_a_reload_and_reports_one_that_did_not_happen(
    broker: MosquittoServer, registry: str
) -> None:
    db = sessions(connect(registry))()
    # nobody tells Mosquitto: the broker still refuses the probe's new password, and the update says so
    blind = _sync(broker, check=BrokerCheck("127.0.0.1", broker.port, timeout_s=1.5))
    with pytest.raises(BrokerFilesStale, match=r"has not applied them within 1.5 s \(probe account: refused"):
        blind.apply(db)
    # the registry may signal it (same user): confirmed
    signalled = _sync(broker, pid_file=broker.pid_path, check=BrokerCheck("127.0.0.1", broker.port, GENEROUS_S))
    update = signalled.apply(db)
    assert (update.state, update.devices) == ("confirmed", 1)
    # the reloader does the signalling (as it does from Mosquitto's user in production): confirmed too
    stop = threading.Event()
    files = [blind.acl_file, blind.passwd_file]
    reloader = threading.Thread(target=watch, args=(files, broker.pid_path), kwargs={"stop": stop}, daemon=True)
    reloader.start()
    try:
        watched = _sync(broker, check=BrokerCheck("127.0.0.1", broker.port, GENEROUS_S))
        assert watched.apply(db).state == "confirmed"
    finally:
        stop.set()
        reloader.join(GENEROUS_S)
    # the probe's password is never kept: after the update, only the broker's copy (a hash) remains
    assert f"{PROBE_USER}:$7$" in blind.passwd_file.read_text()
    assert connack_code("127.0.0.1", broker.port, PROBE_USER, "guess") in (4, 5)  # refused
    broker.stop()
    with pytest.raises(BrokerFilesStale, match="no answer"):
        _sync(broker, check=BrokerCheck("127.0.0.1", broker.port, timeout_s=0.5)).apply(db)
    db.close()


def _cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, registry: str, broker: MosquittoServer) -> None:
    key_file = tmp_path / "registry.key"
    write_private(key_file, KEY_SECRET.hex())
    passwd, acl = broker.auth or (Path(), Path())
    env = {
        "ZHIJIAN_REGISTRY_URL": registry,
        "ZHIJIAN_KEY_SECRET_FILE": str(key_file),
        "ZHIJIAN_BROKER_PASSWD_FILE": str(passwd),
        "ZHIJIAN_BROKER_ACL_FILE": str(acl),
        "ZHIJIAN_BROKER_CHECK_HOST": "127.0.0.1",
        "ZHIJIAN_BROKER_CHECK_PORT": str(broker.port),
        "ZHIJIAN_BROKER_CHECK_TIMEOUT_S": "1",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)


def test_a_revocation_the_broker_has_not_applied_exits_non_zero_and_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, registry: str, broker: MosquittoServer
) -> None:
    _cli_env(monkeypatch, tmp_path, registry, broker)  # a broker check, but nobody to reload Mosquitto
    code, out = cli("device revoke scale-0001 --reason 'seal broken' --yes")
    assert code == 1, out
    assert "scale-0001 is revoked in the registry, but the broker has not applied it" in " ".join(out.split())
    code, out = cli("device show scale-0001 --json")
    assert code == 0 and '"revoked_at": null' not in out  # recorded: the registry and the ingest refuse it


def test_a_revocation_the_broker_applied_says_it_is_refused_from_now_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, registry: str, broker: MosquittoServer
) -> None:
    _cli_env(monkeypatch, tmp_path, registry, broker)
    monkeypatch.setenv("ZHIJIAN_BROKER_PID_FILE", str(broker.pid_path))
    monkeypatch.setenv("ZHIJIAN_BROKER_CHECK_TIMEOUT_S", str(GENEROUS_S))
    code, out = cli("device revoke scale-0001 --reason 'seal broken' --yes")
    assert code == 0, out
    said = " ".join(out.split())
    assert "revoked scale-0001" in said
    assert f"broker: the broker at 127.0.0.1:{broker.port} works from the new files (it is refused from now on)" in said


def test_a_new_bundle_whose_broker_update_failed_is_saved_and_the_command_exits_non_zero(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, registry: str, broker: MosquittoServer
) -> None:
    _cli_env(monkeypatch, tmp_path, registry, broker)  # nobody reloads Mosquitto
    bundle = tmp_path / "out" / "bundle.yaml"
    code, out = cli(f"device rotate scale-0001 --out {bundle} --yes")
    assert code == 1, out
    assert "the broker has not applied the new credentials" in " ".join(out.split())
    assert "password:" in bundle.read_text()  # the only copy of the new secrets is not lost


def test_the_reloader_does_not_ask_for_a_reload_of_files_mosquitto_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Mosquitto re-reading a password file it cannot open drops every client: while a file cannot be read
    (here: gone; in production: a folder its user may not enter) the reloader logs why, once, and waits."""
    import device_registry.broker_reload as reload_module

    acl, passwd = tmp_path / "acl", tmp_path / "passwd"
    acl.write_text("pattern readwrite zhijian/v1/%u/#\n")
    signalled: list[Path] = []
    monkeypatch.setattr(reload_module, "signal_reload", lambda pid_file: signalled.append(pid_file) or 4242)
    stop = threading.Event()
    reloader = threading.Thread(
        target=watch, args=([acl, passwd], tmp_path / "pid"), kwargs={"stop": stop, "interval_s": 0.05}, daemon=True
    )
    with caplog.at_level("ERROR", logger="device_registry.broker_reload"):
        reloader.start()
        try:
            assert wait_until(lambda: caplog.records, GENEROUS_S)
            time.sleep(0.3)  # several intervals: still no signal, and the error was said once
            assert signalled == [] and len(caplog.records) == 1, caplog.records
            assert "unreadable" in caplog.records[0].getMessage() and str(passwd) in caplog.records[0].getMessage()
            passwd.write_text("scale-0001:$7$x\n")  # readable again: now Mosquitto is told
            assert wait_until(lambda: signalled, GENEROUS_S)
        finally:
            stop.set()
            reloader.join(GENEROUS_S)
