"""A provisioning bundle as one line of text, for a QR code or a serial line.

The registry issues bundles as documents (:class:`device_profiles.bundle.Bundle`). The text form is the
same document without its default values, compact JSON, zlib-compressed and base64url-encoded behind
``ZJB1:``, so a bundle with a CA certificate fits one QR code (version 40 holds 2 953 bytes); the agent
reads either.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Mapping
from typing import Any

from .bundle import Bundle

QR_PREFIX = "ZJB1:"


def qr_text(bundle: Bundle | Mapping[str, Any]) -> str:
    """The text of a bundle (its defaults left out: the reader has them, the QR code has no room), or of a
    document as it is (a test of the receiving side sends ones no :class:`Bundle` would hold)."""
    doc = bundle.model_dump(mode="json", exclude_defaults=True) if isinstance(bundle, Bundle) else dict(bundle)
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    return QR_PREFIX + base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def from_qr_text(text: str) -> dict[str, Any]:
    """The bundle in a QR text; raises ValueError if it is not one."""
    text = text.strip()
    if not text.startswith(QR_PREFIX):
        raise ValueError(f"QR bundle text starts with {QR_PREFIX}")
    body = text[len(QR_PREFIX) :]
    doc = json.loads(zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))
    if not isinstance(doc, dict):
        raise ValueError("QR bundle text does not hold a bundle")
    return doc
