"""Broker credentials and access control: a Mosquitto 2.x password file and ACL from our accounts.

Passwords are stored as Mosquitto 2.x writes them (``mosquitto_passwd``): ``$7$`` = PBKDF2-SHA512,
101 iterations, 12-byte salt, 64-byte hash, base64. The ACL confines each device (username = device id)
to its own topic namespace (:func:`device_profiles.topics.acl_lines`); the ingest accounts read data and
replies and write commands and alerts; the admin accounts may do everything. The text is written by
:mod:`device_registry.broker_sync` (atomically, owner-only) and Mosquitto told to reload it (SIGHUP).

Identities are bound by the broker, not by these files: every listener of a Zhijian broker sets
``use_username_as_clientid true`` (``zhijian_cli.servers.LISTENER_LINES``, deploy/mosquitto/), so a
client's MQTT client id *is* its username and a device can hold no session but its own (docs/registry.md,
"Broker security"). Service accounts therefore live in their own namespace, ``zhijian-…``, which no
device id may enter (:func:`reserved_name`), and each ingest worker or admin tool has an account of its
own (``zhijian-ingest-0``, ``zhijian-admin-ops``): two clients on one account would take over each other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping

from device_profiles.topics import ROOT, acl_lines

SERVICE_PREFIX = "zhijian-"  # service accounts only: refused as a device id
INGEST_USER, ADMIN_USER = "zhijian-ingest", "zhijian-admin"
_SERVICE_RE = re.compile(r"zhijian-(ingest|admin)(?:-[a-z0-9][a-z0-9-]{0,62})?")
ITERATIONS = 101  # what mosquitto_passwd uses
SALT_BYTES, HASH_BYTES = 12, 64


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The password-file form of ``password``: ``$7$<iterations>$<salt>$<hash>``."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, dklen=HASH_BYTES)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(stored: str, password: str) -> bool:
    """True if ``password`` matches a ``$7$`` entry (in constant time)."""
    try:
        _, kind, iterations, salt, digest = stored.split("$")
        if kind != "7":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations), len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


def password_file_text(accounts: Mapping[str, str]) -> str:
    """Lines ``user:$7$…`` for ``{user: stored hash}`` (hashes only: no plain password is ever written)."""
    for user, stored in accounts.items():
        if ":" in user or not stored.startswith("$7$"):
            raise ValueError(f"bad account {user!r}")
    return "".join(f"{user}:{stored}\n" for user, stored in sorted(accounts.items()))


def reserved_name(name: str) -> bool:
    """True if ``name`` is in the service accounts' namespace, which no device id may take."""
    return name.startswith(SERVICE_PREFIX)


def service_role(user: str) -> str | None:
    """``"ingest"`` for ``zhijian-ingest`` and ``zhijian-ingest-<worker>``, ``"admin"`` likewise, else None."""
    found = _SERVICE_RE.fullmatch(user)
    return found.group(1) if found else None


_INGEST_TOPICS = (
    f"topic read {ROOT}/+/data",
    f"topic read {ROOT}/+/reply",
    f"topic read {ROOT}/+/status",
    f"topic write {ROOT}/+/cmd",
    f"topic readwrite {ROOT}/+/alert",
    f"topic write {ROOT}/+/ack",
)


def acl_text(*, ingest_users: Iterable[str] = (INGEST_USER,), admin_users: Iterable[str] = (ADMIN_USER,)) -> str:
    """The ACL: devices in their own namespace, the ingest and admin accounts by name."""
    lines = ["# devices: username = device id = client id", *acl_lines(), ""]
    for user in sorted(set(ingest_users)):
        lines += [f"user {user}", *_INGEST_TOPICS, ""]
    for user in sorted(set(admin_users)):
        lines += [f"user {user}", "topic readwrite #", ""]
    return "\n".join(lines)


def new_device_password() -> str:
    """A random password for a device's bundle (the registry keeps only its hash)."""
    return secrets.token_urlsafe(24)
