"""Owner-only files written whole: the mode holds from creation, even over a leftover temporary file."""

from __future__ import annotations

import os
from pathlib import Path

from device_profiles.private_file import write_private


def test_written_owner_only_and_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "bundle.yaml"
    leftover = tmp_path / ".bundle.yaml.tmp"
    leftover.write_text("half a bundle")
    os.chmod(leftover, 0o644)  # a crash left a readable temporary file behind
    write_private(target, "key_hex: 5f5f\n")
    assert target.read_text() == "key_hex: 5f5f\n" and target.stat().st_mode & 0o777 == 0o600
    assert not leftover.exists()
    write_private(target, b"second\n", mode=0o640)
    assert target.read_bytes() == b"second\n" and target.stat().st_mode & 0o777 == 0o640
