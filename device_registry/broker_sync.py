"""Keeping the broker's password file and ACL true to the registry, and telling Mosquitto to reload.

The password file holds the ``$7$`` hash of each current credential of every device not revoked, plus
the service accounts (ingest, admin) from a file of password-file lines the operator keeps. Mosquitto
re-reads both files on SIGHUP: connected clients stay, except those whose account is gone, which it
disconnects (so revoking a device also ends its live session; tests/device_registry/test_broker_files.py).

Service accounts must be named in the reserved ``zhijian-`` namespace (no device id may be), so that on a
broker that binds client ids to usernames no device can ever hold a service's session; each one's rights
in the ACL follow its name (``zhijian-ingest[-<worker>]``, ``zhijian-admin[-<who>]``).
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from device_profiles.private_file import write_private

from . import models as m
from .broker_files import acl_text, password_file_text, reserved_name, service_role
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


@dataclass(frozen=True, kw_only=True)
class BrokerSync:
    """Writes the broker files from the registry and signals Mosquitto (when a pid file is given)."""

    passwd_file: Path
    acl_file: Path
    service_accounts: Path | None = None
    pid_file: Path | None = None

    def apply(self, db: Session) -> int:
        """Write both files; returns the number of device accounts."""
        devices = device_accounts(db)
        try:
            service = read_service_accounts(self.service_accounts)
            write_private(self.passwd_file, password_file_text({**service, **devices}))
            roles = {user: service_role(user) for user in service}
            write_private(
                self.acl_file,
                acl_text(
                    ingest_users=[u for u, r in roles.items() if r == "ingest"],
                    admin_users=[u for u, r in roles.items() if r == "admin"],
                ),
            )
        except OSError as exc:
            raise BrokerFilesStale(
                f"recorded, but the broker files could not be written ({exc}); "
                "fix that and run `zhijian registry broker-files`"
            ) from exc
        self.reload()
        return len(devices)

    def reload(self) -> None:
        if self.pid_file is None:
            return
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError) as exc:
            log.warning("could not signal Mosquitto (pid file %s): %s", self.pid_file, exc)
