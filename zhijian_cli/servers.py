"""Private Mosquitto, InfluxDB and NATS (JetStream) processes, for the demo and the tests.

Each server gets free ports on 127.0.0.1, a generated config and its state under a directory of ours,
and is waited for until it answers. ``stop()`` terminates it (then kills it after a grace period); the
context managers stop it also when the body raises. A missing binary raises :class:`MissingBinary`,
which names the Debian package to install.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/bin")
# Lines every listener of a broker with accounts carries (here, `zhijian registry ca init`, deploy/mosquitto/):
# the broker replaces the client id a client sends by its username before it looks for a session to take over,
# so a device holds no session but its own. A listener option, read at start only (not on SIGHUP).
LISTENER_LINES = ("use_username_as_clientid true",)
# Sessions and their queues as far as Mosquitto keeps them (here and in deploy/mosquitto/zhijian.conf): Mosquitto
# holds them in memory and writes a whole snapshot every autosave_interval seconds (not per change: a count of
# changes would leave a quiet broker's new session unsaved indefinitely). A crash loses up to a second;
# the end-to-end acknowledgement, not the broker, guarantees no record is lost (docs/operations.md).
PERSISTENCE_LINES = ("persistence true", "autosave_on_changes false", "autosave_interval 1")


def _die_with_parent(argv: list[str]) -> list[str]:
    """``argv`` wrapped so that Linux sends the server SIGTERM when the process that started it dies, even
    by SIGKILL, and a killed test run or demo leaves no server behind. Uses util-linux's ``setpriv``
    (essential on Debian) rather than a ``preexec_fn``, which is unsafe once threads run."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv


class ServerError(Exception):
    """A server could not be started."""


class MissingBinary(ServerError):
    """The server's program is not installed."""


def find_binary(name: str, package: str) -> str:
    """Path of ``name`` on PATH or in the sbin folders; raises :class:`MissingBinary` naming ``package``."""
    found = shutil.which(name) or next(
        (str(Path(d) / name) for d in SBIN_DIRS if os.access(Path(d) / name, os.X_OK)), None
    )
    if found is None:
        raise MissingBinary(
            f"'{name}' not found: install the Debian package '{package}' (apt-get install {package}), "
            "or run scripts/setup.sh"
        )
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server(ABC):
    name = "server"
    port: int
    log_path: Path

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: list[str], cwd: Path) -> None:
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                _die_with_parent(argv), cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    @abstractmethod
    def _ready(self) -> bool:
        """True once the server answers."""

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise ServerError(f"{self.name} exited with {self._proc.returncode}; log:\n{tail}")
            if self._ready():
                return
            time.sleep(0.05)
        self.stop()
        raise ServerError(f"{self.name} did not answer on port {self.port} within {timeout_s} s")

    @property
    def pid(self) -> int:
        """The server's process id (for /proc figures); ServerError when it is not running."""
        if self._proc is None:
            raise ServerError(f"{self.name} is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, grace_s: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace_s)

    def kill(self) -> None:
        """SIGKILL, as a crash would (for chaos tests)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(5)
            self._proc = None

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


@dataclass(frozen=True, kw_only=True)
class TlsListener:
    """A second, TLS listener: server certificate and key, the CA clients are checked against."""

    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = False

    def config_lines(self) -> list[str]:
        return [
            f"listener {self.port} 127.0.0.1",
            f"cafile {self.ca_file}",
            f"certfile {self.cert_file}",
            f"keyfile {self.key_file}",
            f"require_certificate {'true' if self.require_certificate else 'false'}",
        ]


class MosquittoServer(_Server):
    """A private Mosquitto 2.x broker."""

    name = "mosquitto"

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int | None = None,
        extra_config: str = "",
        tls: TlsListener | None = None,
        auth: tuple[Path, Path] | None = None,
    ) -> None:
        """``auth``: (password file, ACL file) to require, client ids bound to usernames; without it
        anonymous clients may connect with any client id."""
        super().__init__()
        self.binary = find_binary("mosquitto", "mosquitto")
        self.auth = auth
        self.state_dir = Path(state_dir).resolve()
        self.port = port or free_port()
        self.extra_config = extra_config
        self.tls = tls
        self.log_path = self.state_dir / "mosquitto.log"
        self.config_path = self.state_dir / "mosquitto.conf"
        self.pid_path = self.state_dir / "mosquitto.pid"  # for whoever signals it to reload (the registry)

    def config_text(self) -> str:
        # Overload must slow, not drop: the ingest's persistent session may queue a lot while it is down
        # or behind. Bounded by bytes so a stuck consumer cannot exhaust memory.
        # With accounts, every listener binds the client id to the username (LISTENER_LINES): a device
        # cannot take over the ingest's session or another device's (docs/registry.md, broker security).
        # Anonymous clients have no username to bind to, so the open broker of most tests does not.
        bind = list(LISTENER_LINES) if self.auth else []
        return "\n".join(
            [
                f"listener {self.port} 127.0.0.1",
                *bind,
                "allow_anonymous false" if self.auth else "allow_anonymous true",
                *([f"password_file {self.auth[0]}", f"acl_file {self.auth[1]}"] if self.auth else []),
                f"user {getpass.getuser()}",
                f"persistence_location {self.state_dir}/",
                *PERSISTENCE_LINES,
                "max_queued_messages 1000000",
                "max_queued_bytes 1073741824",
                "max_inflight_messages 1000",
                "message_size_limit 1048576",
                "log_type error",
                "log_type warning",
                "log_type notice",
                *([*self.tls.config_lines(), *bind] if self.tls else []),
                self.extra_config,
                "",
            ]
        )

    def start(self) -> MosquittoServer:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text())
        self._spawn([self.binary, "-c", str(self.config_path)], self.state_dir)
        assert self._proc is not None
        self.pid_path.write_text(f"{self._proc.pid}\n")  # setpriv execs mosquitto: the same pid
        self.wait_ready()
        return self

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads its password and ACL files; connected clients stay connected."""
        if self._proc is None or self._proc.poll() is not None:
            raise ServerError("mosquitto is not running")
        self._proc.send_signal(signal.SIGHUP)

    def __enter__(self) -> MosquittoServer:
        return self.start()


class InfluxServer(_Server):
    """A private InfluxDB 1.x ``influxd``."""

    name = "influxd"

    def __init__(self, state_dir: Path, *, port: int | None = None) -> None:
        super().__init__()
        self.binary = find_binary("influxd", "influxdb")
        self.state_dir = Path(state_dir).resolve()
        self.port = port or free_port()
        self.rpc_port = free_port()
        self.log_path = self.state_dir / "influxd.log"
        self.config_path = self.state_dir / "influxdb.conf"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config_text(self) -> str:
        d = self.state_dir
        return f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  max-body-size = 50000000
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
"""

    def start(self) -> InfluxServer:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text())
        self._spawn([self.binary, "-config", str(self.config_path)], self.state_dir)
        self.wait_ready()
        return self

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ping", timeout=0.5).status_code == 204
        except httpx.HTTPError:
            return False

    def __enter__(self) -> InfluxServer:
        return self.start()


class NatsServer(_Server):
    """A private ``nats-server`` with JetStream, its store under ``state_dir`` (kept across restarts).

    Ready when the monitoring port's ``/healthz`` answers 200, which nats-server does only once JetStream
    has recovered its streams: a client connecting earlier could find its stream missing.
    """

    name = "nats-server"

    def __init__(self, state_dir: Path, *, port: int | None = None, max_payload: int = 1024 * 1024) -> None:
        super().__init__()
        self.binary = find_binary("nats-server", "nats-server")
        self.state_dir = Path(state_dir).resolve()
        self.port = port or free_port()
        self.http_port = free_port()
        self.max_payload = max_payload
        self.log_path = self.state_dir / "nats-server.log"
        self.config_path = self.state_dir / "nats-server.conf"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def config_text(self) -> str:
        return "\n".join(
            [
                f"server_name: zhijian-{self.port}",
                f"listen: 127.0.0.1:{self.port}",
                f"http: 127.0.0.1:{self.http_port}",
                f"max_payload: {self.max_payload}",
                "jetstream {",
                f'  store_dir: "{self.state_dir}/jetstream"',
                "  max_memory_store: 64MB",
                "  max_file_store: 4GB",
                "}",
                "",
            ]
        )

    def start(self) -> NatsServer:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text())
        self._spawn([self.binary, "-c", str(self.config_path)], self.state_dir)
        self.wait_ready()
        return self

    def _ready(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.http_port}/healthz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def __enter__(self) -> NatsServer:
        return self.start()
