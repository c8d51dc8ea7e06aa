"""A durable replace writes the whole content and fsyncs both the file and its directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from device_profiles.durable import replace_durably


def test_replace_fsyncs_the_file_then_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.npz"
    target.write_bytes(b"old")
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    replace_durably(target, b"x" * 1_000_000, mode=0o600)
    assert target.read_bytes() == b"x" * 1_000_000
    assert synced == [str(tmp_path / ".state.npz.tmp"), str(tmp_path)]
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.npz"]


def test_a_leftover_temporary_file_is_overwritten(tmp_path: Path) -> None:
    (tmp_path / ".status.json.tmp").write_text("half a file from a crash, longer than the new one")
    replace_durably(tmp_path / "status.json", "{}")
    assert (tmp_path / "status.json").read_text() == "{}"
    assert not (tmp_path / ".status.json.tmp").exists()
