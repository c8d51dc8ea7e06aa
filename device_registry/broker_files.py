"""Broker credentials and access control: a Mosquitto 2.x password file and ACL from our accounts.

Passwords are stored as Mosquitto 2.x writes them (``mosquitto_passwd``): ``$7$`` = PBKDF2-SHA512,
101 iterations, 12-byte salt, 64-byte hash, base64. The ACL confines each device (username = device id)
to its own topic namespace (:func:`device_profiles.topics.acl_lines`); the ingest account reads data and
replies and writes commands and alerts; the admin account may do everything. The text is written by
:mod:`device_registry.broker_sync` (atomically, owner-only) and Mosquitto told to reload it (SIGHUP).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping

from device_profiles.topics import ROOT, acl_lines

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


def acl_text(*, ingest_user: str = "zhijian-ingest", admin_user: str = "zhijian-admin") -> str:
    """The ACL: devices in their own namespace, the ingest and admin accounts by name."""
    lines = [
        "# devices: username = device id",
        *acl_lines(),
        "",
        f"user {ingest_user}",
        f"topic read {ROOT}/+/data",
        f"topic read {ROOT}/+/reply",
        f"topic read {ROOT}/+/status",
        f"topic write {ROOT}/+/cmd",
        f"topic readwrite {ROOT}/+/alert",
        "",
        f"user {admin_user}",
        "topic readwrite #",
        "",
    ]
    return "\n".join(lines)


def new_device_password() -> str:
    """A random password for a device's bundle (the registry keeps only its hash)."""
    return secrets.token_urlsafe(24)
