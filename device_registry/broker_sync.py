"""Keeping the broker's password file and ACL true to the registry, and knowing that Mosquitto applied them.

The password file holds the ``$7$`` hash of each current credential of every device not revoked, plus
the service accounts (ingest, admin) from a file of password-file lines the operator keeps. Mosquitto
re-reads both files on SIGHUP: connected clients stay, except those whose account is gone, which it
disconnects (so revoking a device also ends its live session; tests/device_registry/test_broker_files.py).

Registry and Mosquitto may run as different users (the production layout: ``zhijian`` and ``mosquitto``).
The files are then written mode 0640 in Mosquitto's group (``ZHIJIAN_BROKER_FILES_GROUP``), and the
reload comes from whoever may signal Mosquitto: the pid file here when the registry runs as Mosquitto's
user (the demo, most tests), else the reloader (:mod:`.broker_reload`) running as Mosquitto's user.
Whether the broker applied them is not assumed but asked (:mod:`.broker_probe`, ``ZHIJIAN_BROKER_CHECK_HOST``):
each write carries a new password for the probe account, which the broker accepts only once it has
re-read the file. An update that is not confirmed in time raises :class:`BrokerFilesStale`, which a
revocation reports to its caller (HTTP 502, the CLI exits 1).

Service accounts must be named in the reserved ``zhijian-`` namespace (no device id may be), so that on a
broker that binds client ids to usernames no device can ever hold a service's session; each one's rights
in the ACL follow its name (``zhijian-ingest[-<worker>]``, ``zhijian-admin[-<who>]``).
"""

from __future__ import annotations

import fcntl
import grp
import logging
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from device_profiles.durable import replace_durably

from . import models as m
from .broker_files import acl_text, hash_password, password_file_text, reserved_name, service_role
from .broker_probe import ACCEPTED, CONNACK_WORDS, PROBE_USER, connack_code
from .broker_reload import signal_reload
from .errors import BrokerFilesStale, RegistryError

log = logging.getLogger(__name__)


def device_accounts(db: Session) -> dict[str, str]:
    """``{device id: $7$ hash}`` of every current credential of a device that is not revoked.

    A device registered under a reserved name (before registration refused them) gets no account: it
    would hold a service's session."""
    rows = db.execute(
        select(m.Credential.device_id, m.Credential.password_hash)
        .join(m.Device, m.Device.id == m.Credential.device_id)
        .where(m.Credential.retired_at.is_(None), m.Device.revoked_at.is_(None))
    ).all()
    reserved = sorted(device for device, _ in rows if reserved_name(device))
    if reserved:
        log.warning("devices named like service accounts get no broker account: %s", reserved)
    return {device: stored for device, stored in rows if not reserved_name(device)}


def read_service_accounts(path: Path | None) -> dict[str, str]:
    """Password-file lines ``user:$7$…`` (e.g. written by mosquitto_passwd) for the non-device accounts."""
    if path is None:
        return {}
    accounts = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            user, sep, stored = line.partition(":")
            if not sep:
                raise RegistryError(f"{path}:{n}: not a password-file line (user:hash)")
            if service_role(user) is None:
                raise RegistryError(
                    f"{path}:{n}: service account {user!r}: name it zhijian-ingest[-<worker>] or "
                    "zhijian-admin[-<who>] (names outside zhijian- may be device ids)"
                )
            accounts[user] = stored
    return accounts


@dataclass(frozen=True)
class BrokerCheck:
    """Where to ask the broker whether it applied the files (its loopback service listener), and how long
    to wait for it: a reloader polls the files twice a second, so seconds are plenty."""

    host: str
    port: int
    timeout_s: float = 10.0


@dataclass(frozen=True)
class BrokerUpdate:
    """What became of one update: ``confirmed`` (the broker answered with the new files), or ``written``
    (files written and, with a pid file, Mosquitto signalled; nobody asked whether it re-read them)."""

    devices: int
    state: str
    detail: str


@dataclass(frozen=True, kw_only=True)
class BrokerSync:
    """Writes the broker files from the registry, asks for a reload, and (with ``check``) confirms it."""

    passwd_file: Path
    acl_file: Path
    service_accounts: Path | None = None
    pid_file: Path | None = None
    group: str | None = None  # Mosquitto's group: the files become 0640 in it, else 0600
    check: BrokerCheck | None = None

    def apply(self, db: Session) -> BrokerUpdate:
        """Write both files and have them applied; raises :class:`BrokerFilesStale` if they could not be
        written, or the broker did not (or could not be told to) re-read them."""
        devices = device_accounts(db)
        try:
            service = read_service_accounts(self.service_accounts)
        except OSError as exc:  # a caller must learn that the broker is stale, whatever the cause
            raise BrokerFilesStale(f"the service accounts could not be read ({exc})") from exc
        except RegistryError as exc:
            raise BrokerFilesStale(str(exc)) from exc
        probe = secrets.token_urlsafe(18) if self.check else None
        accounts = {**service, **devices} | ({PROBE_USER: hash_password(probe)} if probe else {})
        roles = {user: service_role(user) for user in service}
        acl = acl_text(
            ingest_users=[u for u, r in roles.items() if r == "ingest"],
            admin_users=[u for u, r in roles.items() if r == "admin"],
        )
        with self._serialised():  # two registry processes must not interleave a write and its probe
            try:
                gid = self._gid()
                # the ACL first: a reloader woken by the password file finds both new
                _write_shared(self.acl_file, acl, gid)
                _write_shared(self.passwd_file, password_file_text(accounts), gid)
            except OSError as exc:
                raise BrokerFilesStale(_unwritable(exc)) from exc
            signal_error: BrokerFilesStale | None = None
            if self.pid_file is not None:
                try:
                    signal_reload(self.pid_file)
                except BrokerFilesStale as exc:
                    signal_error = exc
            if self.check is None or probe is None:
                if signal_error is not None:
                    raise BrokerFilesStale(f"files written, Mosquitto not told to re-read them: {signal_error}")
                told = "Mosquitto told to re-read them" if self.pid_file else "no reload asked from here"
                return BrokerUpdate(len(devices), "written", f"files written, {told}; not confirmed (no broker check)")
            self._confirm(probe, signal_error)
        where = f"{self.check.host}:{self.check.port}"
        return BrokerUpdate(len(devices), "confirmed", f"the broker at {where} works from the new files")

    def _gid(self) -> int | None:
        if self.group is None:
            return None
        try:
            return grp.getgrnam(self.group).gr_gid
        except KeyError as exc:
            raise OSError(f"no group {self.group!r} (ZHIJIAN_BROKER_FILES_GROUP)") from exc

    @contextmanager
    def _serialised(self) -> Iterator[None]:
        lock = self.passwd_file.with_name(f".{self.passwd_file.name}.lock")
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise BrokerFilesStale(_unwritable(exc)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _confirm(self, probe: str, signal_error: BrokerFilesStale | None) -> None:
        assert self.check is not None
        c = self.check
        deadline = time.monotonic() + c.timeout_s
        while True:
            try:
                code = connack_code(c.host, c.port, PROBE_USER, probe, timeout_s=min(5.0, c.timeout_s))
                last = CONNACK_WORDS.get(code, f"CONNACK {code}")
            except OSError as exc:
                code, last = -1, f"no answer ({exc})"
            if code == ACCEPTED:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        why = f"; signalling it failed: {signal_error}" if signal_error else ""
        reloader = (
            ""
            if self.pid_file
            else "; is `zhijian registry broker-reloader` running as Mosquitto's user, and can that user read "
            "the files (it does not ask for a reload it would fail, and logs why)?"
        )
        raise BrokerFilesStale(
            f"files written, but the broker at {c.host}:{c.port} has not applied them within {c.timeout_s:g} s "
            f"(probe account: {last}){why}{reloader}"
        )


def _unwritable(exc: OSError) -> str:
    return f"the broker files could not be written ({exc}); fix that and run `zhijian registry broker-files`"


def _write_shared(path: Path, text: str, gid: int | None) -> None:
    """``text`` to ``path`` atomically and durably: 0640 in group ``gid`` (Mosquitto's, so it can read the
    file when it runs as another user), else 0600. Callers hold the broker files' lock."""
    replace_durably(path, text, mode=0o640 if gid is not None else 0o600, group=gid)
