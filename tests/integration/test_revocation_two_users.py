"""A revocation reaches the broker in the production layout: the registry runs as one system user, Mosquitto
(deploy/mosquitto/zhijian.conf) and the reloader as another, the registry with deploy/systemd/registry.env.example
(paths and ports swapped). A device is provisioned and connects; it is revoked through the registry's API;
the broker ends its session and refuses it again, and the registry's answer says the broker applied it.

The registry user may not signal Mosquitto (shown: EPERM), so nothing here works unless the files are readable
across users and the reloader, as Mosquitto's user, does the signalling.

Needs root (to create the users and start processes as them) and useradd. This machine's Python lives under
/root (mode 0700), which other users cannot enter; the service processes see it through a private mount
namespace (a tmpfs over /root holding only the interpreter's folder). Their users and rights are unchanged.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from device_registry.local_ca import LocalCA
from tests.support.waiting import wait_until
from zhijian_cli.servers import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates two system users and runs processes as them"),
    pytest.mark.skipif(shutil.which("useradd") is None, reason="needs useradd to create the system users"),
    pytest.mark.skipif(shutil.which("mosquitto") is None, reason="needs mosquitto"),
]
ROOT = Path(__file__).resolve().parents[2]
ZHIJIAN = [str(Path(sys.executable).parent / "zhijian")]
DEADLINE_S = 60.0  # generous: what is waited for happens in about a second


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int


def _make_user(name: str) -> User:
    subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True
    )
    entry = pwd.getpwnam(name)
    return User(name, entry.pw_uid, entry.pw_gid)


@pytest.fixture(scope="module")
def users() -> Iterator[tuple[User, User]]:
    tag = secrets.token_hex(3)
    made: list[User] = []
    try:
        made.append(_make_user(f"zjt-registry-{tag}"))
        made.append(_make_user(f"zjt-mosquitto-{tag}"))
        yield made[0], made[1]
    finally:
        for user in made:
            subprocess.run(["userdel", user.name], check=False)


class Processes:
    """Processes started as other users; each stopped by its own pid at the end."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.started: list[subprocess.Popen[bytes]] = []

    def start(
        self, name: str, argv: list[str], user: User, *, groups: tuple[int, ...] = (), env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        drop = ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--pdeathsig=TERM"]
        drop += [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]
        log = open(self.base / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the process's life
        proc = subprocess.Popen(
            _with_python_visible([*drop, "--", *argv], self.base),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={"PATH": os.environ["PATH"], "HOME": str(self.base), "PYTHONPATH": str(ROOT), **(env or {})},
            cwd=self.base,
            start_new_session=True,
        )
        log.close()
        self.started.append(proc)
        return proc

    def run(self, argv: list[str], user: User, *, groups: tuple[int, ...] = (), env: dict[str, str]) -> str:
        """Run to the end as ``user``; its output (it must succeed)."""
        proc = self.start(f"run-{len(self.started)}", argv, user, groups=groups, env=env)
        assert proc.wait(DEADLINE_S) == 0, self.log(f"run-{len(self.started) - 1}")
        return self.log(f"run-{len(self.started) - 1}")

    def log(self, name: str) -> str:
        return (self.base / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for proc in reversed(self.started):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


def _with_python_visible(argv: list[str], base: Path) -> list[str]:
    """``argv`` in a private mount namespace whose /root is a tmpfs holding only the Python installation
    (this machine keeps it under /root, 0700): the interpreter is readable, nothing else of root's is."""
    real = Path(sys.base_prefix).resolve()
    if not real.is_relative_to("/root"):
        return argv
    hold = base / "python-mount"
    hold.mkdir(exist_ok=True)
    inside = Path("/root") / real.relative_to("/root")
    script = (
        'mount --bind "$1" "$2" && mount -t tmpfs -o mode=0755 tmpfs /root && mkdir -p "$3" '
        '&& mount --move "$2" "$3" && shift 3 && exec "$@"'
    )
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
        str(real),
        str(hold),
        str(inside),
        *argv,
    ]


def _env_file(swaps: dict[str, str]) -> dict[str, str]:
    """deploy/systemd/registry.env.example as the registry reads it, values swapped for the test's."""
    env = {}
    for line in (ROOT / "deploy" / "systemd" / "registry.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    missing = set(swaps) - set(env)
    assert not missing, f"registry.env.example lacks {missing}"
    return env | swaps


def _broker_config(swaps: dict[str, str], debian: str) -> str:
    text = (ROOT / "deploy" / "mosquitto" / "zhijian.conf").read_text()
    for old, new in swaps.items():
        assert old in text, old
        text = text.replace(old, new)
    return debian + text


class Device:
    """The device's MQTT session as its agent holds it: connected, disconnected, refused."""

    def __init__(self, port: int, ca_file: Path, user: str, password: str) -> None:
        self.answers: list[str] = []
        self.disconnected = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=user)
        self.client.username_pw_set(user, password)
        self.client.tls_set(ca_certs=str(ca_file))
        self.client.on_connect = lambda _c, _u, _f, reason, _p: self.answers.append(str(reason))
        self.client.on_disconnect = lambda *_: self.disconnected.set()
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_revocation_reaches_mosquitto_running_as_another_user(users: tuple[User, User]) -> None:
    registry_user, broker_user = users
    base = Path(tempfile.mkdtemp(prefix="zhijian-two-users-", dir="/tmp"))
    base.chmod(0o755)  # tmp_path's parents are root's alone
    procs = Processes(base)
    device: Device | None = None
    try:
        reg_dir, files_dir, broker_dir = base / "registry", base / "broker-files", base / "mosquitto"
        for folder, owner, group, mode in (
            (reg_dir, registry_user.uid, registry_user.gid, 0o700),
            (files_dir, registry_user.uid, broker_user.gid, 0o2750),  # install -d -o zhijian -g mosquitto -m 2750
            (broker_dir, broker_user.uid, broker_user.gid, 0o700),
        ):
            folder.mkdir()
            os.chown(folder, owner, group)
            folder.chmod(mode)
        ca = LocalCA(broker_dir / "ca")
        server = ca.issue("broker", hosts=("127.0.0.1", "localhost"))
        for path in (broker_dir / "ca", *(broker_dir / "ca").iterdir()):
            os.chown(path, broker_user.uid, broker_user.gid)
        ca_for_devices = base / "ca.pem"
        shutil.copy(ca.cert_path, ca_for_devices)
        ca_for_devices.chmod(0o644)
        tls_port, local_port, api_port = free_port(), free_port(), free_port()

        env = _env_file(
            {
                "ZHIJIAN_REGISTRY_URL": f"sqlite:///{reg_dir / 'registry.sqlite'}",
                "ZHIJIAN_KEY_SECRET_FILE": str(reg_dir / "registry.key"),
                "ZHIJIAN_BUNDLE_BROKER_HOST": "127.0.0.1",
                "ZHIJIAN_BUNDLE_BROKER_PORT": str(tls_port),
                "ZHIJIAN_BUNDLE_CA_FILE": str(ca_for_devices),
                "ZHIJIAN_BROKER_PASSWD_FILE": str(files_dir / "passwd"),
                "ZHIJIAN_BROKER_ACL_FILE": str(files_dir / "acl"),
                "ZHIJIAN_BROKER_FILES_GROUP": broker_user.name,
                "ZHIJIAN_BROKER_SERVICE_ACCOUNTS": str(reg_dir / "service-accounts"),
                "ZHIJIAN_BROKER_CHECK_PORT": str(local_port),
            }
        )
        env |= {"ZHIJIAN_BUNDLE_STATE_DIR": str(base / "agent-{device}"), "ZHIJIAN_API_PORT": str(api_port)}
        as_registry = {"user": registry_user, "groups": (registry_user.gid, broker_user.gid), "env": env}
        procs.run(
            ["sh", "-c", f"umask 077 && printf '' > {reg_dir / 'service-accounts'}"], **as_registry
        )  # no ingest here: the service accounts file exists and is empty
        admin = json.loads(procs.run([*ZHIJIAN, "registry", "init", "--json"], **as_registry))["admin_token"]
        procs.run([*ZHIJIAN, "registry", "broker-files", "--no-check"], **as_registry)  # Mosquitto needs the file
        passwd = files_dir / "passwd"
        st = passwd.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (registry_user.uid, broker_user.gid, 0o640)

        pid_file = broker_dir / "mosquitto.pid"
        debian = (  # what Debian's mosquitto.conf sets before it includes conf.d
            f"pid_file {pid_file}\nuser {broker_user.name}\npersistence_location {broker_dir}/\n"
            f"log_dest file {broker_dir / 'mosquitto.log'}\nlog_type all\n"
        )
        config = base / "mosquitto.conf"
        config.write_text(
            _broker_config(
                {
                    "/etc/mosquitto/zhijian/passwd": str(passwd),
                    "/etc/mosquitto/zhijian/acl": str(files_dir / "acl"),
                    "/etc/zhijian/ca/ca.pem": str(ca.cert_path),
                    "/etc/zhijian/ca/broker.pem": str(server.cert),
                    "/etc/zhijian/ca/broker.key": str(server.key),
                    "listener 8883\n": f"listener {tls_port} 127.0.0.1\n",
                    "listener 1883 127.0.0.1\n": f"listener {local_port} 127.0.0.1\n",
                },
                debian,
            )
        )
        config.chmod(0o644)
        broker = procs.start("mosquitto", ["mosquitto", "-c", str(config)], broker_user)
        assert wait_until(
            lambda: pid_file.exists() and pid_file.read_text().strip() == str(broker.pid), DEADLINE_S, interval_s=0.05
        ), "Mosquitto's pid file"
        reloader_argv = [*ZHIJIAN, "registry", "broker-reloader", "--pid-file", str(pid_file), "--interval", "0.2"]
        reloader_argv += ["--watch", str(passwd), "--watch", str(files_dir / "acl")]
        procs.start("reloader", reloader_argv, broker_user)
        assert wait_until(lambda: "told to re-read them" in procs.log("reloader"), DEADLINE_S, interval_s=0.05), (
            "the reloader's first signal"
        )

        # what failed before: the registry's user may not signal Mosquitto (even given a pid file it can read;
        # Debian's /run/mosquitto is 0740), and the registry says so
        readable = base / "mosquitto.pid"
        readable.write_text(pid_file.read_text())
        readable.chmod(0o644)
        code = f"import pathlib, device_registry.broker_reload as r; r.signal_reload(pathlib.Path({str(readable)!r}))"
        probe = procs.start("signal-from-registry", [sys.executable, "-c", code], **as_registry)
        assert probe.wait(DEADLINE_S) != 0
        assert "runs as another user" in procs.log("signal-from-registry") and broker.poll() is None

        procs.start("registry", [*ZHIJIAN, "registry", "serve"], **as_registry)
        api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {admin}"})

        def answers() -> bool:
            try:
                return api.get("/health").status_code == 200
            except httpx.TransportError:
                return False

        assert wait_until(answers, DEADLINE_S, interval_s=0.05), "the registry API"
        for path, body in (
            ("/v1/districts", {"id": "futian", "name": "Futian"}),
            ("/v1/markets", {"id": "m1", "name": "M1", "district_id": "futian", "operator": "Op"}),
            ("/v1/stalls", {"market_id": "m1", "code": "A-1", "vendor": "V", "business_licence": "91350100M000100Y43"}),
            (
                "/v1/devices",
                {"id": "scale-0001", "profile": "zj-pcs-30", "serial_no": "S", "market_id": "m1", "stall_code": "A-1"},
            ),
        ):
            r = api.post(path, json=body)
            assert r.status_code == 201, r.text
        issued = api.post("/v1/devices/scale-0001/provision", json={}, timeout=DEADLINE_S).json()
        assert issued["broker"]["state"] == "confirmed", issued["broker"]
        bundle = issued["bundle"]["broker"]

        device = Device(bundle["port"], ca_for_devices, "scale-0001", bundle["password"])
        assert wait_until(
            lambda: device is not None and device.answers[-1:] == ["Success"], DEADLINE_S, interval_s=0.05
        ), "the device connects"

        r = api.post("/v1/devices/scale-0001/revoke", json={"reason": "seal broken"}, timeout=DEADLINE_S)
        assert r.status_code == 200, r.text
        assert r.json()["broker"]["state"] == "confirmed", r.json()
        assert wait_until(device.disconnected.is_set, DEADLINE_S, interval_s=0.05), (
            "the broker ends the revoked device's session"
        )
        # it tries again, as an agent does, and is refused
        assert wait_until(
            lambda: device is not None and device.answers[-1] != "Success", DEADLINE_S, interval_s=0.05
        ), "the broker refuses the device"
        assert device.answers[-1] in ("Not authorized", "Bad user name or password"), device.answers
        assert "scale-0001:" not in passwd.read_text()
    finally:
        if device is not None:
            device.close()
        procs.stop()
        shutil.rmtree(base, ignore_errors=True)
