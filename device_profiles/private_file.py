"""Files only their owner may read — bundles, keys, password hashes — written whole or not at all.

The file is created with its mode (never world-readable, not even for a moment) under a temporary name
and renamed over the target, so a reader sees the old file or the new one, never half of either. The
edge agent writes its bundle and certificates this way; the registry and the CLI use it for the key
secret, the broker's password file and ACL, and bundles handed to technicians. It lives in the contract
because both sides of a bundle write secrets and neither may depend on the other.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, content: str | bytes, *, mode: int = 0o600) -> Path:
    """Write ``content`` to ``path`` atomically with ``mode``; returns ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)  # a leftover temporary file keeps its old mode through O_TRUNC
        f.write(content.encode() if isinstance(content, str) else content)
    tmp.replace(path)
    return path
