"""Secrets a device or a user holds, and what the registry keeps of them (never the secret itself).

- Device MQTT password: random, shown once in the bundle; the registry keeps Mosquitto's ``$7$`` hash,
  which is also what the broker's password file needs.
- Device integrity key (HMAC-SHA256 of each envelope): derived with HKDF-SHA256 from the registry's key
  secret, the device id and a key version, so neither registry rows nor backups hold keys; the ingest,
  which has the same secret, derives them again. Rotating bumps the version. A 16-hex-digit fingerprint
  lets a technician compare the key a device holds with the registry's, without revealing it.
- API tokens: ``zjt_<id>_<secret>``; the id finds the row, the SHA-256 of the secret is compared in
  constant time. Tokens are 192-bit random, so a plain hash (not a slow one) is the right tool.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from device_profiles.envelope import key_fingerprint

from .broker_files import hash_password, new_device_password

KEY_SECRET_BYTES = 32
TOKEN_RE = re.compile(r"^zjt_([0-9a-f]{12})_([A-Za-z0-9_-]{32})$")

__all__ = [
    "derive_integrity_key",
    "hash_password",
    "key_fingerprint",
    "new_api_token",
    "new_device_password",
    "new_key_secret",
    "secret_matches",
    "split_token",
]


def new_key_secret() -> bytes:
    return secrets.token_bytes(KEY_SECRET_BYTES)


def derive_integrity_key(secret: bytes, device_id: str, version: int) -> bytes:
    """The 32-byte integrity key of ``device_id`` at key ``version``."""
    if len(secret) < KEY_SECRET_BYTES:
        raise ValueError(f"the key secret must be at least {KEY_SECRET_BYTES} bytes")
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"zhijian integrity key", info=f"{device_id}\0{version}".encode()
    )
    return hkdf.derive(secret)


def new_api_token() -> tuple[str, str, str]:
    """``(token id, SHA-256 of the secret, the token text to hand out once)``."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(24)
    return token_id, _digest(secret), f"zjt_{token_id}_{secret}"


def split_token(text: str) -> tuple[str, str] | None:
    """``(token id, secret)`` of a well-formed token, else None."""
    m = TOKEN_RE.fullmatch(text)
    return (m.group(1), m.group(2)) if m else None


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(_digest(secret), stored_hash)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
