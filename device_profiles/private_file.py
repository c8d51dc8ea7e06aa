"""Files only their owner may read — bundles, keys, password hashes — written whole or not at all.

The file is created with its mode (never world-readable, not even for a moment) under a temporary name
and renamed over the target, so a reader sees the old file or the new one, never half of either. The
edge agent writes its bundle and certificates this way; the registry and the CLI use it for the key
secret, the broker's password file and ACL, and bundles handed to technicians. It lives in the contract
because both sides of a bundle write secrets and neither may depend on the other.
"""

from __future__ import annotations

from pathlib import Path

from .durable import replace_durably


def write_private(path: Path, content: str | bytes, *, mode: int = 0o600) -> Path:
    """Write ``content`` to ``path`` atomically and durably with ``mode``; returns ``path``."""
    return replace_durably(path, content, mode=mode)
