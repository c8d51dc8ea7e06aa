"""Keeping the broker's password file and ACL true to the registry, and telling Mosquitto to reload.

The password file holds the ``$7$`` hash of each current credential of every device not revoked, plus
the service accounts (ingest, admin) from a file of password-file lines the operator keeps. Mosquitto
re-reads both files on SIGHUP: connected clients stay, except those whose account is gone, which it
disconnects (so revoking a device also ends its live session; tests/registry/test_broker_files.py).
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from edge_agent.private_file import write_private

from . import models as m
from .broker_files import acl_text, password_file_text
from .errors import BrokerFilesStale, RegistryError

log = logging.getLogger(__name__)


def device_accounts(db: Session) -> dict[str, str]:
    """``{device id: $7$ hash}`` of every current credential of a device that is not revoked."""
    rows = db.execute(
        select(m.Credential.device_id, m.Credential.password_hash)
        .join(m.Device, m.Device.id == m.Credential.device_id)
        .where(m.Credential.retired_at.is_(None), m.Device.revoked_at.is_(None))
    ).all()
    return {device: stored for device, stored in rows}


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
            clash = devices.keys() & service.keys()
            if clash:
                raise RegistryError(f"service accounts named like devices: {sorted(clash)}")
            write_private(self.passwd_file, password_file_text({**service, **devices}))
            write_private(self.acl_file, acl_text())
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
